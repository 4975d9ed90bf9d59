//! The one error type of the crate. Every variant carries enough context (op, args, path,
//! stderr tail) to be logged or turned into a task without re-running anything.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git {op} failed (exit {code:?}) in {path}: `git {args}`: {stderr_tail}")]
    Command {
        op: String,
        args: String,
        path: PathBuf,
        code: Option<i32>,
        stderr_tail: String,
    },

    #[error("git {op} timed out after {timeout:?} in {path}: `git {args}` (process group killed)")]
    Timeout {
        op: String,
        args: String,
        path: PathBuf,
        timeout: Duration,
    },

    #[error("{op}: could not run `{program}` in {path}: {source}")]
    Spawn {
        op: String,
        program: String,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{op}: I/O error on {path}: {source}")]
    Io {
        op: String,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("invalid branch name {name:?}: {reason}")]
    InvalidBranchName { name: String, reason: String },

    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },

    #[error("{op}: branch {branch} would commit secret file {path}; refusing")]
    SecretFile {
        op: String,
        branch: String,
        path: String,
    },

    #[error("merge of {source_branch} into {target} conflicts in {files:?} (strategy: fail)")]
    MergeConflict {
        source_branch: String,
        target: String,
        files: Vec<String>,
    },

    #[error("merge in {path} not concluded: unresolved conflicts in {files:?}")]
    UnresolvedConflicts { path: PathBuf, files: Vec<String> },

    #[error(
        "branch {branch} moved concurrently (expected {expected}, now {actual}); not overwritten"
    )]
    RefMoved {
        branch: String,
        expected: String,
        actual: String,
    },

    #[error("{what} not found")]
    NotFound { what: String },

    #[error("{op}: {reason}")]
    Invalid { op: String, reason: String },

    #[error("git op {op} exceeded its budget of {timeout:?}")]
    OpTimeout { op: String, timeout: Duration },

    #[error("git actor: {0}")]
    Actor(String),

    #[error("git actor stopped before running {op}")]
    Stopped { op: String },
}

impl GitError {
    pub(crate) fn invalid(op: &str, reason: impl Into<String>) -> Self {
        GitError::Invalid {
            op: op.to_string(),
            reason: reason.into(),
        }
    }
    pub(crate) fn io(op: &str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        GitError::Io {
            op: op.to_string(),
            path: path.into(),
            source,
        }
    }
}

/// Last `max` characters of `s` (on a char boundary), for error messages and verify output.
pub(crate) fn tail(s: &str, max: usize) -> String {
    let s = s.trim_end();
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &s[start..])
}
