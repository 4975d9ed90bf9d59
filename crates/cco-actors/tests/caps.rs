//! End-to-end: the runtime caps of the original tool's config (`maxToolUsesPerInstance`,
//! `maxTotalToolUses`, `maxAutoResolveConflicts`), enforced against fake-claude.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure with a message

mod harness;

use std::time::Duration;

use cco_actors::{RunEvent, RunLimit, RunOutcome, TaskState};
use harness::*;
use serde_json::json;

const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// At `maxToolUsesPerInstance` the process is ended gracefully and the turn is handled like a
/// timed-out one: its session is resumed once with the timeout prompt.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tool_cap_of_a_process_ends_its_turn_like_a_timeout() {
    let records = cco_testkit::temp_dir();
    let timeouts = records.path().join("timeouts.txt");
    let script = json!({"rules": [
        plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[task("t1","t1.txt")]})),
        complete_rule("[cco:replan]"),
        approve_rule(),
        // Four tool uses, and a hang: the cap (3) stops it before the fourth.
        {"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "steps": [
            {"write": {"path": "t1.txt", "content": "t1\n"}},
            {"write": {"path": "notes.txt", "content": "x\n"}},
            {"write": {"path": "notes2.txt", "content": "x\n"}},
            // (An API round trip's time: the stop arrives before the next tool use.)
            {"sleep_ms": 10000},
            {"write": {"path": "more.txt", "content": "y\n"}},
            {"hang": true}
        ]},
        {"match": {"role": "worker", "prompt_contains": "[cco:timeout]"}, "steps": [
            {"append": {"path": path_str(&timeouts), "content": "PROMPT\n{{prompt}}\n"}},
            {"commit": "t1 as far as it got"}
        ], "result": "committed what works"},
    ]});
    let project = Project::new(
        json!({"workerCount": 1, "maxToolUsesPerInstance": 3}),
        script,
    );
    let handle = project.start().await;
    let recorder = record(&handle);
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert_eq!(
        summary.outcome,
        RunOutcome::Completed,
        "{}: {:?}",
        summary.reason,
        summary.tasks
    );
    let prompt = std::fs::read_to_string(&timeouts).unwrap();
    assert!(prompt.contains("You ran out of time"), "{prompt}");
    let files = project.files_on("main");
    assert!(files.contains(&"t1.txt".to_string()), "{files:?}");
    assert!(
        !files.contains(&"more.txt".to_string()),
        "the fourth tool use never ran"
    );
    let events = recorded(recorder, handle).await;
    assert!(events
        .iter()
        .any(|e| matches!(e, RunEvent::ProcessExited { agent, outcome }
        if agent == "worker-1" && outcome == "killed by cco (stop requested)")));
    assert!(summary.totals.tool_uses >= 5, "{:?}", summary.totals);
}

/// `maxTotalToolUses`, enforced like the budget: no new turn once it is reached, and the run
/// ends with that reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_run_wide_tool_cap_ends_the_run_as_a_limit() {
    let mut rules = flat_plan_rules(6);
    for n in 1..=6 {
        rules.push(worker_rule(&format!("t{n}"), &format!("t{n}.txt"), "x\n"));
    }
    // The planner's and the reviewers' structured answers are tool uses too (the text path is
    // used here: none); each task takes two (a write and a commit).
    let project = Project::new(
        json!({"workerCount": 1, "maxTotalToolUses": 4}),
        json!({"rules": rules}),
    );
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    match &summary.outcome {
        RunOutcome::LimitReached {
            limit: RunLimit::ToolUses { used, cap },
        } => {
            assert_eq!(*cap, 4);
            assert!(*used >= 4, "{used}");
        }
        other => panic!("{other:?}: {}", summary.reason),
    }
    assert!(
        summary.reason.starts_with("tool-use limit reached: "),
        "{}",
        summary.reason
    );
    // No turn started once 4 tool uses were spent (two tasks' worth): the rest never ran.
    let done = summary.totals.tasks_done;
    assert!(done <= 2, "{done} tasks done: turns started after the cap");
    assert!(summary.tasks.iter().any(|t| t.state == TaskState::Pending));
}

/// `maxAutoResolveConflicts`: the first conflict goes to its worker's session; once the run
/// has used them up, the merge strategy is `fail` for the rest (logged once).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicts_beyond_max_auto_resolve_fail_their_task() {
    let script = json!({"rules": [
        plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[
            task("t1","shared.txt"), task("t2","shared.txt"), task("t3","shared.txt")]})),
        complete_rule("[cco:replan]"),
        approve_rule(),
        {"match": {"role": "worker", "prompt_contains": "[cco:conflict]"}, "steps": [
            {"write": {"path": "shared.txt", "content": "resolved\n"}},
            {"commit": "Resolve conflict in shared.txt"}
        ], "result": "resolved"},
        line_from_rule("t1"),
        line_from_rule("t2"),
        line_from_rule("t3"),
    ]});
    let project = Project::new(
        json!({"workerCount": 3, "maxAutoResolveConflicts": 1}),
        script,
    );
    let handle = project.start().await;
    let recorder = record(&handle);
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert_eq!(
        summary.outcome,
        RunOutcome::CompletedWithFailures { done: 2, failed: 1 },
        "{}",
        summary.reason
    );
    assert_eq!(summary.totals.conflicts_resolving, 1);
    let failed = summary
        .tasks
        .iter()
        .find(|t| t.state == TaskState::Failed)
        .unwrap();
    assert!(
        failed
            .failure
            .as_deref()
            .unwrap()
            .contains("maxAutoResolveConflicts 1 reached: strategy fail"),
        "{failed:?}"
    );
    let events = recorded(recorder, handle).await;
    let warnings = events
        .iter()
        .filter(|e| matches!(e, RunEvent::Warning { message } if message.starts_with("maxAutoResolveConflicts (1) reached")))
        .count();
    assert_eq!(warnings, 1, "logged once");
}

/// The limit counts team merges too: with `maxAutoResolveConflicts` 0, a team branch that
/// conflicts with the base branch is left unmerged (strategy `fail`), not handed to a worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_team_conflict_beyond_max_auto_resolve_is_left_unmerged() {
    let mut rules = two_teams_on_one_line();
    rules.extend([
        approve_rule(),
        shared_line_rule("a1", "alpha"),
        shared_line_rule("b1", "beta"),
        keep_both_lines_rule(vec![]),
    ]);
    let project = Project::new(
        json!({"workerCount": 2, "engineerManagerGroupSize": 1, "maxAutoResolveConflicts": 0}),
        json!({ "rules": rules }),
    );
    let handle = project.start().await;
    let recorder = record(&handle);
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "{}", summary.reason);
    let on_main = project.file_on("main", "shared.txt");
    assert!(on_main == "alpha\n" || on_main == "beta\n", "{on_main}");
    assert!(!summary.tasks.iter().any(|t| t.id.starts_with("merge-")));
    assert_eq!(summary.totals.conflicts_resolving, 0);
    let events = recorded(recorder, handle).await;
    assert!(events
        .iter()
        .any(|e| matches!(e, RunEvent::Warning { message }
        if message.starts_with("maxAutoResolveConflicts (0) reached"))));
}
