//! Runs as their journals record them: finding the newest run, the one to resume, and reading
//! one ([`SavedRun`]) for `cco status` or any embedder's report.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::Orchestrator;
use crate::board::StatusSnapshot;
use crate::journal::{self, JournalError};
use crate::outcome::RunOutcome;

/// A run as its journal records it (live while the run goes on: the journal is rewritten on
/// every change).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SavedRun {
    pub run_dir: PathBuf,
    pub run_id: String,
    /// The branch the run merges into.
    pub base_branch: String,
    /// The run ended (by completion, a limit, a stop): `cco resume` is for the others.
    pub finished: bool,
    /// Why it ended, in words.
    pub end_reason: Option<String>,
    /// How it ended (journals of older versions of cco do not say).
    pub outcome: Option<RunOutcome>,
    pub written_at: DateTime<Utc>,
    /// The tree, the tasks and the totals when the journal was written.
    pub snapshot: StatusSnapshot,
    /// Problems that did not stop the reading (a damaged journal, the previous one used).
    pub warnings: Vec<String>,
}

impl Orchestrator {
    /// The newest run folder under `log_directory` (`run-<timestamp>` folders).
    pub fn latest_run(log_directory: &Path) -> Option<PathBuf> {
        journal::latest_run_dir(log_directory)
    }

    /// The newest run under `log_directory`, when its journal did not finish (cco died or was
    /// killed): what [`OrchestratorBuilder::resume`](super::OrchestratorBuilder::resume)
    /// continues.
    pub fn unfinished_run(log_directory: &Path) -> Option<PathBuf> {
        journal::unfinished_run(log_directory)
    }

    /// [`unfinished_run`](Self::unfinished_run), telling apart a last run whose journal
    /// cannot be read at all (both it and the previous copy are damaged, or it is from a newer
    /// cco): `Err` with its folder and why. A run folder without a journal (a start that failed
    /// before writing one) has nothing to resume: `Ok(None)`.
    pub fn resumable_run(log_directory: &Path) -> Result<Option<PathBuf>, (PathBuf, JournalError)> {
        let Some(dir) = journal::latest_run_dir(log_directory) else {
            return Ok(None);
        };
        match journal::load(&dir) {
            Ok((journal, _)) if !journal.finished => Ok(Some(dir)),
            Ok(_) | Err(JournalError::Missing { .. }) => Ok(None),
            Err(error) => Err((dir, error)),
        }
    }

    /// Fails with [`LockError::Held`](crate::LockError::Held), naming it, when a cco runs
    /// the config whose workspace is `workspace` (see [`crate::LOCK_FILE`]). A probe: a run's
    /// start takes the lock itself and refuses the same way.
    pub fn check_lock(workspace: &Path) -> Result<(), crate::LockError> {
        crate::runlock::RunLock::probe(workspace)
    }

    /// Reads the journal of the run in `run_dir` (a damaged one falls back to the previous
    /// good copy, with a warning in [`SavedRun::warnings`]).
    pub fn read_run(run_dir: &Path) -> Result<SavedRun, JournalError> {
        let (journal, warnings) = journal::load(run_dir)?;
        Ok(SavedRun {
            run_dir: run_dir.to_path_buf(),
            run_id: journal.run_id,
            base_branch: journal.base_branch,
            finished: journal.finished,
            end_reason: journal.end_reason,
            outcome: journal.outcome,
            written_at: journal.written_at,
            snapshot: journal.snapshot,
            warnings,
        })
    }
}
