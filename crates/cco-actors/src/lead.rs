//! The team lead actor: an Engineering Manager (hierarchy mode) or the flat Coordinator.
//!
//! A lead owns its team's task queue (on the [`Board`](crate::board::Board), outside the
//! worker actors), supervises one Worker per stable slot, and runs its own claude session for
//! planning (goal -> tasks), reviewing finished work and, as Coordinator, re-planning.
//!
//! Per finished turn: one urgent GitActor op *captures* it — commits what the worker left
//! uncommitted, freezes the work in the task's ref (`cco_git::task_ref`) and parks the
//! worktree at the target tip — and the worker is free for its next task at once. The frozen
//! work is then diffed, reviewed and merged into the target (team branch, or the base branch
//! for the Coordinator) from the ref, while the worker works on something else. Revisions
//! and conflict resolutions are *pinned* jobs: they run on the worker whose session did the
//! task (the session lives in its worktree and config dir), before any new task, starting
//! from the task ref. Workers are restarted by this lead with a [`RestartPolicy`]; their
//! task is re-queued.
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
use crate::worker::{Job, Start, WorkerActor, WorkerArgs, WorkerMsg, WorkerReport, Workplace};

/// The result text of a turn that finished before cco was restarted (it is not journaled).
const RESTORED: &str = "(restored after a restart)";

/// How long a capture waits for the journal to record that the turn finished (it is written
/// at most every 100 ms; an unwritable journal must not stop the run).
const JOURNAL_WAIT: Duration = Duration::from_secs(2);

/// How long a parked worktree's tip counts as fresh for a new task (see `start_for`).
const FRESH_FOR: Duration = Duration::from_secs(30);

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
        /// The worktree was created just now at the target tip.
        fresh: bool,
    },
    WorkerReport {
        slot: usize,
        worker: String,
        report: WorkerReport,
        requeue: bool,
    },
    /// A worker's finished (or failed) turn was captured in the task ref; the worker is free.
    Captured {
        slot: usize,
        lane: usize,
        key: String,
        /// `target_epoch` when the capture was sent: the worktree is parked at a target tip
        /// at least this new.
        epoch: u64,
        outcome: Result<cco_git::CaptureOutcome, String>,
        /// The worker's report: its result text, or why the turn failed.
        turn: Result<String, String>,
    },
    /// The task ref was summarised: review it.
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
    RespawnWorker {
        slot: usize,
    },
    /// A worker's spare worktree was created (or could not be).
    LaneReady {
        slot: usize,
        /// `target_epoch` when the creation was asked for.
        epoch: u64,
        result: Result<cco_git::WorktreeInfo, String>,
    },
    Shutdown(RpcReplyPort<()>),
}

/// What the lead's own claude session is doing.
#[derive(Debug, Clone)]
enum LeadTurn {
    Plan { attempt: u32 },
}

/// One of a worker's worktrees. A worker has two: while its finished turn in one is captured,
/// reviewed and merged, its next task already runs in the other.
#[derive(Default)]
struct Lane {
    /// `None` until the worktree exists.
    path: Option<PathBuf>,
    branch: String,
    /// Task whose job runs here or whose capture is pending.
    busy: Option<String>,
    /// When this worktree was parked at the target tip; `None` when it may be elsewhere (a
    /// new task syncs it first).
    parked: Option<Parked>,
}

/// Where and when a worktree was parked at the target tip.
#[derive(Debug, Clone, Copy)]
struct Parked {
    /// The lead's `target_epoch` (its merges so far) at that tip, or before.
    epoch: u64,
    at: Instant,
}

impl Parked {
    fn now(epoch: u64) -> Parked {
        Parked {
            epoch,
            at: Instant::now(),
        }
    }
}

impl Lane {
    fn is_free(&self) -> bool {
        self.path.is_some() && self.busy.is_none()
    }
}

/// `job` for a worker that cannot resume its session (another worker's, or one whose worktree
/// is gone): a resumed turn starts the task over, a revision or conflict brings its context.
fn without_session(job: Job) -> Job {
    match job {
        Job::Resume { key, spec, .. } => Job::Task { key, spec },
        Job::Revise {
            key,
            spec,
            feedback,
            ..
        } => Job::Revise {
            key,
            spec,
            feedback,
            session_id: None,
        },
        Job::ResolveConflict {
            key,
            spec,
            target_branch,
            ..
        } => Job::ResolveConflict {
            key,
            spec,
            target_branch,
            session_id: None,
        },
        job @ Job::Task { .. } => job,
    }
}

/// The second worktree of worker `id` (created in the background once the worker runs).
fn spare_worktree_id(id: &str) -> String {
    format!("{id}-b")
}

struct Slot {
    id: String,
    actor: Option<ActorRef<WorkerMsg>>,
    /// The worker's worktrees: its own (created by the Worker actor) and a spare.
    lanes: [Lane; 2],
    /// Task key the worker runs a job for (from assignment until the worker reports).
    busy: Option<String>,
    /// The job the worker runs and its lane (kept to hand it back when the actor dies).
    job: Option<(Job, usize)>,
    restarts: RestartTracker,
    dead: bool,
}

impl Slot {
    fn is_idle(&self) -> bool {
        self.actor.is_some()
            && self.busy.is_none()
            && !self.dead
            && self.lanes.iter().any(Lane::is_free)
    }
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
    /// Jobs that must run on the worker whose session did the task (revisions, conflict
    /// resolutions, resumed turns): key → (worker id, job).
    pinned: std::collections::HashMap<String, (String, Job)>,
    /// Counts this lead's merges into the target (and new goals): a worktree parked at an
    /// older epoch is synced before its next task.
    target_epoch: u64,
    /// `target_epoch` right after each task's merge.
    merged_epoch: std::collections::HashMap<String, u64>,
    /// Tasks restored in review or merging with their work in the task ref (resume).
    restored_reviews: Vec<(String, bool)>,
    /// Tasks restored in review or merging whose turn was not captured yet: (slot, lane,
    /// key). Their worktree is held for them and captured once it is known (resume).
    recaptures: Vec<(usize, usize, String)>,
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
                lanes: Default::default(),
                busy: None,
                job: None,
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
            goal: None,
            turn: None,
            reviews: Default::default(),
            pending_turns: VecDeque::new(),
            session_id: None,
            merge_only: Default::default(),
            pinned: Default::default(),
            target_epoch: 0,
            merged_epoch: Default::default(),
            restored_reviews: Vec::new(),
            recaptures: Vec::new(),
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
                    for (key, merging) in std::mem::take(&mut state.restored_reviews) {
                        if merging {
                            state.start_merge(&myself, &key);
                        } else {
                            state.start_diff(&myself, key, RESTORED.into());
                        }
                    }
                    state.start_recaptures(&myself);
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
                // The Director moved the team branch up to the base since the last goal.
                if state.goal.is_some() {
                    state.target_epoch += 1;
                }
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
                let key = state.add_task(spec);
                // A conflict task skips review: it only carries the merge (`schedule` makes
                // it a `ResolveConflict` job against the base branch).
                state.merge_only.insert(key);
                state.schedule();
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
                fresh,
            } => {
                let mut create_spare = false;
                let epoch = state.target_epoch;
                if let Some(s) = state.slots.get_mut(slot) {
                    let lane = &mut s.lanes[0];
                    lane.path = Some(worktree);
                    lane.branch = branch;
                    // Created just now at the target tip: parked there.
                    if fresh {
                        lane.parked = Some(Parked::now(epoch));
                    }
                    create_spare = s.lanes[1].path.is_none();
                }
                if create_spare {
                    state.create_spare_worktree(&myself, slot);
                }
                state.start_recaptures(&myself);
                state.schedule();
            }
            LeadMsg::WorkerReport {
                slot,
                worker,
                report,
                requeue,
            } => state.on_worker_report(&myself, slot, &worker, report, requeue),
            LeadMsg::Captured {
                slot,
                lane,
                key,
                epoch,
                outcome,
                turn,
            } => state.on_captured(&myself, (slot, lane), key, epoch, outcome, turn),
            LeadMsg::LaneReady {
                slot,
                epoch,
                result,
            } => {
                match result {
                    Ok(info) => {
                        if let Some(s) = state.slots.get_mut(slot) {
                            let lane = &mut s.lanes[1];
                            lane.path = Some(info.path);
                            lane.branch = info.branch;
                            // Created at the tip it had when asked for: parked there.
                            lane.parked = info.at_start_point.then(|| Parked::now(epoch));
                        }
                        state.start_recaptures(&myself);
                        state.schedule();
                    }
                    // One worktree works too: the worker then waits for each capture. Jobs
                    // whose session lived in the spare (a resumed run) start over elsewhere.
                    Err(error) => {
                        warn!(lead = %state.who.id, slot, %error, "no spare worktree");
                        state.unpin_from_spare(slot);
                        state.schedule();
                    }
                }
            }
            LeadMsg::ReviewInput {
                key,
                diff,
                result_text,
            } => state.on_review_input(&myself, key, diff, result_text),
            LeadMsg::ReviewEnded { key, attempt, end } => {
                state.on_review_end(&myself, key, attempt, end)
            }
            LeadMsg::MergeDone { key, outcome } => state.on_merge_done(&myself, key, outcome),
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
        // Its job goes back to the queue: the task lives here, not in the dead actor. A
        // revision, conflict or resumed turn stays with this worker slot (same worktree and
        // config dir, so the session can be resumed by the restarted actor).
        if let Some(key) = state.slots[slot].busy.take() {
            let job = state.slots[slot].job.take();
            if let Some((_, lane)) = &job {
                // Whatever the dead worker left there is synced (snapshotted) before reuse.
                let lane = &mut state.slots[slot].lanes[*lane];
                lane.busy = None;
                lane.parked = None;
            }
            match job {
                Some((
                    job @ (Job::Revise { .. } | Job::ResolveConflict { .. } | Job::Resume { .. }),
                    _,
                )) => {
                    state.pin(&key, job);
                }
                _ => state.ctx.board.update_task(&key, |t| {
                    t.state = TaskState::Pending;
                    t.worker = None;
                }),
            }
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

    /// Creates the worker's spare worktree in the background (low priority: merges and the
    /// worktrees workers wait on go first).
    fn create_spare_worktree(&self, myself: &ActorRef<LeadMsg>, slot: usize) {
        let git = self.ctx.git.with_priority(cco_git::Priority::Low);
        let (team, target) = (self.team.clone(), self.target_branch.clone());
        let id = spare_worktree_id(&self.slots[slot].id);
        let epoch = self.target_epoch;
        let me = myself.clone();
        tokio::spawn(async move {
            let result = git
                .create_worktree(&team, &id, &target)
                .await
                .map_err(|e| e.to_string());
            let _ = me.send_message(LeadMsg::LaneReady {
                slot,
                epoch,
                result,
            });
        });
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
            captured_round: None,
            lane: None,
            cost_usd: 0.0,
        });
        self.ctx.board.set_spec(&key, spec.clone());
        self.specs.insert(key.clone(), spec);
        self.queue.push(key.clone());
        key
    }

    /// Resume: takes this team's tasks back from the journaled board. Tasks in review or
    /// merging whose latest round is frozen in the task ref are reviewed or merged from it
    /// (no worker needed). Other tasks that were in flight go back to the queue, pinned to
    /// their worker so its session can be resumed (same worktree, same config dir). Returns
    /// how many tasks were restored.
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
            self.specs.insert(task.key.clone(), spec.clone());
            self.queue.push(task.key.clone());
            let frozen = task.captured_round == Some(task.review_rounds);
            let merging = task.state == TaskState::Merging;
            // The worktree that holds a finished turn's work until it is captured. No other
            // job can have run there since: the capture frees it together with recording
            // `captured_round`, so a journal never shows one without the other.
            let holder = task
                .worker
                .as_deref()
                .and_then(|w| self.slot_of_worker(w))
                .map(|slot| (slot, task.lane.unwrap_or(0)));
            match (task.state, holder) {
                (TaskState::Review | TaskState::Merging, _) if frozen => {
                    self.restored_reviews.push((task.key.clone(), merging));
                }
                (TaskState::Review | TaskState::Merging, Some((slot, lane))) => {
                    if merging {
                        // Approved before the crash: merge once captured.
                        self.merge_only.insert(task.key.clone());
                    }
                    self.slots[slot].lanes[lane].busy = Some(task.key.clone());
                    self.recaptures.push((slot, lane, task.key.clone()));
                }
                (TaskState::Running | TaskState::Review | TaskState::Merging, _) => {
                    if let (Some(worker), Some(session_id)) =
                        (task.worker.clone(), task.session_id.clone())
                    {
                        let job = Job::Resume {
                            key: task.key.clone(),
                            spec,
                            session_id,
                        };
                        self.pinned.insert(task.key.clone(), (worker, job));
                    }
                    self.ctx
                        .board
                        .update_task(&task.key, |t| t.state = TaskState::Pending);
                }
                _ => {}
            }
        }
        tasks.len()
    }

    fn slot_of_worker(&self, worker: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.id == worker)
    }

    /// The task's frozen work: `refs/cco/tasks/<run>/<team>/<task id>`.
    fn task_ref(&self, key: &str) -> String {
        let run = self
            .ctx
            .run_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into());
        let id = self
            .specs
            .get(key)
            .map(|s| s.id.clone())
            .unwrap_or_else(|| key.rsplit('/').next().unwrap_or(key).to_string());
        cco_git::task_ref(&run, &self.team, &id)
    }

    /// Where the worktree must be before `job` runs in it.
    fn start_for(&self, (slot, lane): (usize, usize), job: &Job) -> Start {
        let target = self.target_branch.clone();
        match job {
            Job::Resume { .. } => Start::InPlace,
            Job::Task { spec, .. } => {
                // A parked worktree starts a task as it is when nothing merged since it was
                // parked, or when it was parked less than `FRESH_FOR` ago and none of the
                // tasks this one depends on merged since: its branch then starts at most a
                // few seconds' merges behind, as every branch falls behind while others land,
                // and the merge brings them together. This keeps git off the path between a
                // worker's turns when tasks are short; a worktree parked longer ago is synced.
                let fresh = self.slots[slot].lanes[lane].parked.is_some_and(|parked| {
                    parked.epoch == self.target_epoch
                        || (parked.at.elapsed() < FRESH_FOR
                            && !spec.depends_on.iter().any(|dep| {
                                self.merged_epoch
                                    .get(&format!("{}/{dep}", self.team))
                                    .is_some_and(|&merged| merged > parked.epoch)
                            }))
                });
                if fresh {
                    Start::InPlace
                } else {
                    Start::Sync(target)
                }
            }
            // Merging another branch (the base) into the team's work: from the team tip.
            Job::ResolveConflict { target_branch, .. } if *target_branch != target => {
                Start::Sync(target)
            }
            Job::Revise { key, .. } | Job::ResolveConflict { key, .. } => {
                let frozen = self
                    .ctx
                    .board
                    .task(key)
                    .is_some_and(|t| t.captured_round.is_some());
                if frozen {
                    Start::TaskRef {
                        task_ref: self.task_ref(key),
                        kept_in: target,
                    }
                } else {
                    // Nothing was ever captured: the session starts again from the tip.
                    Start::Sync(target)
                }
            }
        }
    }

    /// The lane `job` runs in on `slot`: the one its session lives in (revisions, conflicts,
    /// resumes), or for a new task the free one parked most recently. `None`: not free now.
    fn lane_for(&self, slot: usize, job: &Job) -> Option<usize> {
        let lanes = &self.slots[slot].lanes;
        let own = match job {
            Job::Task { .. } => None,
            Job::ResolveConflict { target_branch, .. } if *target_branch != self.target_branch => {
                None
            }
            // A task record without a lane is from a journal of a cco with one worktree per
            // worker: its session lives in the worker's own.
            Job::Revise { session_id, .. } | Job::ResolveConflict { session_id, .. } => session_id
                .as_ref()
                .and_then(|_| self.ctx.board.task(job.key()))
                .map(|t| t.lane.unwrap_or(0)),
            Job::Resume { .. } => self.ctx.board.task(job.key()).map(|t| t.lane.unwrap_or(0)),
        };
        match own {
            Some(lane) => lanes.get(lane).filter(|l| l.is_free()).map(|_| lane),
            // Ties go to the worker's own worktree.
            None => (0..lanes.len())
                .filter(|&i| lanes[i].is_free())
                .max_by_key(|&i| {
                    (
                        lanes[i].parked.map(|p| p.epoch + 1).unwrap_or(0),
                        std::cmp::Reverse(i),
                    )
                }),
        }
    }

    fn assign(&mut self, slot: usize, job: Job) {
        let key = job.key().to_string();
        let Some(actor) = self.slots[slot].actor.clone() else {
            return;
        };
        let Some(lane) = self.lane_for(slot, &job) else {
            return;
        };
        let Some(path) = self.slots[slot].lanes[lane].path.clone() else {
            return;
        };
        let place = Workplace {
            path,
            branch: self.slots[slot].lanes[lane].branch.clone(),
        };
        let start = self.start_for((slot, lane), &job);
        let worker = self.slots[slot].id.clone();
        self.slots[slot].busy = Some(key.clone());
        self.slots[slot].job = Some((job.clone(), lane));
        self.slots[slot].lanes[lane].busy = Some(key.clone());
        self.slots[slot].lanes[lane].parked = None;
        self.ctx.board.update_task(&key, |t| {
            t.state = TaskState::Running;
            t.worker = Some(worker.clone());
            t.lane = Some(lane);
        });
        self.ctx.board.events().emit(RunEvent::TaskAssigned {
            task: key.clone(),
            worker: worker.clone(),
        });
        if actor
            .send_message(WorkerMsg::Assign(Box::new(job), start, place))
            .is_err()
        {
            // The supervision event for the dead worker re-queues the task.
            warn!(%worker, task = %key, "worker gone before assignment");
        }
    }

    /// A job for the worker whose session did the task; it runs before any new task. When
    /// that worker's slot is dead the job goes to any worker, without the session.
    fn pin(&mut self, key: &str, job: Job) {
        let worker = self
            .ctx
            .board
            .task(key)
            .and_then(|t| t.worker)
            .unwrap_or_default();
        self.ctx
            .board
            .update_task(key, |t| t.state = TaskState::Pending);
        self.pinned.insert(key.to_string(), (worker, job));
    }

    /// The pinned job `slot` should run next: its own, or one whose worker is dead.
    /// `Err(())`: it has one, but the worktree its session lives in is not free yet (a capture
    /// is finishing there): the worker waits for it rather than start something else.
    fn pinned_job_for(&mut self, slot: usize) -> Result<Option<Job>, ()> {
        let slot_id = self.slots[slot].id.clone();
        let mut own = None;
        let mut orphan = None;
        for (key, (worker, _)) in &self.pinned {
            if *worker == slot_id {
                own = Some(key.clone());
                break;
            }
            let owner_alive = self
                .slot_of_worker(worker)
                .is_some_and(|s| !self.slots[s].dead);
            if !owner_alive && orphan.is_none() {
                orphan = Some(key.clone());
            }
        }
        let (key, job) = match (own, orphan) {
            (Some(key), _) => {
                let job = self.pinned[&key].1.clone();
                (key, job)
            }
            // Another worker's session cannot be resumed here: start over with the context.
            (None, Some(key)) => {
                let job = without_session(self.pinned[&key].1.clone());
                (key, job)
            }
            (None, None) => return Ok(None),
        };
        if self.lane_for(slot, &job).is_none() {
            return Err(());
        }
        self.pinned.remove(&key);
        Ok(Some(job))
    }

    /// The worker's spare worktree could not be created: its pinned jobs whose session lives
    /// there start over in the worker's own worktree.
    fn unpin_from_spare(&mut self, slot: usize) {
        let worker = self.slots[slot].id.clone();
        let keys: Vec<String> = self
            .pinned
            .iter()
            .filter(|(key, (w, _))| {
                *w == worker && self.ctx.board.task(key).and_then(|t| t.lane) == Some(1)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in keys {
            if let Some((w, job)) = self.pinned.remove(&key) {
                self.ctx.board.update_task(&key, |t| t.lane = None);
                self.pinned.insert(key, (w, without_session(job)));
            }
        }
        // Restored turns waiting there for their capture: their work is out of reach, so
        // the task is done again.
        let (lost, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.recaptures)
            .into_iter()
            .partition(|(s, lane, _)| *s == slot && *lane == 1);
        self.recaptures = kept;
        for (_, _, key) in lost {
            warn!(task = %key, "the worktree of a finished turn is gone: doing the task again");
            self.slots[slot].lanes[1].busy = None;
            self.merge_only.remove(&key);
            self.ctx.board.update_task(&key, |t| t.lane = None);
            if let Some(spec) = self.specs.get(&key).cloned() {
                self.pin(
                    &key,
                    Job::Task {
                        key: key.clone(),
                        spec,
                    },
                );
            }
        }
    }

    /// Hands pinned jobs and ready tasks (dependencies done) to idle workers; fails tasks
    /// whose dependency failed.
    fn schedule(&mut self) {
        if self.shutting_down || self.ctx.is_stopping() {
            return;
        }
        // Each idle slot once: its pinned job first, else the first ready task.
        let idle: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].is_idle())
            .collect();
        let mut queue_empty = false;
        for slot in idle {
            match self.pinned_job_for(slot) {
                Ok(Some(job)) => {
                    self.assign(slot, job);
                    continue;
                }
                Err(()) => continue,
                Ok(None) => {}
            }
            if queue_empty {
                continue;
            }
            let mut chosen = None;
            let mut failed = Vec::new();
            for key in &self.queue {
                if self.pinned.contains_key(key) {
                    continue;
                }
                let Some(task) = self.ctx.board.task(key) else {
                    continue;
                };
                if task.state != TaskState::Pending {
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
            let Some(key) = chosen else {
                queue_empty = true;
                continue;
            };
            let spec = self.specs[&key].clone();
            let job = if self.merge_only.contains(&key) {
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
        self.merge_only.remove(key);
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

    /// A task left the lead's hands (done or failed): hand out work, maybe report idle.
    fn settled(&mut self, myself: &ActorRef<LeadMsg>) {
        self.schedule();
        self.check_idle(myself);
    }

    fn on_worker_report(
        &mut self,
        myself: &ActorRef<LeadMsg>,
        slot: usize,
        worker: &str,
        report: WorkerReport,
        requeue: bool,
    ) {
        let (key, session_id, turn) = match report {
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
                        if let Some((_, lane)) = self.slots[slot].job.take() {
                            self.slots[slot].lanes[lane].busy = None;
                        }
                    }
                    self.schedule();
                    return;
                }
                (key, session_id, Err(reason))
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
                self.ctx
                    .board
                    .update_task(&key, |t| t.state = TaskState::Review);
                (key, session_id, Ok(result_text))
            }
        };
        self.ctx
            .board
            .update_task(&key, |t| t.session_id = session_id.or(t.session_id.take()));
        // The worker is free at once (for a job in its other worktree); this one stays busy
        // until the turn is captured.
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        let lane = match s.job.take() {
            Some((_, lane)) if s.busy.as_deref() == Some(key.as_str()) => lane,
            other => {
                s.job = other;
                return;
            }
        };
        s.busy = None;
        self.schedule();
        self.capture(myself, (slot, lane), key, turn);
    }

    /// Captures the turn that ran in `lane` (whatever it left, even when it failed: nothing is
    /// lost); the lane stays busy until `Captured`.
    fn capture(
        &mut self,
        myself: &ActorRef<LeadMsg>,
        (slot, lane): (usize, usize),
        key: String,
        turn: Result<String, String>,
    ) {
        let Some(worktree) = self.slots[slot].lanes[lane].path.clone() else {
            return;
        };
        let git = self.ctx.git.clone();
        let target = self.target_branch.clone();
        let task_ref = self.task_ref(&key);
        let title = self
            .specs
            .get(&key)
            .map(|s| s.title.clone())
            .unwrap_or_default();
        let epoch = self.target_epoch;
        let me = myself.clone();
        // The journal must show the turn finished (the task in review) before its worktree is
        // reset: a resumed run then captures it again instead of resuming its session in a
        // worktree that no longer holds the work.
        let (board, version) = (self.ctx.board.clone(), self.ctx.board.version());
        tokio::spawn(async move {
            if !board.journaled(version, JOURNAL_WAIT).await {
                warn!(task = %key, "the journal is behind: capturing anyway");
            }
            let message = format!("{key}: {title}");
            let outcome = git
                .capture_task(&worktree, &message, &task_ref, &target)
                .await
                .map_err(|e| e.to_string());
            if outcome.is_err() {
                // Unresolved conflicts or a broken worktree: snapshot what is there and reset
                // it, so the worker can go on.
                if let Err(error) = git.sync_worktree(&worktree, &target).await {
                    warn!(%error, "could not reset the worker's worktree");
                }
            }
            let _ = me.send_message(LeadMsg::Captured {
                slot,
                lane,
                key,
                epoch,
                outcome,
                turn,
            });
        });
    }

    /// Captures the restored turns whose worktree is known by now.
    fn start_recaptures(&mut self, myself: &ActorRef<LeadMsg>) {
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.recaptures)
            .into_iter()
            .partition(|(slot, lane, _)| self.slots[*slot].lanes[*lane].path.is_some());
        self.recaptures = waiting;
        for (slot, lane, key) in ready {
            info!(task = %key, "capturing the work of a turn that finished before the restart");
            self.capture(myself, (slot, lane), key, Ok(RESTORED.into()));
        }
    }

    fn on_captured(
        &mut self,
        myself: &ActorRef<LeadMsg>,
        (slot, lane): (usize, usize),
        key: String,
        epoch: u64,
        outcome: Result<cco_git::CaptureOutcome, String>,
        turn: Result<String, String>,
    ) {
        match self.slots.get_mut(slot).and_then(|s| s.lanes.get_mut(lane)) {
            Some(l) if l.busy.as_deref() == Some(key.as_str()) => {
                l.busy = None;
                l.parked = outcome.as_ref().ok().map(|_| Parked::now(epoch));
            }
            // The worktree was handed to something else meanwhile: that decides.
            _ => return,
        }
        let frozen = outcome
            .as_ref()
            .ok()
            .is_some_and(|o| o.task_commit.is_some());
        if frozen {
            self.ctx
                .board
                .update_task(&key, |t| t.captured_round = Some(t.review_rounds));
        }
        match (turn, outcome) {
            (Err(reason), _) => self.fail_task(&key, &reason),
            (Ok(_), Err(error)) => {
                self.fail_task(&key, &format!("could not commit the work: {error}"))
            }
            (Ok(result_text), Ok(_)) if frozen => {
                if self.merge_only.contains(&key) {
                    self.start_merge(myself, &key);
                } else {
                    self.start_diff(myself, key, result_text);
                }
            }
            // Nothing was ever committed for this task: decided before the worker goes on, so
            // a journal never shows the task in review on a worker that has moved on.
            (Ok(_), Ok(_)) => self.nothing_committed(&key),
        }
        self.settled(myself);
    }

    fn nothing_committed(&mut self, key: &str) {
        let rounds = self
            .ctx
            .board
            .task(key)
            .map(|t| t.review_rounds)
            .unwrap_or(0);
        if rounds < MAX_REVIEW_ROUNDS {
            self.send_back(key, "No changes were committed on your branch. Implement the task and commit your work with git.");
        } else {
            self.fail_task(key, "the worker committed nothing");
        }
    }

    /// Summarises the task ref for the review (a background GitActor op).
    fn start_diff(&mut self, myself: &ActorRef<LeadMsg>, key: String, result_text: String) {
        let git = self.ctx.git.clone();
        let target = self.target_branch.clone();
        let task_ref = self.task_ref(&key);
        let me = myself.clone();
        tokio::spawn(async move {
            let diff = git
                .diff_summary(&target, &task_ref)
                .await
                .map_err(|e| e.to_string());
            let _ = me.send_message(LeadMsg::ReviewInput {
                key,
                diff,
                result_text,
            });
        });
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
                self.fail_task(&key, &format!("could not diff the work: {error}"));
                self.settled(myself);
                return;
            }
        };
        self.commits_in_review
            .insert(key.clone(), diff.commits.len());
        if diff.commits.is_empty() {
            // Everything in the task ref is already in the target.
            self.nothing_committed(&key);
            self.settled(myself);
            return;
        }
        let Some(spec) = self.specs.get(&key).cloned() else {
            return;
        };
        let prompt = prompts::review(&self.ctx, &self.who, &spec, &result_text, &diff);
        self.start_review(myself, key, prompt, 0, None);
    }

    /// Revise: the same worker session gets the feedback (a pinned job).
    fn send_back(&mut self, key: &str, feedback: &str) {
        let Some(spec) = self.specs.get(key).cloned() else {
            return;
        };
        let session_id = self.ctx.board.task(key).and_then(|t| t.session_id);
        self.ctx.board.update_task(key, |t| t.review_rounds += 1);
        self.ctx.board.events().emit(RunEvent::TaskRevised {
            task: key.to_string(),
            feedback: feedback.to_string(),
        });
        self.pin(
            key,
            Job::Revise {
                key: key.to_string(),
                spec,
                feedback: feedback.to_string(),
                session_id,
            },
        );
        self.schedule();
    }

    fn start_merge(&mut self, myself: &ActorRef<LeadMsg>, key: &str) {
        self.ctx
            .board
            .update_task(key, |t| t.state = TaskState::Merging);
        let strategy = crate::gitmap::strategy(self.ctx.config.config.merge_strategy);
        let mut request =
            MergeRequest::new(self.task_ref(key), self.target_branch.clone(), strategy);
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
        let source = self.task_ref(&key);
        match outcome {
            Ok(MergeOutcome::Merged { commit, .. }) | Ok(MergeOutcome::UpToDate { commit }) => {
                self.target_epoch += 1;
                self.merged_epoch.insert(key.clone(), self.target_epoch);
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
                board.events().emit(RunEvent::Merged {
                    source,
                    target: self.target_branch.clone(),
                    commit,
                });
                self.merge_only.remove(&key);
            }
            Ok(MergeOutcome::Conflict { files }) => {
                board.count(|t| t.conflicts += 1);
                board.events().emit(RunEvent::Conflict {
                    source,
                    target: self.target_branch.clone(),
                    files: files.clone(),
                });
                let rounds = board.task(&key).map(|t| t.review_rounds).unwrap_or(0);
                if rounds > MAX_REVIEW_ROUNDS + 2 {
                    self.fail_task(
                        &key,
                        &format!(
                            "merge conflicts could not be resolved: {}",
                            files.join(", ")
                        ),
                    );
                } else if let Some(spec) = self.specs.get(&key).cloned() {
                    board.update_task(&key, |t| t.review_rounds += 1);
                    self.merge_only.insert(key.clone());
                    let session_id = board.task(&key).and_then(|t| t.session_id);
                    let job = Job::ResolveConflict {
                        key: key.clone(),
                        spec,
                        target_branch: self.target_branch.clone(),
                        session_id,
                    };
                    self.pin(&key, job);
                }
            }
            Ok(MergeOutcome::Skipped { files }) => {
                board.count(|t| t.conflicts += 1);
                self.fail_task(
                    &key,
                    &format!("merge skipped (conflicts in {})", files.join(", ")),
                );
            }
            Ok(MergeOutcome::VerifyFailed { output_tail }) => {
                let rounds = board.task(&key).map(|t| t.review_rounds).unwrap_or(0);
                if rounds < MAX_REVIEW_ROUNDS {
                    self.merge_only.remove(&key);
                    self.send_back(&key, &format!("The verify command failed on the merged result. Fix it and commit.\n{output_tail}"));
                } else {
                    self.fail_task(&key, "verify command kept failing");
                }
            }
            Err(error) => {
                self.fail_task(&key, &format!("merge failed: {error}"));
            }
        }
        self.settled(myself);
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
