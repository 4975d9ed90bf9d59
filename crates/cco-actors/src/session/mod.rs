//! One agent "turn": a prompt run to completion by a claude process, with restarts.
//!
//! [`spawn_turn`] starts the process-owner task. It owns the `SessionHandle`, forwards progress
//! to the owning actor through a callback, and handles everything that makes a turn survive:
//! - a crashed / idle-killed process is resumed (`--resume <id>`, same session) after an
//!   exponential backoff, up to the restart limit;
//! - the first sign of a rate limit (a 429 `api_retry`, a `rejected` rate limit) stops the
//!   process, benches the credential until its reset and resumes the same session on the next
//!   credential at once; when every credential is benched new processes wait for the earliest
//!   reset;
//! - an unavailable API (529, 5xx, connection errors) is resumed after its own backoff and
//!   budget, never benches a key, and feeds the run's circuit breaker;
//! - a wall-clock timeout or the tool-use cap resumes the session once with the timeout prompt.
//!
//! Every prompt a follow-up needs comes from the turn's [`Duty`] (a planner is never told to
//! commit, a worker is told cco commits its leftovers) and the cause of the interruption.
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

use cco_protocol::{Duty, Identity, PlanKind, ResumeCause, TaskSpec};
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
    /// The branch its worktree holds (a worker's lane branch; the target a lead plans on).
    pub(crate) branch: String,
    /// The branch its work is merged into (a worker's lead's target; the base branch).
    pub(crate) target: String,
}

impl AgentIdentity {
    /// The agent as its prompts name it (flat mode's team has no name for agents).
    pub(crate) fn prompt_identity(&self) -> Identity {
        Identity {
            role: self.role,
            agent_id: self.id.clone(),
            team: self
                .team
                .clone()
                .filter(|t| t != crate::FLAT_TEAM)
                .unwrap_or_default(),
            branch: self.branch.clone(),
            base_branch: self.target.clone(),
            worktree: self.cwd.display().to_string(),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct TurnRequest {
    pub(crate) prompt: String,
    /// Continue this session instead of starting a new one.
    pub(crate) resume: Option<String>,
    pub(crate) task_key: Option<String>,
    pub(crate) wall_timeout: Option<Duration>,
    /// Bring this worktree to the tip of this branch before the turn (planners read the code
    /// as merged so far; they never commit in their worktree).
    pub(crate) sync_before: Option<(PathBuf, String)>,
    /// With `resume`: fork that session (`--fork-session`) instead of continuing it, so several
    /// turns (e.g. reviews) can start from one planner's context at once.
    pub(crate) fork: bool,
    /// What the agent does in this turn: decides the prompts of its follow-ups (a resume after
    /// an interruption, the one resume after a timeout).
    pub(crate) duty: Duty,
    /// The task the turn is about, if any (named in the follow-ups).
    pub(crate) task: Option<TaskSpec>,
    /// The document a planner or reviewer answers with. With structured output its JSON
    /// Schema goes to `--json-schema` and the prompts ask for the `StructuredOutput` tool.
    pub(crate) document: Option<PlanKind>,
    /// With `resume`: the session was interrupted before this turn (cco restarted): its first
    /// process gets the resume prompt for this cause; `prompt` is kept for a fresh start if
    /// the session cannot be resumed.
    pub(crate) interrupted: Option<ResumeCause>,
}

impl TurnRequest {
    /// A turn running `prompt` for `duty`, with everything else off.
    pub(crate) fn new(prompt: String, duty: Duty) -> TurnRequest {
        TurnRequest {
            prompt,
            resume: None,
            task_key: None,
            wall_timeout: None,
            sync_before: None,
            fork: false,
            duty,
            task: None,
            document: None,
            interrupted: None,
        }
    }
}

/// Progress of a turn, as the owning actor sees it.
#[derive(Debug, Clone)]
pub(crate) enum TurnUpdate {
    Started {
        pid: u32,
        /// The credential the process runs on (its name).
        credential: String,
    },
    Session(String),
    Tool(String),
    /// New processes are held back until `until` (every credential rate limited, or the API
    /// overloaded).
    Paused {
        until: chrono::DateTime<Utc>,
        cause: crate::board::PauseCause,
    },
    /// The process ended (the turn may go on with another).
    Exited,
}

/// Why a turn failed, as a type: what follows depends on it, not on the reason's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailCause {
    /// The agent or its process failed (crashes, timeouts, errors beyond the limits).
    Agent,
    /// Only the API was unavailable (529, 5xx, connection errors), longer than the turn's
    /// budget for it: not the task's fault.
    ApiUnavailable,
    /// The process could not be started at all.
    Spawn,
}

/// How a turn ended.
#[derive(Debug, Clone)]
pub(crate) enum TurnEnd {
    Done {
        result_text: String,
        /// `structured_output` of the result (a run with `--json-schema`).
        structured: Option<serde_json::Value>,
        session_id: Option<String>,
    },
    Failed {
        reason: String,
        cause: FailCause,
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
        TurnUpdate::Started { pid, credential } => {
            let paused = board
                .agent(agent)
                .is_some_and(|a| a.state.starts_with("paused"));
            board.update_agent(agent, |a| {
                a.pid = Some(pid);
                a.credential = Some(credential);
            });
            if paused {
                board.set_agent_state(agent, "running claude");
            }
        }
        TurnUpdate::Session(id) => {
            *session_id = Some(id.clone());
            board.update_agent(agent, |a| a.session_id = Some(id));
        }
        TurnUpdate::Tool(tool) => board.update_agent(agent, |a| a.last_tool = Some(tool)),
        TurnUpdate::Paused { until, cause } => {
            let until = until.format("%H:%M:%S UTC");
            board.set_agent_state(
                agent,
                match cause {
                    crate::board::PauseCause::RateLimited => {
                        format!("paused: rate limited until {until}")
                    }
                    crate::board::PauseCause::ApiOverloaded => {
                        format!("paused: API overloaded until {until}")
                    }
                },
            )
        }
        TurnUpdate::Exited => board.update_agent(agent, |a| a.pid = None),
    }
}
