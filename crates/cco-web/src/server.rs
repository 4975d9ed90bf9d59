//! The HTTP side: routes, rendering on tokio's blocking threads, server-sent events.
//!
//! Routes (GET only; the dashboard changes nothing):
//! - the pages: `/` (team), `/board`, `/task/<team>/<id>`, `/agent/<id>`,
//!   `/agent/<id>/session/<session>`, `/timeline`, `/costs`;
//! - `/sse?page=<path>`: live updates of that page (`event: main`, the page's new `<main>`;
//!   for an agent's log `event: append`, its new lines, from `&from=<offset>` of
//!   `combined.log`). Updates are rendered only while someone is connected, at most every
//!   [`DEBOUNCE`] (a burst of events is one update; a page slow to render waits ten times its
//!   render time), and sent only when they differ;
//! - `/timeline.svg`, `/assets/style.css`, `/assets/live.js` (embedded in the binary).
//!
//! Every HTML answer is passed through the run's redactor once more before it leaves.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::access::{guard, Access};
use crate::source::Run;
use crate::view::{self, Ctx, Extra, Page};

/// Changed lines of a patch shown at most (files beyond are listed only).
const PATCH_LINES: u64 = 20_000;
/// A burst of changes within this is one update (at least; see [`follow`]).
const DEBOUNCE: Duration = Duration::from_millis(1000);
/// Pages are rendered again this often even when nothing happened (times, time left).
const REFRESH: Duration = Duration::from_secs(10);
/// Patches kept in memory.
const PATCH_CACHE: usize = 64;

const STYLE: &str = include_str!("../assets/style.css");
const SCRIPT: &str = include_str!("../assets/live.js");

#[derive(Clone)]
pub(crate) struct App {
    pub(crate) run: Arc<Run>,
    /// Turns true when the server stops: live-update streams end, so it stops at once.
    pub(crate) stopping: tokio::sync::watch::Receiver<bool>,
}

pub(crate) fn router(app: App, access: Arc<Access>) -> Router {
    Router::new()
        .route("/sse", get(sse))
        .route("/timeline.svg", get(timeline_svg))
        .route("/assets/style.css", get(|| asset(STYLE, "text/css")))
        .route("/assets/live.js", get(|| asset(SCRIPT, "text/javascript")))
        .fallback(page)
        .with_state(app)
        .layer(axum::middleware::from_fn_with_state(access, guard))
}

async fn asset(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Runs `work` (a render: file reads and CPU) where it fits. A run of this process is read
/// from its handle and the few lines appended to `events.jsonl` since the last render: short
/// work, done on the calling task (a blocking thread would grow the process by an allocator
/// arena of its own, which the benchmark sees). A run folder is parsed from disk (the journal):
/// on a blocking thread.
async fn off_async<R: Send + 'static>(
    run: &Arc<Run>,
    work: impl FnOnce(&Run) -> R + Send + 'static,
) -> Option<R> {
    if run.handle().is_some() {
        return Some(work(run));
    }
    let run = Arc::clone(run);
    tokio::task::spawn_blocking(move || work(&run)).await.ok()
}

/// Reads what `page` needs from git or the GitActor.
async fn prepare(app: &App, page: &Page) -> Extra {
    let mut extra = Extra::default();
    match page {
        Page::Task(key) => extra.patch = patch(app, key).await,
        Page::Team => {
            if let Some(handle) = app.run.handle().filter(|_| app.run.is_live()) {
                extra.git = tokio::time::timeout(Duration::from_secs(1), handle.git_status())
                    .await
                    .ok()
                    .flatten();
            }
        }
        _ => {}
    }
    extra
}

async fn patch(app: &App, key: &str) -> Option<Arc<Result<cco_git::Patch, String>>> {
    let task = {
        let key = key.to_string();
        off_async(&app.run, move |run| {
            let task = run.snapshot()?.tasks.into_iter().find(|t| t.key == key)?;
            Some((task, run.base_branch()))
        })
        .await
        .flatten()
    };
    let (task, base_branch) = task?;
    if task.captured_round.is_none() && task.merged_commit.is_none() {
        return None;
    }
    let cache_key = (task.key.clone(), view::patch_fingerprint(&task));
    if let Some(hit) = app.run.patches.lock().ok()?.get(&cache_key) {
        return Some(Arc::clone(hit));
    }
    let result = match cco_git::RepoReader::for_workspace(&app.run.info.workspace) {
        Ok(reader) if reader.exists() => {
            let (base, head) = view::patch_revs(&app.run.run_name, &base_branch, &task);
            reader
                .patch(&base, &head, PATCH_LINES)
                .await
                .map_err(|e| e.to_string())
        }
        Ok(reader) => Err(format!(
            "the run's repository ({}) is gone",
            reader.repo_dir().display()
        )),
        Err(error) => Err(error.to_string()),
    };
    let result = Arc::new(result);
    if let Ok(mut cache) = app.run.patches.lock() {
        if cache.len() >= PATCH_CACHE {
            cache.clear();
        }
        cache.insert(cache_key, Arc::clone(&result));
    }
    Some(result)
}

/// Renders `page` (the whole document, or its `<main>` only), redacted; `None`: no such
/// thing in the run.
async fn render(app: &App, page: &Page, whole: bool) -> Option<String> {
    let extra = prepare(app, page).await;
    let page = page.clone();
    off_async(&app.run, move |run| {
        let ctx = Ctx {
            run,
            now: Utc::now(),
        };
        let main = view::render_main(&ctx, &page, &extra)?;
        let markup = if whole {
            view::render_page(&ctx, &page, main)
        } else {
            main
        };
        Some(run.info.redactor.redact(&markup.into_string()).into_owned())
    })
    .await
    .flatten()
}

async fn page(State(app): State<App>, method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, "the dashboard is read-only").into_response();
    }
    let Some(page) = Page::parse(uri.path()) else {
        return not_found(&app, "No such page.").await;
    };
    match render(&app, &page, true).await {
        Some(body) => html(StatusCode::OK, body),
        None => not_found(&app, "The run has no such task or agent.").await,
    }
}

async fn not_found(app: &App, what: &'static str) -> Response {
    let body = off_async(&app.run, move |run| {
        let ctx = Ctx {
            run,
            now: Utc::now(),
        };
        let page = view::render_page(&ctx, &Page::Team, view::not_found(what));
        run.info.redactor.redact(&page.into_string()).into_owned()
    })
    .await
    .unwrap_or_default();
    html(StatusCode::NOT_FOUND, body)
}

async fn timeline_svg(State(app): State<App>) -> Response {
    let svg = off_async(&app.run, move |run| {
        let snapshot = run.snapshot();
        let svg = run.history(|h, _| {
            crate::timeline::render(snapshot.as_ref(), h, Utc::now(), false).into_string()
        });
        run.info.redactor.redact(&svg).into_owned()
    })
    .await
    .unwrap_or_default();
    ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response()
}

#[derive(Deserialize)]
struct SseQuery {
    page: String,
    /// Agent logs: the offset of `combined.log` the page was rendered up to.
    from: Option<u64>,
}

async fn sse(State(app): State<App>, Query(query): Query<SseQuery>) -> Response {
    let Some(page) = Page::parse(&query.page) else {
        return (StatusCode::NOT_FOUND, "no such page").into_response();
    };
    let (tx, rx) = mpsc::channel::<Event>(4);
    tokio::spawn(feed(app, page, query.from, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Sends the updates of one page until its client goes away.
async fn feed(app: App, page: Page, from: Option<u64>, tx: mpsc::Sender<Event>) {
    let mut stopping = app.stopping.clone();
    tokio::select! {
        _ = stopping.wait_for(|stop| *stop) => {}
        _ = follow(&app, &page, from, &tx) => {}
    }
}

async fn follow(app: &App, page: &Page, from: Option<u64>, tx: &mpsc::Sender<Event>) {
    let mut changes = app.run.changes();
    // What was sent last, as a hash: a changed page is sent, an unchanged one is not.
    let mut last: Option<u64> = None;
    let mut offset = from;
    loop {
        let started = std::time::Instant::now();
        let event = match page.appends() {
            Some(agent) => append(app, agent, &mut offset).await,
            None => match render(app, page, false).await {
                Some(main) if last != Some(hash(&main)) => {
                    last = Some(hash(&main));
                    Some(Event::default().event("main").data(main))
                }
                _ => None,
            },
        };
        let took = started.elapsed();
        if let Some(event) = event {
            if tx.send(event).await.is_err() {
                return;
            }
        }
        tokio::select! {
            _ = changes.next() => {}
            _ = tokio::time::sleep(REFRESH) => {}
            _ = tx.closed() => return,
        }
        // A page that takes long to render is rendered less often: at most a tenth of the
        // time goes to it.
        let pause = DEBOUNCE.max(took * 10);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = tx.closed() => return,
        }
        changes.drain();
    }
}

fn hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// New lines of an agent's log since `offset` (from the end of the file on the first call
/// without one), as an `append` event.
async fn append(app: &App, agent: &str, offset: &mut Option<u64>) -> Option<Event> {
    let agent = agent.to_string();
    let from = *offset;
    let (body, next) = off_async(&app.run, move |run| {
        let (lines, next) = match from {
            Some(from) => run.log_since(&agent, from),
            None => {
                let (_, end) = run.log_tail(&agent, 0);
                (Vec::new(), end)
            }
        };
        let ctx = Ctx {
            run,
            now: Utc::now(),
        };
        let body = (!lines.is_empty()).then(|| {
            let html = view::render_log_lines(&ctx, &lines).into_string();
            run.info.redactor.redact(&html).into_owned()
        });
        (body, next)
    })
    .await?;
    *offset = Some(next);
    body.map(|html| Event::default().event("append").data(html))
}
