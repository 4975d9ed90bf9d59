//! cco-web: the read-only web dashboard of a cco run — who is doing what, what landed, what
//! it cost and why something failed — served by the cco process itself (no separate web
//! process, no JavaScript build: server-rendered HTML, one small script for live updates,
//! both embedded in the binary).
//!
//! ```no_run
//! # async fn run(handle: cco::OrchestratorHandle, config: cco::config::LoadedConfig) -> Result<(), cco_web::WebError> {
//! let serving = cco_web::Dashboard::live(&handle, &config)
//!     .serve("127.0.0.1:0".parse().unwrap())
//!     .await?;
//! println!("dashboard: {}", serving.login_url());
//! handle.wait().await;
//! serving.stop().await;
//! # Ok(()) }
//! ```
//!
//! Layout:
//! - `source`: where a run is read from — the run of this process (its handle) or a run
//!   folder alone (journal, `events.jsonl`, `combined.log`, `sessions/`, `summary.json`);
//! - `history`: the run told again from `events.jsonl` (turns, reviews, merges, limits);
//! - `view`: the pages (maud templates): team, board, task, agent log, transcript, timeline,
//!   costs and limits; `timeline`: the chart, also written as `<run dir>/timeline.svg`;
//! - `server`: routes, rendering on blocking threads, server-sent events; `access`: loopback
//!   only, or an access token.
//!
//! Costs: nothing of this runs unless a dashboard is served; a served dashboard subscribes to
//! the run's events only while a browser watches a page, and renders at most a few times a
//! second per watched page. Secrets never leave it: every text is passed through the run's
//! redactor (the one of the logs) as it is rendered, and every answer once more.

mod access;
mod history;
mod server;
mod source;
mod timeline;
mod view;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cco::config::LoadedConfig;
use cco::OrchestratorHandle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use timeline::{write_svg as write_timeline, FILE_NAME as TIMELINE_FILE_NAME};

/// The address a dashboard binds to by default: loopback, a free port.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// File in a run folder naming the dashboard serving that run (see [`Serving::record_in`]).
pub const RECORD_FILE_NAME: &str = "dashboard.json";

/// Why a dashboard could not be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0:?} is not an address: give PORT, HOST:PORT or [IPv6]:PORT")]
    Address(String),
}

/// `PORT`, `HOST:PORT`, `[IPv6]:PORT` or `localhost:PORT` (loopback when no host is given).
pub fn parse_addr(text: &str) -> Result<SocketAddr, WebError> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    match text.rsplit_once(':') {
        Some(("localhost", port)) => port
            .parse::<u16>()
            .map(|port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
            .map_err(|_| WebError::Address(text.into())),
        _ => Err(WebError::Address(text.into())),
    }
}

/// A dashboard of one run, ready to serve.
pub struct Dashboard {
    run: source::Run,
}

impl Dashboard {
    /// The run of this process, as it goes on (and after it ended, while the handle lives).
    pub fn live(handle: &OrchestratorHandle, config: &LoadedConfig) -> Dashboard {
        let mut info = source::RunInfo::of(config);
        info.workspace = handle.workspace().to_path_buf();
        Dashboard {
            run: source::Run::new(handle.run_dir().to_path_buf(), Some(handle.clone()), info),
        }
    }

    /// A run folder (`<logDirectory>/<run id>`) of the config `config`: a run of another cco
    /// process, or a finished one.
    pub fn folder(run_dir: impl Into<PathBuf>, config: &LoadedConfig) -> Dashboard {
        Dashboard {
            run: source::Run::new(run_dir.into(), None, source::RunInfo::of(config)),
        }
    }

    /// The run's workspace, when it is not the config's `workspaceDirectory` (a `-w` run):
    /// where the task patches are read from.
    pub fn workspace(mut self, dir: impl Into<PathBuf>) -> Dashboard {
        self.run.info.workspace = dir.into();
        self
    }

    /// Listens on `addr` and serves until [`Serving::stop`] (or until it is dropped). A
    /// non-loopback address gets an access token ([`Serving::token`]).
    pub async fn serve(self, addr: SocketAddr) -> Result<Serving, WebError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| WebError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| WebError::Bind { addr, source })?;
        let access = Arc::new(access::Access::for_addr(local));
        let token = access.token().map(str::to_string);
        let (stop, mut stopped) = watch::channel(false);
        let app = server::App {
            run: Arc::new(self.run),
            stopping: stop.subscribe(),
        };
        let router = server::router(app, access);
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            if let Err(error) = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(%error, "the dashboard stopped");
            }
        });
        Ok(Serving {
            addr: local,
            token,
            stop: Some(stop),
            task: Some(task),
            record: None,
        })
    }
}

/// A dashboard being served.
pub struct Serving {
    addr: SocketAddr,
    token: Option<String>,
    stop: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
    record: Option<PathBuf>,
}

impl Serving {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<address>/` (an unspecified bind address, `0.0.0.0` or `::`, stands for any
    /// of the machine's addresses).
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The access token every request needs (a non-loopback bind), `None` on loopback.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The URL to open: with `?token=` when one is needed (the page then keeps it in a
    /// cookie and drops it from the address bar).
    pub fn login_url(&self) -> String {
        match &self.token {
            Some(token) => format!("{}?token={token}", self.url()),
            None => self.url(),
        }
    }

    /// Writes `<run_dir>/dashboard.json` (the URL without the token, this process's id) so
    /// `cco status` can show where the run is served; removed when the dashboard stops.
    pub fn record_in(&mut self, run_dir: &Path) -> std::io::Result<()> {
        let path = run_dir.join(RECORD_FILE_NAME);
        let record = serde_json::json!({
            "url": self.url(),
            "token_required": self.token.is_some(),
            "pid": std::process::id(),
        });
        std::fs::write(&path, record.to_string())?;
        self.record = Some(path);
        Ok(())
    }

    /// Stops listening and waits for the server to end (open live updates are dropped).
    pub async fn stop(mut self) {
        self.forget_record();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(task) = self.task.take() {
            // Live-update streams end at the signal; a client slow to hang up gets a moment.
            let abort = task.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    fn forget_record(&mut self) {
        if let Some(path) = self.record.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.forget_record();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Where the run in `run_dir` is served, as [`Serving::record_in`] wrote it: the URL and
/// whether it needs a token (`None` when no live process serves it).
pub fn recorded_dashboard(run_dir: &Path) -> Option<(String, bool)> {
    let text = std::fs::read_to_string(run_dir.join(RECORD_FILE_NAME)).ok()?;
    let record: serde_json::Value = serde_json::from_str(&text).ok()?;
    let pid = i32::try_from(record.get("pid")?.as_u64()?).ok()?;
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
    if !alive {
        return None;
    }
    Some((
        record.get("url")?.as_str()?.to_string(),
        record.get("token_required")?.as_bool()?,
    ))
}
