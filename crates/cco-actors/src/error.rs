//! Errors of starting a run (everything later is reported through events and the summary).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the run folder {path}: {source}")]
    RunDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the git actor: {source}")]
    Git { source: Box<cco_git::GitError> },
    #[error("cannot prepare the repository {url}: {source}")]
    Repository {
        url: String,
        source: Box<cco_git::GitError>,
    },
    #[error("cannot resume: {0}")]
    Journal(#[from] crate::journal::JournalError),
    #[error("cannot start the supervision tree: {0}")]
    Actors(String),
}
