//! Journals of older versions of cco, brought up to date when they are read.
//!
//! Version 1 (cco before the task lifecycle) has a coarse `state` per task, `review_rounds`
//! counting review and conflict rounds together, `captured_round` equal to `review_rounds`
//! when the task ref held the latest round, and no task kinds (a pending base merge was not
//! told apart from a planned task). Each task gets the phase and kind that state means, so a
//! run interrupted under an older cco resumes under this one.

use crate::board::{TaskRecord, TaskState};
use crate::lifecycle::{MergeCause, TaskKind, TaskPhase, Turn};

use super::{Journal, JOURNAL_VERSION};

pub(super) fn upgrade_v1(journal: &mut Journal) {
    let base = journal.base_branch.clone();
    for task in &mut journal.snapshot.tasks {
        task.kind = kind_of_v1(task, &base);
        task.phase = phase_of_v1(task);
        task.conflict_rounds = 0;
    }
    journal.version = JOURNAL_VERSION;
}

/// The tasks a version 1 EM made from the Director's requests have fixed ids and titles.
fn kind_of_v1(task: &TaskRecord, base: &str) -> TaskKind {
    let merge_id = format!("merge-{}", base.replace('/', "-"));
    let numbered = |id: &str, stem: &str| {
        id == stem
            || id
                .strip_prefix(stem)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    if numbered(&task.id, &merge_id) && task.title == format!("Merge {base} into the team branch") {
        TaskKind::BaseMerge {
            base: base.to_string(),
        }
    } else if numbered(&task.id, "fix-verify") && task.title == "Make the verify command pass" {
        TaskKind::FixVerify
    } else {
        TaskKind::Planned
    }
}

/// What a version 1 state meant, as a phase.
fn phase_of_v1(task: &TaskRecord) -> TaskPhase {
    // The task ref held the latest round of work.
    let frozen = task.captured_round == Some(task.review_rounds);
    let lane = task.lane.unwrap_or(0);
    match (task.state, task.worker.clone()) {
        (TaskState::Pending, _) => TaskPhase::Queued,
        (TaskState::Running, Some(worker)) => TaskPhase::Running {
            worker,
            lane,
            turn: Turn::Fresh,
        },
        (TaskState::Review, _) if frozen => TaskPhase::Captured,
        (TaskState::Merging, _) if frozen => TaskPhase::Merging {
            cause: MergeCause::Approved,
        },
        // A finished turn not captured yet: its work is in the worktree it ran in.
        (TaskState::Review | TaskState::Merging, Some(worker)) => TaskPhase::Finished {
            worker,
            lane,
            turn: Turn::Fresh,
            failure: None,
        },
        (TaskState::Running | TaskState::Review | TaskState::Merging, None) => TaskPhase::Queued,
        (TaskState::Done, _) => TaskPhase::Done {
            commit: task.merged_commit.clone().unwrap_or_default(),
        },
        (TaskState::Failed, _) => TaskPhase::Failed {
            reason: task.failure.clone().unwrap_or_default(),
        },
    }
}
