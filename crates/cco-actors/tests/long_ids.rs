//! End to end (fake claude, real git): the longest task id the protocol accepts (64
//! characters) and the longest team name work in both modes: captured, reviewed and merged
//! through task refs whose names always fit (issue 12 §3).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure with a message

mod harness;

use std::time::Duration;

use harness::*;
use serde_json::json;

const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// A legal id of exactly `cco_protocol`'s maximum length, starting with `prefix`.
fn longest(prefix: &str) -> String {
    let mut id = format!("{prefix}-");
    while id.len() < 64 {
        id.push(char::from(b'a' + (id.len() % 26) as u8));
    }
    assert_eq!(id.len(), 64);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_longest_task_id_lands_in_flat_mode() {
    let id = longest("task");
    let script = json!({"rules": [
        plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[task(&id, "long.txt"), task("t2", "t2.txt")]})),
        complete_rule("[cco:replan]"),
        approve_rule(),
        worker_rule(&id, "long.txt", "long\n"),
        worker_rule("t2", "t2.txt", "t2\n"),
    ]});
    let project = Project::new(json!({"workerCount": 2}), script);
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "{}", summary.reason);
    assert_eq!(
        (summary.totals.tasks_done, summary.totals.tasks_failed),
        (2, 0),
        "{summary:#?}"
    );
    let task = summary.tasks.iter().find(|t| t.id == id).expect("the task");
    assert!(task.merged_commit.is_some(), "{task:?}");
    assert_eq!(project.file_on("main", "long.txt"), "long\n");
    let refs = project.git(&["for-each-ref", "--format=%(refname)", "refs/cco/tasks/"]);
    assert_eq!(refs.lines().count(), 2, "{refs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_longest_team_name_and_task_id_land_in_hierarchy_mode() {
    let team = longest("team");
    let id = longest("task");
    let script = json!({"rules": [
        {"match": {"role": "director", "prompt_contains": "[cco:director-plan]"}, "result": json!({"status":"continue","teams":[
            {"name": team, "goal": "the long goal"}, {"name": "short", "goal": "the short goal"}]}).to_string()},
        {"match": {"role": "director", "prompt_contains": "[cco:replan]"}, "result": "{\"status\":\"complete\",\"reason\":\"done\"}"},
        plan_rule("the long goal", json!({"status":"continue","tasks":[task(&id, "long.txt")]})),
        plan_rule("the short goal", json!({"status":"continue","tasks":[task(&id, "short.txt")]})),
        approve_rule(),
        {"match": {"role": "worker", "agent": "worker-1"}, "steps": [
            {"write": {"path": "long.txt", "content": "long\n"}}, {"commit": "long work"}], "result": "done"},
        {"match": {"role": "worker", "agent": "worker-2"}, "steps": [
            {"write": {"path": "short.txt", "content": "short\n"}}, {"commit": "short work"}], "result": "done"},
    ]});
    let project = Project::new(
        json!({"workerCount": 2, "engineerManagerGroupSize": 1}),
        script,
    );
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "{}", summary.reason);
    assert_eq!(
        (summary.totals.tasks_done, summary.totals.tasks_failed),
        (2, 0),
        "{summary:#?}"
    );
    let files = project.files_on("main");
    for f in ["long.txt", "short.txt"] {
        assert!(files.contains(&f.to_string()), "{f} missing: {files:?}");
    }
    // Both teams planned a task with the same longest id: two task refs.
    let refs = project.git(&["for-each-ref", "--format=%(refname)", "refs/cco/tasks/"]);
    assert_eq!(refs.lines().count(), 2, "{refs}");
}
