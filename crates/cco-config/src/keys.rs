//! `api-keys.json`: named credentials that claude processes can run under.
//!
//! Format: a JSON array whose items are, in any mix (every form of the original tool):
//!
//! - a plain string: an API key, named `api-key-<n>` (n = its position, from 1);
//! - `{"name": ..., "apiKey": "sk-..."}`;
//! - `{"name": ..., "env": {"VAR": "value", ...}}` (a gateway: `ANTHROPIC_AUTH_TOKEN` +
//!   `ANTHROPIC_BASE_URL`, ...);
//!
//! and an object entry may carry `envOverrides` (extra environment for the processes on that
//! credential). `name` is optional (`api-key-<n>`). Error messages about this file describe
//! values only by their JSON type, never by content, and a name that looks like a secret (a
//! key pasted into `name`) is refused, since names appear in logs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::env::{env_object, secret_value, EnvRules};
use crate::error::ConfigError;
use crate::secret::Secret;
use crate::validate::{describe, parse_json, show, Obj, Result};

/// One named credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// Unique, non-empty; shown in logs and in `[REDACTED:<name>]` markers.
    pub name: String,
    pub auth: KeyAuth,
    /// `envOverrides`: extra variables for the processes on this credential (secrets too).
    pub env_overrides: BTreeMap<String, Secret>,
}

/// How an [`ApiKey`] authenticates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyAuth {
    /// Set as `ANTHROPIC_API_KEY`.
    ApiKey(Secret),
    /// Arbitrary variables, e.g. `ANTHROPIC_AUTH_TOKEN` + `ANTHROPIC_BASE_URL` for a proxy.
    Env(BTreeMap<String, Secret>),
}

impl ApiKey {
    /// The variables to set in a child claude's environment (real values): the credential's,
    /// then its `envOverrides`.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = match &self.auth {
            KeyAuth::ApiKey(key) => {
                vec![("ANTHROPIC_API_KEY".to_string(), key.expose().to_string())]
            }
            KeyAuth::Env(map) => map
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string()))
                .collect(),
        };
        vars.extend(
            self.env_overrides
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string())),
        );
        vars
    }

    /// The names of the variables this credential sets (not secret; for `cco check`).
    pub fn var_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = match &self.auth {
            KeyAuth::ApiKey(_) => vec!["ANTHROPIC_API_KEY"],
            KeyAuth::Env(map) => map.keys().map(String::as_str).collect(),
        };
        names.extend(self.env_overrides.keys().map(String::as_str));
        names
    }

    /// Every secret value of this key (for redaction).
    pub fn secrets(&self) -> impl Iterator<Item = &Secret> {
        let (single, many) = match &self.auth {
            KeyAuth::ApiKey(key) => (Some(key), None),
            KeyAuth::Env(map) => (None, Some(map.values())),
        };
        single
            .into_iter()
            .chain(many.into_iter().flatten())
            .chain(self.env_overrides.values())
    }
}

const ENTRY_KEYS: &[&str] = &["name", "apiKey", "env", "envOverrides"];

/// What an entry must be, for messages.
const ENTRY_FORMS: &str =
    "a key string, or an object {\"name\", \"apiKey\"} or {\"name\", \"env\": {...}} \
     (optionally with \"envOverrides\": {...})";

/// Parses the text of an api-keys.json read from `source` (used in messages only).
pub fn parse_api_keys(text: &str, source: &Path) -> Result<Vec<ApiKey>, ConfigError> {
    let value = parse_json(text, source)?;
    let Value::Array(entries) = &value else {
        return Err(ConfigError::WrongType {
            path: source.to_path_buf(),
            field: String::new(),
            expected: format!("a JSON array whose items are each {ENTRY_FORMS}"),
            found: describe(&value, true),
        });
    };
    let mut keys = Vec::with_capacity(entries.len());
    let mut names = BTreeSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let key = parse_entry(source, i, entry)?;
        if !names.insert(key.name.clone()) {
            return Err(ConfigError::InvalidValue {
                path: source.to_path_buf(),
                field: format!("[{i}].name"),
                expected: "a name not used by an earlier entry (entries without a name are \
                           called api-key-<position>)"
                    .into(),
                found: format!("{}, already used", show(&key.name)),
                suggestion: None,
            });
        }
        if let Some(same) = keys.iter().find(|k: &&ApiKey| k.auth == key.auth) {
            // Rotating onto the same credential under another name would only hit the same
            // rate limit again.
            return Err(ConfigError::InvalidValue {
                path: source.to_path_buf(),
                field: format!("[{i}]"),
                expected: "a credential not listed by an earlier entry".into(),
                found: format!("the same credential as the entry {}", show(&same.name)),
                suggestion: None,
            });
        }
        keys.push(key);
    }
    // Names appear in logs and markers: one that is (or holds) a secret of the file would leak it.
    for (i, key) in keys.iter().enumerate() {
        if keys.iter().flat_map(ApiKey::secrets).any(|secret| {
            let secret = secret.expose();
            secret.len() >= crate::MIN_REDACTED_LEN && key.name.contains(secret)
        }) {
            return Err(ConfigError::InvalidValue {
                path: source.to_path_buf(),
                field: format!("[{i}].name"),
                expected: "a label for the key, not the key itself".into(),
                found: "a name that contains a secret of this file".into(),
                suggestion: None,
            });
        }
    }
    Ok(keys)
}

fn default_name(i: usize) -> String {
    format!("api-key-{}", i + 1)
}

fn parse_entry(source: &Path, i: usize, entry: &Value) -> Result<ApiKey> {
    if let Value::String(_) = entry {
        // The original's shortest form: a bare key.
        let holder = Obj {
            file: source,
            prefix: String::new(),
            map: &serde_json::Map::new(),
            secret: true,
        };
        let key = secret_value(&holder, &format!("[{i}]"), entry, false, false)?;
        return Ok(ApiKey {
            name: default_name(i),
            auth: KeyAuth::ApiKey(key),
            env_overrides: BTreeMap::new(),
        });
    }
    let obj = Obj::new(source, format!("[{i}]"), entry, ENTRY_FORMS, true)?;
    obj.check_keys(ENTRY_KEYS)?;

    let name = match obj.map.get("name") {
        None | Some(Value::Null) => default_name(i),
        Some(Value::String(s)) if s.trim().is_empty() || s.chars().any(char::is_control) => {
            return Err(obj.invalid(
                obj.path("name"),
                "a non-empty name without control characters",
                describe(&Value::String(s.clone()), true),
            ));
        }
        Some(Value::String(s)) if crate::secret::redact_key_shapes(s) != s.as_str() => {
            return Err(obj.invalid(
                obj.path("name"),
                "a label for the key, not the key itself",
                "a string shaped like an Anthropic API key",
            ));
        }
        // Names are not secret, so they may be echoed in later messages.
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(obj.wrong_type("name", "a non-empty string", other)),
    };

    let auth = match (obj.map.get("apiKey"), obj.map.get("env")) {
        (Some(_), Some(_)) => {
            return Err(obj.invalid(
                obj.path("apiKey"),
                "exactly one of \"apiKey\" or \"env\"",
                "both \"apiKey\" and \"env\"",
            ))
        }
        (None, None) => {
            return Err(obj.missing(
                "apiKey",
                "either \"apiKey\" (a string) or \"env\" (an object of variables)",
            ))
        }
        (Some(value), None) => KeyAuth::ApiKey(secret_value(&obj, "apiKey", value, false, false)?),
        (None, Some(_)) => {
            let rules = EnvRules {
                credential: true,
                empty_object: false,
                empty_value: false,
            };
            KeyAuth::Env(env_object(&obj, "env", rules)?.unwrap_or_default())
        }
    };
    let overrides_rules = EnvRules {
        credential: false,
        empty_object: true,
        empty_value: true,
    };
    let env_overrides = env_object(&obj, "envOverrides", overrides_rules)?.unwrap_or_default();
    let key = ApiKey {
        name,
        auth,
        env_overrides,
    };
    if let KeyAuth::Env(map) = &key.auth {
        if let Some(name) = key.env_overrides.keys().find(|n| map.contains_key(*n)) {
            return Err(obj.invalid(
                obj.path(&format!("envOverrides.{name}")),
                "a variable not already set by \"env\" of the same entry",
                format!("{name}, set in both"),
            ));
        }
    }
    Ok(key)
}
