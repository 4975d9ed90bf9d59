//! Where the dashboard reads a run from: the run of this process ([`cco::OrchestratorHandle`])
//! or a run folder alone (a run of another cco process, or a finished one). Either way the
//! history is the folder's `events.jsonl`, the specs come from its journal and the agents'
//! lines from `combined.log` and `sessions/`; a live run's tree and totals come from the
//! handle (fresher than the journal). Every read here is blocking file IO: callers run it on
//! tokio's blocking threads.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use cco::{OrchestratorHandle, RunEvent, RunSummary, SavedRun, StatusSnapshot};
use cco_config::{AuthMode, LoadedConfig, Redactor};
use tokio::sync::broadcast;

use crate::history::{History, HistoryFile};

/// Bytes of `combined.log` or a transcript read from its end for a page.
const TAIL_BYTES: u64 = 4 << 20;
/// A run whose journal has not been written for this long has no cco running it.
const STALE_JOURNAL_SECS: i64 = 60;
/// What [`Run::ended`] says of such a run.
pub(crate) const INTERRUPTED: &str = "interrupted: no cco is running it (cco resume continues it)";
/// How often a run folder is looked at for changes while someone watches a page.
const FOLDER_POLL: Duration = Duration::from_millis(400);

/// What the config says about a run that the run folder does not.
#[derive(Clone)]
pub(crate) struct RunInfo {
    pub(crate) redactor: Redactor,
    pub(crate) max_budget_usd: Option<f64>,
    pub(crate) max_duration: Duration,
    /// Credential names, in the order the run uses them (`oauth` is the CLI's login).
    pub(crate) credentials: Vec<String>,
    pub(crate) workspace: PathBuf,
    /// A verify command guards the base branch.
    pub(crate) verify: bool,
}

impl RunInfo {
    pub(crate) fn of(config: &LoadedConfig) -> RunInfo {
        let cfg = &config.config;
        let keys = config.api_keys.iter().map(|k| k.name.clone());
        let credentials = match cfg.auth_mode {
            AuthMode::Oauth => vec!["oauth".to_string()],
            AuthMode::ApiKeysFirst => keys.chain(["oauth".to_string()]).collect(),
            _ => keys.collect(),
        };
        RunInfo {
            redactor: config.redactor(),
            max_budget_usd: cfg.max_budget_usd,
            max_duration: cfg.max_run_duration(),
            credentials,
            workspace: cfg.workspace_directory.clone(),
            verify: cfg.verify_command.is_some(),
        }
    }
}

/// Size and modification time: a file changed when either did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Stamp(u64, Option<SystemTime>);

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp(meta.len(), meta.modified().ok()))
}

/// A file parsed once per version of it.
struct Cached<T> {
    stamp: Option<Stamp>,
    value: Option<Arc<T>>,
}

impl<T> Default for Cached<T> {
    fn default() -> Self {
        Cached {
            stamp: None,
            value: None,
        }
    }
}

impl<T> Cached<T> {
    fn get(&mut self, path: &Path, read: impl FnOnce() -> Option<T>) -> Option<Arc<T>> {
        let now = stamp(path);
        if now.is_none() {
            return self.value.clone();
        }
        if now != self.stamp || self.value.is_none() {
            if let Some(value) = read() {
                self.value = Some(Arc::new(value));
                self.stamp = now;
            }
        }
        self.value.clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A task's patch, or why it cannot be read.
pub(crate) type SharedPatch = Arc<Result<cco_git::Patch, String>>;

/// One line of an agent's log.
#[derive(Debug, Clone)]
pub(crate) struct AgentLine {
    pub(crate) at: String,
    pub(crate) message: String,
}

/// One run, as the dashboard sees it.
pub(crate) struct Run {
    pub(crate) run_dir: PathBuf,
    pub(crate) run_name: String,
    live: Option<OrchestratorHandle>,
    pub(crate) info: RunInfo,
    journal: Mutex<Cached<SavedRun>>,
    summary: Mutex<Cached<RunSummary>>,
    history: Mutex<HistoryFile>,
    /// Task patches by (task, fingerprint of the task's record).
    pub(crate) patches: Mutex<HashMap<(String, String), SharedPatch>>,
}

impl Run {
    pub(crate) fn new(run_dir: PathBuf, live: Option<OrchestratorHandle>, info: RunInfo) -> Run {
        let run_name = run_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into());
        Run {
            history: Mutex::new(HistoryFile::new(&run_dir)),
            run_dir,
            run_name,
            live,
            info,
            journal: Mutex::default(),
            summary: Mutex::default(),
            patches: Mutex::default(),
        }
    }

    pub(crate) fn is_live(&self) -> bool {
        self.live.as_ref().is_some_and(|h| !h.is_finished())
    }

    pub(crate) fn handle(&self) -> Option<&OrchestratorHandle> {
        self.live.as_ref()
    }

    /// The journal (the run's state when it was last written; a live run rewrites it on every
    /// change).
    pub(crate) fn journal(&self) -> Option<Arc<SavedRun>> {
        let path = self.run_dir.join("journal.json");
        lock(&self.journal).get(&path, || cco::Orchestrator::read_run(&self.run_dir).ok())
    }

    /// `summary.json`, once the run has ended.
    pub(crate) fn summary(&self) -> Option<Arc<RunSummary>> {
        let path = self.run_dir.join("summary.json");
        lock(&self.summary).get(&path, || {
            let bytes = std::fs::read(&path).ok()?;
            serde_json::from_slice(&bytes).ok()
        })
    }

    /// The tree, tasks and totals now.
    pub(crate) fn snapshot(&self) -> Option<StatusSnapshot> {
        match &self.live {
            Some(handle) => Some(handle.status()),
            None => self.journal().map(|j| j.snapshot.clone()),
        }
    }

    pub(crate) fn base_branch(&self) -> String {
        match &self.live {
            Some(handle) => handle.base_branch().to_string(),
            None => self
                .journal()
                .map(|j| j.base_branch.clone())
                .unwrap_or_else(|| "main".into()),
        }
    }

    /// How the run ended, in words (`None` while it goes on).
    pub(crate) fn ended(&self) -> Option<String> {
        if let Some(handle) = &self.live {
            if !handle.is_finished() {
                return None;
            }
        }
        if let Some(summary) = self.summary() {
            return Some(summary.outcome.label());
        }
        let journal = self.journal()?;
        if !journal.finished && self.live.is_none() {
            // A running cco rewrites its journal at least every 15 s.
            let silent = chrono::Utc::now() - journal.written_at;
            if silent > chrono::Duration::seconds(STALE_JOURNAL_SECS) {
                return Some(INTERRUPTED.into());
            }
        }
        journal.finished.then(|| match &journal.outcome {
            Some(outcome) => outcome.label(),
            None => "finished".into(),
        })
    }

    /// How long the run has been active (over every cco process that ran it); the run's
    /// duration once it ended.
    pub(crate) fn active_secs(&self, snapshot: &StatusSnapshot) -> f64 {
        match self.ended().and_then(|_| self.summary()) {
            Some(summary) => summary.duration_secs,
            None => snapshot.active_elapsed().as_secs_f64(),
        }
    }

    /// Reads what was appended to `events.jsonl`, then lets `read` look at the history.
    /// The flag says whether the run has a record at all.
    pub(crate) fn history<R>(&self, read: impl FnOnce(&History, bool) -> R) -> R {
        let mut file = lock(&self.history);
        file.refresh();
        read(&file.history, file.present)
    }

    /// The last `max` lines of `agent` in `combined.log` (from its last few MiB) and the
    /// offset to follow it from.
    pub(crate) fn log_tail(&self, agent: &str, max: usize) -> (Vec<AgentLine>, u64) {
        let path = self.run_dir.join(cco::log::FILE_NAME);
        let (text, end) = read_tail(&path, TAIL_BYTES);
        let mut lines = agent_lines(&text, agent);
        if lines.len() > max {
            lines.drain(..lines.len() - max);
        }
        (lines, end)
    }

    /// `agent`'s lines appended to `combined.log` since `offset` (whole lines only), and the
    /// offset after them.
    pub(crate) fn log_since(&self, agent: &str, offset: u64) -> (Vec<AgentLine>, u64) {
        let path = self.run_dir.join(cco::log::FILE_NAME);
        let Ok(mut file) = std::fs::File::open(&path) else {
            return (Vec::new(), offset);
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len <= offset || file.seek(SeekFrom::Start(offset)).is_err() {
            return (Vec::new(), offset.min(len));
        }
        let mut bytes = Vec::new();
        if file
            .by_ref()
            .take(TAIL_BYTES)
            .read_to_end(&mut bytes)
            .is_err()
        {
            return (Vec::new(), offset);
        }
        let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else {
            return (Vec::new(), offset);
        };
        let text = String::from_utf8_lossy(&bytes[..=end]);
        (agent_lines(&text, agent), offset + end as u64 + 1)
    }

    /// The transcripts of `agent`: `(session id, bytes, modified)`, oldest first.
    pub(crate) fn sessions(&self, agent: &str) -> Vec<(String, u64, Option<SystemTime>)> {
        let prefix = format!("{agent}-");
        let Ok(entries) = std::fs::read_dir(self.run_dir.join("sessions")) else {
            return Vec::new();
        };
        let mut found: Vec<_> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let session = name.strip_prefix(&prefix)?.strip_suffix(".jsonl")?;
                let valid = !session.is_empty()
                    && session.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
                let meta = entry.metadata().ok()?;
                valid.then(|| (session.to_string(), meta.len(), meta.modified().ok()))
            })
            .collect();
        found.sort_by_key(|(_, _, modified)| *modified);
        found
    }

    /// The end (its last few MiB) of one transcript, when `agent` has a session `session`.
    pub(crate) fn transcript(&self, agent: &str, session: &str) -> Option<(String, bool)> {
        let known = self
            .sessions(agent)
            .into_iter()
            .any(|(s, _, _)| s == session);
        if !known {
            return None;
        }
        let path = self
            .run_dir
            .join("sessions")
            .join(format!("{agent}-{session}.jsonl"));
        let len = std::fs::metadata(&path).ok()?.len();
        let (text, _) = read_tail(&path, TAIL_BYTES);
        Some((text, len > TAIL_BYTES))
    }

    /// Something to wait on for changes of the run: the events of a live run (only while
    /// someone watches: nothing subscribes otherwise), the files of a run folder.
    pub(crate) fn changes(&self) -> Changes {
        let files = Files {
            paths: ["journal.json", "summary.json", cco::log::EVENTS_FILE_NAME]
                .iter()
                .map(|name| self.run_dir.join(name))
                .chain([self.run_dir.join(cco::log::FILE_NAME)])
                .collect(),
            stamps: Vec::new(),
        };
        match &self.live {
            Some(handle) if !handle.is_finished() => Changes::Live(handle.subscribe(), files),
            _ => Changes::Files(files),
        }
    }
}

/// The files of a run folder, looked at for changes.
pub(crate) struct Files {
    paths: Vec<PathBuf>,
    stamps: Vec<Option<Stamp>>,
}

impl Files {
    async fn changed(&mut self) {
        loop {
            let now: Vec<Option<Stamp>> = self.paths.iter().map(|p| stamp(p)).collect();
            if self.stamps != now {
                let first = self.stamps.is_empty();
                self.stamps = now;
                if !first {
                    return;
                }
            }
            tokio::time::sleep(FOLDER_POLL).await;
        }
    }
}

/// Waits for the next change of a run: an event of a live run, or a changed file (a live
/// run that ended is watched as a folder: its summary is written after its last event).
pub(crate) enum Changes {
    Live(broadcast::Receiver<RunEvent>, Files),
    Files(Files),
}

impl Changes {
    pub(crate) async fn next(&mut self) {
        match self {
            Changes::Live(events, _) => match events.recv().await {
                Ok(RunEvent::RunFinished { .. }) | Err(broadcast::error::RecvError::Closed) => {
                    self.become_files()
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            },
            Changes::Files(files) => files.changed().await,
        }
    }

    fn become_files(&mut self) {
        let old = std::mem::replace(
            self,
            Changes::Files(Files {
                paths: Vec::new(),
                stamps: Vec::new(),
            }),
        );
        if let Changes::Live(_, files) = old {
            *self = Changes::Files(files);
        }
    }

    /// Takes the changes that came meanwhile (a burst of events is one change).
    pub(crate) fn drain(&mut self) {
        if let Changes::Live(events, _) = self {
            loop {
                match events.try_recv() {
                    Ok(RunEvent::RunFinished { .. })
                    | Err(broadcast::error::TryRecvError::Closed) => {
                        self.become_files();
                        return;
                    }
                    Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                    Err(broadcast::error::TryRecvError::Empty) => return,
                }
            }
        }
    }
}

/// The last `max` bytes of a file, from its first whole line, and the file's length.
fn read_tail(path: &Path, max: u64) -> (String, u64) {
    let Ok(mut file) = std::fs::File::open(path) else {
        return (String::new(), 0);
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(max);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return (String::new(), len);
    }
    let mut bytes = Vec::new();
    if file.take(max).read_to_end(&mut bytes).is_err() {
        return (String::new(), len);
    }
    let from = if start > 0 {
        bytes
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |i| i + 1)
    } else {
        0
    };
    // A line still being written is left for the next read.
    let to = bytes
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(from, |i| i + 1);
    let text = String::from_utf8_lossy(&bytes[from..to.max(from)]).into_owned();
    (text, start + to.max(from) as u64)
}

fn agent_lines(text: &str, agent: &str) -> Vec<AgentLine> {
    text.lines()
        .filter_map(cco::log::parse_line)
        .filter(|line| line.agent == agent)
        .map(|line| AgentLine {
            at: line.at.to_string(),
            message: line.message.to_string(),
        })
        .collect()
}
