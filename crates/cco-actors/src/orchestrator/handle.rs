//! [`OrchestratorHandle`]: control of a running orchestration.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use chrono::Utc;
use ractor::{ActorCell, ActorRef};
use tokio::sync::{broadcast, watch};

use super::summary::RunSummary;
use crate::board::StatusSnapshot;
use crate::context::RunContext;
use crate::director::DirectorMsg;
use crate::events::RunEvent;
use crate::outcome::RunOutcome;

/// How to stop (a closed set: a stop is graceful or forced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Stop taking tasks, SIGTERM every claude process group, wait the grace period, SIGKILL
    /// the rest, let the GitActor finish its operation in flight, persist state.
    Graceful,
    /// As graceful, but SIGKILL at once.
    Force,
}

pub(super) struct HandleInner {
    pub(super) ctx: Arc<RunContext>,
    pub(super) director: ActorRef<DirectorMsg>,
    pub(super) summary: watch::Receiver<Option<RunSummary>>,
    pub(super) stop_requests: AtomicU32,
    pub(super) warnings: Vec<String>,
}

/// Control of a running orchestration; cheap to clone.
#[derive(Clone)]
pub struct OrchestratorHandle {
    pub(super) inner: Arc<HandleInner>,
}

impl OrchestratorHandle {
    pub fn run_id(&self) -> &str {
        self.inner.ctx.board.run_id()
    }

    /// `<logDirectory>/<run id>`: logs, session transcripts, status dumps, summary.
    pub fn run_dir(&self) -> &Path {
        &self.inner.ctx.run_dir
    }

    /// Problems found while starting that did not stop it (e.g. a damaged journal replaced by
    /// the previous good one).
    pub fn warnings(&self) -> &[String] {
        &self.inner.warnings
    }

    pub fn base_branch(&self) -> &str {
        &self.inner.ctx.base_branch
    }

    /// The workspace the run works in (`<workspaceDirectory>`: the clone, worktrees, agents).
    pub fn workspace(&self) -> &Path {
        &self.inner.ctx.workspace
    }

    /// A snapshot of the supervision tree: every agent with role, state, pid, session, task,
    /// restarts and cost, plus task phases and totals.
    pub fn status(&self) -> StatusSnapshot {
        self.inner.ctx.board.snapshot()
    }

    /// What the GitActor is doing: the operation in flight, the queue, the operations done by
    /// kind (`None` when it does not answer, e.g. once the run has ended).
    pub async fn git_status(&self) -> Option<cco_git::GitStatus> {
        self.inner.ctx.git.status().await.ok()
    }

    /// Live events of the run.
    pub fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.inner.ctx.board.events().subscribe()
    }

    /// Stops the run. Idempotent; `Force` escalates a graceful stop already under way.
    pub fn shutdown(&self, mode: ShutdownMode) {
        self.stop(mode, None);
    }

    fn stop(&self, mode: ShutdownMode, signal: Option<i32>) {
        let force = mode == ShutdownMode::Force;
        if force {
            self.inner.ctx.force_stop();
        } else {
            self.inner.ctx.begin_stop();
        }
        let requested = if force {
            "forced shutdown requested"
        } else {
            "shutdown requested"
        };
        let reason = match signal.and_then(signal_name) {
            Some(name) => format!("{requested} ({name})"),
            None => requested.to_string(),
        };
        let _ = self.inner.director.send_message(DirectorMsg::Stop {
            reason,
            force,
            signal,
        });
    }

    /// For signal handlers: the first request stops gracefully, any later one forces.
    pub fn request_stop(&self) -> ShutdownMode {
        self.request_stop_for(None)
    }

    /// As [`request_stop`](Self::request_stop), for the signal `signal` (its number): the
    /// run's outcome is then [`RunOutcome::Stopped`] with that signal, so an application can
    /// exit with 128 + the signal's number.
    pub fn request_stop_for_signal(&self, signal: i32) -> ShutdownMode {
        self.request_stop_for(Some(signal))
    }

    fn request_stop_for(&self, signal: Option<i32>) -> ShutdownMode {
        let n = self.inner.stop_requests.fetch_add(1, Ordering::SeqCst);
        let mode = if n == 0 {
            ShutdownMode::Graceful
        } else {
            ShutdownMode::Force
        };
        self.stop(mode, signal);
        mode
    }

    /// Waits until the run has ended and its summary is written.
    pub async fn wait(&self) -> RunSummary {
        let mut rx = self.inner.summary.clone();
        loop {
            if let Some(summary) = rx.borrow_and_update().clone() {
                return summary;
            }
            if rx.changed().await.is_err() {
                let snapshot = self.status();
                let started_at = snapshot.started_at;
                let reason = "the run task ended without a summary".to_string();
                return RunSummary::new(
                    snapshot,
                    reason,
                    RunOutcome::Failed,
                    self.inner.ctx.base_branch.clone(),
                    started_at,
                );
            }
        }
    }

    /// True once the run has ended.
    pub fn is_finished(&self) -> bool {
        self.inner.summary.borrow().is_some()
    }

    /// Renders the supervision tree and writes it to `<run dir>/status-<timestamp>.txt`
    /// (what the binary does on SIGUSR1). Returns the text and the file.
    pub fn dump_status(&self) -> std::io::Result<(String, PathBuf)> {
        let text = self.status().render_tree();
        let path = self.run_dir().join(format!(
            "status-{}.txt",
            Utc::now().format("%Y%m%d-%H%M%S%.3f")
        ));
        crate::persist::write_atomic(&path, text.as_bytes())?;
        Ok((text, path))
    }

    /// Fault injection for tests and drills: kills the actor of `agent` (not its process
    /// directly). Its supervisor restarts it. Returns false for an unknown agent.
    pub fn kill_agent_actor(&self, agent: &str) -> bool {
        let cell: Option<ActorCell> = self.inner.ctx.cell(agent);
        match cell {
            Some(cell) => {
                cell.kill();
                true
            }
            None => false,
        }
    }
}

/// `SIGTERM` for 15, ... (`None` for a number that is no signal).
fn signal_name(signal: i32) -> Option<&'static str> {
    nix::sys::signal::Signal::try_from(signal)
        .ok()
        .map(|s| s.as_str())
}
