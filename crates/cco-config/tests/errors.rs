//! One test per error class: each asserts the message names the file, the field, what was
//! expected and (where there is one) the suggestion.

use std::path::{Path, PathBuf};

use cco_config::{load, parse_api_keys, Config, ConfigError};

const SRC: &str = "/cfg/orchestrator.json";
const KEYS: &str = "/cfg/api-keys.json";

fn config_err(json: &str) -> ConfigError {
    match Config::from_json_str(json, Path::new(SRC)) {
        Ok(c) => panic!("expected an error for {json}, got {c:?}"),
        Err(e) => e,
    }
}

fn keys_err(json: &str) -> ConfigError {
    match parse_api_keys(json, Path::new(KEYS)) {
        Ok(k) => panic!("expected an error for {json}, got {k:?}"),
        Err(e) => e,
    }
}

/// `{"repositoryUrl": "/r", "workerCount": 2, <extra>}`
fn with(extra: &str) -> String {
    if extra.is_empty() {
        r#"{"repositoryUrl": "/r", "workerCount": 2}"#.to_string()
    } else {
        format!(r#"{{"repositoryUrl": "/r", "workerCount": 2, {extra}}}"#)
    }
}

fn assert_contains(err: &ConfigError, parts: &[&str]) {
    let msg = err.to_string();
    for part in parts {
        assert!(msg.contains(part), "message {msg:?} lacks {part:?}");
    }
}

#[test]
fn missing_file_names_path_and_requirement() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(matches!(err, ConfigError::MissingFile { .. }), "{err:?}");
    let expected_path = dir.path().join("orchestrator.json");
    assert_eq!(err.path(), expected_path);
    assert_contains(
        &err,
        &[
            &expected_path.display().to_string(),
            "required file not found",
        ],
    );
}

#[test]
fn unreadable_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("orchestrator.json")).unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }), "{err:?}");
    assert_contains(&err, &["orchestrator.json: cannot read file"]);

    std::fs::remove_dir(dir.path().join("orchestrator.json")).unwrap();
    std::fs::write(dir.path().join("orchestrator.json"), b"{\"a\xff\": 1}").unwrap();
    let err = load(dir.path()).unwrap_err();
    assert_contains(&err, &["orchestrator.json", "expected UTF-8 text"]);
}

#[test]
fn syntax_error_has_line_and_column() {
    let err = config_err("{\n  \"workerCount\": 4,\n  ,\n}");
    assert!(
        matches!(
            err,
            ConfigError::Syntax {
                line: 3,
                column: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_contains(&err, &[SRC, "invalid JSON at line 3, column 3"]);
    // The position is not repeated from serde_json's own message.
    assert_eq!(err.to_string().matches("line").count(), 1, "{err}");
}

#[test]
fn unknown_top_level_field_suggests_the_closest() {
    let err = config_err(r#"{"repositoryUrl": "/r", "workerCont": 2}"#);
    assert_contains(
        &err,
        &[
            SRC,
            r#"unknown field "workerCont" (did you mean "workerCount"?)"#,
            "expected one of: repositoryUrl, localRepoPath, branch",
        ],
    );
    assert_eq!(err.field(), Some("workerCont"));
    let err = config_err(&with(r#""worker_count": 3"#));
    assert_contains(&err, &[r#"(did you mean "workerCount"?)"#]);
    let err = config_err(&with(r#""zzzzzzzzzzzzzz": 3"#));
    assert!(!err.to_string().contains("did you mean"), "{err}");
}

#[test]
fn unknown_nested_fields_are_named_by_json_path() {
    let err = config_err(&with(r#""gitCloneOptions": {"dept": 1}"#));
    assert_contains(
        &err,
        &[
            SRC,
            r#"unknown field "gitCloneOptions.dept" (did you mean "gitCloneOptions.depth"?)"#,
            "depth, singleBranch, noSubmodules",
        ],
    );
    let err = config_err(&with(r#""models": {"wroker": "x"}"#));
    assert_contains(
        &err,
        &[r#"unknown field "models.wroker" (did you mean "models.worker"?)"#],
    );
}

#[test]
fn unknown_field_in_api_keys_entry() {
    let err = keys_err(
        r#"[{"name": "a", "apiKey": "k1234567890"}, {"name": "b", "apikey": "k1234567890"}]"#,
    );
    assert_contains(
        &err,
        &[
            KEYS,
            r#"unknown field "[1].apikey" (did you mean "[1].apiKey"?)"#,
            "name, apiKey, env",
        ],
    );
}

#[test]
fn missing_required_fields() {
    let err = config_err(r#"{"repositoryUrl": "/r"}"#);
    assert_contains(
        &err,
        &[
            SRC,
            r#"missing required field "workerCount": expected an integer from 1 to 100"#,
        ],
    );
    let err = config_err(r#"{"workerCount": 1}"#);
    assert_contains(
        &err,
        &[SRC, r#"missing required field "repositoryUrl""#, "git URL"],
    );
    let err = keys_err(r#"[{"name": "x"}]"#);
    assert_contains(&err, &[KEYS, r#""[0].apiKey""#, "either \"apiKey\""]);
}

#[test]
fn wrong_types_name_expected_and_found() {
    let err = config_err(r#"{"repositoryUrl": "/r", "workerCount": "4"}"#);
    assert!(matches!(err, ConfigError::WrongType { .. }));
    assert_contains(
        &err,
        &[
            SRC,
            r#"field "workerCount": expected an integer from 1 to 100, found the string "4""#,
        ],
    );
    let err = config_err(&with(r#""push": "yes""#));
    assert_contains(
        &err,
        &[r#"field "push": expected true or false, found the string "yes""#],
    );
    let err = config_err(&with(r#""models": ["opus"]"#));
    assert_contains(
        &err,
        &[r#"field "models": expected an object with keys director, em, worker, found an array"#],
    );
    let err = config_err(&with(r#""envFiles": [".env", 3]"#));
    assert_contains(
        &err,
        &[r#"field "envFiles[1]": expected a file name relative to the repository root, found 3"#],
    );
    let err = config_err(&with(r#""taskTimeoutMs": null"#));
    assert_contains(
        &err,
        &[
            r#"field "taskTimeoutMs": expected an integer from 1000 to"#,
            "found null",
        ],
    );
    let err = config_err("[1, 2]");
    assert_contains(
        &err,
        &[SRC, "top level: expected a JSON object", "found an array"],
    );
}

#[test]
fn out_of_range_values() {
    let err = config_err(r#"{"repositoryUrl": "/r", "workerCount": 0}"#);
    assert_eq!(
        err.to_string(),
        r#"/cfg/orchestrator.json: field "workerCount": expected an integer from 1 to 100, found 0"#
    );
    for (extra, field, expected) in [
        (r#""workerCount": 101"#, "workerCount", "from 1 to 100"),
        (
            r#""engineerManagerGroupSize": 0"#,
            "engineerManagerGroupSize",
            "from 1 to 100",
        ),
        (
            r#""maxRunDurationMinutes": 0"#,
            "maxRunDurationMinutes",
            "from 1 to 43200",
        ),
        (
            r#""taskTimeoutMs": 999"#,
            "taskTimeoutMs",
            "from 1000 to 2592000000",
        ),
        (r#""idleTimeoutMs": -5"#, "idleTimeoutMs", "from 1000 to"),
        (r#""pollIntervalMs": 9"#, "pollIntervalMs", "from 10 to"),
        (
            r#""killGraceMs": 2592000001"#,
            "killGraceMs",
            "from 0 to 2592000000",
        ),
        (
            r#""maxTaskRestarts": 21"#,
            "maxTaskRestarts",
            "from 0 to 20",
        ),
        (
            r#""gitCloneOptions": {"depth": 0}"#,
            "gitCloneOptions.depth",
            "from 1 to 1000000",
        ),
        (r#""maxTurns": 0"#, "maxTurns", "from 1 to 100000"),
        (r#""workerCount": 2.5"#, "workerCount", "an integer"),
        (
            r#""maxBudgetUsd": 0"#,
            "maxBudgetUsd",
            "a number greater than 0",
        ),
        (
            r#""maxBudgetUsd": -1.5"#,
            "maxBudgetUsd",
            "a number greater than 0",
        ),
    ] {
        let json = if extra.starts_with(r#""workerCount""#) {
            format!(r#"{{"repositoryUrl": "/r", {extra}}}"#)
        } else {
            with(extra)
        };
        let err = config_err(&json);
        assert!(matches!(err, ConfigError::InvalidValue { .. }), "{err:?}");
        assert_contains(
            &err,
            &[SRC, &format!("field \"{field}\": expected "), expected],
        );
    }
}

#[test]
fn invalid_choices_suggest_a_valid_one() {
    let err = config_err(&with(r#""authMode": "oath""#));
    assert_contains(
        &err,
        &[
            SRC,
            r#"field "authMode": expected one of "oauth", "api-keys-first", "api-keys-only", found the string "oath" (did you mean "oauth"?)"#,
        ],
    );
    let err = config_err(&with(r#""mergeStrategy": "Theirs""#));
    assert_contains(
        &err,
        &[r#"field "mergeStrategy""#, r#"(did you mean "theirs"?)"#],
    );
    let err = config_err(&with(r#""permissionMode": "bypass""#));
    assert_contains(
        &err,
        &[r#"field "permissionMode""#, "\"bypassPermissions\""],
    );
}

#[test]
fn invalid_strings_say_why() {
    let err = config_err(&with(r#""branch": "my branch""#));
    assert_contains(
        &err,
        &[
            SRC,
            r#"field "branch": expected a valid git branch name, found "my branch" (it contains whitespace)"#,
        ],
    );
    let err = config_err(&with(r#""branch": "-f""#));
    assert_contains(&err, &[r#"(it starts with "-")"#]);
    let err = config_err(&with(r#""envFiles": [".env", "/etc/passwd"]"#));
    assert_contains(
        &err,
        &[
            r#"field "envFiles[1]""#,
            "(it is an absolute path; cco copies envFiles from the config directory",
        ],
    );
    let err = config_err(&with(r#""envFiles": ["../.env"]"#));
    assert_contains(&err, &[r#"field "envFiles[0]""#, r#"(it contains "..")"#]);
    let err = config_err(&with(r#""models": {"em": ""}"#));
    assert_contains(
        &err,
        &[r#"field "models.em": expected a non-empty string, found an empty string"#],
    );
    let err = config_err(&with(r#""verifyCommand": "  ""#));
    assert_contains(
        &err,
        &[r#"field "verifyCommand": expected a non-empty string"#],
    );
}

#[test]
fn invalid_repository_urls() {
    for (url, why) in [
        ("ftp://host/repo", r#"unsupported URL scheme "ftp""#),
        ("", "it is empty"),
        ("--upload-pack=evil", r#"it starts with "-""#),
        ("https://", "has no host"),
    ] {
        let err = config_err(&format!(
            r#"{{"repositoryUrl": "{url}", "workerCount": 1}}"#
        ));
        assert_contains(
            &err,
            &[SRC, r#"field "repositoryUrl": expected a git URL"#, why],
        );
    }
    // Passwords in URLs are not echoed.
    let err = config_err(r#"{"repositoryUrl": "https://u:hunter2@/x", "workerCount": 1}"#);
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn api_keys_errors() {
    let cases: &[(&str, &[&str])] = &[
        (
            r#"{"name": "a"}"#,
            &["top level: expected a JSON array", "found an object"],
        ),
        (
            r#"["k1234567890", "k1234567890"]"#,
            &[
                r#"field "[1]": expected a credential not listed by an earlier entry, found the same credential as the entry "api-key-1""#,
            ],
        ),
        (
            r#"[42]"#,
            &[
                r#"field "[0]": expected a key string, or an object"#,
                "found 42",
            ],
        ),
        (
            r#"["sk-ant-zzz zzz"]"#,
            &[
                r#"field "[0]": expected a non-empty string without whitespace"#,
                "found a string containing whitespace",
            ],
        ),
        (
            r#"["k1234567890", {"name": "api-key-1", "apiKey": "k2345678901"}]"#,
            &[
                r#"field "[1].name": expected a name not used by an earlier entry (entries without a name are called api-key-<position>)"#,
            ],
        ),
        (
            r#"[{"name": "sk-ant-api03-abcdefgh", "apiKey": "k2345678901"}]"#,
            &[
                r#"field "[0].name": expected a label for the key, not the key itself, found a string shaped like an Anthropic API key"#,
            ],
        ),
        (
            r#"[{"name": "k2345678901", "apiKey": "k2345678901"}]"#,
            &[
                r#"field "[0].name": expected a label for the key, not the key itself, found a name that contains a secret of this file"#,
            ],
        ),
        (
            r#"[{"name": "a", "env": {"CLAUDE_CONFIG_DIR": "/x"}}]"#,
            &[
                r#"field "[0].env.CLAUDE_CONFIG_DIR": expected a variable cco does not set itself, found CLAUDE_CONFIG_DIR is set by cco"#,
            ],
        ),
        (
            r#"[{"name": "a", "apiKey": "k2345678901", "envOverrides": {"ANTHROPIC_API_KEY": "x"}}]"#,
            &[
                r#"field "[0].envOverrides.ANTHROPIC_API_KEY": expected a variable cco does not set itself"#,
            ],
        ),
        (
            r#"[{"name": "a", "env": {"ANTHROPIC_BASE_URL": "https://x"}, "envOverrides": {"ANTHROPIC_BASE_URL": "y"}}]"#,
            &[
                r#"field "[0].envOverrides.ANTHROPIC_BASE_URL": expected a variable not already set by "env" of the same entry"#,
            ],
        ),
        (
            r#"[{"name": "a", "apiKey": "k2345678901", "envOverrides": []}]"#,
            &[
                r#"field "[0].envOverrides": expected an object mapping environment variable names to strings, found an empty array"#,
            ],
        ),
        (
            r#"[{"name": "", "apiKey": "k"}]"#,
            &[r#"field "[0].name": expected a non-empty name"#],
        ),
        (
            r#"[{"name": 5, "apiKey": "k"}]"#,
            &[r#"field "[0].name": expected a non-empty string, found 5"#],
        ),
        (
            r#"[{"name": "a", "apiKey": "k1"}, {"name": "a", "apiKey": "k2"}]"#,
            &[
                r#"field "[1].name": expected a name not used by an earlier entry (entries without a name are called api-key-<position>), found "a", already used"#,
            ],
        ),
        (
            r#"[{"name": "a", "apiKey": "k", "env": {"X": "y"}}]"#,
            &[r#"field "[0].apiKey": expected exactly one of "apiKey" or "env""#],
        ),
        (
            r#"[{"name": "a", "apiKey": 42}]"#,
            &[r#"field "[0].apiKey": expected a non-empty string without whitespace, found 42"#],
        ),
        (
            r#"[{"name": "a", "apiKey": ""}]"#,
            &[r#"field "[0].apiKey""#, "found an empty string"],
        ),
        (
            r#"[{"name": "a", "env": {"1BAD": "v"}}]"#,
            &[
                r#"field "[0].env": expected variable names matching"#,
                "found a name starting with a digit",
            ],
        ),
        (
            r#"[{"name": "a", "env": {"A-B": "v"}}]"#,
            &["found a name containing '-'"],
        ),
        (
            r#"[{"name": "a", "env": {"GOOD": 1}}]"#,
            &[r#"field "[0].env.GOOD": expected a non-empty string, found 1"#],
        ),
        (
            r#"[{"name": "a", "env": {}}]"#,
            &[r#"field "[0].env""#, "found an empty object"],
        ),
    ];
    for (json, parts) in cases {
        let err = keys_err(json);
        let mut all = vec![KEYS];
        all.extend_from_slice(parts);
        assert_contains(&err, &all);
    }
}

/// Every error about an api-keys file must not contain the key text, in Display or Debug.
#[test]
fn api_keys_errors_never_contain_secrets() {
    const S: &str = "sk-ant-api03-TOPSECRETvalue123";
    const T: &str = "TOPSECRETtoken456789";
    let files = [
        format!(r#"["{S} "]"#),
        format!(r#"[["{S}"]]"#),
        format!(r#"["{S}", "{S}"]"#),
        format!(r#"[{{"name": "{T}", "apiKey": "{T}"}}]"#),
        format!(r#"[{{"name": "{S}", "apiKey": "x1234567"}}]"#),
        format!(r#"[{{"apiKey": "{S}", "envOverrides": {{"{T}-x": "{T}"}}}}]"#),
        format!(r#"[{{"apiKey": "{S}", "envOverrides": {{"X": 5, "Y": "{T}"}}}}]"#),
        format!(r#"{{"{S}": 1}}"#),
        format!(r#"[{{"name": "a", "apiKey": "{S} "}}]"#),
        format!(r#"[{{"name": "a", "apiKey": "{S}", "env": {{"X": "{T}"}}}}]"#),
        format!(r#"[{{"name": "a", "apiKey": ["{S}"]}}]"#),
        format!(r#"[{{"name": "a", "apikey": "{S}"}}]"#),
        format!(r#"[{{"name": "a", "{S}": "x"}}]"#),
        format!(r#"[{{"name": "a", "{T}": "x"}}]"#),
        format!(r#"[{{"name": "a", "env": {{"{S}": "{T}"}}}}]"#),
        format!(r#"[{{"name": "a", "env": {{"{T}-x": "{T}"}}}}]"#),
        format!(r#"[{{"name": "a", "env": {{"X": ["{T}"]}}}}]"#),
        format!(r#"[{{"name": "a", "env": {{"X": "{T}"}}}}, {{"name": "a", "apiKey": "{S}"}}]"#),
        format!(r#"[{{"name": "a", "apiKey": "{S}"}}, {{"apiKey": "{S}"}}]"#),
        format!(r#"[{{"name": "a", "apiKey": "{S}\q"}}]"#),
        format!(r#"[{{"name": "a", "apiKey": "{S}"#),
        format!(r#"[{{"name": ["{S}"], "apiKey": "x"}}]"#),
    ];
    for file in &files {
        let err = keys_err(file);
        let shown = format!("{err} | {err:?}");
        assert!(
            !shown.contains("TOPSECRET"),
            "secret leaked for {file}: {shown}"
        );
    }
}

#[test]
fn api_keys_only_without_keys() {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake_binary(dir.path(), "claude-stub");
    std::fs::write(
        dir.path().join("orchestrator.json"),
        format!(r#"{{"repositoryUrl": "/r", "workerCount": 1, "authMode": "api-keys-only", "claudeBinary": "{}"}}"#, bin.display()),
    )
    .unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(matches!(err, ConfigError::NoApiKeys { .. }), "{err:?}");
    assert_contains(
        &err,
        &[
            "orchestrator.json: field \"authMode\"",
            "api-keys.json",
            "found no such file",
        ],
    );

    std::fs::write(dir.path().join("api-keys.json"), "[]").unwrap();
    let err = load(dir.path()).unwrap_err();
    assert_contains(&err, &["found an empty list"]);
}

#[test]
fn claude_binary_missing_lists_what_was_searched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("orchestrator.json"),
        r#"{"repositoryUrl": "/r", "workerCount": 1, "claudeBinary": "bin/no-such-claude"}"#,
    )
    .unwrap();
    let err = load(dir.path()).unwrap_err();
    let want = dir.path().join("bin/no-such-claude");
    assert_contains(
        &err,
        &[
            "orchestrator.json: field \"claudeBinary\": expected an executable claude binary",
            "found no file at",
            &format!("searched: {}", want.display()),
        ],
    );

    // A bare name is searched in the config dir and then on PATH.
    let config = Config::from_json_str(
        r#"{"repositoryUrl": "/r", "workerCount": 1, "claudeBinary": "no-such-claude-xyz"}"#,
        &dir.path().join("orchestrator.json"),
    )
    .unwrap();
    let err =
        cco_config::resolve_claude_binary(&config, Some("/nonexistent-a:/nonexistent-b".as_ref()))
            .unwrap_err();
    assert_contains(
        &err,
        &[
            "found none",
            "no-such-claude-xyz",
            r#"on PATH (/nonexistent-a:/nonexistent-b)"#,
        ],
    );
}

#[cfg(unix)]
#[test]
fn claude_binary_not_executable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("claude"), "#!/bin/sh\n").unwrap();
    std::fs::write(
        dir.path().join("orchestrator.json"),
        r#"{"repositoryUrl": "/r", "workerCount": 1, "claudeBinary": "./claude"}"#,
    )
    .unwrap();
    let err = load(dir.path()).unwrap_err();
    assert_contains(&err, &["field \"claudeBinary\"", "which is not executable"]);
}

pub fn fake_binary(dir: &Path, name: &str) -> PathBuf {
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
fn agents_under_real_conditions_keys_are_checked() {
    let e = config_err(&with(r#""quotaWarningThreshold": 1.5"#));
    assert_contains(
        &e,
        &[
            "quotaWarningThreshold",
            "greater than 0 and at most 1",
            "1.5",
        ],
    );
    let e = config_err(&with(r#""quotaWarningThreshold": 0"#));
    assert_contains(&e, &["quotaWarningThreshold"]);
    let e = config_err(&with(
        r#""apiRetryBackoffMs": 60000, "maxApiRetryBackoffMs": 1000"#,
    ));
    assert_contains(
        &e,
        &[
            "maxApiRetryBackoffMs",
            "at least apiRetryBackoffMs",
            "60000",
        ],
    );
    let e = config_err(&with(r#""maxApiRetries": 20000"#));
    assert_contains(&e, &["maxApiRetries", "10000"]);
    let e = config_err(&with(r#""minKeyBenchMs": -1"#));
    assert_contains(&e, &["minKeyBenchMs"]);
    let e = config_err(&with(r#""structuredOutput": "yes""#));
    assert_contains(&e, &["structuredOutput", "\"auto\", \"on\", \"off\""]);
    let e = config_err(&with(r#""orphanPolicy": "kill""#));
    assert_contains(&e, &["orphanPolicy", "\"stop\", \"continue\""]);
    let e = config_err(&with(r#""orphanPolicyy": "stop""#));
    assert_contains(&e, &["did you mean \"orphanPolicy\""]);
}
