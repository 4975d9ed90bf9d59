//! End-to-end tests of the `cco` binary (signals, exit codes, output) with fake-claude.

mod agents;
mod auth;
mod browser;
mod check;
mod compat;
mod demo;
mod exits;
mod harness;
mod init;
mod integrity;
mod live;
mod orphans;
mod pty;
mod resume;
mod ui;

use std::time::Duration;

use harness::*;
use serde_json::json;

#[test]
fn start_runs_a_flat_project_to_completion_and_exits_zero() {
    let project = CliProject::new(
        json!({"workerCount": 2}),
        simple_script(&["t1", "t2"], None),
    );
    let out = project.cco(&["start", "--plain"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("run finished: complete"), "{stdout}");
    assert!(stdout.contains("tasks done 2 / failed 0"), "{stdout}");
    let files = project.files_on_main();
    assert!(
        files.contains(&"t1.txt".to_string()) && files.contains(&"t2.txt".to_string()),
        "{files:?}"
    );
    // `cco status` reads the finished run's state.
    let status = project.cco(&["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success() && text.contains("coordinator") && text.contains("worker-2"),
        "{text}"
    );
}

/// A project direction longer than the kernel takes in one argument (128 KiB): the
/// planner's prompt goes to the CLI's stdin (through the guard process), and the run
/// completes as with a short one.
#[test]
fn a_project_direction_longer_than_a_command_line_argument_is_planned_from() {
    let direction = format!(
        "{}Write the files.",
        "A long specification paragraph of the project.\n".repeat(4_000)
    );
    assert!(direction.len() > 150 * 1024);
    let project = CliProject::new(
        json!({"workerCount": 1, "projectDirection": direction}),
        simple_script(&["t1"], None),
    );
    let out = project.cco(&["start", "--plain"]).output().unwrap();
    let (stdout, _) = assert_success(&out);
    assert!(stdout.contains("tasks done 1 / failed 0"), "{stdout}");
    assert!(project.files_on_main().contains(&"t1.txt".to_string()));
}

#[test]
fn json_output_is_one_event_object_per_line() {
    let project = CliProject::new(json!({"workerCount": 1}), simple_script(&["t1"], None));
    let out = project.cco(&["start", "--json"]).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert!(events.iter().any(|e| e["event"] == "merged"));
    assert_eq!(events.last().unwrap()["event"], "summary");
}

#[test]
fn a_config_error_names_the_file_and_field_and_exits_two() {
    let project = CliProject::new(json!({"workerCount": 0}), simple_script(&["t1"], None));
    let out = project.cco(&["start"]).output().unwrap();
    let stderr = project.stderr();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("orchestrator.json") && stderr.contains("workerCount"),
        "{stderr}"
    );
}

#[test]
fn sigusr1_dumps_the_tree_and_sigterm_stops_gracefully_leaving_no_process() {
    let project = CliProject::new(
        json!({"workerCount": 2}),
        simple_script(&["h1", "h2"], Some(json!([{"hang": true}]))),
    );
    let mut child = project.cco(&["start", "--plain"]).spawn().unwrap();
    let run_dir = project.wait_for_run_dir();
    let pids = project.wait_for_worker_pids(&mut child, 2);
    signal(&child, nix::sys::signal::Signal::SIGUSR1);
    cco_testkit::wait_until(
        Duration::from_secs(20),
        "a status dump in the run folder",
        || {
            std::fs::read_dir(&run_dir)
                .unwrap()
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with("status-"))
        },
    );
    let dump = std::fs::read_dir(&run_dir)
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("status-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .unwrap();
    // Flat mode: the coordinator is the root of the tree (no agent is called director).
    for id in ["coordinator", "worker-1", "worker-2"] {
        assert!(dump.contains(id), "{id} missing:\n{dump}");
    }
    assert!(!dump.contains("director"), "{dump}");
    assert!(
        pids.iter().all(|p| cco_testkit::process_group_alive(*p)),
        "SIGUSR1 must not stop anything"
    );
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let out = wait_output(child, Duration::from_secs(30));
    let stderr = project.stderr();
    // Stopped by SIGTERM: 128 + 15.
    assert_eq!(out.status.code(), Some(143), "stderr: {stderr}");
    assert!(
        stderr.contains(dump.lines().next().unwrap()),
        "the dump goes to stderr too:\n{stderr}"
    );
    for pid in pids {
        assert!(
            !cco_testkit::process_group_alive(pid),
            "claude group {pid} survived"
        );
    }
}

#[test]
fn a_second_sigint_forces_processes_that_ignore_sigterm() {
    let project = CliProject::new(
        json!({"workerCount": 1, "killGraceMs": 120000}),
        simple_script(
            &["h1"],
            Some(json!([{"ignore_sigterm": true}, {"hang": true}])),
        ),
    );
    let mut child = project.cco(&["start", "--plain"]).spawn().unwrap();
    let pids = project.wait_for_worker_pids(&mut child, 1);
    signal(&child, nix::sys::signal::Signal::SIGINT);
    cco_testkit::wait_until(
        Duration::from_secs(10),
        "the graceful stop to begin",
        || project.stderr_contains("stopping gracefully"),
    );
    signal(&child, nix::sys::signal::Signal::SIGINT);
    let out = wait_output(child, Duration::from_secs(30));
    // Stopped by SIGINT: 128 + 2.
    assert_eq!(out.status.code(), Some(130));
    for pid in pids {
        assert!(!cco_testkit::process_group_alive(pid));
    }
}
