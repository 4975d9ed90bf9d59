//! A node's side of a remote turn: prepare the worker's repository from a bundle, run its
//! claude processes, bring the result back as a bundle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cco_claude::{ClaudeSession, SessionHandle, SessionSpec};
use cco_git::{GitConfig, GitRepo};
use tracing::{info, warn};

use super::output;
use super::Node;
use crate::error::ClusterError;
use crate::wire::{check_name, projects_dir, Prepare, Request, Response, SpawnProcess};

/// The store and the repositories of one run of one head.
pub(crate) struct RunStore {
    pub(crate) repo: GitRepo,
    /// Ops on the store's refs (bundles in and out) one at a time.
    pub(crate) lock: tokio::sync::Mutex<()>,
}

/// A turn this node works on.
pub(crate) struct TurnSlot {
    pub(crate) head: String,
    pub(crate) run: String,
    pub(crate) agent: String,
    pub(crate) lane: String,
    pub(crate) path: PathBuf,
    pub(crate) config_dir: PathBuf,
    pub(crate) start: String,
    pub(crate) merging: Option<String>,
    /// Sessions its processes used, and how much of each file the head has.
    pub(crate) sessions: Arc<std::sync::Mutex<BTreeMap<String, u64>>>,
    pub(crate) running: Option<SessionHandle>,
}

pub(crate) async fn handle(node: &Arc<Node>, request: Request) -> Result<Response, ClusterError> {
    match request {
        Request::Prepare(prepare) => prepare_turn(node, prepare).await,
        Request::InstallSession {
            turn,
            session,
            transfer,
        } => install_session(node, &turn, &session, transfer),
        Request::Spawn(spawn) => spawn_process(node, *spawn),
        Request::Finish {
            turn,
            conclude,
            transfer,
        } => finish_turn(node, &turn, conclude, transfer).await,
        Request::Release { run } => release(node, &run),
        Request::Hello { .. } | Request::Ping { .. } => Ok(Response::Done),
    }
}

async fn run_store(node: &Node, run: &str) -> Result<Arc<RunStore>, ClusterError> {
    check_name("run", run)?;
    let existing = || {
        node.runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(run)
            .cloned()
    };
    if let Some(store) = existing() {
        return Ok(store);
    }
    // One creation at a time; whoever waited finds the store made meanwhile.
    let _creating = node.creating_run.lock().await;
    if let Some(store) = existing() {
        return Ok(store);
    }
    let workspace = node.opts.dir.join("runs").join(run);
    let mut cfg = GitConfig::new(&workspace, String::new());
    cfg.git_timeout = node.opts.git_timeout;
    let repo = GitRepo::new(cfg)?;
    repo.init_store().await?;
    let store = Arc::new(RunStore {
        repo,
        lock: tokio::sync::Mutex::new(()),
    });
    Ok(Arc::clone(
        node.runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(run.to_string())
            .or_insert(store),
    ))
}

fn have_ref(commit: &str) -> String {
    format!("refs/cco/have/{commit}")
}

async fn prepare_turn(node: &Arc<Node>, p: Prepare) -> Result<Response, ClusterError> {
    for (what, name) in [
        ("turn", &p.turn),
        ("team", &p.team),
        ("agent", &p.agent),
        ("lane", &p.lane),
    ] {
        check_name(what, name)?;
    }
    if let Some(session) = &p.session {
        check_name("session", session)?;
    }
    let store = run_store(node, &p.run).await?;
    let wanted: Vec<String> = std::iter::once(p.start.clone())
        .chain(p.merging.clone())
        .collect();
    if let Some(transfer) = p.bundle {
        let (file, _) = node.inbox.take(transfer).ok_or_else(|| {
            ClusterError::Protocol(format!("bundle {transfer:016x} did not arrive"))
        })?;
        let fetched = {
            let _guard = store.lock.lock().await;
            let mut result = Ok(());
            for commit in &wanted {
                result = store
                    .repo
                    .fetch_bundle(&file, commit, &have_ref(commit))
                    .await;
                if result.is_err() {
                    break;
                }
            }
            result
        };
        let _ = std::fs::remove_file(&file);
        if let Err(error) = fetched {
            warn!(%error, "bundle refused");
            return Ok(Response::NeedBundle);
        }
    } else {
        for commit in &wanted {
            if !store.repo.has_commit(commit).await? {
                return Ok(Response::NeedBundle);
            }
        }
    }
    let path = store.repo.worktree_path(&p.lane);
    let created = if path.exists() {
        None
    } else {
        Some(
            store
                .repo
                .create_worktree(&p.team, &p.lane, &p.start)
                .await?,
        )
    };
    if created.is_none_or(|c| c.head != p.start) {
        // The worker's previous turn here went back to the head (or was given up there):
        // nothing in this repository is worth keeping.
        store.repo.reset_agent_repo(&path, &p.start).await?;
    }
    if let Some(merging) = &p.merging {
        // The conflict the head found, made again here for the agent to resolve.
        store.repo.merge_into_worktree(&path, merging).await?;
    }
    let path = std::fs::canonicalize(&path).map_err(|e| ClusterError::io("worktree", &path, e))?;
    let config_dir = node
        .opts
        .dir
        .join("runs")
        .join(&p.run)
        .join("agents")
        .join(&p.agent)
        .join("claude-config");
    std::fs::create_dir_all(&config_dir)
        .map_err(|e| ClusterError::io("config dir", &config_dir, e))?;
    let has_session = p.session.as_ref().is_some_and(|s| {
        projects_dir(&config_dir, &path)
            .join(format!("{s}.jsonl"))
            .is_file()
    });
    let mut turns = node.turns();
    if let Some(old) = turns.remove(&p.turn) {
        if let Some(running) = old.running {
            running.kill();
        }
    }
    turns.insert(
        p.turn.clone(),
        TurnSlot {
            head: p.head,
            run: p.run,
            agent: p.agent,
            lane: p.lane,
            path,
            config_dir,
            start: p.start,
            merging: p.merging,
            sessions: Default::default(),
            running: None,
        },
    );
    Ok(Response::Prepared { has_session })
}

fn turn_paths(node: &Node, turn: &str) -> Result<(PathBuf, PathBuf), ClusterError> {
    node.turns()
        .get(turn)
        .map(|t| (t.path.clone(), t.config_dir.clone()))
        .ok_or_else(|| ClusterError::Protocol(format!("no turn {turn} here")))
}

fn install_session(
    node: &Node,
    turn: &str,
    session: &str,
    transfer: u64,
) -> Result<Response, ClusterError> {
    check_name("session", session)?;
    let (path, config_dir) = turn_paths(node, turn)?;
    let (file, _) = node.inbox.take(transfer).ok_or_else(|| {
        ClusterError::Protocol(format!("session file {transfer:016x} did not arrive"))
    })?;
    let dir = projects_dir(&config_dir, &path);
    std::fs::create_dir_all(&dir).map_err(|e| ClusterError::io("session folder", &dir, e))?;
    let target = dir.join(format!("{session}.jsonl"));
    std::fs::rename(&file, &target).map_err(|e| ClusterError::io("session file", &target, e))?;
    info!(%session, path = %target.display(), "session file installed (moved from another host)");
    Ok(Response::Done)
}

fn spawn_process(node: &Arc<Node>, req: SpawnProcess) -> Result<Response, ClusterError> {
    let (path, config_dir, sessions, head, agent) = {
        let turns = node.turns();
        let t = turns
            .get(&req.turn)
            .ok_or_else(|| ClusterError::Protocol(format!("no turn {} here", req.turn)))?;
        if t.running.as_ref().is_some() {
            return Err(ClusterError::Protocol(format!(
                "turn {} has a process running",
                req.turn
            )));
        }
        (
            t.path.clone(),
            t.config_dir.clone(),
            Arc::clone(&t.sessions),
            t.head.clone(),
            t.agent.clone(),
        )
    };
    for id in req.resume.iter().chain(&req.new_session) {
        check_name("session", id)?;
        sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.clone())
            .or_insert(0);
    }
    if req.oauth {
        crate::copy_user_login(&config_dir);
    }
    let ms = |v: Option<u64>| v.map(std::time::Duration::from_millis);
    let mut spec = SessionSpec::new(&node.opts.claude, req.prompt, &path, &config_dir);
    spec.label = req.label;
    spec.model = req.model;
    spec.resume_session_id = req.resume;
    spec.new_session_id = req.new_session;
    spec.fork_session = req.fork;
    spec.permission_mode = req.permission_mode;
    spec.max_turns = req.max_turns;
    spec.wall_timeout = ms(req.wall_timeout_ms);
    spec.idle_timeout = ms(req.idle_timeout_ms);
    spec.kill_grace = std::time::Duration::from_millis(req.kill_grace_ms);
    spec.linger_after_result = ms(req.linger_after_result_ms);
    spec.max_line_bytes = req.max_line_bytes;
    spec.env = req.env;
    spec.guard = node.opts.guard.clone();
    spec.env_remove = req.env_remove;
    let (lines_tx, lines_rx) = tokio::sync::mpsc::unbounded_channel();
    spec.on_line = Some(Arc::new(move |line: &[u8]| {
        let _ = lines_tx.send(line.to_vec());
    }));
    let (handle, updates) = ClaudeSession::spawn(spec).map_err(|e| ClusterError::Node {
        node: node.opts.name.clone(),
        reason: format!("could not start claude: {e}"),
    })?;
    let pid = handle.pid();
    if let Some(t) = node.turns().get_mut(&req.turn) {
        t.running = Some(handle);
    }
    tokio::spawn(output::forward(output::Forward {
        node: Arc::clone(node),
        head,
        agent,
        turn: req.turn,
        process: req.process,
        lines: lines_rx,
        updates,
        sessions,
        projects: projects_dir(&config_dir, &path),
    }));
    Ok(Response::Spawned { pid })
}

async fn finish_turn(
    node: &Arc<Node>,
    turn: &str,
    conclude: bool,
    transfer: u64,
) -> Result<Response, ClusterError> {
    let slot = node.turns().remove(turn);
    let Some(mut slot) = slot else {
        return Err(ClusterError::Protocol(format!("no turn {turn} here")));
    };
    if let Some(running) = slot.running.take() {
        running.kill();
        let _ = running.wait().await;
    }
    output::sync_sessions(
        node,
        &slot.head,
        &slot.agent,
        &slot.sessions,
        &projects_dir(&slot.config_dir, &slot.path),
    )
    .await;
    let store = run_store(node, &slot.run).await?;
    let result = if conclude {
        store.repo.conclude_worktree_merge(&slot.path).await?
    } else {
        store
            .repo
            .commit_turn(&slot.path, "cco: work left uncommitted")
            .await?
    };
    if result == slot.start {
        return Ok(Response::Finished {
            result,
            bundle_bytes: None,
        });
    }
    // The agent's commits into the store (checked as every copy of an agent's objects, kept
    // under a ref of their own) and into a bundle for the head, relative to the commits the
    // turn started from, which this store holds. No store lock: objects and a ref of this
    // turn's own are all that is written.
    let file = node
        .opts
        .dir
        .join("tmp")
        .join(format!("out-{transfer:016x}.bundle"));
    let mut start = vec![slot.start.clone()];
    start.extend(slot.merging.clone());
    let made = store
        .repo
        .bundle_agent_result(
            &slot.path,
            &result,
            &start,
            &format!("refs/cco/tasks/{}/{}", slot.run, slot.lane),
            &file,
        )
        .await;
    let sent = match made {
        Ok(_) => output::send_transfer(node, &slot.head, transfer, &file).await,
        Err(e) => Err(e.into()),
    };
    let _ = std::fs::remove_file(&file);
    let bundle_bytes = Some(sent?);
    Ok(Response::Finished {
        result,
        bundle_bytes,
    })
}

fn release(node: &Arc<Node>, run: &str) -> Result<Response, ClusterError> {
    check_name("run", run)?;
    let ended: Vec<String> = node
        .turns()
        .iter()
        .filter(|(_, t)| t.run == run)
        .map(|(id, _)| id.clone())
        .collect();
    for turn in ended {
        stop_turn(node, &turn, true);
        node.turns().remove(&turn);
    }
    node.runs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(run);
    let dir = node.opts.dir.join("runs").join(run);
    remove_run_dir(&dir);
    info!(%run, "run released");
    Ok(Response::Done)
}

fn remove_run_dir(dir: &Path) {
    if dir.exists() {
        if let Err(error) = std::fs::remove_dir_all(dir) {
            warn!(dir = %dir.display(), %error, "could not remove a released run");
        }
    }
}

/// Stops the process of `turn` (SIGTERM and grace, or SIGKILL).
pub(crate) fn stop_turn(node: &Node, turn: &str, kill: bool) {
    if let Some(running) = node.turns().get(turn).and_then(|t| t.running.as_ref()) {
        if kill {
            running.kill();
        } else {
            running.terminate();
        }
    }
}

/// Stops the processes of every turn of head `head`.
pub(crate) fn stop_head(node: &Node, head: &str, kill: bool) {
    for t in node.turns().values().filter(|t| t.head == head) {
        if let Some(running) = &t.running {
            if kill {
                running.kill();
            } else {
                running.terminate();
            }
        }
    }
}

/// Stops every process; returns their handles to wait on.
pub(crate) fn stop_all(node: &Node) -> Vec<SessionHandle> {
    node.turns()
        .values_mut()
        .filter_map(|t| t.running.take())
        .inspect(|h| h.terminate())
        .collect()
}
