//! The crash-safe journal of a run: `<run dir>/journal.json`.
//!
//! Written on every board change (coalesced to at most one write per [`MIN_INTERVAL`]) by a
//! task of its own: write a temporary file, fsync, rename. Before each write the current file
//! becomes `journal.prev.json`, so at every instant at least one complete journal exists: a
//! `kill -9` at any point loses no committed work (git holds it) and leaves a readable state.
//! A damaged journal is reported and the previous good one is used.
//!
//! The journal also carries the run's clock ([`RunClock`]): how long the run has been active,
//! added up over every cco process that worked on it, so `maxRunDurationMinutes` counts the time
//! before a `cco resume` too. Time while no cco ran (between a crash and the resume) does not
//! count; neither does the time since the last write before a crash (at most
//! [`CLOCK_INTERVAL`], as the writer also writes when nothing else changed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
/// The journal is written at least this often while the run is on, so the active time it
/// records lags the truth by no more than this.
pub const CLOCK_INTERVAL: Duration = Duration::from_secs(15);

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
    /// Milliseconds the run had been active when this journal was written, over all the cco
    /// processes that ran it (see [`RunClock`]). Absent in journals of older versions of cco.
    #[serde(default)]
    pub active_ms: Option<u64>,
}

/// How long a run has been active: what earlier cco processes ran it (from the journal) plus
/// the time since this process started it. `maxRunDurationMinutes` is measured against it.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    before: Duration,
    since: Instant,
}

impl RunClock {
    /// A new run's clock, at zero from now.
    pub fn start() -> RunClock {
        RunClock::resumed(Duration::ZERO)
    }

    /// A resumed run's clock: `before` already used, counting on from now.
    pub fn resumed(before: Duration) -> RunClock {
        RunClock {
            before,
            since: Instant::now(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.elapsed_at(Instant::now())
    }

    /// [`elapsed`](Self::elapsed) with the clock given.
    pub fn elapsed_at(&self, now: Instant) -> Duration {
        self.before + now.saturating_duration_since(self.since)
    }
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
        clock: &RunClock,
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
            active_ms: Some(clock.elapsed().as_millis().try_into().unwrap_or(u64::MAX)),
        }
    }

    /// How long the run had been active when this journal was written: what a resumed run's
    /// [`RunClock`] starts from. A journal of an older cco, which did not record it, counts the
    /// time of its last process (from its board's start to the write).
    pub fn active_elapsed(&self) -> Duration {
        match self.active_ms {
            Some(ms) => Duration::from_millis(ms),
            None => (self.written_at - self.snapshot.started_at)
                .to_std()
                .unwrap_or_default(),
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

/// Writes the journal after every board change, and every [`CLOCK_INTERVAL`] without one (the
/// run's clock moves on), until the board is dropped or the task is aborted.
pub async fn run_writer(
    board: Board,
    keys: KeyPool,
    base_branch: String,
    clock: RunClock,
    run_dir: PathBuf,
) {
    let mut changes = board.watch_changes();
    // Changes made before this task first ran count too: write once at once.
    changes.mark_changed();
    let mut warned = false;
    loop {
        if let Ok(Err(_)) = tokio::time::timeout(CLOCK_INTERVAL, changes.changed()).await {
            return;
        }
        // Read before the snapshot: the journal holds at least every change up to it.
        let version = *changes.borrow_and_update();
        let journal = Journal::capture(&board, &keys, &base_branch, &clock, None);
        match journal.write(&run_dir) {
            Ok(()) => board.mark_journaled(version),
            Err(error) if !warned => {
                tracing::warn!(%error, dir = %run_dir.display(), "cannot write the run journal (will keep trying)");
                warned = true;
            }
            Err(_) => {}
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
            &RunClock::start(),
            None,
        )
    }

    #[test]
    fn the_run_clock_adds_the_time_of_earlier_processes_to_this_ones() {
        let clock = RunClock::resumed(Duration::from_secs(90));
        assert_eq!(clock.elapsed_at(clock.since), Duration::from_secs(90));
        assert_eq!(
            clock.elapsed_at(clock.since + Duration::from_secs(30)),
            Duration::from_secs(120)
        );
        // A clock read from an earlier instant never goes below what was already used.
        let earlier = clock.since.checked_sub(Duration::from_secs(5));
        if let Some(earlier) = earlier {
            assert_eq!(clock.elapsed_at(earlier), Duration::from_secs(90));
        }
        assert!(RunClock::start().elapsed() < Duration::from_secs(60));
    }

    #[test]
    fn a_resumed_run_counts_the_active_time_journaled_not_the_time_cco_was_down() {
        let dir = tempfile::tempdir().unwrap();
        let board = Board::new("run-x", EventBus::new(16));
        let clock = RunClock::resumed(Duration::from_secs(40 * 60));
        let mut journal = Journal::capture(
            &board,
            &KeyPool::new(cco_config::AuthMode::Oauth, vec![]),
            "main",
            &clock,
            None,
        );
        // Written by a cco that crashed a day ago (its board started a day and an hour ago).
        journal.written_at -= chrono::Duration::days(1);
        journal.snapshot.started_at = journal.written_at - chrono::Duration::hours(1);
        journal.write(dir.path()).unwrap();
        let (loaded, _) = load(dir.path()).unwrap();
        let used = loaded.active_elapsed();
        assert!(
            used >= Duration::from_secs(40 * 60) && used < Duration::from_secs(41 * 60),
            "{used:?}"
        );
        let resumed = RunClock::resumed(used);
        assert_eq!(resumed.elapsed_at(resumed.since), used);

        // A journal of an older cco has no active time: its last process's time counts.
        let mut value = serde_json::to_value(&loaded).unwrap();
        value.as_object_mut().unwrap().remove("active_ms");
        let old: Journal = serde_json::from_value(value).unwrap();
        assert_eq!(old.active_ms, None);
        assert_eq!(old.active_elapsed(), Duration::from_secs(3600));
    }

    /// The writer tells the board which change the journal on disk holds; a capture waits for
    /// it (bounded, so an unwritable journal does not stop the run).
    #[tokio::test]
    async fn the_board_knows_which_changes_the_journal_on_disk_holds() {
        let dir = tempfile::tempdir().unwrap();
        let board = Board::new("run-1", EventBus::new(16));
        board.set_phase("running");
        let version = board.version();
        assert!(version > 0);
        let writer = tokio::spawn(run_writer(
            board.clone(),
            KeyPool::new(cco_config::AuthMode::Oauth, vec![]),
            "main".into(),
            RunClock::start(),
            dir.path().to_path_buf(),
        ));
        board.set_phase("later");
        assert!(board.journaled(version, Duration::from_secs(10)).await);
        let (journal, _) = load(dir.path()).unwrap();
        assert!(["running", "later"].contains(&journal.snapshot.phase.as_str()));
        // A change the writer cannot write: the wait gives up.
        std::fs::remove_dir_all(dir.path()).unwrap();
        std::fs::write(dir.path(), "not a directory").unwrap();
        board.set_phase("unwritable");
        let unwritten = board.version();
        assert!(!board.journaled(unwritten, Duration::from_millis(300)).await);
        writer.abort();
        std::fs::remove_file(dir.path()).unwrap();
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
