//! The process-owner task of a turn: runs claude processes until [`policy::next`] says the
//! turn is over, forwarding progress; cancellation (the guard dropped or a forced stop) ends
//! the process group and the turn.

use std::time::Duration;

use cco_claude::events::{ContentBlock, SystemEvent};
use cco_claude::{ClaudeSession, SessionOutcome, SessionUpdate, StreamEvent};
use chrono::Utc;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::policy::{self, Next, Restart, Retries, TurnPolicy, Why};
use super::{describe, resume_prompt, AgentIdentity, TurnEnd, TurnRequest, TurnUpdate};
use crate::cluster::{PlaceError, PlacedTurn, ProcessControl, Spawned};
use crate::context::RunContext;
use crate::events::RunEvent;

const CRASHED: &str = "Your previous process was interrupted before it finished.";
const RATE_LIMITED: &str = "The API rate limit interrupted you.";
/// Longest backoff between two failed processes of one turn.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

fn resume_reference<'a>(request: &'a TurnRequest, who: &'a AgentIdentity) -> &'a str {
    request
        .task_key
        .as_deref()
        .and_then(|k| k.rsplit('/').next())
        .unwrap_or(&who.id)
}

pub(super) async fn drive_turn(
    ctx: &RunContext,
    who: &AgentIdentity,
    request: TurnRequest,
    mut place: Option<Box<dyn PlacedTurn>>,
    notify: &(impl Fn(TurnUpdate) + Send + Sync),
    mut cancel: oneshot::Receiver<()>,
) -> TurnEnd {
    let config = &ctx.config.config;
    if let Some((worktree, branch)) = &request.sync_before {
        if let Err(error) = ctx.git.sync_worktree(worktree.clone(), branch).await {
            warn!(%error, "could not bring the planner's worktree up to date");
        }
    }
    let policy = TurnPolicy {
        max_restarts: config.max_task_restarts,
        restart_backoff: config.restart_backoff(),
        max_backoff: MAX_BACKOFF,
        has_timeout_prompt: request.timeout_prompt.is_some(),
    };
    let mut retries = Retries::default();
    let mut resume = request.resume.clone();
    let mut prompt = match (&request.resume, &request.resume_prompt) {
        (Some(_), Some(resume_prompt)) => resume_prompt.clone(),
        _ => request.prompt.clone(),
    };
    let mut session_id = resume.clone();
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
        let spawned = match place.as_mut() {
            None => ClaudeSession::spawn(spec)
                .map(|(handle, updates)| Spawned {
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
        let outcome = match spawned {
            Err(PlaceError::Failed(reason)) => return TurnEnd::Failed { reason, session_id },
            // The host was lost or is full: judged as a crashed process (resumed elsewhere).
            Err(PlaceError::Lost(why)) => {
                SessionOutcome::without_result(format!("node lost: {why}"))
            }
            Ok(Spawned {
                control: handle,
                mut updates,
            }) => {
                if let Some(id) = new_session.clone() {
                    // Known before the first event (we chose it): journaled at once, so a crash
                    // of cco right now still resumes this session.
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
                            stop_process(ctx, &*handle, &mut updates).await;
                            return TurnEnd::Cancelled;
                        }
                        _ = ctx.force_notify.notified() => {
                            stop_process(ctx, &*handle, &mut updates).await;
                            return TurnEnd::Cancelled;
                        }
                    }
                };
                drop(handle);
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
            outcome: describe(&outcome),
        });

        // 3. What next. A turn that ran on another host brings its work back first; losing
        // the host then counts as a crash of the process.
        let mut outcome = outcome;
        let next = loop {
            let next = policy::next(
                &policy,
                &mut retries,
                &outcome,
                session_id.is_some(),
                Utc::now(),
            );
            let collected = match (&next, place.as_mut()) {
                (Next::Done | Next::Fail(_), Some(place)) => tokio::select! {
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
                }
                (Next::Done, Err(PlaceError::Failed(reason))) => {
                    return TurnEnd::Failed { reason, session_id };
                }
                (next, _) => break next,
            }
        };
        let (wait, restart) = match next {
            Next::Done => {
                return TurnEnd::Done {
                    result_text: outcome.result_text.unwrap_or_default(),
                    session_id,
                };
            }
            Next::Fail(reason) => {
                return TurnEnd::Failed { reason, session_id };
            }
            Next::Again {
                wait,
                restart,
                bench,
            } => {
                if let Some(until) = bench {
                    warn!(key = credential.name(), %until, "rate limited: benching credential, resuming the same session");
                    ctx.keys.bench(credential.name(), until);
                    ctx.board.events().emit(RunEvent::KeyBenched {
                        key: credential.name().to_string(),
                        until,
                    });
                }
                (wait, restart)
            }
        };
        if !wait.is_zero() {
            warn!(failures = retries.failures, ?wait, outcome = %describe(&outcome), "claude process failed: resuming after backoff");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = &mut cancel => return TurnEnd::Cancelled,
            }
        }
        match restart {
            Restart::Resume(why) => {
                resume = session_id.clone();
                prompt = match why {
                    Why::Crashed => resume_prompt(CRASHED, resume_reference(&request, who)),
                    Why::RateLimited => {
                        resume_prompt(RATE_LIMITED, resume_reference(&request, who))
                    }
                    Why::OutOfTime => {
                        info!("task timed out: resuming once to commit what works");
                        request.timeout_prompt.clone().unwrap_or_default()
                    }
                };
            }
            Restart::Fresh => {
                if retries.failures > 0 && session_id.is_some() {
                    warn!(session = ?resume, "session not found: starting the task afresh");
                }
                resume = None;
                session_id = None;
                prompt = request.prompt.clone();
            }
            Restart::Same => {}
        }
    }
}

/// Terminates the process (SIGKILL at once when the shutdown is forced) and waits until the
/// driver reports it gone; a force arriving during the grace period escalates to SIGKILL.
async fn stop_process(
    ctx: &RunContext,
    handle: &dyn ProcessControl,
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
            notify(TurnUpdate::Started { pid });
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
