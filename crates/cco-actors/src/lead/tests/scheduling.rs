//! Scheduling: which worker and worktree a task goes to, pinned turns, lost workers.

use super::*;

#[test]
fn idle_workers_take_ready_tasks_in_plan_order_and_a_dependent_task_waits() {
    let mut lead = lead(2);
    lead.worker_ready(0);
    lead.worker_ready(1);
    let mut t3 = task("t3");
    t3["depends_on"] = json!(["t1"]);
    let effects = lead.plan(json!([t3, task("t1"), task("t2")]));
    assert_eq!(
        assigned_ids(&effects),
        [(0, "t1".to_string()), (1, "t2".to_string())]
    );
    assert_eq!(lead.phase("t3"), TaskPhase::Queued);
    assert_eq!(
        lead.phase("t1"),
        TaskPhase::Running {
            worker: "worker-1".into(),
            lane: 0,
            turn: Turn::Fresh
        }
    );
    // t1 lands: t3 is ready and goes to the worker that is free.
    lead.land(0, 0, "t1");
    assert!(
        matches!(lead.phase("t3"), TaskPhase::Running { ref worker, .. } if worker == "worker-1")
    );
}

#[test]
fn a_task_whose_dependency_failed_fails_without_running() {
    let mut lead = lead(1);
    lead.worker_ready(0);
    let mut t2 = task("t2");
    t2["depends_on"] = json!(["t1"]);
    lead.plan(json!([task("t1"), t2]));
    lead.input(Input::WorkerReport {
        slot: 0,
        report: WorkerReport::Failed {
            key: "flat/t1".into(),
            failure: JobFailure::Turn("timed out".into()),
            session_id: None,
        },
    });
    lead.captured_turn(0, 0, "t1", false, Err(JobFailure::Turn("timed out".into())));
    assert_eq!(
        lead.phase("t1"),
        TaskPhase::Failed {
            reason: "timed out".into()
        }
    );
    assert_eq!(
        lead.phase("t2"),
        TaskPhase::Failed {
            reason: "dependency t1 failed".into()
        }
    );
    assert_eq!(lead.core.board.snapshot().totals.tasks_failed, 2);
}

#[test]
fn a_new_task_takes_the_free_worktree_parked_most_recently_ties_to_the_workers_own() {
    let mut lead = lead(1);
    lead.worker_ready(0);
    let effects = lead.plan(json!([task("t1"), task("t2"), task("t3")]));
    // Both parked alike: the worker's own.
    assert_eq!(assigns(&effects)[0].4, worktree(0, 0));
    // t2 goes to the spare while t1 is captured; t1's capture parks the own worktree at a
    // newer tip (after a merge) than the spare's.
    let effects = lead.finish(0, "t1");
    assert_eq!(assigns(&effects)[0].4, worktree(0, 1));
    lead.core.target_epoch = 3;
    lead.captured(0, 0, "t1", true);
    lead.finish(0, "t2");
    // The spare is still being captured: the own one it is.
    let effects = lead.captured(0, 1, "t2", true);
    assert!(assigns(&effects).is_empty(), "t3 was assigned before");
    let t3 = lead.task("t3");
    assert_eq!(t3.lane, Some(0));
}

#[test]
fn a_parked_worktree_starts_a_task_in_place_unless_a_dependency_merged_since_or_it_is_old() {
    let mut lead = lead(1);
    lead.worker_ready(0);
    let mut t3 = task("t3");
    t3["depends_on"] = json!(["t1"]);
    lead.plan(json!([task("t1"), task("t2"), t3]));
    let fresh = lead.core.slots[0].lanes[1].parked.expect("parked");
    let key = "flat/t2".to_string();
    // Nothing merged since it was parked.
    assert_eq!(
        lead.core.start_for((0, 1), &key, &Turn::Fresh),
        Start::InPlace
    );
    // Another task merged since, a few seconds ago: still in place.
    lead.core.target_epoch = fresh.epoch + 1;
    assert_eq!(
        lead.core.start_for((0, 1), &key, &Turn::Fresh),
        Start::InPlace
    );
    // t3 depends on t1, which merged after the worktree was parked: synced first.
    lead.core
        .merged_epoch
        .insert("flat/t1".into(), fresh.epoch + 1);
    assert_eq!(
        lead.core.start_for((0, 1), "flat/t3", &Turn::Fresh),
        Start::Sync("main".into())
    );
    // Parked too long ago, with merges since: synced.
    lead.core.now = fresh.at + FRESH_FOR + Duration::from_secs(1);
    assert_eq!(
        lead.core.start_for((0, 1), &key, &Turn::Fresh),
        Start::Sync("main".into())
    );
    // A worktree whose state is unknown is synced.
    lead.core.slots[0].lanes[1].parked = None;
    lead.core.target_epoch = fresh.epoch;
    assert_eq!(
        lead.core.start_for((0, 1), &key, &Turn::Fresh),
        Start::Sync("main".into())
    );
}

/// A revision is pinned to the worker whose session did the task: it runs in the worktree
/// the session lives in, from the task ref, before any new task; the other worker does not
/// take it.
#[test]
fn a_revision_is_pinned_to_the_session_and_its_worktree_before_new_tasks() {
    let mut lead = lead(2);
    lead.worker_ready(0);
    lead.worker_ready(1);
    lead.plan(json!([task("t1"), task("t2"), task("t3"), task("t4")]));
    lead.finish(0, "t1"); // worker-1 takes t3 in its spare
    lead.captured(0, 0, "t1", true);
    lead.diffed("t1", 1);
    let effects = lead.reviewed("t1", 0, &revise_answer("Add a test"));
    assert!(assigns(&effects).is_empty(), "worker-1 is busy with t3");
    let revise = Turn::Revise {
        feedback: "Add a test".into(),
        session_id: Some("session-t1".into()),
        gate: None,
    };
    assert_eq!(
        lead.phase("t1"),
        TaskPhase::Pinned {
            worker: "worker-1".into(),
            turn: revise.clone()
        }
    );
    assert_eq!(
        (lead.task("t1").review_rounds, lead.task("t1").state),
        (1, TaskState::Pending)
    );
    // worker-2 finishes t2: it takes t4, not the revision.
    let effects = lead.finish(1, "t2");
    assert_eq!(assigned_ids(&effects), [(1, "t4".to_string())]);
    // worker-1 finishes t3: the revision comes first, in t1's worktree, from the task ref.
    let effects = lead.finish(0, "t3");
    let assigned = assigns(&effects);
    assert_eq!(assigned.len(), 1);
    let (slot, id, turn, start, path) = &assigned[0];
    assert_eq!((*slot, id.as_str(), turn), (0, "t1", &revise));
    assert_eq!(path, &worktree(0, 0));
    assert_eq!(
        start,
        &Start::TaskRef {
            task_ref: "refs/cco/tasks/run-1/flat/t1".into(),
            kept_in: "main".into()
        }
    );
}

/// A pinned turn whose worktree is still being captured (another task ran there since): the
/// worker waits for it rather than start a new task in its other worktree.
#[test]
fn a_pinned_turn_waits_for_the_worktree_its_session_lives_in() {
    let mut lead = lead(1);
    lead.worker_ready(0);
    lead.plan(json!([task("t1"), task("t2"), task("t3"), task("t4")]));
    lead.finish(0, "t1"); // t2 in the spare
    lead.captured(0, 0, "t1", true);
    lead.diffed("t1", 1);
    let effects = lead.finish(0, "t2"); // t3 in the own worktree, where t1's session lives
    assert_eq!(assigned_ids(&effects), [(0, "t3".to_string())]);
    lead.reviewed("t1", 0, &revise_answer("again"));
    lead.captured(0, 1, "t2", true);
    lead.diffed("t2", 1);
    let effects = lead.finish(0, "t3");
    assert!(assigns(&effects).is_empty(), "{effects:?}");
    assert_eq!(lead.phase("t4"), TaskPhase::Queued);
    let effects = lead.captured(0, 0, "t3", true);
    let assigned = assigns(&effects);
    assert_eq!(assigned.len(), 1, "{effects:?}");
    assert_eq!(
        (assigned[0].1.as_str(), &assigned[0].4),
        ("t1", &worktree(0, 0))
    );
    assert!(matches!(assigned[0].2, Turn::Revise { .. }));
}

#[test]
fn a_dead_workers_pinned_turn_goes_to_another_worker_without_the_session() {
    let mut lead = lead(2);
    lead.worker_ready(0);
    lead.worker_ready(1);
    lead.plan(json!([task("t1"), task("t2")]));
    lead.finish(0, "t1");
    lead.captured(0, 0, "t1", true);
    lead.diffed("t1", 1);
    lead.reviewed("t1", 0, &revise_answer("fix it"));
    lead.land(1, 0, "t2");
    lead.input(Input::WorkerDown { slot: 0 });
    let effects = lead.input(Input::WorkerDead { slot: 0 });
    let assigned = assigns(&effects);
    assert_eq!(assigned.len(), 1, "{effects:?}");
    assert_eq!(assigned[0].0, 1);
    assert_eq!(
        assigned[0].2,
        Turn::Revise {
            feedback: "fix it".into(),
            session_id: None,
            gate: None
        }
    );
}

#[test]
fn a_lost_worker_gives_a_first_turn_back_to_the_queue_and_keeps_a_sessions_turn_pinned() {
    let mut lead = lead(2);
    lead.worker_ready(0);
    lead.worker_ready(1);
    lead.plan(json!([task("t1"), task("t2")]));
    // worker-1 dies during t1's first turn: t1 is queued again, for any worker.
    let effects = lead.input(Input::WorkerDown { slot: 0 });
    assert!(assigns(&effects).is_empty(), "worker-2 is busy");
    assert_eq!(lead.phase("t1"), TaskPhase::Queued);
    assert_eq!(lead.task("t1").worker, None);
    assert!(
        lead.core.slots[0].lanes[0].parked.is_none(),
        "synced before reuse"
    );
    let effects = lead.finish(1, "t2");
    assert_eq!(assigned_ids(&effects), [(1, "t1".to_string())]);
    // worker-2 dies during a revision: it stays pinned to worker-2 (same worktree and config
    // dir, so the respawned actor resumes the session).
    lead.finish(1, "t1");
    lead.captured(1, 1, "t1", true);
    lead.diffed("t1", 1);
    lead.reviewed("t1", 0, &revise_answer("more"));
    lead.captured(1, 0, "t2", true);
    assert!(
        matches!(lead.phase("t1"), TaskPhase::Running { ref worker, .. } if worker == "worker-2")
    );
    lead.input(Input::WorkerDown { slot: 1 });
    assert!(matches!(
        lead.phase("t1"),
        TaskPhase::Pinned { ref worker, turn: Turn::Revise { .. } } if worker == "worker-2"
    ));
    let effects = lead.input(Input::WorkerUp { slot: 1 });
    assert_eq!(assigned_ids(&effects), [(1, "t1".to_string())]);
}

#[test]
fn a_worker_that_refuses_a_job_gives_it_back() {
    let mut lead = lead(1);
    lead.worker_ready(0);
    lead.plan(json!([task("t1")]));
    let effects = lead.input(Input::WorkerReport {
        slot: 0,
        report: WorkerReport::Failed {
            key: "flat/t1".into(),
            failure: JobFailure::Busy,
            session_id: None,
        },
    });
    // Given back, then straight out again to the (now idle) worker.
    assert_eq!(assigned_ids(&effects), [(0, "t1".to_string())]);
}

#[test]
fn a_lead_whose_workers_all_gave_up_fails() {
    let mut lead = lead(2);
    lead.worker_ready(0);
    lead.worker_ready(1);
    lead.input(Input::WorkerDown { slot: 0 });
    assert!(lead.input(Input::WorkerDead { slot: 0 }).is_empty());
    lead.input(Input::WorkerDown { slot: 1 });
    let effects = lead.input(Input::WorkerDead { slot: 1 });
    match &effects[..] {
        [Effect::Fail(error)] => {
            assert_eq!(error.to_string(), "coordinator: every worker gave up")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn nothing_is_assigned_while_the_run_stops() {
    let mut lead = lead(1);
    lead.worker_ready(0);
    lead.input(Input::Start { resumed: false });
    let effects = lead.core.handle(
        Input::PlanEnded(TurnEnd::Done {
            result_text: json!({"status":"continue","tasks":[task("t1")]}).to_string(),
            structured: None,
            session_id: None,
        }),
        lead.now,
        true,
    );
    assert!(assigns(&effects).is_empty());
    assert!(lead.input(Input::Shutdown).is_empty());
    assert!(lead.input(Input::WorkerUp { slot: 0 }).is_empty());
}
