//! The files `cco init` writes: an `orchestrator.json` holding only the choices that differ
//! from cco's defaults, explained in its `"$comment"` (JSON has no comments; cco-config accepts
//! that key), and an `api-keys.json` of mode 0600.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cco_config::AuthMode;
use serde_json::{json, Value};

/// What the questions settled.
#[derive(Debug, Clone, PartialEq)]
pub struct Answers {
    pub repo: String,
    pub branch: String,
    pub workers: u32,
    pub auth: AuthMode,
    /// The API keys to write (empty: leave api-keys.json alone).
    pub keys: Vec<String>,
    /// api-keys.json text given as is (`--api-key-file` with a JSON file).
    pub keys_json: Option<String>,
    pub verify: Option<String>,
    pub budget: Option<f64>,
    pub duration: u64,
    pub claude_binary: Option<PathBuf>,
}

/// cco's defaults for what `init` asks (kept out of the file when chosen).
pub const DEFAULT_BRANCH: &str = "main";
pub const DEFAULT_WORKERS: u32 = 3;
pub const DEFAULT_DURATION: u64 = 120;
/// cco-config's default `engineerManagerGroupSize`.
const GROUP_SIZE: u32 = 4;

fn auth_name(auth: AuthMode) -> &'static str {
    match auth {
        AuthMode::Oauth => "oauth",
        AuthMode::ApiKeysFirst => "api-keys-first",
        AuthMode::ApiKeysOnly => "api-keys-only",
    }
}

/// The text of orchestrator.json: `$comment` first, then the settings in a fixed order.
pub fn orchestrator_json(a: &Answers) -> String {
    let mut fields: Vec<(&str, Value)> = vec![("repositoryUrl", json!(a.repo))];
    if a.branch != DEFAULT_BRANCH {
        fields.push(("branch", json!(a.branch)));
    }
    fields.push(("workerCount", json!(a.workers)));
    let mut comment = vec![
        "Written by `cco init`: only the settings that differ from cco's defaults.".to_string(),
        "Every option, its default and its checks: docs/configuration.md. See what a run would \
         do: `cco check --config <this directory>`."
            .to_string(),
    ];
    comment.push(if a.workers <= GROUP_SIZE {
        format!(
            "workerCount {}: one Coordinator plans, reviews and merges for all workers (flat mode, \
             up to {GROUP_SIZE} workers).",
            a.workers
        )
    } else {
        format!(
            "workerCount {}: a Director and {} Engineering Managers, teams of up to {GROUP_SIZE} workers.",
            a.workers,
            a.workers.div_ceil(GROUP_SIZE)
        )
    });
    if a.auth != AuthMode::Oauth {
        fields.push(("authMode", json!(auth_name(a.auth))));
        comment.push(format!(
            "authMode {}: the keys are in api-keys.json beside this file (keep it private).",
            auth_name(a.auth)
        ));
    }
    if let Some(verify) = &a.verify {
        fields.push(("verifyCommand", json!(verify)));
        comment.push(format!(
            "verifyCommand: `{verify}` must pass on merged work before the base branch moves."
        ));
    }
    if let Some(budget) = a.budget {
        fields.push(("maxBudgetUsd", json!(budget)));
    }
    if a.duration != DEFAULT_DURATION {
        fields.push(("maxRunDurationMinutes", json!(a.duration)));
    }
    if a.budget.is_some() || a.duration != DEFAULT_DURATION {
        comment.push(
            "maxBudgetUsd / maxRunDurationMinutes: the run stops when it reaches either.".into(),
        );
    }
    if let Some(binary) = &a.claude_binary {
        fields.push(("claudeBinary", json!(binary)));
    }
    let mut text = String::from("{\n");
    text.push_str(&format!("  \"$comment\": {},\n", pretty_array(&comment)));
    for (i, (key, value)) in fields.iter().enumerate() {
        let sep = if i + 1 == fields.len() { "" } else { "," };
        text.push_str(&format!("  \"{key}\": {value}{sep}\n"));
    }
    text.push_str("}\n");
    text
}

fn pretty_array(lines: &[String]) -> String {
    let items: Vec<String> = lines.iter().map(|l| format!("    {}", json!(l))).collect();
    format!("[\n{}\n  ]", items.join(",\n"))
}

/// The text of api-keys.json for plain keys: `[{"name": "key-1", "apiKey": ...}, ...]`.
pub fn api_keys_json(keys: &[String]) -> String {
    let entries: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| json!({"name": format!("key-{}", i + 1), "apiKey": key}))
        .collect();
    let mut text = serde_json::to_string_pretty(&entries).unwrap_or_else(|_| "[]".into());
    text.push('\n');
    text
}

/// Keys from `--api-key-file`: an api-keys.json (any of its forms; returned as text) or one key
/// per line (`#` comments and blank lines skipped). `-` reads standard input.
pub fn read_key_file(path: &Path) -> Result<(Vec<String>, Option<String>), String> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read the keys from standard input: {e}"))?;
    } else {
        text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    }
    let shown = if path == Path::new("-") {
        PathBuf::from("<standard input>")
    } else {
        path.to_path_buf()
    };
    if text.trim_start().starts_with('[') {
        cco_config::parse_api_keys(&text, &shown).map_err(|e| e.to_string())?;
        return Ok((Vec::new(), Some(text)));
    }
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if keys.is_empty() {
        return Err(format!(
            "{}: no key found (one key per line)",
            shown.display()
        ));
    }
    if let Some(n) = keys.iter().position(|k| k.chars().any(char::is_whitespace)) {
        return Err(format!(
            "{}: the key on line {} contains whitespace (one key per line)",
            shown.display(),
            n + 1
        ));
    }
    Ok((keys, None))
}

/// Writes `text` to `path` readable by its owner only (0600), also when the file existed.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers() -> Answers {
        Answers {
            repo: "git@github.com:me/app.git".into(),
            branch: "main".into(),
            workers: 3,
            auth: AuthMode::Oauth,
            keys: Vec::new(),
            keys_json: None,
            verify: None,
            budget: None,
            duration: DEFAULT_DURATION,
            claude_binary: None,
        }
    }

    #[test]
    fn defaults_are_left_out_and_the_file_parses() {
        let text = orchestrator_json(&answers());
        let value: Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            ["$comment", "repositoryUrl", "workerCount"],
            "{text}"
        );
        cco_config::Config::from_json_str(&text, Path::new("/c/orchestrator.json")).unwrap();
    }

    #[test]
    fn choices_are_written_and_explained() {
        let mut a = answers();
        a.branch = "dev".into();
        a.workers = 8;
        a.auth = AuthMode::ApiKeysOnly;
        a.verify = Some("cargo test".into());
        a.budget = Some(12.5);
        a.duration = 45;
        let text = orchestrator_json(&a);
        let c = cco_config::Config::from_json_str(&text, Path::new("/c/orchestrator.json"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            (
                c.branch.as_str(),
                c.worker_count,
                c.auth_mode,
                c.max_budget_usd,
                c.max_run_duration_minutes
            ),
            ("dev", 8, AuthMode::ApiKeysOnly, Some(12.5), 45)
        );
        assert_eq!(c.verify_command.as_deref(), Some("cargo test"));
        assert!(text.contains("2 Engineering Managers"), "{text}");
    }

    #[test]
    fn key_files_in_both_forms() {
        let dir = tempfile::tempdir().unwrap();
        let lines = dir.path().join("keys.txt");
        std::fs::write(
            &lines,
            "# team keys\nsk-ant-api03-one\n\nsk-ant-api03-two\n",
        )
        .unwrap();
        let (keys, json) = read_key_file(&lines).unwrap();
        assert_eq!((keys.len(), json), (2, None));
        let parsed = cco_config::parse_api_keys(&api_keys_json(&keys), Path::new("/k")).unwrap();
        assert_eq!(parsed[1].name, "key-2");
        let file = dir.path().join("api-keys.json");
        std::fs::write(
            &file,
            r#"["sk-ant-api03-x", {"name": "gw", "env": {"ANTHROPIC_AUTH_TOKEN": "t-12345678"}}]"#,
        )
        .unwrap();
        let (keys, json) = read_key_file(&file).unwrap();
        assert!(keys.is_empty() && json.is_some());
        std::fs::write(&lines, "sk-ant-api03 with space\n").unwrap();
        let e = read_key_file(&lines).unwrap_err();
        assert!(e.contains("line 1") && !e.contains("sk-ant"), "{e}");
    }

    #[test]
    fn private_files_are_0600_even_when_they_existed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-keys.json");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, "[]").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "[]");
    }
}
