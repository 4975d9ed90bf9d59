//! `api-keys.json`: named credentials that claude processes can run under.
//!
//! Format: a JSON array of entries, each `{"name": ..., "apiKey": "sk-..."}` or
//! `{"name": ..., "env": {"VAR": "value", ...}}`. Error messages about this file describe
//! values only by their JSON type, never by content.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::error::ConfigError;
use crate::secret::Secret;
use crate::validate::{describe, is_env_var_name, parse_json, show, Obj, Result};

/// One named credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// Unique, non-empty; shown in logs and in `[REDACTED:<name>]` markers.
    pub name: String,
    pub auth: KeyAuth,
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
    /// The variables to set in a child claude's environment (real values).
    pub fn env_vars(&self) -> Vec<(String, String)> {
        match &self.auth {
            KeyAuth::ApiKey(key) => {
                vec![("ANTHROPIC_API_KEY".to_string(), key.expose().to_string())]
            }
            KeyAuth::Env(map) => map
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string()))
                .collect(),
        }
    }

    /// Every secret value of this key (for redaction).
    pub fn secrets(&self) -> impl Iterator<Item = &Secret> {
        let (single, many) = match &self.auth {
            KeyAuth::ApiKey(key) => (Some(key), None),
            KeyAuth::Env(map) => (None, Some(map.values())),
        };
        single.into_iter().chain(many.into_iter().flatten())
    }
}

const ENTRY_KEYS: &[&str] = &["name", "apiKey", "env"];

/// Parses the text of an api-keys.json read from `source` (used in messages only).
pub fn parse_api_keys(text: &str, source: &Path) -> Result<Vec<ApiKey>, ConfigError> {
    let value = parse_json(text, source)?;
    let Value::Array(entries) = &value else {
        return Err(ConfigError::WrongType {
            path: source.to_path_buf(),
            field: String::new(),
            expected: "a JSON array of {\"name\", \"apiKey\"} or {\"name\", \"env\"} objects"
                .into(),
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
                expected: "a name not used by an earlier entry".into(),
                found: format!("{}, already used", show(&key.name)),
                suggestion: None,
            });
        }
        keys.push(key);
    }
    Ok(keys)
}

fn parse_entry(source: &Path, i: usize, entry: &Value) -> Result<ApiKey> {
    let obj = Obj::new(
        source,
        format!("[{i}]"),
        entry,
        "an object {\"name\": ..., \"apiKey\": ...} or {\"name\": ..., \"env\": {...}}",
        true,
    )?;
    obj.check_keys(ENTRY_KEYS)?;

    let name = match obj.map.get("name") {
        None => return Err(obj.missing("name", "a non-empty string naming this key")),
        Some(Value::String(s)) if s.trim().is_empty() || s.chars().any(char::is_control) => {
            return Err(obj.invalid(
                obj.path("name"),
                "a non-empty name without control characters",
                describe(&Value::String(s.clone()), true),
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
        (Some(value), None) => KeyAuth::ApiKey(secret_value(&obj, "apiKey".into(), value, false)?),
        (None, Some(value)) => KeyAuth::Env(env_map(&obj, value)?),
    };
    Ok(ApiKey { name, auth })
}

fn env_map(obj: &Obj<'_>, value: &Value) -> Result<BTreeMap<String, Secret>> {
    let expected = "an object mapping environment variable names to strings";
    let Value::Object(map) = value else {
        return Err(obj.wrong_type("env", expected, value));
    };
    if map.is_empty() {
        return Err(obj.invalid(obj.path("env"), expected, "an empty object"));
    }
    let mut out = BTreeMap::new();
    for (name, v) in map {
        if !is_env_var_name(name) {
            // The name could be a pasted secret: describe the problem, do not echo the name.
            let problem = match name.chars().next() {
                None => "an empty name".to_string(),
                Some(c) if c.is_ascii_digit() => "a name starting with a digit".to_string(),
                _ => match name
                    .chars()
                    .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
                {
                    Some(c) if c.is_ascii_graphic() || c == ' ' => {
                        format!("a name containing {c:?}")
                    }
                    _ => "a name containing a non-ASCII or control character".to_string(),
                },
            };
            return Err(obj.invalid(
                obj.path("env"),
                "variable names matching [A-Za-z_][A-Za-z0-9_]*",
                problem,
            ));
        }
        out.insert(
            name.clone(),
            secret_value(obj, format!("env.{name}"), v, true)?,
        );
    }
    Ok(out)
}

/// A secret string for an environment variable: non-empty and without NUL; an `apiKey` also
/// without whitespace (a pasted newline is the usual mistake). Env values may hold spaces
/// (e.g. custom header lists).
fn secret_value(obj: &Obj<'_>, key: String, value: &Value, allow_spaces: bool) -> Result<Secret> {
    let expected = if allow_spaces {
        "a non-empty string"
    } else {
        "a non-empty string without whitespace"
    };
    match value {
        Value::String(s) if s.is_empty() => {
            Err(obj.invalid(obj.path(&key), expected, "an empty string"))
        }
        Value::String(s) if s.contains('\0') => Err(obj.invalid(
            obj.path(&key),
            expected,
            "a string containing a NUL character",
        )),
        Value::String(s) if !allow_spaces && s.chars().any(char::is_whitespace) => {
            Err(obj.invalid(obj.path(&key), expected, "a string containing whitespace"))
        }
        Value::String(s) => Ok(Secret::new(s.clone())),
        other => Err(obj.wrong_type(&key, expected, other)),
    }
}
