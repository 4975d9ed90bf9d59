//! Reading typed fields out of a parsed `serde_json::Value`, with precise errors.
//!
//! We do not derive `Deserialize` for the config: serde's messages name neither the file nor
//! the full JSON path, and cannot suggest a key for a typo. Instead a document is parsed into a
//! `Value` (which gives line/column for syntax errors), every object is checked against its
//! list of known keys, and each field is read by a small typed accessor that knows its JSON
//! path. The value checks that do not depend on JSON (branch names, URLs) live here too.

use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::secret::redact_key_shapes;

/// Longest unknown key name from a secrets file that error messages echo without it being
/// close to a known key: real tokens are longer.
const MAX_SHOWN_SECRET_KEY: usize = 12;

pub(crate) type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// Strings longer than this are cut in error messages.
const MAX_SHOWN_CHARS: usize = 80;

/// Parses `text` as JSON, reporting syntax errors with line and column.
pub(crate) fn parse_json(text: &str, file: &Path) -> Result<Value> {
    // Editors on some platforms write a BOM; serde_json rejects it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    serde_json::from_str(text).map_err(|err| {
        // serde_json appends " at line X column Y"; we print those ourselves.
        let full = err.to_string();
        let message = match full.rfind(" at line ") {
            Some(at) => full[..at].to_string(),
            None => full,
        };
        ConfigError::Syntax {
            path: file.to_path_buf(),
            line: err.line(),
            column: err.column(),
            message,
        }
    })
}

/// `a.b`, or `b` at the top level.
pub(crate) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Describes a value for "found ..." in an error. With `hide_strings`, string contents are
/// replaced by their kind: used for api-keys.json, whose strings may be secrets.
pub(crate) fn describe(value: &Value, hide_strings: bool) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.is_empty() => "an empty string".into(),
        Value::String(_) if hide_strings => "a string".into(),
        Value::String(s) => format!("the string {}", show(s)),
        Value::Array(a) if a.is_empty() => "an empty array".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// A quoted, escaped, length-limited rendering of a user string for error messages.
pub(crate) fn show(s: &str) -> String {
    let shown: String = s.chars().take(MAX_SHOWN_CHARS).collect();
    if shown.len() < s.len() {
        format!("{shown:?}...")
    } else {
        format!("{shown:?}")
    }
}

/// A key name from a secrets file, fit for an error message: a pasted secret in key position
/// (long and not a near miss of a known key, or shaped like an Anthropic key) is replaced by a
/// description.
pub(crate) fn safe_key_name(key: &str, is_near_miss: bool) -> String {
    let redacted = redact_key_shapes(key);
    if redacted != key || (!is_near_miss && key.chars().count() > MAX_SHOWN_SECRET_KEY) {
        format!("<unrecognized name of {} characters>", key.chars().count())
    } else {
        key.to_string()
    }
}

/// The known key closest to `unknown`, if any is close enough to be a plausible typo.
pub(crate) fn suggest<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    // Compare case- and separator-insensitively so `worker_count` and `WorkerCount` map to
    // `workerCount`.
    let fold = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let target = fold(unknown);
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&target, &fold(k)), *k))
        .filter(|(distance, k)| *distance <= 2.max(k.len() / 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

/// Read access to one JSON object with its file and JSON path, for error messages.
pub(crate) struct Obj<'a> {
    pub file: &'a Path,
    pub prefix: String,
    pub map: &'a Map<String, Value>,
    /// True inside api-keys.json: never echo string values.
    pub secret: bool,
}

impl<'a> Obj<'a> {
    /// Wraps `value`, which must be an object; `what` describes it for the error.
    pub fn new(
        file: &'a Path,
        prefix: String,
        value: &'a Value,
        what: &str,
        secret: bool,
    ) -> Result<Self> {
        match value {
            Value::Object(map) => Ok(Obj {
                file,
                prefix,
                map,
                secret,
            }),
            other => Err(ConfigError::WrongType {
                path: file.to_path_buf(),
                field: prefix,
                expected: what.to_string(),
                found: describe(other, secret),
            }),
        }
    }

    pub fn path(&self, key: &str) -> String {
        join(&self.prefix, key)
    }

    /// Fails on the first key not in `known` (keys are checked in sorted order).
    pub fn check_keys(&self, known: &[&str]) -> Result<()> {
        self.check_keys_accepting(known, &[])
    }

    /// [`Obj::check_keys`] that also accepts the keys in `also` (suggested for typos, but not
    /// listed as expected: the original tool's names).
    pub fn check_keys_accepting(&self, known: &[&str], also: &[&str]) -> Result<()> {
        let all: Vec<&str> = known.iter().chain(also).copied().collect();
        for key in self.map.keys() {
            if all.contains(&key.as_str()) {
                continue;
            }
            let suggestion = suggest(key, &all).map(|k| self.path(k));
            // A misplaced secret can end up as a key name; never print one.
            let shown = if self.secret {
                safe_key_name(key, suggestion.is_some())
            } else {
                key.clone()
            };
            return Err(ConfigError::UnknownField {
                path: self.file.to_path_buf(),
                field: self.path(&shown),
                suggestion,
                expected: known.iter().map(|k| k.to_string()).collect(),
            });
        }
        Ok(())
    }

    /// The value of `key`; absent keys are `None`. A JSON `null` counts as absent only when
    /// `nullable`, otherwise it is returned and fails the type check of the caller.
    fn raw(&self, key: &str, nullable: bool) -> Option<&'a Value> {
        match self.map.get(key) {
            Some(Value::Null) if nullable => None,
            other => other,
        }
    }

    pub fn wrong_type(&self, key: &str, expected: &str, found: &Value) -> ConfigError {
        ConfigError::WrongType {
            path: self.file.to_path_buf(),
            field: self.path(key),
            expected: expected.to_string(),
            found: describe(found, self.secret),
        }
    }

    pub fn invalid(
        &self,
        field: String,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> ConfigError {
        ConfigError::InvalidValue {
            path: self.file.to_path_buf(),
            field,
            expected: expected.into(),
            found: found.into(),
            suggestion: None,
        }
    }

    pub fn missing(&self, key: &str, expected: &str) -> ConfigError {
        ConfigError::MissingField {
            path: self.file.to_path_buf(),
            field: self.path(key),
            expected: expected.to_string(),
        }
    }

    /// An integer in `min..=max`.
    pub fn int(&self, key: &str, min: u64, max: u64, nullable: bool) -> Result<Option<u64>> {
        let Some(value) = self.raw(key, nullable) else {
            return Ok(None);
        };
        let expected = if max == u64::MAX {
            format!("an integer >= {min}")
        } else {
            format!("an integer from {min} to {max}")
        };
        let Value::Number(n) = value else {
            return Err(self.wrong_type(key, &expected, value));
        };
        match n.as_u64() {
            Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
            _ => Err(self.invalid(self.path(key), expected, n.to_string())),
        }
    }

    /// A finite number > 0.
    pub fn positive_number(&self, key: &str) -> Result<Option<f64>> {
        let Some(value) = self.raw(key, true) else {
            return Ok(None);
        };
        let expected = "a number greater than 0";
        let Value::Number(n) = value else {
            return Err(self.wrong_type(key, expected, value));
        };
        match n.as_f64() {
            Some(v) if v.is_finite() && v > 0.0 => Ok(Some(v)),
            _ => Err(self.invalid(self.path(key), expected, n.to_string())),
        }
    }

    /// A fraction in `(0, 1]` (a share of a quota).
    pub fn fraction(&self, key: &str) -> Result<Option<f64>> {
        let Some(value) = self.raw(key, false) else {
            return Ok(None);
        };
        let expected = "a number greater than 0 and at most 1";
        let Value::Number(n) = value else {
            return Err(self.wrong_type(key, expected, value));
        };
        match n.as_f64() {
            Some(v) if v.is_finite() && v > 0.0 && v <= 1.0 => Ok(Some(v)),
            _ => Err(self.invalid(self.path(key), expected, n.to_string())),
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        let Some(value) = self.raw(key, false) else {
            return Ok(None);
        };
        match value {
            Value::Bool(b) => Ok(Some(*b)),
            other => Err(self.wrong_type(key, "true or false", other)),
        }
    }

    /// A string; with `non_empty`, also rejects "" and whitespace-only strings.
    pub fn string(&self, key: &str, non_empty: bool, nullable: bool) -> Result<Option<&'a str>> {
        let Some(value) = self.raw(key, nullable) else {
            return Ok(None);
        };
        let expected = if non_empty {
            "a non-empty string"
        } else {
            "a string"
        };
        match value {
            Value::String(s) if non_empty && s.trim().is_empty() => {
                Err(self.invalid(self.path(key), expected, describe(value, self.secret)))
            }
            Value::String(s) => Ok(Some(s)),
            other => Err(self.wrong_type(key, expected, other)),
        }
    }

    /// A nested object, already checked against `known`.
    pub fn object(&self, key: &str, known: &[&str]) -> Result<Option<Obj<'a>>> {
        let Some(value) = self.raw(key, false) else {
            return Ok(None);
        };
        let expected = format!("an object with keys {}", known.join(", "));
        let obj = Obj::new(self.file, self.path(key), value, &expected, self.secret)?;
        obj.check_keys(known)?;
        Ok(Some(obj))
    }

    pub fn array(&self, key: &str, expected: &str) -> Result<Option<&'a Vec<Value>>> {
        let Some(value) = self.raw(key, false) else {
            return Ok(None);
        };
        match value {
            Value::Array(items) => Ok(Some(items)),
            other => Err(self.wrong_type(key, expected, other)),
        }
    }

    /// One of a fixed set of strings, with a suggestion for near misses.
    pub fn choice<T: Copy>(&self, key: &str, choices: &[(&str, T)]) -> Result<Option<T>> {
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        let expected = format!(
            "one of {}",
            names
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let Some(value) = self.raw(key, false) else {
            return Ok(None);
        };
        let Value::String(s) = value else {
            return Err(self.wrong_type(key, &expected, value));
        };
        if let Some((_, v)) = choices.iter().find(|(name, _)| name == s) {
            return Ok(Some(*v));
        }
        Err(ConfigError::InvalidValue {
            path: self.file.to_path_buf(),
            field: self.path(key),
            expected,
            found: describe(value, self.secret),
            suggestion: suggest(s, &names).map(str::to_string),
        })
    }
}

/// Why `name` is not a usable git branch name (rules of `git check-ref-format --branch`,
/// slightly stricter), or `None` if it is fine.
pub(crate) fn branch_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("it is empty");
    }
    if name.starts_with('-') {
        return Some("it starts with \"-\"");
    }
    if name.chars().any(|c| c.is_whitespace()) {
        return Some("it contains whitespace");
    }
    if name.chars().any(|c| c.is_control()) {
        return Some("it contains a control character");
    }
    if let Some(c) = name.chars().find(|c| "~^:?*[\\".contains(*c)) {
        return Some(match c {
            '~' => "it contains \"~\"",
            '^' => "it contains \"^\"",
            ':' => "it contains \":\"",
            '?' => "it contains \"?\"",
            '*' => "it contains \"*\"",
            '[' => "it contains \"[\"",
            _ => "it contains \"\\\"",
        });
    }
    if name.contains("..") {
        return Some("it contains \"..\"");
    }
    if name.contains("@{") || name == "@" {
        return Some("it contains \"@{\" or is \"@\"");
    }
    if name.ends_with('/') {
        return Some("it ends with \"/\"");
    }
    if name.ends_with(".lock") {
        return Some("it ends with \".lock\"");
    }
    if name.ends_with('.') {
        return Some("it ends with \".\"");
    }
    if name.starts_with('/') || name.contains("//") {
        return Some("it has an empty path component");
    }
    if name.split('/').any(|part| part.starts_with('.')) {
        return Some("a path component starts with \".\"");
    }
    None
}

/// Why an `envFiles` entry is unusable, or `None`.
pub(crate) fn env_file_problem(name: &str) -> Option<&'static str> {
    if name.trim().is_empty() {
        return Some("it is empty");
    }
    if name.contains('\0') {
        return Some("it contains a NUL byte");
    }
    let path = Path::new(name);
    if path.is_absolute() || name.starts_with('/') || name.starts_with('\\') {
        return Some(
            "it is an absolute path; cco copies envFiles from the config directory or a local \
             source repository: copy the file next to orchestrator.json and list its name",
        );
    }
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
        || name.split(['/', '\\']).any(|part| part == "..")
    {
        return Some("it contains \"..\"");
    }
    None
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `base.join(path)` without `.` components; absolute paths are kept as they are.
pub(crate) fn resolve(base: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    joined
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// The directory relative config paths are resolved against: the parent of `source`, made
/// absolute when possible.
pub(crate) fn config_dir_of(source: &Path) -> PathBuf {
    let parent = match source.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let absolute = std::path::absolute(&parent).unwrap_or(parent);
    resolve(&absolute, Path::new(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let known = ["workerCount", "branch", "models"];
        assert_eq!(suggest("workerCont", &known), Some("workerCount"));
        assert_eq!(suggest("worker_count", &known), Some("workerCount"));
        assert_eq!(suggest("Branch", &known), Some("branch"));
        assert_eq!(suggest("zzzzzzzzzz", &known), None);
    }

    #[test]
    fn branch_names() {
        for ok in ["main", "feature/x-1", "release-2.0", "a_b"] {
            assert_eq!(branch_problem(ok), None, "{ok}");
        }
        for bad in [
            "", "-x", "a b", "a..b", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b", "x.lock", "x/",
            "/x", "a//b", ".x", "a/.b", "@", "a@{b",
        ] {
            assert!(branch_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn env_files() {
        assert_eq!(env_file_problem(".env"), None);
        assert_eq!(env_file_problem("config/.env.local"), None);
        assert!(env_file_problem("/etc/passwd").is_some());
        assert!(env_file_problem("../.env").is_some());
        assert!(env_file_problem("a/../../b").is_some());
        assert!(env_file_problem("").is_some());
    }

    #[test]
    fn env_var_names() {
        assert!(is_env_var_name("ANTHROPIC_API_KEY"));
        assert!(is_env_var_name("_x1"));
        assert!(!is_env_var_name("1X"));
        assert!(!is_env_var_name("A-B"));
        assert!(!is_env_var_name(""));
    }

    #[test]
    fn resolve_strips_cur_dir() {
        assert_eq!(
            resolve(Path::new("/cfg"), Path::new("./repo")),
            PathBuf::from("/cfg/repo")
        );
        assert_eq!(
            resolve(Path::new("/cfg"), Path::new("/abs")),
            PathBuf::from("/abs")
        );
    }
}
