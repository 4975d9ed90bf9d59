use super::*;
use chrono::TimeZone;

fn t(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 31, 12, 0, 0).unwrap() + chrono::Duration::seconds(s)
}

fn moved(task: &str, phase: TaskPhase, cost: f64) -> RunEvent {
    RunEvent::TaskMoved {
        task: task.into(),
        phase: Box::new(phase),
        cost_usd: cost,
    }
}

fn running(worker: &str, turn: Turn) -> TaskPhase {
    TaskPhase::Running {
        worker: worker.into(),
        lane: 0,
        turn,
    }
}

fn finished(worker: &str, turn: Turn) -> TaskPhase {
    TaskPhase::Finished {
        worker: worker.into(),
        lane: 0,
        turn,
        failure: None,
    }
}

#[test]
fn a_task_reviewed_revised_conflicted_and_merged_tells_every_turn_review_and_merge() {
    let mut h = History::default();
    let key = "flat/t1";
    let revise = Turn::Revise {
        feedback: "add a test".into(),
        session_id: Some("s1".into()),
        gate: None,
    };
    let resolve = Turn::ResolveConflict {
        against: "main".into(),
        session_id: Some("s1".into()),
    };
    let events = vec![
        (0, moved(key, TaskPhase::Queued, 0.0)),
        (1, moved(key, running("worker-1", Turn::Fresh), 0.0)),
        (
            2,
            RunEvent::ToolUsed {
                agent: "worker-1".into(),
                tool: "Bash".into(),
            },
        ),
        (
            2,
            RunEvent::ToolUsed {
                agent: "worker-1".into(),
                tool: "Bash".into(),
            },
        ),
        (
            3,
            RunEvent::AgentOutput {
                agent: "worker-1".into(),
                text: "I wrote it.".into(),
            },
        ),
        (5, moved(key, finished("worker-1", Turn::Fresh), 0.25)),
        (6, moved(key, TaskPhase::Captured, 0.25)),
        (7, moved(key, TaskPhase::Reviewing { round: 0 }, 0.25)),
        (
            9,
            moved(
                key,
                TaskPhase::Pinned {
                    worker: "worker-1".into(),
                    turn: revise.clone(),
                },
                0.25,
            ),
        ),
        (10, moved(key, running("worker-1", revise.clone()), 0.25)),
        (12, moved(key, finished("worker-1", revise), 0.5)),
        (13, moved(key, TaskPhase::Captured, 0.5)),
        (14, moved(key, TaskPhase::Reviewing { round: 1 }, 0.5)),
        (
            15,
            moved(
                key,
                TaskPhase::Merging {
                    cause: MergeCause::Approved,
                },
                0.5,
            ),
        ),
        (
            16,
            RunEvent::Conflict {
                source: "refs/cco/tasks/run-1/flat/t1".into(),
                target: "main".into(),
                files: vec!["calc.sh".into()],
            },
        ),
        (
            16,
            moved(
                key,
                TaskPhase::Pinned {
                    worker: "worker-1".into(),
                    turn: resolve.clone(),
                },
                0.5,
            ),
        ),
        (17, moved(key, running("worker-1", resolve.clone()), 0.5)),
        (19, moved(key, finished("worker-1", resolve), 0.75)),
        (
            20,
            moved(
                key,
                TaskPhase::Merging {
                    cause: MergeCause::ConflictResolved,
                },
                0.75,
            ),
        ),
        (
            21,
            RunEvent::Merged {
                source: "refs/cco/tasks/run-1/flat/t1".into(),
                target: "main".into(),
                commit: "abc".into(),
            },
        ),
        (
            21,
            moved(
                key,
                TaskPhase::Done {
                    commit: "abc".into(),
                },
                0.75,
            ),
        ),
    ];
    for (s, event) in &events {
        h.apply(t(*s), event);
    }
    assert_eq!(h.turns.len(), 3);
    let kinds: Vec<&str> = h.turns.iter().map(|t| t.kind).collect();
    assert_eq!(kinds, ["task", "revision", "conflict resolution"]);
    let fates: Vec<&Fate> = h.turns.iter().map(|t| &t.fate).collect();
    assert_eq!(
        fates,
        [
            &Fate::SentBack("review"),
            &Fate::SentBack("conflict"),
            &Fate::Merged
        ]
    );
    let first = &h.turns[0];
    assert_eq!(first.tools, vec![("Bash".to_string(), 2)]);
    assert_eq!(first.text.as_deref(), Some("I wrote it."));
    assert_eq!(first.cost(), Some(0.25));
    assert_eq!((first.start, first.end), (t(1), Some(t(5))));
    assert_eq!(h.turns[1].detail.as_deref(), Some("add a test"));
    assert_eq!(h.reviews.len(), 2);
    assert_eq!(
        h.reviews[0].decision,
        Some(Decision::Revise("add a test".into()))
    );
    assert_eq!(h.reviews[1].decision, Some(Decision::Approved));
    let task = &h.tasks[key];
    assert_eq!(task.created, Some(t(0)));
    assert_eq!(task.merges.len(), 2);
    assert_eq!(
        task.merges[0].outcome,
        MergeEnd::Conflict(vec!["calc.sh".into()])
    );
    assert_eq!(task.merges[1].outcome, MergeEnd::Merged("abc".into()));
    assert_eq!(h.merges.len(), 2);
    assert_eq!(h.merges[1].task.as_deref(), Some(key));
}

#[test]
fn a_red_verify_gate_and_a_failure_are_told_and_open_things_close_at_the_end() {
    let mut h = History::default();
    let key = "team-1/t2";
    h.apply(t(0), &moved(key, TaskPhase::Queued, 0.0));
    h.apply(t(1), &moved(key, running("worker-2", Turn::Fresh), 0.0));
    h.apply(t(2), &moved(key, finished("worker-2", Turn::Fresh), 0.1));
    h.apply(
        t(3),
        &moved(
            key,
            TaskPhase::Merging {
                cause: MergeCause::NoDecision,
            },
            0.1,
        ),
    );
    let red = Turn::Revise {
        feedback: "the verify command failed on the merge (exit 1)".into(),
        session_id: None,
        // What the lead records: the command, what was merged, its status and output tail.
        gate: Some(
            serde_json::from_value::<cco::GateFailure>(serde_json::json!({
                "command": "cargo test",
                "source": "refs/cco/tasks/r/flat/t1",
                "status": {"status": "exited", "value": 1},
                "output": "FAIL test_add",
            }))
            .unwrap(),
        ),
    };
    h.apply(
        t(4),
        &moved(
            key,
            TaskPhase::Pinned {
                worker: "worker-2".into(),
                turn: red,
            },
            0.1,
        ),
    );
    assert_eq!(
        h.tasks[key].merges[0].outcome,
        MergeEnd::VerifyFailed("cargo test (exit 1):\nFAIL test_add".into())
    );
    assert_eq!(h.turns[0].fate, Fate::SentBack("verify"));
    // Another task is running when the run stops: its turn is interrupted.
    h.apply(t(5), &moved("team-1/t3", TaskPhase::Queued, 0.0));
    h.apply(
        t(6),
        &moved("team-1/t3", running("worker-3", Turn::Fresh), 0.0),
    );
    h.apply(
        t(7),
        &RunEvent::ProcessStarted {
            agent: "worker-3".into(),
            pid: 42,
            resume: false,
            credential: Some("key-a".into()),
        },
    );
    h.apply(
        t(8),
        &moved(
            key,
            TaskPhase::Failed {
                reason: "verify command kept failing".into(),
            },
            0.1,
        ),
    );
    h.apply(
        t(9),
        &RunEvent::RunFinished {
            reason: "stopped".into(),
        },
    );
    let t3 = &h.turns[1];
    assert_eq!(t3.outcome, TurnEnd::Interrupted);
    assert_eq!(t3.processes, 1);
    assert_eq!(t3.end, Some(t(9)));
    assert!(h.processes.iter().all(|p| p.end.is_some()));
    assert!(
        h.processes[0].label.contains("pid 42 on key-a"),
        "{}",
        h.processes[0].label
    );
    assert_eq!(h.finished.as_ref().map(|f| f.1.as_str()), Some("stopped"));
}

#[test]
fn lines_read_back_and_unknown_or_damaged_ones_are_counted() {
    let mut h = History::default();
    h.apply_line(
        r#"{"at":"2025-01-31T12:00:00.000Z","event":"planned","agent":"coordinator","items":3}"#,
    );
    h.apply_line(r#"{"at":"2025-01-31T12:00:01.000Z","missed":7}"#);
    h.apply_line(r#"{"at":"2025-01-31T12:00:02.000Z","event":"from_the_future","x":1}"#);
    h.apply_line("{not json");
    h.apply_line("");
    assert_eq!(h.plans.len(), 1);
    assert_eq!(h.plans[0].label, "planned 3 item(s)");
    assert_eq!(h.missed, 7);
    assert_eq!(h.unreadable, 2);
}

#[test]
fn the_file_is_read_as_it_grows_whole_lines_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(cco::log::EVENTS_FILE_NAME);
    let mut file = HistoryFile::new(dir.path());
    file.refresh();
    assert!(!file.present);
    let line = r#"{"at":"2025-01-31T12:00:00.000Z","event":"planned","agent":"em-1","items":2}"#;
    std::fs::write(&path, format!("{line}\n{}", &line[..20])).unwrap();
    file.refresh();
    assert_eq!(file.history.plans.len(), 1);
    std::fs::write(&path, format!("{line}\n{line}\n")).unwrap();
    file.refresh();
    assert_eq!(file.history.plans.len(), 2);
    assert_eq!(file.history.unreadable, 0);
}

#[test]
fn task_refs_name_their_task() {
    assert_eq!(
        task_of_ref("refs/cco/tasks/run-1/team-2/t3").as_deref(),
        Some("team-2/t3")
    );
    assert_eq!(task_of_ref("cco/team-2/team"), None);
    assert_eq!(task_of_ref("refs/cco/tasks/t3"), None);
}

#[test]
fn pauses_say_whose_and_why() {
    let mut h = History::default();
    h.apply(
        t(1),
        &RunEvent::Paused {
            agent: "worker-1".into(),
            until: t(61),
        },
    );
    h.apply(
        t(2),
        &RunEvent::ApiOverloaded {
            agents: 3,
            until: t(32),
        },
    );
    h.apply(
        t(3),
        &RunEvent::KeyBenched {
            key: "k1".into(),
            until: t(603),
        },
    );
    assert_eq!(h.pauses.len(), 2);
    assert_eq!(h.pauses[0].agent.as_deref(), Some("worker-1"));
    assert_eq!(h.pauses[0].why, "every credential was rate limited");
    assert_eq!(
        h.pauses[1].agent, None,
        "the breaker holds every new process"
    );
    assert_eq!(h.pauses[1].until, t(32));
    assert!(h.pauses[1].why.contains("3 agents"), "{}", h.pauses[1].why);
    assert_eq!(h.benched.len(), 1);
    assert_eq!(h.benched[0].who, "k1");
}

#[test]
fn work_refused_in_the_worktree_or_at_the_merge_is_told_as_refused() {
    let mut h = History::default();
    let key = "flat/t4";
    let fix = Turn::Fix {
        problem: "a secret in t4.txt line 1".into(),
        session_id: Some("s4".into()),
        resolving: None,
    };
    let pinned = |turn: Turn| TaskPhase::Pinned {
        worker: "worker-1".into(),
        turn,
    };
    let merging = TaskPhase::Merging {
        cause: MergeCause::Approved,
    };
    let sent_back = Turn::Revise {
        feedback: "conflict markers committed in t4.txt".into(),
        session_id: Some("s4".into()),
        gate: None,
    };
    for (s, phase) in [
        (0, TaskPhase::Queued),
        (1, running("worker-1", Turn::Fresh)),
        (2, finished("worker-1", Turn::Fresh)),
        (3, pinned(fix.clone())),
        (4, running("worker-1", fix.clone())),
        (5, finished("worker-1", fix)),
        (6, TaskPhase::Captured),
        (7, merging),
        (8, pinned(sent_back)),
    ] {
        h.apply(t(s), &moved(key, phase, 0.1));
    }
    assert_eq!(h.turns.len(), 2);
    assert_eq!(h.turns[0].fate, Fate::SentBack("refused"));
    assert_eq!(h.turns[1].kind, "fix");
    assert_eq!(
        h.turns[1].detail.as_deref(),
        Some("a secret in t4.txt line 1")
    );
    assert_eq!(h.turns[1].fate, Fate::SentBack("refused"));
    assert_eq!(
        h.tasks[key].merges[0].outcome,
        MergeEnd::Refused("conflict markers committed in t4.txt".into())
    );
}
