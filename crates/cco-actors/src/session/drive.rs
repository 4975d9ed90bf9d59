//! The process-owner task of a turn: runs claude processes until [`policy::next`] says the
//! turn is over, forwarding progress; cancellation (the guard dropped or a forced stop) ends
//! the process group and the turn.

use std::time::{Duration, Instant};

use cco_claude::events::{ContentBlock, SystemEvent};
use cco_claude::{ApiSignal, ClaudeSession, SessionOutcome, SessionUpdate, StreamEvent};
use cco_protocol::AnswerFormat;
use chrono::Utc;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::policy::{self, Next, Restart, Retries, Stopped, TurnPolicy, Why};
use super::{AgentIdentity, FailCause, TurnEnd, TurnRequest, TurnUpdate};
use crate::board::PauseCause;
use crate::cluster::{PlaceError, PlacedTurn, ProcessControl, Spawned};
use crate::context::RunContext;
use crate::events::RunEvent;
use crate::keys::Credential;
use crate::prompts;

/// Longest backoff between two failed processes of one turn.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The limits of a turn from the run's config.
fn turn_policy(ctx: &RunContext) -> TurnPolicy {
    let config = &ctx.config.config;
    TurnPolicy {
        max_restarts: config.max_task_restarts,
        restart_backoff: config.restart_backoff(),
        max_backoff: MAX_BACKOFF,
        timeout_resume: true,
        max_api_retries: config.max_api_retries,
        api_backoff: config.api_retry_backoff(),
        max_api_backoff: config.max_api_retry_backoff(),
        min_bench: config.min_key_bench(),
    }
}

/// How this turn's planner or reviewer answers (workers owe no document).
fn answer_format(ctx: &RunContext, request: &TurnRequest) -> AnswerFormat {
    match request.document {
        Some(_) => ctx.answer_format(),
        None => AnswerFormat::Text,
    }
}

pub(super) async fn drive_turn(
    ctx: &RunContext,
    who: &AgentIdentity,
    request: TurnRequest,
    mut place: Option<Box<dyn PlacedTurn>>,
    notify: &(impl Fn(TurnUpdate) + Send + Sync),
    mut cancel: oneshot::Receiver<()>,
) -> TurnEnd {
    if let Some((worktree, branch)) = &request.sync_before {
        if let Err(error) = ctx.git.sync_worktree(worktree.clone(), branch).await {
            warn!(%error, "could not bring the planner's worktree up to date");
        }
    }
    let policy = turn_policy(ctx);
    let answer = answer_format(ctx, &request);
    let task = request.task.as_ref();
    let mut retries = Retries::default();
    let mut resume = request.resume.clone();
    let mut prompt = match (&request.resume, request.interrupted) {
        (Some(_), Some(cause)) => prompts::resume(who, request.duty, cause, task, answer),
        _ => request.prompt.clone(),
    };
    let mut session_id = resume.clone();
    let mut fork_pending = request.fork && resume.is_some();

    loop {
        // 1. A credential, or a pause until one is back (and the API takes new processes).
        let Some(credential) = admit(ctx, who, notify, &mut cancel).await else {
            return TurnEnd::Cancelled;
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
        let spawned = match place.as_mut() {
            None => ClaudeSession::spawn(spec)
                .map(|(handle, updates)| Spawned {
                    local_pid: Some(handle.pid()),
                    control: Box::new(handle),
                    updates,
                })
                .map_err(|error| PlaceError::Failed(format!("could not start claude: {error}"))),
            // A cluster's place (see `crate::cluster`): possibly on another host.
            Some(place) => tokio::select! {
                spawned = place.spawn(spec) => spawned,
                _ = &mut cancel => return TurnEnd::Cancelled,
            },
        };
        let started = Started {
            resume: resume.is_some(),
            credential: credential.name().to_string(),
        };
        let mut stopped: Option<Stopped> = None;
        let outcome = match spawned {
            Err(PlaceError::Failed(reason)) => {
                return TurnEnd::Failed {
                    reason,
                    cause: FailCause::Spawn,
                    session_id,
                };
            }
            // The host was lost or is full: judged as a crashed process (resumed elsewhere).
            Err(PlaceError::Lost(why)) => {
                SessionOutcome::without_result(format!("node lost: {why}"))
            }
            Ok(Spawned {
                control: handle,
                mut updates,
                local_pid,
            }) => {
                // A process here is journaled until it is gone, so a cco that dies meanwhile
                // has it ended by the next (a node ends its own when this cco goes).
                let process =
                    local_pid.map(|pid| Journaled::new(ctx, who, request.task_key.as_deref(), pid));
                if let Some(id) = new_session.clone() {
                    // Known before the first event (we chose it): journaled at once, so a crash
                    // of cco right now still resumes this session.
                    notify(TurnUpdate::Session(id.clone()));
                    session_id = Some(id);
                }
                let mut tool_uses = 0u64;
                let outcome = loop {
                    tokio::select! {
                        update = updates.recv() => match update {
                            Some(SessionUpdate::Finished(outcome)) => break outcome,
                            Some(update) => {
                                if stopped.is_none() {
                                    stopped = react(ctx, who, &started.credential, &update, &mut tool_uses);
                                    if stopped.is_some() {
                                        // Graceful (SIGTERM, grace, SIGKILL): the session stays
                                        // resumable.
                                        handle.terminate();
                                    }
                                }
                                forward(ctx, who, update, &started, notify)
                            }
                            None => break crashed_without_outcome(),
                        },
                        _ = &mut cancel => {
                            stop_process(ctx, &*handle, &mut updates).await;
                            return TurnEnd::Cancelled;
                        }
                        _ = ctx.forced() => {
                            stop_process(ctx, &*handle, &mut updates).await;
                            return TurnEnd::Cancelled;
                        }
                    }
                };
                drop(handle);
                drop(process);
                outcome
            }
        };
        ctx.board
            .add_cost(&who.id, request.task_key.as_deref(), outcome.total_cost_usd);
        if let Some(id) = outcome.session_id.clone() {
            session_id = Some(id);
        }
        notify(TurnUpdate::Exited);
        ctx.board.events().emit(RunEvent::ProcessExited {
            agent: who.id.clone(),
            outcome: outcome.kind.to_string(),
        });

        // 3. What next. A turn that ran on another host brings its work back first; losing
        // the host then counts as a crash of the process.
        let mut outcome = outcome;
        let next = loop {
            let next = policy::next(
                &policy,
                &mut retries,
                &outcome,
                stopped,
                session_id.is_some(),
                Utc::now(),
            );
            let collected = match (&next, place.as_mut()) {
                (Next::Done | Next::Fail { .. }, Some(place)) => tokio::select! {
                    collected = place.collect() => collected,
                    _ = &mut cancel => return TurnEnd::Cancelled,
                },
                _ => Ok(()),
            };
            match (next, collected) {
                (Next::Done, Err(PlaceError::Lost(why))) => {
                    warn!(%why, "the turn's work could not be brought back: resuming elsewhere");
                    outcome = SessionOutcome::without_result(format!(
                        "node lost before the turn's work came back: {why}"
                    ));
                    stopped = None;
                }
                (Next::Done, Err(PlaceError::Failed(reason))) => {
                    return TurnEnd::Failed {
                        reason,
                        cause: FailCause::Agent,
                        session_id,
                    };
                }
                (next, _) => break next,
            }
        };
        let (wait, restart) = match next {
            Next::Done => {
                return TurnEnd::Done {
                    result_text: outcome.result_text.unwrap_or_default(),
                    structured: outcome.structured_output,
                    session_id,
                };
            }
            Next::Fail { reason, cause } => {
                return TurnEnd::Failed {
                    reason,
                    cause,
                    session_id,
                };
            }
            Next::Again {
                wait,
                restart,
                bench,
                api_unavailable,
            } => {
                if let Some(until) = bench {
                    warn!(key = credential.name(), %until, "rate limited: benching credential, resuming the same session");
                    ctx.keys.bench(credential.name(), until);
                    ctx.show_credentials();
                    ctx.board.events().emit(RunEvent::KeyBenched {
                        key: credential.name().to_string(),
                        until,
                    });
                }
                if api_unavailable {
                    api_unavailable_seen(ctx, who);
                }
                (wait, restart)
            }
        };
        if !wait.is_zero() {
            let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            warn!(failures = retries.failures, api_failures = retries.api_failures, wait_ms, outcome = %outcome.kind, "claude process failed: resuming after backoff");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = &mut cancel => return TurnEnd::Cancelled,
            }
        }
        match restart {
            Restart::Resume(why) => {
                resume = session_id.clone();
                prompt = match why {
                    Why::Interrupted(cause) => {
                        prompts::resume(who, request.duty, cause, task, answer)
                    }
                    Why::OutOfTime => {
                        info!("out of time: resuming once to finish what works");
                        prompts::timeout(who, request.duty, task, answer)
                    }
                };
            }
            Restart::Fresh => {
                if retries.failures > 0 && session_id.is_some() {
                    let session = resume.as_deref().unwrap_or("-");
                    warn!(session, "session not found: starting the task afresh");
                }
                resume = None;
                session_id = None;
                prompt = request.prompt.clone();
            }
            Restart::Same => {}
        }
    }
}

/// Waits until a new process may start and returns its credential (`None`: the turn was
/// cancelled meanwhile). New processes wait while the run's circuit breaker holds them (the
/// API is overloaded), while every credential is rate limited (until the earliest reset), and
/// for good once `maxTotalToolUses` is reached (the Director then ends the run).
async fn admit(
    ctx: &RunContext,
    who: &AgentIdentity,
    notify: &(impl Fn(TurnUpdate) + Send + Sync),
    cancel: &mut oneshot::Receiver<()>,
) -> Option<Credential> {
    loop {
        if ctx.tool_uses_exhausted() {
            ctx.board
                .set_agent_state(&who.id, "waiting: maxTotalToolUses reached");
            tokio::select! {
                _ = &mut *cancel => return None,
                _ = ctx.forced() => return None,
            }
        }
        let now = Utc::now();
        let (cause, until) = match ctx.breaker.holding(Instant::now()) {
            Some(until) => (PauseCause::ApiOverloaded, wall_time(until)),
            None => match ctx.keys.acquire(now) {
                Ok(credential) => {
                    ctx.board.end_pause(now);
                    // Benches and warnings that ended are shown as such.
                    ctx.show_credentials();
                    return Some(credential);
                }
                Err(all) => (PauseCause::RateLimited, all.until),
            },
        };
        notify(TurnUpdate::Paused { until, cause });
        if ctx.board.set_pause(cause, until) && cause == PauseCause::RateLimited {
            warn!(%until, "every credential is rate limited: new claude processes wait for the earliest reset");
            ctx.board.events().emit(RunEvent::Paused {
                agent: who.id.clone(),
                until,
            });
        }
        let wait = (until - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait + Duration::from_millis(10)) => {}
            _ = &mut *cancel => return None,
        }
    }
}

/// The wall-clock time of a monotonic instant (for people and the journal).
fn wall_time(at: Instant) -> chrono::DateTime<Utc> {
    let left = at.saturating_duration_since(Instant::now());
    Utc::now() + chrono::Duration::from_std(left).unwrap_or_default()
}

/// What cco does about an update while the process runs: the first sign of a rate limit
/// stops it (the credential rests, the session resumes elsewhere at once); a quota warning
/// takes the credential out of admission; an unavailable API is reported to the breaker;
/// tool uses are counted against the caps. Returns why the process must stop, if it must.
fn react(
    ctx: &RunContext,
    who: &AgentIdentity,
    credential: &str,
    update: &SessionUpdate,
    tool_uses: &mut u64,
) -> Option<Stopped> {
    let now = Utc::now();
    if let Some(signal) = update.api_signal() {
        if signal.is_rate_limit_hit() {
            warn!(%credential, %signal, "rate limited: stopping the process to resume on another credential");
            return Some(Stopped::RateLimited {
                not_before: signal.not_before(now),
            });
        }
        if signal.is_api_unavailable() {
            tracing::info!(%signal, "the API is unavailable; the CLI retries");
            api_unavailable_seen(ctx, who);
        }
        if let ApiSignal::RateLimit(status) = &signal {
            if ctx.keys.observe(credential, status, now) {
                tracing::info!(%credential, %signal, "no headroom left: new processes prefer other credentials");
            }
            ctx.show_credentials();
        }
    }
    if let SessionUpdate::Event(event) = update {
        if let StreamEvent::Assistant(assistant) = event.as_ref() {
            let used = assistant
                .message
                .content
                .iter()
                .filter(|b| matches!(b, ContentBlock::ToolUse { .. }))
                .count() as u64;
            if used > 0 {
                *tool_uses += used;
                ctx.board.add_tool_uses(used);
                let cap = ctx.config.config.max_tool_uses_per_instance;
                if cap.is_some_and(|cap| *tool_uses >= u64::from(cap)) {
                    warn!(
                        tool_uses = *tool_uses,
                        "maxToolUsesPerInstance reached: ending the turn"
                    );
                    return Some(Stopped::ToolCap);
                }
            }
        }
    }
    None
}

/// An agent saw the API unavailable: the breaker may open (and hold new starts).
fn api_unavailable_seen(ctx: &RunContext, who: &AgentIdentity) {
    if let Some(opened) = ctx.breaker.record(&who.id, Instant::now()) {
        let until = wall_time(opened.until);
        warn!(agents = opened.agents, %until, "the API is overloaded: holding new claude processes");
        ctx.board.set_pause(PauseCause::ApiOverloaded, until);
        ctx.board.events().emit(RunEvent::ApiOverloaded {
            agents: opened.agents,
            until,
        });
    }
}

/// How the running process was started (for its events).
struct Started {
    resume: bool,
    credential: String,
}

/// Terminates the process (SIGKILL at once when the shutdown is forced) and waits until the
/// driver reports it gone; a force arriving during the grace period escalates to SIGKILL.
async fn stop_process(
    ctx: &RunContext,
    handle: &dyn ProcessControl,
    updates: &mut tokio::sync::mpsc::UnboundedReceiver<SessionUpdate>,
) {
    let mut killed = ctx.is_forced();
    if killed {
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
            _ = ctx.forced(), if !killed => {
                handle.kill();
                killed = true;
            }
        }
    }
}

fn forward(
    ctx: &RunContext,
    who: &AgentIdentity,
    update: SessionUpdate,
    started: &Started,
    notify: &(impl Fn(TurnUpdate) + Send + Sync),
) {
    if let Some(message) = update.warning() {
        // Written to the agent's log (an over-long line is dropped, never buffered).
        warn!(%message, "claude stream");
        ctx.board.events().emit(RunEvent::AgentWarning {
            agent: who.id.clone(),
            message,
        });
    }
    match update {
        SessionUpdate::Started { pid } => {
            ctx.board.events().emit(RunEvent::ProcessStarted {
                agent: who.id.clone(),
                pid,
                resume: started.resume,
                credential: Some(started.credential.clone()),
            });
            notify(TurnUpdate::Started {
                pid,
                credential: started.credential.clone(),
            });
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
        SessionUpdate::Malformed { .. } | SessionUpdate::Finished(_) => {}
        SessionUpdate::Stderr(line) => {
            tracing::debug!(stderr = %ctx.redactor.redact(&line), "claude stderr");
        }
    }
}

/// A claude process on the board's process list (and so in the journal) while it lives: it
/// is taken off when the driver reported it gone, or when the turn's task ends.
struct Journaled<'a> {
    ctx: &'a RunContext,
    pid: u32,
}

impl<'a> Journaled<'a> {
    fn new(ctx: &'a RunContext, who: &AgentIdentity, task: Option<&str>, pid: u32) -> Self {
        ctx.board.process_started(crate::board::ProcessRecord {
            agent: who.id.clone(),
            pid,
            // cco-claude starts claude as the leader of a process group of its own.
            pgid: pid,
            task: task.map(str::to_string),
            started_at: Utc::now(),
        });
        Journaled { ctx, pid }
    }
}

impl Drop for Journaled<'_> {
    fn drop(&mut self) {
        self.ctx.board.process_ended(self.pid);
    }
}

fn crashed_without_outcome() -> SessionOutcome {
    SessionOutcome::without_result("the session driver stopped without an outcome")
}
