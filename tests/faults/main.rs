//! Fault injection against the `cco` binary with fake-claude: killed claude processes, a
//! claude that ignores SIGTERM, malformed and enormous stream lines, stale git locks, an
//! unusable log directory, a read-only config directory, a repository that does not exist.
//!
//! Each test ends with a completed run (every finished task's file on main) or a clear error
//! (non-zero exit, a `cco:` message naming the problem, no panic), and no process of the
//! project left behind. No fixed sleeps: everything polls with a deadline.

mod harness;

use std::time::{Duration, Instant};

use harness::*;
use serde_json::json;

const RUN: Duration = Duration::from_secs(45);

fn assert_completed(project: &FaultProject, out: &std::process::Output, ids: &[&str]) {
    let stdout = stdout_of(out);
    let stderr = project.stderr();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stdout.contains("run finished: complete"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("tasks done {} / failed 0", ids.len())),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let files = project.files_on_main();
    for id in ids {
        assert!(
            files.contains(&task_file(id)),
            "{} missing on main: {files:?}",
            task_file(id)
        );
    }
}

#[test]
fn random_kills_of_claude_processes_lose_no_task() {
    let ids = ["t1", "t2", "t3", "t4", "t5", "t6"];
    let mut steps = vec![json!({"sleep_ms": 600})];
    steps.extend(write_and_commit());
    // Every worker turn (fresh or resumed) sleeps, then writes and commits.
    let project = FaultProject::new(
        json!({"workerCount": 3, "maxTaskRestarts": 6}),
        script(
            &ids,
            vec![json!({"match": {"role": "worker"}, "steps": steps, "result": "done"})],
        ),
    );
    let mut child = project.start();
    let mut killed = Vec::new();
    // A small xorshift seeded from the clock picks the victims.
    let mut seed = Instant::now().elapsed().subsec_nanos() as u64 | 1;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    while killed.len() < 3 {
        let mut victims = Vec::new();
        cco_testkit::wait_until(
            Duration::from_secs(20),
            "a worker claude process to kill",
            || {
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "cco exited before the kills: {}",
                    project.stderr()
                );
                victims = worker_processes(child.id())
                    .into_iter()
                    .filter(|p| !killed.contains(p))
                    .collect();
                !victims.is_empty()
            },
        );
        let victim = victims[(next() as usize) % victims.len()];
        kill9(victim);
        killed.push(victim);
    }
    let out = wait_output(child, RUN);
    assert_completed(&project, &out, &ids);
    for pid in &killed {
        assert!(
            !cco_testkit::pid_alive(*pid),
            "killed pid {pid} still alive"
        );
    }
    project.assert_no_leftovers();
}

#[test]
fn a_claude_that_ignores_sigterm_is_killed_after_the_idle_timeout_and_resumed() {
    let project = FaultProject::new(
        json!({"workerCount": 1, "idleTimeoutMs": 1000, "killGraceMs": 200}),
        script(
            &["t1"],
            vec![
                json!({"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "times": 1,
                        "steps": [{"ignore_sigterm": true}, {"spawn_grandchild": {"pid_file": "grandchild.pid"}}, {"hang": true}]}),
            ],
        ),
    );
    let mut child = project.start();
    let mut first = Vec::new();
    cco_testkit::wait_until(Duration::from_secs(20), "the hanging worker", || {
        assert!(
            child.try_wait().unwrap().is_none(),
            "cco exited early: {}",
            project.stderr()
        );
        first = worker_processes(child.id());
        !first.is_empty()
    });
    let out = wait_output(child, RUN);
    assert_completed(&project, &out, &["t1"]);
    // SIGTERM was ignored: only SIGKILL of the whole group can have ended it and its grandchild.
    assert!(!cco_testkit::pid_alive(first[0]));
    assert!(
        !cco_testkit::process_group_alive(first[0]),
        "the group of the SIGTERM-ignoring claude survived"
    );
    project.assert_no_leftovers();
}

#[test]
fn a_claude_that_ignores_sigterm_past_the_task_timeout_ends_cleanly() {
    // The process keeps printing (so the idle timeout never fires) but never finishes.
    let mut chatter = vec![json!({"ignore_sigterm": true})];
    for _ in 0..40 {
        chatter.push(json!({"text": "still working"}));
        chatter.push(json!({"sleep_ms": 200}));
    }
    let project = FaultProject::new(
        json!({"workerCount": 1, "taskTimeoutMs": 1500, "idleTimeoutMs": 60000, "killGraceMs": 200}),
        script(
            &["t1"],
            vec![
                json!({"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "times": 1, "steps": chatter}),
            ],
        ),
    );
    let mut child = project.start();
    let mut first = Vec::new();
    cco_testkit::wait_until(Duration::from_secs(20), "the worker", || {
        assert!(
            child.try_wait().unwrap().is_none(),
            "cco exited early: {}",
            project.stderr()
        );
        first = worker_processes(child.id());
        !first.is_empty()
    });
    let out = wait_output(child, RUN);
    // The wall-clock timeout resumes the session once with the "out of time" prompt, which
    // the catch-all rule answers by finishing the task.
    assert_completed(&project, &out, &["t1"]);
    assert!(!cco_testkit::process_group_alive(first[0]));
    project.assert_no_leftovers();
}

#[test]
fn malformed_and_enormous_stream_lines_do_not_exhaust_memory() {
    const BIG: u64 = 50 * 1024 * 1024;
    let mut steps = vec![
        json!({"raw": "this is not json {"}),
        json!({"raw": "{\"type\":\"assistant\",\"message\":"}),
        json!({"raw": "[1,2,3]"}),
        json!({"big_line": BIG}),
        json!({"raw": "\u{1b}[31m garbage \u{0}"}),
    ];
    steps.extend(write_and_commit());
    let project = FaultProject::new(
        json!({"workerCount": 1}),
        script(
            &["t1"],
            vec![
                json!({"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "steps": steps, "result": "done"}),
            ],
        ),
    );
    let child = project.start();
    let mut peak = 0;
    let out = wait_output_polling(child, RUN, |pid| peak = peak.max(vm_hwm(pid).unwrap_or(0)));
    assert_completed(&project, &out, &["t1"]);
    eprintln!(
        "cco peak RSS (VmHWM) while a {} MiB line streamed: {:.1} MiB",
        BIG >> 20,
        peak as f64 / 1048576.0
    );
    assert!(peak > 0, "VmHWM was never read");
    // Buffering the line alone would take 50 MiB; the cap (8 MiB) plus the runtime stays far below.
    assert!(
        peak < BIG,
        "cco's peak RSS {peak} reached the size of the line: it was buffered"
    );
    // The dropped line is a warning in the worker's log, saying how long it was.
    let logs = project.config_dir.join("logs");
    let run = std::fs::read_dir(&logs)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .expect("a run folder");
    let log = std::fs::read_to_string(run.join("combined.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains(" worker-1 warning: stream line ")
                && l.contains(&format!("line of {BIG} bytes"))),
        "{log}"
    );
    project.assert_no_leftovers();
}

#[test]
fn stale_git_locks_left_behind_are_removed_and_the_run_completes() {
    let mut steps = vec![json!({"sleep_ms": 1500})];
    steps.extend(write_and_commit());
    let project = FaultProject::new(
        json!({"workerCount": 1}),
        script(
            &["t1"],
            vec![
                json!({"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "steps": steps, "result": "done"}),
            ],
        ),
    );
    let mut child = project.start();
    cco_testkit::wait_until(Duration::from_secs(20), "the worker", || {
        assert!(
            child.try_wait().unwrap().is_none(),
            "cco exited early: {}",
            project.stderr()
        );
        !worker_processes(child.id()).is_empty()
    });
    // While the worker sleeps: an old index.lock in the clone and in the worker's worktree
    // (so the worker's own commit fails and cco's commit meets it), and an old lock on main
    // (so the merge's ref update meets it).
    let git_dir = project.workspace_repo().join(".git");
    // Each agent works in a repository of its own (`<workspace>/worktrees/<id>/.git`); not
    // the worker's spare one (`worker-1-b`): this one-task run never touches it.
    let agents = project.workspace_repo().parent().unwrap().join("worktrees");
    let worktrees: Vec<_> = std::fs::read_dir(&agents)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path().join(".git"))
        .filter(|p| p.is_dir() && !p.parent().unwrap().to_string_lossy().ends_with("-b"))
        .collect();
    assert!(!worktrees.is_empty());
    let mut locks = vec![
        git_dir.join("index.lock"),
        git_dir.join("refs/heads/main.lock"),
    ];
    locks.extend(worktrees.iter().map(|w| w.join("index.lock")));
    for lock in &locks {
        std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
        std::fs::write(lock, "").unwrap();
        make_old(lock, Duration::from_secs(60));
    }
    let out = wait_output(child, RUN);
    assert_completed(&project, &out, &["t1"]);
    for lock in &locks[1..] {
        assert!(!lock.exists(), "{} is still there", lock.display());
    }
    assert!(
        project.stderr().contains("removed stale git lock"),
        "{}",
        project.stderr()
    );
    project.assert_no_leftovers();
}

#[test]
fn a_file_where_the_log_directory_should_be_is_a_clear_error() {
    let project = FaultProject::new(json!({"logDirectory": "logs"}), script(&["t1"], vec![]));
    std::fs::write(project.config_dir.join("logs"), "not a directory").unwrap();
    let started = Instant::now();
    let out = wait_output(project.start(), Duration::from_secs(20));
    let stderr = project.stderr();
    assert_clear_failure(
        &out,
        &stderr,
        &project.config_dir.join("logs").display().to_string(),
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    project.assert_no_leftovers();
}

#[test]
fn a_log_directory_that_breaks_during_the_run_is_reported_and_the_run_goes_on() {
    // The plan takes a moment: the folder breaks while the coordinator's claude runs (its
    // transcript is open already), before any worker starts one.
    let ids = ["t1", "t2"];
    let mut script = script(&ids, vec![]);
    script["rules"][0]["steps"] = json!([{"sleep_ms": 1500}]);
    let project = FaultProject::new(json!({"workerCount": 2}), script);
    let mut child = project.start();
    let logs = project.config_dir.join("logs");
    cco_testkit::wait_until(Duration::from_secs(20), "the coordinator's claude", || {
        assert!(
            child.try_wait().unwrap().is_none(),
            "cco exited early: {}",
            project.stderr()
        );
        !agent_processes(child.id(), "coordinator").is_empty()
    });
    let sessions = std::fs::read_dir(&logs)
        .unwrap()
        .find_map(|e| e.ok())
        .unwrap()
        .path()
        .join("sessions");
    // Full-disk style: the transcripts folder becomes a file, so every new transcript fails.
    std::fs::remove_dir_all(&sessions).unwrap();
    std::fs::write(&sessions, "").unwrap();
    let out = wait_output(child, RUN);
    let stdout = stdout_of(&out);
    let stderr = project.stderr();
    eprintln!("{stdout}");
    // A transcript is a log: agents go on without one; the problem is reported by name.
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("run finished: complete"), "{stdout}");
    assert!(
        stderr.contains("running without a transcript") && stderr.contains("Not a directory"),
        "stderr:\n{stderr}"
    );
    assert!(stderr.contains(&sessions.display().to_string()), "{stderr}");
    project.assert_no_leftovers();
}

#[test]
fn a_read_only_config_dir_is_clear_either_way() {
    use std::os::unix::fs::PermissionsExt;
    let project = FaultProject::new(json!({"workerCount": 1}), script(&["t1"], vec![]));
    let dir = project.config_dir.clone();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    // root ignores the mode: then the directory is not really read-only.
    let probe = dir.join(".probe");
    let enforced = std::fs::write(&probe, "").is_err();
    let _ = std::fs::remove_file(&probe);
    let out = wait_output(project.start(), RUN);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stderr = project.stderr();
    if enforced {
        // logs/ and workspace/ live in the config dir by default: a clear error naming it.
        assert_clear_failure(&out, &stderr, &dir.display().to_string());
    } else {
        assert_completed(&project, &out, &["t1"]);
    }
    project.assert_no_leftovers();
}

#[test]
fn a_read_only_config_dir_with_logs_and_workspace_elsewhere_completes() {
    use std::os::unix::fs::PermissionsExt;
    let project = FaultProject::new(json!({"workerCount": 1}), script(&["t1"], vec![]));
    let elsewhere = project.dir.path().join("state");
    let mut config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(project.config_dir.join("orchestrator.json")).unwrap(),
    )
    .unwrap();
    config["logDirectory"] = json!(elsewhere.join("logs").display().to_string());
    config["workspaceDirectory"] = json!(elsewhere.join("workspace").display().to_string());
    project.write_config(&config);
    let dir = project.config_dir.clone();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let out = wait_output(project.start(), RUN);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stdout = stdout_of(&out);
    let stderr = project.stderr();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("tasks done 1 / failed 0"),
        "{stdout}\n{stderr}"
    );
    let files = cco_testkit::git(
        &elsewhere.join("workspace/repo"),
        &["ls-tree", "-r", "--name-only", "main"],
    );
    assert!(files.lines().any(|f| f == task_file("t1")), "{files}");
    project.assert_no_leftovers();
}

#[test]
fn a_repository_that_does_not_exist_is_a_quick_clear_error_naming_it() {
    let project = FaultProject::new(json!({}), script(&["t1"], vec![]));
    let missing = project.dir.path().join("no-such-repo");
    // A local path, a file:// URL and an unreachable remote (connection refused at once).
    for url in [
        missing.display().to_string(),
        format!("file://{}", missing.display()),
        "http://127.0.0.1:9/no/such/repo.git".to_string(),
    ] {
        let mut config: serde_json::Value = serde_json::from_slice(
            &std::fs::read(project.config_dir.join("orchestrator.json")).unwrap(),
        )
        .unwrap();
        config["repositoryUrl"] = json!(url);
        project.write_config(&config);
        let started = Instant::now();
        let out = wait_output(project.start(), Duration::from_secs(20));
        let stderr = project.stderr();
        assert_clear_failure(&out, &stderr, &url);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{url}: took {:?}",
            started.elapsed()
        );
        assert!(
            !project.workspace_repo().join(".git").exists(),
            "{url}: a clone was left in the workspace"
        );
    }
    project.assert_no_leftovers();
}
