//! Agents stop when cco dies (`orphanPolicy` "stop", the default): every claude process runs
//! under `cco __guard`, which ends its process group once cco is gone. `cco resume` then
//! finishes every task in the same sessions (and still kills leftovers, the second line of
//! defence, which is all `orphanPolicy` "continue" has).

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

/// Two tasks whose first turns hang (their resumed sessions finish them), and a third.
fn hanging_script() -> Value {
    let ids = ["t1", "t2", "t3"];
    let tasks: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "title": format!("Write {id}.txt")}))
        .collect();
    let write = |id: &str| json!([{"write": {"path": format!("{id}.txt"), "content": format!("{id}\n")}}, {"commit": format!("Add {id}")}]);
    let mut rules = vec![
        cco_testkit::answer_rule(
            json!({"prompt_contains": "[cco:coordinator-plan]"}),
            json!({"status": "continue", "tasks": tasks}),
        ),
        cco_testkit::answer_rule(
            json!({"prompt_contains": "[cco:replan]"}),
            json!({"status": "complete", "reason": "done"}),
        ),
        cco_testkit::answer_rule(
            json!({"prompt_contains": "[cco:review]"}),
            json!({"decision": "approve"}),
        ),
    ];
    for id in ["t1", "t2"] {
        rules.push(json!({"match": {"role": "worker", "prompt_contains": format!("Task ID: {id}")}, "times": 1,
            "steps": [{"text": format!("working on {id}")}, {"hang": true}]}));
        rules.push(
            json!({"match": {"role": "worker", "prompt_contains": format!("[cco-ref:resume/{id}]")},
            "steps": write(id), "result": "finished after the resume"}),
        );
        // Should the journal not have the turn's session yet, the task starts over.
        rules.push(
            json!({"match": {"role": "worker", "prompt_contains": format!("Task ID: {id}")},
            "steps": write(id), "result": "done"}),
        );
    }
    rules.push(json!({"match": {"role": "worker", "prompt_contains": "Task ID: t3"}, "steps": write("t3")}));
    json!({"rules": rules})
}

/// Starts a run of `hanging_script` and kills cco with SIGKILL once both workers' claude
/// processes run; returns their process groups.
fn kill_9_mid_turn(project: &CliProject) -> Vec<u32> {
    let mut child = project.cco(&["start", "--plain"]).spawn().unwrap();
    let groups = project.wait_for_worker_pids(&mut child, 2);
    // Both turns are under way (their first output is in the log), not just starting, and
    // the journal knows their processes (what `cco resume` ends if they are still there).
    let run_dir = project.wait_for_run_dir();
    cco_testkit::wait_until(Duration::from_secs(30), "both workers' output", || {
        let log = std::fs::read_to_string(run_dir.join("combined.log")).unwrap_or_default();
        let journaled = cco::Orchestrator::read_run(&run_dir).is_ok_and(|run| {
            groups
                .iter()
                .all(|g| run.snapshot.agents.iter().any(|a| a.pid == Some(*g)))
        });
        log.contains("> working on t1") && log.contains("> working on t2") && journaled
    });
    signal(&child, nix::sys::signal::Signal::SIGKILL);
    child.wait().unwrap();
    groups
}

/// Resumes the run and checks every task landed on main exactly once.
fn resume_finishes_every_task(project: &CliProject) {
    let out = project.cco(&["resume", "--plain"]).output().unwrap();
    let (stdout, _) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", project.stderr());
    let log = cco_testkit::git(
        &project.config_dir.join("workspace/repo"),
        &["log", "--format=%s", "main"],
    );
    for id in ["t1", "t2", "t3"] {
        let commits = log.lines().filter(|l| *l == format!("Add {id}")).count();
        assert_eq!(
            commits, 1,
            "{id} should land exactly once:\n{log}\n{stdout}"
        );
    }
}

#[test]
fn kill_9_of_cco_stops_every_claude_process_within_5_s_and_resume_finishes_the_tasks() {
    let project = CliProject::new(
        json!({"workerCount": 2, "killGraceMs": 500}),
        hanging_script(),
    );
    let groups = kill_9_mid_turn(&project);
    cco_testkit::wait_until(
        Duration::from_secs(5),
        "the claude processes of the dead cco to stop",
        || !groups.iter().any(|g| cco_testkit::process_group_alive(*g)),
    );
    resume_finishes_every_task(&project);
}

#[test]
fn with_orphan_policy_continue_claude_outlives_cco_until_resume_ends_it() {
    let project = CliProject::new(
        json!({"workerCount": 2, "killGraceMs": 500, "orphanPolicy": "continue"}),
        hanging_script(),
    );
    let groups = kill_9_mid_turn(&project);
    // Unsupervised: still running well after cco died (a stop would take < 1 s).
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        groups.iter().all(|g| cco_testkit::process_group_alive(*g)),
        "with orphanPolicy continue the agents keep running"
    );
    resume_finishes_every_task(&project);
    assert!(
        !groups.iter().any(|g| cco_testkit::process_group_alive(*g)),
        "resume ends the leftovers"
    );
}
