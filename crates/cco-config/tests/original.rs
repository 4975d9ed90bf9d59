//! Config directories of the original tool (`@mohsen/claude-code-orchestrator` 1.3) load
//! unchanged: every key of its schema and README, with its original meaning and a note, and
//! api-keys.json in every one of its forms.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cco_config::{
    load, load_path, parse_api_keys, AuthMode, Config, ConfigError, KeyAuth, MergeStrategy,
    RepositoryLocation,
};

const SRC: &str = "/cfg/orchestrator.json";
const KEYS: &str = "/cfg/api-keys.json";

fn parse(json: &str) -> Config {
    Config::from_json_str(json, Path::new(SRC)).unwrap_or_else(|e| panic!("{e}"))
}

fn err(json: &str) -> ConfigError {
    match Config::from_json_str(json, Path::new(SRC)) {
        Ok(c) => panic!("expected an error for {json}, got {c:?}"),
        Err(e) => e,
    }
}

fn with(extra: &str) -> String {
    format!(r#"{{"repositoryUrl": "/r", "workerCount": 2, {extra}}}"#)
}

/// The note about `key`, or a panic listing the notes.
fn note<'c>(config: &'c Config, key: &str) -> &'c cco_config::KeyNote {
    config
        .original_keys
        .iter()
        .find(|n| n.key == key)
        .unwrap_or_else(|| panic!("no note for {key}: {:?}", config.original_keys))
}

/// The original package's own example (`e2e/orchestrator.json`), verbatim.
pub const ORIGINAL_E2E: &str = r#"{
  "repositoryUrl": "git@github.com:mohsen1/claude-code-orchestrator-e2e-test.git",
  "branch": "main",
  "model": "haiku",
  "workerCount": 2,
  "cloneDepth": 100,
  "maxRunDurationMinutes": 5,
  "authMode": "api-keys-first",
  "workspaceDir": "./e2e/workspace",
  "useRunBranch": true
}
"#;

#[test]
fn the_original_example_config_loads_with_its_meaning() {
    let c = parse(ORIGINAL_E2E);
    assert_eq!(
        c.repository(),
        &RepositoryLocation::Remote(
            "git@github.com:mohsen1/claude-code-orchestrator-e2e-test.git".into()
        )
    );
    assert_eq!(
        (
            c.models.director.as_str(),
            c.models.em.as_str(),
            c.models.worker.as_str()
        ),
        ("haiku", "haiku", "haiku")
    );
    assert_eq!(c.git_clone_options.depth, Some(100));
    assert_eq!(c.max_run_duration(), Duration::from_secs(300));
    assert_eq!(c.auth_mode, AuthMode::ApiKeysFirst);
    assert_eq!(c.workspace_directory, PathBuf::from("/cfg/e2e/workspace"));
    assert!(c.use_run_branch);
    let ws = note(&c, "workspaceDir");
    assert_eq!(ws.use_instead.as_deref(), Some("workspaceDirectory"));
    assert!(
        ws.note.contains("/cfg/e2e/workspace") && ws.note.contains("current directory"),
        "{ws:?}"
    );
    let depth = note(&c, "cloneDepth");
    assert_eq!(depth.use_instead.as_deref(), Some("gitCloneOptions.depth"));
    assert!(depth.note.contains("depth 100"), "{depth:?}");
    // `model` is a cco key too: no note, and nothing else was noted.
    assert_eq!(c.original_keys.len(), 2, "{:?}", c.original_keys);
}

/// Every key of the original's schema and README at once.
pub const EVERY_ORIGINAL_KEY: &str = r#"{
  "repositoryUrl": "https://github.com/org/repo.git",
  "branch": "main",
  "localRepoPath": "./checkout",
  "workspaceDir": "./ws",
  "logDirectory": "./runs",
  "cloneDepth": 5,
  "useRunBranch": true,
  "workerCount": 6,
  "groupSize": 3,
  "model": "sonnet",
  "authMode": "oauth",
  "taskTimeoutMs": 120000,
  "pollIntervalMs": 2000,
  "timingBaseMs": 30000,
  "stuckThresholdMs": 300000,
  "maxToolUsesPerInstance": 500,
  "maxTotalToolUses": 2000,
  "maxRunDurationMinutes": 30,
  "envFiles": [".env"],
  "env": {"HTTPS_PROXY": "http://proxy.internal:3128", "ANTHROPIC_BASE_URL": "https://gw.internal"},
  "mergeStrategy": "auto-resolve",
  "maxAutoResolveConflicts": 4,
  "serverPort": 3000,
  "hookServerPort": 3000,
  "healthCheckIntervalMs": 30000,
  "rateLimitCheckIntervalMs": 10000,
  "managerHeartbeatIntervalMs": 600000
}"#;

#[test]
fn every_original_key_at_once() {
    let c = parse(EVERY_ORIGINAL_KEY);
    assert_eq!(
        c.repository(),
        &RepositoryLocation::LocalPath("/cfg/checkout".into())
    );
    assert_eq!(c.repository_url, "https://github.com/org/repo.git");
    assert_eq!(c.local_repo_path, Some(PathBuf::from("/cfg/checkout")));
    assert_eq!(c.workspace_directory, PathBuf::from("/cfg/ws"));
    assert_eq!(c.log_directory, PathBuf::from("/cfg/runs"));
    assert_eq!(c.git_clone_options.depth, Some(5));
    assert_eq!((c.worker_count, c.engineer_manager_group_size), (6, 3));
    assert_eq!(c.team_count(), 2);
    assert_eq!(c.models.worker, "sonnet");
    // The direct keys win over the legacy timing keys.
    assert_eq!(c.task_timeout(), Duration::from_millis(120_000));
    assert_eq!(c.poll_interval(), Duration::from_millis(2000));
    assert_eq!(c.max_tool_uses_per_instance, Some(500));
    assert_eq!(c.max_total_tool_uses, Some(2000));
    assert_eq!(c.merge_strategy, MergeStrategy::Agent);
    assert_eq!(c.max_auto_resolve_conflicts, Some(4));
    assert_eq!(
        c.env.keys().map(String::as_str).collect::<Vec<_>>(),
        ["ANTHROPIC_BASE_URL", "HTTPS_PROXY"]
    );
    assert_eq!(c.env["HTTPS_PROXY"].expose(), "http://proxy.internal:3128");
    for key in [
        "workspaceDir",
        "cloneDepth",
        "groupSize",
        "timingBaseMs",
        "stuckThresholdMs",
        "mergeStrategy",
        "serverPort",
        "hookServerPort",
        "healthCheckIntervalMs",
        "rateLimitCheckIntervalMs",
        "managerHeartbeatIntervalMs",
    ] {
        assert!(!note(&c, key).note.is_empty());
    }
    assert!(note(&c, "timingBaseMs")
        .note
        .contains("ignored: pollIntervalMs is set"));
    assert!(note(&c, "serverPort").note.contains("no hook server"));
    assert_eq!(
        note(&c, "mergeStrategy").use_instead.as_deref(),
        Some("\"agent\"")
    );
    // Secrets of `env` never reach Debug or Serialize.
    let shown = format!("{c:?} {}", serde_json::to_string(&c).unwrap());
    assert!(
        !shown.contains("proxy.internal") && !shown.contains("gw.internal"),
        "{shown}"
    );
}

#[test]
fn legacy_timing_keys_are_computed_as_the_original_did() {
    let c = parse(&with(
        r#""timingBaseMs": 30000, "stuckThresholdMs": 300000"#,
    ));
    assert_eq!(c.poll_interval(), Duration::from_millis(5000));
    assert_eq!(c.task_timeout(), Duration::from_millis(900_000));
    let poll = note(&c, "timingBaseMs");
    assert_eq!(poll.use_instead.as_deref(), Some("pollIntervalMs"));
    assert!(
        poll.note.contains("deprecated") && poll.note.contains("pollIntervalMs = 5000"),
        "{poll:?}"
    );
    assert!(note(&c, "stuckThresholdMs")
        .note
        .contains("taskTimeoutMs = 900000"));
    let e = err(&with(r#""timingBaseMs": 5"#));
    assert!(
        e.to_string()
            .contains(r#"field "timingBaseMs": expected an integer from 60"#),
        "{e}"
    );
}

#[test]
fn a_key_and_its_cco_name_together_are_an_error_naming_both() {
    for (extra, a, b) in [
        (
            r#""model": "haiku", "models": {"worker": "opus"}"#,
            "model",
            "models",
        ),
        (
            r#""groupSize": 2, "engineerManagerGroupSize": 3"#,
            "groupSize",
            "engineerManagerGroupSize",
        ),
        (
            r#""workspaceDir": "a", "workspaceDirectory": "b""#,
            "workspaceDir",
            "workspaceDirectory",
        ),
        (
            r#""cloneDepth": 1, "gitCloneOptions": {"depth": 2}"#,
            "cloneDepth",
            "gitCloneOptions.depth",
        ),
    ] {
        let e = err(&with(extra));
        let text = e.to_string();
        assert!(
            text.starts_with(SRC)
                && text.contains(&format!(r#"fields "{a}" and "{b}" are both set"#)),
            "{text}"
        );
    }
    // `cloneDepth` with other clone options is fine.
    let c = parse(&with(
        r#""cloneDepth": 3, "gitCloneOptions": {"singleBranch": true}"#,
    ));
    assert_eq!(c.git_clone_options.depth, Some(3));
    assert!(c.git_clone_options.single_branch);
}

#[test]
fn model_values_and_merge_strategy_alias() {
    for ok in ["opus", "sonnet", "haiku", "claude-sonnet-4-5"] {
        assert_eq!(parse(&with(&format!(r#""model": "{ok}""#))).models.em, ok);
    }
    let e = err(&with(r#""model": "hiaku""#));
    assert!(e.to_string().contains(r#"(did you mean "haiku"?)"#), "{e}");
    let c = parse(&with(
        r#""mergeStrategy": "ours", "maxAutoResolveConflicts": 2"#,
    ));
    assert!(note(&c, "maxAutoResolveConflicts")
        .note
        .contains("no effect"));
    let e = err(&with(r#""mergeStrategy": "auto_resolve""#));
    assert!(e.to_string().contains("mergeStrategy"), "{e}");
}

#[test]
fn env_names_are_validated_and_cco_names_refused() {
    let c = parse(&with(r#""env": {"NO_PROXY": "", "A_1": "x y"}"#));
    assert_eq!(c.env.len(), 2);
    for (name, why) in [
        ("CLAUDE_CONFIG_DIR", "is set by cco"),
        ("CCO_AGENT_ID", "CCO_* variables are set by cco"),
        ("ANTHROPIC_API_KEY", "credential of the process"),
        ("ANTHROPIC_AUTH_TOKEN", "credential of the process"),
        ("IS_SANDBOX", "is set by cco"),
    ] {
        let e = err(&with(&format!(r#""env": {{"{name}": "v"}}"#)));
        let text = e.to_string();
        assert!(
            text.contains(&format!(r#"field "env.{name}""#)) && text.contains(why),
            "{text}"
        );
    }
    let e = err(&with(r#""env": {"1X": "supersecretvalue"}"#));
    assert!(
        e.to_string().contains("a name starting with a digit")
            && !e.to_string().contains("supersecret"),
        "{e}"
    );
    let e = err(&with(r#""env": {"X": 5}"#));
    assert!(
        e.to_string()
            .contains(r#"field "env.X": expected a string, found 5"#),
        "{e}"
    );
    // A value no process environment holds (Linux: 128 KiB per string) fails at load, not
    // at every claude start; the value is not echoed.
    let long = "v".repeat(200 * 1024);
    let e = err(&with(&format!(r#""env": {{"BIG": "{long}"}}"#)));
    let text = e.to_string();
    assert!(
        text.contains(r#"field "env.BIG""#)
            && text.contains("a string of 204800 bytes (at most 102400"),
        "{}",
        &text[..text.len().min(300)]
    );
    assert!(!text.contains("vvvvvvvvvv"));
    parse(&with(&format!(
        r#""env": {{"BIG": "{}"}}"#,
        "v".repeat(100 * 1024)
    )));
}

#[test]
fn comment_key_is_accepted_and_unknown_keys_still_suggest() {
    let c = parse(&with(r#""$comment": ["written by cco init", "line 2"]"#));
    assert!(c.original_keys.is_empty());
    parse(&with(r#""$comment": "one line""#));
    let e = err(&with(r#""$comment": 5"#));
    assert!(e.to_string().contains(r#"field "$comment""#), "{e}");
    let e = err(&with(r#""cloneDept": 5"#));
    assert!(
        e.to_string().contains(r#"(did you mean "cloneDepth"?)"#),
        "{e}"
    );
    let e = err(&with(r#""workspace_dir": "x""#));
    assert!(e.to_string().contains("did you mean \"workspaceDir"), "{e}");
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

fn config_dir(orchestrator: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "orchestrator.json", orchestrator);
    let claude = write(dir.path(), "claude", "#!/bin/sh\nexit 0\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(claude, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

#[test]
fn env_values_are_redacted_and_cannot_shadow_a_credential() {
    const GATEWAY: &str = r#"[{"name": "gw", "env": {"ANTHROPIC_AUTH_TOKEN": "tok-1234567890", "ANTHROPIC_BASE_URL": "https://gw"}}]"#;
    let dir = config_dir(
        r#"{"repositoryUrl": "/r", "workerCount": 1, "claudeBinary": "./claude",
            "authMode": "api-keys-first", "env": {"HTTPS_PROXY": "http://user:pw-123456@proxy"}}"#,
    );
    write(dir.path(), "api-keys.json", GATEWAY);
    let loaded = load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let text = loaded
        .redactor()
        .redact("via http://user:pw-123456@proxy with tok-1234567890")
        .into_owned();
    assert_eq!(text, "via [REDACTED:env.HTTPS_PROXY] with [REDACTED:gw]");

    let dir = config_dir(
        r#"{"repositoryUrl": "/r", "workerCount": 1, "claudeBinary": "./claude",
            "authMode": "api-keys-only", "env": {"ANTHROPIC_BASE_URL": "https://other"}}"#,
    );
    write(dir.path(), "api-keys.json", GATEWAY);
    let e = load(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains(r#"field "env.ANTHROPIC_BASE_URL""#) && e.contains(r#"entry "gw""#),
        "{e}"
    );
}

#[test]
fn an_explicit_settings_file_is_read_exactly() {
    let dir =
        config_dir(r#"{"repositoryUrl": "/r", "workerCount": 1, "claudeBinary": "./claude"}"#);
    let other = write(
        dir.path(),
        "staging.json",
        r#"{"repositoryUrl": "/r", "workerCount": 7, "claudeBinary": "./claude"}"#,
    );
    write(dir.path(), "api-keys.json", r#"["k1234567890"]"#);
    let loaded = load_path(&other).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.config.worker_count, 7);
    assert_eq!(loaded.config_path(), other);
    assert_eq!(loaded.api_keys.len(), 1, "api-keys.json beside the file");
    let by_dir = load_path(dir.path()).unwrap();
    assert_eq!(by_dir.config.worker_count, 1);
    assert!(by_dir.config_path().ends_with("orchestrator.json"));
    let missing = load_path(&dir.path().join("nope.json")).unwrap_err();
    assert!(
        matches!(missing, ConfigError::MissingFile { .. }),
        "{missing}"
    );
}

// api-keys.json: one test per form of the original.

fn keys(json: &str) -> Vec<cco_config::ApiKey> {
    parse_api_keys(json, Path::new(KEYS)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn api_keys_form_plain_strings_are_named_by_position() {
    let k = keys(r#"["sk-ant-api03-first-key", "sk-ant-api03-second-key"]"#);
    assert_eq!(
        k.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["api-key-1", "api-key-2"]
    );
    assert_eq!(
        k[1].env_vars(),
        [(
            "ANTHROPIC_API_KEY".to_string(),
            "sk-ant-api03-second-key".to_string()
        )]
    );
    assert!(!format!("{k:?}").contains("second-key"));
}

#[test]
fn api_keys_form_name_and_api_key() {
    let k = keys(
        r#"[{"name": "team", "apiKey": "sk-ant-api03-team-key"}, {"apiKey": "sk-ant-api03-anon"}]"#,
    );
    assert_eq!(k[0].name, "team");
    assert!(matches!(&k[0].auth, KeyAuth::ApiKey(s) if s.expose() == "sk-ant-api03-team-key"));
    assert_eq!(k[1].name, "api-key-2", "a missing name is the position");
    assert_eq!(k[0].var_names(), ["ANTHROPIC_API_KEY"]);
}

#[test]
fn api_keys_form_name_and_env_the_gateway() {
    let k = keys(
        r#"[{"name": "z.ai-1", "env": {"ANTHROPIC_AUTH_TOKEN": "tok-abcdefgh", "ANTHROPIC_BASE_URL": "https://api.z.ai/api/anthropic"}}]"#,
    );
    assert_eq!(k[0].name, "z.ai-1");
    assert_eq!(
        k[0].var_names(),
        ["ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"]
    );
    // The README's `{"env": {"ANTHROPIC_API_KEY": ...}}` is a key in the env form.
    let k = keys(r#"[{"name": "key-1", "env": {"ANTHROPIC_API_KEY": "sk-ant-api03-in-env"}}]"#);
    assert_eq!(
        k[0].env_vars(),
        [(
            "ANTHROPIC_API_KEY".to_string(),
            "sk-ant-api03-in-env".to_string()
        )]
    );
}

#[test]
fn api_keys_form_env_overrides_add_to_the_credential() {
    let k = keys(
        r#"[{"name": "a", "apiKey": "sk-ant-api03-aaaa", "envOverrides": {"ANTHROPIC_BASE_URL": "https://proxy-a"}},
            {"name": "b", "env": {"ANTHROPIC_AUTH_TOKEN": "tok-bbbbbbbb"}, "envOverrides": {"HTTPS_PROXY": "http://p:1"}}]"#,
    );
    assert_eq!(
        k[0].env_vars(),
        [
            (
                "ANTHROPIC_API_KEY".to_string(),
                "sk-ant-api03-aaaa".to_string()
            ),
            (
                "ANTHROPIC_BASE_URL".to_string(),
                "https://proxy-a".to_string()
            ),
        ]
    );
    assert_eq!(k[1].var_names(), ["ANTHROPIC_AUTH_TOKEN", "HTTPS_PROXY"]);
    // Override values are secrets too.
    let r = cco_config::Redactor::from_keys(&k);
    assert_eq!(r.redact("https://proxy-a"), "[REDACTED:a]");
    assert!(!serde_json::to_string(&k).unwrap().contains("proxy-a"));
}

#[test]
fn api_keys_forms_mixed_in_one_file() {
    let k = keys(
        r#"["sk-ant-api03-plain", {"name": "named", "apiKey": "sk-ant-api03-named"},
            {"env": {"ANTHROPIC_AUTH_TOKEN": "tok-12345678"}, "envOverrides": {}}]"#,
    );
    assert_eq!(
        k.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["api-key-1", "named", "api-key-3"]
    );
}
