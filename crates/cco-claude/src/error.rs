//! Errors of [`crate::ClaudeSession::spawn`]. Everything after a successful spawn is reported
//! through [`crate::SessionOutcome`], never as an error.

use std::path::PathBuf;

/// Why a session could not be started.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot start claude binary {}: {source}", binary.display())]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create CLAUDE_CONFIG_DIR {}: {source}", path.display())]
    ConfigDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("working directory {} is not usable: {source}", path.display())]
    Cwd {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open transcript file {}: {source}", path.display())]
    Transcript {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ClaudeSession::spawn must be called inside a tokio runtime")]
    NoRuntime,
    #[error("the spawned claude process has no pid")]
    NoPid,
}
