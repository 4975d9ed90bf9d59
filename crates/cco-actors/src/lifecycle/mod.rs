//! The life of a task, as a type, and the table that is the only writer of it.
//!
//! Every task is in exactly one [`TaskPhase`]; the journal stores it, and `cco resume` rebuilds
//! the run from it. The phases and the transitions between them:
//!
//! ```text
//!  Queued ──assign──▶ Running ──turn ended──▶ Finished ──capture──▶ Captured ──diff──▶ Reviewing
//!    ▲                 │  ▲                       │                                      │
//!    │ worker lost     │  │ assign (same worker)  │ refused: fix in place   Merging ◀──approve
//!    │                 │  │                       │        (already in the target: Captured ──▶ Merging)
//!    └─────────────────┤  │                       ▼                          │  │
//!                      └▶ Pinned ◀── revise / nothing committed ─────────────┼──┘ conflict, verify failed
//!                                                                    ▼
//!                                                                  Done
//!  (any phase but Done) ──▶ Failed
//! ```
//!
//! [`TaskTable`] holds the records and is the only code that changes a phase: it refuses a
//! transition the diagram does not have with a [`LifecycleError`] (logged by the caller, never
//! a panic), and keeps the derived fields of the record in step with the phase: the coarse
//! [`TaskState`], the review and conflict round counters, `captured_round`, `failure`,
//! `merged_commit`, the worker and lane of a running turn.

mod table;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::board::TaskState;

pub(crate) use table::TaskTable;

/// What kind of task a record is: it decides the task's first turn and what follows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaskKind {
    /// Planned by its lead: implemented, reviewed, merged into the lead's target.
    #[default]
    Planned,
    /// The team branch conflicts with the base branch `base`: one of the team's workers merges
    /// `base` into the team's work and resolves the conflict; the result is merged without a
    /// review (`merge-<base>` tasks of an EM).
    BaseMerge { base: String },
    /// The base branch's verify command failed on the team's work: a task to fix it, reviewed
    /// and merged like a planned one (`fix-verify` tasks of an EM).
    FixVerify,
}

impl TaskKind {
    /// The first turn a worker runs for a task of this kind.
    pub fn first_turn(&self) -> Turn {
        match self {
            TaskKind::Planned | TaskKind::FixVerify => Turn::Fresh,
            TaskKind::BaseMerge { base } => Turn::ResolveConflict {
                against: base.clone(),
                session_id: None,
            },
        }
    }
}

/// A turn a worker runs for a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Turn {
    /// The task from the start, in a new claude session.
    Fresh,
    /// The turn that was interrupted (cco stopped, or the API stayed unavailable longer than
    /// the turn's budget for it: `why`): its session continues where it was. `resolving`:
    /// that turn resolved a conflict with this branch (the merge is concluded and merged once
    /// the turn ends, as for [`Turn::ResolveConflict`]).
    Resume {
        session_id: String,
        #[serde(default)]
        resolving: Option<String>,
        #[serde(default)]
        why: Interruption,
    },
    /// The review (or the verify gate, or an empty capture) asked for changes: the task's
    /// session gets the feedback (`gate`: the verify gate failed, with its own prompt).
    Revise {
        feedback: String,
        session_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gate: Option<GateFailure>,
    },
    /// Merging the task's work conflicted with `against`: the task's session merges it into
    /// its work and resolves the conflict.
    ResolveConflict {
        against: String,
        session_id: Option<String>,
    },
    /// cco refused the work its last turn left in its worktree (`problem`: why, with file and
    /// line, never a secret's value): a secret, a path inside `.git`, a symlink leaving the
    /// repository, committed conflict markers, an unconcluded resolution. The same session
    /// fixes it where it is, in the same worktree; nothing of it reached a ref cco owns.
    /// `resolving`: the refused turn resolved a conflict with this branch.
    Fix {
        problem: String,
        session_id: Option<String>,
        #[serde(default)]
        resolving: Option<String>,
    },
}

impl Turn {
    /// The session this turn continues (`None`: a new one).
    pub fn session_id(&self) -> Option<&str> {
        match self {
            Turn::Fresh => None,
            Turn::Resume { session_id, .. } => Some(session_id),
            Turn::Revise { session_id, .. }
            | Turn::ResolveConflict { session_id, .. }
            | Turn::Fix { session_id, .. } => session_id.as_deref(),
        }
    }

    /// The same turn for a worker that cannot continue the session (another worker's, or one
    /// whose worktree is gone): a resumed turn starts the task over, a revision or a conflict
    /// keeps its context and starts a new session.
    pub fn without_session(self) -> Turn {
        match self {
            Turn::Resume {
                resolving: Some(against),
                ..
            } => Turn::ResolveConflict {
                against,
                session_id: None,
            },
            Turn::Resume { .. } | Turn::Fresh => Turn::Fresh,
            Turn::Revise { feedback, gate, .. } => Turn::Revise {
                feedback,
                session_id: None,
                gate,
            },
            Turn::ResolveConflict { against, .. }
            | Turn::Fix {
                resolving: Some(against),
                ..
            } => Turn::ResolveConflict {
                against,
                session_id: None,
            },
            // The refused work stays in the worktree of the session that made it: elsewhere
            // the task is revised from its last accepted state.
            Turn::Fix {
                problem,
                resolving: None,
                ..
            } => Turn::Revise {
                feedback: problem,
                session_id: None,
                gate: None,
            },
        }
    }

    /// The branch this turn's conflict resolution merges into the task's work, if it is one.
    pub fn resolving(&self) -> Option<&str> {
        match self {
            Turn::ResolveConflict { against, .. } => Some(against),
            Turn::Resume { resolving, .. } | Turn::Fix { resolving, .. } => resolving.as_deref(),
            Turn::Fresh | Turn::Revise { .. } => None,
        }
    }

    /// The turn that continues this one, interrupted by a restart of cco, in `session_id`.
    pub fn resumed(&self, session_id: String) -> Turn {
        self.interrupted(session_id, Interruption::CcoRestarted)
    }

    /// The turn that continues this one, interrupted (`why`), in `session_id`.
    pub fn interrupted(&self, session_id: String, why: Interruption) -> Turn {
        Turn::Resume {
            session_id,
            resolving: self.resolving().map(str::to_string),
            why,
        }
    }

    /// A short name for logs and status lines.
    pub fn name(&self) -> &'static str {
        match self {
            Turn::Fresh => "task",
            Turn::Resume { .. } => "resume",
            Turn::Revise { .. } => "revision",
            Turn::ResolveConflict { .. } => "conflict resolution",
            Turn::Fix { .. } => "fix",
        }
    }
}

/// Why a turn was interrupted and is resumed later ([`Turn::Resume`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Interruption {
    /// cco stopped (or died) while the turn ran.
    #[default]
    CcoRestarted,
    /// The API stayed unavailable (529, 5xx, connection errors) longer than the turn's
    /// budget for it: the task went back to the queue, not to the failed ones.
    ApiUnavailable,
}

/// The verify gate failed on the merge of a task's work: what the worker is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateFailure {
    /// The verify command as configured.
    pub command: String,
    /// What was being merged (the task ref) into the worker's target.
    pub source: String,
    /// How it ended (`exit 1`, `killed by signal 9`, ...).
    pub status: cco_protocol::CommandStatus,
    /// The end of its output.
    pub output: String,
}

/// Why a task's work is being merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MergeCause {
    /// The review approved it.
    Approved,
    /// The review asked for changes after the last review round: merged as it is.
    RoundsUsed,
    /// The review gave no usable decision (after the re-asks): the committed work was merged.
    /// Journals of older versions of cco only: such a review is now followed by a fresh one,
    /// then the task fails.
    NoDecision,
    /// A conflict resolution (or a base merge) was captured: the merge is retried. (Journals
    /// of older versions of cco: resolutions are reviewed now, and merged as `Approved`.)
    ConflictResolved,
    /// The task's work was found in the target already (merged before a restart the journal
    /// had not recorded): merged again to record it once.
    AlreadyMerged,
}

/// Where a task is in its life. Journaled; `cco resume` continues every task from its phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "name", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaskPhase {
    /// Waiting for any worker (its first turn: [`TaskKind::first_turn`]).
    #[default]
    Queued,
    /// Waiting for `worker`, whose session did the task, to run `turn` (before any new task).
    /// A dead worker's pinned turns go to another worker without the session.
    Pinned { worker: String, turn: Turn },
    /// `worker` runs `turn` in its worktree `lane` (0: its own, 1: its spare).
    Running {
        worker: String,
        lane: usize,
        turn: Turn,
    },
    /// The turn ended (`failure`: why it failed); its work is in the worktree `lane` of
    /// `worker` until the capture freezes it in the task ref. Journaled before the capture
    /// starts, so a resumed run captures it instead of running the session again.
    Finished {
        worker: String,
        lane: usize,
        turn: Turn,
        failure: Option<String>,
    },
    /// The task ref holds the latest round of work: it is being summarised for a review.
    Captured,
    /// Review round `round` of the work in the task ref (in a fork of the lead's session).
    Reviewing { round: u32 },
    /// The task ref is being merged into the lead's target.
    Merging { cause: MergeCause },
    /// Merged: the commit that brought it into the target.
    Done { commit: String },
    /// Given up, with the reason.
    Failed { reason: String },
}

impl TaskPhase {
    /// The coarse state of this phase (what status lines and older readers show).
    pub fn state(&self) -> TaskState {
        match self {
            TaskPhase::Queued | TaskPhase::Pinned { .. } => TaskState::Pending,
            TaskPhase::Running { .. } => TaskState::Running,
            TaskPhase::Finished { .. } | TaskPhase::Captured | TaskPhase::Reviewing { .. } => {
                TaskState::Review
            }
            TaskPhase::Merging { .. } => TaskState::Merging,
            TaskPhase::Done { .. } => TaskState::Done,
            TaskPhase::Failed { .. } => TaskState::Failed,
        }
    }

    /// The phase's name, as the journal writes it.
    pub fn name(&self) -> &'static str {
        match self {
            TaskPhase::Queued => "queued",
            TaskPhase::Pinned { .. } => "pinned",
            TaskPhase::Running { .. } => "running",
            TaskPhase::Finished { .. } => "finished",
            TaskPhase::Captured => "captured",
            TaskPhase::Reviewing { .. } => "reviewing",
            TaskPhase::Merging { .. } => "merging",
            TaskPhase::Done { .. } => "done",
            TaskPhase::Failed { .. } => "failed",
        }
    }

    /// Done or failed: nothing changes it any more.
    pub fn is_terminal(&self) -> bool {
        matches!(self, TaskPhase::Done { .. } | TaskPhase::Failed { .. })
    }

    /// Whether the lifecycle has an edge from `self` to `to`.
    pub fn can_become(&self, to: &TaskPhase) -> bool {
        use TaskPhase::*;
        match (self, to) {
            (Done { .. } | Failed { .. }, _) => false,
            (_, Failed { .. }) => true,
            (Queued, Running { .. }) => true,
            // A pinned turn may be re-pinned without its session (its worktree is gone).
            (Pinned { .. }, Running { .. } | Pinned { .. }) => true,
            // Turn ended; or the worker was lost: a first turn goes back to the queue, a
            // session's turn stays with its worker.
            (Running { .. }, Finished { .. } | Queued | Pinned { .. }) => true,
            // Every turn's work is reviewed, conflict resolutions too.
            (Finished { .. }, Captured) => true,
            // Nothing was committed (sent back), the work was refused (fixed in place), or the
            // worktree of the work is gone.
            (Finished { .. }, Pinned { .. }) => true,
            // Reviewed; sent back; or found merged already (a restart redid its review).
            (Captured, Reviewing { .. } | Pinned { .. } | Merging { .. }) => true,
            // A review ended (merge or revise), or was lost with a restart (review again).
            (Reviewing { .. }, Merging { .. } | Pinned { .. } | Captured) => true,
            // Merged; or a conflict or a red verify gate goes back to the task's session.
            (Merging { .. }, Done { .. } | Pinned { .. }) => true,
            _ => false,
        }
    }
}

/// A transition the lifecycle does not have, or a task the table does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    #[error("task {key} is unknown")]
    Unknown { key: String },
    #[error("task {key} cannot go from {from} to {to}")]
    Illegal {
        key: String,
        from: &'static str,
        to: &'static str,
    },
}
