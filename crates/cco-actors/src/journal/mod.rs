//! The crash-safe journal of a run: `<run dir>/journal.json`.
//!
//! Written on every board change (coalesced to at most one write per [`MIN_INTERVAL`]) by a
//! task of its own ([`Writer`]): write a temporary file, fsync, rename, off the async threads.
//! Before each write the current file becomes `journal.prev.json`, so at every instant at least
//! one complete journal exists: a `kill -9` at any point loses no committed work (git holds it)
//! and leaves a readable state. A damaged journal is reported and the previous good one is
//! used. Journals of older versions of cco are read and brought up to date ([`compat`]).
//!
//! Durability is one rule, kept here: [`Barrier`]. A capture resets a worktree that may hold
//! the only copy of a finished turn's work, so it first waits until the journal on disk shows
//! the turn finished; a resumed run then captures that work instead of running the session
//! again in a worktree that no longer holds it.
//!
//! The journal also carries the run's clock ([`RunClock`]): how long the run has been active,
//! added up over every cco process that worked on it, so `maxRunDurationMinutes` counts the time
//! before a `cco resume` too. Time while no cco ran (between a crash and the resume) does not
//! count; neither does the time since the last write before a crash (at most
//! [`CLOCK_INTERVAL`], as the writer also writes when nothing else changed).

mod clock;
mod compat;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cco_config::Redactor;

use cco_protocol::TaskSpec;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::board::{Board, PlanState, ProcessRecord, StatusSnapshot};
use crate::keys::KeyPool;
use crate::outcome::RunOutcome;
use crate::persist::write_atomic;

pub(crate) use clock::RunClock;

pub(crate) const JOURNAL_FILE: &str = "journal.json";
pub(crate) const PREVIOUS_JOURNAL_FILE: &str = "journal.prev.json";
/// 2: task phases and kinds, separate conflict rounds, the run's outcome. Version 1 journals
/// (cco before the task lifecycle) are read and upgraded.
pub(crate) const JOURNAL_VERSION: u32 = 2;
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The journal is written at least this often while the run is on, so the active time it
/// records lags the truth by no more than this.
pub(crate) const CLOCK_INTERVAL: Duration = Duration::from_secs(15);
/// How long a [`Barrier`] waits for the journal (it is written at most every
/// [`MIN_INTERVAL`]; an unwritable journal must not stop the run).
const BARRIER_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Journal {
    pub(crate) version: u32,
    pub(crate) run_id: String,
    /// The branch this run merges into (a run branch when `useRunBranch` created one).
    pub(crate) base_branch: String,
    pub(crate) finished: bool,
    pub(crate) end_reason: Option<String>,
    /// How the run ended (a finished run's journal). Absent in journals of older versions.
    #[serde(default)]
    pub(crate) outcome: Option<RunOutcome>,
    pub(crate) written_at: DateTime<Utc>,
    pub(crate) snapshot: StatusSnapshot,
    pub(crate) specs: BTreeMap<String, TaskSpec>,
    pub(crate) plan: PlanState,
    pub(crate) benched_keys: Vec<(String, DateTime<Utc>)>,
    /// Milliseconds the run had been active when this journal was written, over all the cco
    /// processes that ran it (see [`RunClock`]). Absent in journals of older versions of cco.
    #[serde(default)]
    pub(crate) active_ms: Option<u64>,
    /// The claude processes alive when this journal was written (every one: workers,
    /// planners, review forks), so a later cco ends those a killed cco left behind.
    #[serde(default)]
    pub(crate) processes: Vec<ProcessRecord>,
    /// The commit cco last wrote to each shared branch (`cco_git::GitHandle::expected_tips`):
    /// a resumed run checks, before its first merge, that nothing else moved them meanwhile.
    #[serde(default)]
    pub(crate) expected_tips: BTreeMap<String, String>,
}

/// Why a journal cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    #[error("no journal in {dir}: this run cannot be resumed")]
    Missing { dir: PathBuf },
    #[error("the journal {path} is unreadable ({error}) and so is the previous one ({previous})")]
    Unreadable {
        path: PathBuf,
        error: String,
        previous: String,
    },
    #[error(
        "the journal {path} has version {found}; this cco reads versions 1 to {JOURNAL_VERSION}"
    )]
    Version { path: PathBuf, found: u32 },
}

/// The end of a run, as its final journal records it.
pub(crate) struct Ending<'a> {
    pub(crate) reason: &'a str,
    pub(crate) outcome: &'a RunOutcome,
}

impl Journal {
    pub(crate) fn capture(
        board: &Board,
        keys: &KeyPool,
        base_branch: &str,
        clock: &RunClock,
        finished: Option<Ending<'_>>,
    ) -> Journal {
        Journal {
            version: JOURNAL_VERSION,
            run_id: board.run_id().to_string(),
            base_branch: base_branch.to_string(),
            // A paused run (environment, integrity) is continued by `cco resume`.
            finished: finished
                .as_ref()
                .is_some_and(|end| !end.outcome.is_resumable()),
            end_reason: finished.as_ref().map(|end| end.reason.to_string()),
            outcome: finished.map(|end| end.outcome.clone()),
            written_at: Utc::now(),
            snapshot: board.snapshot(),
            specs: board.specs(),
            plan: board.plan(),
            benched_keys: keys.benched(),
            active_ms: Some(u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX)),
            processes: board.processes(),
            expected_tips: BTreeMap::new(),
        }
    }

    /// The same journal with the expected tips of the shared branches `git` keeps.
    pub(crate) fn with_tips(mut self, git: Option<&cco_git::GitHandle>) -> Journal {
        if let Some(git) = git {
            self.expected_tips = git.expected_tips();
        }
        self
    }

    /// How long the run had been active when this journal was written: what a resumed run's
    /// [`RunClock`] starts from. A journal of an older cco, which did not record it, counts the
    /// time of its last process (from its board's start to the write).
    pub(crate) fn active_elapsed(&self) -> Duration {
        match self.active_ms {
            Some(ms) => Duration::from_millis(ms),
            None => (self.written_at - self.snapshot.started_at)
                .to_std()
                .unwrap_or_default(),
        }
    }

    #[cfg(test)]
    pub(crate) fn write(&self, run_dir: &Path) -> std::io::Result<()> {
        self.write_redacted(run_dir, &Redactor::default())
    }

    /// Writes the journal with every secret `redactor` knows taken out of its text (task
    /// specs and reasons are agents' words).
    pub(crate) fn write_redacted(
        &self,
        run_dir: &Path,
        redactor: &Redactor,
    ) -> std::io::Result<()> {
        let bytes = redacted_json(self, redactor)?;
        let current = run_dir.join(JOURNAL_FILE);
        if current.exists() {
            // The current journal becomes the previous one by a second name (a hard link
            // moved into place), so `journal.json` exists at every instant: a reader (or a
            // `kill -9`) between the two steps never finds it missing.
            let previous = run_dir.join(PREVIOUS_JOURNAL_FILE);
            let linked = run_dir.join(format!("{PREVIOUS_JOURNAL_FILE}.link"));
            let _ = std::fs::remove_file(&linked);
            match std::fs::hard_link(&current, &linked) {
                Ok(()) => std::fs::rename(&linked, &previous)?,
                Err(_) => {
                    std::fs::copy(&current, &linked)?;
                    std::fs::rename(&linked, &previous)?;
                }
            }
        }
        write_atomic(&current, &bytes)
    }
}

/// `value` as pretty JSON, every string in it redacted (strings, not the JSON text: a marker
/// never breaks the document).
pub(crate) fn redacted_json(
    value: &impl Serialize,
    redactor: &Redactor,
) -> std::io::Result<Vec<u8>> {
    fn walk(value: &mut serde_json::Value, redactor: &Redactor) {
        match value {
            serde_json::Value::String(s) => {
                if let std::borrow::Cow::Owned(clean) = redactor.redact(s) {
                    *s = clean;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| walk(v, redactor)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| walk(v, redactor)),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(value).map_err(std::io::Error::other)?;
    walk(&mut value, redactor);
    serde_json::to_vec_pretty(&value).map_err(std::io::Error::other)
}

/// Reads one journal file, of any version this cco knows, brought up to date.
fn read_one(path: &Path) -> Result<Journal, ReadError> {
    let bytes = std::fs::read(path).map_err(|e| ReadError::Damaged(e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| ReadError::Damaged(e.to_string()))?;
    let version = value
        .get("version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| ReadError::Damaged("no version".into()))?;
    let version = u32::try_from(version).unwrap_or(u32::MAX);
    if !(1..=JOURNAL_VERSION).contains(&version) {
        return Err(ReadError::Version(version));
    }
    let mut journal: Journal =
        serde_json::from_value(value).map_err(|e| ReadError::Damaged(e.to_string()))?;
    if version == 1 {
        compat::upgrade_v1(&mut journal);
    }
    Ok(journal)
}

enum ReadError {
    Damaged(String),
    Version(u32),
}

/// Reads a run's journal; a damaged `journal.json` falls back to `journal.prev.json` with a
/// warning that says so.
pub(crate) fn load(run_dir: &Path) -> Result<(Journal, Vec<String>), JournalError> {
    let current = run_dir.join(JOURNAL_FILE);
    let previous = run_dir.join(PREVIOUS_JOURNAL_FILE);
    if !current.exists() && !previous.exists() {
        return Err(JournalError::Missing {
            dir: run_dir.to_path_buf(),
        });
    }
    let version_error = |found| JournalError::Version {
        path: current.clone(),
        found,
    };
    match read_one(&current) {
        Ok(journal) => Ok((journal, Vec::new())),
        Err(ReadError::Version(found)) => Err(version_error(found)),
        Err(ReadError::Damaged(error)) => match read_one(&previous) {
            Ok(journal) => {
                let warning = format!(
                    "the journal {} is damaged ({error}); continuing from the previous good state in {} (written {})",
                    current.display(),
                    previous.display(),
                    journal.written_at
                );
                Ok((journal, vec![warning]))
            }
            Err(ReadError::Version(found)) => Err(version_error(found)),
            Err(ReadError::Damaged(previous_error)) => Err(JournalError::Unreadable {
                path: current.clone(),
                error,
                previous: previous_error,
            }),
        },
    }
}

/// The newest run folder under `log_directory` (run ids sort by time).
pub(crate) fn latest_run_dir(log_directory: &Path) -> Option<PathBuf> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(log_directory)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("run-") && e.path().is_dir())
        .map(|e| e.path())
        .collect();
    runs.sort();
    runs.pop()
}

/// The newest run under `log_directory`, when its journal did not finish.
pub(crate) fn unfinished_run(log_directory: &Path) -> Option<PathBuf> {
    let dir = latest_run_dir(log_directory)?;
    match load(&dir) {
        Ok((journal, _)) if !journal.finished => Some(dir),
        _ => None,
    }
}

/// Durability: every board change made before [`Barrier::now`] is in the journal on disk once
/// [`Barrier::wait`] returns true. Awaited before an operation that would otherwise leave a
/// resumed run with a journal that contradicts the repository (a capture resets the worktree
/// that holds a finished turn's work).
pub(crate) struct Barrier {
    journaled: watch::Receiver<u64>,
    version: u64,
}

impl Barrier {
    /// A barrier behind every change made to `board` so far.
    pub(crate) fn now(board: &Board) -> Barrier {
        Barrier {
            journaled: board.watch_journaled(),
            version: board.version(),
        }
    }

    /// Waits until the journal holds those changes, at most [`BARRIER_WAIT`] (the journal may
    /// be unwritable: the run goes on). Returns whether it does.
    pub(crate) async fn wait(self) -> bool {
        self.wait_at_most(BARRIER_WAIT).await
    }

    async fn wait_at_most(mut self, within: Duration) -> bool {
        let version = self.version;
        tokio::time::timeout(within, self.journaled.wait_for(|v| *v >= version))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// The task that writes the journal after every board change, and every [`CLOCK_INTERVAL`]
/// without one (the run's clock moves on). [`stop`](Writer::stop) ends it and waits for a
/// write in flight, so the final journal is never overtaken by a periodic one.
pub(crate) struct Writer {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Writer {
    pub(crate) fn spawn(
        board: Board,
        keys: KeyPool,
        base_branch: String,
        clock: RunClock,
        run_dir: PathBuf,
        git: Option<cco_git::GitHandle>,
        redactor: Arc<Redactor>,
    ) -> Writer {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(write_loop(
            board,
            keys,
            base_branch,
            clock,
            run_dir,
            (git, redactor),
            stopped,
        ));
        Writer { stop, task }
    }

    /// Stops the writer; returns when no write of it is in flight.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn write_loop(
    board: Board,
    keys: KeyPool,
    base_branch: String,
    clock: RunClock,
    run_dir: PathBuf,
    (git, redactor): (Option<cco_git::GitHandle>, Arc<Redactor>),
    mut stop: watch::Receiver<bool>,
) {
    let mut changes = board.watch_changes();
    // Changes made before this task first ran count too: write once at once.
    changes.mark_changed();
    let mut warned = false;
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => return,
            changed = tokio::time::timeout(CLOCK_INTERVAL, changes.changed()) => {
                if let Ok(Err(_)) = changed {
                    return;
                }
            }
        }
        // Read before the snapshot: the journal holds at least every change up to it.
        let version = *changes.borrow_and_update();
        let journal =
            Journal::capture(&board, &keys, &base_branch, &clock, None).with_tips(git.as_ref());
        let dir = run_dir.clone();
        // fsync blocks: not on the async threads.
        let redactor = Arc::clone(&redactor);
        let written = tokio::task::spawn_blocking(move || journal.write_redacted(&dir, &redactor))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match written {
            Ok(()) => board.mark_journaled(version),
            Err(error) if !warned => {
                tracing::warn!(%error, dir = %run_dir.display(), "cannot write the run journal (will keep trying)");
                warned = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(MIN_INTERVAL) => {}
        }
    }
}
