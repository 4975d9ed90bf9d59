//! The team lead actor: an Engineering Manager (hierarchy mode) or the flat Coordinator.
//!
//! A lead owns its team's task queue (on the [`Board`](crate::board::Board), outside the
//! worker actors), supervises one Worker per stable slot, and runs its own claude session for
//! planning (goal -> tasks), reviewing finished work and, as Coordinator, re-planning.
//!
//! Per finished task: commit what the worker left uncommitted, diff summary, review turn,
//! then merge the worker branch into the target (team branch, or the base branch for the
//! Coordinator) with the configured strategy; conflicts go back to the same worker session.
//! Workers are restarted by this lead with a [`RestartPolicy`]; their task is re-queued.
//!
//! Long work (claude turns, git) runs in spawned tasks that message the lead back.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cco_git::{MergeOutcome, MergeRequest};
use cco_protocol::{ReviewDecision, TaskPlan, TaskSpec, TeamGoal};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tracing::{info, warn};

use crate::board::{Role, TaskRecord, TaskState};
use crate::context::RunContext;
use crate::director::DirectorMsg;
use crate::events::RunEvent;
use crate::prompts;
use crate::restart::{RestartDecision, RestartPolicy, RestartTracker};
use crate::session::{spawn_turn, AgentIdentity, TurnEnd, TurnGuard, TurnRequest, TurnUpdate};
use crate::worker::{Job, WorkerActor, WorkerArgs, WorkerMsg, WorkerReport};

/// How many review rounds a task gets before it is merged as is or failed.
const MAX_REVIEW_ROUNDS: u32 = 2;

pub enum LeadMsg {
    /// Spawn workers; the Coordinator also starts planning.
    Start,
    /// EM only: a goal from the Director.
    Goal(TeamGoal),
    /// EM only: the team branch conflicts with the base branch; resolve through a worker.
    ResolveWithBase {
        files: Vec<String>,
    },
    /// EM only: the base branch's verify command failed on the team's work.
    FixVerification {
        output: String,
    },
    Turn(TurnUpdate),
    TurnEnded(TurnEnd),
    WorkerReady {
        slot: usize,
        worktree: PathBuf,
        branch: String,
    },
    WorkerReport {
        slot: usize,
        worker: String,
        report: WorkerReport,
        requeue: bool,
    },
    /// The worker's work was committed and summarised: review it.
    ReviewInput {
        key: String,
        diff: Result<cco_git::DiffSummary, String>,
        result_text: String,
    },
    ReviewEnded {
        key: String,
        attempt: u32,
        end: TurnEnd,
    },
    MergeDone {
        key: String,
        outcome: Result<MergeOutcome, String>,
    },
    WorkerSynced {
        slot: usize,
    },
    RespawnWorker {
        slot: usize,
    },
    Shutdown(RpcReplyPort<()>),
}

/// What the lead's own claude session is doing.
#[derive(Debug, Clone)]
enum LeadTurn {
    Plan { attempt: u32 },
}

struct Slot {
    id: String,
    actor: Option<ActorRef<WorkerMsg>>,
    worktree: Option<PathBuf>,
    branch: Option<String>,
    /// Task key the slot is busy with (from assignment until merged or failed).
    busy: Option<String>,
    restarts: RestartTracker,
    dead: bool,
}

pub struct LeadArgs {
    pub ctx: Arc<RunContext>,
    pub id: String,
    pub role: Role,
    pub team: String,
    /// Branch the workers merge into (team branch, or base for the Coordinator).
    pub target_branch: String,
    pub worker_ids: Vec<String>,
    pub director: ActorRef<DirectorMsg>,
}

pub struct LeadState {
    ctx: Arc<RunContext>,
    who: AgentIdentity,
    team: String,
    target_branch: String,
    director: ActorRef<DirectorMsg>,
    slots: Vec<Slot>,
    /// Task keys in planning order.
    queue: Vec<String>,
    specs: std::collections::HashMap<String, TaskSpec>,
    result_texts: std::collections::HashMap<String, String>,
    goal: Option<TeamGoal>,
    turn: Option<(LeadTurn, TurnGuard)>,
    /// Reviews in progress, each in its own fork of the lead's session: they run in parallel.
    reviews: std::collections::HashMap<String, TurnGuard>,
    pending_turns: VecDeque<(LeadTurn, String)>,
    session_id: Option<String>,
    /// Tasks waiting for a merge to be (re)tried after a conflict resolution.
    merge_only: std::collections::HashSet<String>,
    /// Commits on the worker branch of a task under review, counted into the totals on merge.
    commits_in_review: std::collections::HashMap<String, usize>,
    /// Resumed tasks that must go to the worker whose session they were in: key → (worker, session).
    pinned: std::collections::HashMap<String, (String, String)>,
    shutting_down: bool,
    reported_idle: bool,
    replans: u32,
}

pub struct LeadActor;

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
        let (who, _) = ctx.prepare_agent(&id, role, &team, &target_branch).await?;
        let policy = RestartPolicy {
            initial_backoff: ctx.config.config.restart_backoff(),
            ..RestartPolicy::default()
        };
        let slots = worker_ids
            .into_iter()
            .map(|wid| Slot {
                id: wid,
                actor: None,
                worktree: None,
                branch: None,
                busy: None,
                restarts: RestartTracker::new(policy),
                dead: false,
            })
            .collect();
        ctx.board.set_agent_state(&id, "starting workers");
        Ok(LeadState {
            ctx,
            who,
            team,
            target_branch,
            director,
            slots,
            queue: Vec::new(),
            specs: Default::default(),
            result_texts: Default::default(),
            goal: None,
            turn: None,
            reviews: Default::default(),
            pending_turns: VecDeque::new(),
            session_id: None,
            merge_only: Default::default(),
            pinned: Default::default(),
            commits_in_review: Default::default(),
            shutting_down: false,
            reported_idle: false,
            replans: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<LeadMsg>,
        msg: LeadMsg,
        state: &mut LeadState,
    ) -> Result<(), ActorProcessingErr> {
        if state.shutting_down && !matches!(msg, LeadMsg::Shutdown(_)) {
            return Ok(());
        }
        match msg {
            LeadMsg::Start => {
                for slot in 0..state.slots.len() {
                    state.spawn_worker(&myself, slot).await;
                }
                let restored = if state.ctx.resumed {
                    state.restore_from_board()
                } else {
                    0
                };
                if restored > 0 {
                    info!(lead = %state.who.id, restored, "resuming the team's tasks");
                    state.ctx.board.set_agent_state(&state.who.id, "leading");
                    state.schedule();
                    state.check_idle(&myself);
                } else if state.who.role == Role::Coordinator {
                    let prompt =
                        prompts::coordinator_plan(&state.ctx, &state.who, &state.target_branch);
                    state.enqueue_turn(&myself, LeadTurn::Plan { attempt: 0 }, prompt);
                } else {
                    state
                        .ctx
                        .board
                        .set_agent_state(&state.who.id, "waiting for a goal");
                }
            }
            LeadMsg::Goal(goal) => {
                state.reported_idle = false;
                let prompt = prompts::em_plan(&state.ctx, &state.who, &state.target_branch, &goal);
                state.goal = Some(goal);
                state.enqueue_turn(&myself, LeadTurn::Plan { attempt: 0 }, prompt);
            }
            LeadMsg::ResolveWithBase { files } => {
                state.reported_idle = false;
                let base = state.ctx.base_branch.clone();
                let mut spec = TaskSpec::new(
                    format!("merge-{}", state.ctx.base_branch.replace('/', "-")),
                    format!("Merge {base} into the team branch"),
                );
                spec.description = format!(
                    "The team branch conflicts with {base} in: {}",
                    files.join(", ")
                );
                let key = state.add_task(spec.clone());
                // A conflict task skips review: it only carries the merge.
                state.merge_only.insert(key.clone());
                state
                    .ctx
                    .board
                    .update_task(&key, |t| t.state = TaskState::Running);
                if let Some(slot) = state.idle_slot() {
                    state.assign(
                        slot,
                        Job::ResolveConflict {
                            key,
                            spec,
                            target_branch: base,
                            session_id: None,
                        },
                    );
                } else {
                    state
                        .ctx
                        .board
                        .update_task(&key, |t| t.state = TaskState::Pending);
                }
            }
            LeadMsg::FixVerification { output } => {
                state.reported_idle = false;
                let mut spec = TaskSpec::new("fix-verify", "Make the verify command pass");
                spec.description = format!("Merging the team's work into the base branch failed verification. Output:\n{output}");
                state.add_task(spec);
                state.schedule();
            }
            LeadMsg::Turn(update) => state.on_turn_update(update),
            LeadMsg::TurnEnded(end) => state.on_turn_end(&myself, end),
            LeadMsg::WorkerReady {
                slot,
                worktree,
                branch,
            } => {
                if let Some(s) = state.slots.get_mut(slot) {
                    s.worktree = Some(worktree);
                    s.branch = Some(branch);
                }
                state.schedule();
            }
            LeadMsg::WorkerReport {
                slot,
                worker,
                report,
                requeue,
            } => state.on_worker_report(&myself, slot, &worker, report, requeue),
            LeadMsg::ReviewInput {
                key,
                diff,
                result_text,
            } => state.on_review_input(&myself, key, diff, result_text),
            LeadMsg::ReviewEnded { key, attempt, end } => {
                state.on_review_end(&myself, key, attempt, end)
            }
            LeadMsg::MergeDone { key, outcome } => state.on_merge_done(&myself, key, outcome),
            LeadMsg::WorkerSynced { slot } => {
                if let Some(s) = state.slots.get_mut(slot) {
                    s.busy = None;
                }
                state.schedule();
                state.check_idle(&myself);
            }
            LeadMsg::RespawnWorker { slot } => {
                state.spawn_worker(&myself, slot).await;
                state.schedule();
            }
            LeadMsg::Shutdown(reply) => {
                state.shutting_down = true;
                state.ctx.board.set_agent_state(&state.who.id, "stopping");
                state.stop_workers().await;
                let mut turns: Vec<TurnGuard> =
                    state.reviews.drain().map(|(_, guard)| guard).collect();
                turns.extend(state.turn.take().map(|(_, guard)| guard));
                let stops: Vec<_> = turns
                    .into_iter()
                    .map(|guard| tokio::spawn(guard.shutdown()))
                    .collect();
                for stop in stops {
                    let _ = stop.await;
                }
                state
                    .ctx
                    .board
                    .update_agent(&state.who.id, |a| a.pid = None);
                state.ctx.board.set_agent_state(&state.who.id, "stopped");
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<LeadMsg>,
        event: SupervisionEvent,
        state: &mut LeadState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, failed, reason)) = crate::restart::stopped_child(&event) else {
            return Ok(());
        };
        let Some(slot) = state.slots.iter().position(|s| {
            s.actor
                .as_ref()
                .is_some_and(|a| a.get_id() == cell.get_id())
        }) else {
            return Ok(());
        };
        state.slots[slot].actor = None;
        if state.shutting_down {
            return Ok(());
        }
        let worker_id = state.slots[slot].id.clone();
        warn!(worker = %worker_id, failed, %reason, "worker actor stopped unexpectedly");
        // Its task goes back to the queue: the task lives here, not in the dead actor.
        if let Some(key) = state.slots[slot].busy.take() {
            state.ctx.board.update_task(&key, |t| {
                t.state = TaskState::Pending;
                t.worker = None;
            });
        }
        // A killed actor is as unexpected as a failed one: workers are permanent.
        match state.slots[slot].restarts.on_stop(true, Instant::now()) {
            RestartDecision::RestartAfter(delay) => {
                let restarts = state.slots[slot].restarts.total();
                state
                    .ctx
                    .board
                    .update_agent(&worker_id, |a| a.restarts = restarts);
                state.ctx.board.set_agent_state(&worker_id, "restarting");
                state.ctx.board.events().emit(RunEvent::ActorRestarted {
                    agent: worker_id,
                    restarts,
                });
                myself.send_after(delay, move || LeadMsg::RespawnWorker { slot });
            }
            RestartDecision::Leave | RestartDecision::GiveUp => {
                state.slots[slot].dead = true;
                state
                    .ctx
                    .board
                    .set_agent_state(&worker_id, "dead: too many restarts");
                if state.slots.iter().all(|s| s.dead) {
                    return Err(format!("{}: every worker gave up", state.who.id).into());
                }
                state.schedule();
            }
        }
        Ok(())
    }
}

impl LeadState {
    async fn spawn_worker(&mut self, myself: &ActorRef<LeadMsg>, slot: usize) {
        let id = self.slots[slot].id.clone();
        self.ctx.board.register_agent(
            &id,
            Role::Worker,
            Some(&self.team),
            Some(&self.who.id),
            Some(&self.ctx.model_for(Role::Worker)),
        );
        self.ctx
            .board
            .update_agent(&id, |a| a.restarts = self.slots[slot].restarts.total());
        let args = WorkerArgs {
            ctx: Arc::clone(&self.ctx),
            id: id.clone(),
            team: self.team.clone(),
            lead: myself.clone(),
            slot,
            target_branch: self.target_branch.clone(),
        };
        match WorkerActor::spawn_linked(None, WorkerActor, args, myself.get_cell()).await {
            Ok((actor, _)) => {
                self.ctx.register_cell(&id, actor.get_cell());
                self.slots[slot].actor = Some(actor);
            }
            Err(error) => {
                warn!(worker = %id, %error, "worker failed to start");
                match self.slots[slot].restarts.on_stop(true, Instant::now()) {
                    RestartDecision::RestartAfter(delay) => {
                        myself.send_after(delay, move || LeadMsg::RespawnWorker { slot });
                    }
                    _ => {
                        self.slots[slot].dead = true;
                        self.ctx
                            .board
                            .set_agent_state(&id, format!("dead: {error}"));
                    }
                }
            }
        }
    }

    fn add_task(&mut self, mut spec: TaskSpec) -> String {
        let mut key = format!("{}/{}", self.team, spec.id);
        let mut n = 2;
        while self.specs.contains_key(&key) {
            key = format!("{}/{}-{n}", self.team, spec.id);
            n += 1;
        }
        if key != format!("{}/{}", self.team, spec.id) {
            spec.id = key.rsplit('/').next().unwrap_or(&spec.id).to_string();
        }
        self.ctx.board.add_task(TaskRecord {
            key: key.clone(),
            team: self.team.clone(),
            id: spec.id.clone(),
            title: spec.title.clone(),
            state: TaskState::Pending,
            worker: None,
            session_id: None,
            attempts: 0,
            review_rounds: 0,
            failure: None,
            merged_commit: None,
            cost_usd: 0.0,
        });
        self.ctx.board.set_spec(&key, spec.clone());
        self.specs.insert(key.clone(), spec);
        self.queue.push(key.clone());
        key
    }

    /// Resume: takes this team's tasks back from the journaled board. Tasks that were in
    /// flight go back to the queue, pinned to their worker so its session can be resumed
    /// (same worktree, same config dir). Returns how many tasks were restored.
    fn restore_from_board(&mut self) -> usize {
        self.session_id = self
            .ctx
            .board
            .agent(&self.who.id)
            .and_then(|a| a.session_id);
        let mut tasks = self.ctx.board.tasks_of_team(&self.team);
        tasks.sort_by(|a, b| a.key.cmp(&b.key));
        for task in &tasks {
            let Some(spec) = self.ctx.board.spec(&task.key) else {
                continue;
            };
            self.specs.insert(task.key.clone(), spec);
            self.queue.push(task.key.clone());
            if matches!(
                task.state,
                TaskState::Running | TaskState::Review | TaskState::Merging
            ) {
                if let (Some(worker), Some(session)) =
                    (task.worker.clone(), task.session_id.clone())
                {
                    self.pinned.insert(task.key.clone(), (worker, session));
                }
                self.ctx
                    .board
                    .update_task(&task.key, |t| t.state = TaskState::Pending);
            }
        }
        tasks.len()
    }

    fn idle_slot(&self) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.actor.is_some() && s.worktree.is_some() && s.busy.is_none() && !s.dead)
    }

    fn assign(&mut self, slot: usize, job: Job) {
        let key = job.key().to_string();
        let Some(actor) = self.slots[slot].actor.clone() else {
            return;
        };
        let worker = self.slots[slot].id.clone();
        self.slots[slot].busy = Some(key.clone());
        self.ctx.board.update_task(&key, |t| {
            t.state = TaskState::Running;
            t.worker = Some(worker.clone());
        });
        self.ctx.board.events().emit(RunEvent::TaskAssigned {
            task: key.clone(),
            worker: worker.clone(),
        });
        if actor.send_message(WorkerMsg::Assign(job)).is_err() {
            // The supervision event for the dead worker re-queues the task.
            warn!(%worker, task = %key, "worker gone before assignment");
        }
    }

    /// Hands ready tasks (dependencies done) to idle workers; fails tasks whose dependency failed.
    fn schedule(&mut self) {
        if self.shutting_down || self.ctx.is_stopping() {
            return;
        }
        while let Some(slot) = self.idle_slot() {
            let mut chosen = None;
            let mut failed = Vec::new();
            let slot_id = self.slots[slot].id.clone();
            for key in &self.queue {
                let Some(task) = self.ctx.board.task(key) else {
                    continue;
                };
                if task.state != TaskState::Pending {
                    continue;
                }
                if self
                    .pinned
                    .get(key)
                    .is_some_and(|(worker, _)| *worker != slot_id)
                {
                    continue;
                }
                let spec = &self.specs[key];
                let mut ready = true;
                let mut failed_dep = None;
                for dep in &spec.depends_on {
                    let dep_key = format!("{}/{}", self.team, dep);
                    match self.ctx.board.task(&dep_key).map(|t| t.state) {
                        Some(TaskState::Done) | None => {}
                        Some(TaskState::Failed) => failed_dep = Some(dep.clone()),
                        Some(_) => ready = false,
                    }
                }
                if let Some(dep) = failed_dep {
                    failed.push((key.clone(), dep));
                    continue;
                }
                if ready {
                    chosen = Some(key.clone());
                    break;
                }
            }
            for (key, dep) in failed {
                self.fail_task(&key, &format!("dependency {dep} failed"));
            }
            let Some(key) = chosen else { break };
            let spec = self.specs[&key].clone();
            let job = if let Some((_, session_id)) = self.pinned.remove(&key) {
                Job::Resume {
                    key,
                    spec,
                    session_id,
                }
            } else if self.merge_only.contains(&key) {
                Job::ResolveConflict {
                    key,
                    spec,
                    target_branch: self.ctx.base_branch.clone(),
                    session_id: None,
                }
            } else {
                Job::Task { key, spec }
            };
            self.assign(slot, job);
        }
    }

    fn fail_task(&mut self, key: &str, reason: &str) {
        warn!(task = key, reason, "task failed");
        self.ctx.board.update_task(key, |t| {
            t.state = TaskState::Failed;
            t.failure = Some(reason.to_string());
        });
        self.ctx.board.count(|t| t.tasks_failed += 1);
        self.ctx.board.events().emit(RunEvent::TaskFailed {
            task: key.to_string(),
            reason: reason.to_string(),
        });
    }

    fn slot_of_task(&self, key: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.busy.as_deref() == Some(key))
    }

    /// Frees a worker slot after its task ended; the worker's branch is moved to the target
    /// tip first so the next task starts from the merged state.
    fn release_slot(&mut self, myself: &ActorRef<LeadMsg>, key: &str) {
        let Some(slot) = self.slot_of_task(key) else {
            self.schedule();
            self.check_idle(myself);
            return;
        };
        let Some(worktree) = self.slots[slot].worktree.clone() else {
            return;
        };
        let git = self.ctx.git.clone();
        let target = self.target_branch.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            if let Err(error) = git.sync_worktree(&worktree, &target).await {
                warn!(%error, "could not sync worker worktree");
            }
            let _ = me.send_message(LeadMsg::WorkerSynced { slot });
        });
    }

    fn on_worker_report(
        &mut self,
        myself: &ActorRef<LeadMsg>,
        slot: usize,
        worker: &str,
        report: WorkerReport,
        requeue: bool,
    ) {
        match report {
            WorkerReport::Failed {
                key,
                reason,
                session_id,
            } => {
                if requeue {
                    self.ctx
                        .board
                        .update_task(&key, |t| t.state = TaskState::Pending);
                    if self.slots.get(slot).and_then(|s| s.busy.as_deref()) == Some(key.as_str()) {
                        self.slots[slot].busy = None;
                    }
                    self.schedule();
                    return;
                }
                self.ctx
                    .board
                    .update_task(&key, |t| t.session_id = session_id.or(t.session_id.take()));
                self.fail_task(&key, &reason);
                self.release_slot(myself, &key);
            }
            WorkerReport::Finished {
                key,
                result_text,
                session_id,
            } => {
                info!(task = %key, %worker, "task finished by worker");
                self.ctx.board.events().emit(RunEvent::TaskFinished {
                    task: key.clone(),
                    worker: worker.to_string(),
                });
                self.ctx.board.update_task(&key, |t| {
                    t.session_id = session_id.or(t.session_id.take());
                    t.state = TaskState::Review;
                });
                self.result_texts.insert(key.clone(), result_text.clone());
                let Some(s) = self.slots.get(slot) else {
                    return;
                };
                let (Some(worktree), Some(branch)) = (s.worktree.clone(), s.branch.clone()) else {
                    return;
                };
                let git = self.ctx.git.clone();
                let target = self.target_branch.clone();
                let me = myself.clone();
                let title = self
                    .specs
                    .get(&key)
                    .map(|s| s.title.clone())
                    .unwrap_or_default();
                tokio::spawn(async move {
                    let diff = async {
                        git.commit_all(&worktree, &format!("{key}: {title}"))
                            .await
                            .map_err(|e| e.to_string())?;
                        git.diff_summary(&target, &branch)
                            .await
                            .map_err(|e| e.to_string())
                    }
                    .await;
                    let _ = me.send_message(LeadMsg::ReviewInput {
                        key,
                        diff,
                        result_text,
                    });
                });
            }
        }
    }

    fn on_review_input(
        &mut self,
        myself: &ActorRef<LeadMsg>,
        key: String,
        diff: Result<cco_git::DiffSummary, String>,
        result_text: String,
    ) {
        let diff = match diff {
            Ok(diff) => diff,
            Err(error) => {
                self.fail_task(&key, &format!("could not commit or diff the work: {error}"));
                self.release_slot(myself, &key);
                return;
            }
        };
        self.commits_in_review
            .insert(key.clone(), diff.commits.len());
        if self.merge_only.contains(&key) {
            self.start_merge(myself, &key);
            return;
        }
        if diff.commits.is_empty() {
            let rounds = self
                .ctx
                .board
                .task(&key)
                .map(|t| t.review_rounds)
                .unwrap_or(0);
            if rounds < MAX_REVIEW_ROUNDS {
                self.send_back(&key, "No changes were committed on your branch. Implement the task and commit your work with git.");
            } else {
                self.fail_task(&key, "the worker committed nothing");
                self.release_slot(myself, &key);
            }
            return;
        }
        let Some(spec) = self.specs.get(&key).cloned() else {
            return;
        };
        let prompt = prompts::review(&self.ctx, &self.who, &spec, &result_text, &diff);
        self.start_review(myself, key, prompt, 0, None);
    }

    /// Revise: the same worker session gets the feedback.
    fn send_back(&mut self, key: &str, feedback: &str) {
        let Some(slot) = self.slot_of_task(key) else {
            return;
        };
        let Some(spec) = self.specs.get(key).cloned() else {
            return;
        };
        let session_id = self.ctx.board.task(key).and_then(|t| t.session_id);
        self.ctx.board.update_task(key, |t| {
            t.review_rounds += 1;
            t.state = TaskState::Running;
        });
        self.ctx.board.events().emit(RunEvent::TaskRevised {
            task: key.to_string(),
            feedback: feedback.to_string(),
        });
        if let Some(actor) = &self.slots[slot].actor {
            let _ = actor.send_message(WorkerMsg::Assign(Job::Revise {
                key: key.to_string(),
                spec,
                feedback: feedback.to_string(),
                session_id,
            }));
        }
    }

    fn start_merge(&mut self, myself: &ActorRef<LeadMsg>, key: &str) {
        let Some(slot) = self.slot_of_task(key) else {
            return;
        };
        let Some(branch) = self.slots[slot].branch.clone() else {
            return;
        };
        self.ctx
            .board
            .update_task(key, |t| t.state = TaskState::Merging);
        let strategy = crate::gitmap::strategy(self.ctx.config.config.merge_strategy);
        let mut request = MergeRequest::new(branch, self.target_branch.clone(), strategy);
        request.message = Some(format!("Merge {key}"));
        // The verify gate guards the base branch only.
        request.verify = self.target_branch == self.ctx.base_branch;
        let git = self.ctx.git.clone();
        let me = myself.clone();
        let key = key.to_string();
        tokio::spawn(async move {
            let outcome = git.merge(request).await.map_err(|e| e.to_string());
            let _ = me.send_message(LeadMsg::MergeDone { key, outcome });
        });
    }

    fn on_merge_done(
        &mut self,
        myself: &ActorRef<LeadMsg>,
        key: String,
        outcome: Result<MergeOutcome, String>,
    ) {
        let board = &self.ctx.board;
        match outcome {
            Ok(MergeOutcome::Merged { commit, .. }) | Ok(MergeOutcome::UpToDate { commit }) => {
                board.update_task(&key, |t| {
                    t.state = TaskState::Done;
                    t.merged_commit = Some(commit.clone());
                });
                let commits = self.commits_in_review.remove(&key).unwrap_or(0) as u32;
                board.count(|t| {
                    t.tasks_done += 1;
                    t.merges += 1;
                    t.commits += commits;
                });
                let source = self
                    .slot_of_task(&key)
                    .and_then(|s| self.slots[s].branch.clone())
                    .unwrap_or_default();
                board.events().emit(RunEvent::Merged {
                    source,
                    target: self.target_branch.clone(),
                    commit,
                });
                self.merge_only.remove(&key);
                self.release_slot(myself, &key);
            }
            Ok(MergeOutcome::Conflict { files }) => {
                board.count(|t| t.conflicts += 1);
                let source = self
                    .slot_of_task(&key)
                    .and_then(|s| self.slots[s].branch.clone())
                    .unwrap_or_default();
                board.events().emit(RunEvent::Conflict {
                    source,
                    target: self.target_branch.clone(),
                    files: files.clone(),
                });
                let rounds = board.task(&key).map(|t| t.review_rounds).unwrap_or(0);
                let Some(slot) = self.slot_of_task(&key) else {
                    return;
                };
                if rounds > MAX_REVIEW_ROUNDS + 2 {
                    self.fail_task(
                        &key,
                        &format!(
                            "merge conflicts could not be resolved: {}",
                            files.join(", ")
                        ),
                    );
                    self.release_slot(myself, &key);
                    return;
                }
                board.update_task(&key, |t| {
                    t.review_rounds += 1;
                    t.state = TaskState::Running;
                });
                self.merge_only.insert(key.clone());
                let Some(spec) = self.specs.get(&key).cloned() else {
                    return;
                };
                let session_id = board.task(&key).and_then(|t| t.session_id);
                if let Some(actor) = &self.slots[slot].actor {
                    let _ = actor.send_message(WorkerMsg::Assign(Job::ResolveConflict {
                        key,
                        spec,
                        target_branch: self.target_branch.clone(),
                        session_id,
                    }));
                }
            }
            Ok(MergeOutcome::Skipped { files }) => {
                board.count(|t| t.conflicts += 1);
                self.fail_task(
                    &key,
                    &format!("merge skipped (conflicts in {})", files.join(", ")),
                );
                self.release_slot(myself, &key);
            }
            Ok(MergeOutcome::VerifyFailed { output_tail }) => {
                let rounds = board.task(&key).map(|t| t.review_rounds).unwrap_or(0);
                if rounds < MAX_REVIEW_ROUNDS {
                    self.merge_only.remove(&key);
                    self.send_back(&key, &format!("The verify command failed on the merged result. Fix it and commit.\n{output_tail}"));
                } else {
                    self.fail_task(&key, "verify command kept failing");
                    self.release_slot(myself, &key);
                }
            }
            Err(error) => {
                self.fail_task(&key, &format!("merge failed: {error}"));
                self.release_slot(myself, &key);
            }
        }
    }

    fn enqueue_turn(&mut self, myself: &ActorRef<LeadMsg>, kind: LeadTurn, prompt: String) {
        self.pending_turns.push_back((kind, prompt));
        self.start_next_turn(myself);
    }

    fn start_next_turn(&mut self, myself: &ActorRef<LeadMsg>) {
        if self.turn.is_some() || self.shutting_down {
            return;
        }
        let Some((kind, prompt)) = self.pending_turns.pop_front() else {
            return;
        };
        self.ctx.board.set_agent_state(&self.who.id, "planning");
        let request = TurnRequest {
            prompt,
            resume: self.session_id.clone(),
            task_key: None,
            wall_timeout: Some(self.ctx.task_timeout()),
            timeout_prompt: None,
            resume_prompt: None,
            fork: false,
            sync_before: Some((self.who.cwd.clone(), self.target_branch.clone())),
        };
        let notify_ref = myself.clone();
        let finish_ref = myself.clone();
        let guard = spawn_turn(
            Arc::clone(&self.ctx),
            self.who.clone(),
            request,
            move |update| {
                let _ = notify_ref.send_message(LeadMsg::Turn(update));
            },
            move |end| {
                let _ = finish_ref.send_message(LeadMsg::TurnEnded(end));
            },
        );
        self.turn = Some((kind, guard));
    }

    fn on_turn_update(&mut self, update: TurnUpdate) {
        crate::director::apply_turn_update(&self.ctx, &self.who.id, update, &mut self.session_id);
    }

    fn on_turn_end(&mut self, myself: &ActorRef<LeadMsg>, end: TurnEnd) {
        let Some((kind, _guard)) = self.turn.take() else {
            return;
        };
        self.ctx.board.update_agent(&self.who.id, |a| {
            a.pid = None;
            a.current_task = None;
        });
        let text = match end {
            TurnEnd::Cancelled => return,
            TurnEnd::Done {
                result_text,
                session_id,
                ..
            } => {
                if session_id.is_some() {
                    self.session_id = session_id;
                }
                Ok(result_text)
            }
            TurnEnd::Failed {
                reason, session_id, ..
            } => {
                if session_id.is_some() {
                    self.session_id = session_id;
                }
                Err(reason)
            }
        };
        let max_retries = self.ctx.config.config.max_plan_retries;
        match kind {
            LeadTurn::Plan { attempt } => match text.map(|t| cco_protocol::parse_task_plan(&t)) {
                Ok(Ok(parsed)) => {
                    for warning in parsed.warnings {
                        self.ctx.board.events().emit(RunEvent::Warning {
                            message: format!("{}: {warning}", self.who.id),
                        });
                    }
                    match parsed.value {
                        TaskPlan::Continue { tasks } => {
                            self.ctx.board.events().emit(RunEvent::Planned {
                                agent: self.who.id.clone(),
                                items: tasks.len(),
                            });
                            for task in tasks {
                                self.add_task(task);
                            }
                            self.ctx.board.set_agent_state(&self.who.id, "leading");
                            self.schedule();
                        }
                        TaskPlan::Complete { reason } => {
                            info!(lead = %self.who.id, %reason, "lead reports its work complete");
                            // No more planning from this lead until it gets new work.
                            self.reported_idle = true;
                            if self.who.role == Role::Coordinator {
                                self.ctx.board.set_agent_state(&self.who.id, "complete");
                                let _ = self
                                    .director
                                    .send_message(DirectorMsg::RunComplete { reason });
                            } else {
                                self.ctx
                                    .board
                                    .set_agent_state(&self.who.id, "idle: goal done");
                                let _ = self.director.send_message(DirectorMsg::TeamIdle {
                                    team: self.team.clone(),
                                });
                            }
                        }
                    }
                }
                Ok(Err(error)) if attempt < max_retries => {
                    warn!(lead = %self.who.id, %error, attempt, "invalid plan: asking again");
                    self.pending_turns.push_front((
                        LeadTurn::Plan {
                            attempt: attempt + 1,
                        },
                        error.repair_prompt(),
                    ));
                }
                Ok(Err(error)) => self.planning_failed(format!(
                    "no valid plan after {} attempts: {error}",
                    attempt + 1
                )),
                Err(reason) => self.planning_failed(format!("planning session failed: {reason}")),
            },
        }
        self.start_next_turn(myself);
        self.check_idle(myself);
    }

    /// A review turn, in a fork of the lead's session (its planning context) so reviews of
    /// several workers run at once; a re-ask resumes the review's own fork.
    fn start_review(
        &mut self,
        myself: &ActorRef<LeadMsg>,
        key: String,
        prompt: String,
        attempt: u32,
        review_session: Option<String>,
    ) {
        let (resume, fork) = match review_session {
            Some(session) => (Some(session), false),
            None => (self.session_id.clone(), self.session_id.is_some()),
        };
        let request = TurnRequest {
            prompt,
            resume,
            task_key: None,
            wall_timeout: Some(self.ctx.task_timeout()),
            timeout_prompt: None,
            resume_prompt: None,
            fork,
            sync_before: None,
        };
        let finish_ref = myself.clone();
        let review_key = key.clone();
        let guard = spawn_turn(
            Arc::clone(&self.ctx),
            self.who.clone(),
            request,
            |_| {},
            move |end| {
                let _ = finish_ref.send_message(LeadMsg::ReviewEnded {
                    key: review_key,
                    attempt,
                    end,
                });
            },
        );
        self.reviews.insert(key, guard);
        self.show_activity();
    }

    fn on_review_end(
        &mut self,
        myself: &ActorRef<LeadMsg>,
        key: String,
        attempt: u32,
        end: TurnEnd,
    ) {
        self.reviews.remove(&key);
        self.show_activity();
        let (text, review_session) = match end {
            TurnEnd::Cancelled => return,
            TurnEnd::Done {
                result_text,
                session_id,
                ..
            } => (Ok(result_text), session_id),
            TurnEnd::Failed {
                reason, session_id, ..
            } => (Err(reason), session_id),
        };
        match text.map(|t| cco_protocol::parse_review(&t)) {
            Ok(Ok(parsed)) => match parsed.value {
                ReviewDecision::Approve { .. } => self.start_merge(myself, &key),
                ReviewDecision::Revise { feedback } => {
                    let rounds = self
                        .ctx
                        .board
                        .task(&key)
                        .map(|t| t.review_rounds)
                        .unwrap_or(0);
                    if rounds < MAX_REVIEW_ROUNDS {
                        self.send_back(&key, &feedback);
                    } else {
                        // Enough rounds: the work is committed and reviewed; merge what is there.
                        self.start_merge(myself, &key);
                    }
                }
            },
            Ok(Err(error)) if attempt < self.ctx.config.config.max_plan_retries => {
                self.start_review(
                    myself,
                    key,
                    error.repair_prompt(),
                    attempt + 1,
                    review_session,
                );
            }
            // Fallback after the re-asks: the diff is non-empty and committed, so merge it.
            Ok(Err(_)) | Err(_) => {
                warn!(task = %key, "review gave no usable decision: merging the committed work");
                self.start_merge(myself, &key);
            }
        }
        self.check_idle(myself);
    }

    /// The lead's state line: planning, reviewing N tasks, or leading.
    fn show_activity(&self) {
        if self.turn.is_some() || self.shutting_down {
            return;
        }
        let state = match self.reviews.len() {
            0 => "leading".to_string(),
            n => format!("reviewing {n} task(s)"),
        };
        self.ctx.board.set_agent_state(&self.who.id, state);
    }

    fn planning_failed(&mut self, reason: String) {
        warn!(lead = %self.who.id, %reason, "planning failed");
        self.ctx
            .board
            .set_agent_state(&self.who.id, format!("planning failed: {reason}"));
        let _ = self.director.send_message(DirectorMsg::TeamFailed {
            team: self.team.clone(),
            reason,
        });
    }

    /// Everything of this team is done: tell the Director (EM) or re-plan (Coordinator).
    fn check_idle(&mut self, myself: &ActorRef<LeadMsg>) {
        if self.shutting_down
            || self.turn.is_some()
            || !self.reviews.is_empty()
            || !self.pending_turns.is_empty()
            || self.reported_idle
        {
            return;
        }
        if self.slots.iter().any(|s| s.busy.is_some()) {
            return;
        }
        let tasks = self.ctx.board.tasks_of_team(&self.team);
        if tasks.is_empty()
            || tasks
                .iter()
                .any(|t| !matches!(t.state, TaskState::Done | TaskState::Failed))
        {
            return;
        }
        if self.who.role == Role::Coordinator {
            self.replans += 1;
            let prompt = prompts::replan(&self.ctx, &self.who, &tasks);
            self.enqueue_turn(myself, LeadTurn::Plan { attempt: 0 }, prompt);
        } else {
            self.reported_idle = true;
            self.ctx
                .board
                .set_agent_state(&self.who.id, "idle: goal done");
            let _ = self.director.send_message(DirectorMsg::TeamIdle {
                team: self.team.clone(),
            });
        }
    }

    /// Stops every worker's process at once (each within its grace period), then the actors.
    async fn stop_workers(&mut self) {
        let grace = self.ctx.config.config.kill_grace() + Duration::from_secs(10);
        let workers = self
            .slots
            .iter_mut()
            .filter_map(|slot| slot.actor.take())
            .collect();
        crate::restart::shutdown_all(workers, WorkerMsg::Shutdown, grace).await;
    }
}
