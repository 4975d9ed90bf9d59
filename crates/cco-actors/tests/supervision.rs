//! Supervision behaviour: process restarts with resume, restart limits, actor respawn,
//! status dumps, graceful and forced shutdown, two orchestrators in one process.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure with a message

mod harness;

use std::time::Duration;

use cco_actors::{RunOutcome, ShutdownMode, TaskState};
use harness::*;
use serde_json::{json, Value};

const RUN_TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claude_that_crashes_twice_is_resumed_and_the_task_ends_done_with_one_session() {
    let mut rules = base_rules(json!([task("t1", "one.txt")]));
    rules.push(json!({"match": {"role":"worker","prompt_contains":"Task ID: t1"}, "times": 1, "steps": [{"text":"starting"}, {"crash": {"exit_code": 1}}]}));
    rules.push(json!({"match": {"role":"worker","prompt_contains":"[cco:resume]"}, "times": 1, "steps": [{"crash": {"exit_code": 1}}]}));
    rules.push(json!({"match": {"role":"worker","prompt_contains":"[cco:resume]"}, "steps": [
        {"write": {"path": "one.txt", "content": "1\n"}}, {"commit": "one"}], "result": "done after resume"}));
    let project = Project::new(json!({"workerCount": 1}), json!({"rules": rules}));
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "{}", summary.reason);
    let task = &summary.tasks[0];
    assert_eq!(task.state, TaskState::Done, "{task:?}");
    assert_eq!(task.attempts, 3, "one start and two resumes: {task:?}");
    // One session: every process of the task wrote the same session's transcript.
    let transcripts: Vec<_> = std::fs::read_dir(handle.run_dir().join("sessions"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("worker-1-"))
        .collect();
    assert_eq!(transcripts.len(), 1, "{transcripts:?}");
    let session = task.session_id.clone().expect("session id");
    assert_eq!(transcripts[0], format!("worker-1-{session}.jsonl"));
    assert!(project.files_on("main").contains(&"one.txt".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_that_always_crashes_fails_its_task_after_the_limit_and_the_team_goes_on() {
    let mut rules = base_rules(json!([task("bad", "bad.txt"), task("good", "good.txt")]));
    rules.push(json!({"match": {"role":"worker","prompt_contains":"Task ID: bad"}, "steps": [{"crash": {"exit_code": 1}}]}));
    rules.push(json!({"match": {"role":"worker","prompt_contains":"[cco:resume]"}, "steps": [{"crash": {"exit_code": 1}}]}));
    rules.push(worker_rule("good", "good.txt", "good\n"));
    let project = Project::new(
        json!({"workerCount": 2, "maxTaskRestarts": 2}),
        json!({"rules": rules}),
    );
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "{}", summary.reason);
    let bad = summary.tasks.iter().find(|t| t.id == "bad").unwrap();
    let good = summary.tasks.iter().find(|t| t.id == "good").unwrap();
    assert_eq!(bad.state, TaskState::Failed);
    assert_eq!(bad.attempts, 3, "first run plus maxTaskRestarts resumes");
    assert!(
        bad.failure
            .as_deref()
            .unwrap_or_default()
            .contains("gave up"),
        "{bad:?}"
    );
    assert_eq!(good.state, TaskState::Done);
    let files = project.files_on("main");
    assert!(files.contains(&"good.txt".to_string()) && !files.contains(&"bad.txt".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_a_worker_actor_makes_its_lead_respawn_it_and_the_task_is_redone() {
    let mut rules = base_rules(json!([task("t1", "t1.txt")]));
    rules.push(json!({"match": {"role":"worker","prompt_contains":"Task ID: t1"}, "times": 1, "steps": [{"hang": true}]}));
    rules.push(worker_rule("t1", "t1.txt", "t1\n"));
    let project = Project::new(json!({"workerCount": 1}), json!({"rules": rules}));
    let handle = project.start().await;
    let mut pid = None;
    cco_testkit::wait_until_async(Duration::from_secs(30), "worker-1 runs claude", || {
        pid = handle
            .status()
            .agents
            .iter()
            .find(|a| a.id == "worker-1")
            .and_then(|a| a.pid);
        std::future::ready(pid.is_some())
    })
    .await;
    let pid = pid.unwrap();
    assert!(handle.kill_agent_actor("worker-1"));
    // The dead actor's process-owner task kills the process group by itself.
    cco_testkit::wait_until_async(
        Duration::from_secs(15),
        "the hung claude process group is gone",
        || std::future::ready(!cco_testkit::process_group_alive(pid)),
    )
    .await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "{}", summary.reason);
    let worker = summary.agents.iter().find(|a| a.id == "worker-1").unwrap();
    assert_eq!(worker.restarts, 1, "{worker:?}");
    assert_eq!(summary.tasks[0].state, TaskState::Done);
}

fn hanging_workers_script(tasks: usize, extra_steps: Vec<Value>) -> Value {
    let task_list: Vec<Value> = (1..=tasks)
        .map(|n| task(&format!("h{n}"), &format!("h{n}.txt")))
        .collect();
    let mut steps = extra_steps;
    steps.push(json!({"spawn_grandchild": {"pid_file": "grandchild.pid"}}));
    steps.push(json!({"hang": true}));
    let mut rules = base_rules(json!(task_list));
    rules.push(json!({"match": {"role":"worker"}, "steps": steps}));
    json!({"rules": rules})
}

async fn wait_for_busy_workers(handle: &cco_actors::OrchestratorHandle, count: usize) -> Vec<u32> {
    let mut pids = Vec::new();
    cco_testkit::wait_until_async(Duration::from_secs(30), "every worker runs claude", || {
        pids = handle
            .status()
            .agents
            .iter()
            .filter(|a| a.id.starts_with("worker-"))
            .filter_map(|a| a.pid)
            .collect();
        std::future::ready(pids.len() == count)
    })
    .await;
    pids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_shutdown_leaves_no_claude_process_and_writes_the_summary() {
    let project = Project::new(json!({"workerCount": 2}), hanging_workers_script(2, vec![]));
    let handle = project.start().await;
    let pids = wait_for_busy_workers(&handle, 2).await;
    // The status dump (SIGUSR1 in the binary) lists every actor of the tree; in flat mode
    // its root is the coordinator (no agent is called director).
    let (dump, file) = handle.dump_status().unwrap();
    for id in ["coordinator", "worker-1", "worker-2"] {
        assert!(dump.contains(id), "{id} missing from dump:\n{dump}");
    }
    let root = dump.lines().nth(1).unwrap_or_default();
    assert!(root.starts_with("  coordinator coordinator "), "{dump}");
    assert!(!dump.contains("director"), "{dump}");
    assert!(dump.contains(&format!("pid={}", pids[0])));
    assert_eq!(std::fs::read_to_string(file).unwrap(), dump);
    handle.shutdown(ShutdownMode::Graceful);
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(!summary.completed);
    assert!(summary.reason.contains("shutdown"), "{}", summary.reason);
    assert_eq!(
        summary.outcome,
        RunOutcome::Stopped {
            signal: None,
            forced: false
        }
    );
    assert_no_live_processes(&pids);
    assert!(handle.run_dir().join("summary.json").is_file());
    let status = handle.status();
    assert!(status.agents.iter().all(|a| a.pid.is_none()));
    assert_eq!(status.phase, "finished: stopped (shutdown requested)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forced_shutdown_kills_processes_that_ignore_sigterm() {
    let project = Project::new(
        json!({"workerCount": 2, "killGraceMs": 60000}),
        hanging_workers_script(2, vec![json!({"ignore_sigterm": true})]),
    );
    let handle = project.start().await;
    let pids = wait_for_busy_workers(&handle, 2).await;
    // An application passes the signals it got on (SIGTERM, then SIGINT).
    assert_eq!(handle.request_stop_for_signal(15), ShutdownMode::Graceful);
    // The grace period is a minute; the second request must not wait for it.
    assert_eq!(handle.request_stop_for_signal(2), ShutdownMode::Force);
    let summary = finish(&handle, Duration::from_secs(20)).await;
    assert!(!summary.completed);
    assert_eq!(summary.reason, "shutdown requested (SIGTERM)");
    assert_eq!(
        summary.outcome,
        RunOutcome::Stopped {
            signal: Some(15),
            forced: true
        }
    );
    assert_no_live_processes(&pids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_orchestrators_run_in_one_process_at_once() {
    let make = |file: &str| {
        let mut rules = base_rules(json!([task("t1", file)]));
        rules.push(worker_rule("t1", file, "x\n"));
        Project::new(json!({"workerCount": 1}), json!({"rules": rules}))
    };
    let (a, b) = (make("a.txt"), make("b.txt"));
    let (ha, hb) = (a.start().await, b.start().await);
    let (sa, sb) = tokio::join!(finish(&ha, RUN_TIMEOUT), finish(&hb, RUN_TIMEOUT));
    assert!(
        sa.completed && sb.completed,
        "{} / {}",
        sa.reason,
        sb.reason
    );
    assert!(
        a.files_on("main").contains(&"a.txt".to_string())
            && !a.files_on("main").contains(&"b.txt".to_string())
    );
    assert!(b.files_on("main").contains(&"b.txt".to_string()));
}
