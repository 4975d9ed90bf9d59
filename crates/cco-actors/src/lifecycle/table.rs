//! [`TaskTable`]: the run's task records, and the only writer of their phases.

use std::collections::BTreeMap;

use super::{LifecycleError, TaskPhase, Turn};
use crate::board::TaskRecord;

/// Task records by key. [`advance`](TaskTable::advance) is the only way to change a phase;
/// the other writers touch what a phase does not decide (session id, process starts, cost).
#[derive(Debug, Clone, Default)]
pub(crate) struct TaskTable {
    tasks: BTreeMap<String, TaskRecord>,
}

impl TaskTable {
    /// Records from a journal (`cco resume`): taken as they are; the lead continues each task
    /// from its phase.
    pub(crate) fn from_records(records: impl IntoIterator<Item = TaskRecord>) -> TaskTable {
        TaskTable {
            tasks: records.into_iter().map(|t| (t.key.clone(), t)).collect(),
        }
    }

    /// Adds a new task (or replaces one with the same key), with its derived fields made
    /// consistent with its phase.
    pub(crate) fn insert(&mut self, mut record: TaskRecord) {
        record.state = record.phase.state();
        self.tasks.insert(record.key.clone(), record);
    }

    pub(crate) fn get(&self, key: &str) -> Option<&TaskRecord> {
        self.tasks.get(key)
    }

    pub(crate) fn records(&self) -> impl Iterator<Item = &TaskRecord> {
        self.tasks.values()
    }

    /// Moves task `key` to phase `to`, when the lifecycle has that edge; keeps the record's
    /// derived fields in step. Returns the record as it is now.
    pub(crate) fn advance(
        &mut self,
        key: &str,
        to: TaskPhase,
    ) -> Result<&TaskRecord, LifecycleError> {
        let Some(task) = self.tasks.get_mut(key) else {
            return Err(LifecycleError::Unknown {
                key: key.to_string(),
            });
        };
        if !task.phase.can_become(&to) {
            return Err(LifecycleError::Illegal {
                key: key.to_string(),
                from: task.phase.name(),
                to: to.name(),
            });
        }
        let from = std::mem::take(&mut task.phase);
        match (&from, &to) {
            // A new round of work asked of the task's session.
            (
                TaskPhase::Finished { .. }
                | TaskPhase::Captured
                | TaskPhase::Reviewing { .. }
                | TaskPhase::Merging { .. },
                TaskPhase::Pinned {
                    turn: Turn::Revise { .. },
                    ..
                },
            ) => task.review_rounds += 1,
            (
                TaskPhase::Merging { .. },
                TaskPhase::Pinned {
                    turn: Turn::ResolveConflict { .. },
                    ..
                },
            ) => task.conflict_rounds += 1,
            // Refused work, fixed in place by its session.
            (
                _,
                TaskPhase::Pinned {
                    turn: Turn::Fix { .. },
                    ..
                },
            ) => task.fix_rounds += 1,
            // The work of the latest round is frozen in the task ref; a conflict resolution is
            // reviewed as one.
            (TaskPhase::Finished { turn, .. }, TaskPhase::Captured) => {
                task.captured_round = Some(task.rounds());
                task.resolution = turn.resolving().map(str::to_string);
            }
            (TaskPhase::Finished { .. }, TaskPhase::Merging { .. }) => {
                task.captured_round = Some(task.rounds());
            }
            _ => {}
        }
        match &to {
            TaskPhase::Running { worker, lane, .. } => {
                task.worker = Some(worker.clone());
                task.lane = Some(*lane);
            }
            // The worker was lost before it ran the task's first turn: any worker takes it.
            TaskPhase::Queued => task.worker = None,
            TaskPhase::Done { commit } => task.merged_commit = Some(commit.clone()),
            TaskPhase::Failed { reason } => task.failure = Some(reason.clone()),
            _ => {}
        }
        task.state = to.state();
        task.phase = to;
        Ok(task)
    }

    /// The session a turn of the task started (journaled at once: a crash right after still
    /// resumes it).
    pub(crate) fn note_session(&mut self, key: &str, session_id: &str) {
        if let Some(task) = self.tasks.get_mut(key) {
            task.session_id = Some(session_id.to_string());
        }
    }

    /// Keeps the session id a worker reported for a finished turn (when it has one).
    pub(crate) fn keep_session(&mut self, key: &str, session_id: Option<String>) {
        if let (Some(task), Some(id)) = (self.tasks.get_mut(key), session_id) {
            task.session_id = Some(id);
        }
    }

    /// A review of the task gave no usable decision; returns how many did so far.
    pub(crate) fn note_undecided_review(&mut self, key: &str) -> u32 {
        self.tasks.get_mut(key).map_or(0, |task| {
            task.undecided_reviews += 1;
            task.undecided_reviews
        })
    }

    /// One more claude process ran for the task.
    pub(crate) fn note_attempt(&mut self, key: &str) {
        if let Some(task) = self.tasks.get_mut(key) {
            task.attempts += 1;
        }
    }

    pub(crate) fn add_cost(&mut self, key: &str, cost_usd: f64) {
        if let Some(task) = self.tasks.get_mut(key) {
            task.cost_usd += cost_usd;
        }
    }
}
