//! `cco demo`: the offline demo runs a whole hierarchy (Director, 2 EMs, 6 workers) to
//! completion with one resolved conflict and one resumed crash, and leaves nothing running.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const FUNCTIONS: &[&str] = &["add", "sub", "mul", "div", "pow", "mod", "max"];

fn cco(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cco"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.env_remove("RUST_LOG");
    cmd
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn summary_of(dir: &Path) -> Value {
    let runs: Vec<_> = std::fs::read_dir(dir.join("logs"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    assert_eq!(runs.len(), 1, "one run folder: {runs:?}");
    serde_json::from_slice(&std::fs::read(runs[0].join("summary.json")).unwrap()).unwrap()
}

/// Live processes whose environment names this demo's fake claude script.
fn fake_claude_processes(dir: &Path) -> Vec<u32> {
    let needle = format!(
        "FAKE_CLAUDE_SCRIPT={}",
        dir.join("fake-claude-script.json").display()
    );
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) && cco_testkit::pid_alive(*pid)
        })
        .collect()
}

/// The run's result: every function and its tests on the base branch, and the tests pass there.
fn assert_result_on_main(dir: &Path) {
    let repo = dir.join("workspace").join("repo");
    let files = cco_testkit::git(&repo, &["ls-tree", "-r", "--name-only", "main"]);
    for f in FUNCTIONS {
        for path in [format!("lib/{f}.sh"), format!("tests/{f}.sh")] {
            assert!(
                files.lines().any(|l| l == path),
                "{path} missing on main:\n{files}"
            );
        }
    }
    let readme = cco_testkit::git(&repo, &["show", "main:README.md"]);
    assert!(
        readme.contains("`sub A B`") && readme.contains("`mul A B`"),
        "the conflict kept both sides:\n{readme}"
    );
    assert!(!readme.contains("<<<<<<<"), "{readme}");
    // Run the calculator's own tests on a copy of main.
    let check = dir.join("check");
    cco_testkit::git(
        dir,
        &[
            "clone",
            "-q",
            "--branch",
            "main",
            &repo.display().to_string(),
            &check.display().to_string(),
        ],
    );
    let out = Command::new("sh")
        .arg("test.sh")
        .current_dir(&check)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sh test.sh on main: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_demo_runs_a_team_to_completion_with_a_conflict_and_a_resumed_crash() {
    let tmp = cco_testkit::temp_dir();
    let dir = tmp.path().join("demo");
    let started = Instant::now();
    let out = cco(&["demo", "--dir", dir.to_str().unwrap(), "--plain"])
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        elapsed < Duration::from_secs(60),
        "the demo took {elapsed:?}"
    );
    let dir = dir.canonicalize().unwrap();

    // What the user sees: the events, the summary, the recap and the history of main.
    assert!(
        stdout.contains("started (hierarchy mode) on main"),
        "{stdout}"
    );
    assert!(stdout.contains("director: planned 2 item(s)"), "{stdout}");
    assert!(stdout.contains("conflict merging"), "{stdout}");
    assert!(stdout.contains("claude exited: crashed"), "{stdout}");
    assert!(stdout.contains("(resumed session)"), "{stdout}");
    assert!(stdout.contains("run finished: complete"), "{stdout}");
    assert!(stdout.contains("tasks done 6 / failed 0"), "{stdout}");
    assert!(
        stdout.contains("1 crashed claude process(es), 1 resumed in the same session"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Merge cco/arithmetic/team") && stdout.contains("Merge cco/helpers/team"),
        "git log of main:\n{stdout}"
    );

    // The run's own record.
    let summary = summary_of(&dir);
    assert_eq!(summary["completed"], true, "{summary:#}");
    assert!(
        summary["totals"]["conflicts"].as_u64().unwrap() >= 1,
        "{summary:#}"
    );
    let tasks = summary["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 6, "{summary:#}");
    assert!(tasks.iter().all(|t| t["state"] == "done"), "{summary:#}");
    let pow = tasks.iter().find(|t| t["id"] == "pow").unwrap();
    assert!(
        pow["attempts"].as_u64().unwrap() >= 2,
        "pow crashed once and was resumed: {pow:#}"
    );
    let workers: std::collections::BTreeSet<&str> =
        tasks.iter().filter_map(|t| t["worker"].as_str()).collect();
    assert_eq!(workers.len(), 6, "six workers, one task each: {workers:?}");

    // The "look around" commands name a binary that exists from where the demo was run.
    let status_line = stdout
        .lines()
        .find(|l| l.contains(" status --config "))
        .unwrap_or_else(|| panic!("no status command in the recap:\n{stdout}"));
    let binary = status_line.split_whitespace().next().unwrap();
    assert!(
        binary == "cco" || Path::new(binary).is_file(),
        "{binary} does not exist: {status_line}"
    );
    let rerun = Command::new(binary)
        .args(["status", "--config"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(rerun.status.success(), "{status_line}");

    assert_result_on_main(&dir);
    let left = fake_claude_processes(&dir);
    assert!(
        left.is_empty(),
        "fake claude processes left behind: {left:?}"
    );
}

#[test]
fn setup_only_then_cco_start_runs_the_same_demo() {
    let tmp = cco_testkit::temp_dir();
    let dir = tmp.path().join("demo");
    let dir_arg = dir.to_str().unwrap();
    // Without the generated files, `cco start` says what to do.
    std::fs::create_dir_all(&dir).unwrap();
    let example = cco_testkit::workspace_root().join("config-examples/demo/orchestrator.json");
    std::fs::copy(&example, dir.join("orchestrator.json")).unwrap();
    let out = cco(&["start", "--config", dir_arg, "--plain"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cco demo --dir") && stderr.contains("--setup-only"),
        "{stderr}"
    );

    let out = cco(&["demo", "--dir", dir_arg, "--setup-only"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("cco start --config"), "{stdout}");
    assert!(!dir.join("logs").exists(), "setup only: no run");

    let out = cco(&["start", "--config", dir_arg, "--plain"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("run finished: complete") && stdout.contains("tasks done 6 / failed 0"),
        "{stdout}"
    );
    let dir = dir.canonicalize().unwrap();
    assert_result_on_main(&dir);

    // A second setup cleans the first run away; a folder the demo did not make is refused.
    let out = cco(&["demo", "--dir", dir_arg, "--setup-only"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!dir.join("workspace").exists() && !dir.join("logs").exists());
    let other = tmp.path().join("other");
    std::fs::create_dir_all(other.join("workspace")).unwrap();
    let out = cco(&["demo", "--dir", other.to_str().unwrap(), "--setup-only"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("was not made by `cco demo`"), "{stderr}");
    assert!(fake_claude_processes(&dir).is_empty());
}

#[test]
fn cco_doubles_as_the_fake_claude() {
    let out = cco(&["__fake-claude", "--version"]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("(Claude Code)"), "{stdout}");
    // Without a script it answers "ok", in the real CLI's stream-json shape.
    let tmp = cco_testkit::temp_dir();
    let out = cco(&[
        "__fake-claude",
        "-p",
        "hello",
        "--output-format",
        "stream-json",
        "--verbose",
    ])
    .env("CLAUDE_CONFIG_DIR", tmp.path())
    .env_remove("CLAUDECODE")
    .current_dir(tmp.path())
    .output()
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "result");
    assert_eq!(last["result"], "ok");
}
