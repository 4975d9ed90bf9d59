//! `cco init` and `cco start` as a person uses them: on a pseudo-terminal (rexpect), answering
//! the prompts with keys.

use std::path::Path;
use std::process::Command;

use rexpect::session::PtySession;
use serde_json::{json, Value};

use crate::harness::*;

/// Every prompt and line waited for, with this much time each (a loaded machine builds slowly).
const STEP_MS: u64 = 60_000;

/// `cco <args>` in `cwd` on a fresh 120x40 pseudo-terminal (`stty` sets the size before cco
/// starts, so prompts never see a zero-width terminal).
fn spawn(sandbox: &Sandbox, cwd: &Path, args: &str, extra_env: &[(&str, &str)]) -> PtySession {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "stty cols 120 rows 40 && exec '{}' {args}",
            env!("CARGO_BIN_EXE_cco")
        ))
        .current_dir(cwd);
    sandbox.env(&mut cmd);
    cmd.env("TERM", "xterm-256color");
    for (key, value) in extra_env {
        cmd.env(key, value);
    }
    rexpect::session::spawn_command(cmd, Some(STEP_MS)).expect("spawn on a pty")
}

/// Waits for `prompt`, then types `keys` (`\r` is Enter). Returns what was shown meanwhile.
fn answer(p: &mut PtySession, prompt: &str, keys: &str) -> String {
    let shown = p
        .exp_string(prompt)
        .unwrap_or_else(|e| panic!("waiting for {prompt:?}: {e}"));
    p.send(keys).unwrap();
    p.flush().unwrap();
    shown
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn init_on_a_terminal_asks_with_detected_defaults_and_hides_the_key() {
    const ENV_KEY: &str = "sk-ant-api03-PTYSECRET-from-env-000000";
    const TYPED_KEY: &str = "sk-ant-api03-PTYSECRET-typed-11111111";
    let sandbox = Sandbox::new(&json!({"rules": []}));
    let repo = sandbox.repo(
        "app",
        Some("git@github.com:me/app.git"),
        &[("Cargo.toml", "[package]\n")],
    );
    let mut p = spawn(
        &sandbox,
        &repo,
        "init ../run",
        &[("ANTHROPIC_API_KEY", ENV_KEY)],
    );
    let mut screen = String::new();
    // Enter takes the default shown: origin, current branch.
    screen += &answer(&mut p, "Repository", "\r");
    screen += &answer(&mut p, "Base branch", "\r");
    screen += &answer(&mut p, "Number of workers", "5\r");
    // No claude login in this HOME and a key in the environment: api-keys-only is preselected.
    screen += &answer(&mut p, "How do agents authenticate?", "\r");
    screen += &answer(&mut p, "Use the key in ANTHROPIC_API_KEY?", "n\r");
    screen += &answer(&mut p, "API key:", &format!("{TYPED_KEY}\r"));
    screen += &answer(&mut p, "Add another key", "\r");
    // Cargo.toml: `cargo test` is offered first.
    screen += &answer(&mut p, "Verify command", "\r");
    screen += &answer(&mut p, "Budget limit", "15\r");
    screen += &answer(&mut p, "Time limit", "\r");
    screen += &p.exp_string("config OK").expect("the check summary");
    screen += &p.exp_eof().expect("cco init exits");
    assert!(!screen.contains("PTYSECRET"), "a key was echoed:\n{screen}");
    assert!(screen.contains("start --config ../run"), "{screen}");

    let config = read_json(&sandbox.path().join("run/orchestrator.json"));
    assert_eq!(config["repositoryUrl"], "git@github.com:me/app.git");
    assert_eq!(config["workerCount"], 5);
    assert_eq!(config["authMode"], "api-keys-only");
    assert_eq!(config["verifyCommand"], "cargo test");
    assert_eq!(config["maxBudgetUsd"], 15.0);
    assert!(config.get("maxRunDurationMinutes").is_none());
    assert!(config.get("branch").is_none(), "main is the default");
    let keys = read_json(&sandbox.path().join("run/api-keys.json"));
    assert_eq!(keys, json!([{"name": "key-1", "apiKey": TYPED_KEY}]));
}

#[test]
fn start_without_a_config_on_a_terminal_sets_one_up_and_runs_it() {
    let sandbox = Sandbox::new(&simple_script(&["t1"], None));
    let repo = sandbox.repo(
        "proj",
        None,
        &[("PROJECT_DIRECTION.md", "# Direction\nWrite t1.txt.\n")],
    );
    let mut p = spawn(&sandbox, &repo, "start", &[]);
    let mut screen = answer(&mut p, "Set up a config now", "\r");
    assert!(screen.contains("no orchestrator.json in"), "{screen}");
    screen += &answer(&mut p, "Config directory", "\r");
    screen += &answer(&mut p, "Repository", "\r");
    screen += &answer(&mut p, "Base branch", "\r");
    screen += &answer(&mut p, "Number of workers", "1\r");
    screen += &answer(&mut p, "How do agents authenticate?", "\r");
    screen += &answer(&mut p, "Verify command", "\r");
    screen += &answer(&mut p, "Budget limit", "\r");
    screen += &answer(&mut p, "Time limit", "\r");
    screen += &answer(&mut p, "Start the run now?", "\r");
    screen += &p.exp_string("run finished").expect("the run ends");
    screen += &p.exp_eof().expect("cco exits");
    let status = p.process().wait().expect("exit status");
    assert!(
        matches!(status, rexpect::process::WaitStatus::Exited(_, 0)),
        "{status:?}\n{screen}"
    );
    // The config is beside the checkout, and the work landed on main in the run's clone.
    let dir = sandbox.path().join("proj-cco");
    let config = read_json(&dir.join("orchestrator.json"));
    assert_eq!(
        config["repositoryUrl"],
        repo.canonicalize().unwrap().display().to_string()
    );
    let files = cco_testkit::git(
        &dir.join("workspace/repo"),
        &["ls-tree", "-r", "--name-only", "main"],
    );
    assert!(files.lines().any(|f| f == "t1.txt"), "{files}\n{screen}");
}
