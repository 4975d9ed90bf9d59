//! Behaviour of a valid configuration: defaults, repository forms, api keys, redaction, team
//! layout, claude binary resolution, the shipped examples, and robustness on any input.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cco_config::{
    load, parse_api_keys, resolve_claude_binary, ApiKey, AuthMode, Config, KeyAuth, MergeStrategy,
    PermissionMode, Redactor, RepositoryLocation, Secret,
};

const SRC: &str = "/cfg/orchestrator.json";

fn parse(json: &str) -> Config {
    Config::from_json_str(json, Path::new(SRC)).unwrap_or_else(|e| panic!("{e}"))
}

fn minimal(workers: usize) -> String {
    format!(r#"{{"repositoryUrl": "https://example.com/r.git", "workerCount": {workers}}}"#)
}

fn fake_binary(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path
}

#[test]
fn defaults() {
    let c = parse(&minimal(2));
    assert_eq!(c.branch, "main");
    assert_eq!(c.git_clone_options, Default::default());
    assert_eq!(c.auth_mode, AuthMode::Oauth);
    assert_eq!(c.log_directory, PathBuf::from("/cfg/logs"));
    assert_eq!(c.workspace_directory, PathBuf::from("/cfg/workspace"));
    assert_eq!(c.engineer_manager_group_size, 4);
    assert_eq!(c.max_run_duration(), Duration::from_secs(120 * 60));
    assert_eq!(c.task_timeout(), Duration::from_millis(600_000));
    assert_eq!(c.idle_timeout(), Duration::from_millis(300_000));
    assert_eq!(c.kill_grace(), Duration::from_millis(5000));
    assert_eq!(c.poll_interval(), Duration::from_millis(5000));
    assert_eq!(
        (
            c.models.director.as_str(),
            c.models.em.as_str(),
            c.models.worker.as_str()
        ),
        ("opus", "sonnet", "sonnet")
    );
    assert_eq!(c.claude_binary, None);
    assert_eq!(
        c.env_files,
        vec![PathBuf::from(".env"), PathBuf::from(".env.local")]
    );
    assert_eq!(c.merge_strategy, MergeStrategy::Agent);
    assert_eq!(c.max_budget_usd, None);
    assert!(!c.use_run_branch);
    assert_eq!(c.verify_command, None);
    assert_eq!(c.project_direction, None);
    assert_eq!(c.max_task_restarts, 3);
    assert_eq!(c.restart_backoff(), Duration::from_millis(1000));
    assert_eq!(c.max_plan_retries, 3);
    assert_eq!(c.max_turns, None);
    assert_eq!(c.permission_mode, PermissionMode::BypassPermissions);
    assert_eq!(c.permission_mode.as_str(), "bypassPermissions");
    assert_eq!(c.git_timeout(), Duration::from_millis(120_000));
    assert!(c.push);
    assert_eq!(c.source, PathBuf::from(SRC));
    assert_eq!(c.min_key_bench(), Duration::from_secs(60));
    assert_eq!(c.quota_warning_threshold, 0.9);
    assert_eq!(c.api_retry_backoff(), Duration::from_secs(10));
    assert_eq!(c.max_api_retry_backoff(), Duration::from_secs(300));
    assert_eq!(c.max_api_retries, 50);
    assert_eq!(c.structured_output, cco_config::StructuredOutput::Auto);
    assert_eq!(c.orphan_policy, cco_config::OrphanPolicy::Stop);
}

#[test]
fn agents_under_real_conditions_keys() {
    let c = parse(
        r#"{"repositoryUrl": "/r", "workerCount": 2, "minKeyBenchMs": 5000,
            "quotaWarningThreshold": 0.75, "apiRetryBackoffMs": 2000, "maxApiRetryBackoffMs": 2000,
            "maxApiRetries": 0, "structuredOutput": "off", "orphanPolicy": "continue"}"#,
    );
    assert_eq!(c.min_key_bench(), Duration::from_secs(5));
    assert_eq!(c.quota_warning_threshold, 0.75);
    assert_eq!(c.api_retry_backoff(), Duration::from_secs(2));
    assert_eq!(c.max_api_retry_backoff(), Duration::from_secs(2));
    assert_eq!(c.max_api_retries, 0);
    assert_eq!(c.structured_output, cco_config::StructuredOutput::Off);
    assert_eq!(c.orphan_policy, cco_config::OrphanPolicy::Continue);
}

#[test]
fn every_field_set() {
    let c = parse(
        r#"{
        "repositoryUrl": "git@github.com:o/r.git", "branch": "dev/next",
        "gitCloneOptions": {"depth": 10, "singleBranch": true, "noSubmodules": true},
        "workerCount": 9, "authMode": "api-keys-first", "logDirectory": "/var/log/cco",
        "workspaceDirectory": "./ws", "engineerManagerGroupSize": 3, "maxRunDurationMinutes": 5,
        "taskTimeoutMs": 1000, "idleTimeoutMs": 2000, "killGraceMs": 0, "pollIntervalMs": 10,
        "models": {"worker": "haiku"}, "claudeBinary": "bin/claude", "envFiles": [],
        "mergeStrategy": "union", "maxBudgetUsd": 2.5, "useRunBranch": true,
        "verifyCommand": "make check", "projectDirection": "Build it.", "maxTaskRestarts": 0,
        "restartBackoffMs": 250, "maxPlanRetries": 1, "maxTurns": 40,
        "permissionMode": "acceptEdits", "gitTimeoutMs": 5000, "push": false,
        "maxTurns": 41
    }"#,
    );
    assert_eq!(c.git_clone_options.depth, Some(10));
    assert!(c.git_clone_options.single_branch && c.git_clone_options.no_submodules);
    assert_eq!(c.log_directory, PathBuf::from("/var/log/cco"));
    assert_eq!(c.workspace_directory, PathBuf::from("/cfg/ws"));
    assert_eq!(c.models.director, "opus");
    assert_eq!(c.models.worker, "haiku");
    assert_eq!(c.claude_binary, Some(PathBuf::from("bin/claude")));
    assert!(c.env_files.is_empty());
    assert_eq!(c.merge_strategy, MergeStrategy::Union);
    assert_eq!(c.max_budget_usd, Some(2.5));
    assert_eq!(c.max_turns, Some(41));
    assert_eq!(c.permission_mode.as_str(), "acceptEdits");
    assert_eq!(c.restart_delay(2), Duration::from_millis(1000));
    assert!(!c.push);
    // Serializes with the JSON names, for `cco config show`-style output.
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["workerCount"], 9);
    assert_eq!(json["authMode"], "api-keys-first");
    assert_eq!(json["permissionMode"], "acceptEdits");
}

#[test]
fn nulls_mean_absent_for_optional_fields() {
    let c = parse(
        r#"{"repositoryUrl": "/r", "workerCount": 1, "maxBudgetUsd": null, "maxTurns": null,
            "claudeBinary": null, "verifyCommand": null, "gitCloneOptions": {"depth": null}}"#,
    );
    assert_eq!(
        (c.max_budget_usd, c.max_turns, c.git_clone_options.depth),
        (None, None, None)
    );
}

#[test]
fn repository_url_forms() {
    let repo = |url: &str| {
        parse(&format!(
            r#"{{"repositoryUrl": "{url}", "workerCount": 1}}"#
        ))
        .repository()
        .clone()
    };
    let remote = |s: &str| RepositoryLocation::Remote(s.to_string());
    let local = |s: &str| RepositoryLocation::LocalPath(PathBuf::from(s));
    assert_eq!(
        repo("https://github.com/o/r.git"),
        remote("https://github.com/o/r.git")
    );
    assert_eq!(repo("http://git.local/r"), remote("http://git.local/r"));
    assert_eq!(
        repo("ssh://git@host:2222/o/r.git"),
        remote("ssh://git@host:2222/o/r.git")
    );
    assert_eq!(
        repo("git@github.com:o/r.git"),
        remote("git@github.com:o/r.git")
    );
    assert_eq!(repo("file:///srv/git/r"), local("/srv/git/r"));
    assert_eq!(repo("./demo-repo"), local("/cfg/demo-repo"));
    assert_eq!(repo("../other"), local("/cfg/../other"));
    assert_eq!(repo("/abs/r"), local("/abs/r"));
}

#[test]
fn api_keys_forms() {
    let keys = parse_api_keys(
        r#"[{"name": "main", "apiKey": "sk-ant-api03-abcdefgh"},
            {"name": "proxy", "env": {"ANTHROPIC_AUTH_TOKEN": "tok-12345678", "ANTHROPIC_BASE_URL": "https://gw.example"}}]"#,
        Path::new("/cfg/api-keys.json"),
    )
    .unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].name, "main");
    assert!(matches!(&keys[0].auth, KeyAuth::ApiKey(s) if s.expose() == "sk-ant-api03-abcdefgh"));
    assert_eq!(
        keys[0].env_vars(),
        vec![(
            "ANTHROPIC_API_KEY".to_string(),
            "sk-ant-api03-abcdefgh".to_string()
        )]
    );
    assert_eq!(
        keys[1].env_vars(),
        vec![
            (
                "ANTHROPIC_AUTH_TOKEN".to_string(),
                "tok-12345678".to_string()
            ),
            (
                "ANTHROPIC_BASE_URL".to_string(),
                "https://gw.example".to_string()
            ),
        ]
    );
    assert!(parse_api_keys("[]", Path::new("/k")).unwrap().is_empty());
}

#[test]
fn secrets_are_redacted_in_debug_display_and_serialize() {
    let s = Secret::new("sk-ant-api03-hidden-value");
    assert_eq!(format!("{s:?}"), "[REDACTED]");
    assert_eq!(s.to_string(), "[REDACTED]");
    let key = ApiKey {
        name: "k".into(),
        auth: KeyAuth::ApiKey(s.clone()),
        env_overrides: Default::default(),
    };
    assert!(!format!("{key:?}").contains("hidden"));
    assert!(!serde_json::to_string(&key).unwrap().contains("hidden"));
}

#[test]
fn loaded_config_debug_has_no_secrets_and_redactor_knows_them() {
    let dir = tempfile::tempdir().unwrap();
    fake_binary(dir.path(), "claude");
    std::fs::write(
        dir.path().join("orchestrator.json"),
        r#"{"repositoryUrl": "./repo", "workerCount": 2, "authMode": "api-keys-only", "claudeBinary": "claude"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("api-keys.json"),
        r#"[{"name": "one", "apiKey": "sk-ant-api03-SECRETONE"}, {"name": "gw", "env": {"ANTHROPIC_AUTH_TOKEN": "SECRETTWO-token"}}]"#,
    )
    .unwrap();
    let loaded = load(dir.path()).unwrap();
    let debug = format!("{loaded:?} {loaded:#?}");
    assert!(
        !debug.contains("SECRETONE") && !debug.contains("SECRETTWO"),
        "{debug}"
    );
    assert_eq!(loaded.api_keys.len(), 2);

    let r = loaded.redactor();
    assert_eq!(
        r.redact("a sk-ant-api03-SECRETONE b SECRETTWO-token c sk-ant-other_KEY-1 d"),
        "a [REDACTED:one] b [REDACTED:gw] c [REDACTED] d"
    );
    let r2 = Redactor::from_keys(&loaded.api_keys);
    assert_eq!(r2.len(), 2);
}

#[cfg(unix)]
#[test]
fn world_readable_api_keys_gives_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let bin = fake_binary(dir.path(), "claude");
    std::fs::write(
        dir.path().join("orchestrator.json"),
        format!(r#"{{"repositoryUrl": "/r", "workerCount": 1, "authMode": "api-keys-first", "claudeBinary": "{}"}}"#, bin.display()),
    )
    .unwrap();
    let keys = dir.path().join("api-keys.json");
    std::fs::write(&keys, r#"[{"name": "a", "apiKey": "sk-ant-zzzzzzzzzz"}]"#).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loaded = load(dir.path()).unwrap();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(
        loaded.warnings[0].contains("api-keys.json") && loaded.warnings[0].contains("chmod 600")
    );
    assert!(!loaded.warnings[0].contains("zzzz"));

    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(load(dir.path()).unwrap().warnings.is_empty());
}

#[test]
fn flat_and_hierarchy_team_counts() {
    let teams = |workers: usize, group: usize| {
        let c = parse(&format!(
            r#"{{"repositoryUrl": "/r", "workerCount": {workers}, "engineerManagerGroupSize": {group}}}"#
        ));
        (c.is_flat(), c.team_count())
    };
    assert_eq!(teams(1, 4), (true, 1));
    assert_eq!(teams(4, 4), (true, 1));
    assert_eq!(teams(5, 4), (false, 2));
    assert_eq!(teams(16, 4), (false, 4));
    assert_eq!(teams(17, 4), (false, 5));
    assert_eq!(teams(100, 1), (false, 100));
    assert_eq!(teams(3, 100), (true, 1));
}

#[test]
fn claude_binary_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("orchestrator.json");
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    let in_bin = fake_binary(&dir.path().join("bin"), "my-claude");
    let with_binary = |spec: Option<&str>| {
        let extra = spec
            .map(|s| format!(r#", "claudeBinary": "{s}""#))
            .unwrap_or_default();
        Config::from_json_str(
            &format!(r#"{{"repositoryUrl": "/r", "workerCount": 1{extra}}}"#),
            &source,
        )
        .unwrap()
    };
    let bin_dir = dir.path().join("bin");
    let path_var = bin_dir.as_os_str();

    // A relative path is resolved against the config dir.
    assert_eq!(
        resolve_claude_binary(&with_binary(Some("./bin/my-claude")), None).unwrap(),
        in_bin
    );
    assert_eq!(
        resolve_claude_binary(&with_binary(Some("bin/my-claude")), None).unwrap(),
        in_bin
    );
    // An absolute path is used as is.
    assert_eq!(
        resolve_claude_binary(&with_binary(Some(&in_bin.display().to_string())), None).unwrap(),
        in_bin
    );
    // A bare name: the config dir first, then PATH.
    assert_eq!(
        resolve_claude_binary(&with_binary(Some("my-claude")), Some(path_var)).unwrap(),
        in_bin
    );
    let local = fake_binary(dir.path(), "my-claude");
    assert_eq!(
        resolve_claude_binary(&with_binary(Some("my-claude")), Some(path_var)).unwrap(),
        local
    );
    // No claudeBinary: `claude` on PATH.
    let default = fake_binary(&bin_dir, "claude");
    assert_eq!(
        resolve_claude_binary(&with_binary(None), Some(path_var)).unwrap(),
        default
    );
    let err = resolve_claude_binary(&with_binary(None), None).unwrap_err();
    assert!(
        err.to_string()
            .contains(r#""claude" on PATH (PATH is not set)"#),
        "{err}"
    );
    // A directory is not a binary.
    let err = resolve_claude_binary(&with_binary(Some("./bin")), None).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[test]
fn load_resolves_everything_against_the_config_dir() {
    let dir = tempfile::tempdir().unwrap();
    fake_binary(dir.path(), "fake-claude");
    std::fs::write(
        dir.path().join("orchestrator.json"),
        r#"{"repositoryUrl": "./demo-repo", "workerCount": 4, "claudeBinary": "./fake-claude"}"#,
    )
    .unwrap();
    let loaded = load(dir.path()).unwrap();
    let root = std::path::absolute(dir.path()).unwrap();
    assert_eq!(loaded.dir, root);
    assert_eq!(loaded.claude_binary, root.join("fake-claude"));
    assert_eq!(
        loaded.config.repository(),
        &RepositoryLocation::LocalPath(root.join("demo-repo"))
    );
    assert_eq!(loaded.config.log_directory, root.join("logs"));
    assert!(loaded.api_keys.is_empty());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config-examples")
}

#[test]
fn shipped_examples_parse() {
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let dir = entry.unwrap().path();
        let file = dir.join("orchestrator.json");
        if !file.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let config = Config::from_json_str(&text, &file).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            dir.join("README.md").is_file(),
            "{} has no README.md",
            dir.display()
        );
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        match name.as_str() {
            "demo" => {
                // Hierarchy: the demo shows a Director, 2 EMs and 6 workers.
                assert_eq!((config.worker_count, config.team_count()), (6, 2));
                assert!(
                    matches!(config.repository(), RepositoryLocation::LocalPath(p) if p.ends_with("demo/demo-repo"))
                );
            }
            "flat-small" => assert!(config.is_flat() && config.worker_count == 3),
            "hierarchy-large" => assert_eq!((config.worker_count, config.team_count()), (16, 4)),
            "original-tool" => {
                // The original's keys, read with their meaning.
                assert_eq!((config.worker_count, config.team_count()), (6, 2));
                assert_eq!(config.models.em, "sonnet");
                assert_eq!(config.git_clone_options.depth, Some(100));
                assert_eq!(config.merge_strategy, MergeStrategy::Agent);
                assert_eq!(config.poll_interval(), Duration::from_millis(5000));
                assert!(
                    config.original_keys.len() >= 5,
                    "{:?}",
                    config.original_keys
                );
                let example = dir.join("api-keys.json.example");
                let keys = parse_api_keys(&std::fs::read_to_string(&example).unwrap(), &example)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(keys[0].name, "api-key-1");
                assert_eq!(keys.len(), 3);
            }
            "api-keys" => {
                assert_eq!(config.auth_mode, AuthMode::ApiKeysFirst);
                let example = dir.join("api-keys.json.example");
                let keys = parse_api_keys(&std::fs::read_to_string(&example).unwrap(), &example)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(keys.len(), 2);
            }
            _ => {}
        }
        seen.push(name);
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "api-keys",
            "demo",
            "flat-small",
            "hierarchy-large",
            "original-tool"
        ]
    );
}

/// Every field with every kind of JSON value, and every prefix of a valid document: errors,
/// never panics.
#[test]
fn never_panics() {
    let values = [
        "null",
        "true",
        "false",
        "0",
        "-1",
        "1",
        "2.5",
        "1e400",
        "-0",
        "18446744073709551616",
        "4294967296",
        "\"\"",
        "\" \"",
        "\"x\"",
        "\"-x\"",
        "\"..\"",
        "\"/\"",
        "\"\\u0000\"",
        "\"sk-ant-x\"",
        "[]",
        "[1]",
        "[\"\"]",
        "{}",
        "{\"a\":1}",
    ];
    // Every cco key, and the original tool's keys cco reads.
    let original = [
        "groupSize",
        "workspaceDir",
        "cloneDepth",
        "timingBaseMs",
        "stuckThresholdMs",
        "serverPort",
        "$comment",
    ];
    let keys: Vec<&str> = cco_config::TOP_KEYS
        .iter()
        .chain(&original)
        .copied()
        .collect();
    for key in keys {
        for v in values {
            let doc = format!(r#"{{"repositoryUrl": "/r", "workerCount": 1, "{key}": {v}}}"#);
            let _ = Config::from_json_str(&doc, Path::new(SRC));
            for nested in ["gitCloneOptions", "models"] {
                let doc = format!(
                    r#"{{"repositoryUrl": "/r", "workerCount": 1, "{nested}": {{"{key}": {v}, "depth": {v}, "em": {v}}}}}"#
                );
                let _ = Config::from_json_str(&doc, Path::new(SRC));
            }
        }
    }
    for v in values {
        for doc in [
            format!("[{v}]"),
            format!(r#"[{{"name": {v}, "apiKey": {v}}}]"#),
            format!(r#"[{{"name": "a", "env": {v}}}]"#),
            format!(r#"[{{"name": "a", "env": {{"X": {v}}}}}]"#),
            format!(r#"[{{"apiKey": "k1234567890", "envOverrides": {v}}}]"#),
            format!(r#"[{{"apiKey": {v}, "envOverrides": {{"X": {v}}}}}]"#),
            format!(r#"[{v}, {v}]"#),
        ] {
            let _ = parse_api_keys(&doc, Path::new("/k"));
        }
    }
    let valid =
        std::fs::read_to_string(examples_dir().join("hierarchy-large/orchestrator.json")).unwrap();
    for (i, _) in valid.char_indices() {
        let _ = Config::from_json_str(&valid[..i], Path::new(SRC));
    }
    let _ = Config::from_json_str("", Path::new(""));
    let _ = Config::from_json_str("\u{feff}{}", Path::new("/"));
}
