//! Environment variables that cco passes to agents: `env` in orchestrator.json (every agent),
//! and `env` / `envOverrides` of an api-keys.json entry (the processes on that credential).
//!
//! Rules shared by all three: names match `[A-Za-z_][A-Za-z0-9_]*`; names cco sets itself are
//! errors (a value there would silently lose, or break cco); values are [`Secret`]s, so they
//! never reach a message, `Debug` or a log. A name that is not valid is described, not echoed:
//! it may be a secret pasted into the wrong place.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::secret::Secret;
use crate::validate::{is_env_var_name, Obj, Result};

/// Variables cco sets (or removes) for every claude process, with the reason.
const RESERVED: &[(&str, &str)] = &[
    (
        "CLAUDE_CONFIG_DIR",
        "cco gives every agent its own claude config directory",
    ),
    (
        "CLAUDECODE",
        "cco removes it so that claude does not think it runs inside claude",
    ),
    (
        "IS_SANDBOX",
        "cco sets it when claude runs as root with bypassPermissions",
    ),
    (
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
        "cco sets it for every agent",
    ),
    ("DISABLE_AUTOUPDATER", "cco sets it for every agent"),
];

/// Every `CCO_*` name is cco's (`CCO_AGENT_ID`, `CCO_AGENT_ROLE`, `CCO_TASK_ID`, ...).
const RESERVED_PREFIX: &str = "CCO_";

/// The variables a credential sets; only api-keys.json may set them.
pub const CREDENTIAL_VARS: &[&str] = &["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"];

/// Why `name` cannot be set by a config file, or `None`. With `credential`, the name is in
/// an api-keys.json entry, where the credential variables are the point.
pub fn reserved_reason(name: &str, credential: bool) -> Option<String> {
    if let Some((_, why)) = RESERVED.iter().find(|(n, _)| *n == name) {
        return Some(format!("{name} is set by cco ({why})"));
    }
    if name.starts_with(RESERVED_PREFIX) {
        return Some(format!(
            "{RESERVED_PREFIX}* variables are set by cco (agent id, role, task)"
        ));
    }
    if !credential && CREDENTIAL_VARS.contains(&name) {
        return Some(format!(
            "{name} is the credential of the process: cco sets it from api-keys.json \
             (authMode \"api-keys-first\" or \"api-keys-only\"), or leaves the CLI's own login"
        ));
    }
    None
}

/// What to accept in one environment object.
#[derive(Clone, Copy)]
pub(crate) struct EnvRules {
    /// `ANTHROPIC_API_KEY` / `ANTHROPIC_AUTH_TOKEN` allowed (api-keys.json).
    pub credential: bool,
    /// `{}` allowed.
    pub empty_object: bool,
    /// `""` allowed as a value.
    pub empty_value: bool,
}

/// Reads `obj[key]`, an object of variables; `None` when absent.
pub(crate) fn env_object(
    obj: &Obj<'_>,
    key: &str,
    rules: EnvRules,
) -> Result<Option<BTreeMap<String, Secret>>> {
    let Some(value) = obj.map.get(key) else {
        return Ok(None);
    };
    let expected = "an object mapping environment variable names to strings";
    let Value::Object(map) = value else {
        return Err(obj.wrong_type(key, expected, value));
    };
    if map.is_empty() && !rules.empty_object {
        return Err(obj.invalid(obj.path(key), expected, "an empty object"));
    }
    let mut out = BTreeMap::new();
    for (name, v) in map {
        if !is_env_var_name(name) {
            return Err(obj.invalid(
                obj.path(key),
                "variable names matching [A-Za-z_][A-Za-z0-9_]*",
                name_problem(name),
            ));
        }
        let field = format!("{key}.{name}");
        if let Some(why) = reserved_reason(name, rules.credential) {
            return Err(obj.invalid(obj.path(&field), "a variable cco does not set itself", why));
        }
        out.insert(
            name.clone(),
            secret_value(obj, &field, v, true, rules.empty_value)?,
        );
    }
    Ok(Some(out))
}

/// Describes an invalid variable name without echoing it.
fn name_problem(name: &str) -> String {
    match name.chars().next() {
        None => "an empty name".to_string(),
        Some(c) if c.is_ascii_digit() => "a name starting with a digit".to_string(),
        _ => match name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
        {
            Some(c) if c.is_ascii_graphic() || c == ' ' => format!("a name containing {c:?}"),
            _ => "a name containing a non-ASCII or control character".to_string(),
        },
    }
}

/// The longest value of an environment variable (bytes), under the kernel's 128 KiB limit on
/// one environment string.
pub const MAX_ENV_VALUE: usize = 100 * 1024;

/// A secret string for an environment variable: without NUL; an `apiKey` (no `allow_spaces`)
/// also without whitespace (a pasted newline is the usual mistake). Env values may hold
/// spaces (e.g. custom header lists). The value is never echoed.
pub(crate) fn secret_value(
    obj: &Obj<'_>,
    key: &str,
    value: &Value,
    allow_spaces: bool,
    allow_empty: bool,
) -> Result<Secret> {
    let expected = match (allow_spaces, allow_empty) {
        (true, true) => "a string",
        (true, false) => "a non-empty string",
        _ => "a non-empty string without whitespace",
    };
    match value {
        Value::String(s) if s.is_empty() && !allow_empty => {
            Err(obj.invalid(obj.path(key), expected, "an empty string"))
        }
        Value::String(s) if s.contains('\0') => Err(obj.invalid(
            obj.path(key),
            expected,
            "a string containing a NUL character",
        )),
        Value::String(s) if !allow_spaces && s.chars().any(char::is_whitespace) => {
            Err(obj.invalid(obj.path(key), expected, "a string containing whitespace"))
        }
        // Linux refuses an environment string (NAME=value) over 128 KiB when it starts a
        // process: such a value would fail every claude process of the run.
        Value::String(s) if s.len() > MAX_ENV_VALUE => Err(obj.invalid(
            obj.path(key),
            expected,
            format!(
                "a string of {} bytes (at most {MAX_ENV_VALUE}: a process environment holds \
                 no longer value)",
                s.len()
            ),
        )),
        Value::String(s) => Ok(Secret::new(s.clone())),
        other => Err(crate::error::ConfigError::WrongType {
            path: obj.file.to_path_buf(),
            field: obj.path(key),
            expected: expected.to_string(),
            found: crate::validate::describe(other, true),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names() {
        assert!(reserved_reason("CLAUDE_CONFIG_DIR", true).is_some());
        assert!(reserved_reason("CCO_AGENT_ID", true).is_some());
        assert!(reserved_reason("ANTHROPIC_API_KEY", false).is_some());
        assert!(reserved_reason("ANTHROPIC_API_KEY", true).is_none());
        assert!(reserved_reason("ANTHROPIC_BASE_URL", false).is_none());
        assert!(reserved_reason("HTTPS_PROXY", false).is_none());
    }
}
