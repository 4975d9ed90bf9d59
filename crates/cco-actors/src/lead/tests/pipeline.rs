//! The pipeline: capture, review, merge, revisions, conflicts, planning and reports.

use super::*;

/// The pipeline of one task: the worker is free at once; capture, diff, review in a fork of
/// the lead's session, merge with the verify gate (the target is the base branch).
#[test]
fn a_finished_turn_frees_the_worker_and_goes_through_capture_review_and_merge() {
    let mut lead = lead(1);
    lead.worker_ready(0);
    let mut events = lead.core.board.events().subscribe();
    lead.plan(json!([task("t1"), task("t2")]));
    let effects = lead.finish(0, "t1");
    // t2 starts in the other worktree while t1's is captured.
    let assigned = assigns(&effects);
    assert_eq!(assigned.len(), 1);
    assert_eq!(
        (assigned[0].1.as_str(), &assigned[0].4),
        ("t2", &worktree(0, 1))
    );
    let capture = effects.iter().find_map(|e| match e {
        Effect::Capture(order) => Some(order),
        _ => None,
    });
    let capture = capture.expect("a capture");
    assert_eq!(
        (
            capture.lane,
            capture.task_ref.as_str(),
            capture.worktree.clone()
        ),
        (0, "refs/cco/tasks/run-1/flat/t1", worktree(0, 0))
    );
    assert!(matches!(
        lead.phase("t1"),
        TaskPhase::Finished {
            failure: None,
            lane: 0,
            ..
        }
    ));
    assert_eq!(lead.task("t1").session_id.as_deref(), Some("session-t1"));

    let effects = lead.captured(0, 0, "t1", true);
    assert!(matches!(effects[..], [Effect::Diff { .. }]), "{effects:?}");
    assert_eq!(lead.phase("t1"), TaskPhase::Captured);
    assert_eq!(lead.task("t1").captured_round, Some(0));

    let effects = lead.diffed("t1", 2);
    match &effects[..] {
        [Effect::Review {
            prompt: ReviewPrompt::First { spec, .. },
            attempt: 0,
            resume,
            fork: true,
            ..
        }] => {
            assert_eq!(spec.id, "t1");
            assert_eq!(resume.as_deref(), Some("lead-session"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(lead.phase("t1"), TaskPhase::Reviewing { round: 0 });
    assert_eq!(
        lead.core.board.agent("coordinator").unwrap().state,
        "reviewing 1 task(s)"
    );

    let effects = lead.reviewed("t1", 0, APPROVE);
    match &effects[..] {
        [Effect::Merge { request, .. }] => {
            assert_eq!(request.source, "refs/cco/tasks/run-1/flat/t1");
            assert_eq!(request.target, "main");
            assert!(
                request.verify,
                "the base branch is guarded by the verify gate"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        lead.phase("t1"),
        TaskPhase::Merging {
            cause: MergeCause::Approved
        }
    );
    lead.merged("t1", merged());
    assert_eq!(
        lead.phase("t1"),
        TaskPhase::Done {
            commit: "m1".into()
        }
    );
    let totals = lead.core.board.snapshot().totals;
    assert_eq!(
        (totals.tasks_done, totals.merges, totals.commits),
        (1, 1, 2)
    );
    let seen: Vec<RunEvent> = std::iter::from_fn(|| events.try_recv().ok()).collect();
    assert!(seen
        .iter()
        .any(|e| matches!(e, RunEvent::TaskFinished { task, .. } if task == "flat/t1")));
    assert!(seen
        .iter()
        .any(|e| matches!(e, RunEvent::Merged { commit, .. } if commit == "m1")));
}

#[test]
fn nothing_committed_is_sent_back_then_fails() {
    let mut lead = lead(1);
    lead.worker_ready(0);
    lead.plan(json!([task("t1")]));
    let mut lane = 0;
    for round in 1..=MAX_REVIEW_ROUNDS {
        lead.finish(0, "t1");
        lead.captured(0, lane, "t1", false);
        // Sent back to the worker's session (and given to the idle worker at once).
        assert!(
            matches!(lead.phase("t1"), TaskPhase::Running { turn: Turn::Revise { ref feedback, .. }, .. } if feedback.contains("No changes were committed")),
            "{:?}",
            lead.phase("t1")
        );
        assert_eq!(lead.task("t1").review_rounds, round);
        lane = lead.task("t1").lane.unwrap_or(0);
    }
    lead.finish(0, "t1");
    lead.captured(0, lane, "t1", false);
    assert_eq!(
        lead.phase("t1"),
        TaskPhase::Failed {
            reason: "the worker committed nothing".into()
        }
    );
}

/// A conflict goes back to the task's session; its resolution is reviewed as a resolution
/// (the merge against each parent) before it merges; a task that keeps conflicting fails.
/// Conflict rounds are not review rounds.
#[test]
fn a_conflict_is_resolved_by_the_tasks_session_and_its_resolution_reviewed_before_the_merge() {
    let mut lead = lead(1);
    lead.worker_ready(0);
    lead.plan(json!([task("t1")]));
    lead.finish(0, "t1");
    lead.captured(0, 0, "t1", true);
    lead.diffed("t1", 1);
    lead.reviewed("t1", 0, APPROVE);
    let conflict = || MergeOutcome::Conflict {
        files: vec!["shared.txt".into()],
    };
    for round in 1..=MAX_CONFLICT_ROUNDS {
        let effects = lead.merged("t1", conflict());
        let assigned = assigns(&effects);
        assert_eq!(assigned.len(), 1, "round {round}: {effects:?}");
        assert_eq!(
            assigned[0].2,
            Turn::ResolveConflict {
                against: "main".into(),
                session_id: Some("session-t1".into())
            }
        );
        let t = lead.task("t1");
        assert_eq!((t.conflict_rounds, t.review_rounds), (round, 0));
        let lane = t.lane.unwrap_or(0);
        lead.finish(0, "t1");
        let effects = lead.captured(0, lane, "t1", true);
        assert!(
            matches!(
                effects[..],
                [Effect::Diff {
                    resolution: true,
                    ..
                }]
            ),
            "a resolution is diffed against its parents: {effects:?}"
        );
        let effects = lead.diffed_resolution("t1");
        let review = effects.iter().find_map(|e| match e {
            Effect::Review {
                prompt: ReviewPrompt::Resolution { against, diff, .. },
                ..
            } => Some((against.clone(), diff.parents[1].diff.clone())),
            _ => None,
        });
        assert_eq!(
            review,
            Some(("main".to_string(), "+the task's line".to_string())),
            "{effects:?}"
        );
        let effects = lead.reviewed("t1", 0, APPROVE);
        assert!(
            effects.iter().any(|e| matches!(e, Effect::Merge { .. })),
            "{effects:?}"
        );
        assert_eq!(
            lead.phase("t1"),
            TaskPhase::Merging {
                cause: MergeCause::Approved
            }
        );
    }
    lead.merged("t1", conflict());
    assert_eq!(
        lead.phase("t1"),
        TaskPhase::Failed {
            reason: "merge conflicts could not be resolved: shared.txt".into()
        }
    );
    assert_eq!(
        lead.core.board.snapshot().totals.conflicts,
        MAX_CONFLICT_ROUNDS + 1
    );
}

#[test]
fn a_red_verify_gate_is_a_revision_with_the_output_until_the_rounds_are_used() {
    let mut lead = lead(1);
    lead.worker_ready(0);
    lead.plan(json!([task("t1")]));
    let red = || MergeOutcome::VerifyFailed {
        status: cco_git::VerifyStatus::Exited(1),
        output_tail: "1 test failed".into(),
    };
    for _ in 0..MAX_REVIEW_ROUNDS {
        let lane = lead.task("t1").lane.unwrap_or(0);
        lead.finish(0, "t1");
        lead.captured(0, lane, "t1", true);
        lead.diffed("t1", 1);
        lead.reviewed("t1", 0, APPROVE);
        lead.merged("t1", red());
        assert!(matches!(
            lead.phase("t1"),
            TaskPhase::Running { turn: Turn::Revise { ref feedback, gate: Some(ref gate), .. }, .. }
                if feedback.contains("exit 1") && gate.output.contains("1 test failed")
                    && gate.status == cco_protocol::CommandStatus::Exited(1)
        ));
    }
    let lane = lead.task("t1").lane.unwrap_or(0);
    lead.finish(0, "t1");
    lead.captured(0, lane, "t1", true);
    lead.diffed("t1", 1);
    // The review still asks for changes after the last round: merged as it is.
    lead.reviewed("t1", 0, &revise_answer("more"));
    assert_eq!(
        lead.phase("t1"),
        TaskPhase::Merging {
            cause: MergeCause::RoundsUsed
        }
    );
    lead.merged("t1", red());
    assert_eq!(
        lead.phase("t1"),
        TaskPhase::Failed {
            reason: "the verify command kept failing (exit 1)".into()
        }
    );
}

#[test]
fn an_unusable_review_is_asked_again_in_its_fork_then_reviewed_afresh_then_the_task_fails() {
    let mut lead = lead(1);
    lead.worker_ready(0);
    lead.plan(json!([task("t1")]));
    lead.finish(0, "t1");
    lead.captured(0, 0, "t1", true);
    lead.diffed("t1", 1);
    let effects = lead.reviewed("t1", 0, "looks fine to me");
    match &effects[..] {
        [Effect::Review {
            prompt: ReviewPrompt::Repair(prompt),
            attempt: 1,
            resume,
            fork: false,
            ..
        }] => {
            assert!(prompt.contains("[cco:repair]"));
            assert_eq!(
                resume.as_deref(),
                Some("review-t1"),
                "the review's own fork"
            );
        }
        other => panic!("{other:?}"),
    }
    // No decision after the re-asks: a fresh review of the task ref, not a merge.
    let effects = lead.reviewed("t1", 1, "still no json");
    assert_eq!(lead.phase("t1"), TaskPhase::Captured);
    assert!(
        effects.iter().any(|e| matches!(e, Effect::Diff { .. })),
        "{effects:?}"
    );
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Merge { .. })),
        "{effects:?}"
    );
    let effects = lead.diffed("t1", 1);
    match &effects[..] {
        [Effect::Review {
            prompt: ReviewPrompt::First { .. },
            attempt: 0,
            fork: true,
            ..
        }] => {}
        other => panic!("{other:?}"),
    }
    lead.reviewed("t1", 0, "no json");
    let effects = lead.reviewed("t1", 1, "no json either");
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Merge { .. })),
        "{effects:?}"
    );
    match lead.phase("t1") {
        TaskPhase::Failed { reason } => {
            assert!(
                reason.contains("no review gave a usable decision (2 reviews)"),
                "{reason}"
            );
            assert!(reason.contains("not merged"), "{reason}");
            assert!(reason.contains("refs/cco/tasks/"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(lead.task("t1").undecided_reviews, 2);
}

#[test]
fn an_invalid_plan_is_repaired_in_the_same_session_then_the_team_fails() {
    let mut lead = lead(1);
    lead.input(Input::Start { resumed: false });
    let effects = lead.plan_answer("no json");
    match &effects[..] {
        [Effect::Plan {
            prompt: PlanPrompt::Repair(_),
            resume,
        }] => assert_eq!(resume.as_deref(), Some("lead-session")),
        other => panic!("{other:?}"),
    }
    let effects = lead.plan_answer("no json again");
    match &reports(&effects)[..] {
        [Report::TeamFailed { reason }] => {
            assert!(
                reason.starts_with("no valid task plan after 2 answers"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_plan_rejected_for_a_reason_reports_that_reason_not_the_worse_repair() {
    let mut lead = lead(1);
    lead.input(Input::Start { resumed: false });
    let duplicate = json!({"status": "continue", "tasks": [task("t1"), task("t1")]});
    let effects = lead.plan_answer(&duplicate.to_string());
    match &effects[..] {
        [Effect::Plan {
            prompt: PlanPrompt::Repair(prompt),
            ..
        }] => {
            assert!(prompt.contains("duplicate task id"), "{prompt}");
            assert!(prompt.contains("You only read and plan"), "{prompt}");
        }
        other => panic!("{other:?}"),
    }
    let effects = lead.plan_answer("I committed the plan instead.");
    match &reports(&effects)[..] {
        [Report::TeamFailed { reason }] => {
            assert!(reason.contains("duplicate task id: \"t1\""), "{reason}");
            assert!(
                reason.contains("(last answer: no JSON object found"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn complete_after_a_rejected_first_plan_with_no_task_is_a_planning_failure() {
    let mut lead = lead(1);
    lead.input(Input::Start { resumed: false });
    lead.plan_answer("Here is what I did: I committed PLAN.md.");
    let effects = lead.plan_answer(r#"{"status":"complete","reason":"nothing left"}"#);
    match &reports(&effects)[..] {
        [Report::RunComplete {
            reason,
            planning_failure: Some(failure),
        }] => {
            assert_eq!(reason, "nothing left");
            assert!(failure.contains("no JSON object found"), "{failure}");
        }
        other => panic!("{other:?}"),
    }
    // A first answer that parsed is a completion like any other.
    let mut lead = self::lead(1);
    lead.input(Input::Start { resumed: false });
    let effects = lead.plan_answer(r#"{"status":"complete","reason":"already done"}"#);
    assert_eq!(
        reports(&effects),
        [Report::RunComplete {
            reason: "already done".into(),
            planning_failure: None
        }]
    );
}

#[test]
fn the_coordinator_replans_when_every_task_settled_and_reports_completion() {
    let mut lead = lead(1);
    lead.worker_ready(0);
    lead.plan(json!([task("t1")]));
    lead.finish(0, "t1");
    lead.captured(0, 0, "t1", true);
    lead.diffed("t1", 1);
    lead.reviewed("t1", 0, APPROVE);
    let effects = lead.merged("t1", merged());
    match &effects[..] {
        [Effect::Plan {
            prompt: PlanPrompt::Replan(tasks),
            ..
        }] => assert_eq!(tasks.len(), 1),
        other => panic!("{other:?}"),
    }
    let effects = lead.plan_answer(r#"{"status":"complete","reason":"all there"}"#);
    assert_eq!(
        reports(&effects),
        [Report::RunComplete {
            reason: "all there".into(),
            planning_failure: None
        }]
    );
}

#[test]
fn an_em_reports_its_goal_done_once_every_task_settled() {
    let mut lead = lead_on(board(), Role::Em, 1);
    lead.worker_ready(0);
    assert!(lead.input(Input::Start { resumed: false }).is_empty());
    let goal = cco_protocol::TeamGoal {
        name: "alpha".into(),
        goal: "alpha files".into(),
    };
    let effects = lead.input(Input::Goal(goal));
    assert!(matches!(
        effects[..],
        [Effect::Plan {
            prompt: PlanPrompt::Em(_),
            ..
        }]
    ));
    lead.plan_answer(&json!({"status":"continue","tasks":[task("a1")]}).to_string());
    lead.finish(0, "a1");
    lead.captured(0, 0, "a1", true);
    lead.diffed("a1", 1);
    let effects = lead.reviewed("a1", 0, APPROVE);
    match &effects[..] {
        [Effect::Merge { request, .. }] => {
            assert_eq!(request.target, "cco/team-1/team");
            assert!(!request.verify, "the gate guards the base branch only");
        }
        other => panic!("{other:?}"),
    }
    let effects = lead.merged("a1", merged());
    assert_eq!(reports(&effects), [Report::TeamIdle]);
    // Reported once.
    assert!(reports(&lead.input(Input::WorkerUp { slot: 0 })).is_empty());
}

/// `merge-<base>` of an EM: a conflict resolution against the base, from the team tip, in any
/// worktree; reviewed as a resolution, then merged into the team branch.
#[test]
fn a_base_merge_task_resolves_the_base_into_the_team_work_and_is_reviewed_as_a_resolution() {
    let mut lead = lead_on(board(), Role::Em, 1);
    lead.worker_ready(0);
    lead.input(Input::Start { resumed: false });
    let effects = lead.input(Input::ResolveWithBase {
        files: vec!["shared.txt".into()],
    });
    let assigned = assigns(&effects);
    assert_eq!(assigned.len(), 1, "{effects:?}");
    let (_, id, turn, start, _) = &assigned[0];
    assert_eq!(id, "merge-main");
    assert_eq!(
        turn,
        &Turn::ResolveConflict {
            against: "main".into(),
            session_id: None
        }
    );
    assert_eq!(start, &Start::Sync("cco/team-1/team".into()));
    let t = lead.task("merge-main");
    assert_eq!(
        t.kind,
        TaskKind::BaseMerge {
            base: "main".into()
        }
    );
    lead.finish(0, "merge-main");
    let effects = lead.captured(0, 0, "merge-main", true);
    assert!(
        matches!(
            effects[..],
            [Effect::Diff {
                resolution: true,
                ..
            }]
        ),
        "{effects:?}"
    );
    let effects = lead.diffed_resolution("merge-main");
    assert!(
        effects.iter().any(|e| matches!(
            e,
            Effect::Review {
                prompt: ReviewPrompt::Resolution { .. },
                ..
            }
        )),
        "{effects:?}"
    );
    let effects = lead.reviewed("merge-main", 0, APPROVE);
    assert!(
        effects.iter().any(|e| matches!(e, Effect::Merge { .. })),
        "{effects:?}"
    );
    // A second request gets its own task.
    lead.merged("merge-main", merged());
    lead.input(Input::ResolveWithBase { files: vec![] });
    assert!(lead.core.board.task("team-1/merge-main-2").is_some());
}
