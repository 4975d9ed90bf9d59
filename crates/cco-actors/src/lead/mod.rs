//! The team lead actor: an Engineering Manager (hierarchy mode) or the flat Coordinator.
//!
//! A lead owns its team's tasks (on the [`Board`](crate::board::Board), outside the worker
//! actors), supervises one Worker per stable slot ([`ChildSlots`]), and runs its own claude
//! session for planning (goal → tasks), reviewing finished work (in forks of it) and, as
//! Coordinator, re-planning.
//!
//! Layout: this file is the actor *shell*. It turns messages into [`Input`]s, lets the pure
//! [`LeadCore`] decide (`core.rs`: planning, reports; `slots.rs`: worker slots, lanes and
//! scheduling; `pipeline.rs`: capture → review → merge, with the merge step in `merging.rs`;
//! `gates.rs`: work cco refuses; `restore.rs`: `cco resume`), and
//! performs the [`Effect`]s it returns: messages to workers and the Director, claude turns,
//! and GitActor operations in spawned tasks that message the lead back with typed results.
//! The core's unit tests are in `tests.rs`.
//!
//! Per finished turn: one urgent GitActor op *captures* it — commits what the worker left
//! uncommitted, freezes the work in the task's ref (`cco_git::task_ref`) and parks the
//! worktree at the target tip — and the worker is free for its next task at once. The frozen
//! work is then diffed, reviewed and merged into the target (team branch, or the base branch
//! for the Coordinator) from the ref, while the worker works on something else. Revisions
//! and conflict resolutions are *pinned* turns: they run on the worker whose session did the
//! task (the session lives in its worktree and config dir), before any new task, starting
//! from the task ref. Workers are restarted by this lead; their task is re-queued.

mod core;
mod gates;
mod merging;
mod pipeline;
mod plans;
mod restore;
mod slots;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cco_protocol::{Duty, PlanKind};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tracing::warn;

use self::core::{CaptureOrder, Effect, LeadConfig, LeadCore, PlanPrompt, Report, ReviewPrompt};
pub(crate) use self::core::{Halt, Input};
pub(crate) use self::gates::{environment as environment_pause, moved_message, MAX_MOVED_RETRIES};
use crate::board::Role;
use crate::context::RunContext;
use crate::director::DirectorMsg;
use crate::error::LeadError;
use crate::journal::Barrier;
use crate::prompts;
use crate::restart::RestartPolicy;
use crate::session::{
    apply_turn_update, spawn_turn, AgentIdentity, TurnEnd, TurnGuard, TurnRequest, TurnUpdate,
};
use crate::supervise::{record_exit, shutdown_all, stopped_child, ChildSlots, Exit};
use crate::worker::{WorkerActor, WorkerArgs, WorkerMsg};

pub(crate) enum LeadMsg {
    /// Spawn workers; the Coordinator also starts planning.
    Start,
    /// Something for the core to decide on: a Director's request, a worker's report, the
    /// result of an effect (a capture, a diff, a merge, a spare worktree). Boxed: some inputs
    /// carry git results, and every message is as large as the largest.
    Input(Box<Input>),
    /// Progress of the lead's planning turn.
    Turn(TurnUpdate),
    TurnEnded(TurnEnd),
    ReviewEnded {
        key: String,
        attempt: u32,
        end: TurnEnd,
    },
    RespawnWorker {
        slot: usize,
    },
    Shutdown(RpcReplyPort<()>),
}

// Local only (ractor's `cluster` feature needs every message type to implement `Message`).
impl ractor::Message for LeadMsg {}

impl LeadMsg {
    /// `input` for the core, as a message.
    pub(crate) fn input(input: Input) -> LeadMsg {
        LeadMsg::Input(Box::new(input))
    }
}

pub(crate) struct LeadArgs {
    pub(crate) ctx: Arc<RunContext>,
    pub(crate) id: String,
    pub(crate) role: Role,
    pub(crate) team: String,
    /// Branch the workers merge into (team branch, or base for the Coordinator).
    pub(crate) target_branch: String,
    pub(crate) worker_ids: Vec<String>,
    pub(crate) director: ActorRef<DirectorMsg>,
}

pub(crate) struct LeadState {
    ctx: Arc<RunContext>,
    who: AgentIdentity,
    director: ActorRef<DirectorMsg>,
    core: LeadCore,
    workers: ChildSlots<ActorRef<WorkerMsg>>,
    /// The lead's planning turn.
    plan_turn: Option<TurnGuard>,
    /// Review turns, each in its own fork of the lead's session.
    reviews: HashMap<String, TurnGuard>,
}

pub(crate) struct LeadActor;

impl Actor for LeadActor {
    type Msg = LeadMsg;
    type State = LeadState;
    type Arguments = LeadArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<LeadMsg>,
        args: LeadArgs,
    ) -> Result<LeadState, ActorProcessingErr> {
        let LeadArgs {
            ctx,
            id,
            role,
            team,
            target_branch,
            worker_ids,
            director,
        } = args;
        // The lead reads the code from a worktree of its own on the target branch.
        let (who, _) = ctx
            .prepare_agent(&id, role, &team, &target_branch)
            .await
            .map_err(LeadError::from)?;
        let config = &ctx.config.config;
        let policy = RestartPolicy {
            initial_backoff: config.restart_backoff(),
            ..RestartPolicy::default()
        };
        let cfg = LeadConfig {
            id: id.clone(),
            role,
            team,
            target_branch,
            base_branch: ctx.base_branch.clone(),
            run_name: ctx
                .run_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "run".into()),
            max_plan_retries: config.max_plan_retries,
            merge_strategy: crate::gitmap::strategy(config.merge_strategy),
            answer: ctx.answer_format(),
            verify_command: config.verify_command.clone(),
            max_auto_resolve: config.max_auto_resolve_conflicts,
        };
        let workers = ChildSlots::new(worker_ids.iter().cloned(), policy);
        let core = LeadCore::new(cfg, ctx.board.clone(), worker_ids);
        ctx.board.set_agent_state(&id, "starting workers");
        Ok(LeadState {
            ctx,
            who,
            director,
            core,
            workers,
            plan_turn: None,
            reviews: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<LeadMsg>,
        msg: LeadMsg,
        state: &mut LeadState,
    ) -> Result<(), ActorProcessingErr> {
        if state.core.stopping && !matches!(msg, LeadMsg::Shutdown(_)) {
            return Ok(());
        }
        let input = match msg {
            LeadMsg::Start => {
                for slot in 0..state.workers.len() {
                    state.spawn_worker(&myself, slot).await?;
                }
                Input::Start {
                    resumed: state.ctx.resumed,
                }
            }
            LeadMsg::Input(input) => *input,
            LeadMsg::Turn(update) => {
                apply_turn_update(
                    &state.ctx,
                    &state.who.id,
                    update,
                    &mut state.core.session_id,
                );
                return Ok(());
            }
            LeadMsg::TurnEnded(end) => {
                state.plan_turn = None;
                Input::PlanEnded(end)
            }
            LeadMsg::ReviewEnded { key, attempt, end } => {
                state.reviews.remove(&key);
                Input::ReviewEnded { key, attempt, end }
            }
            LeadMsg::RespawnWorker { slot } => return state.spawn_worker(&myself, slot).await,
            LeadMsg::Shutdown(reply) => {
                state.shutdown().await;
                let _ = reply.send(());
                return Ok(());
            }
        };
        state.decide(&myself, input)
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<LeadMsg>,
        event: SupervisionEvent,
        state: &mut LeadState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, failed, reason)) = stopped_child(&event) else {
            return Ok(());
        };
        let Some(slot) = state.workers.slot_of(cell.get_id()) else {
            return Ok(());
        };
        let worker = state.workers.id(slot).to_string();
        warn!(%worker, failed, %reason, "worker actor stopped unexpectedly");
        // Its job goes back to the lead's queue: the task lives there, not in the dead actor.
        state.decide(&myself, Input::WorkerDown { slot })?;
        let exit = state.workers.on_exit(slot, Instant::now());
        record_exit(&state.ctx.board, &worker, exit, None);
        match exit {
            Exit::RestartAfter { delay, .. } => {
                myself.send_after(delay, move || LeadMsg::RespawnWorker { slot });
                Ok(())
            }
            Exit::GaveUp { .. } => state.decide(&myself, Input::WorkerDead { slot }),
        }
    }
}

impl LeadState {
    /// Lets the core decide on `input` and performs what it returns.
    fn decide(
        &mut self,
        myself: &ActorRef<LeadMsg>,
        input: Input,
    ) -> Result<(), ActorProcessingErr> {
        let effects = self
            .core
            .handle(input, Instant::now(), self.ctx.is_stopping());
        for effect in effects {
            self.perform(myself, effect)?;
        }
        Ok(())
    }

    async fn spawn_worker(
        &mut self,
        myself: &ActorRef<LeadMsg>,
        slot: usize,
    ) -> Result<(), ActorProcessingErr> {
        let id = self.workers.id(slot).to_string();
        let board = &self.ctx.board;
        board.register_agent(
            &id,
            Role::Worker,
            Some(&self.core.cfg.team),
            Some(&self.who.id),
            Some(&self.ctx.model_for(Role::Worker)),
        );
        let restarts = self.workers.restarts(slot);
        board.update_agent(&id, |a| a.restarts = restarts);
        let args = WorkerArgs {
            ctx: Arc::clone(&self.ctx),
            id: id.clone(),
            team: self.core.cfg.team.clone(),
            lead: myself.clone(),
            slot,
            target_branch: self.core.cfg.target_branch.clone(),
            reviewer: self.core.cfg.role,
        };
        match WorkerActor::spawn_linked(None, WorkerActor, args, myself.get_cell()).await {
            Ok((actor, _)) => {
                self.ctx.register_cell(&id, actor.get_cell());
                self.workers.fill(slot, actor);
                self.decide(myself, Input::WorkerUp { slot })
            }
            Err(error) => {
                warn!(worker = %id, %error, "worker failed to start");
                let exit = self.workers.on_exit(slot, Instant::now());
                record_exit(&self.ctx.board, &id, exit, Some(&error.to_string()));
                match exit {
                    Exit::RestartAfter { delay, .. } => {
                        myself.send_after(delay, move || LeadMsg::RespawnWorker { slot });
                        Ok(())
                    }
                    Exit::GaveUp { .. } => self.decide(myself, Input::WorkerDead { slot }),
                }
            }
        }
    }

    fn perform(
        &mut self,
        myself: &ActorRef<LeadMsg>,
        effect: Effect,
    ) -> Result<(), ActorProcessingErr> {
        let git = self.ctx.git.clone();
        let target = self.core.cfg.target_branch.clone();
        let me = myself.clone();
        match effect {
            Effect::Assign {
                slot,
                job,
                start,
                place,
            } => {
                let (key, worker) = (job.key.clone(), self.workers.id(slot).to_string());
                let sent = match self.workers.get(slot) {
                    Some(actor) => actor
                        .send_message(WorkerMsg::Assign(Box::new(job), start, place))
                        .is_ok(),
                    None => false,
                };
                if !sent {
                    // The supervision event for the dead worker re-queues the task.
                    warn!(%worker, task = %key, "worker gone before assignment");
                }
            }
            Effect::CreateSpare {
                slot,
                worktree_id,
                epoch,
            } => {
                // Low priority: merges and the worktrees workers wait on go first.
                let git = git.with_priority(cco_git::Priority::Low);
                let team = self.core.cfg.team.clone();
                tokio::spawn(async move {
                    let result = git.create_worktree(&team, &worktree_id, &target).await;
                    let _ = me.send_message(LeadMsg::input(Input::LaneReady {
                        slot,
                        epoch,
                        result,
                    }));
                });
            }
            Effect::Capture(order) => self.capture(me, order),
            Effect::Diff {
                key,
                task_ref,
                result_text,
                resolution,
            } => {
                tokio::spawn(async move {
                    let diff = git.diff_summary(&target, &task_ref).await;
                    // The reviewer's repository shares cco's objects, not its refs: its git
                    // commands name the commits.
                    let revs = match (git.head(&task_ref).await, git.head(&target).await) {
                        (Ok(task), Ok(tip)) => Some((task, tip)),
                        _ => None,
                    };
                    let resolution = match (&diff, resolution) {
                        (Ok(_), true) => match git.resolution_diff(&target, &task_ref).await {
                            Ok(found) => found.map(Box::new),
                            Err(error) => {
                                warn!(task = %key, %error, "could not diff the resolution against its parents: reviewing it as a task");
                                None
                            }
                        },
                        _ => None,
                    };
                    let _ = me.send_message(LeadMsg::input(Input::Diffed {
                        key,
                        diff,
                        revs,
                        result_text,
                        resolution,
                    }));
                });
            }
            Effect::Review {
                key,
                prompt,
                attempt,
                resume,
                fork,
            } => {
                let prompt = match prompt {
                    ReviewPrompt::First {
                        spec,
                        worker,
                        task_ref,
                        revs,
                        result_text,
                        diff,
                    } => {
                        let facts = prompts::ReviewFacts {
                            task: &spec,
                            worker: &worker,
                            task_ref: &task_ref,
                            revs: revs.as_ref().map(|(t, b)| (t.as_str(), b.as_str())),
                            result: &result_text,
                            diff: &diff,
                        };
                        prompts::review(&self.ctx, &self.who, facts)
                    }
                    ReviewPrompt::Resolution {
                        spec,
                        result_text,
                        worker,
                        against,
                        diff,
                    } => prompts::review_resolution(
                        &self.ctx,
                        &self.who,
                        &spec,
                        &prompts::Resolved {
                            worker: &worker,
                            against: &against,
                            target: &target,
                            result: &result_text,
                            diff: &diff,
                        },
                    ),
                    ReviewPrompt::Repair(prompt) => prompt,
                };
                let mut request = self.turn_request(prompt, resume, fork, None);
                request.duty = Duty::Review;
                request.document = Some(PlanKind::Review);
                request.task = self.core.specs.get(&key).cloned();
                let review_key = key.clone();
                let guard = spawn_turn(
                    Arc::clone(&self.ctx),
                    self.who.clone(),
                    request,
                    |_| {},
                    move |end| {
                        let _ = me.send_message(LeadMsg::ReviewEnded {
                            key: review_key,
                            attempt,
                            end,
                        });
                    },
                );
                self.reviews.insert(key, guard);
            }
            Effect::Merge { key, request } => {
                tokio::spawn(async move {
                    let outcome = git.merge(request).await;
                    let _ = me.send_message(LeadMsg::input(Input::Merged { key, outcome }));
                });
            }
            Effect::Plan { prompt, resume } => {
                let prompt = match prompt {
                    PlanPrompt::Coordinator => prompts::coordinator_plan(&self.ctx, &self.who),
                    PlanPrompt::Em(goal) => prompts::em_plan(&self.ctx, &self.who, &goal),
                    PlanPrompt::Replan(tasks) => prompts::replan(&self.ctx, &self.who, &tasks, &[]),
                    PlanPrompt::Repair(prompt) => prompt,
                };
                // Planners read the code as merged so far.
                let sync = Some((self.who.cwd.clone(), target));
                let request = self.turn_request(prompt, resume, false, sync);
                let notify = me.clone();
                self.plan_turn = Some(spawn_turn(
                    Arc::clone(&self.ctx),
                    self.who.clone(),
                    request,
                    move |update| {
                        let _ = notify.send_message(LeadMsg::Turn(update));
                    },
                    move |end| {
                        let _ = me.send_message(LeadMsg::TurnEnded(end));
                    },
                ));
            }
            Effect::Report(report) => {
                let team = self.core.cfg.team.clone();
                let _ = self.director.send_message(match report {
                    Report::TeamIdle => DirectorMsg::TeamIdle { team },
                    Report::TeamFailed { reason } => DirectorMsg::TeamFailed { team, reason },
                    Report::RunComplete {
                        reason,
                        planning_failure,
                    } => DirectorMsg::RunComplete {
                        reason,
                        planning_failure,
                    },
                    Report::Halt { cause, reason } => DirectorMsg::Halt { cause, reason },
                });
            }
            Effect::Fail(error) => return Err(error.into()),
        }
        Ok(())
    }

    fn turn_request(
        &self,
        prompt: String,
        resume: Option<String>,
        fork: bool,
        sync_before: Option<(PathBuf, String)>,
    ) -> TurnRequest {
        TurnRequest {
            resume,
            wall_timeout: Some(self.ctx.task_timeout()),
            fork,
            sync_before,
            document: Some(PlanKind::Task),
            ..TurnRequest::new(prompt, Duty::Plan)
        }
    }

    /// Captures a finished turn, once the journal shows it finished (a resumed run then
    /// captures it again instead of resuming its session in a worktree that no longer holds
    /// the work). A failed capture resets the worktree so the worker can go on.
    fn capture(&self, me: ActorRef<LeadMsg>, order: CaptureOrder) {
        let git = self.ctx.git.clone();
        let target = self.core.cfg.target_branch.clone();
        let durable = Barrier::now(&self.ctx.board);
        tokio::spawn(async move {
            let CaptureOrder {
                slot,
                lane,
                key,
                epoch,
                worktree,
                task_ref,
                message,
                turn,
            } = order;
            if !durable.wait().await {
                warn!(task = %key, "the journal is behind: capturing anyway");
            }
            let outcome = git
                .capture_task(&worktree, &message, &task_ref, &target)
                .await;
            // Unresolved conflicts or a broken worktree: snapshot what is there and reset it,
            // so the worker can go on. Not refused work (its session fixes it there) and not
            // when the machine failed (the run pauses; nothing is touched).
            let keep = outcome.as_ref().err().is_some_and(|error| {
                gates::refusal(error).is_some() || gates::environment(error).is_some()
            });
            if outcome.is_err() && !keep {
                if let Err(error) = git.sync_worktree(&worktree, &target).await {
                    warn!(%error, "could not reset the worker's worktree");
                }
            }
            let _ = me.send_message(LeadMsg::input(Input::Captured {
                slot,
                lane,
                key,
                epoch,
                outcome,
                turn,
            }));
        });
    }

    /// Stops every worker's process at once (each within its grace period), then the lead's
    /// own turns (planning, reviews) the same way.
    async fn shutdown(&mut self) {
        self.core.handle(Input::Shutdown, Instant::now(), true);
        let board = &self.ctx.board;
        board.set_agent_state(&self.who.id, "stopping");
        let grace = self.ctx.config.config.kill_grace() + Duration::from_secs(10);
        shutdown_all(self.workers.take_all(), WorkerMsg::Shutdown, grace).await;
        let turns: Vec<TurnGuard> = self
            .reviews
            .drain()
            .map(|(_, guard)| guard)
            .chain(self.plan_turn.take())
            .collect();
        let stops: Vec<_> = turns
            .into_iter()
            .map(|guard| tokio::spawn(guard.shutdown()))
            .collect();
        for stop in stops {
            let _ = stop.await;
        }
        board.update_agent(&self.who.id, |a| a.pid = None);
        board.set_agent_state(&self.who.id, "stopped");
    }
}
