//! Unit tests of the task lifecycle: every edge of the state diagram (and none other), the
//! derived fields the table keeps, turns and kinds, the journal format of phases.

use super::*;
use crate::board::{TaskRecord, TaskState};

fn running(turn: Turn) -> TaskPhase {
    TaskPhase::Running {
        worker: "worker-1".into(),
        lane: 1,
        turn,
    }
}

fn finished(turn: Turn) -> TaskPhase {
    TaskPhase::Finished {
        worker: "worker-1".into(),
        lane: 1,
        turn,
        failure: None,
    }
}

fn pinned(turn: Turn) -> TaskPhase {
    TaskPhase::Pinned {
        worker: "worker-1".into(),
        turn,
    }
}

fn revise() -> Turn {
    Turn::Revise {
        feedback: "add a test".into(),
        session_id: Some("s1".into()),
        gate: None,
    }
}

fn resolve() -> Turn {
    Turn::ResolveConflict {
        against: "main".into(),
        session_id: Some("s1".into()),
    }
}

fn merging() -> TaskPhase {
    TaskPhase::Merging {
        cause: MergeCause::Approved,
    }
}

fn done() -> TaskPhase {
    TaskPhase::Done {
        commit: "abc".into(),
    }
}

fn failed() -> TaskPhase {
    TaskPhase::Failed {
        reason: "no".into(),
    }
}

fn table_with(phase: TaskPhase) -> TaskTable {
    let mut record = TaskRecord::new("flat", "t1", "Write t1");
    record.phase = phase;
    let mut table = TaskTable::default();
    table.insert(record);
    table
}

/// One sample of every phase (and of the turns that change what is legal).
fn samples() -> Vec<(&'static str, TaskPhase)> {
    vec![
        ("queued", TaskPhase::Queued),
        ("pinned-revise", pinned(revise())),
        ("running-fresh", running(Turn::Fresh)),
        ("finished-fresh", finished(Turn::Fresh)),
        ("finished-resolve", finished(resolve())),
        ("captured", TaskPhase::Captured),
        ("reviewing", TaskPhase::Reviewing { round: 0 }),
        ("merging", merging()),
        ("done", done()),
        ("failed", failed()),
    ]
}

/// The edges of the state diagram in the module docs, over the samples.
const LEGAL: &[(&str, &str)] = &[
    ("queued", "running-fresh"),
    ("pinned-revise", "pinned-revise"),
    ("pinned-revise", "running-fresh"),
    ("running-fresh", "queued"),
    ("running-fresh", "pinned-revise"),
    ("running-fresh", "finished-fresh"),
    ("running-fresh", "finished-resolve"),
    ("finished-fresh", "pinned-revise"),
    ("finished-fresh", "captured"),
    ("finished-resolve", "pinned-revise"),
    ("finished-resolve", "captured"),
    ("captured", "pinned-revise"),
    ("captured", "reviewing"),
    ("captured", "merging"),
    ("reviewing", "pinned-revise"),
    ("reviewing", "captured"),
    ("reviewing", "merging"),
    ("merging", "pinned-revise"),
    ("merging", "done"),
];

#[test]
fn the_table_allows_exactly_the_edges_of_the_lifecycle() {
    for (from_name, from) in samples() {
        for (to_name, to) in samples() {
            let legal = LEGAL.contains(&(from_name, to_name))
                || (to_name == "failed" && !from.is_terminal());
            let mut table = table_with(from.clone());
            let result = table.advance("flat/t1", to.clone()).map(|_| ());
            assert_eq!(
                result.is_ok(),
                legal,
                "{from_name} -> {to_name}: {:?}",
                result.err()
            );
            let record = table.get("flat/t1").unwrap();
            if legal {
                assert_eq!(record.phase, to);
            } else {
                // Refused, with a typed error; nothing changed.
                assert_eq!(record.phase, from, "{from_name} -> {to_name}");
                assert_eq!(
                    result.unwrap_err(),
                    LifecycleError::Illegal {
                        key: "flat/t1".into(),
                        from: from.name(),
                        to: to.name(),
                    }
                );
            }
        }
    }
}

#[test]
fn an_illegal_transition_names_the_task_and_both_phases_and_an_unknown_task_is_an_error() {
    let mut table = table_with(done());
    let error = table.advance("flat/t1", TaskPhase::Queued).unwrap_err();
    assert_eq!(
        error.to_string(),
        "task flat/t1 cannot go from done to queued"
    );
    let error = table.advance("flat/nope", TaskPhase::Queued).unwrap_err();
    assert_eq!(
        error,
        LifecycleError::Unknown {
            key: "flat/nope".into()
        }
    );
}

/// A task through a review round and a conflict round: the table keeps the derived fields.
#[test]
fn the_table_counts_review_and_conflict_rounds_apart_and_keeps_derived_fields() {
    let mut table = table_with(TaskPhase::Queued);
    let key = "flat/t1";
    let step = |table: &mut TaskTable, phase: TaskPhase| table.advance(key, phase).unwrap().clone();
    let t = step(&mut table, running(Turn::Fresh));
    assert_eq!(
        (t.state, t.worker.as_deref(), t.lane),
        (TaskState::Running, Some("worker-1"), Some(1))
    );
    let t = step(&mut table, finished(Turn::Fresh));
    assert_eq!((t.state, t.captured_round), (TaskState::Review, None));
    let t = step(&mut table, TaskPhase::Captured);
    assert_eq!(t.captured_round, Some(0));
    step(&mut table, TaskPhase::Reviewing { round: 0 });
    let t = step(&mut table, pinned(revise()));
    assert_eq!(
        (t.state, t.review_rounds, t.conflict_rounds),
        (TaskState::Pending, 1, 0)
    );
    // Re-pinning (a worktree lost) is no new round.
    let t = step(&mut table, pinned(revise().without_session()));
    assert_eq!(t.review_rounds, 1);
    step(&mut table, running(revise()));
    step(&mut table, finished(revise()));
    let t = step(&mut table, TaskPhase::Captured);
    assert_eq!(t.captured_round, Some(1));
    step(&mut table, TaskPhase::Reviewing { round: 1 });
    step(&mut table, merging());
    let t = step(&mut table, pinned(resolve()));
    assert_eq!((t.review_rounds, t.conflict_rounds, t.rounds()), (1, 1, 2));
    step(&mut table, running(resolve()));
    step(&mut table, finished(resolve()));
    // A resolution is captured and reviewed as one.
    let t = step(&mut table, TaskPhase::Captured);
    assert_eq!(
        (t.captured_round, t.resolution.as_deref()),
        (Some(2), Some("main"))
    );
    step(&mut table, TaskPhase::Reviewing { round: 2 });
    let t = step(
        &mut table,
        TaskPhase::Merging {
            cause: MergeCause::Approved,
        },
    );
    assert_eq!((t.state, t.captured_round), (TaskState::Merging, Some(2)));
    let t = step(&mut table, done());
    assert_eq!(
        (t.state, t.merged_commit.as_deref()),
        (TaskState::Done, Some("abc"))
    );
    // A worker lost before its first turn ends gives the task back to the queue, unowned.
    let mut table = table_with(running(Turn::Fresh));
    let t = table.advance(key, TaskPhase::Queued).unwrap();
    assert_eq!((t.worker.as_deref(), t.state), (None, TaskState::Pending));
    let t = table.advance(key, failed()).unwrap();
    assert_eq!(
        (t.state, t.failure.as_deref()),
        (TaskState::Failed, Some("no"))
    );
}

#[test]
fn every_phase_has_its_coarse_state() {
    let states: Vec<(&str, TaskState)> = samples()
        .into_iter()
        .map(|(name, phase)| (name, phase.state()))
        .collect();
    assert_eq!(
        states,
        [
            ("queued", TaskState::Pending),
            ("pinned-revise", TaskState::Pending),
            ("running-fresh", TaskState::Running),
            ("finished-fresh", TaskState::Review),
            ("finished-resolve", TaskState::Review),
            ("captured", TaskState::Review),
            ("reviewing", TaskState::Review),
            ("merging", TaskState::Merging),
            ("done", TaskState::Done),
            ("failed", TaskState::Failed),
        ]
    );
}

#[test]
fn turns_without_their_session_keep_their_context() {
    let resumed_conflict = Turn::Resume {
        session_id: "s1".into(),
        resolving: Some("main".into()),
        why: Default::default(),
    };
    assert_eq!(resumed_conflict.resolving(), Some("main"));
    assert_eq!(
        resumed_conflict.without_session(),
        Turn::ResolveConflict {
            against: "main".into(),
            session_id: None
        }
    );
    assert_eq!(
        Turn::Resume {
            session_id: "s1".into(),
            resolving: None,
            why: Default::default(),
        }
        .without_session(),
        Turn::Fresh
    );
    assert_eq!(
        revise().without_session(),
        Turn::Revise {
            feedback: "add a test".into(),
            session_id: None,
            gate: None
        }
    );
    assert_eq!(
        resolve().resumed("s9".into()),
        Turn::Resume {
            session_id: "s9".into(),
            resolving: Some("main".into()),
            why: Default::default(),
        }
    );
    assert_eq!(revise().session_id(), Some("s1"));
    assert_eq!(revise().resolving(), None);
    // Refused work is fixed in place by its session; elsewhere, without it, the task is
    // revised (or the conflict resolved again) from its last accepted state.
    let fix = |resolving: Option<&str>| Turn::Fix {
        problem: "a secret at a.txt:1".into(),
        session_id: Some("s1".into()),
        resolving: resolving.map(str::to_string),
    };
    assert_eq!(fix(Some("main")).resolving(), Some("main"));
    assert_eq!(
        fix(None).without_session(),
        Turn::Revise {
            feedback: "a secret at a.txt:1".into(),
            session_id: None,
            gate: None,
        }
    );
    assert_eq!(
        fix(Some("main")).without_session(),
        Turn::ResolveConflict {
            against: "main".into(),
            session_id: None
        }
    );
}

#[test]
fn a_base_merge_starts_as_a_conflict_resolution_against_the_base() {
    let kind = TaskKind::BaseMerge {
        base: "main".into(),
    };
    assert_eq!(
        kind.first_turn(),
        Turn::ResolveConflict {
            against: "main".into(),
            session_id: None
        }
    );
    assert_eq!(TaskKind::FixVerify.first_turn(), Turn::Fresh);
    assert_eq!(TaskKind::Planned.first_turn(), Turn::Fresh);
}

#[test]
fn phases_and_kinds_are_journaled_with_their_names() {
    let mut record = TaskRecord::new("team-1", "merge-main", "Merge main into the team branch")
        .with_kind(TaskKind::BaseMerge {
            base: "main".into(),
        });
    record.phase = pinned(resolve());
    let json = serde_json::to_value(&record).unwrap();
    assert_eq!(json["phase"]["name"], "pinned");
    assert_eq!(json["phase"]["turn"]["kind"], "resolve_conflict");
    assert_eq!(json["kind"]["kind"], "base_merge");
    assert_eq!(json["kind"]["base"], "main");
    let back: TaskRecord = serde_json::from_value(json).unwrap();
    assert_eq!(back.phase, record.phase);
    assert_eq!(back.kind, record.kind);
}
