//! Unit tests of the journal: the clock, the durability barrier, the writer, damaged and old
//! journals.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::board::{TaskRecord, TaskState};
use crate::events::EventBus;
use crate::lifecycle::{MergeCause, TaskKind, TaskPhase, Turn};

fn keys() -> KeyPool {
    KeyPool::new(cco_config::AuthMode::Oauth, vec![], true, 0.9)
}

/// The journal writer of `board`, writing into `dir`.
fn writer_for(board: &Board, dir: &std::path::Path) -> Writer {
    Writer::spawn(
        board.clone(),
        keys(),
        "main".into(),
        RunClock::start(),
        dir.to_path_buf(),
        None,
        std::sync::Arc::default(),
    )
}

fn journal_with(board: &Board) -> Journal {
    Journal::capture(board, &keys(), "main", &RunClock::start(), None)
}

#[test]
fn the_run_clock_adds_the_time_of_earlier_processes_to_this_ones() {
    let clock = RunClock::resumed(Duration::from_secs(90));
    assert_eq!(clock.elapsed_at(clock.since()), Duration::from_secs(90));
    assert_eq!(
        clock.elapsed_at(clock.since() + Duration::from_secs(30)),
        Duration::from_secs(120)
    );
    // A clock read from an earlier instant never goes below what was already used.
    if let Some(earlier) = clock.since().checked_sub(Duration::from_secs(5)) {
        assert_eq!(clock.elapsed_at(earlier), Duration::from_secs(90));
    }
    assert!(RunClock::start().elapsed() < Duration::from_secs(60));
}

#[test]
fn a_resumed_run_counts_the_active_time_journaled_not_the_time_cco_was_down() {
    let dir = tempfile::tempdir().unwrap();
    let board = Board::new("run-x", EventBus::new(16));
    let clock = RunClock::resumed(Duration::from_secs(40 * 60));
    let mut journal = Journal::capture(&board, &keys(), "main", &clock, None);
    // Written by a cco that crashed a day ago (its board started a day and an hour ago).
    journal.written_at -= chrono::Duration::days(1);
    journal.snapshot.started_at = journal.written_at - chrono::Duration::hours(1);
    journal.write(dir.path()).unwrap();
    let (loaded, _) = load(dir.path()).unwrap();
    let used = loaded.active_elapsed();
    assert!(
        used >= Duration::from_secs(40 * 60) && used < Duration::from_secs(41 * 60),
        "{used:?}"
    );
    let resumed = RunClock::resumed(used);
    assert_eq!(resumed.elapsed_at(resumed.since()), used);

    // A journal of an older cco has no active time: its last process's time counts.
    let mut value = serde_json::to_value(&loaded).unwrap();
    value.as_object_mut().unwrap().remove("active_ms");
    let old: Journal = serde_json::from_value(value).unwrap();
    assert_eq!(old.active_ms, None);
    assert_eq!(old.active_elapsed(), Duration::from_secs(3600));
}

/// The writer tells the board which change the journal on disk holds; a barrier waits for it
/// (bounded, so an unwritable journal does not stop the run).
#[tokio::test]
async fn a_barrier_returns_once_the_journal_on_disk_holds_the_changes_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let board = Board::new("run-1", EventBus::new(16));
    board.set_phase("running");
    let barrier = Barrier::now(&board);
    assert!(barrier.version > 0);
    let writer = writer_for(&board, dir.path());
    board.set_phase("later");
    assert!(barrier.wait_at_most(Duration::from_secs(10)).await);
    let (journal, _) = load(dir.path()).unwrap();
    assert!(["running", "later"].contains(&journal.snapshot.phase.as_str()));
    // A change the writer cannot write: the wait gives up.
    std::fs::remove_dir_all(dir.path()).unwrap();
    std::fs::write(dir.path(), "not a directory").unwrap();
    board.set_phase("unwritable");
    let unwritten = Barrier::now(&board);
    assert!(!unwritten.wait_at_most(Duration::from_millis(300)).await);
    writer.stop().await;
    std::fs::remove_file(dir.path()).unwrap();
}

/// After `stop` returns no periodic write can land on top of the final journal.
#[tokio::test]
async fn a_stopped_writer_writes_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let board = Board::new("run-1", EventBus::new(16));
    let writer = writer_for(&board, dir.path());
    board.set_phase("one");
    assert!(Barrier::now(&board).wait().await);
    writer.stop().await;
    board.set_phase("after the stop");
    let outcome = RunOutcome::Failed;
    let end = Ending {
        reason: "final",
        outcome: &outcome,
    };
    Journal::capture(&board, &keys(), "main", &RunClock::start(), Some(end))
        .write(dir.path())
        .unwrap();
    tokio::time::sleep(MIN_INTERVAL * 3).await;
    let (journal, _) = load(dir.path()).unwrap();
    assert!(journal.finished);
    assert_eq!(journal.end_reason.as_deref(), Some("final"));
    assert_eq!(journal.outcome, Some(RunOutcome::Failed));
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .count();
    assert_eq!(leftovers, 0);
}

#[test]
fn a_truncated_journal_falls_back_to_the_previous_good_state_with_a_clear_warning() {
    let dir = tempfile::tempdir().unwrap();
    let board = Board::new("run-x", EventBus::new(16));
    board.set_phase("first");
    journal_with(&board).write(dir.path()).unwrap();
    board.set_phase("second");
    journal_with(&board).write(dir.path()).unwrap();
    let (journal, warnings) = load(dir.path()).unwrap();
    assert_eq!(journal.snapshot.phase, "second");
    assert!(warnings.is_empty());
    // Cut the newest journal in half, as a crash of a non-atomic writer would.
    let path = dir.path().join(JOURNAL_FILE);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let (journal, warnings) = load(dir.path()).unwrap();
    assert_eq!(journal.snapshot.phase, "first");
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains("journal.json is damaged")
            && warnings[0].contains("previous good state"),
        "{}",
        warnings[0]
    );
}

#[test]
fn both_journals_damaged_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(JOURNAL_FILE), "{\"version\": 1, \"run").unwrap();
    let error = load(dir.path()).unwrap_err().to_string();
    assert!(error.contains("journal.json is unreadable"), "{error}");
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        load(empty.path()),
        Err(JournalError::Missing { .. })
    ));
}

#[test]
fn a_journal_of_a_newer_cco_is_refused_with_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let board = Board::new("run-x", EventBus::new(16));
    let mut value = serde_json::to_value(journal_with(&board)).unwrap();
    value["version"] = json!(JOURNAL_VERSION + 1);
    std::fs::write(dir.path().join(JOURNAL_FILE), value.to_string()).unwrap();
    let error = load(dir.path()).unwrap_err();
    assert!(
        matches!(error, JournalError::Version { found, .. } if found == JOURNAL_VERSION + 1),
        "{error}"
    );
}

/// A task record as a version 1 journal (cco before the task lifecycle) wrote it.
fn v1_task(id: &str, title: &str, state: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut task = json!({
        "key": format!("team-1/{id}"), "team": "team-1", "id": id, "title": title,
        "state": state, "worker": null, "session_id": null, "attempts": 1,
        "review_rounds": 0, "failure": null, "merged_commit": null, "cost_usd": 0.0,
        "captured_round": null, "lane": null
    });
    for (k, v) in extra.as_object().unwrap() {
        task[k] = v.clone();
    }
    task
}

/// The journal of today's main (version 1) resumes: every task gets the phase its state
/// meant, and the requests an EM made a task of (a base merge, a verify fix) get their kind.
#[test]
fn a_version_1_journal_is_read_with_phases_and_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let w = |worker: &str| json!(worker);
    let tasks = vec![
        v1_task("t1", "Write t1", "pending", json!({})),
        v1_task(
            "t2",
            "Write t2",
            "running",
            json!({"worker": w("worker-1"), "session_id": "s2", "lane": 1}),
        ),
        v1_task(
            "t3",
            "Write t3",
            "review",
            json!({"worker": w("worker-2"), "captured_round": 0}),
        ),
        v1_task("t4", "Write t4", "review", json!({"worker": w("worker-2")})),
        v1_task(
            "t5",
            "Write t5",
            "merging",
            json!({"captured_round": 1, "review_rounds": 1}),
        ),
        v1_task("t6", "Write t6", "done", json!({"merged_commit": "abc123"})),
        v1_task("t7", "Write t7", "failed", json!({"failure": "timed out"})),
        v1_task(
            "merge-main",
            "Merge main into the team branch",
            "pending",
            json!({}),
        ),
        v1_task(
            "merge-main-2",
            "Merge main into the team branch",
            "pending",
            json!({}),
        ),
        v1_task(
            "fix-verify",
            "Make the verify command pass",
            "pending",
            json!({}),
        ),
        v1_task(
            "merge-mainly",
            "Merge main into the team branch",
            "pending",
            json!({}),
        ),
    ];
    let journal = json!({
        "version": 1, "run_id": "run-old", "base_branch": "main", "finished": false,
        "end_reason": null, "written_at": "2025-01-31T12:00:00Z",
        "snapshot": {
            "run_id": "run-old", "taken_at": "2025-01-31T12:00:00Z",
            "started_at": "2025-01-31T11:00:00Z", "phase": "running", "agents": [],
            "tasks": tasks,
            "totals": {"tasks_done": 1, "tasks_failed": 1, "commits": 1, "merges": 1,
                       "conflicts": 0, "cost_usd": 0.5}
        },
        "specs": {}, "plan": {"pending_goals": [], "team_goals": {}, "history": []},
        "benched_keys": []
    });
    std::fs::write(dir.path().join(JOURNAL_FILE), journal.to_string()).unwrap();
    let (journal, warnings) = load(dir.path()).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(journal.version, JOURNAL_VERSION);
    let task = |id: &str| -> TaskRecord {
        journal
            .snapshot
            .tasks
            .iter()
            .find(|t| t.id == id)
            .unwrap()
            .clone()
    };
    assert_eq!(task("t1").phase, TaskPhase::Queued);
    assert_eq!(
        task("t2").phase,
        TaskPhase::Running {
            worker: "worker-1".into(),
            lane: 1,
            turn: Turn::Fresh
        }
    );
    assert_eq!(task("t3").phase, TaskPhase::Captured);
    assert_eq!(
        task("t4").phase,
        TaskPhase::Finished {
            worker: "worker-2".into(),
            lane: 0,
            turn: Turn::Fresh,
            failure: None
        }
    );
    assert_eq!(
        task("t5").phase,
        TaskPhase::Merging {
            cause: MergeCause::Approved
        }
    );
    assert_eq!(
        task("t6").phase,
        TaskPhase::Done {
            commit: "abc123".into()
        }
    );
    assert_eq!(
        task("t7").phase,
        TaskPhase::Failed {
            reason: "timed out".into()
        }
    );
    // The state is unchanged: it was what the phase means.
    for t in &journal.snapshot.tasks {
        assert_eq!(t.phase.state(), t.state, "{}", t.id);
    }
    let base_merge = TaskKind::BaseMerge {
        base: "main".into(),
    };
    assert_eq!(task("merge-main").kind, base_merge);
    assert_eq!(task("merge-main-2").kind, base_merge);
    assert_eq!(task("fix-verify").kind, TaskKind::FixVerify);
    assert_eq!(task("merge-mainly").kind, TaskKind::Planned);
    assert_eq!(task("t1").kind, TaskKind::Planned);
    assert_eq!(task("t3").state, TaskState::Review);
}
