//! `cco init` driven by its flags (no terminal): what it writes, what it detects, how it keeps
//! keys private, and that its output passes `cco check`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use serde_json::{json, Value};

use crate::harness::*;

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The keys of `orchestrator.json`, comment aside, sorted.
fn keys_of(config: &Value) -> Vec<String> {
    let mut keys: Vec<String> = config
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "$comment")
        .cloned()
        .collect();
    keys.sort();
    keys
}

#[test]
fn init_with_flags_writes_only_the_choices_that_differ_and_passes_check() {
    let sandbox = Sandbox::new(&json!({"rules": []}));
    let repo = sandbox.repo("app", Some("git@github.com:me/app.git"), &[]);
    let out = sandbox
        .cco(
            &repo,
            &[
                "init",
                "../run",
                "--yes",
                "--workers",
                "6",
                "--budget",
                "12.5",
                "--duration",
                "45",
                "--verify",
                "make check",
            ],
        )
        .output()
        .unwrap();
    let (stdout, stderr) = assert_success(&out);
    let config = read_json(&sandbox.path().join("run/orchestrator.json"));
    assert_eq!(
        keys_of(&config),
        [
            "maxBudgetUsd",
            "maxRunDurationMinutes",
            "repositoryUrl",
            "verifyCommand",
            "workerCount"
        ],
        "{config:#}"
    );
    assert_eq!(config["repositoryUrl"], "git@github.com:me/app.git");
    assert_eq!(config["workerCount"], 6);
    assert_eq!(config["maxBudgetUsd"], 12.5);
    assert_eq!(config["verifyCommand"], "make check");
    let comment = config["$comment"].to_string();
    assert!(comment.contains("2 Engineering Managers"), "{comment}");
    // The same validation as `cco check`, its summary, then the next command.
    assert!(stdout.contains("config OK"), "{stdout}");
    assert!(
        stdout.contains("hierarchy: a Director, 2 Engineering Managers and 6 workers"),
        "{stdout}"
    );
    assert!(
        stdout.trim_end().ends_with("start --config ../run"),
        "{stdout}"
    );
    assert!(!stdout.contains('\x1b') && !stderr.contains('\x1b'));
    let check = sandbox
        .cco(&repo, &["check", "--config", "../run"])
        .output()
        .unwrap();
    assert_success(&check);
}

#[test]
fn init_defaults_come_from_the_repository_in_the_current_directory() {
    let sandbox = Sandbox::new(&json!({"rules": []}));
    let repo = sandbox.repo(
        "shop",
        Some("https://example.com/org/shop.git"),
        &[("package.json", r#"{"scripts": {"test": "jest"}}"#)],
    );
    cco_testkit::git(&repo, &["checkout", "-q", "-b", "trunk"]);
    let sub = repo.join("src");
    std::fs::create_dir_all(&sub).unwrap();
    let out = sandbox.cco(&sub, &["init", "--yes"]).output().unwrap();
    let (stdout, _) = assert_success(&out);
    // Beside the checkout, not inside it.
    let dir = sandbox.path().join("shop-cco");
    let config = read_json(&dir.join("orchestrator.json"));
    assert_eq!(config["repositoryUrl"], "https://example.com/org/shop.git");
    assert_eq!(config["branch"], "trunk");
    assert_eq!(config["workerCount"], 3);
    assert_eq!(config["verifyCommand"], "npm test");
    assert!(config.get("authMode").is_none(), "oauth is the default");
    assert!(stdout.contains("config OK"), "{stdout}");

    // Without an origin the checkout itself is the repository (an absolute path).
    let local = sandbox.repo("tool", None, &[("Cargo.toml", "[package]\n")]);
    let out = sandbox
        .cco(&local, &["init", "../tool-run", "--yes"])
        .output()
        .unwrap();
    assert_success(&out);
    let config = read_json(&sandbox.path().join("tool-run/orchestrator.json"));
    assert_eq!(
        config["repositoryUrl"],
        local.canonicalize().unwrap().display().to_string()
    );
    assert_eq!(config["verifyCommand"], "cargo test");
    assert!(config.get("branch").is_none(), "main is the default");
}

#[test]
fn init_writes_api_keys_with_mode_0600_and_never_prints_them() {
    const KEY1: &str = "sk-ant-api03-INITSECRET-one-0123456789";
    const KEY2: &str = "sk-ant-api03-INITSECRET-two-0123456789";
    let sandbox = Sandbox::new(&json!({"rules": []}));
    let repo = sandbox.repo("app", Some("git@github.com:me/app.git"), &[]);
    let keys = sandbox.path().join("keys.txt");
    std::fs::write(&keys, format!("# our keys\n{KEY1}\n\n{KEY2}\n")).unwrap();
    let out = sandbox
        .cco(
            &repo,
            &[
                "init",
                "../run",
                "--yes",
                "--auth",
                "api-keys-only",
                "--api-key-file",
                keys.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
    let (stdout, stderr) = assert_success(&out);
    let path = sandbox.path().join("run/api-keys.json");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let written = read_json(&path);
    assert_eq!(written[0]["name"], "key-1");
    assert_eq!(written[1]["apiKey"], KEY2);
    let config = read_json(&sandbox.path().join("run/orchestrator.json"));
    assert_eq!(config["authMode"], "api-keys-only");
    assert!(
        stdout.contains("api-keys-only: 2 keys") && stdout.contains("key-2 (ANTHROPIC_API_KEY)"),
        "{stdout}"
    );
    assert!(
        !format!("{stdout}{stderr}").contains("INITSECRET"),
        "a key was printed:\n{stdout}\n{stderr}"
    );

    // From standard input, and from ANTHROPIC_API_KEY with --yes.
    let mut child = sandbox
        .cco(
            &repo,
            &[
                "init",
                "../run2",
                "--yes",
                "--auth",
                "api-keys-first",
                "--api-key-file",
                "-",
            ],
        )
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{KEY1}\n").as_bytes())
        .unwrap();
    assert_success(&child.wait_with_output().unwrap());
    assert_eq!(
        read_json(&sandbox.path().join("run2/api-keys.json"))[0]["apiKey"],
        KEY1
    );
    let out = sandbox
        .cco(&repo, &["init", "../run3", "--yes"])
        .env("ANTHROPIC_API_KEY", KEY2)
        .output()
        .unwrap();
    let (stdout, _) = assert_success(&out);
    assert!(!stdout.contains("INITSECRET"));
    // No claude login in this HOME, a key in the environment: api-keys-only by default.
    let config = read_json(&sandbox.path().join("run3/orchestrator.json"));
    assert_eq!(config["authMode"], "api-keys-only");
    assert_eq!(
        read_json(&sandbox.path().join("run3/api-keys.json"))[0]["apiKey"],
        KEY2
    );
}

#[test]
fn init_without_a_terminal_needs_flags_or_yes_and_keeps_existing_files() {
    let sandbox = Sandbox::new(&json!({"rules": []}));
    let repo = sandbox.repo("app", Some("git@github.com:me/app.git"), &[]);
    let out = sandbox.cco(&repo, &["init", "../run"]).output().unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no terminal to ask on: pass --repo (or --yes to take the defaults)"),
        "{stderr}"
    );
    assert!(!sandbox.path().join("run").exists(), "nothing written");

    assert_success(
        &sandbox
            .cco(&repo, &["init", "../run", "--yes"])
            .output()
            .unwrap(),
    );
    let again = sandbox
        .cco(&repo, &["init", "../run", "--yes", "--workers", "9"])
        .output()
        .unwrap();
    let (_, stderr) = texts(&again);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr.contains("exists; pass --force"), "{stderr}");
    assert_eq!(
        read_json(&sandbox.path().join("run/orchestrator.json"))["workerCount"],
        3
    );
    let forced = sandbox
        .cco(
            &repo,
            &["init", "../run", "--yes", "--workers", "9", "--force"],
        )
        .output()
        .unwrap();
    assert_success(&forced);
    assert_eq!(
        read_json(&sandbox.path().join("run/orchestrator.json"))["workerCount"],
        9
    );
}

#[test]
fn init_rejects_bad_answers_with_the_configs_own_messages() {
    let sandbox = Sandbox::new(&json!({"rules": []}));
    let plain = sandbox.path().join("not-a-repo");
    std::fs::create_dir_all(&plain).unwrap();
    for (args, expected) in [
        (
            vec!["--repo", "ftp://host/x"],
            "unsupported URL scheme \"ftp\"",
        ),
        (
            vec!["--repo", "not-a-repo"],
            "not-a-repo: not a git repository",
        ),
        (
            vec!["--repo", "git@h:x.git", "--branch", "a b"],
            "it contains whitespace",
        ),
        (
            vec!["--repo", "git@h:x.git", "--auth", "api-keys-only"],
            "the api-keys modes need keys",
        ),
        (vec!["--repo", "git@h:x.git", "--workers", "0"], "0"),
    ] {
        let mut all = vec!["init", "run", "--yes"];
        all.extend(args.iter().copied());
        let out = sandbox.cco(sandbox.path(), &all).output().unwrap();
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {stderr}");
        assert!(stderr.contains(expected), "{all:?}: {stderr}");
        assert!(!sandbox.path().join("run").exists(), "{all:?} wrote files");
    }
}
