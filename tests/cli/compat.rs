//! The original tool's command line and config keys: `cco --config DIR`, `-w/--workspace`,
//! `start` without a config, and a fake-claude run from a config using every original key.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

#[test]
fn cco_with_only_options_runs_start() {
    let project = CliProject::new(json!({"workerCount": 1}), simple_script(&["t1"], None));
    // `project.cco` appends `--config DIR`: here that is the whole command line.
    let out = project.cco(&["--plain"]).output().unwrap();
    let (stdout, _) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{}", project.stderr());
    assert!(stdout.contains("run finished: complete"), "{stdout}");
    assert!(project.files_on_main().contains(&"t1.txt".to_string()));
}

#[test]
fn cco_alone_prints_first_steps_on_a_terminal_and_usage_elsewhere() {
    let sandbox = Sandbox::new(&json!({"rules": []}));
    let out = sandbox.cco(sandbox.path(), &[]).output().unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("a command is needed") && stderr.contains("Usage:"),
        "{stderr}"
    );

    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cco"));
    sandbox.env(&mut cmd);
    let mut p = rexpect::session::spawn_command(cmd, Some(60_000)).unwrap();
    let screen = p.exp_eof().unwrap();
    for part in [
        "First steps",
        "cco demo",
        "cco init",
        "cco start --config DIR",
    ] {
        assert!(screen.contains(part), "{part} missing:\n{screen}");
    }
    assert!(matches!(
        p.process().wait().unwrap(),
        rexpect::process::WaitStatus::Exited(_, 0)
    ));
}

#[test]
fn start_without_a_config_and_no_terminal_says_to_run_init() {
    let sandbox = Sandbox::new(&json!({"rules": []}));
    let out = sandbox.cco(sandbox.path(), &["start"]).output().unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("orchestrator.json: required file not found")
            && stderr.contains("cco init"),
        "{stderr}"
    );
}

/// `-w DIR` moves the run's workspace; `cco resume` finds it again without being told, and
/// refuses another one.
#[test]
fn workspace_override_is_kept_by_resume() {
    let write = |id: &str| json!([{"write": {"path": format!("{id}.txt"), "content": "x\n"}}, {"commit": format!("Add {id}")}]);
    let records = cco_testkit::temp_dir();
    let hanging = records.path().join("hanging");
    let script = json!({"rules": [
        {"match": {"prompt_contains": "[cco:coordinator-plan]"}, "result": json!({"status":"continue","tasks": [{"id": "t1", "title": "Write t1.txt", "files": ["t1.txt"]}]}).to_string()},
        {"match": {"prompt_contains": "[cco:replan]"}, "result": "{\"status\":\"complete\",\"reason\":\"done\"}"},
        {"match": {"prompt_contains": "[cco:review"}, "result": "{\"decision\":\"approve\"}"},
        {"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "times": 1, "steps": [
            {"bash": format!("touch '{}'", hanging.display())}, {"hang": true}]},
        // Whatever the resumed worker is asked, it writes t1.
        {"match": {"role": "worker"}, "steps": write("t1")},
    ]});
    let project = CliProject::new(json!({"workerCount": 1}), script);
    let ws = project.dir.path().join("elsewhere");
    let check = project
        .cco(&["check", "-w", ws.to_str().unwrap()])
        .output()
        .unwrap();
    let (stdout, _) = assert_success(&check);
    assert!(
        stdout.contains(&format!("{} (from -w)", ws.display())),
        "{stdout}"
    );
    let mut child = project
        .cco(&["start", "--plain", "-w", ws.to_str().unwrap()])
        .spawn()
        .unwrap();
    let run_dir = project.wait_for_run_dir();
    project.wait_for_worker_pids(&mut child, 1);
    cco_testkit::wait_until(Duration::from_secs(30), "the -w record", || {
        run_dir.join("cli-workspace").is_file()
    });
    // The worker's turn is under way (its one hanging turn is used up), not just starting:
    // a claude stopped before that (agents stop with cco) would hang the resumed run instead.
    cco_testkit::wait_until(Duration::from_secs(30), "the hanging turn", || {
        hanging.exists()
    });
    assert!(
        ws.join("repo/.git").exists(),
        "the clone is in the -w folder"
    );
    assert!(!project.config_dir.join("workspace").exists());
    // Killed once the journal knows the worker's claude: `cco resume` ends it.
    let hanging = project.wait_for_journaled_processes(&mut child, 1);
    signal(&child, nix::sys::signal::Signal::SIGKILL);
    child.wait().unwrap();

    let other = project.dir.path().join("other");
    let refused = project
        .cco(&["resume", "--plain", "-w", other.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", project.stderr());
    assert!(
        project.stderr().contains("resume it with -w"),
        "{}",
        project.stderr()
    );

    let out = project.cco(&["resume", "--plain"]).output().unwrap();
    let (stdout, _) = texts(&out);
    let stderr = project.stderr();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("resuming in"), "{stderr}");
    assert!(stdout.contains("run finished: complete"), "{stdout}");
    let files = cco_testkit::git(&ws.join("repo"), &["ls-tree", "-r", "--name-only", "main"]);
    assert!(
        files.lines().any(|f| f == "t1.txt"),
        "{files}\n{stdout}\n{stderr}"
    );
    assert!(!other.exists());
    for pid in hanging {
        assert!(
            !cco_testkit::process_group_alive(pid),
            "the killed cco's claude {pid} outlived the resume"
        );
    }
}

/// A config using every key of the original tool at once runs to completion on fake claude:
/// the local repository is cloned instead of the URL, `env` reaches the agents, the workspace,
/// log directory and run branch are where the original keys say.
#[test]
fn a_config_with_every_original_key_runs() {
    let steps = json!([
        {"bash": "printf '%s\\n' \"$GREETING\" > t1.txt"},
        {"commit": "Add t1"}
    ]);
    let project = CliProject::new(
        json!({"workerCount": 2}),
        simple_script(&["t1"], Some(steps)),
    );
    let source = project.source.display().to_string();
    let config = json!({
        "repositoryUrl": "https://github.com/org/never-cloned.git",
        "localRepoPath": source,
        "branch": "main",
        "workspaceDir": "./ws",
        "logDirectory": "./runs",
        "cloneDepth": 50,
        "useRunBranch": true,
        "workerCount": 2,
        "groupSize": 4,
        "model": "haiku",
        "authMode": "oauth",
        "taskTimeoutMs": 120000,
        "pollIntervalMs": 50,
        "timingBaseMs": 30000,
        "stuckThresholdMs": 300000,
        "maxToolUsesPerInstance": 500,
        "maxTotalToolUses": 2000,
        "maxRunDurationMinutes": 10,
        "envFiles": [".env"],
        "env": {"GREETING": "hello from env"},
        "mergeStrategy": "auto-resolve",
        "maxAutoResolveConflicts": 3,
        "serverPort": 3000,
        "hookServerPort": 3000,
        "healthCheckIntervalMs": 30000,
        "rateLimitCheckIntervalMs": 10000,
        "managerHeartbeatIntervalMs": 600000,
        "projectDirection": "Write the files.",
        "claudeBinary": "./claude",
        "restartBackoffMs": 20,
        "killGraceMs": 500
    });
    std::fs::write(
        project.config_dir.join("orchestrator.json"),
        config.to_string(),
    )
    .unwrap();
    let check = project.cco(&["check"]).output().unwrap();
    let (stdout, _) = assert_success(&check);
    assert!(
        stdout.contains("cloned from the local repository"),
        "{stdout}"
    );

    let out = project.cco(&["start", "--plain"]).output().unwrap();
    let (stdout, _) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{}", project.stderr());
    assert!(stdout.contains("run finished: complete"), "{stdout}");
    assert!(project.config_dir.join("runs").is_dir(), "logDirectory");
    let repo = project.config_dir.join("ws/repo");
    let branches = cco_testkit::git(
        &repo,
        &["branch", "--list", "cco/run-*", "--format=%(refname:short)"],
    );
    let run_branch = branches
        .lines()
        .next()
        .expect("a run branch (useRunBranch)");
    let text = cco_testkit::git(&repo, &["show", &format!("{run_branch}:t1.txt")]);
    assert_eq!(text.trim(), "hello from env", "env reached the worker");
    // The value is a secret in every log of the run.
    let run_dir = cco::Orchestrator::latest_run(&project.config_dir.join("runs")).unwrap();
    let log = std::fs::read_to_string(run_dir.join("combined.log")).unwrap();
    assert!(!log.contains("hello from env"), "{log}");
}
