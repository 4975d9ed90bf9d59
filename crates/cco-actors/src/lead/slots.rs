//! Worker slots and their lanes: which job runs on which worker, in which worktree, from where.
//!
//! A worker has two worktrees ("lanes"): while its finished turn in one is captured, reviewed
//! and merged, its next task already runs in the other. [`LeadCore::schedule`] gives each idle
//! worker its pinned turn first (a revision, a conflict, a resumed turn: the session lives in
//! one of its lanes and its config dir), else one whose worker is gone (without the session),
//! else the first queued task whose dependencies are done. A task whose dependency failed
//! fails. A new task starts in a parked lane as it is when nothing it needs merged since
//! (see [`LeadCore::start_for`]), so git stays off the path between a worker's turns.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cco_git::{GitError, WorktreeInfo};
use tracing::warn;

use super::core::{Effect, LeadCore};
use crate::events::RunEvent;
use crate::lifecycle::{TaskPhase, Turn};
use crate::worker::{Job, Start, Workplace};

/// How long a parked worktree's tip counts as fresh for a new task (see `start_for`).
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(30);

/// One of a worker's worktrees.
#[derive(Debug, Default)]
pub(crate) struct Lane {
    /// `None` until the worktree exists.
    pub(crate) path: Option<PathBuf>,
    pub(crate) branch: String,
    /// Task whose job runs here or whose capture is pending.
    pub(crate) busy: Option<String>,
    /// When this worktree was parked at the target tip; `None` when it may be elsewhere (a
    /// new task syncs it first).
    pub(crate) parked: Option<Parked>,
}

impl Lane {
    pub(crate) fn is_free(&self) -> bool {
        self.path.is_some() && self.busy.is_none()
    }
}

/// Where and when a worktree was parked at the target tip.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parked {
    /// The lead's `target_epoch` (its merges so far) at that tip, or before.
    pub(crate) epoch: u64,
    pub(crate) at: Instant,
}

/// A worker slot as the scheduler sees it (the shell keeps the actor).
#[derive(Debug)]
pub(crate) struct WorkerSlot {
    pub(crate) id: String,
    /// An actor fills the slot.
    pub(crate) up: bool,
    /// The slot gave up (too many restarts).
    pub(crate) dead: bool,
    /// Its own worktree (created by the Worker actor) and its spare.
    pub(crate) lanes: [Lane; 2],
    /// The task the worker runs a job for, and the lane (from assignment until it reports).
    pub(crate) job: Option<(String, usize)>,
}

impl WorkerSlot {
    pub(crate) fn new(id: String) -> WorkerSlot {
        WorkerSlot {
            id,
            up: false,
            dead: false,
            lanes: Default::default(),
            job: None,
        }
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.up && self.job.is_none() && !self.dead && self.lanes.iter().any(Lane::is_free)
    }
}

/// The second worktree of worker `id` (created in the background once the worker runs).
pub(crate) fn spare_worktree_id(id: &str) -> String {
    format!("{id}-b")
}

impl LeadCore {
    pub(crate) fn slot_of_worker(&self, worker: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.id == worker)
    }

    fn owner_alive(&self, worker: &str) -> bool {
        self.slot_of_worker(worker)
            .is_some_and(|s| !self.slots[s].dead)
    }

    pub(crate) fn on_worker_ready(
        &mut self,
        slot: usize,
        worktree: PathBuf,
        branch: String,
        fresh: bool,
    ) {
        let (epoch, now) = (self.target_epoch, self.now);
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        let lane = &mut s.lanes[0];
        lane.path = Some(worktree);
        lane.branch = branch;
        // Created just now at the target tip: parked there.
        if fresh {
            lane.parked = Some(Parked { epoch, at: now });
        }
        if s.lanes[1].path.is_none() {
            let worktree_id = spare_worktree_id(&s.id);
            self.emit(Effect::CreateSpare {
                slot,
                worktree_id,
                epoch,
            });
        }
        self.start_recaptures();
        self.schedule();
    }

    pub(crate) fn on_lane_ready(
        &mut self,
        slot: usize,
        epoch: u64,
        result: Result<WorktreeInfo, GitError>,
    ) {
        match result {
            Ok(info) => {
                let now = self.now;
                if let Some(s) = self.slots.get_mut(slot) {
                    let lane = &mut s.lanes[1];
                    lane.path = Some(info.path);
                    lane.branch = info.branch;
                    // Created at the tip it had when asked for: parked there.
                    lane.parked = info.at_start_point.then_some(Parked { epoch, at: now });
                }
                self.start_recaptures();
            }
            // One worktree works too: the worker then waits for each capture. Jobs whose
            // session lived in the spare (a resumed run) start over elsewhere.
            Err(error) => {
                warn!(lead = %self.cfg.id, slot, %error, "no spare worktree");
                self.unpin_from_spare(slot);
            }
        }
        self.schedule();
    }

    /// The worker actor of `slot` is gone: its job goes back (a first turn to the queue; a
    /// session's turn stays with this slot, whose next actor resumes the session in the same
    /// worktree and config dir). Whatever it left in the lane is synced before reuse.
    pub(crate) fn on_worker_down(&mut self, slot: usize) {
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        s.up = false;
        if let Some((key, lane)) = s.job.take() {
            let lane = &mut s.lanes[lane];
            lane.busy = None;
            lane.parked = None;
            self.requeue(&key);
        }
        self.schedule();
    }

    /// A running task whose worker is lost or refused it goes back.
    pub(crate) fn requeue(&mut self, key: &str) {
        let Some(TaskPhase::Running { worker, turn, .. }) = self.board.task(key).map(|t| t.phase)
        else {
            return;
        };
        let back = match turn {
            Turn::Fresh => TaskPhase::Queued,
            turn => TaskPhase::Pinned { worker, turn },
        };
        let _ = self.board.advance(key, back);
    }

    /// The worker's spare worktree could not be created: its pinned turns whose session lives
    /// there start over in the worker's own worktree, and a restored turn waiting there for its
    /// capture is done again (its work is out of reach).
    fn unpin_from_spare(&mut self, slot: usize) {
        let worker = self.slots[slot].id.clone();
        let stranded: Vec<(String, Turn)> = self.board.with_tasks(|table| {
            table
                .records()
                .filter(|t| t.team == self.cfg.team && t.lane == Some(1))
                .filter_map(|t| match &t.phase {
                    TaskPhase::Pinned { worker: w, turn } if *w == worker => {
                        Some((t.key.clone(), turn.clone()))
                    }
                    _ => None,
                })
                .collect()
        });
        for (key, turn) in stranded {
            let worker = worker.clone();
            let _ = self.board.advance(
                &key,
                TaskPhase::Pinned {
                    worker,
                    turn: turn.without_session(),
                },
            );
        }
        let (lost, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.recaptures)
            .into_iter()
            .partition(|(s, lane, _)| *s == slot && *lane == 1);
        self.recaptures = kept;
        for (_, _, key) in lost {
            warn!(task = %key, "the worktree of a finished turn is gone: doing the task again");
            self.slots[slot].lanes[1].busy = None;
            let _ = self.board.advance(
                &key,
                TaskPhase::Pinned {
                    worker: worker.clone(),
                    turn: Turn::Fresh,
                },
            );
        }
    }

    /// Hands pinned turns and ready tasks (dependencies done) to idle workers; fails tasks
    /// whose dependency failed.
    pub(crate) fn schedule(&mut self) {
        if self.stopping || self.run_stopping || self.halted {
            return;
        }
        let idle: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].is_idle())
            .collect();
        if idle.is_empty() {
            return;
        }
        // One read of the table: the team's pinned turns and its ready tasks, in plan order.
        let team = &self.cfg.team;
        let (mut pinned, ready, failed) = self.board.with_tasks(|table| {
            let (mut pinned, mut ready, mut failed) = (Vec::new(), Vec::new(), Vec::new());
            for key in &self.queue {
                let Some(task) = table.get(key) else { continue };
                match &task.phase {
                    TaskPhase::Pinned { worker, turn } => {
                        pinned.push((key.clone(), worker.clone(), turn.clone()))
                    }
                    TaskPhase::Queued => {
                        let Some(spec) = self.specs.get(key) else {
                            continue;
                        };
                        let mut waits = false;
                        let mut failed_dep = None;
                        for dep in &spec.depends_on {
                            match table.get(&format!("{team}/{dep}")).map(|t| &t.phase) {
                                Some(TaskPhase::Done { .. }) | None => {}
                                Some(TaskPhase::Failed { .. }) => failed_dep = Some(dep.clone()),
                                Some(_) => waits = true,
                            }
                        }
                        match failed_dep {
                            Some(dep) => failed.push((key.clone(), dep)),
                            None if !waits => ready.push((key.clone(), task.kind.first_turn())),
                            None => {}
                        }
                    }
                    _ => {}
                }
            }
            (pinned, ready, failed)
        });
        for (key, dep) in failed {
            self.fail_task(&key, &format!("dependency {dep} failed"));
        }
        let mut ready = ready.into_iter();
        for slot in idle {
            // Its own pinned turn first, else one whose worker is gone.
            let own = pinned
                .iter()
                .position(|(_, worker, _)| *worker == self.slots[slot].id);
            let pick = own.map(|i| (i, false)).or_else(|| {
                pinned
                    .iter()
                    .position(|(_, worker, _)| !self.owner_alive(worker))
                    .map(|i| (i, true))
            });
            if let Some((i, orphan)) = pick {
                let turn = if orphan {
                    // Another worker's session cannot be resumed here.
                    pinned[i].2.clone().without_session()
                } else {
                    pinned[i].2.clone()
                };
                // The worktree its session lives in is not free yet (a capture is finishing
                // there): the worker waits for it rather than start something else.
                if self.lane_for(slot, &pinned[i].0, &turn).is_none() {
                    continue;
                }
                let (key, _, _) = pinned.remove(i);
                self.assign(slot, key, turn);
                continue;
            }
            if let Some((key, turn)) = ready.next() {
                self.assign(slot, key, turn);
            }
        }
    }

    fn assign(&mut self, slot: usize, key: String, turn: Turn) {
        let Some(lane) = self.lane_for(slot, &key, &turn) else {
            return;
        };
        let Some(path) = self.slots[slot].lanes[lane].path.clone() else {
            return;
        };
        let Some(spec) = self.specs.get(&key).cloned() else {
            return;
        };
        let place = Workplace {
            path,
            branch: self.slots[slot].lanes[lane].branch.clone(),
        };
        let start = self.start_for((slot, lane), &key, &turn);
        let worker = self.slots[slot].id.clone();
        let running = TaskPhase::Running {
            worker: worker.clone(),
            lane,
            turn: turn.clone(),
        };
        if self.board.advance(&key, running).is_err() {
            return;
        }
        let s = &mut self.slots[slot];
        s.job = Some((key.clone(), lane));
        s.lanes[lane].busy = Some(key.clone());
        s.lanes[lane].parked = None;
        self.board.events().emit(RunEvent::TaskAssigned {
            task: key.clone(),
            worker,
        });
        self.emit(Effect::Assign {
            slot,
            job: Job { key, spec, turn },
            start,
            place,
        });
    }

    /// The lane `turn` of task `key` runs in on `slot`: the one its session lives in
    /// (revisions, conflicts, resumes), or for a new task the free one parked most recently.
    /// `None`: not free now.
    pub(crate) fn lane_for(&self, slot: usize, key: &str, turn: &Turn) -> Option<usize> {
        let lanes = &self.slots[slot].lanes;
        // A task record without a lane is from a journal of a cco with one worktree per
        // worker: its session lives in the worker's own.
        let task_lane = || {
            self.board
                .task(key)
                .map(|t| t.lane.unwrap_or(0))
                .unwrap_or(0)
        };
        let own = match turn {
            Turn::Fresh => None,
            // Merging another branch (the base) into the team's work: any worktree.
            Turn::ResolveConflict { against, .. } if *against != self.cfg.target_branch => None,
            Turn::Revise { session_id, .. } | Turn::ResolveConflict { session_id, .. } => {
                session_id.as_ref().map(|_| task_lane())
            }
            // Refused work is fixed where it is.
            Turn::Resume { .. } | Turn::Fix { .. } => Some(task_lane()),
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

    /// Where the worktree must be before `turn` of task `key` runs in it.
    pub(crate) fn start_for(&self, (slot, lane): (usize, usize), key: &str, turn: &Turn) -> Start {
        let target = self.cfg.target_branch.clone();
        match turn {
            // The interrupted work, or the refused work, is in the worktree as it was left.
            Turn::Resume { .. } | Turn::Fix { .. } => Start::InPlace,
            Turn::Fresh => {
                // A parked worktree starts a task as it is when nothing merged since it was
                // parked, or when it was parked less than `FRESH_FOR` ago and none of the
                // tasks this one depends on merged since: its branch then starts at most a
                // few seconds' merges behind, as every branch falls behind while others land,
                // and the merge brings them together. This keeps git off the path between a
                // worker's turns when tasks are short; a worktree parked longer ago is synced.
                let depends_on = self
                    .specs
                    .get(key)
                    .map(|s| s.depends_on.as_slice())
                    .unwrap_or_default();
                let fresh = self.slots[slot].lanes[lane].parked.is_some_and(|parked| {
                    parked.epoch == self.target_epoch
                        || (self.now.saturating_duration_since(parked.at) < FRESH_FOR
                            && !depends_on.iter().any(|dep| {
                                self.merged_epoch
                                    .get(&format!("{}/{dep}", self.cfg.team))
                                    .is_some_and(|&merged| merged > parked.epoch)
                            }))
                });
                if fresh {
                    Start::InPlace
                } else {
                    Start::Sync(target)
                }
            }
            Turn::ResolveConflict { against, .. } if *against != target => Start::Sync(target),
            Turn::Revise { .. } | Turn::ResolveConflict { .. } => {
                let frozen = self
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
}
