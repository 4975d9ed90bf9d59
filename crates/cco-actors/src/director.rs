//! The Director actor: root of the supervision tree.
//!
//! Hierarchy mode: plans team goals with its own claude session (opus), hands one goal at a
//! time to each Engineering Manager, merges finished team branches into the base branch
//! (verify gate, conflicts back to the team), and re-plans when every team has run dry.
//! Flat mode: supervises the single Coordinator, which plans and merges by itself.
//!
//! It also enforces the run's limits (`maxRunDurationMinutes`, `maxBudgetUsd`) and performs the
//! ordered shutdown: leads first (each stops its workers and waits for their processes), then
//! itself. ractor would otherwise stop children without running their `post_stop`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cco_git::{MergeOutcome, MergeRequest};
use cco_protocol::{DirectorPlan, TeamGoal};
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::board::{Role, TaskState};
use crate::context::RunContext;
use crate::events::RunEvent;
use crate::journal::RunClock;
use crate::lead::{LeadActor, LeadArgs, LeadMsg};
use crate::prompts;
use crate::restart::{RestartDecision, RestartPolicy, RestartTracker};
use crate::session::{spawn_turn, AgentIdentity, TurnEnd, TurnGuard, TurnRequest, TurnUpdate};

pub enum DirectorMsg {
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
        outcome: Result<MergeOutcome, String>,
    },
    TeamSynced {
        team: String,
    },
    /// The Coordinator (flat mode) says the project is complete.
    RunComplete {
        reason: String,
    },
    CheckLimits,
    /// Stop the run: graceful, or forceful (SIGKILL at once).
    Stop {
        reason: String,
        force: bool,
    },
    RespawnLead {
        slot: usize,
    },
}

/// Why and how the run ended.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunEnd {
    pub reason: String,
    /// True when the project was declared complete (not stopped by a limit or a signal).
    pub completed: bool,
}

pub struct DirectorArgs {
    pub ctx: Arc<RunContext>,
    pub ended: watch::Sender<Option<RunEnd>>,
    /// The run's active time, counting earlier cco processes of a resumed run
    /// (`maxRunDurationMinutes` is measured against it).
    pub clock: RunClock,
}

struct LeadSlot {
    id: String,
    team: String,
    branch: String,
    worker_ids: Vec<String>,
    actor: Option<ActorRef<LeadMsg>>,
    /// Holds a goal (or is merging it).
    busy: bool,
    goal: Option<TeamGoal>,
    restarts: RestartTracker,
}

pub struct DirectorState {
    ctx: Arc<RunContext>,
    who: Option<AgentIdentity>,
    flat: bool,
    leads: Vec<LeadSlot>,
    goals: VecDeque<TeamGoal>,
    history: Vec<String>,
    turn: Option<(u32, TurnGuard)>,
    session_id: Option<String>,
    ended: watch::Sender<Option<RunEnd>>,
    clock: RunClock,
    stopping: bool,
}

pub struct DirectorActor;

pub const DIRECTOR_ID: &str = "director";

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
        ctx.board.register_agent(
            DIRECTOR_ID,
            Role::Director,
            None,
            None,
            (!flat).then(|| ctx.model_for(Role::Director)).as_deref(),
        );
        let mut leads = Vec::new();
        let policy = RestartPolicy {
            max_restarts: 3,
            initial_backoff: config.restart_backoff(),
            ..RestartPolicy::default()
        };
        if flat {
            let worker_ids = (1..=config.worker_count)
                .map(|n| format!("worker-{n}"))
                .collect();
            leads.push(LeadSlot {
                id: "coordinator".into(),
                team: "flat".into(),
                branch: ctx.base_branch.clone(),
                worker_ids,
                actor: None,
                busy: true,
                goal: None,
                restarts: RestartTracker::new(policy),
            });
        } else {
            let group = config.engineer_manager_group_size.max(1);
            let mut next_worker = 1;
            for team_no in 1..=config.team_count() {
                let size = group.min(config.worker_count + 1 - next_worker);
                let worker_ids = (next_worker..next_worker + size)
                    .map(|n| format!("worker-{n}"))
                    .collect();
                next_worker += size;
                let team = format!("team-{team_no}");
                leads.push(LeadSlot {
                    id: format!("em-{team_no}"),
                    branch: format!("cco/{team}"),
                    team,
                    worker_ids,
                    actor: None,
                    busy: false,
                    goal: None,
                    restarts: RestartTracker::new(policy),
                });
            }
        }
        myself.send_interval(config.poll_interval(), || DirectorMsg::CheckLimits);
        Ok(DirectorState {
            ctx,
            who: None,
            flat,
            leads,
            goals: VecDeque::new(),
            history: Vec::new(),
            turn: None,
            session_id: None,
            ended,
            clock,
            stopping: false,
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
                let mut session = state.session_id.take();
                apply_turn_update(&state.ctx, DIRECTOR_ID, update, &mut session);
                state.session_id = session;
            }
            DirectorMsg::TurnEnded(end) => state.on_turn_end(&myself, end).await,
            DirectorMsg::TeamIdle { team } => state.merge_team(&myself, &team),
            DirectorMsg::TeamFailed { team, reason } => {
                state
                    .history
                    .push(format!("team {team} could not work on its goal: {reason}"));
                state.ctx.board.events().emit(RunEvent::Warning {
                    message: format!("{team}: {reason}"),
                });
                if state.flat {
                    state
                        .stop(
                            &myself,
                            format!("coordinator failed: {reason}"),
                            false,
                            false,
                        )
                        .await;
                } else {
                    state.free_lead(&team);
                    state.dispatch(&myself);
                }
            }
            DirectorMsg::TeamMerged { team, outcome } => {
                state.on_team_merged(&myself, &team, outcome)
            }
            DirectorMsg::TeamSynced { team } => {
                state.free_lead(&team);
                state.dispatch(&myself);
            }
            DirectorMsg::RunComplete { reason } => {
                state
                    .stop(&myself, format!("complete: {reason}"), false, true)
                    .await
            }
            DirectorMsg::CheckLimits => {
                let config = &state.ctx.config.config;
                if let Some(budget) = config.max_budget_usd {
                    let spent = state.ctx.board.total_cost();
                    if spent >= budget {
                        state
                            .stop(
                                &myself,
                                format!("budget reached: ${spent:.4} of ${budget:.4}"),
                                false,
                                false,
                            )
                            .await;
                        return Ok(());
                    }
                }
                if state.clock.elapsed() >= config.max_run_duration() {
                    state
                        .stop(
                            &myself,
                            format!(
                                "maximum run duration of {} minutes reached",
                                config.max_run_duration_minutes
                            ),
                            false,
                            false,
                        )
                        .await;
                }
            }
            DirectorMsg::Stop { reason, force } => state.stop(&myself, reason, force, false).await,
            DirectorMsg::RespawnLead { slot } => {
                state.spawn_lead(&myself, slot).await;
                if let Some(actor) = &state.leads[slot].actor {
                    let _ = actor.send_message(LeadMsg::Start);
                }
                state.dispatch(&myself);
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
        let Some((cell, _failed, reason)) = crate::restart::stopped_child(&event) else {
            return Ok(());
        };
        let Some(slot) = state.leads.iter().position(|l| {
            l.actor
                .as_ref()
                .is_some_and(|a| a.get_id() == cell.get_id())
        }) else {
            return Ok(());
        };
        state.leads[slot].actor = None;
        if state.stopping {
            return Ok(());
        }
        let lead_id = state.leads[slot].id.clone();
        warn!(lead = %lead_id, %reason, "lead stopped unexpectedly");
        if let Some(goal) = state.leads[slot].goal.take() {
            state.history.push(format!(
                "team {} lost its goal '{}' when its lead failed: {reason}",
                state.leads[slot].team, goal.name
            ));
        }
        match state.leads[slot].restarts.on_stop(true, Instant::now()) {
            RestartDecision::RestartAfter(delay) => {
                let restarts = state.leads[slot].restarts.total();
                state
                    .ctx
                    .board
                    .update_agent(&lead_id, |a| a.restarts = restarts);
                state.ctx.board.events().emit(RunEvent::ActorRestarted {
                    agent: lead_id,
                    restarts,
                });
                state.leads[slot].busy = state.flat;
                myself.send_after(delay, move || DirectorMsg::RespawnLead { slot });
            }
            _ => {
                if state.leads.iter().all(|l| l.actor.is_none()) {
                    state
                        .stop(
                            &myself,
                            format!("{lead_id} failed too often: {reason}"),
                            false,
                            false,
                        )
                        .await;
                }
            }
        }
        Ok(())
    }
}

impl DirectorState {
    /// Mirrors the planning state onto the board (and so into the journal).
    fn persist_plan(&self) {
        let pending: Vec<TeamGoal> = self.goals.iter().cloned().collect();
        let team_goals = self
            .leads
            .iter()
            .filter_map(|l| l.goal.clone().map(|g| (l.team.clone(), g)))
            .collect();
        let history = self.history.clone();
        self.ctx.board.update_plan(|plan| {
            plan.pending_goals = pending;
            plan.team_goals = team_goals;
            plan.history = history;
        });
    }

    /// Resume: the planning state of the journaled run. Returns true when there was any.
    fn restore_plan(&mut self) -> bool {
        let plan = self.ctx.board.plan();
        self.session_id = self.ctx.board.agent(DIRECTOR_ID).and_then(|a| a.session_id);
        self.goals = plan.pending_goals.into_iter().collect();
        self.history = plan.history;
        let mut any = !self.goals.is_empty();
        for lead in &mut self.leads {
            if let Some(goal) = plan.team_goals.get(&lead.team) {
                lead.goal = Some(goal.clone());
                lead.busy = true;
                any = true;
            }
        }
        any || !self.ctx.board.snapshot().tasks.is_empty()
    }

    async fn start(&mut self, myself: &ActorRef<DirectorMsg>) -> Result<(), ActorProcessingErr> {
        let mode = if self.flat { "flat" } else { "hierarchy" };
        self.ctx.board.events().emit(RunEvent::RunStarted {
            run_id: self.ctx.board.run_id().to_string(),
            base_branch: self.ctx.base_branch.clone(),
            mode: mode.into(),
        });
        if !self.flat {
            for lead in &mut self.leads {
                lead.branch = self
                    .ctx
                    .git
                    .ensure_team_branch(&lead.team, Some(&self.ctx.base_branch))
                    .await
                    .map_err(|e| format!("team branch for {}: {e}", lead.team))?;
            }
        }
        for slot in 0..self.leads.len() {
            self.spawn_lead(myself, slot).await;
        }
        for lead in &self.leads {
            if let Some(actor) = &lead.actor {
                let _ = actor.send_message(LeadMsg::Start);
            }
        }
        if self.flat {
            self.ctx
                .board
                .set_phase("running (flat: coordinator plans)");
            self.ctx.board.set_agent_state(DIRECTOR_ID, "supervising");
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
        self.who = Some(who);
        if self.ctx.resumed && self.restore_plan() {
            info!("resuming the journaled plan");
            self.ctx.board.set_phase("running (resumed)");
            self.ctx.board.set_agent_state(DIRECTOR_ID, "directing");
            // A team that had a goal but no task yet was still planning: ask it again.
            for lead in &self.leads {
                if let (Some(goal), Some(actor)) = (&lead.goal, &lead.actor) {
                    if self.ctx.board.tasks_of_team(&lead.team).is_empty() {
                        let _ = actor.send_message(LeadMsg::Goal(goal.clone()));
                    }
                }
            }
            self.dispatch(myself);
            return Ok(());
        }
        self.ctx.board.set_phase("planning");
        let prompt = prompts::director_plan(&self.ctx, self.who.as_ref().expect("set above"));
        self.start_turn(myself, 0, prompt);
        Ok(())
    }

    async fn spawn_lead(&mut self, myself: &ActorRef<DirectorMsg>, slot: usize) {
        let lead = &self.leads[slot];
        let role = if self.flat {
            Role::Coordinator
        } else {
            Role::Em
        };
        self.ctx.board.register_agent(
            &lead.id,
            role,
            Some(&lead.team),
            Some(DIRECTOR_ID),
            Some(&self.ctx.model_for(role)),
        );
        let args = LeadArgs {
            ctx: Arc::clone(&self.ctx),
            id: lead.id.clone(),
            role,
            team: lead.team.clone(),
            target_branch: lead.branch.clone(),
            worker_ids: lead.worker_ids.clone(),
            director: myself.clone(),
        };
        match LeadActor::spawn_linked(None, LeadActor, args, myself.get_cell()).await {
            Ok((actor, _)) => {
                self.ctx
                    .register_cell(&self.leads[slot].id, actor.get_cell());
                self.leads[slot].actor = Some(actor);
            }
            Err(error) => {
                warn!(lead = %self.leads[slot].id, %error, "lead failed to start");
                self.ctx
                    .board
                    .set_agent_state(&self.leads[slot].id, format!("failed to start: {error}"));
            }
        }
    }

    fn start_turn(&mut self, myself: &ActorRef<DirectorMsg>, attempt: u32, prompt: String) {
        let Some(who) = self.who.clone() else { return };
        self.ctx.board.set_agent_state(DIRECTOR_ID, "planning");
        let request = TurnRequest {
            prompt,
            resume: self.session_id.clone(),
            task_key: None,
            wall_timeout: Some(self.ctx.task_timeout()),
            timeout_prompt: None,
            resume_prompt: None,
            fork: false,
            sync_before: Some((who.cwd.clone(), self.ctx.base_branch.clone())),
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
        let text = match end {
            TurnEnd::Cancelled => return,
            TurnEnd::Done {
                result_text,
                session_id,
                ..
            } => {
                self.session_id = session_id.or(self.session_id.take());
                result_text
            }
            TurnEnd::Failed { reason, .. } => {
                self.stop(
                    myself,
                    format!("director planning session failed: {reason}"),
                    false,
                    false,
                )
                .await;
                return;
            }
        };
        match cco_protocol::parse_director_plan(&text) {
            Ok(parsed) => {
                for warning in parsed.warnings {
                    self.ctx.board.events().emit(RunEvent::Warning {
                        message: format!("director: {warning}"),
                    });
                }
                match parsed.value {
                    DirectorPlan::Complete { reason } => {
                        self.stop(myself, format!("complete: {reason}"), false, true)
                            .await
                    }
                    DirectorPlan::Continue { teams, .. } => {
                        self.ctx.board.events().emit(RunEvent::Planned {
                            agent: DIRECTOR_ID.into(),
                            items: teams.len(),
                        });
                        self.goals.extend(teams);
                        self.ctx.board.set_phase("running");
                        self.ctx.board.set_agent_state(DIRECTOR_ID, "directing");
                        self.dispatch(myself);
                    }
                }
            }
            Err(error) if attempt < self.ctx.config.config.max_plan_retries => {
                warn!(%error, attempt, "invalid director plan: asking again");
                self.start_turn(myself, attempt + 1, error.repair_prompt());
            }
            Err(error) => {
                self.stop(
                    myself,
                    format!(
                        "the director gave no valid plan after {} attempts: {error}",
                        attempt + 1
                    ),
                    false,
                    false,
                )
                .await;
            }
        }
    }

    /// Gives pending goals to idle EMs; re-plans when everything ran dry.
    fn dispatch(&mut self, myself: &ActorRef<DirectorMsg>) {
        if self.flat || self.stopping || self.ctx.is_stopping() {
            return;
        }
        for lead in &mut self.leads {
            if lead.busy || lead.actor.is_none() {
                continue;
            }
            let Some(goal) = self.goals.pop_front() else {
                break;
            };
            lead.busy = true;
            lead.goal = Some(goal.clone());
            info!(team = %lead.team, goal = %goal.name, "goal assigned");
            if let Some(actor) = &lead.actor {
                let _ = actor.send_message(LeadMsg::Goal(goal));
            }
        }
        let all_idle = self.leads.iter().all(|l| !l.busy);
        if all_idle && self.goals.is_empty() && self.turn.is_none() {
            if let Some(who) = self.who.clone() {
                let tasks = self.ctx.board.snapshot().tasks;
                let prompt = prompts::director_replan(&self.ctx, &who, &self.history, &tasks);
                self.ctx.board.set_phase("re-planning");
                self.start_turn(myself, 0, prompt);
            }
        }
    }

    fn free_lead(&mut self, team: &str) {
        if let Some(lead) = self.leads.iter_mut().find(|l| l.team == team) {
            lead.busy = false;
            lead.goal = None;
        }
    }

    fn merge_team(&mut self, myself: &ActorRef<DirectorMsg>, team: &str) {
        let Some(lead) = self.leads.iter().find(|l| l.team == team) else {
            return;
        };
        let done = self.ctx.board.tasks_of_team(team);
        let ok = done.iter().filter(|t| t.state == TaskState::Done).count();
        if ok == 0 {
            // Nothing landed on the team branch: nothing to merge.
            self.history.push(format!(
                "team {team}: no task succeeded for goal {:?}",
                lead.goal.as_ref().map(|g| &g.name)
            ));
            self.free_lead(team);
            self.dispatch(myself);
            return;
        }
        self.ctx
            .board
            .set_agent_state(DIRECTOR_ID, format!("merging {}", lead.branch));
        let strategy = crate::gitmap::strategy(self.ctx.config.config.merge_strategy);
        let mut request =
            MergeRequest::new(lead.branch.clone(), self.ctx.base_branch.clone(), strategy);
        request.message = Some(format!(
            "Merge {} ({})",
            lead.branch,
            lead.goal
                .as_ref()
                .map(|g| g.name.as_str())
                .unwrap_or("team work")
        ));
        request.verify = true;
        let git = self.ctx.git.clone();
        let me = myself.clone();
        let team = team.to_string();
        tokio::spawn(async move {
            let outcome = git.merge(request).await.map_err(|e| e.to_string());
            let _ = me.send_message(DirectorMsg::TeamMerged { team, outcome });
        });
    }

    fn on_team_merged(
        &mut self,
        myself: &ActorRef<DirectorMsg>,
        team: &str,
        outcome: Result<MergeOutcome, String>,
    ) {
        let Some(slot) = self.leads.iter().position(|l| l.team == team) else {
            return;
        };
        let branch = self.leads[slot].branch.clone();
        let goal = self.leads[slot]
            .goal
            .as_ref()
            .map(|g| g.name.clone())
            .unwrap_or_default();
        let board = &self.ctx.board;
        match outcome {
            Ok(MergeOutcome::Merged { commit, .. }) | Ok(MergeOutcome::UpToDate { commit }) => {
                board.count(|t| t.merges += 1);
                board.events().emit(RunEvent::Merged {
                    source: branch.clone(),
                    target: self.ctx.base_branch.clone(),
                    commit,
                });
                self.history.push(format!(
                    "merged {branch} (goal {goal}) into {}",
                    self.ctx.base_branch
                ));
                // Bring the team branch up to the new base so its next goal starts there.
                let strategy = crate::gitmap::strategy(self.ctx.config.config.merge_strategy);
                let mut request = MergeRequest::new(self.ctx.base_branch.clone(), branch, strategy);
                request.verify = false;
                let git = self.ctx.git.clone();
                let me = myself.clone();
                let team = team.to_string();
                tokio::spawn(async move {
                    if let Err(error) = git.merge(request).await {
                        warn!(%error, "could not fast-forward the team branch");
                    }
                    let _ = me.send_message(DirectorMsg::TeamSynced { team });
                });
            }
            Ok(MergeOutcome::Conflict { files }) => {
                board.count(|t| t.conflicts += 1);
                board.events().emit(RunEvent::Conflict {
                    source: branch,
                    target: self.ctx.base_branch.clone(),
                    files: files.clone(),
                });
                if let Some(actor) = &self.leads[slot].actor {
                    let _ = actor.send_message(LeadMsg::ResolveWithBase { files });
                }
            }
            Ok(MergeOutcome::VerifyFailed { output_tail }) => {
                self.history.push(format!("{branch} failed verification"));
                if let Some(actor) = &self.leads[slot].actor {
                    let _ = actor.send_message(LeadMsg::FixVerification {
                        output: output_tail,
                    });
                }
            }
            Ok(MergeOutcome::Skipped { files }) => {
                board.count(|t| t.conflicts += 1);
                self.history.push(format!(
                    "{branch} left unmerged: conflicts in {}",
                    files.join(", ")
                ));
                self.free_lead(team);
                self.dispatch(myself);
            }
            Err(error) => {
                self.history
                    .push(format!("merging {branch} failed: {error}"));
                self.free_lead(team);
                self.dispatch(myself);
            }
        }
    }

    /// Ordered shutdown: no new work, leads (and through them workers and their processes)
    /// first, then the Director's own session, then the Director itself.
    async fn stop(
        &mut self,
        myself: &ActorRef<DirectorMsg>,
        reason: String,
        force: bool,
        completed: bool,
    ) {
        if force {
            self.ctx.force_stop();
        }
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.ctx.begin_stop();
        info!(%reason, force, "stopping the run");
        self.ctx.board.set_phase(format!("stopping: {reason}"));
        self.ctx.board.set_agent_state(DIRECTOR_ID, "stopping");
        let grace = self.ctx.config.config.kill_grace() + Duration::from_secs(30);
        // All teams at once: each lead stops its workers' processes in parallel.
        let leads = self
            .leads
            .iter_mut()
            .filter_map(|lead| lead.actor.take())
            .collect();
        crate::restart::shutdown_all(leads, LeadMsg::Shutdown, grace).await;
        if let Some((_, guard)) = self.turn.take() {
            guard.shutdown().await;
        }
        self.ctx.board.update_agent(DIRECTOR_ID, |a| a.pid = None);
        self.ctx.board.set_agent_state(DIRECTOR_ID, "stopped");
        self.ctx.board.events().emit(RunEvent::RunFinished {
            reason: reason.clone(),
        });
        let _ = self.ended.send(Some(RunEnd {
            reason: reason.clone(),
            completed,
        }));
        myself.stop(Some(reason));
    }
}

/// Board bookkeeping shared by the Director and the leads for their own sessions.
pub fn apply_turn_update(
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
        TurnUpdate::Exited { .. } => board.update_agent(agent, |a| a.pid = None),
    }
}
