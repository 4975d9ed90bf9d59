//! The crash-safe journal of a run: `<run dir>/journal.json`.
//!
//! Written on every board change (coalesced to at most one write per [`MIN_INTERVAL`]) by a
//! task of its own: write a temporary file, fsync, rename. Before each write the current file
//! becomes `journal.prev.json`, so at every instant at least one complete journal exists: a
//! `kill -9` at any point loses no committed work (git holds it) and leaves a readable state.
//! A damaged journal is reported and the previous good one is used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cco_protocol::TaskSpec;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::board::{Board, PlanState, StatusSnapshot};
use crate::keys::KeyPool;
use crate::persist::write_atomic;

pub const JOURNAL_FILE: &str = "journal.json";
pub const PREVIOUS_JOURNAL_FILE: &str = "journal.prev.json";
pub const JOURNAL_VERSION: u32 = 1;
const MIN_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub version: u32,
    pub run_id: String,
    /// The branch this run merges into (a run branch when `useRunBranch` created one).
    pub base_branch: String,
    pub finished: bool,
    pub end_reason: Option<String>,
    pub written_at: DateTime<Utc>,
    pub snapshot: StatusSnapshot,
    pub specs: BTreeMap<String, TaskSpec>,
    pub plan: PlanState,
    pub benched_keys: Vec<(String, DateTime<Utc>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("no journal in {dir}: this run cannot be resumed")]
    Missing { dir: PathBuf },
    #[error("the journal {path} is unreadable ({error}) and so is the previous one ({previous})")]
    Unreadable {
        path: PathBuf,
        error: String,
        previous: String,
    },
    #[error("the journal {path} has version {found}; this cco reads version {JOURNAL_VERSION}")]
    Version { path: PathBuf, found: u32 },
}

impl Journal {
    pub fn capture(
        board: &Board,
        keys: &KeyPool,
        base_branch: &str,
        finished: Option<&str>,
    ) -> Journal {
        Journal {
            version: JOURNAL_VERSION,
            run_id: board.run_id().to_string(),
            base_branch: base_branch.to_string(),
            finished: finished.is_some(),
            end_reason: finished.map(str::to_string),
            written_at: Utc::now(),
            snapshot: board.snapshot(),
            specs: board.specs(),
            plan: board.plan(),
            benched_keys: keys.benched(),
        }
    }

    pub fn write(&self, run_dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let current = run_dir.join(JOURNAL_FILE);
        if current.exists() {
            std::fs::rename(&current, run_dir.join(PREVIOUS_JOURNAL_FILE))?;
        }
        write_atomic(&current, &bytes)
    }
}

fn read_one(path: &Path) -> Result<Journal, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// Reads a run's journal; a damaged `journal.json` falls back to `journal.prev.json` with a
/// warning that says so.
pub fn load(run_dir: &Path) -> Result<(Journal, Vec<String>), JournalError> {
    let current = run_dir.join(JOURNAL_FILE);
    let previous = run_dir.join(PREVIOUS_JOURNAL_FILE);
    if !current.exists() && !previous.exists() {
        return Err(JournalError::Missing {
            dir: run_dir.to_path_buf(),
        });
    }
    let journal = match read_one(&current) {
        Ok(journal) => (journal, Vec::new()),
        Err(error) => match read_one(&previous) {
            Ok(journal) => {
                let warning = format!(
                    "the journal {} is damaged ({error}); continuing from the previous good state in {} (written {})",
                    current.display(),
                    previous.display(),
                    journal.written_at
                );
                (journal, vec![warning])
            }
            Err(previous_error) => {
                return Err(JournalError::Unreadable {
                    path: current,
                    error,
                    previous: previous_error,
                })
            }
        },
    };
    if journal.0.version != JOURNAL_VERSION {
        return Err(JournalError::Version {
            path: run_dir.join(JOURNAL_FILE),
            found: journal.0.version,
        });
    }
    Ok(journal)
}

/// The newest run folder under `log_directory` (run ids sort by time).
pub fn latest_run_dir(log_directory: &Path) -> Option<PathBuf> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(log_directory)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("run-") && e.path().is_dir())
        .map(|e| e.path())
        .collect();
    runs.sort();
    runs.pop()
}

/// True when the newest run under `log_directory` has a journal that did not finish.
pub fn unfinished_run(log_directory: &Path) -> Option<PathBuf> {
    let dir = latest_run_dir(log_directory)?;
    match load(&dir) {
        Ok((journal, _)) if !journal.finished => Some(dir),
        _ => None,
    }
}

/// Writes the journal after every board change until `stop` fires.
pub async fn run_writer(board: Board, keys: KeyPool, base_branch: String, run_dir: PathBuf) {
    let mut changes = board.watch_changes();
    let mut warned = false;
    loop {
        if changes.changed().await.is_err() {
            return;
        }
        let journal = Journal::capture(&board, &keys, &base_branch, None);
        if let Err(error) = journal.write(&run_dir) {
            if !warned {
                tracing::warn!(%error, dir = %run_dir.display(), "cannot write the run journal (will keep trying)");
                warned = true;
            }
        }
        tokio::time::sleep(MIN_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventBus;

    fn journal_with(board: &Board) -> Journal {
        Journal::capture(
            board,
            &KeyPool::new(cco_config::AuthMode::Oauth, vec![]),
            "main",
            None,
        )
    }

    #[test]
    fn a_truncated_journal_falls_back_to_the_previous_good_state_with_a_clear_warning() {
        let dir = tempfile::tempdir().unwrap();
        let board = Board::new("run-x", EventBus::new(16));
        board.set_phase("first");
        journal_with(&board).write(dir.path()).unwrap();
        board.set_phase("second");
        journal_with(&board).write(dir.path()).unwrap();
        let (journal, warnings) = load(dir.path()).unwrap();
        assert_eq!(journal.snapshot.phase, "second");
        assert!(warnings.is_empty());
        // Cut the newest journal in half, as a crash of a non-atomic writer would.
        let path = dir.path().join(JOURNAL_FILE);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let (journal, warnings) = load(dir.path()).unwrap();
        assert_eq!(journal.snapshot.phase, "first");
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("journal.json is damaged")
                && warnings[0].contains("previous good state"),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn both_journals_damaged_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(JOURNAL_FILE), "{\"version\": 1, \"run").unwrap();
        let error = load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("journal.json is unreadable"), "{error}");
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            load(empty.path()),
            Err(JournalError::Missing { .. })
        ));
    }
}
