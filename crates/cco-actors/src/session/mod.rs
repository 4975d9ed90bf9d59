//! One agent "turn": a prompt run to completion by a claude process, with restarts.
//!
//! [`spawn_turn`] starts the process-owner task. It owns the `SessionHandle`, forwards progress
//! to the owning actor through a callback, and handles everything that makes a turn survive:
//! - a crashed / idle-killed / transiently failing process is resumed (`--resume <id>`, same
//!   session) after an exponential backoff, up to the restart limit;
//! - a rate limit benches the credential until its reset time and resumes the same session on
//!   the next credential; when every credential is benched it pauses until the earliest reset;
//! - a wall-clock timeout resumes the session once with the "out of time" prompt.
//!
//! What follows each process is decided by a pure function ([`policy::next`]); the owner task
//! (`drive.rs`) performs it.
//!
//! The owning actor keeps the returned [`TurnGuard`]. If the actor stops or fails, its state
//! (and with it the guard) is dropped, the control channel closes, and this task terminates
//! the whole process group itself: a dead actor never leaves a claude process behind.

mod drive;
mod policy;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cco_claude::{OutcomeKind, SessionOutcome};
use chrono::Utc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::board::Role;
use crate::context::RunContext;

/// Who runs a turn and where.
#[derive(Debug, Clone)]
pub(crate) struct AgentIdentity {
    pub(crate) id: String,
    pub(crate) role: Role,
    pub(crate) team: Option<String>,
    pub(crate) model: String,
    pub(crate) cwd: PathBuf,
    /// `CLAUDE_CONFIG_DIR` of this agent: stable across restarts so `--resume` finds the session.
    pub(crate) config_dir: PathBuf,
}

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct TurnRequest {
    pub(crate) prompt: String,
    /// Continue this session instead of starting a new one.
    pub(crate) resume: Option<String>,
    pub(crate) task_key: Option<String>,
    pub(crate) wall_timeout: Option<Duration>,
    /// On a wall-clock timeout, resume once with this prompt before giving up.
    pub(crate) timeout_prompt: Option<String>,
    /// Bring this worktree to the tip of this branch before the turn (planners read the code
    /// as merged so far; they never commit in their worktree).
    pub(crate) sync_before: Option<(PathBuf, String)>,
    /// With `resume`: fork that session (`--fork-session`) instead of continuing it, so several
    /// turns (e.g. reviews) can start from one planner's context at once.
    pub(crate) fork: bool,
    /// The first prompt when `resume` is set (e.g. "continue where you left off"); `prompt`
    /// is kept for a fresh start if the session cannot be resumed.
    pub(crate) resume_prompt: Option<String>,
}

/// Progress of a turn, as the owning actor sees it.
#[derive(Debug, Clone)]
pub(crate) enum TurnUpdate {
    Started {
        pid: u32,
    },
    Session(String),
    Tool(String),
    Paused {
        until: chrono::DateTime<Utc>,
    },
    /// The process ended (the turn may go on with another).
    Exited,
}

/// How a turn ended.
#[derive(Debug, Clone)]
pub(crate) enum TurnEnd {
    Done {
        result_text: String,
        session_id: Option<String>,
    },
    Failed {
        reason: String,
        session_id: Option<String>,
    },
    Cancelled,
}

/// Held by the owning actor; dropping it ends the turn and kills the process group.
pub(crate) struct TurnGuard {
    cancel: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TurnGuard {
    /// Ends the turn gracefully (SIGTERM, grace, SIGKILL) and waits until the process is gone.
    pub(crate) async fn shutdown(mut self) {
        self.cancel.take();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TurnGuard {
    fn drop(&mut self) {
        // Closing the control channel is enough: the owner task kills the group itself.
        self.cancel.take();
    }
}

/// Starts a turn. `notify` receives progress; `finish` is called exactly once at the end
/// (also on cancellation). Both run on the owner task: keep them cheap (send a message).
pub(crate) fn spawn_turn(
    ctx: Arc<RunContext>,
    who: AgentIdentity,
    request: TurnRequest,
    notify: impl Fn(TurnUpdate) + Send + Sync + 'static,
    finish: impl FnOnce(TurnEnd) + Send + 'static,
) -> TurnGuard {
    spawn_turn_at(ctx, who, request, None, notify, finish)
}

/// [`spawn_turn`] whose processes run where `place` puts them (a worker of a cluster, see
/// [`crate::cluster`]); `None`: here.
pub(crate) fn spawn_turn_at(
    ctx: Arc<RunContext>,
    who: AgentIdentity,
    request: TurnRequest,
    place: Option<Box<dyn crate::cluster::PlacedTurn>>,
    notify: impl Fn(TurnUpdate) + Send + Sync + 'static,
    finish: impl FnOnce(TurnEnd) + Send + 'static,
) -> TurnGuard {
    let (cancel_tx, cancel_rx) = oneshot::channel();
    // A root span: ractor propagates the sender's span into handlers, so the current span here
    // may be another agent's turn; each turn names its run instead.
    let span = tracing::info_span!(
        parent: None,
        "turn",
        run = %ctx.board.run_id(),
        role = who.role.as_str(),
        agent = %who.id,
        task = request.task_key.as_deref().unwrap_or("-")
    );
    let task = tokio::spawn(
        async move {
            let end = drive::drive_turn(&ctx, &who, request, place, &notify, cancel_rx).await;
            finish(end);
        }
        .instrument(span),
    );
    TurnGuard {
        cancel: Some(cancel_tx),
        task: Some(task),
    }
}

/// The prompt that resumes an interrupted session. The second line names the task (or the
/// agent) so scripted test doubles can tell resumes apart, as with the role prompts.
pub(crate) fn resume_prompt(reason: &str, reference: &str) -> String {
    format!(
        "[cco:resume]\n[cco-ref:resume/{reference}]\n{reason} Continue the same task from where you left off. \
         Commit your work with git before you finish."
    )
}

/// A one-line description of an outcome, for logs and events.
pub(crate) fn describe(outcome: &SessionOutcome) -> String {
    match &outcome.kind {
        OutcomeKind::Success => "success".into(),
        OutcomeKind::MaxTurns => "max turns reached".into(),
        OutcomeKind::RateLimited { resets_at } => match resets_at {
            Some(t) => format!("rate limited until {t}"),
            None => "rate limited".into(),
        },
        OutcomeKind::ApiError { status, message } => format!("api error {status:?}: {message}"),
        OutcomeKind::Error { message } => format!("error: {message}"),
        OutcomeKind::ResumeNotFound => "session not found for resume".into(),
        OutcomeKind::Killed { reason } => format!("killed ({reason:?})"),
        OutcomeKind::Crashed { message } => format!("crashed: {message}"),
    }
}

/// Board bookkeeping shared by the Director and the leads for their own sessions: the pid,
/// the session id (kept in `session_id` too), the last tool, a rate-limit pause.
pub(crate) fn apply_turn_update(
    ctx: &RunContext,
    agent: &str,
    update: TurnUpdate,
    session_id: &mut Option<String>,
) {
    let board = &ctx.board;
    match update {
        TurnUpdate::Started { pid, .. } => board.update_agent(agent, |a| a.pid = Some(pid)),
        TurnUpdate::Session(id) => {
            *session_id = Some(id.clone());
            board.update_agent(agent, |a| a.session_id = Some(id));
        }
        TurnUpdate::Tool(tool) => board.update_agent(agent, |a| a.last_tool = Some(tool)),
        TurnUpdate::Paused { until } => board.set_agent_state(
            agent,
            format!(
                "paused: rate limited until {}",
                until.format("%H:%M:%S UTC")
            ),
        ),
        TurnUpdate::Exited => board.update_agent(agent, |a| a.pid = None),
    }
}
