//! The gates on the way to the target: refused work back to its session, moved branches,
//! integrity stops, environmental pauses, merges a restart redid.

use cco_git::{EnvFailure, FileLine, GitError, Refusal};

use super::*;
use crate::lead::core::Halt;
use crate::lead::gates::{MAX_FIX_ROUNDS, MAX_MOVED_RETRIES};

fn secret_at(path: &str, line: u64) -> GitError {
    GitError::Refused(Refusal::Secret {
        findings: vec![cco_git::SecretFinding {
            commit: "0123456789abcdef".into(),
            at: Some(FileLine::new(path, line)),
            what: "a configured API key".into(),
        }],
    })
}

fn capture_failed(
    lead: &mut Lead,
    slot: usize,
    lane: usize,
    id: &str,
    error: GitError,
) -> Vec<Effect> {
    let key = lead.key(id);
    lead.input(Input::Captured {
        slot,
        lane,
        key,
        epoch: lead.core.target_epoch,
        outcome: Err(error),
        turn: Ok(format!("{id} done")),
    })
}

fn merge_failed(lead: &mut Lead, id: &str, error: GitError) -> Vec<Effect> {
    let key = lead.key(id);
    lead.input(Input::Merged {
        key,
        outcome: Err(error),
    })
}

fn halts(effects: &[Effect]) -> Vec<(Halt, String)> {
    reports(effects)
        .into_iter()
        .filter_map(|r| match r {
            Report::Halt { cause, reason } => Some((cause, reason)),
            _ => None,
        })
        .collect()
}

/// A lead with t1 in review-ready state: planned, finished by worker-1 in its own worktree.
fn finished_t1() -> Lead {
    let mut lead = lead(1);
    lead.worker_ready(0);
    lead.plan(json!([task("t1")]));
    lead.finish(0, "t1");
    lead
}

#[test]
fn work_refused_at_capture_goes_back_to_its_session_in_place_then_fails_after_the_fix_rounds() {
    let mut lead = finished_t1();
    for round in 1..=MAX_FIX_ROUNDS {
        let effects = capture_failed(&mut lead, 0, 0, "t1", secret_at("env.txt", 2));
        let assigned = assigns(&effects);
        assert_eq!(assigned.len(), 1, "round {round}: {effects:?}");
        let (slot, _, turn, start, place) = &assigned[0];
        let Turn::Fix {
            problem,
            session_id,
            resolving,
        } = turn
        else {
            panic!("a fix turn: {turn:?}");
        };
        // File and line, never the value; the same session, in the worktree holding the work.
        assert!(
            problem.contains("env.txt:2") && problem.contains("secret"),
            "{problem}"
        );
        assert_eq!(
            (*slot, session_id.as_deref(), resolving, start, place),
            (
                0,
                Some("session-t1"),
                &None,
                &Start::InPlace,
                &worktree(0, 0)
            )
        );
        assert_eq!(lead.task("t1").fix_rounds, round);
        assert!(!effects.iter().any(|e| matches!(e, Effect::Merge { .. })));
        lead.finish(0, "t1");
    }
    capture_failed(&mut lead, 0, 0, "t1", secret_at("env.txt", 2));
    match lead.phase("t1") {
        TaskPhase::Failed { reason } => assert!(reason.contains("env.txt:2"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_resolution_left_with_markers_is_fixed_by_the_same_session_before_anything_is_captured() {
    let mut lead = lead(1);
    lead.worker_ready(0);
    lead.plan(json!([task("t1")]));
    lead.finish(0, "t1");
    lead.captured(0, 0, "t1", true);
    lead.diffed("t1", 1);
    lead.reviewed("t1", 0, APPROVE);
    lead.merged(
        "t1",
        MergeOutcome::Conflict {
            files: vec!["shared.txt".into()],
        },
    );
    let lane = lead.task("t1").lane.unwrap_or(0);
    let effects = lead.input(Input::WorkerReport {
        slot: 0,
        report: WorkerReport::Failed {
            key: lead.key("t1"),
            failure: JobFailure::Conclude(GitError::ConflictMarkers {
                path: worktree(0, lane),
                markers: vec![FileLine::new("shared.txt", 1)],
            }),
            session_id: Some("session-t1".into()),
        },
    });
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Capture(_))),
        "{effects:?}"
    );
    let assigned = assigns(&effects);
    assert_eq!(assigned.len(), 1, "{effects:?}");
    let (_, _, turn, start, place) = &assigned[0];
    assert!(
        matches!(turn, Turn::Fix { problem, resolving: Some(main), session_id: Some(_) }
            if problem.contains("shared.txt:1") && main == "main"),
        "{turn:?}"
    );
    assert_eq!((start, place), (&Start::InPlace, &worktree(0, lane)));
}

#[test]
fn work_refused_at_the_merge_is_revised_from_its_task_ref_and_never_merged() {
    let mut lead = finished_t1();
    lead.captured(0, 0, "t1", true);
    lead.diffed("t1", 1);
    lead.reviewed("t1", 0, APPROVE);
    let effects = merge_failed(&mut lead, "t1", secret_at("a.txt", 9));
    let assigned = assigns(&effects);
    assert_eq!(assigned.len(), 1, "{effects:?}");
    assert!(
        matches!(&assigned[0].2, Turn::Revise { feedback, .. } if feedback.contains("a.txt:9")),
        "{:?}",
        assigned[0].2
    );
    assert!(matches!(assigned[0].3, Start::TaskRef { .. }));
}

#[test]
fn a_moved_target_that_was_put_back_is_merged_again_and_one_that_keeps_moving_stops_the_run() {
    let mut lead = finished_t1();
    lead.captured(0, 0, "t1", true);
    lead.diffed("t1", 1);
    lead.reviewed("t1", 0, APPROVE);
    let mut events = lead.core.board.events().subscribe();
    let moved = || GitError::BranchMoved {
        branch: "main".into(),
        expected: "aaaa".into(),
        found: "bbbb".into(),
        commits: vec!["bbbbbbbbbbbbbbbb".into()],
        kept_in: Some("refs/cco/foreign/main/1".into()),
        restored: true,
    };
    for _ in 0..MAX_MOVED_RETRIES {
        let effects = merge_failed(&mut lead, "t1", moved());
        assert!(matches!(effects[..], [Effect::Merge { .. }]), "{effects:?}");
    }
    let warning = std::iter::from_fn(|| events.try_recv().ok())
        .find_map(|e| match e {
            RunEvent::Warning { message } => Some(message),
            _ => None,
        })
        .expect("a warning");
    assert!(
        warning.contains("main")
            && warning.contains("bbbbbbbbbb")
            && warning.contains("refs/cco/foreign/main/1"),
        "{warning}"
    );
    let effects = merge_failed(&mut lead, "t1", moved());
    assert_eq!(halts(&effects).len(), 1);
    assert_eq!(halts(&effects)[0].0, Halt::Integrity);
    // The task keeps its phase for `cco resume`.
    assert!(matches!(lead.phase("t1"), TaskPhase::Merging { .. }));
}

#[test]
fn a_branch_that_could_not_be_put_back_stops_the_run_and_a_full_disk_pauses_it() {
    let mut lead = finished_t1();
    lead.captured(0, 0, "t1", true);
    lead.diffed("t1", 1);
    lead.reviewed("t1", 0, APPROVE);
    let effects = merge_failed(
        &mut lead,
        "t1",
        GitError::BranchMoved {
            branch: "main".into(),
            expected: "aaaa".into(),
            found: "bbbb".into(),
            commits: vec![],
            kept_in: None,
            restored: false,
        },
    );
    assert_eq!(halts(&effects)[0].0, Halt::Integrity);
    assert!(matches!(lead.phase("t1"), TaskPhase::Merging { .. }));

    let mut lead = finished_t1();
    let effects = capture_failed(
        &mut lead,
        0,
        0,
        "t1",
        GitError::Environment {
            kind: EnvFailure::DiskFull,
            path: "/ws/repo".into(),
            detail: "No space left on device".into(),
        },
    );
    assert_eq!(
        halts(&effects),
        vec![(
            Halt::Environment,
            "disk full in /ws/repo; free space and run cco resume".to_string()
        )]
    );
    // Not failed: the capture is redone by `cco resume`; nothing new starts meanwhile.
    assert!(matches!(lead.phase("t1"), TaskPhase::Finished { .. }));
    assert!(lead.core.halted);
}

#[test]
fn the_same_git_error_on_three_tasks_in_a_row_pauses_the_run() {
    let mut lead = lead(3);
    for slot in 0..3 {
        lead.worker_ready(slot);
    }
    lead.plan(json!([task("t1"), task("t2"), task("t3")]));
    let broken = |id: &str| GitError::Command {
        op: "capture_task".into(),
        args: "update-ref".into(),
        path: "/ws/repo".into(),
        code: Some(128),
        stderr_tail: format!("fatal: cannot lock ref 'refs/cco/tasks/run-1/flat/{id}'"),
    };
    let mut all = Vec::new();
    for (slot, id) in ["t1", "t2", "t3"].iter().enumerate() {
        lead.finish(slot, id);
        all.extend(capture_failed(&mut lead, slot, 0, id, broken(id)));
    }
    assert!(matches!(lead.phase("t1"), TaskPhase::Failed { .. }));
    assert!(matches!(lead.phase("t2"), TaskPhase::Failed { .. }));
    // The third is left for `cco resume`.
    assert!(matches!(lead.phase("t3"), TaskPhase::Finished { .. }));
    let halts = halts(&all);
    assert_eq!(halts.len(), 1, "{all:?}");
    assert_eq!(halts[0].0, Halt::Environment);
    assert!(
        halts[0].1.contains("3 tasks in a row") && halts[0].1.contains("cco resume"),
        "{}",
        halts[0].1
    );
}

/// A merge redone after a restart (the first one landed before the journal recorded it):
/// done with the commit that really merged it, counted once, no second `Merged` event.
#[test]
fn a_merge_redone_after_a_restart_is_recorded_once_with_the_commit_that_merged_it() {
    let mut lead = finished_t1();
    lead.captured(0, 0, "t1", true);
    lead.diffed("t1", 1);
    lead.reviewed("t1", 0, APPROVE);
    let mut events = lead.core.board.events().subscribe();
    lead.merged(
        "t1",
        MergeOutcome::UpToDate {
            commit: "the-merge".into(),
        },
    );
    assert_eq!(
        lead.phase("t1"),
        TaskPhase::Done {
            commit: "the-merge".into()
        }
    );
    assert_eq!(lead.task("t1").merged_commit.as_deref(), Some("the-merge"));
    let totals = lead.core.board.snapshot().totals;
    assert_eq!((totals.tasks_done, totals.merges), (1, 1));
    let merged_events = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| matches!(e, RunEvent::Merged { .. }))
        .count();
    assert_eq!(merged_events, 0);
    // A late second answer changes nothing.
    lead.merged("t1", merged());
    let totals = lead.core.board.snapshot().totals;
    assert_eq!((totals.tasks_done, totals.merges), (1, 1));
}

/// The journal lagged behind the merge: the task was restored in review. Its review finds
/// nothing of the task ref left outside the target: it was merged, so it is merged again
/// (recorded once, up to date), never sent back as "nothing committed".
#[test]
fn work_found_merged_already_is_recorded_as_merged_not_sent_back() {
    let mut lead = finished_t1();
    lead.captured(0, 0, "t1", true);
    let effects = lead.diffed("t1", 0);
    assert!(
        effects.iter().any(|e| matches!(e, Effect::Merge { .. })),
        "{effects:?}"
    );
    assert!(assigns(&effects).is_empty(), "not sent back: {effects:?}");
    lead.merged(
        "t1",
        MergeOutcome::UpToDate {
            commit: "the-merge".into(),
        },
    );
    assert_eq!(
        lead.phase("t1"),
        TaskPhase::Done {
            commit: "the-merge".into()
        }
    );
    assert_eq!(lead.task("t1").review_rounds, 0);
}
