//! The Director actor: root of the supervision tree.
//!
//! Hierarchy mode: plans team goals with its own claude session (opus), hands one goal at a
//! time to each Engineering Manager, merges finished team branches into the base branch
//! (verify gate, conflicts back to the team), and re-plans when every team has run dry.
//! Flat mode: supervises the single Coordinator, which plans and merges by itself; the
//! Director then has no agent record of its own (the Coordinator is the root of the tree).
//!
//! It also enforces the run's limits (`maxRunDurationMinutes`, `maxBudgetUsd`) and performs the
//! ordered shutdown (`stop.rs`): leads first (each stops its workers and waits for their
//! processes), then itself; ractor would otherwise stop children without running their
//! `post_stop`. Layout: `teams.rs` (the teams and their goals, pure), `leads.rs` (starting
//! the teams' leads and restarting them), `merge.rs` (team merges
//! into the base branch), `stop.rs` (limits, the ordered stop and the run's outcome).

mod leads;
mod merge;
mod stop;
mod teams;

use std::sync::Arc;
use std::time::Instant;

use cco_git::{GitError, MergeOutcome};
use cco_protocol::{DirectorPlan, Duty, PlanKind, Rejections};
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::watch;
use tracing::{info, warn};

use self::teams::{layout, Teams};
use crate::board::Role;
use crate::context::RunContext;
use crate::error::DirectorError;
use crate::events::RunEvent;
use crate::journal::RunClock;
use crate::lead::{Halt, Input, LeadMsg};
use crate::outcome::{EndCause, RunOutcome};
use crate::planning::{plan_step, Asking, PlanStep};
use crate::prompts;
use crate::restart::RestartPolicy;
use crate::session::{
    apply_turn_update, spawn_turn, AgentIdentity, FailCause, TurnEnd, TurnGuard, TurnRequest,
    TurnUpdate,
};
use crate::supervise::{record_exit, stopped_child, ChildSlots, Exit};

pub(crate) enum DirectorMsg {
    Start,
    Turn(TurnUpdate),
    TurnEnded(TurnEnd),
    /// A team finished its goal: merge its branch.
    TeamIdle {
        team: String,
    },
    TeamFailed {
        team: String,
        reason: String,
    },
    TeamMerged {
        team: String,
        outcome: Result<MergeOutcome, GitError>,
    },
    TeamSynced {
        team: String,
    },
    /// The Coordinator (flat mode) says the project is complete (`planning_failure`: after
    /// its first plan was rejected, with no task run).
    RunComplete {
        reason: String,
        planning_failure: Option<String>,
    },
    CheckLimits,
    /// Stop the run: graceful, or forceful (SIGKILL at once); `signal`: the signal the
    /// application received, if that is why.
    Stop {
        reason: String,
        force: bool,
        signal: Option<i32>,
    },
    RespawnLead {
        slot: usize,
    },
    /// A lead found the run cannot go on safely (see [`Halt`]).
    Halt {
        cause: Halt,
        reason: String,
    },
}

// Local only (ractor's `cluster` feature needs every message type to implement `Message`).
impl ractor::Message for DirectorMsg {}

/// Why and how the run ended.
#[derive(Debug, Clone)]
pub(crate) struct RunEnd {
    pub(crate) reason: String,
    pub(crate) outcome: RunOutcome,
}

pub(crate) struct DirectorArgs {
    pub(crate) ctx: Arc<RunContext>,
    pub(crate) ended: watch::Sender<Option<RunEnd>>,
    /// The run's active time, counting earlier cco processes of a resumed run
    /// (`maxRunDurationMinutes` is measured against it).
    pub(crate) clock: RunClock,
}

pub(crate) struct DirectorState {
    ctx: Arc<RunContext>,
    who: Option<AgentIdentity>,
    flat: bool,
    teams: Teams,
    leads: ChildSlots<ActorRef<LeadMsg>>,
    /// The planning turn and its attempt.
    turn: Option<(u32, TurnGuard)>,
    session_id: Option<String>,
    ended: watch::Sender<Option<RunEnd>>,
    clock: RunClock,
    stopping: bool,
    /// The first planning failure of the run (a team that could not plan its goal, or the
    /// Director's own first plan that never parsed): a completion after it did not do the work.
    planning_failure: Option<String>,
    /// The rejected answers of the Director's planning round under way.
    rejections: Rejections,
    /// Team merges retried because the base branch had been moved behind cco's back.
    moved_retries: std::collections::HashMap<String, u32>,
    /// Team merges in flight, by team (the commit, when one lands).
    team_merges: std::collections::HashMap<String, tokio::task::JoinHandle<Option<String>>>,
}

pub(crate) struct DirectorActor;

pub(crate) const DIRECTOR_ID: &str = "director";

impl Actor for DirectorActor {
    type Msg = DirectorMsg;
    type State = DirectorState;
    type Arguments = DirectorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<DirectorMsg>,
        args: DirectorArgs,
    ) -> Result<DirectorState, ActorProcessingErr> {
        let DirectorArgs { ctx, ended, clock } = args;
        let config = &ctx.config.config;
        let flat = config.is_flat();
        if flat {
            // Flat mode's root is the Coordinator (a journal of an older cco may name one).
            ctx.board.remove_agent(DIRECTOR_ID);
        } else {
            ctx.board.register_agent(
                DIRECTOR_ID,
                Role::Director,
                None,
                None,
                Some(&ctx.model_for(Role::Director)),
            );
        }
        let teams = layout(
            flat,
            config.worker_count,
            config.engineer_manager_group_size,
            &ctx.base_branch,
        );
        let policy = RestartPolicy {
            max_restarts: 3,
            initial_backoff: config.restart_backoff(),
            ..RestartPolicy::default()
        };
        let leads = ChildSlots::new(teams.iter().map(|t| t.lead.clone()), policy);
        myself.send_interval(config.poll_interval(), || DirectorMsg::CheckLimits);
        Ok(DirectorState {
            ctx,
            who: None,
            flat,
            teams: Teams::new(teams),
            leads,
            turn: None,
            session_id: None,
            ended,
            clock,
            stopping: false,
            planning_failure: None,
            rejections: Rejections::new(),
            moved_retries: Default::default(),
            team_merges: Default::default(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<DirectorMsg>,
        msg: DirectorMsg,
        state: &mut DirectorState,
    ) -> Result<(), ActorProcessingErr> {
        if state.stopping {
            return Ok(());
        }
        match msg {
            DirectorMsg::Start => state.start(&myself).await?,
            DirectorMsg::Turn(update) => {
                apply_turn_update(&state.ctx, DIRECTOR_ID, update, &mut state.session_id);
            }
            DirectorMsg::TurnEnded(end) => state.on_turn_end(&myself, end).await,
            DirectorMsg::TeamIdle { team } => state.merge_team(&myself, &team).await,
            DirectorMsg::TeamFailed { team, reason } => {
                let failure = format!("team {team} could not work on its goal: {reason}");
                state.planning_failure.get_or_insert(failure.clone());
                state.teams.history.push(failure);
                state.ctx.board.events().emit(RunEvent::Warning {
                    message: format!("{team}: {reason}"),
                });
                if state.flat {
                    let reason = format!("coordinator failed: {reason}");
                    state
                        .stop(&myself, reason, EndCause::PlanningFailed, false)
                        .await;
                } else {
                    state.teams.free(&team);
                    state.dispatch(&myself).await;
                }
            }
            DirectorMsg::TeamMerged { team, outcome } => {
                state.on_team_merged(&myself, &team, outcome).await
            }
            DirectorMsg::TeamSynced { team } => {
                state.teams.free(&team);
                state.dispatch(&myself).await;
            }
            DirectorMsg::RunComplete {
                reason,
                planning_failure,
            } => {
                if let Some(failure) = planning_failure {
                    state.planning_failure.get_or_insert(failure);
                }
                state.complete(&myself, reason).await
            }
            DirectorMsg::CheckLimits => state.check_limits(&myself).await,
            DirectorMsg::Stop {
                reason,
                force,
                signal,
            } => {
                let cause = EndCause::Stopped {
                    signal,
                    forced: force,
                };
                state.stop(&myself, reason, cause, force).await
            }
            DirectorMsg::Halt { cause, reason } => state.halt(&myself, cause, reason).await,
            DirectorMsg::RespawnLead { slot } => {
                state.spawn_lead(&myself, slot).await;
                if let Some(actor) = state.leads.get(slot) {
                    let _ = actor.send_message(LeadMsg::Start);
                }
                state.dispatch(&myself).await;
            }
        }
        state.persist_plan();
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<DirectorMsg>,
        event: SupervisionEvent,
        state: &mut DirectorState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, _failed, reason)) = stopped_child(&event) else {
            return Ok(());
        };
        let Some(slot) = state.leads.slot_of(cell.get_id()) else {
            return Ok(());
        };
        if state.stopping {
            return Ok(());
        }
        let lead_id = state.leads.id(slot).to_string();
        warn!(lead = %lead_id, %reason, "lead stopped unexpectedly");
        let team = &mut state.teams.teams[slot];
        if let Some(goal) = team.goal.take() {
            state.teams.history.push(format!(
                "team {} lost its goal '{}' when its lead failed: {reason}",
                team.name, goal.name
            ));
        }
        // The respawned lead gets new work (the Coordinator plans again by itself).
        team.busy = state.flat;
        let exit = state.leads.on_exit(slot, Instant::now());
        record_exit(&state.ctx.board, &lead_id, exit, None);
        match exit {
            Exit::RestartAfter { delay, .. } => {
                myself.send_after(delay, move || DirectorMsg::RespawnLead { slot });
            }
            Exit::GaveUp { all_dead } => {
                if all_dead {
                    let reason = format!("{lead_id} failed too often: {reason}");
                    state.stop(&myself, reason, EndCause::Failed, false).await;
                }
            }
        }
        Ok(())
    }
}

impl DirectorState {
    /// Mirrors the planning state onto the board (and so into the journal).
    fn persist_plan(&self) {
        let plan = self.teams.plan_state();
        self.ctx.board.update_plan(|journaled| *journaled = plan);
    }

    async fn start(&mut self, myself: &ActorRef<DirectorMsg>) -> Result<(), DirectorError> {
        let mode = if self.flat { "flat" } else { "hierarchy" };
        self.ctx.board.events().emit(RunEvent::RunStarted {
            run_id: self.ctx.board.run_id().to_string(),
            base_branch: self.ctx.base_branch.clone(),
            mode: mode.into(),
        });
        if self.flat {
            self.spawn_lead(myself, 0).await;
            if let Some(actor) = self.leads.get(0) {
                let _ = actor.send_message(LeadMsg::Start);
            }
            self.ctx
                .board
                .set_phase("running (flat: coordinator plans)");
            return Ok(());
        }
        let (who, _) = self
            .ctx
            .prepare_agent(
                DIRECTOR_ID,
                Role::Director,
                "director",
                &self.ctx.base_branch,
            )
            .await?;
        self.session_id = self.ctx.board.agent(DIRECTOR_ID).and_then(|a| a.session_id);
        let journaled = self.ctx.resumed
            && (self.teams.restore(self.ctx.board.plan())
                || !self.ctx.board.snapshot().tasks.is_empty());
        if journaled {
            self.who = Some(who);
            info!("resuming the journaled plan");
            self.ctx.board.set_phase("running (resumed)");
            self.ctx.board.set_agent_state(DIRECTOR_ID, "directing");
            // The teams named before the restart continue their tasks.
            let named: Vec<usize> = (0..self.teams.teams.len())
                .filter(|&slot| self.teams.teams[slot].is_named())
                .collect();
            for (_, outcome) in self.start_teams(myself, &named).await {
                outcome?;
            }
            // A team that had a goal but no task yet was still planning: ask it again.
            for (slot, team) in self.teams.teams.iter().enumerate() {
                if let (Some(goal), Some(actor)) = (&team.goal, self.leads.get(slot)) {
                    if self.ctx.board.tasks_of_team(&team.name).is_empty() {
                        let _ = actor.send_message(LeadMsg::input(Input::Goal(goal.clone())));
                    }
                }
            }
            self.dispatch(myself).await;
            return Ok(());
        }
        self.ctx.board.set_phase("planning");
        let prompt = prompts::director_plan(&self.ctx, &who);
        self.who = Some(who);
        self.rejections = Rejections::new();
        self.start_turn(myself, 0, prompt);
        Ok(())
    }

    fn start_turn(&mut self, myself: &ActorRef<DirectorMsg>, attempt: u32, prompt: String) {
        let Some(who) = self.who.clone() else { return };
        self.ctx.board.set_agent_state(DIRECTOR_ID, "planning");
        let request = TurnRequest {
            resume: self.session_id.clone(),
            wall_timeout: Some(self.ctx.task_timeout()),
            sync_before: Some((who.cwd.clone(), self.ctx.base_branch.clone())),
            document: Some(PlanKind::Director),
            ..TurnRequest::new(prompt, Duty::Plan)
        };
        let notify_ref = myself.clone();
        let finish_ref = myself.clone();
        let guard = spawn_turn(
            Arc::clone(&self.ctx),
            who,
            request,
            move |update| {
                let _ = notify_ref.send_message(DirectorMsg::Turn(update));
            },
            move |end| {
                let _ = finish_ref.send_message(DirectorMsg::TurnEnded(end));
            },
        );
        self.turn = Some((attempt, guard));
    }

    async fn on_turn_end(&mut self, myself: &ActorRef<DirectorMsg>, end: TurnEnd) {
        let Some((attempt, _guard)) = self.turn.take() else {
            return;
        };
        self.ctx.board.update_agent(DIRECTOR_ID, |a| a.pid = None);
        let asking = Asking {
            attempt,
            max_retries: self.ctx.config.config.max_plan_retries,
            role: Role::Director,
            answer: self.ctx.answer_format(),
        };
        match plan_step(
            end,
            asking,
            &mut self.session_id,
            &mut self.rejections,
            cco_protocol::parse_director_answer,
        ) {
            PlanStep::Cancelled => {}
            PlanStep::SessionFailed {
                cause: FailCause::ApiUnavailable,
                reason,
            } => {
                // The API, not the plan: plan again (the run's limits bound this).
                warn!(%reason, "the director's planning turn ended on an unavailable API: planning again");
                self.plan_again(myself, attempt);
            }
            PlanStep::SessionFailed { reason, .. } => {
                let reason = format!("director planning session failed: {reason}");
                self.stop(myself, reason, EndCause::PlanningFailed, false)
                    .await;
            }
            PlanStep::Plan(parsed) => {
                for warning in parsed.warnings {
                    self.ctx.board.events().emit(RunEvent::Warning {
                        message: format!("director: {warning}"),
                    });
                }
                match parsed.value {
                    DirectorPlan::Complete { reason } => {
                        // The first plan never parsed and nothing ran: not a completion.
                        let never_planned = self.ctx.board.snapshot().tasks.is_empty()
                            && self.teams.teams.iter().all(|t| !t.is_named());
                        if let Some(failure) = self.rejections.failure().filter(|_| never_planned) {
                            self.planning_failure.get_or_insert(failure.to_string());
                        }
                        self.complete(myself, reason).await
                    }
                    DirectorPlan::Continue { teams, .. } => {
                        self.ctx.board.events().emit(RunEvent::Planned {
                            agent: DIRECTOR_ID.into(),
                            items: teams.len(),
                        });
                        self.teams.goals.extend(teams);
                        self.ctx.board.set_phase("running");
                        self.ctx.board.set_agent_state(DIRECTOR_ID, "directing");
                        self.dispatch(myself).await;
                    }
                }
            }
            PlanStep::Repair { attempt, prompt } => {
                warn!(attempt, "invalid director plan: asking again");
                self.start_turn(myself, attempt, prompt);
            }
            PlanStep::Invalid(failure) => {
                let reason = format!("the director gave no valid plan: {failure}");
                self.stop(myself, reason, EndCause::PlanningFailed, false)
                    .await;
            }
        }
    }

    /// The planning turn (the first plan or a re-plan) is asked again as it was.
    fn plan_again(&mut self, myself: &ActorRef<DirectorMsg>, attempt: u32) {
        let Some(who) = self.who.clone() else { return };
        let first = self.teams.teams.iter().all(|t| !t.is_named())
            && self.ctx.board.snapshot().tasks.is_empty();
        let prompt = if first {
            prompts::director_plan(&self.ctx, &who)
        } else {
            let tasks = self.ctx.board.snapshot().tasks;
            prompts::replan(&self.ctx, &who, &tasks, &self.teams.history)
        };
        self.start_turn(myself, attempt, prompt);
    }

    /// Gives pending goals to idle EMs (a team's first goal names it and starts it);
    /// re-plans when everything ran dry.
    async fn dispatch(&mut self, myself: &ActorRef<DirectorMsg>) {
        if self.flat || self.stopping || self.ctx.is_stopping() {
            return;
        }
        let leads = &self.leads;
        let handed = self.teams.dispatch(|slot| leads.get(slot).is_some());
        let new: Vec<usize> = handed
            .iter()
            .map(|(slot, _)| *slot)
            .filter(|&slot| self.leads.get(slot).is_none())
            .collect();
        let mut failed = std::collections::HashMap::new();
        for (slot, outcome) in self.start_teams(myself, &new).await {
            if let Err(error) = outcome {
                failed.insert(slot, error);
            }
        }
        for (slot, goal) in handed {
            let team = self.teams.teams[slot].name.clone();
            if let Some(error) = failed.remove(&slot) {
                warn!(%team, %error, "the team could not start");
                self.teams
                    .history
                    .push(format!("team {team} could not start: {error}"));
                self.teams.free(&team);
                continue;
            }
            let Some(actor) = self.leads.get(slot) else {
                // Its lead could not start (a respawn is scheduled): the goal waits.
                self.teams.free(&team);
                self.teams.goals.push_front(goal);
                continue;
            };
            info!(%team, goal = %goal.name, "goal assigned");
            let _ = actor.send_message(LeadMsg::input(Input::Goal(goal)));
        }
        if self.teams.all_idle() && self.turn.is_none() {
            if let Some(who) = self.who.clone() {
                let tasks = self.ctx.board.snapshot().tasks;
                let prompt = prompts::replan(&self.ctx, &who, &tasks, &self.teams.history);
                self.ctx.board.set_phase("re-planning");
                self.rejections = Rejections::new();
                self.start_turn(myself, 0, prompt);
            }
        }
    }
}
