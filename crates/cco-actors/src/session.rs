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
//! The owning actor keeps the returned [`TurnGuard`]. If the actor stops or fails, its state
//! (and with it the guard) is dropped, the control channel closes, and this task terminates
//! the whole process group itself: a dead actor never leaves a claude process behind.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cco_claude::events::{ContentBlock, SystemEvent};
use cco_claude::{
    ClaudeSession, KillReason, OutcomeKind, SessionOutcome, SessionUpdate, StreamEvent,
};
use chrono::Utc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{info, warn, Instrument};

use crate::board::Role;
use crate::context::RunContext;
use crate::events::RunEvent;
use crate::keys::DEFAULT_BENCH;
use crate::restart::backoff;

/// Who runs a turn and where.
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    pub id: String,
    pub role: Role,
    pub team: Option<String>,
    pub model: String,
    pub cwd: PathBuf,
    /// `CLAUDE_CONFIG_DIR` of this agent: stable across restarts so `--resume` finds the session.
    pub config_dir: PathBuf,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    pub prompt: String,
    /// Continue this session instead of starting a new one.
    pub resume: Option<String>,
    pub task_key: Option<String>,
    pub wall_timeout: Option<Duration>,
    /// On a wall-clock timeout, resume once with this prompt before giving up.
    pub timeout_prompt: Option<String>,
    /// Bring this worktree to the tip of this branch before the turn (planners read the code
    /// as merged so far; they never commit in their worktree).
    pub sync_before: Option<(PathBuf, String)>,
    /// With `resume`: fork that session (`--fork-session`) instead of continuing it, so several
    /// turns (e.g. reviews) can start from one planner's context at once.
    pub fork: bool,
    /// The first prompt when `resume` is set (e.g. "continue where you left off"); `prompt`
    /// is kept for a fresh start if the session cannot be resumed.
    pub resume_prompt: Option<String>,
}

/// Progress of a turn, as the owning actor sees it.
#[derive(Debug, Clone)]
pub enum TurnUpdate {
    Started { pid: u32, resume: bool },
    Session(String),
    Tool(String),
    Paused { until: chrono::DateTime<Utc> },
    Exited { outcome: String },
}

/// How a turn ended.
#[derive(Debug, Clone)]
pub enum TurnEnd {
    Done {
        result_text: String,
        session_id: Option<String>,
        attempts: u32,
    },
    Failed {
        reason: String,
        session_id: Option<String>,
        attempts: u32,
    },
    Cancelled,
}

/// Held by the owning actor; dropping it ends the turn and kills the process group.
pub struct TurnGuard {
    cancel: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TurnGuard {
    /// Ends the turn gracefully (SIGTERM, grace, SIGKILL) and waits until the process is gone.
    pub async fn shutdown(mut self) {
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
pub fn spawn_turn(
    ctx: Arc<RunContext>,
    who: AgentIdentity,
    request: TurnRequest,
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
            let end = drive_turn(&ctx, &who, request, &notify, cancel_rx).await;
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
pub fn resume_prompt(reason: &str, reference: &str) -> String {
    format!(
        "[cco:resume]\n[cco-ref:resume/{reference}]\n{reason} Continue the same task from where you left off. \
         Commit your work with git before you finish."
    )
}

fn resume_reference<'a>(request: &'a TurnRequest, who: &'a AgentIdentity) -> &'a str {
    request
        .task_key
        .as_deref()
        .and_then(|k| k.rsplit('/').next())
        .unwrap_or(&who.id)
}

const CRASHED: &str = "Your previous process was interrupted before it finished.";
const RATE_LIMITED: &str = "The API rate limit interrupted you.";

async fn drive_turn(
    ctx: &RunContext,
    who: &AgentIdentity,
    request: TurnRequest,
    notify: &(impl Fn(TurnUpdate) + Send + Sync),
    mut cancel: oneshot::Receiver<()>,
) -> TurnEnd {
    let config = &ctx.config.config;
    if let Some((worktree, branch)) = &request.sync_before {
        if let Err(error) = ctx.git.sync_worktree(worktree.clone(), branch).await {
            warn!(%error, "could not bring the planner's worktree up to date");
        }
    }
    let max_restarts = config.max_task_restarts;
    let mut resume = request.resume.clone();
    let mut prompt = match (&request.resume, &request.resume_prompt) {
        (Some(_), Some(resume_prompt)) => resume_prompt.clone(),
        _ => request.prompt.clone(),
    };
    let mut session_id = resume.clone();
    let mut failures: u32 = 0;
    let mut attempts: u32 = 0;
    let mut used_timeout_resume = false;
    let mut fork_pending = request.fork && resume.is_some();

    loop {
        // 1. A credential, or a pause until one is back.
        let credential = loop {
            match ctx.keys.acquire(Utc::now()) {
                Ok(credential) => break credential,
                Err(all) => {
                    notify(TurnUpdate::Paused { until: all.until });
                    ctx.board.events().emit(RunEvent::Paused {
                        agent: who.id.clone(),
                        until: all.until,
                    });
                    let wait = (all.until - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                    tokio::select! {
                        _ = tokio::time::sleep(wait + Duration::from_millis(10)) => {}
                        _ = &mut cancel => return TurnEnd::Cancelled,
                    }
                }
            }
        };

        // 2. The process.
        let new_session = if resume.is_none() || fork_pending {
            Some(uuid::Uuid::new_v4().to_string())
        } else {
            None
        };
        // Only the first process forks; restarts resume the fork itself.
        fork_pending = false;
        let spec = ctx.session_spec(
            who,
            &request,
            &prompt,
            resume.as_deref(),
            new_session.as_deref(),
            &credential,
        );
        attempts += 1;
        let (handle, mut updates) = match ClaudeSession::spawn(spec) {
            Ok(spawned) => spawned,
            Err(error) => {
                return TurnEnd::Failed {
                    reason: format!("could not start claude: {error}"),
                    session_id,
                    attempts,
                };
            }
        };
        if let Some(id) = new_session.clone() {
            // Known before the first event (we chose it): journaled at once, so a crash of cco
            // right now still resumes this session.
            notify(TurnUpdate::Session(id.clone()));
            session_id = Some(id);
        }
        let outcome = loop {
            tokio::select! {
                update = updates.recv() => match update {
                    Some(SessionUpdate::Finished(outcome)) => break outcome,
                    Some(update) => forward(ctx, who, update, resume.is_some(), notify),
                    None => break crashed_without_outcome(),
                },
                _ = &mut cancel => {
                    stop_process(ctx, &handle, &mut updates).await;
                    return TurnEnd::Cancelled;
                }
                _ = ctx.force_notify.notified() => {
                    stop_process(ctx, &handle, &mut updates).await;
                    return TurnEnd::Cancelled;
                }
            }
        };
        drop(handle);
        ctx.board
            .add_cost(&who.id, request.task_key.as_deref(), outcome.total_cost_usd);
        if let Some(id) = outcome.session_id.clone() {
            session_id = Some(id);
        }
        notify(TurnUpdate::Exited {
            outcome: describe(&outcome),
        });
        ctx.board.events().emit(RunEvent::ProcessExited {
            agent: who.id.clone(),
            outcome: describe(&outcome),
        });

        // 3. What next.
        match outcome.kind {
            OutcomeKind::Success => {
                return TurnEnd::Done {
                    result_text: outcome.result_text.unwrap_or_default(),
                    session_id,
                    attempts,
                };
            }
            OutcomeKind::RateLimited { resets_at } => {
                let until = resets_at
                    .filter(|t| *t > Utc::now())
                    .unwrap_or_else(|| Utc::now() + DEFAULT_BENCH);
                warn!(key = credential.name(), %until, "rate limited: benching credential, resuming the same session");
                ctx.keys.bench(credential.name(), until);
                ctx.board.events().emit(RunEvent::KeyBenched {
                    key: credential.name().to_string(),
                    until,
                });
                if session_id.is_some() {
                    resume = session_id.clone();
                    prompt = resume_prompt(RATE_LIMITED, resume_reference(&request, who));
                }
            }
            OutcomeKind::ResumeNotFound => {
                failures += 1;
                if failures > max_restarts {
                    return TurnEnd::Failed {
                        reason: "session could not be resumed".into(),
                        session_id,
                        attempts,
                    };
                }
                warn!(session = ?resume, "session not found: starting the task afresh");
                resume = None;
                session_id = None;
                prompt = request.prompt.clone();
            }
            OutcomeKind::Killed {
                reason: KillReason::WallTimeout,
            } => match (&request.timeout_prompt, used_timeout_resume, &session_id) {
                (Some(timeout_prompt), false, Some(id)) => {
                    used_timeout_resume = true;
                    info!("task timed out: resuming once to commit what works");
                    resume = Some(id.clone());
                    prompt = timeout_prompt.clone();
                }
                _ => {
                    return TurnEnd::Failed {
                        reason: "timed out".into(),
                        session_id,
                        attempts,
                    };
                }
            },
            ref kind if kind.is_retryable() => {
                failures += 1;
                if failures > max_restarts {
                    return TurnEnd::Failed {
                        reason: format!(
                            "gave up after {failures} failed runs; last: {}",
                            describe(&outcome)
                        ),
                        session_id,
                        attempts,
                    };
                }
                let delay = backoff(
                    config.restart_backoff(),
                    Duration::from_secs(60),
                    failures - 1,
                );
                warn!(failures, ?delay, outcome = %describe(&outcome), "claude process failed: resuming after backoff");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = &mut cancel => return TurnEnd::Cancelled,
                }
                if session_id.is_some() {
                    resume = session_id.clone();
                    prompt = resume_prompt(CRASHED, resume_reference(&request, who));
                } else {
                    prompt = request.prompt.clone();
                }
            }
            _ => {
                return TurnEnd::Failed {
                    reason: describe(&outcome),
                    session_id,
                    attempts,
                };
            }
        }
    }
}

/// Terminates the process (SIGKILL at once when the shutdown is forced) and waits until the
/// driver reports it gone; a force arriving during the grace period escalates to SIGKILL.
async fn stop_process(
    ctx: &RunContext,
    handle: &cco_claude::SessionHandle,
    updates: &mut tokio::sync::mpsc::UnboundedReceiver<SessionUpdate>,
) {
    if ctx.is_forced() {
        handle.kill();
    } else {
        handle.terminate();
    }
    loop {
        tokio::select! {
            update = updates.recv() => match update {
                Some(SessionUpdate::Finished(_)) | None => return,
                Some(_) => {}
            },
            _ = ctx.force_notify.notified() => handle.kill(),
        }
    }
}

fn forward(
    ctx: &RunContext,
    who: &AgentIdentity,
    update: SessionUpdate,
    resume: bool,
    notify: &(impl Fn(TurnUpdate) + Send + Sync),
) {
    match update {
        SessionUpdate::Started { pid } => {
            ctx.board.events().emit(RunEvent::ProcessStarted {
                agent: who.id.clone(),
                pid,
                resume,
            });
            notify(TurnUpdate::Started { pid, resume });
        }
        SessionUpdate::Event(event) => match *event {
            StreamEvent::System(SystemEvent::Init(ref init)) => {
                if let Some(id) = &init.session_id {
                    notify(TurnUpdate::Session(id.clone()));
                }
            }
            StreamEvent::Assistant(ref assistant) => {
                for block in &assistant.message.content {
                    match block {
                        ContentBlock::ToolUse { name, .. } => {
                            ctx.board.events().emit(RunEvent::ToolUsed {
                                agent: who.id.clone(),
                                tool: name.clone(),
                            });
                            notify(TurnUpdate::Tool(name.clone()));
                        }
                        ContentBlock::Text { text } if !text.trim().is_empty() => {
                            let text: String = text.chars().take(2000).collect();
                            let text = ctx.redactor.redact(&text).into_owned();
                            ctx.board.events().emit(RunEvent::AgentOutput {
                                agent: who.id.clone(),
                                text,
                            });
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        },
        SessionUpdate::Malformed { line_no, error, .. } => {
            warn!(line_no, %error, "malformed stream-json line skipped");
        }
        SessionUpdate::Stderr(line) => {
            tracing::debug!(stderr = %ctx.redactor.redact(&line), "claude stderr");
        }
        SessionUpdate::Finished(_) => {}
    }
}

fn crashed_without_outcome() -> SessionOutcome {
    SessionOutcome::without_result("the session driver stopped without an outcome")
}

/// A one-line description of an outcome, for logs and events.
pub fn describe(outcome: &SessionOutcome) -> String {
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
