//! Errors, one enum per failure area. They stay typed across actor hops (a `GitError` is
//! carried, not its text) and become text only where a person or an agent reads them.

use std::path::PathBuf;

use cco_git::GitError;

/// Errors of starting a run (everything later is reported through events and the summary).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("cannot create the run folder {path}: {source}")]
    RunDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the git actor: {source}")]
    Git { source: Box<GitError> },
    #[error("cannot prepare the repository {url}: {source}")]
    Repository { url: String, source: Box<GitError> },
    #[error("cannot resume: {0}")]
    Journal(#[from] crate::journal::JournalError),
    #[error("cannot start the supervision tree: {0}")]
    Actors(String),
    #[error("cannot start the cluster: {0}")]
    Cluster(String),
    /// Another cco runs this config (or its lock file cannot be used).
    #[error(transparent)]
    Locked(#[from] crate::runlock::LockError),
}

/// An agent could not be given its worktree or its claude config dir.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AgentSetupError {
    #[error("{agent}: worktree: {source}")]
    Worktree { agent: String, source: GitError },
    #[error("{agent}: config dir {}: {source}", path.display())]
    ConfigDir {
        agent: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why a worker's job ended without a finished turn. The text is the task's failure reason.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JobFailure {
    /// The turn failed: the session's reason ("timed out", "gave up after 3 failed runs").
    #[error("{0}")]
    Turn(String),
    #[error("could not prepare the worktree: {0}")]
    Prepare(GitError),
    /// Merging the target into the worktree (before a conflict turn) failed.
    #[error("{0}")]
    MergeTarget(GitError),
    /// The conflict turn left the merge unconcluded (markers, unmerged files).
    #[error("{0}")]
    Conclude(GitError),
    /// The worker had a job already (the lead re-queues this one).
    #[error("worker busy")]
    Busy,
    /// Only the API failed the turn (it stayed unavailable longer than the turn's budget):
    /// the task goes back to the queue, it does not fail.
    #[error("{0}")]
    ApiUnavailable(String),
}

/// A lead cannot go on (its Director restarts it).
#[derive(Debug, thiserror::Error)]
pub(crate) enum LeadError {
    #[error("{lead}: every worker gave up")]
    AllWorkersGaveUp { lead: String },
    #[error(transparent)]
    Setup(#[from] AgentSetupError),
}

/// The Director cannot start the run's teams.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DirectorError {
    #[error("team branch for {team}: {source}")]
    TeamBranch { team: String, source: GitError },
    #[error(transparent)]
    Setup(#[from] AgentSetupError),
}
