//! The embedding API: [`Orchestrator::builder`] → [`OrchestratorBuilder::start`] →
//! [`OrchestratorHandle`] → [`RunSummary`]; and runs on disk ([`SavedRun`]).
//!
//! Nothing here is global: no actor names, no signal handlers, no tracing subscriber, no
//! `process::exit`. Several orchestrators can run in one process at once. Layout: this file
//! starts a run (the run folder, the GitActor, the journal writer, the Director);
//! `handle.rs` controls it; `summary.rs` ends it; `saved.rs` reads runs from their journals.

mod handle;
mod saved;
mod summary;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex};

use cco_claude::GuardSpec;
use cco_config::{LoadedConfig, RepositoryLocation};
use cco_git::{EnvFile, GitConfig, GitHandle};
use chrono::Utc;
use ractor::Actor;
use tokio::sync::{broadcast, watch};
use tracing::{info, warn, Instrument};

use self::handle::HandleInner;
use crate::board::Board;
use crate::context::RunContext;
use crate::director::{DirectorActor, DirectorArgs, DirectorMsg, RunEnd};
use crate::error::StartError;
use crate::events::{EventBus, RunEvent};
use crate::journal::RunClock;
use crate::keys::KeyPool;
use crate::outcome::RunOutcome;
use crate::runlock::RunLock;

pub use handle::{OrchestratorHandle, ShutdownMode};
pub use saved::SavedRun;
pub use summary::RunSummary;

/// Entry point of the library.
pub struct Orchestrator;

impl Orchestrator {
    pub fn builder(config: LoadedConfig) -> OrchestratorBuilder {
        OrchestratorBuilder {
            config,
            run_id: None,
            events: EventBus::new(4096),
            resume: None,
            cluster: None,
            guard: None,
        }
    }
}

/// Options of one run.
pub struct OrchestratorBuilder {
    config: LoadedConfig,
    run_id: Option<String>,
    events: EventBus,
    resume: Option<PathBuf>,
    cluster: Option<Arc<dyn crate::cluster::Cluster>>,
    guard: Option<GuardSpec>,
}

impl OrchestratorBuilder {
    /// Names the run (default: `run-<UTC timestamp>`); also the name of its log folder.
    pub fn run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    /// Continues the journaled run in `run_dir` (see [`Orchestrator::unfinished_run`]) instead
    /// of starting a new one: worktrees are re-attached, each agent's claude session is resumed by id, tasks
    /// that were in flight are re-queued, merged work is never redone.
    pub fn resume(mut self, run_dir: impl Into<PathBuf>) -> Self {
        self.resume = Some(run_dir.into());
        self
    }

    /// Runs workers' turns on the nodes of `cluster` (issue 15; the `cco-cluster` crate).
    /// Directors, leads, reviews, git and the journal stay in this process.
    pub fn cluster(mut self, cluster: Arc<dyn crate::cluster::Cluster>) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Runs every claude process under this guard program, so agents stop when the process
    /// running the orchestrator dies (`kill -9`, a crash): see `cco_claude::guard`. The `cco`
    /// binary passes itself (`GuardSpec::cco(current_exe, ..)`, its hidden `cco __guard`
    /// mode); an embedder passes its own program that calls `cco_claude::guard::main`, or
    /// nothing (the default): then claude processes outlive a dead orchestrator until
    /// `resume` ends them. The config's `orphanPolicy` decides: `stop` (default) uses the
    /// guard, `continue` runs claude without it (the guard's own policy field is ignored).
    pub fn guard(mut self, guard: GuardSpec) -> Self {
        self.guard = Some(guard);
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
            cluster,
            guard,
        } = self;
        let guard = match config.config.orphan_policy {
            cco_config::OrphanPolicy::Stop => guard.map(|guard| GuardSpec {
                policy: cco_claude::OrphanPolicy::Stop,
                ..guard
            }),
            cco_config::OrphanPolicy::Continue => None,
        };
        // One cco per run: nothing is touched before the lock is held.
        let lock = RunLock::acquire(&config.config.workspace_directory)?;
        info!(lock = %lock.path().display(), "run lock held");
        if resume.is_none() {
            // Starting over (`cco start --fresh`): a dead cco's unfinished run may have left
            // claude processes behind, exactly as for `cco resume`.
            end_leftovers_of_unfinished_run(&config.config.log_directory);
        }
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
            let keys = KeyPool::new(
                cfg.auth_mode,
                config.api_keys.clone(),
                crate::auth::login_available(),
                cfg.quota_warning_threshold,
            );
            let mut warnings = Vec::new();
            let resumed_base = match &journal {
                Some((journal, journal_warnings)) => {
                    warnings.extend(journal_warnings.iter().cloned());
                    restore(&board, &keys, journal);
                    Some(journal.base_branch.clone())
                }
                None => None,
            };
            let ambient = crate::secrets::ambient(&config);
            let git = spawn_git(&config, resumed_base, &ambient).await?;
            // Holding the lock, with no agent running: every git lock in cco's repositories
            // is stale (left by a crash).
            match git.remove_stale_locks().await {
                Ok(removed) => {
                    for lock in removed {
                        warnings.push(format!(
                            "removed the stale git lock {} (left by a crash)",
                            lock.display()
                        ));
                    }
                }
                Err(error) => warn!(%error, "could not look for stale git locks"),
            }
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
            let (answer, answer_warning) = answer_format(&config).await;
            warnings.extend(answer_warning);
            if let Some((journal, _)) = &journal {
                // What cco wrote to the shared branches before: a branch moved since (while no
                // cco ran) is found and put back before the first merge.
                if let Err(error) = git
                    .restore_expected_tips(journal.expected_tips.clone())
                    .await
                {
                    warn!(%error, "could not restore the expected tips of the shared branches");
                }
                adopt_unrecorded_merges(&git, journal, &run_dir, cfg.is_flat()).await;
            }
            let redactor = Arc::new(config.redactor_with(ambient));
            board.events().set_redactor(Arc::clone(&redactor));
            let workspace = cfg.workspace_directory.clone();
            // Every agent with a claude session: workers, their leads, the Director.
            let agents = cfg.worker_count + cfg.team_count() + usize::from(!cfg.is_flat());
            let breaker = crate::breaker::Breaker::new(
                agents,
                cfg.api_retry_backoff(),
                cfg.max_api_retry_backoff(),
            );
            let ctx = Arc::new(RunContext {
                breaker,
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
                forced: watch::channel(false).0,
                cluster,
                answer,
                guard,
                cells: Mutex::new(Default::default()),
            });
            if let Err(error) = attach_cluster(&ctx).await {
                let _ = git.stop().await;
                return Err(error);
            }
            ctx.show_credentials();
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
            let journal_writer = crate::journal::Writer::spawn(
                ctx.board.clone(),
                ctx.keys.clone(),
                ctx.base_branch.clone(),
                clock,
                ctx.run_dir.clone(),
                Some(ctx.git.clone()),
                Arc::clone(&ctx.redactor),
            );
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
                        outcome: RunOutcome::Failed,
                    });
                    if let Some(cluster) = &finisher_ctx.cluster {
                        cluster.detach().await;
                    }
                    // Merges that landed while their lead stopped are recorded before the
                    // final journal and the summary.
                    summary::reconcile_merges(&finisher_ctx).await;
                    // No periodic write may land after (or race with) the final one.
                    journal_writer.stop().await;
                    // combined.log ends with RunFinished: let it catch up before the summary.
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), run_log).await;
                    let summary = summary::finish_run(&finisher_ctx, end, started_at, &clock).await;
                    // Released once everything is on disk, before anyone learns the run ended.
                    drop(lock);
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

/// Connects the run's cluster: its reports become board state and events.
async fn attach_cluster(ctx: &Arc<RunContext>) -> Result<(), StartError> {
    let Some(cluster) = &ctx.cluster else {
        return Ok(());
    };
    let board = ctx.board.clone();
    let report = move |report: crate::cluster::ClusterReport| {
        use crate::cluster::ClusterReport as R;
        let event = match report {
            R::Nodes(nodes) => {
                board.set_nodes(nodes);
                return;
            }
            R::Placed { agent, node } => {
                board.update_agent(&agent, |a| a.node = node.clone());
                RunEvent::WorkerPlaced { agent, node }
            }
            R::Joined {
                node,
                address,
                slots,
                rejoined,
            } => RunEvent::NodeJoined {
                node,
                address,
                slots,
                rejoined,
            },
            R::Lost { node, reason } => RunEvent::NodeLost { node, reason },
            R::Refused { address, reason } => RunEvent::NodeRefused { address, reason },
        };
        board.events().emit(event);
    };
    let link = crate::cluster::RunLink {
        run_id: ctx.board.run_id().to_string(),
        run_dir: ctx.run_dir.clone(),
        git: ctx.git.clone(),
        resumed: ctx.resumed,
        report: Arc::new(report),
    };
    cluster.attach(link).await.map_err(StartError::Cluster)
}

/// How long `claude --help` may take when the run asks the CLI what it supports.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// How planners and reviewers answer in this run (`structuredOutput`): through the CLI's
/// `StructuredOutput` tool when the CLI has `--json-schema` (asked once, `auto`), or as text;
/// with a warning when the CLI could not be asked.
async fn answer_format(config: &LoadedConfig) -> (cco_protocol::AnswerFormat, Option<String>) {
    use cco_protocol::AnswerFormat;
    match config.config.structured_output {
        cco_config::StructuredOutput::On => (AnswerFormat::StructuredOutput, None),
        cco_config::StructuredOutput::Off => (AnswerFormat::Text, None),
        cco_config::StructuredOutput::Auto => {
            match cco_claude::probe_cli(&config.claude_binary, PROBE_TIMEOUT).await {
                Ok(features) if features.structured_output.is_supported() => {
                    info!("the claude CLI has --json-schema: planners and reviewers answer through structured output");
                    (AnswerFormat::StructuredOutput, None)
                }
                Ok(_) => {
                    info!("the claude CLI has no --json-schema: planners and reviewers answer as text");
                    (AnswerFormat::Text, None)
                }
                Err(error) => (
                    AnswerFormat::Text,
                    Some(format!(
                        "could not ask the claude CLI what it supports ({error}): planners and reviewers answer as text"
                    )),
                ),
            }
        }
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
    crate::unix::kill_leftover_processes(&journal.run_id, &journal.processes);
    let mut snapshot = journal.snapshot.clone();
    for agent in &mut snapshot.agents {
        let pid = agent.pid.take();
        // A process on a cluster node has a pid of that host: the node ended it when this
        // head disconnected.
        if let Some(pid) = pid.filter(|_| agent.node.is_none()) {
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

/// The branch the tasks of `team` merge into: the base branch in flat mode, else the team's.
pub(crate) fn merge_target(flat: bool, base: &str, team: &str) -> String {
    if flat {
        base.to_string()
    } else {
        cco_git::team_branch(team)
    }
}

/// The run's name in its task refs (`refs/cco/tasks/<run>/...`): its folder's name.
pub(crate) fn run_name(run_dir: &Path) -> String {
    run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into())
}

/// A resumed run: merges the dead cco made but did not journal (it died between moving a
/// shared branch and writing the journal) are cco's own, not foreign commits: each shared
/// branch adopts them when they are exactly merges of the task refs of its unfinished tasks
/// (work frozen for review or merge), or of the other shared branches (team merges, base
/// syncs).
async fn adopt_unrecorded_merges(
    git: &GitHandle,
    journal: &crate::journal::Journal,
    run_dir: &Path,
    flat: bool,
) {
    let run = run_name(run_dir);
    for branch in journal.expected_tips.keys() {
        let mut sources: Vec<String> = journal
            .snapshot
            .tasks
            .iter()
            // Work frozen in a task ref: only cco writes those, in its own clone, and only cco
            // merges them. Every unfinished task's ref is a source, captured or not as far as
            // the journal knows: its writes can lag behind capture, review and merge all at
            // once (the journal may show the turn just finished); a ref that was never
            // written resolves to nothing.
            .filter(|t| !t.phase.is_terminal())
            .filter(|t| merge_target(flat, &journal.base_branch, &t.team) == *branch)
            .map(|t| cco_git::task_ref(&run, &t.team, &t.id))
            .collect();
        sources.extend(
            journal
                .expected_tips
                .keys()
                .filter(|b| *b != branch)
                .map(|b| format!("refs/heads/{b}")),
        );
        match git.adopt_unrecorded_merges(branch, sources).await {
            Ok(true) => info!(%branch, "merges made just before the restart adopted"),
            Ok(false) => {}
            Err(error) => warn!(%branch, %error, "could not check the branch's unrecorded merges"),
        }
    }
}

/// Ends the claude processes the newest unfinished run under `log_directory` journaled as
/// alive (its cco died without ending them).
fn end_leftovers_of_unfinished_run(log_directory: &Path) {
    let Some(dir) = crate::journal::unfinished_run(log_directory) else {
        return;
    };
    if let Ok((journal, _)) = crate::journal::load(&dir) {
        let killed = crate::unix::kill_leftover_processes(&journal.run_id, &journal.processes);
        if !killed.is_empty() {
            warn!(run = %journal.run_id, groups = killed.len(), "ended claude processes the unfinished run left behind");
        }
        for agent in &journal.snapshot.agents {
            if let Some(pid) = agent.pid {
                crate::unix::kill_leftover_agent_process(pid, &agent.id);
            }
        }
    }
}

async fn spawn_git(
    config: &LoadedConfig,
    resumed_base: Option<String>,
    ambient: &[(String, cco_config::Secret)],
) -> Result<GitHandle, StartError> {
    let cfg = &config.config;
    let source = match cfg.repository() {
        RepositoryLocation::Remote(url) => url.clone(),
        RepositoryLocation::LocalPath(path) => path.display().to_string(),
    };
    let mut git = GitConfig::new(&cfg.workspace_directory, source);
    git.clone = crate::gitmap::clone_options(cfg);
    git.secrets = crate::gitmap::secret_values(config, ambient);
    // A resumed run keeps its base (possibly a run branch created by the first start).
    git.use_run_branch = cfg.use_run_branch && resumed_base.is_none();
    git.base_branch = Some(resumed_base.unwrap_or_else(|| cfg.branch.clone()));
    git.verify_command = cfg.verify_command.clone();
    // The gate runs tests agents wrote: none of cco's credentials in its environment.
    git.verify_env_remove = cco_config::CREDENTIAL_VARS
        .iter()
        .chain(&["CLAUDE_CODE_OAUTH_TOKEN"])
        .map(|v| v.to_string())
        .collect();
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
