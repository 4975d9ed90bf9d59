//! The embedding API: [`Orchestrator::builder`] → [`OrchestratorBuilder::start`] →
//! [`OrchestratorHandle`].
//!
//! Nothing here is global: no actor names, no signal handlers, no tracing subscriber, no
//! `process::exit`. Several orchestrators can run in one process at once.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use cco_config::{LoadedConfig, RepositoryLocation};
use cco_git::{EnvFile, GitConfig, GitHandle};
use chrono::{DateTime, Utc};
use ractor::{Actor, ActorCell, ActorRef};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use tracing::{info, warn, Instrument};

use crate::board::{AgentRecord, Board, StatusSnapshot, TaskRecord, Totals};
use crate::context::RunContext;
use crate::director::{DirectorActor, DirectorArgs, DirectorMsg, RunEnd};
use crate::error::StartError;
use crate::events::{EventBus, RunEvent};
use crate::journal::RunClock;
use crate::keys::KeyPool;

/// Entry point of the library.
pub struct Orchestrator;

impl Orchestrator {
    pub fn builder(config: LoadedConfig) -> OrchestratorBuilder {
        OrchestratorBuilder {
            config,
            run_id: None,
            events: EventBus::new(4096),
            resume: None,
        }
    }
}

/// Options of one run.
pub struct OrchestratorBuilder {
    config: LoadedConfig,
    run_id: Option<String>,
    events: EventBus,
    resume: Option<PathBuf>,
}

/// How to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Stop taking tasks, SIGTERM every claude process group, wait the grace period, SIGKILL
    /// the rest, let the GitActor finish its operation in flight, persist state.
    Graceful,
    /// As graceful, but SIGKILL at once.
    Force,
}

/// The end of a run, also written to `<run dir>/summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    pub reason: String,
    pub completed: bool,
    pub base_branch: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// How long the run was active, over every cco process that ran it (a resumed run
    /// counts the time before the resume, not the time no cco was running).
    pub duration_secs: f64,
    pub totals: Totals,
    /// Spend per model (`models` of the config: opus for the Director, sonnet for the rest…).
    pub cost_by_model: std::collections::BTreeMap<String, f64>,
    pub cost_by_agent: std::collections::BTreeMap<String, f64>,
    pub tasks: Vec<TaskRecord>,
    pub agents: Vec<AgentRecord>,
    /// What the GitActor did: ops by kind, how many and how long (`None`: it did not answer).
    #[serde(default)]
    pub git: Option<cco_git::GitStatus>,
}

impl RunSummary {
    fn new(
        snapshot: crate::board::StatusSnapshot,
        reason: String,
        completed: bool,
        base_branch: String,
        started_at: DateTime<Utc>,
    ) -> Self {
        let finished_at = Utc::now();
        let mut cost_by_model = std::collections::BTreeMap::new();
        let mut cost_by_agent = std::collections::BTreeMap::new();
        for agent in &snapshot.agents {
            let model = agent.model.clone().unwrap_or_else(|| "none".into());
            *cost_by_model.entry(model).or_insert(0.0) += agent.cost_usd;
            cost_by_agent.insert(agent.id.clone(), agent.cost_usd);
        }
        RunSummary {
            run_id: snapshot.run_id,
            reason,
            completed,
            base_branch,
            started_at,
            finished_at,
            duration_secs: (finished_at - started_at).num_milliseconds() as f64 / 1000.0,
            totals: snapshot.totals,
            cost_by_model,
            cost_by_agent,
            tasks: snapshot.tasks,
            agents: snapshot.agents,
            git: None,
        }
    }
}

impl OrchestratorBuilder {
    /// Names the run (default: `run-<UTC timestamp>`); also the name of its log folder.
    pub fn run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    /// Continues the journaled run in `run_dir` (see [`crate::journal`]) instead of starting a
    /// new one: worktrees are re-attached, each agent's claude session is resumed by id, tasks
    /// that were in flight are re-queued, merged work is never redone.
    pub fn resume(mut self, run_dir: impl Into<PathBuf>) -> Self {
        self.resume = Some(run_dir.into());
        self
    }

    /// Capacity of the event channel; slow subscribers lag beyond it. Call before
    /// [`subscribe`](Self::subscribe): a new channel replaces the old one.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.events = EventBus::new(capacity);
        self
    }

    /// Subscribes before the run starts, so no event (not even `RunStarted`) is missed.
    pub fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.events.subscribe()
    }

    /// Prepares the repository and starts the supervision tree.
    pub async fn start(self) -> Result<OrchestratorHandle, StartError> {
        let OrchestratorBuilder {
            config,
            run_id,
            events,
            resume,
        } = self;
        let (run_id, run_dir, journal) = match resume {
            Some(dir) => {
                let (journal, warnings) =
                    crate::journal::load(&dir).map_err(StartError::Journal)?;
                (journal.run_id.clone(), dir, Some((journal, warnings)))
            }
            None => {
                let (run_id, run_dir) = create_run_dir(&config.config.log_directory, run_id)?;
                (run_id, run_dir, None)
            }
        };
        let span = tracing::info_span!("run", run = %run_id);
        async move {
            let board = Board::new(&run_id, events);
            let run_log = crate::runlog::spawn(&board, &run_dir);
            let cfg = &config.config;
            let keys = KeyPool::new(cfg.auth_mode, config.api_keys.clone());
            let mut warnings = Vec::new();
            let resumed_base = match &journal {
                Some((journal, journal_warnings)) => {
                    warnings.extend(journal_warnings.iter().cloned());
                    restore(&board, &keys, journal);
                    Some(journal.base_branch.clone())
                }
                None => None,
            };
            let git = spawn_git(&config, resumed_base).await?;
            let repo = match git.setup().await {
                Ok(repo) => repo,
                Err(source) => {
                    let _ = git.stop().await;
                    return Err(StartError::Repository {
                        url: redact_url(&cfg.repository_url),
                        source: Box::new(source),
                    });
                }
            };
            info!(base = %repo.base_branch, repo = %repo.repo_dir.display(), "repository ready");
            let redactor = Arc::new(config.redactor());
            let workspace = cfg.workspace_directory.clone();
            let ctx = Arc::new(RunContext {
                workspace,
                config: Arc::new(config),
                board,
                keys,
                redactor,
                git: git.clone(),
                run_dir: run_dir.clone(),
                base_branch: repo.base_branch.clone(),
                resumed: journal.is_some(),
                stopping: AtomicBool::new(false),
                forced: AtomicBool::new(false),
                force_notify: tokio::sync::Notify::new(),
                cells: Mutex::new(Default::default()),
            });
            for warning in &warnings {
                warn!("{warning}");
                ctx.board.events().emit(RunEvent::Warning {
                    message: warning.clone(),
                });
            }
            // A resumed run's clock goes on from the active time of the journaled run.
            let clock = match &journal {
                Some((journal, _)) => {
                    let before = journal.active_elapsed();
                    ctx.board.set_active_before(before);
                    RunClock::resumed(before)
                }
                None => RunClock::start(),
            };
            let journal_writer = tokio::spawn(crate::journal::run_writer(
                ctx.board.clone(),
                ctx.keys.clone(),
                ctx.base_branch.clone(),
                clock,
                ctx.run_dir.clone(),
            ));
            let (ended_tx, ended_rx) = watch::channel(None);
            let (director, director_join) = DirectorActor::spawn(
                None,
                DirectorActor,
                DirectorArgs {
                    ctx: Arc::clone(&ctx),
                    ended: ended_tx,
                    clock,
                },
            )
            .await
            .map_err(|e| StartError::Actors(e.to_string()))?;
            let _ = director.send_message(DirectorMsg::Start);
            let (summary_tx, summary_rx) = watch::channel(None);
            let started_at = Utc::now();
            let finisher_ctx = Arc::clone(&ctx);
            tokio::spawn(
                async move {
                    let _ = director_join.await;
                    let end = ended_rx.borrow().clone().unwrap_or(RunEnd {
                        reason: "the director stopped unexpectedly".into(),
                        completed: false,
                    });
                    journal_writer.abort();
                    // combined.log ends with RunFinished: let it catch up before the summary.
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), run_log).await;
                    let summary = finish_run(&finisher_ctx, end, started_at, &clock).await;
                    let _ = summary_tx.send(Some(summary));
                }
                .in_current_span(),
            );
            Ok(OrchestratorHandle {
                inner: Arc::new(HandleInner {
                    ctx,
                    director,
                    summary: summary_rx,
                    stop_requests: AtomicU32::new(0),
                    warnings,
                }),
            })
        }
        .instrument(span)
        .await
    }
}

fn redact_url(url: &str) -> String {
    // user:password@host → user:***@host
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn create_run_dir(
    log_directory: &Path,
    run_id: Option<String>,
) -> Result<(String, PathBuf), StartError> {
    std::fs::create_dir_all(log_directory).map_err(|source| StartError::RunDir {
        path: log_directory.to_path_buf(),
        source,
    })?;
    let base = run_id.unwrap_or_else(|| format!("run-{}", Utc::now().format("%Y%m%d-%H%M%S")));
    // Two runs in the same second (two orchestrators in one process) get distinct folders.
    for n in 0..1000 {
        let id = if n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let dir = log_directory.join(&id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                std::fs::create_dir_all(dir.join("sessions")).map_err(|source| {
                    StartError::RunDir {
                        path: dir.clone(),
                        source,
                    }
                })?;
                return Ok((id, dir));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(StartError::RunDir { path: dir, source }),
        }
    }
    Err(StartError::RunDir {
        path: log_directory.join(base),
        source: std::io::Error::other("too many runs with this id"),
    })
}

/// Puts a journaled run back on the board: in-flight tasks stay pinned to their worker and
/// session (the leads re-queue them), processes of the dead cco are killed, keys re-benched.
fn restore(board: &Board, keys: &KeyPool, journal: &crate::journal::Journal) {
    let mut snapshot = journal.snapshot.clone();
    for agent in &mut snapshot.agents {
        if let Some(pid) = agent.pid.take() {
            if crate::unix::kill_leftover_agent_process(pid, &agent.id) {
                warn!(agent = %agent.id, pid, "killed a claude process left by the previous cco");
            }
        }
        agent.state = "resuming".into();
        agent.current_task = None;
    }
    board.restore(&snapshot, journal.specs.clone(), journal.plan.clone());
    let now = Utc::now();
    for (key, until) in &journal.benched_keys {
        if *until > now {
            keys.bench(key, *until);
        }
    }
}

async fn spawn_git(
    config: &LoadedConfig,
    resumed_base: Option<String>,
) -> Result<GitHandle, StartError> {
    let cfg = &config.config;
    let source = match cfg.repository() {
        RepositoryLocation::Remote(url) => url.clone(),
        RepositoryLocation::LocalPath(path) => path.display().to_string(),
    };
    let mut git = GitConfig::new(&cfg.workspace_directory, source);
    git.clone = crate::gitmap::clone_options(cfg);
    git.secrets = crate::gitmap::secret_values(config);
    // A resumed run keeps its base (possibly a run branch created by the first start).
    git.use_run_branch = cfg.use_run_branch && resumed_base.is_none();
    git.base_branch = Some(resumed_base.unwrap_or_else(|| cfg.branch.clone()));
    git.verify_command = cfg.verify_command.clone();
    git.git_timeout = cfg.git_timeout();
    git.push = cfg.push;
    let env_root = match cfg.repository() {
        RepositoryLocation::LocalPath(path) => Some(path.clone()),
        RepositoryLocation::Remote(_) => None,
    };
    let config_dir = cfg.config_dir();
    git.env_files = cfg
        .env_files
        .iter()
        .flat_map(|name| {
            // Env files are looked for next to the config and in a local source repository.
            let mut found = vec![config_dir.join(name)];
            if let Some(root) = &env_root {
                found.push(root.join(name));
            }
            found
                .into_iter()
                .filter(|p| p.is_file())
                .take(1)
                .map(|p| EnvFile {
                    source: p,
                    relative: name.clone(),
                })
        })
        .collect();
    let (handle, _join) = GitHandle::spawn(git)
        .await
        .map_err(|source| StartError::Git {
            source: Box::new(source),
        })?;
    Ok(handle)
}

/// Writes the summary and final state, stops the GitActor (after its operation in flight).
async fn finish_run(
    ctx: &RunContext,
    end: RunEnd,
    started_at: DateTime<Utc>,
    clock: &RunClock,
) -> RunSummary {
    let snapshot = ctx.board.snapshot();
    let git = ctx.git.status().await.ok();
    if let Err(error) = ctx.git.stop().await {
        warn!(%error, "git actor did not stop cleanly");
    }
    let mut summary = RunSummary::new(
        snapshot,
        end.reason,
        end.completed,
        ctx.base_branch.clone(),
        started_at,
    );
    summary.git = git;
    // Active time over every cco process of the run (a resumed run counts the earlier ones).
    summary.duration_secs = clock.elapsed().as_secs_f64();
    // A run stopped by the user or a limit is finished too: `cco resume` is for crashes.
    let journal = crate::journal::Journal::capture(
        &ctx.board,
        &ctx.keys,
        &ctx.base_branch,
        clock,
        Some(&summary.reason),
    );
    if let Err(error) = journal.write(&ctx.run_dir) {
        warn!(%error, "could not write the final journal");
    }
    match serde_json::to_vec_pretty(&summary) {
        Ok(bytes) => {
            if let Err(error) =
                crate::persist::write_atomic(&ctx.run_dir.join("summary.json"), &bytes)
            {
                warn!(%error, "could not write summary.json");
            }
        }
        Err(error) => warn!(%error, "could not serialise the summary"),
    }
    info!(reason = %summary.reason, done = summary.totals.tasks_done, failed = summary.totals.tasks_failed, "run finished");
    summary
}

struct HandleInner {
    ctx: Arc<RunContext>,
    director: ActorRef<DirectorMsg>,
    summary: watch::Receiver<Option<RunSummary>>,
    stop_requests: AtomicU32,
    warnings: Vec<String>,
}

/// Control of a running orchestration; cheap to clone.
#[derive(Clone)]
pub struct OrchestratorHandle {
    inner: Arc<HandleInner>,
}

impl OrchestratorHandle {
    pub fn run_id(&self) -> &str {
        self.inner.ctx.board.run_id()
    }

    /// `<logDirectory>/<run id>`: logs, session transcripts, status dumps, summary.
    pub fn run_dir(&self) -> &Path {
        &self.inner.ctx.run_dir
    }

    /// Problems found while starting that did not stop it (e.g. a damaged journal replaced by
    /// the previous good one).
    pub fn warnings(&self) -> &[String] {
        &self.inner.warnings
    }

    pub fn base_branch(&self) -> &str {
        &self.inner.ctx.base_branch
    }

    /// The clone the run works in (`<workspaceDirectory>/repo`).
    pub fn workspace(&self) -> &Path {
        &self.inner.ctx.workspace
    }

    /// A snapshot of the supervision tree: every agent with role, state, pid, session, task,
    /// restarts and cost, plus task states and totals.
    pub fn status(&self) -> StatusSnapshot {
        self.inner.ctx.board.snapshot()
    }

    /// Live events of the run.
    pub fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.inner.ctx.board.events().subscribe()
    }

    /// Stops the run. Idempotent; `Force` escalates a graceful stop already under way.
    pub fn shutdown(&self, mode: ShutdownMode) {
        if mode == ShutdownMode::Force {
            self.inner.ctx.force_stop();
        } else {
            self.inner.ctx.begin_stop();
        }
        let reason = match mode {
            ShutdownMode::Graceful => "shutdown requested",
            ShutdownMode::Force => "forced shutdown requested",
        };
        let _ = self.inner.director.send_message(DirectorMsg::Stop {
            reason: reason.into(),
            force: mode == ShutdownMode::Force,
        });
    }

    /// For signal handlers: the first request stops gracefully, any later one forces.
    pub fn request_stop(&self) -> ShutdownMode {
        let n = self.inner.stop_requests.fetch_add(1, Ordering::SeqCst);
        let mode = if n == 0 {
            ShutdownMode::Graceful
        } else {
            ShutdownMode::Force
        };
        self.shutdown(mode);
        mode
    }

    /// Waits until the run has ended and its summary is written.
    pub async fn wait(&self) -> RunSummary {
        let mut rx = self.inner.summary.clone();
        loop {
            if let Some(summary) = rx.borrow_and_update().clone() {
                return summary;
            }
            if rx.changed().await.is_err() {
                let snapshot = self.status();
                let started_at = snapshot.started_at;
                let reason = "the run task ended without a summary".to_string();
                return RunSummary::new(
                    snapshot,
                    reason,
                    false,
                    self.inner.ctx.base_branch.clone(),
                    started_at,
                );
            }
        }
    }

    /// True once the run has ended.
    pub fn is_finished(&self) -> bool {
        self.inner.summary.borrow().is_some()
    }

    /// Renders the supervision tree and writes it to `<run dir>/status-<timestamp>.txt`
    /// (what the binary does on SIGUSR1). Returns the text and the file.
    pub fn dump_status(&self) -> std::io::Result<(String, PathBuf)> {
        let text = self.status().render_tree();
        let path = self.run_dir().join(format!(
            "status-{}.txt",
            Utc::now().format("%Y%m%d-%H%M%S%.3f")
        ));
        crate::persist::write_atomic(&path, text.as_bytes())?;
        Ok((text, path))
    }

    /// Fault injection for tests and drills: kills the actor of `agent` (not its process
    /// directly). Its supervisor restarts it. Returns false for an unknown agent.
    pub fn kill_agent_actor(&self, agent: &str) -> bool {
        let cell: Option<ActorCell> = self.inner.ctx.cell(agent);
        match cell {
            Some(cell) => {
                cell.kill();
                true
            }
            None => false,
        }
    }
}
