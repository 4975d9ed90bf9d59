//! The one error type of this crate.
//!
//! Every message starts with the full path of the offending file, then names the field as a
//! JSON path (`gitCloneOptions.depth`, `envFiles[1]`, `[2].apiKey`) and says what was
//! expected and what was found, so a user can fix the file without reading the docs.
//! Values from api-keys.json are never put into a message (only their JSON type).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required file (orchestrator.json) does not exist.
    #[error("{}: required file not found ({what})", path.display())]
    MissingFile { path: PathBuf, what: String },

    /// The file exists but could not be read (permissions, a directory, not UTF-8, ...).
    #[error("{}: cannot read file: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The file is not valid JSON.
    #[error("{}: invalid JSON at line {line}, column {column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    /// A key that is not part of the schema (most often a typo).
    #[error(
        "{}: unknown field \"{field}\"{}; expected one of: {}",
        path.display(),
        Suggestion(suggestion.as_deref()),
        expected.join(", ")
    )]
    UnknownField {
        path: PathBuf,
        field: String,
        suggestion: Option<String>,
        /// The keys that are valid at that level.
        expected: Vec<String>,
    },

    /// A required field is absent.
    #[error("{}: missing required field \"{field}\": expected {expected}", path.display())]
    MissingField {
        path: PathBuf,
        field: String,
        expected: String,
    },

    /// A field has the wrong JSON type.
    #[error("{}: {}: expected {expected}, found {found}", path.display(), Field(field))]
    WrongType {
        path: PathBuf,
        field: String,
        expected: String,
        found: String,
    },

    /// A field has the right type but an invalid value.
    #[error(
        "{}: {}: expected {expected}, found {found}{}",
        path.display(),
        Field(field),
        Suggestion(suggestion.as_deref())
    )]
    InvalidValue {
        path: PathBuf,
        field: String,
        expected: String,
        found: String,
        suggestion: Option<String>,
    },

    /// Two fields that say the same thing (an original key and its cco name, `model` and
    /// `models`) are both set.
    #[error(
        "{}: fields \"{field}\" and \"{other}\" are both set: {hint}",
        path.display()
    )]
    Conflict {
        path: PathBuf,
        field: String,
        other: String,
        hint: String,
    },

    /// The claude binary could not be found or is not executable.
    #[error(
        "{}: {}: expected an executable claude binary, {problem} (searched: {})",
        path.display(),
        Field(field),
        searched.join(", ")
    )]
    ClaudeBinary {
        path: PathBuf,
        field: String,
        problem: String,
        searched: Vec<String>,
    },

    /// `authMode: "api-keys-only"` without any key.
    #[error(
        "{}: field \"authMode\": \"api-keys-only\" expects at least one key in {}, found {found}",
        path.display(),
        keys_path.display()
    )]
    NoApiKeys {
        path: PathBuf,
        keys_path: PathBuf,
        found: String,
    },
}

impl ConfigError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ConfigError::MissingFile { path, .. }
            | ConfigError::Io { path, .. }
            | ConfigError::Syntax { path, .. }
            | ConfigError::UnknownField { path, .. }
            | ConfigError::MissingField { path, .. }
            | ConfigError::WrongType { path, .. }
            | ConfigError::InvalidValue { path, .. }
            | ConfigError::Conflict { path, .. }
            | ConfigError::ClaudeBinary { path, .. }
            | ConfigError::NoApiKeys { path, .. } => path,
        }
    }

    /// The JSON path of the field the error is about, if it is about one field.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownField { field, .. }
            | ConfigError::MissingField { field, .. }
            | ConfigError::WrongType { field, .. }
            | ConfigError::InvalidValue { field, .. }
            | ConfigError::Conflict { field, .. }
            | ConfigError::ClaudeBinary { field, .. } => Some(field),
            ConfigError::NoApiKeys { .. } => Some("authMode"),
            _ => None,
        }
    }
}

/// `field "x"`, or `top level` for the document root (an empty JSON path).
struct Field<'a>(&'a str);

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("top level")
        } else {
            write!(f, "field \"{}\"", self.0)
        }
    }
}

/// ` (did you mean "x"?)` or nothing.
struct Suggestion<'a>(Option<&'a str>);

impl fmt::Display for Suggestion<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, " (did you mean \"{s}\"?)"),
            None => Ok(()),
        }
    }
}
