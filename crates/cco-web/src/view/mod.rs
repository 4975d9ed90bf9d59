//! The pages, as maud templates: pure functions of what [`Run`] reads (nothing here does IO
//! but through it). Each page is a `<main>` inside one layout; live updates replace the
//! `<main>` (or append to an agent's log) with what the same functions render again.
//!
//! Every text that came from agents or the run is escaped by maud and passed through the
//! run's redactor first ([`Ctx::clean`]); the server redacts each response once more.

mod board;
mod costs;
mod diff;
mod log;
mod task;
mod team;
mod timeline;

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use crate::source::Run;

pub(crate) use log::render_lines as render_log_lines;
pub(crate) use task::{outcome_words, patch_fingerprint, patch_revs};

/// What a page needs that is read asynchronously before it renders: a task's patch (git),
/// the GitActor's status (a live run).
#[derive(Default)]
pub(crate) struct Extra {
    pub(crate) patch: Option<std::sync::Arc<Result<cco_git::Patch, String>>>,
    pub(crate) git: Option<cco::GitStatus>,
}

/// The pages of the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Page {
    Team,
    Board,
    /// `<team>/<task id>`.
    Task(String),
    /// An agent's lines of `combined.log`.
    Log(String),
    /// One transcript: agent, session id.
    Session(String, String),
    Timeline,
    Costs,
}

impl Page {
    /// The page at `path` (`None`: no such page).
    pub(crate) fn parse(path: &str) -> Option<Page> {
        let path = path.split('?').next().unwrap_or("");
        let clean = |s: &str| -> Option<String> {
            let ok = !s.is_empty()
                && s.len() <= 200
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            ok.then(|| s.to_string())
        };
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        Some(match parts.as_slice() {
            [""] | ["team"] => Page::Team,
            ["board"] => Page::Board,
            ["timeline"] => Page::Timeline,
            ["costs"] => Page::Costs,
            ["task", team, id] => Page::Task(format!("{}/{}", clean(team)?, clean(id)?)),
            ["agent", agent] => Page::Log(clean(agent)?),
            ["agent", agent, "session", session] => Page::Session(clean(agent)?, clean(session)?),
            _ => return None,
        })
    }

    pub(crate) fn path(&self) -> String {
        match self {
            Page::Team => "/".into(),
            Page::Board => "/board".into(),
            Page::Timeline => "/timeline".into(),
            Page::Costs => "/costs".into(),
            Page::Task(key) => format!("/task/{key}"),
            Page::Log(agent) => format!("/agent/{agent}"),
            Page::Session(agent, session) => format!("/agent/{agent}/session/{session}"),
        }
    }

    fn title(&self) -> String {
        match self {
            Page::Team => "Team".into(),
            Page::Board => "Board".into(),
            Page::Timeline => "Timeline".into(),
            Page::Costs => "Costs and limits".into(),
            Page::Task(key) => format!("Task {key}"),
            Page::Log(agent) => format!("Log of {agent}"),
            Page::Session(agent, session) => format!("{agent} session {}", short(session)),
        }
    }

    /// The nav entry the page belongs to.
    fn section(&self) -> &'static str {
        match self {
            Page::Team | Page::Log(_) | Page::Session(..) => "team",
            Page::Board | Page::Task(_) => "board",
            Page::Timeline => "timeline",
            Page::Costs => "costs",
        }
    }

    /// Pages whose live updates append lines instead of replacing the page.
    pub(crate) fn appends(&self) -> Option<&str> {
        match self {
            Page::Log(agent) => Some(agent),
            _ => None,
        }
    }
}

/// What every page reads: the run, and the time the page is rendered at.
pub(crate) struct Ctx<'a> {
    pub(crate) run: &'a Run,
    pub(crate) now: DateTime<Utc>,
}

impl Ctx<'_> {
    /// `text` without secrets.
    pub(crate) fn clean(&self, text: &str) -> String {
        self.run.info.redactor.redact(text).into_owned()
    }
}

/// The `<main>` of `page` (`None`: the page names something the run does not have).
pub(crate) fn render_main(ctx: &Ctx<'_>, page: &Page, extra: &Extra) -> Option<Markup> {
    match page {
        Page::Team => Some(team::render(ctx, extra)),
        Page::Board => Some(board::render(ctx)),
        Page::Task(key) => task::render(ctx, key, extra),
        Page::Log(agent) => log::render(ctx, agent),
        Page::Session(agent, session) => log::render_session(ctx, agent, session),
        Page::Timeline => Some(timeline::render(ctx)),
        Page::Costs => Some(costs::render(ctx)),
    }
}

/// A whole page: the layout around `main`.
pub(crate) fn render_page(ctx: &Ctx<'_>, page: &Page, main: Markup) -> Markup {
    let snapshot = ctx.run.snapshot();
    let ended = ctx.run.ended();
    let follow = page.path();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (page.title()) " · " (ctx.run.run_name) " · cco" }
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/live.js" defer {}
            }
            body data-page=(follow) {
                header {
                    div.brand { a href="/" { "cco" } }
                    div.run {
                        span.run-id { (ctx.run.run_name) }
                        @if let Some(s) = &snapshot {
                            span.phase { (ctx.clean(&s.phase)) }
                        }
                        @match &ended {
                            Some(outcome) if outcome == crate::source::INTERRUPTED => span.badge.ended { (outcome) },
                            Some(outcome) => span.badge.ended { "finished: " (ctx.clean(outcome)) },
                            None => span.badge.live #live { "live" },
                        }
                    }
                    nav {
                        @for (section, href, label) in [("team", "/", "Team"), ("board", "/board", "Board"), ("timeline", "/timeline", "Timeline"), ("costs", "/costs", "Costs and limits")] {
                            a href=(href) class=(if page.section() == section { "active" } else { "" }) { (label) }
                        }
                    }
                    @if let Some(s) = &snapshot {
                        div.totals {
                            span { "done " b { (s.totals.tasks_done) } }
                            span { "failed " b { (s.totals.tasks_failed) } }
                            span { "merges " b { (s.totals.merges) } }
                            span { "conflicts " b { (s.totals.conflicts) } }
                            span { "cost " b { (money(s.totals.cost_usd)) } }
                            span { "active " b { (duration(ctx.run.active_secs(s))) } }
                        }
                    }
                }
                main #main { (main) }
                footer { "read-only · " (ctx.now.format("%Y-%m-%d %H:%M:%S UTC")) }
            }
        }
    }
}

/// A page for something that does not exist.
pub(crate) fn not_found(what: &str) -> Markup {
    html! {
        h1 { "Not found" }
        p { (what) }
        p { a href="/" { "Back to the team" } }
    }
}

/// `$0.1234`.
pub(crate) fn money(usd: f64) -> String {
    format!("${usd:.4}")
}

/// `12.3 s`, `4m 05s`, `2h 07m`.
pub(crate) fn duration(secs: f64) -> String {
    let secs = secs.max(0.0);
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else if secs < 3600.0 {
        format!("{}m {:02}s", (secs / 60.0) as u64, secs as u64 % 60)
    } else {
        format!(
            "{}h {:02}m",
            (secs / 3600.0) as u64,
            (secs as u64 % 3600) / 60
        )
    }
}

/// How long ago `at` was, as a `<time>` the page's script keeps current.
pub(crate) fn since(at: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    let secs = (now - at).num_milliseconds() as f64 / 1000.0;
    html! {
        time datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)) data-since="" {
            (duration(secs))
        }
    }
}

/// `12:00:05` (UTC) of a time.
pub(crate) fn clock(at: DateTime<Utc>) -> String {
    at.format("%H:%M:%S").to_string()
}

/// The first 8 characters of an id.
pub(crate) fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// The first line of `text`, at most `max` characters.
pub(crate) fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if line.chars().count() > max {
        let cut: String = line.chars().take(max).collect();
        format!("{cut}…")
    } else {
        line.to_string()
    }
}

/// A link to a task's page.
pub(crate) fn task_link(key: &str) -> Markup {
    html! { a href=(format!("/task/{key}")) { (key) } }
}

/// A link to an agent's log.
pub(crate) fn agent_link(agent: &str) -> Markup {
    html! { a href=(format!("/agent/{agent}")) { (agent) } }
}
