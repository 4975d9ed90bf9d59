//! End-to-end runs of the task pipeline against fake-claude: capture, review, merge,
//! revisions and conflict resolutions, workers going on while their work is reviewed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure with a message

mod harness;

use std::time::Duration;

use cco_actors::{RunEvent, TaskState};
use harness::*;
use serde_json::json;

const RUN_TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_merge_conflict_goes_back_to_the_workers_session_and_both_sides_land() {
    let shared_by = |id: &str| {
        json!({"match": {"role": "worker", "prompt_contains": format!("Task ID: {id}")}, "steps": [
            {"write": {"path": "shared.txt", "content": format!("line from {id}\n")}},
            {"write": {"path": format!("{id}.txt"), "content": "own\n"}},
            {"commit": format!("{id} edits shared.txt")}
        ], "result": format!("{id} done")})
    };
    let script = json!({"rules": [
        plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[task("t1","shared.txt"), task("t2","shared.txt")]})),
        complete_rule("[cco:replan]"),
        approve_rule(),
        // The conflict turn: keep both sides, as a careful engineer would.
        {"match": {"role": "worker", "prompt_contains": "[cco:conflict]"}, "steps": [
            {"write": {"path": "shared.txt", "content": "line from t1\nline from t2\n"}},
            {"commit": "Resolve conflict in shared.txt"}
        ], "result": "resolved"},
        shared_by("t1"),
        shared_by("t2"),
    ]});
    let project = Project::new(json!({"workerCount": 2}), script);
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "{}", summary.reason);
    assert_eq!(summary.totals.tasks_done, 2, "{summary:#?}");
    assert_eq!(summary.totals.conflicts, 1);
    assert_eq!(
        project.file_on("main", "shared.txt"),
        "line from t1\nline from t2\n"
    );
    let files = project.files_on("main");
    assert!(files.contains(&"t1.txt".to_string()) && files.contains(&"t2.txt".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn review_feedback_is_resumed_into_the_same_worker_session() {
    let script = json!({"rules": [
        plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[task("t1","t1.txt")]})),
        complete_rule("[cco:replan]"),
        {"match": {"prompt_contains": "[cco:review]"}, "times": 1, "result": "{\"decision\":\"revise\",\"feedback\":\"Add a trailing line\"}"},
        approve_rule(),
        {"match": {"role": "worker", "prompt_contains": "[cco:feedback]", "resume": true}, "steps": [
            {"append": {"path": "t1.txt", "content": "trailing line\n"}}, {"commit": "Address review"}], "result": "revised"},
        worker_rule("t1", "t1.txt", "t1\n"),
    ]});
    let project = Project::new(json!({"workerCount": 1}), script);
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "{}", summary.reason);
    let task = &summary.tasks[0];
    assert_eq!(
        (task.state, task.review_rounds),
        (TaskState::Done, 1),
        "{task:?}"
    );
    assert_eq!(project.file_on("main", "t1.txt"), "t1\ntrailing line\n");
    let worker_sessions = transcripts_of(&handle, "worker-1").len();
    assert_eq!(
        worker_sessions, 1,
        "the feedback resumed the task's session"
    );
}

/// Reviews of several workers run at once, each in a fork of the lead's planning session.
/// Causal: every review holds until the test releases it, and the test releases them only
/// once the coordinator shows three reviews running; reviews run one after the other could
/// never get there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reviews_run_in_parallel_forks_of_the_leads_planning_session() {
    let marker_dir = cco_testkit::temp_dir();
    let release = path_str(&marker_dir.path().join("release-reviews"));
    let script = json!({"rules": [
        plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[task("t1","t1.txt"), task("t2","t2.txt"), task("t3","t3.txt")]})),
        complete_rule("[cco:replan]"),
        {"match": {"prompt_contains": "[cco:review]"}, "steps": [wait_for_file_step(&release)], "result": "{\"decision\":\"approve\"}"},
        worker_rule("t1", "t1.txt", "1\n"),
        worker_rule("t2", "t2.txt", "2\n"),
        worker_rule("t3", "t3.txt", "3\n"),
    ]});
    let project = Project::new(json!({"workerCount": 3}), script);
    let handle = project.start().await;
    cco_testkit::wait_until_async(Duration::from_secs(60), "three reviews at once", || {
        let coordinator = handle
            .status()
            .agents
            .into_iter()
            .find(|a| a.id == "coordinator")
            .map(|a| a.state)
            .unwrap_or_default();
        assert!(!handle.is_finished(), "the run ended before its reviews");
        std::future::ready(coordinator == "reviewing 3 task(s)")
    })
    .await;
    std::fs::write(&release, "").unwrap();
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(
        summary.completed && summary.totals.tasks_done == 3,
        "{}",
        summary.reason
    );
    // The planning session plus one fork per review, each with its own transcript.
    let coordinator_sessions = transcripts_of(&handle, "coordinator").len();
    assert_eq!(coordinator_sessions, 4);
}

/// A worker is free as soon as its turn is captured in the task ref: with one worker, t2 is
/// assigned (and done) while t1 is still in review. The review of t1 waits until t2's turn
/// has run, so the old order (merge t1, then assign t2) could not finish this run in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_takes_its_next_task_while_the_previous_one_is_reviewed_and_merged() {
    let marker_dir = cco_testkit::temp_dir();
    let marker = marker_dir.path().join("t2-ran");
    let marker = path_str(&marker);
    let script = json!({"rules": [
        plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[task("t1","t1.txt"), task("t2","t2.txt")]})),
        complete_rule("[cco:replan]"),
        {"match": {"role": "coordinator", "prompt_contains": "Task ID: t1"}, "steps": [
            wait_for_file_step(&marker)
        ], "result": "{\"decision\":\"approve\"}"},
        approve_rule(),
        {"match": {"role": "worker", "prompt_contains": "Task ID: t2"}, "steps": [
            {"write": {"path": "t2.txt", "content": "2\n"}},
            {"commit": "Implement t2"},
            {"bash": format!("touch '{marker}'")}
        ], "result": "Implemented t2"},
        worker_rule("t1", "t1.txt", "1\n"),
    ]});
    let project = Project::new(json!({"workerCount": 1}), script);
    let handle = project.start().await;
    let recorder = record(&handle);
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "{}", summary.reason);
    assert_eq!(summary.totals.tasks_done, 2, "{summary:#?}");
    let events = recorded(recorder, handle.clone()).await;
    let position = |want: &dyn Fn(&RunEvent) -> bool| {
        events
            .iter()
            .position(want)
            .unwrap_or_else(|| panic!("event missing: {events:#?}"))
    };
    let t2_assigned =
        position(&|e| matches!(e, RunEvent::TaskAssigned { task, .. } if task == "flat/t2"));
    let t1_merged =
        position(&|e| matches!(e, RunEvent::Merged { source, .. } if source.ends_with("/flat/t1")));
    assert!(
        t2_assigned < t1_merged,
        "t2 waited for t1's merge: {events:#?}"
    );
    // Both merged from their frozen task refs; the worker's worktree ended parked, clean.
    assert_eq!(project.file_on("main", "t1.txt"), "1\n");
    assert_eq!(project.file_on("main", "t2.txt"), "2\n");
    let refs = project.git(&["for-each-ref", "--format=%(refname)", "refs/cco/tasks"]);
    assert_eq!(refs.lines().count(), 2, "{refs}");
}

/// A task starts from a target that holds the tasks it depends on, even when its worker was
/// parked before they merged: t3 depends on t1, and every worktree was parked before t1
/// landed. Causal: t1 commits only once t2's turn has committed (a marker file), so t2's
/// worker is parked (and t2 merged) before t1 lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dependent_task_starts_from_a_target_holding_its_dependencies() {
    let marker_dir = cco_testkit::temp_dir();
    let t2_done = path_str(&marker_dir.path().join("t2-committed"));
    let mut t3 = task("t3", "seen.txt");
    t3["depends_on"] = json!(["t1"]);
    let script = json!({"rules": [
        plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[task("t1","t1.txt"), task("t2","t2.txt"), t3]})),
        complete_rule("[cco:replan]"),
        approve_rule(),
        {"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "steps": [
            wait_for_file_step(&t2_done),
            {"write": {"path": "t1.txt", "content": "from t1\n"}},
            {"commit": "Implement t1"}
        ], "result": "Implemented t1"},
        {"match": {"role": "worker", "prompt_contains": "Task ID: t3"}, "steps": [
            {"bash": "cat t1.txt > seen.txt 2>&1 || echo 't1.txt missing' > seen.txt"},
            {"commit": "Implement t3"}
        ], "result": "Implemented t3"},
        {"match": {"role": "worker", "prompt_contains": "Task ID: t2"}, "steps": [
            {"write": {"path": "t2.txt", "content": "2\n"}},
            {"commit": "Implement t2"},
            {"bash": format!("touch '{t2_done}'")}
        ], "result": "Implemented t2"},
    ]});
    let project = Project::new(json!({"workerCount": 2}), script);
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "{}", summary.reason);
    assert_eq!(summary.totals.tasks_done, 3, "{summary:#?}");
    assert_eq!(project.file_on("main", "seen.txt"), "from t1\n");
}

/// A worker has two worktrees: while t1 is in review the worker runs t2 in its spare; the
/// revision of t1 goes back to the worktree t1's session lives in and resumes that session.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revision_resumes_the_session_in_the_worktree_it_lives_in() {
    let marker_dir = cco_testkit::temp_dir();
    let marker = path_str(&marker_dir.path().join("t2-ran"));
    let script = json!({"rules": [
        plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[task("t1","t1.txt"), task("t2","t2.txt")]})),
        complete_rule("[cco:replan]"),
        // t1's first review waits for t2's turn, then asks for a change.
        {"match": {"role": "coordinator", "prompt_contains": "Task ID: t1"}, "times": 1, "steps": [
            wait_for_file_step(&marker)
        ], "result": "{\"decision\":\"revise\",\"feedback\":\"Add a trailing line\"}"},
        approve_rule(),
        {"match": {"role": "worker", "prompt_contains": "[cco:feedback]", "resume": true}, "steps": [
            {"append": {"path": "t1.txt", "content": "trailing line\n"}}, {"commit": "Address review"}], "result": "revised"},
        {"match": {"role": "worker", "prompt_contains": "Task ID: t2"}, "steps": [
            {"write": {"path": "t2.txt", "content": "2\n"}},
            {"commit": "Implement t2"},
            {"bash": format!("touch '{marker}'")}
        ], "result": "Implemented t2"},
        worker_rule("t1", "t1.txt", "t1\n"),
    ]});
    let project = Project::new(json!({"workerCount": 1}), script);
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "{}", summary.reason);
    let task = |id: &str| summary.tasks.iter().find(|t| t.id == id).unwrap().clone();
    let (t1, t2) = (task("t1"), task("t2"));
    assert_eq!((t1.state, t1.review_rounds), (TaskState::Done, 1), "{t1:?}");
    assert_eq!(t2.state, TaskState::Done, "{t2:?}");
    assert_ne!(t1.lane, t2.lane, "t2 ran in the other worktree");
    assert_eq!(project.file_on("main", "t1.txt"), "t1\ntrailing line\n");
    // One session per task: the revision resumed t1's (its worktree and config dir).
    let worker_sessions = transcripts_of(&handle, "worker-1").len();
    assert_eq!(worker_sessions, 2);
}

/// Two teams change the same line: the second team branch conflicts with main, becomes a
/// `merge-main` task for one of its workers (who merges main into the team's work and
/// resolves the conflict), and then lands; main keeps both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_team_branch_that_conflicts_with_the_base_is_resolved_by_one_of_its_workers() {
    let mut rules = two_teams_on_one_line();
    let more = json!([
        approve_rule(),
        keep_both_lines_rule(vec![]),
        shared_line_rule("a1", "alpha"),
        shared_line_rule("b1", "beta"),
    ]);
    rules.extend(more.as_array().unwrap().iter().cloned());
    let script = json!({ "rules": rules });
    let project = Project::new(
        json!({"workerCount": 2, "engineerManagerGroupSize": 1}),
        script,
    );
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "{}", summary.reason);
    assert!(summary.totals.conflicts >= 1, "{summary:#?}");
    assert_eq!(project.file_on("main", "shared.txt"), "alpha\nbeta\n");
    let merge_task = summary
        .tasks
        .iter()
        .find(|t| t.id.starts_with("merge-main"))
        .expect("a merge-main task");
    assert_eq!(merge_task.state, TaskState::Done, "{merge_task:?}");
    assert_eq!(
        summary
            .tasks
            .iter()
            .filter(|t| t.state == TaskState::Done)
            .count(),
        3
    );
}
