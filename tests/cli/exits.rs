//! Exit codes of the binary, from the run's typed outcome (never from its words).

use serde_json::json;

use crate::harness::*;

/// A run that completes with failed tasks says so in its last line and exits 5.
#[test]
fn a_run_completed_with_failed_tasks_says_so_and_exits_5() {
    let mut script = simple_script(&["t1", "t2"], None);
    // t2's worker always crashes; with no restarts its task fails.
    script["rules"].as_array_mut().unwrap().insert(
        0,
        json!({"match": {"role": "worker", "prompt_contains": "Task ID: t2"}, "steps": [{"crash": {"exit_code": 3}}]}),
    );
    let project = CliProject::new(json!({"workerCount": 2, "maxTaskRestarts": 0}), script);
    let out = project.cco(&["start", "--plain"]).output().unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(5), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("run finished: complete, 1 of 2 tasks failed: flat/t2 (done)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("failed flat/t2: gave up after 1 failed runs"),
        "{stdout}"
    );
}

/// A planner that says `complete` after its first plan was rejected, with nothing run: the
/// work was not done, and the exit code says the run failed.
#[test]
fn complete_without_any_task_after_a_rejected_first_plan_exits_1() {
    let script = json!({"rules": [
        {"match": {"prompt_contains": "[cco:coordinator-plan]"}, "result": "I committed PLAN.md instead."},
        {"match": {"prompt_contains": "[cco:repair]"}, "result": "{\"status\":\"complete\",\"reason\":\"planned\"}"}
    ]});
    let project = CliProject::new(json!({"workerCount": 1}), script);
    let out = project.cco(&["start", "--plain"]).output().unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("run finished: complete without any task: no valid task plan after 1 answer: no JSON object found"),
        "{stdout}"
    );
}

/// `cco resume` of a run whose journal and previous journal are both unreadable says so and
/// exits 2; `cco start` refuses to start over silently; `--fresh` does.
#[test]
fn a_run_whose_journals_are_unreadable_cannot_be_resumed() {
    let project = CliProject::new(json!({"workerCount": 1}), simple_script(&["t1"], None));
    let run = project.logs_dir().join("run-20200101-000000");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("journal.json"), "{ not json").unwrap();
    std::fs::write(run.join("journal.prev.json"), "").unwrap();

    let out = project.cco(&["resume", "--plain"]).output().unwrap();
    let stderr = project.stderr();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("run-20200101-000000) cannot be read"),
        "{stderr}"
    );
    assert!(stderr.contains("unreadable"), "{stderr}");
    assert!(!stderr.contains("no unfinished run"), "{stderr}");

    let out = project.cco(&["start", "--plain"]).output().unwrap();
    let stderr = project.stderr();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cco start --fresh"), "{stderr}");

    let out = project
        .cco(&["start", "--plain", "--fresh"])
        .output()
        .unwrap();
    let (stdout, _) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", project.stderr());
    // Nothing to resume at all is a usage error too.
    let out = project.cco(&["resume", "--plain"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", project.stderr());
    assert!(project.stderr().contains("no unfinished run to resume"));
}

/// A review that never gives a usable decision (prose instead of the JSON document, after
/// its re-asks, twice): the work is not merged unreviewed; the task fails, saying where the
/// work is kept (here the only task: the run failed, exit 1).
#[test]
fn work_no_review_decided_on_is_not_merged() {
    let mut script = simple_script(&["t1"], None);
    script["rules"].as_array_mut().unwrap().insert(
        0,
        json!({"match": {"prompt_contains": "[cco:review"}, "result": "Looks good to me!"}),
    );
    script["rules"].as_array_mut().unwrap().insert(
        0,
        json!({"match": {"prompt_contains": "[cco:repair]"}, "result": "I already said it looks good."}),
    );
    let project = CliProject::new(json!({"workerCount": 1}), script);
    let out = project.cco(&["start", "--plain"]).output().unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("failed flat/t1: no review gave a usable decision (2 reviews): not merged"),
        "{stdout}"
    );
    assert!(stdout.contains("refs/cco/tasks/"), "{stdout}");
    assert!(!project.files_on_main().contains(&"t1.txt".to_string()));
}
