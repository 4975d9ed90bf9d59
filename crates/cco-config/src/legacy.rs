//! Keys of the original tool (`@mohsen/claude-code-orchestrator` 1.3, its schema and README)
//! that cco reads so that an existing config directory works unchanged.
//!
//! Every such key gets a [`KeyNote`] (printed by `cco check`): renamed keys name the cco key
//! to use, legacy keys say what they were turned into, keys with no meaning in cco say why.
//! A key and its cco name together are an error (two values for one setting).

use serde_json::Value;

use crate::error::ConfigError;
use crate::model::KeyNote;
use crate::validate::{Obj, Result};

/// The comment key `cco init` writes: a string or an array of strings, ignored.
pub(crate) const COMMENT_KEY: &str = "$comment";

/// Renamed keys: (original, cco).
pub(crate) const RENAMED: &[(&str, &str)] = &[
    ("groupSize", "engineerManagerGroupSize"),
    ("workspaceDir", "workspaceDirectory"),
    ("cloneDepth", "gitCloneOptions.depth"),
];

/// The original's timing keys, replaced by direct ones.
pub(crate) const DEPRECATED_TIMING: &[&str] = &["timingBaseMs", "stuckThresholdMs"];

/// Keys the original documented that have no meaning in cco, with the reason.
const OBSOLETE: &[(&str, &str)] = &[
    (
        "serverPort",
        "cco runs no hook server: agents' events come from claude's stream-json output",
    ),
    (
        "hookServerPort",
        "cco runs no hook server: agents' events come from claude's stream-json output",
    ),
    (
        "healthCheckIntervalMs",
        "cco watches every claude process continuously (idleTimeoutMs, taskTimeoutMs)",
    ),
    (
        "rateLimitCheckIntervalMs",
        "cco reads rate limits from claude's output as they happen",
    ),
    (
        "managerHeartbeatIntervalMs",
        "the Director and the Engineering Managers act on events, not on a heartbeat",
    ),
];

/// Every original-only key accepted at the top level (besides those cco shares).
pub(crate) fn accepted_keys() -> Vec<&'static str> {
    let mut keys = vec![COMMENT_KEY, "model"];
    keys.extend(RENAMED.iter().map(|(old, _)| *old));
    keys.extend(DEPRECATED_TIMING);
    keys.extend(OBSOLETE.iter().map(|(key, _)| *key));
    keys
}

pub(crate) fn note(key: &str, use_instead: Option<&str>, note: impl Into<String>) -> KeyNote {
    KeyNote {
        key: key.to_string(),
        use_instead: use_instead.map(str::to_string),
        note: note.into(),
    }
}

/// The key a renamed setting is read from: the cco key, or the original one (`None` if
/// neither is there). Both present is an error.
pub(crate) fn renamed_key(top: &Obj<'_>, original: &'static str) -> Result<Option<&'static str>> {
    let cco = RENAMED
        .iter()
        .find(|(old, _)| *old == original)
        .map(|(_, new)| *new)
        .unwrap_or(original);
    let has_cco = match cco.split_once('.') {
        Some((outer, inner)) => {
            matches!(top.map.get(outer), Some(Value::Object(m)) if m.get(inner).is_some_and(|v| !v.is_null()))
        }
        None => top.map.contains_key(cco),
    };
    match (has_cco, top.map.contains_key(original)) {
        (true, true) => Err(conflict(
            top,
            original,
            cco,
            format!("\"{original}\" is the original tool's name of \"{cco}\"; keep only \"{cco}\""),
        )),
        (true, false) => Ok(Some(cco)),
        (false, true) => Ok(Some(original)),
        (false, false) => Ok(None),
    }
}

pub(crate) fn conflict(top: &Obj<'_>, field: &str, other: &str, hint: String) -> ConfigError {
    ConfigError::Conflict {
        path: top.file.to_path_buf(),
        field: field.to_string(),
        other: other.to_string(),
        hint,
    }
}

/// `$comment`: a string or an array of strings.
pub(crate) fn check_comment(top: &Obj<'_>) -> Result<()> {
    let expected = "a string or an array of strings (a comment, ignored)";
    match top.map.get(COMMENT_KEY) {
        None | Some(Value::String(_)) => Ok(()),
        Some(Value::Array(items)) => match items.iter().position(|v| !v.is_string()) {
            None => Ok(()),
            Some(i) => Err(top.wrong_type(&format!("{COMMENT_KEY}[{i}]"), expected, &items[i])),
        },
        Some(other) => Err(top.wrong_type(COMMENT_KEY, expected, other)),
    }
}

/// Notes for the obsolete keys present (their values must be non-negative integers).
pub(crate) fn obsolete(top: &Obj<'_>, notes: &mut Vec<KeyNote>) -> Result<()> {
    for (key, why) in OBSOLETE {
        if top.int(key, 0, u64::MAX, true)?.is_some() || top.map.contains_key(*key) {
            notes.push(note(key, None, format!("ignored: {why}")));
        }
    }
    Ok(())
}

/// The original's single `model` for every role; `None` when absent. The model aliases of
/// the CLI or a full model name (`claude-...`).
pub(crate) fn model(top: &Obj<'_>) -> Result<Option<String>> {
    const ALIASES: &[&str] = &["opus", "sonnet", "haiku"];
    let Some(name) = top.string("model", true, true)? else {
        return Ok(None);
    };
    if top.map.contains_key("models") {
        return Err(conflict(
            top,
            "model",
            "models",
            "\"model\" sets the model of every role, \"models\" one per role; keep one of them"
                .into(),
        ));
    }
    let expected =
        "\"opus\", \"sonnet\", \"haiku\" or a full model name such as \"claude-sonnet-4-5\"";
    if ALIASES.contains(&name) || (name.starts_with("claude-") && name.trim() == name) {
        return Ok(Some(name.to_string()));
    }
    Err(ConfigError::InvalidValue {
        path: top.file.to_path_buf(),
        field: top.path("model"),
        expected: expected.into(),
        found: crate::validate::show(name),
        suggestion: crate::validate::suggest(name, ALIASES).map(str::to_string),
    })
}

/// `timingBaseMs` → poll interval (base / 6) and `stuckThresholdMs` → task timeout (3 ×),
/// as the original computed them, unless the direct key is given. Returns (poll, timeout).
pub(crate) fn timing(
    top: &Obj<'_>,
    notes: &mut Vec<KeyNote>,
) -> Result<(Option<u64>, Option<u64>)> {
    let max = crate::MAX_MS;
    let mut derived = |legacy: &str, direct: &str, min: u64, map: fn(u64) -> u64, what: &str| {
        let Some(value) = top.int(legacy, min, max, false)? else {
            return Ok::<_, ConfigError>(None);
        };
        if top.map.contains_key(direct) {
            notes.push(note(
                legacy,
                Some(direct),
                format!("deprecated, and ignored: {direct} is set"),
            ));
            return Ok(None);
        }
        let mapped = map(value);
        notes.push(note(
            legacy,
            Some(direct),
            format!("deprecated: {direct} = {mapped} ({what}, as the original computed it)"),
        ));
        Ok(Some(mapped))
    };
    // Minimums keep the results within the direct keys' ranges (>= 10 ms, >= 1000 ms).
    let poll = derived(
        "timingBaseMs",
        "pollIntervalMs",
        60,
        |v| (v + 3) / 6,
        "timingBaseMs / 6",
    )?;
    let timeout = derived(
        "stuckThresholdMs",
        "taskTimeoutMs",
        1000,
        |v| v.saturating_mul(3).min(crate::MAX_MS),
        "3 × stuckThresholdMs",
    )?;
    Ok((poll, timeout))
}
