//! The web dashboard from the command line (`cco_web`): `--ui [ADDR]` of `start`, `resume`
//! and `demo` serves the run of this process; `cco ui` serves a run folder (running in
//! another process, or finished) until Ctrl-C. Every run that ends here gets its chart,
//! `<run dir>/timeline.svg`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cco::config::LoadedConfig;
use cco::{Orchestrator, OrchestratorHandle};
use cco_web::{Dashboard, Serving};

use crate::cli::{UiArgs, WorkspaceArg};
use crate::commands::{EXIT_CONFIG, EXIT_FAILED};

/// clap's parser of `--ui ADDR` / `--addr ADDR`.
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    cco_web::parse_addr(text).map_err(|e| e.to_string())
}

/// Serves the run of `handle` on `addr`, records it in the run folder for `cco status`, and
/// prints where (with the access token, once, when the address is not loopback).
pub async fn serve_live(
    handle: &OrchestratorHandle,
    config: &LoadedConfig,
    addr: SocketAddr,
) -> Option<Serving> {
    match Dashboard::live(handle, config).serve(addr).await {
        Ok(mut serving) => {
            if let Err(error) = serving.record_in(handle.run_dir()) {
                tracing::debug!(%error, "cannot record the dashboard in the run folder");
            }
            announce(&serving);
            Some(serving)
        }
        Err(error) => {
            crate::term::warn(&format!("no dashboard: {error}"));
            None
        }
    }
}

fn announce(serving: &Serving) {
    match serving.token() {
        None => eprintln!("cco: dashboard at {}", serving.url()),
        Some(token) => {
            eprintln!(
                "cco: dashboard at {} — not loopback: every request needs the access token",
                serving.url()
            );
            eprintln!(
                "cco: access token {token} (shown once; open {} — it is then kept in a cookie — or send `Authorization: Bearer <token>`)",
                serving.login_url()
            );
        }
    }
}

/// Writes `<run dir>/timeline.svg` at the end of a run (a warning when it cannot).
pub fn write_timeline(run_dir: &Path) {
    if let Err(error) = cco_web::write_timeline(run_dir) {
        tracing::warn!(%error, "no timeline.svg");
    }
}

/// SIGINT or SIGTERM, listened for from this call on (a signal that arrives between this call
/// and the await is not lost: take it before printing the URL a user or a test answers with
/// Ctrl-C).
pub fn stop_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let listeners = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    async move {
        let (Ok(mut interrupt), Ok(mut terminate)) = listeners else {
            return;
        };
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    }
}

/// `cco ui --config DIR [--run RUN] [--addr ADDR]`.
pub async fn run(args: UiArgs) -> ExitCode {
    crate::commands::init_tracing(&crate::cli::OutputArgs::default());
    let config = match crate::commands::load_config(&args.config, &WorkspaceArg::default()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let logs = &config.config.log_directory;
    let run_dir = match &args.run {
        Some(run) => {
            let path = PathBuf::from(run);
            if path.is_absolute() || run.contains('/') {
                path
            } else {
                logs.join(run)
            }
        }
        None => match Orchestrator::latest_run(logs) {
            Some(dir) => dir,
            None => {
                eprintln!("cco: no run found in {}", logs.display());
                return ExitCode::from(EXIT_FAILED);
            }
        },
    };
    if let Err(error) = Orchestrator::read_run(&run_dir) {
        eprintln!("cco: {}: {error}", run_dir.display());
        return ExitCode::from(EXIT_CONFIG);
    }
    let mut dashboard = Dashboard::folder(&run_dir, &config);
    // A run started with -w works in the workspace recorded in its folder.
    if let Ok(recorded) = std::fs::read_to_string(run_dir.join(crate::commands::WORKSPACE_RECORD)) {
        dashboard = dashboard.workspace(recorded.trim());
    }
    let serving = match dashboard.serve(args.addr).await {
        Ok(serving) => serving,
        Err(error) => {
            eprintln!("cco: {error}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let stop = stop_signal();
    eprintln!("cco: serving {} (Ctrl-C stops)", run_dir.display());
    announce(&serving);
    stop.await;
    serving.stop().await;
    ExitCode::SUCCESS
}
