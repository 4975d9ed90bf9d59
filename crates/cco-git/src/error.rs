//! The one error type of the crate. Every variant carries enough context (op, args, path,
//! stderr tail) to be logged or turned into a task without re-running anything.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git {op} failed ({}) in {path}: `git {args}`: {stderr_tail}", exit_text(*code))]
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

    #[error(
        "merge of {source_branch} into {target} conflicts in {} (strategy: fail)",
        list(files)
    )]
    MergeConflict {
        source_branch: String,
        target: String,
        files: Vec<String>,
    },

    #[error(
        "merge in {path} not concluded: unresolved conflicts in {}",
        list(files)
    )]
    UnresolvedConflicts { path: PathBuf, files: Vec<String> },

    /// A conflict resolution that adds conflict markers neither parent had.
    #[error(
        "the conflict resolution in {path} leaves conflict markers at {}",
        list(markers)
    )]
    ConflictMarkers {
        path: PathBuf,
        markers: Vec<crate::types::FileLine>,
    },

    /// Commits refused before they reach a ref cco owns (see [`Refusal`]); the message is
    /// meant for the agent that made them.
    #[error("{0}")]
    Refused(Refusal),

    /// A shared branch (base or team) no longer held the commit cco last wrote: someone else
    /// moved it. Its commits are kept in `kept_in`, the branch was put back (`restored`).
    #[error("{branch} was moved behind cco's back: expected {expected}, found {found}; {}{}", kept_in.as_deref().map(|k| format!("foreign commits kept in {k}; ")).unwrap_or_default(), if *restored { "branch restored" } else { "restoring it FAILED" })]
    BranchMoved {
        branch: String,
        expected: String,
        found: String,
        /// The foreign commits (newest first, at most 20).
        commits: Vec<String>,
        kept_in: Option<String>,
        restored: bool,
    },

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

    /// A git process printed more than cco reads from it (`limit` bytes); it was killed.
    #[error("git {op} printed more than {} in {path}; stopped", mib(*limit))]
    OutputTooLarge {
        op: String,
        path: PathBuf,
        limit: u64,
    },

    #[error("git op {op} exceeded its budget of {timeout:?}")]
    OpTimeout { op: String, timeout: Duration },

    #[error("git actor: {0}")]
    Actor(String),

    #[error("git actor stopped before running {op}")]
    Stopped { op: String },

    /// The machine, not the task: disk full, read-only file system, quota exceeded, git
    /// missing. The caller pauses the run instead of failing tasks
    /// ([`GitError::environment`]).
    #[error("{kind} in {path}: {detail}")]
    Environment {
        kind: EnvFailure,
        path: PathBuf,
        detail: String,
    },
}

/// Why commits are refused: each names where (commit, file, line) but never a secret value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refusal {
    /// A path git treats as its own directory (`.git` in any case or spelling).
    GitPath { commit: String, path: String },
    /// A symlink whose target leaves the repository.
    Symlink { path: String, reason: String },
    /// A submodule (gitlink or `.gitmodules` URL) pointing to a local path.
    LocalSubmodule { path: String },
    /// A complete conflict-marker block in added lines.
    ConflictMarkers { at: Vec<crate::types::FileLine> },
    /// A secret value or key shape in added lines or a commit message.
    Secret { findings: Vec<SecretFinding> },
    /// Objects git's own checks (`fsck`) reject.
    Malformed { commit: String, problem: String },
    /// A change whose patch is larger than cco checks (`limit` bytes of `git log -p`).
    TooLarge { limit: u64 },
}

/// Where a secret was found: a file and line, or a commit message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretFinding {
    pub commit: String,
    /// `None`: in the commit message.
    pub at: Option<crate::types::FileLine>,
    /// What kind of secret and, without `at`, where (`an Anthropic API key or token in the
    /// message`, `... in the author or committer`, `... in a file name`), never the value.
    pub what: String,
}

impl std::fmt::Display for SecretFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let commit = &self.commit[..self.commit.len().min(10)];
        match &self.at {
            Some(at) => write!(f, "{} at {at} (commit {commit})", self.what),
            None => write!(f, "{} (commit {commit})", self.what),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::GitPath { commit, path } => write!(
                f,
                "commit {} adds {path}, a path inside a `.git` directory; remove it",
                &commit[..commit.len().min(10)]
            ),
            Refusal::Symlink { path, reason } => {
                write!(f, "symlink {path} {reason}; symlinks must stay inside the repository")
            }
            Refusal::LocalSubmodule { path } => write!(
                f,
                "submodule {path} points to a local path; use a remote URL or no submodule"
            ),
            Refusal::ConflictMarkers { at } => write!(
                f,
                "conflict markers (<<<<<<< ... ======= ... >>>>>>>) are committed at {}; resolve them",
                list(at)
            ),
            Refusal::Malformed { commit, problem } => write!(
                f,
                "commit {} holds objects git rejects ({problem}); recreate the commits with plain git commands",
                &commit[..commit.len().min(10)]
            ),
            Refusal::TooLarge { limit } => write!(
                f,
                "the change is too large to check (its patch is over {}); keep generated files, \
                 build outputs and data sets out of the commits (add them to .gitignore)",
                mib(*limit)
            ),
            Refusal::Secret { findings } => write!(
                f,
                "a secret is committed: {}; remove it from the files and from history (amend or rewrite the commits), never commit credentials",
                list(findings)
            ),
        }
    }
}

/// `256 MiB`.
fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes / (1024 * 1024))
}

/// How a process ended, in words: `exit code 128`, or `killed by a signal` (no exit code).
fn exit_text(code: Option<i32>) -> String {
    match code {
        Some(code) => format!("exit code {code}"),
        None => "killed by a signal".to_string(),
    }
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// An environmental failure: nothing a task or an agent can fix, everything the operator can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvFailure {
    /// ENOSPC.
    DiskFull,
    /// EROFS.
    ReadOnly,
    /// EDQUOT.
    QuotaExceeded,
    /// The git program could not be found.
    GitMissing,
}

impl std::fmt::Display for EnvFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EnvFailure::DiskFull => "disk full",
            EnvFailure::ReadOnly => "read-only file system",
            EnvFailure::QuotaExceeded => "disk quota exceeded",
            EnvFailure::GitMissing => "git is not installed",
        })
    }
}

impl EnvFailure {
    /// The failure an I/O error stands for, if it is environmental.
    pub fn from_io(e: &std::io::Error) -> Option<EnvFailure> {
        match e.raw_os_error()? {
            libc_codes::ENOSPC => Some(EnvFailure::DiskFull),
            libc_codes::EROFS => Some(EnvFailure::ReadOnly),
            libc_codes::EDQUOT => Some(EnvFailure::QuotaExceeded),
            _ => None,
        }
    }

    /// The failure git reports in `stderr` (its `strerror` text, run with `LC_ALL=C`).
    pub(crate) fn from_git_stderr(stderr: &str) -> Option<EnvFailure> {
        if stderr.contains("No space left on device") {
            Some(EnvFailure::DiskFull)
        } else if stderr.contains("Read-only file system") {
            Some(EnvFailure::ReadOnly)
        } else if stderr.contains("Disk quota exceeded") {
            Some(EnvFailure::QuotaExceeded)
        } else {
            None
        }
    }
}

mod libc_codes {
    use nix::errno::Errno;
    pub const ENOSPC: i32 = Errno::ENOSPC as i32;
    pub const EROFS: i32 = Errno::EROFS as i32;
    pub const EDQUOT: i32 = Errno::EDQUOT as i32;
}

impl GitError {
    /// `Some` when the failure is the machine's (disk full, read-only, quota, git missing):
    /// pause the run, do not fail the task.
    pub fn environment(&self) -> Option<EnvFailure> {
        match self {
            GitError::Environment { kind, .. } => Some(*kind),
            GitError::Io { source, .. } | GitError::Spawn { source, .. } => {
                EnvFailure::from_io(source)
            }
            _ => None,
        }
    }

    /// True when the run's integrity is at stake and cco could not restore it (a shared
    /// branch moved and could not be put back): the caller stops the run.
    pub fn is_integrity_failure(&self) -> bool {
        matches!(
            self,
            GitError::BranchMoved {
                restored: false,
                ..
            }
        )
    }

    pub(crate) fn spawn(
        op: &str,
        program: &str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound && program_is_git(program) {
            return GitError::Environment {
                kind: EnvFailure::GitMissing,
                path,
                detail: format!("{op}: could not run `{program}`: {source}"),
            };
        }
        if let Some(kind) = EnvFailure::from_io(&source) {
            return GitError::Environment {
                kind,
                path,
                detail: format!("{op}: could not run `{program}`: {source}"),
            };
        }
        GitError::Spawn {
            op: op.to_string(),
            program: program.to_string(),
            path,
            source,
        }
    }

    pub(crate) fn invalid(op: &str, reason: impl Into<String>) -> Self {
        GitError::Invalid {
            op: op.to_string(),
            reason: reason.into(),
        }
    }
    pub(crate) fn io(op: &str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        if let Some(kind) = EnvFailure::from_io(&source) {
            return GitError::Environment {
                kind,
                path: path.into(),
                detail: format!("{op}: {source}"),
            };
        }
        GitError::Io {
            op: op.to_string(),
            path: path.into(),
            source,
        }
    }
}

fn program_is_git(program: &str) -> bool {
    std::path::Path::new(program)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("git"))
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
