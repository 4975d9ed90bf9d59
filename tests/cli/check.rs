//! `cco check`: a summary for people, JSON for machines, never a secret or a Debug dump; colour
//! only where it belongs; the demo hint; the README's and the original tool's examples pass.

use serde_json::{json, Value};

use crate::harness::*;

const KEY: &str = "sk-ant-api03-CHECKSECRETvalue0123456789";
const TOKEN: &str = "gw-token-CHECKSECRET-987654321";

/// A project whose config has keys, env and an original key; returns it.
fn project_with_keys() -> CliProject {
    let project = CliProject::new(
        json!({"workerCount": 2, "authMode": "api-keys-first", "workspaceDir": "./ws",
               "env": {"HTTPS_PROXY": "http://u:CHECKSECRET-proxy@proxy:3128"}}),
        simple_script(&["t1"], None),
    );
    std::fs::write(
        project.config_dir.join("api-keys.json"),
        json!([KEY, {"name": "gateway", "env": {"ANTHROPIC_AUTH_TOKEN": TOKEN, "ANTHROPIC_BASE_URL": "https://gw.example"}}])
            .to_string(),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        project.config_dir.join("api-keys.json"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    project
}

#[test]
fn check_prints_a_readable_summary_ending_in_config_ok_without_secrets() {
    let project = project_with_keys();
    let out = project.cco(&["check"]).output().unwrap();
    let (stdout, _) = assert_success(&out);
    let stderr = project.stderr();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.last(), Some(&"config OK"), "{stdout}");
    let row = |label: &str| -> &str {
        lines
            .iter()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label} row:\n{stdout}"))
    };
    assert!(row("config").ends_with("orchestrator.json"), "{stdout}");
    assert!(row("branch").ends_with("main"));
    assert!(
        row("mode").contains("flat: one Coordinator leads 2 workers"),
        "{stdout}"
    );
    assert!(row("models").contains("coordinator opus, workers sonnet"));
    let auth = row("auth");
    for part in [
        "api-keys-first: 2 keys",
        "api-key-1 (ANTHROPIC_API_KEY)",
        "gateway (ANTHROPIC_AUTH_TOKEN, ANTHROPIC_BASE_URL)",
        "while every key is rate limited, the claude CLI's login",
        "then the keys again at their reset",
    ] {
        assert!(auth.contains(part), "{part} missing: {auth}");
    }
    assert!(row("agent env").contains("HTTPS_PROXY (values hidden)"));
    assert!(row("workspace").ends_with("/config/ws"), "{stdout}");
    assert!(row("limits").contains("run 120 min"));
    assert!(
        row("claude").contains("(2.1.331 (Claude Code))"),
        "{stdout}"
    );
    assert!(
        stdout.contains("workspaceDir -> workspaceDirectory:"),
        "{stdout}"
    );
    let all = format!("{stdout}{stderr}");
    assert!(!all.contains("CHECKSECRET"), "a secret leaked:\n{all}");
    assert!(
        !all.contains("Config {") && !all.contains("Some(") && !all.contains('\x1b'),
        "Debug text or colour in a pipe:\n{all}"
    );
}

#[test]
fn check_json_is_one_object_for_machines() {
    let project = project_with_keys();
    let out = project.cco(&["check", "--json"]).output().unwrap();
    let (stdout, _) = assert_success(&out);
    assert!(!stdout.contains("CHECKSECRET"), "{stdout}");
    let value: Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(value["ok"], true);
    assert_eq!(value["mode"], "flat");
    assert_eq!(value["apiKeys"][1]["name"], "gateway");
    assert_eq!(value["apiKeys"][0]["form"], "apiKey");
    assert_eq!(value["config"]["workerCount"], 2);
    assert_eq!(value["claudeVersion"], "2.1.331 (Claude Code)");
    assert_eq!(value["originalKeys"][0]["key"], "workspaceDir");
    assert!(value["configFile"]
        .as_str()
        .unwrap()
        .ends_with("orchestrator.json"));
}

#[test]
fn colour_only_when_forced_or_on_a_terminal_and_never_with_no_color() {
    let project = CliProject::new(json!({"workerCount": 1}), simple_script(&["t1"], None));
    let forced = project
        .cco(&["check"])
        .env("CLICOLOR_FORCE", "1")
        .output()
        .unwrap();
    let (stdout, _) = assert_success(&forced);
    assert!(stdout.contains("\x1b["), "CLICOLOR_FORCE: {stdout:?}");
    let vetoed = project
        .cco(&["check"])
        .env("CLICOLOR_FORCE", "1")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let (stdout, _) = assert_success(&vetoed);
    assert!(!stdout.contains('\x1b'), "NO_COLOR: {stdout:?}");

    // Tracing output into a file (a run's stderr here): plain text, INFO only with -v.
    let out = project.cco(&["start", "--plain", "-v"]).output().unwrap();
    assert_success(&out);
    let stderr = project.stderr();
    assert!(stderr.contains("INFO"), "-v shows INFO lines:\n{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "ANSI codes in a file:\n{stderr:?}"
    );
}

#[test]
fn the_default_stderr_shows_no_info_lines() {
    let project = CliProject::new(json!({"workerCount": 1}), simple_script(&["t1"], None));
    let out = project.cco(&["start", "--plain"]).output().unwrap();
    assert_success(&out);
    let stderr = project.stderr();
    assert!(!stderr.contains(" INFO "), "{stderr}");
    assert!(
        stderr.contains("cco: run "),
        "cco's own progress line:\n{stderr}"
    );
}

#[test]
fn check_on_the_unprepared_demo_config_says_how_to_prepare_it() {
    let dir = cco_testkit::temp_dir();
    let demo = dir.path().join("demo");
    std::fs::create_dir_all(&demo).unwrap();
    std::fs::copy(
        cco_testkit::workspace_root().join("config-examples/demo/orchestrator.json"),
        demo.join("orchestrator.json"),
    )
    .unwrap();
    let sandbox = Sandbox::new(&json!({"rules": []}));
    for command in ["check", "start"] {
        let out = sandbox
            .cco(dir.path(), &[command, "--config", "demo"])
            .output()
            .unwrap();
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("demo --dir demo --setup-only"),
            "{command}: {stderr}"
        );
    }
}

/// The ```json blocks of a markdown file that are orchestrator.json examples.
fn config_examples(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        match &mut block {
            None if trimmed.starts_with("```json") => block = Some(String::new()),
            Some(text) if trimmed.starts_with("```") => {
                if text.contains("\"repositoryUrl\"") {
                    out.push(text.clone());
                }
                block = None;
            }
            Some(text) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    out
}

/// `cco check` passes on `text` as orchestrator.json (claude found on the sandbox's PATH).
fn check_passes(sandbox: &Sandbox, name: &str, text: &str) -> String {
    let dir = sandbox.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("orchestrator.json"), text).unwrap();
    let out = sandbox
        .cco(
            sandbox.path(),
            &["check", "--config", dir.to_str().unwrap()],
        )
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert!(
        out.status.success() && stdout.ends_with("config OK\n"),
        "{name}:\n{text}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

#[test]
fn check_passes_on_every_readme_example_and_the_original_tools_example() {
    let sandbox = Sandbox::new(&json!({"rules": []}));
    let root = cco_testkit::workspace_root();
    let mut checked = 0;
    for doc in ["README.md", "docs/configuration.md", "docs/migrating.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for (i, example) in config_examples(&text).iter().enumerate() {
            check_passes(&sandbox, &format!("{}-{i}", doc.replace('/', "-")), example);
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} examples found");
    // Every shipped example directory (but the demo, which `cco demo --setup-only` prepares),
    // with its api-keys.json.example as api-keys.json.
    for entry in std::fs::read_dir(root.join("config-examples")).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if name == "demo" {
            continue;
        }
        let keys = dir.join("api-keys.json.example");
        if keys.is_file() {
            let target = sandbox.path().join(format!("example-{name}"));
            std::fs::create_dir_all(&target).unwrap();
            let dest = target.join("api-keys.json");
            std::fs::copy(&keys, &dest).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let text = std::fs::read_to_string(dir.join("orchestrator.json")).unwrap();
        let stdout = check_passes(&sandbox, &format!("example-{name}"), &text);
        if keys.is_file() {
            assert!(stdout.contains("(ANTHROPIC_API_KEY)"), "{name}: {stdout}");
        }
    }
    // The original package's e2e/orchestrator.json, verbatim.
    let original = r#"{"repositoryUrl": "git@github.com:mohsen1/claude-code-orchestrator-e2e-test.git", "branch": "main",
 "model": "haiku", "workerCount": 2, "cloneDepth": 100, "maxRunDurationMinutes": 5,
 "authMode": "api-keys-first", "workspaceDir": "./e2e/workspace", "useRunBranch": true}"#;
    let stdout = check_passes(&sandbox, "original", original);
    for part in [
        "coordinator haiku, workers haiku",
        "cloneDepth -> gitCloneOptions.depth: a shallow clone of depth 100",
        "workspaceDir -> workspaceDirectory:",
        "original/e2e/workspace (resolved against the config directory",
        "run 5 min",
        "into a new run branch",
    ] {
        assert!(stdout.contains(part), "{part} missing:\n{stdout}");
    }
}

#[test]
fn check_says_which_file_was_read() {
    let project = CliProject::new(json!({"workerCount": 1}), simple_script(&["t1"], None));
    let mut config: Value = serde_json::from_str(
        &std::fs::read_to_string(project.config_dir.join("orchestrator.json")).unwrap(),
    )
    .unwrap();
    config["workerCount"] = json!(7);
    let other = project.config_dir.join("staging.json");
    std::fs::write(&other, config.to_string()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cco"))
        .args(["check", "--config"])
        .arg(&other)
        .output()
        .unwrap();
    let (stdout, _) = assert_success(&out);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("config") && l.ends_with("staging.json")),
        "{stdout}"
    );
    assert!(stdout.contains("7 workers"), "{stdout}");
}
