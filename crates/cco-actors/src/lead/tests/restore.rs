//! `cco resume`: every journaled phase continues; a lost spare worktree.

use super::*;

/// The spare worktree cannot be created (a resumed run whose sessions lived there): a pinned
/// turn of a session there starts a new session in the own worktree, and a finished turn
/// waiting there for its capture is done again.
#[test]
fn a_lost_spare_worktree_moves_its_sessions_to_the_own_one() {
    let board = board();
    let mut revised = TaskRecord::new("flat", "t1", "t1");
    revised.phase = TaskPhase::Pinned {
        worker: "worker-1".into(),
        turn: Turn::Revise {
            feedback: "fb".into(),
            session_id: Some("s1".into()),
            gate: None,
        },
    };
    revised.lane = Some(1);
    let mut finished = TaskRecord::new("flat", "t2", "t2");
    finished.phase = TaskPhase::Finished {
        worker: "worker-1".into(),
        lane: 1,
        turn: Turn::Fresh,
        failure: None,
    };
    for record in [revised, finished] {
        board.set_spec(
            &record.key,
            cco_protocol::TaskSpec::new(&record.id, &record.id),
        );
        board.add_task(record);
    }
    let mut lead = lead_on(board, Role::Coordinator, 1);
    lead.input(Input::WorkerUp { slot: 0 });
    lead.input(Input::Start { resumed: true });
    lead.input(Input::WorkerReady {
        slot: 0,
        worktree: worktree(0, 0),
        branch: "b".into(),
        fresh: false,
    });
    let effects = lead.input(Input::LaneReady {
        slot: 0,
        epoch: 0,
        result: Err(cco_git::GitError::InvalidPath {
            path: "worker-1-b".into(),
            reason: "gone".into(),
        }),
    });
    assert_eq!(
        lead.phase("t2"),
        TaskPhase::Pinned {
            worker: "worker-1".into(),
            turn: Turn::Fresh
        }
    );
    let assigned = assigns(&effects);
    assert_eq!(assigned.len(), 1, "{effects:?}");
    assert_eq!(
        (assigned[0].1.as_str(), &assigned[0].2, &assigned[0].4),
        (
            "t1",
            &Turn::Revise {
                feedback: "fb".into(),
                session_id: None,
                gate: None
            },
            &worktree(0, 0)
        )
    );
}

/// `cco resume`: every journaled phase is continued as the table in `restore.rs` says.
#[test]
fn restore_continues_every_phase() {
    let board = board();
    let phases = [
        ("queued", TaskPhase::Queued, None),
        (
            "pinned",
            TaskPhase::Pinned {
                worker: "worker-2".into(),
                turn: Turn::Revise {
                    feedback: "fb".into(),
                    session_id: Some("s-pinned".into()),
                    gate: None,
                },
            },
            Some("s-pinned"),
        ),
        (
            "running",
            TaskPhase::Running {
                worker: "worker-1".into(),
                lane: 1,
                turn: Turn::Fresh,
            },
            Some("s-running"),
        ),
        (
            "resolving",
            TaskPhase::Running {
                worker: "worker-2".into(),
                lane: 0,
                turn: Turn::ResolveConflict {
                    against: "main".into(),
                    session_id: Some("s-resolving".into()),
                },
            },
            Some("s-resolving"),
        ),
        (
            "nosession",
            TaskPhase::Running {
                worker: "worker-1".into(),
                lane: 0,
                turn: Turn::Fresh,
            },
            None,
        ),
        (
            "finished",
            TaskPhase::Finished {
                worker: "worker-1".into(),
                lane: 0,
                turn: Turn::Fresh,
                failure: None,
            },
            Some("s-finished"),
        ),
        ("captured", TaskPhase::Captured, Some("s-captured")),
        (
            "reviewing",
            TaskPhase::Reviewing { round: 0 },
            Some("s-rev"),
        ),
        (
            "merging",
            TaskPhase::Merging {
                cause: MergeCause::Approved,
            },
            Some("s-merging"),
        ),
        (
            "done",
            TaskPhase::Done {
                commit: "abc".into(),
            },
            None,
        ),
        (
            "failed",
            TaskPhase::Failed {
                reason: "no".into(),
            },
            None,
        ),
    ];
    for (id, phase, session) in &phases {
        let mut record = TaskRecord::new("flat", id, id);
        record.phase = phase.clone();
        record.session_id = session.map(str::to_string);
        // As the table keeps them: the worker and lane of the task's last turn.
        let (worker, lane) = match phase {
            TaskPhase::Running { worker, lane, .. } | TaskPhase::Finished { worker, lane, .. } => {
                (worker.clone(), *lane)
            }
            TaskPhase::Pinned { worker, .. } => (worker.clone(), 0),
            _ => ("worker-1".to_string(), 0),
        };
        record.worker = Some(worker);
        record.lane = Some(lane);
        board.add_task(record);
        board.set_spec(&format!("flat/{id}"), cco_protocol::TaskSpec::new(*id, *id));
    }
    let mut lead = lead_on(board, Role::Coordinator, 2);
    lead.input(Input::WorkerUp { slot: 0 });
    lead.input(Input::WorkerUp { slot: 1 });
    let effects = lead.input(Input::Start { resumed: true });
    // Captured and reviewing: summarised again for a review; merging: merged again.
    let mut diffs: Vec<&str> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Diff { key, .. } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    diffs.sort();
    assert_eq!(diffs, ["flat/captured", "flat/reviewing"]);
    let merges: Vec<&str> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Merge { key, .. } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(merges, ["flat/merging"]);
    assert_eq!(lead.phase("reviewing"), TaskPhase::Captured);
    // Running with a session: pinned to its worker, resuming the session (a conflict
    // resolution stays one).
    assert_eq!(
        lead.phase("running"),
        TaskPhase::Pinned {
            worker: "worker-1".into(),
            turn: Turn::Resume {
                session_id: "s-running".into(),
                resolving: None,
                why: Default::default(),
            }
        }
    );
    assert_eq!(
        lead.phase("resolving"),
        TaskPhase::Pinned {
            worker: "worker-2".into(),
            turn: Turn::Resume {
                session_id: "s-resolving".into(),
                why: Default::default(),
                resolving: Some("main".into())
            }
        }
    );
    assert_eq!(lead.phase("nosession"), TaskPhase::Queued);
    assert!(matches!(lead.phase("done"), TaskPhase::Done { .. }));
    assert!(matches!(lead.phase("failed"), TaskPhase::Failed { .. }));
    // The finished turn's worktree is held for its capture, which starts once it is known.
    assert_eq!(
        lead.core.slots[0].lanes[0].busy.as_deref(),
        Some("flat/finished")
    );
    let effects = lead.input(Input::WorkerReady {
        slot: 0,
        worktree: worktree(0, 0),
        branch: "b".into(),
        fresh: false,
    });
    let capture = effects.iter().find_map(|e| match e {
        Effect::Capture(order) => Some(order),
        _ => None,
    });
    let capture = capture.expect("the restored turn is captured");
    assert_eq!(
        (
            capture.key.as_str(),
            capture.lane,
            capture.turn.as_ref().ok().map(String::as_str)
        ),
        ("flat/finished", 0, Some(crate::lead::pipeline::RESTORED))
    );
    // Once the spare is known, worker-1 resumes "running" in it, and worker-2 takes its
    // pinned turns (its own first) as its worktrees appear.
    let effects = lead.input(Input::LaneReady {
        slot: 0,
        epoch: 0,
        result: Ok(WorktreeInfo {
            path: worktree(0, 1),
            branch: "b2".into(),
            head: "h".into(),
            reused: true,
            at_start_point: false,
        }),
    });
    let assigned = assigns(&effects);
    assert_eq!(assigned.len(), 1, "{effects:?}");
    assert_eq!(
        (assigned[0].1.as_str(), &assigned[0].3, &assigned[0].4),
        ("running", &Start::InPlace, &worktree(0, 1))
    );
    let effects = lead.worker_ready(1);
    let ids: Vec<String> = assigns(&effects).into_iter().map(|a| a.1).collect();
    assert_eq!(ids.len(), 1);
    assert!(
        ["pinned", "resolving"].contains(&ids[0].as_str()),
        "{ids:?}"
    );
}

/// A base merge that was queued when cco stopped comes back as a base merge (not a plain task).
#[test]
fn a_restored_queued_base_merge_is_still_a_conflict_resolution_against_the_base() {
    let board = board();
    let record = TaskRecord::new("team-1", "merge-main", "Merge main into the team branch")
        .with_kind(TaskKind::BaseMerge {
            base: "main".into(),
        });
    board.add_task(record);
    board.set_spec(
        "team-1/merge-main",
        cco_protocol::TaskSpec::new("merge-main", "Merge main into the team branch"),
    );
    let mut lead = lead_on(board, Role::Em, 1);
    lead.input(Input::Start { resumed: true });
    let effects = lead.worker_ready(0);
    let assigned = assigns(&effects);
    assert_eq!(assigned.len(), 1, "{effects:?}");
    assert_eq!(
        assigned[0].2,
        Turn::ResolveConflict {
            against: "main".into(),
            session_id: None
        }
    );
}
