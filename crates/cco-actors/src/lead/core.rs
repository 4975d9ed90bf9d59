//! The lead's decisions, without IO: [`LeadCore::handle`] takes an [`Input`] (a message the
//! actor shell received, or the result of an effect it performed) and returns the
//! [`Effect`]s to perform: assign a job, capture, diff, review, merge, plan, report.
//!
//! The core owns the team's planning state, its worker slots and lanes (`slots.rs`), and
//! writes task phases and agent states on the [`Board`] (in memory: the journal writer and the
//! status readers see them). It never touches git, processes, actors or the clock: `now`
//! comes with each input, so every rule runs in a unit test in microseconds. The work is
//! split by concern: planning turns in `plans.rs`, scheduling in `slots.rs`, the capture →
//! review → merge pipeline in `pipeline.rs`, `cco resume` in `restore.rs`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::Instant;

use cco_git::{
    CaptureOutcome, DiffSummary, GitError, MergeOutcome, MergeRequest, ResolutionDiff, WorktreeInfo,
};
use cco_protocol::{AnswerFormat, Rejections, TaskSpec, TeamGoal};
use tracing::info;

pub(crate) use super::gates::Halt;
use super::slots::WorkerSlot;
use crate::board::{Board, Role, TaskRecord};
use crate::error::{JobFailure, LeadError};
use crate::lifecycle::TaskKind;
use crate::planning::Asking;
use crate::session::TurnEnd;
use crate::worker::{Job, Start, WorkerReport, Workplace};

/// What a lead is: fixed for its life.
#[derive(Debug, Clone)]
pub(crate) struct LeadConfig {
    pub(crate) id: String,
    pub(crate) role: Role,
    pub(crate) team: String,
    /// Branch the workers' tasks merge into (team branch, or base for the Coordinator).
    pub(crate) target_branch: String,
    pub(crate) base_branch: String,
    /// Names the task refs (`refs/cco/tasks/<run>/<team>/<task id>`).
    pub(crate) run_name: String,
    pub(crate) max_plan_retries: u32,
    pub(crate) merge_strategy: cco_git::MergeStrategy,
    /// How the lead answers its planning and review turns.
    pub(crate) answer: AnswerFormat,
    /// The verify command of the base branch's gate (named in the gate's prompt).
    pub(crate) verify_command: Option<String>,
    /// `maxAutoResolveConflicts`: conflicts handed to agents in the whole run (with the
    /// `agent` strategy).
    pub(crate) max_auto_resolve: Option<u32>,
}

/// Something that happened, as the core sees it.
#[derive(Debug)]
pub(crate) enum Input {
    /// The workers are spawned; plan (Coordinator), wait for a goal (EM), or continue the
    /// journaled tasks (`resumed`).
    Start {
        resumed: bool,
    },
    /// EM only: a goal from the Director.
    Goal(TeamGoal),
    /// EM only: the team branch conflicts with the base branch in `files`.
    ResolveWithBase {
        files: Vec<String>,
    },
    /// EM only: the base branch's verify command failed on the team's work.
    FixVerification {
        output: String,
    },
    /// The lead's planning turn ended.
    PlanEnded(TurnEnd),
    /// A worker actor fills `slot` (spawned or respawned).
    WorkerUp {
        slot: usize,
    },
    /// The worker of `slot` has its own worktree (`fresh`: created just now at the target tip).
    WorkerReady {
        slot: usize,
        worktree: PathBuf,
        branch: String,
        fresh: bool,
    },
    WorkerReport {
        slot: usize,
        report: WorkerReport,
    },
    /// The worker actor of `slot` stopped or failed (it will be respawned, or given up).
    WorkerDown {
        slot: usize,
    },
    /// The slot gave up: no worker will fill it again.
    WorkerDead {
        slot: usize,
    },
    /// A finished turn was captured in the task ref (or could not be).
    Captured {
        slot: usize,
        lane: usize,
        key: String,
        /// `target_epoch` when the capture was ordered: the worktree is parked at a target tip
        /// at least this new.
        epoch: u64,
        outcome: Result<CaptureOutcome, GitError>,
        /// The worker's report: its result text, or why the turn failed.
        turn: Result<String, JobFailure>,
    },
    /// The task ref was summarised for a review (`revs`: the commits the task ref and the
    /// target point at, when they could be read; for a conflict resolution, also diffed
    /// against both parents of its merge).
    Diffed {
        key: String,
        diff: Result<DiffSummary, GitError>,
        revs: Option<(String, String)>,
        result_text: String,
        resolution: Option<Box<ResolutionDiff>>,
    },
    ReviewEnded {
        key: String,
        attempt: u32,
        end: TurnEnd,
    },
    Merged {
        key: String,
        outcome: Result<MergeOutcome, GitError>,
    },
    /// A worker's spare worktree was created (or could not be).
    LaneReady {
        slot: usize,
        /// `target_epoch` when the creation was ordered.
        epoch: u64,
        result: Result<WorktreeInfo, GitError>,
    },
    /// The run is stopping: decide nothing more.
    Shutdown,
}

/// Something for the shell to do.
#[derive(Debug)]
pub(crate) enum Effect {
    /// Send `job` to the worker of `slot`, to run in `place` once the worktree is at `start`.
    Assign {
        slot: usize,
        job: Job,
        start: Start,
        place: Workplace,
    },
    /// Create the spare worktree `worktree_id` of `slot`'s worker (low priority).
    CreateSpare {
        slot: usize,
        worktree_id: String,
        epoch: u64,
    },
    /// Capture the finished turn in a worktree (after the journal shows it finished).
    Capture(CaptureOrder),
    /// Summarise `task_ref` against the target for a review; `resolution`: the work resolves
    /// a conflict, diff it against both parents of its merge too.
    Diff {
        key: String,
        task_ref: String,
        result_text: String,
        resolution: bool,
    },
    /// A review turn in a fork of the lead's session (`resume`, `fork`) or in the review's own.
    Review {
        key: String,
        prompt: ReviewPrompt,
        attempt: u32,
        resume: Option<String>,
        fork: bool,
    },
    Merge {
        key: String,
        request: MergeRequest,
    },
    /// A planning turn of the lead's own session.
    Plan {
        prompt: PlanPrompt,
        resume: Option<String>,
    },
    Report(Report),
    /// The lead cannot go on: fail the actor (its Director restarts it).
    Fail(LeadError),
}

#[derive(Debug)]
pub(crate) struct CaptureOrder {
    pub(crate) slot: usize,
    pub(crate) lane: usize,
    pub(crate) key: String,
    pub(crate) epoch: u64,
    pub(crate) worktree: PathBuf,
    pub(crate) task_ref: String,
    pub(crate) message: String,
    pub(crate) turn: Result<String, JobFailure>,
}

/// The prompt of a review turn.
#[derive(Debug)]
pub(crate) enum ReviewPrompt {
    First {
        spec: Box<TaskSpec>,
        /// Who did the work.
        worker: String,
        /// The ref holding it.
        task_ref: String,
        /// The commits of the task ref and of the target (for the reviewer's git commands).
        revs: Option<(String, String)>,
        result_text: String,
        diff: Box<DiffSummary>,
    },
    /// A conflict resolution (`[cco:review-resolution]`): the merge against each parent.
    Resolution {
        spec: Box<TaskSpec>,
        result_text: String,
        /// Who resolved it.
        worker: String,
        /// The branch merged into the task's work.
        against: String,
        diff: Box<ResolutionDiff>,
    },
    /// The review's answer was unusable: the parser's repair prompt.
    Repair(String),
}

/// The prompt of a planning turn (the shell writes it: it reads the project direction).
#[derive(Debug, Clone)]
pub(crate) enum PlanPrompt {
    Coordinator,
    Em(TeamGoal),
    Replan(Vec<TaskRecord>),
    Repair(String),
}

/// What the lead tells its Director.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Report {
    /// Every task of the team's goal is done or failed.
    TeamIdle,
    /// The team could not plan its goal.
    TeamFailed { reason: String },
    /// The Coordinator says the project is complete. `planning_failure`: its first plan never
    /// parsed (the answer came after repairs) and no task ran: why.
    RunComplete {
        reason: String,
        planning_failure: Option<String>,
    },
    /// The run cannot go on safely: stop it (see [`Halt`]); `reason` says why and what to do.
    Halt { cause: Halt, reason: String },
}

/// The planning turns of the lead's own session: one at a time, in order.
#[derive(Debug, Default)]
pub(super) struct PlanQueue {
    /// The attempt and prompt of the turn running now.
    pub(super) running: Option<(u32, PlanPrompt)>,
    pub(super) pending: VecDeque<(u32, PlanPrompt)>,
}

/// The lead's state and rules. See the module docs.
pub(crate) struct LeadCore {
    pub(crate) cfg: LeadConfig,
    pub(crate) board: Board,
    pub(crate) slots: Vec<WorkerSlot>,
    /// Task keys in planning order.
    pub(crate) queue: Vec<String>,
    pub(crate) specs: HashMap<String, TaskSpec>,
    goal: Option<TeamGoal>,
    pub(super) plans: PlanQueue,
    /// The rejected answers of the planning round under way.
    pub(super) rejections: Rejections,
    /// The lead's planning session (reviews fork it).
    pub(crate) session_id: Option<String>,
    /// Tasks whose review turn runs (in parallel, each in its own fork).
    pub(crate) reviews: HashSet<String>,
    /// The worker's final answer of each task under review (a review lost to an unavailable
    /// API is asked again with it).
    pub(crate) review_results: HashMap<String, String>,
    /// Counts this lead's merges into the target (and new goals): a worktree parked at an
    /// older epoch is synced before its next task.
    pub(crate) target_epoch: u64,
    /// `target_epoch` right after each task's merge.
    pub(crate) merged_epoch: HashMap<String, u64>,
    /// Commits of a task under review, counted into the totals when it merges.
    pub(crate) commits_in_review: HashMap<String, usize>,
    /// Restored finished turns waiting for their worktree to be known: (slot, lane, key).
    pub(crate) recaptures: Vec<(usize, usize, String)>,
    pub(crate) stopping: bool,
    /// The run is stopping (set by the Director): no new assignment.
    pub(crate) run_stopping: bool,
    /// This lead asked the Director to stop the run (see [`Halt`]): nothing new starts.
    pub(crate) halted: bool,
    /// Consecutive tasks that failed on the same git error (see `gates.rs`).
    pub(crate) git_streak: super::gates::GitStreak,
    /// Merges retried because their target had been moved behind cco's back (and put back).
    pub(crate) moved_retries: HashMap<String, u32>,
    pub(super) reported_idle: bool,
    /// The time of the input being handled.
    pub(crate) now: Instant,
    pub(super) effects: Vec<Effect>,
}

impl LeadCore {
    pub(crate) fn new(cfg: LeadConfig, board: Board, worker_ids: Vec<String>) -> LeadCore {
        let slots = worker_ids.into_iter().map(WorkerSlot::new).collect();
        LeadCore {
            cfg,
            board,
            slots,
            queue: Vec::new(),
            specs: HashMap::new(),
            goal: None,
            plans: PlanQueue::default(),
            rejections: Rejections::new(),
            session_id: None,
            reviews: HashSet::new(),
            review_results: HashMap::new(),
            target_epoch: 0,
            merged_epoch: HashMap::new(),
            commits_in_review: HashMap::new(),
            recaptures: Vec::new(),
            stopping: false,
            run_stopping: false,
            halted: false,
            git_streak: Default::default(),
            moved_retries: HashMap::new(),
            reported_idle: false,
            now: Instant::now(),
            effects: Vec::new(),
        }
    }

    /// Decides what `input` means at `now`; `run_stopping`: the run is stopping.
    pub(crate) fn handle(&mut self, input: Input, now: Instant, run_stopping: bool) -> Vec<Effect> {
        self.now = now;
        self.run_stopping = run_stopping;
        if self.stopping {
            return Vec::new();
        }
        match input {
            Input::Start { resumed } => self.start(resumed),
            Input::Goal(goal) => {
                self.reported_idle = false;
                // The Director moved the team branch up to the base since the last goal.
                if self.goal.is_some() {
                    self.target_epoch += 1;
                }
                self.goal = Some(goal.clone());
                self.enqueue_plan(PlanPrompt::Em(goal));
            }
            Input::ResolveWithBase { files } => {
                self.reported_idle = false;
                let base = self.cfg.base_branch.clone();
                let mut spec = TaskSpec::new(
                    format!("merge-{}", base.replace('/', "-")),
                    format!("Merge {base} into the team branch"),
                );
                spec.description = format!(
                    "The team branch conflicts with {base} in: {}",
                    files.join(", ")
                );
                // It carries the merge only: its turn merges the base into the team's work,
                // and the result is merged without a review.
                self.add_task(spec, TaskKind::BaseMerge { base });
                self.schedule();
            }
            Input::FixVerification { output } => {
                self.reported_idle = false;
                let mut spec = TaskSpec::new("fix-verify", "Make the verify command pass");
                spec.description = format!("Merging the team's work into the base branch failed verification. Output:\n{output}");
                self.add_task(spec, TaskKind::FixVerify);
                self.schedule();
            }
            Input::PlanEnded(end) => self.on_plan_end(end),
            Input::WorkerUp { slot } => {
                if let Some(s) = self.slots.get_mut(slot) {
                    s.up = true;
                }
                self.schedule();
            }
            Input::WorkerReady {
                slot,
                worktree,
                branch,
                fresh,
            } => self.on_worker_ready(slot, worktree, branch, fresh),
            Input::WorkerReport { slot, report } => self.on_worker_report(slot, report),
            Input::WorkerDown { slot } => self.on_worker_down(slot),
            Input::WorkerDead { slot } => {
                if let Some(s) = self.slots.get_mut(slot) {
                    s.dead = true;
                    s.up = false;
                }
                if self.slots.iter().all(|s| s.dead) {
                    self.effects.push(Effect::Fail(LeadError::AllWorkersGaveUp {
                        lead: self.cfg.id.clone(),
                    }));
                } else {
                    self.schedule();
                }
            }
            Input::Captured {
                slot,
                lane,
                key,
                epoch,
                outcome,
                turn,
            } => self.on_captured((slot, lane), key, epoch, outcome, turn),
            Input::Diffed {
                key,
                diff,
                revs,
                result_text,
                resolution,
            } => self.on_diffed(key, diff, revs, result_text, resolution),
            Input::ReviewEnded { key, attempt, end } => self.on_review_end(key, attempt, end),
            Input::Merged { key, outcome } => self.on_merged(key, outcome),
            Input::LaneReady {
                slot,
                epoch,
                result,
            } => self.on_lane_ready(slot, epoch, result),
            Input::Shutdown => {
                self.stopping = true;
                self.effects.clear();
            }
        }
        std::mem::take(&mut self.effects)
    }

    /// How a planning or review turn of this lead at `attempt` is asked again.
    pub(crate) fn asking(&self, attempt: u32) -> Asking {
        Asking {
            attempt,
            max_retries: self.cfg.max_plan_retries,
            role: self.cfg.role,
            answer: self.cfg.answer,
        }
    }

    pub(crate) fn emit(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    fn start(&mut self, resumed: bool) {
        let restored = if resumed { self.restore() } else { 0 };
        if restored > 0 {
            info!(lead = %self.cfg.id, restored, "resuming the team's tasks");
            self.board.set_agent_state(&self.cfg.id, "leading");
            self.start_recaptures();
            self.schedule();
            self.check_idle();
        } else if self.cfg.role == Role::Coordinator {
            self.enqueue_plan(PlanPrompt::Coordinator);
        } else {
            self.board
                .set_agent_state(&self.cfg.id, "waiting for a goal");
        }
    }

    /// Adds a task to the team's queue; a duplicate id gets a `-2`, `-3`... suffix.
    pub(crate) fn add_task(&mut self, mut spec: TaskSpec, kind: TaskKind) -> String {
        let team = self.cfg.team.clone();
        let mut id = spec.id.clone();
        let mut n = 2;
        while self.specs.contains_key(&format!("{team}/{id}")) {
            id = format!("{}-{n}", spec.id);
            n += 1;
        }
        spec.id = id;
        let record = TaskRecord::new(&team, &spec.id, &spec.title).with_kind(kind);
        let key = record.key.clone();
        self.board.add_task(record);
        self.board.set_spec(&key, spec.clone());
        self.specs.insert(key.clone(), spec);
        self.queue.push(key.clone());
        key
    }

    /// The task's frozen work: `refs/cco/tasks/<run>/<team>/<task id>`.
    pub(crate) fn task_ref(&self, key: &str) -> String {
        let id = self
            .specs
            .get(key)
            .map(|s| s.id.clone())
            .unwrap_or_else(|| key.rsplit('/').next().unwrap_or(key).to_string());
        cco_git::task_ref(&self.cfg.run_name, &self.cfg.team, &id)
    }

    /// The lead's state line: planning, reviewing N tasks, or leading.
    pub(crate) fn show_activity(&self) {
        if self.plans.running.is_some() || self.stopping {
            return;
        }
        let state = match self.reviews.len() {
            0 => "leading".to_string(),
            n => format!("reviewing {n} task(s)"),
        };
        self.board.set_agent_state(&self.cfg.id, state);
    }

    /// A task left the lead's hands (done or failed): hand out work, maybe report idle.
    pub(crate) fn settled(&mut self) {
        self.schedule();
        self.check_idle();
    }

    /// Everything of this team is done: tell the Director (EM) or re-plan (Coordinator).
    pub(crate) fn check_idle(&mut self) {
        if self.stopping
            || self.plans.running.is_some()
            || !self.reviews.is_empty()
            || !self.plans.pending.is_empty()
            || self.reported_idle
        {
            return;
        }
        if self.slots.iter().any(|s| s.job.is_some()) {
            return;
        }
        let tasks = self.board.tasks_of_team(&self.cfg.team);
        if tasks.is_empty() || tasks.iter().any(|t| !t.phase.is_terminal()) {
            return;
        }
        if self.cfg.role == Role::Coordinator {
            self.enqueue_plan(PlanPrompt::Replan(tasks));
        } else {
            self.reported_idle = true;
            self.board.set_agent_state(&self.cfg.id, "idle: goal done");
            self.effects.push(Effect::Report(Report::TeamIdle));
        }
    }
}
