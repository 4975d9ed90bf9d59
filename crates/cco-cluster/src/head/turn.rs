//! A worker's turn placed by the head ([`PlacedTurn`]): on this machine (a local slot) or on
//! a node. On a node, the first process of the turn (or the first after a move) prepares the
//! node's repository for this worker from the local one: the start commit (and the commit
//! being merged, for a conflict resolution) goes as a git bundle relative to what the node
//! has, and the session being resumed goes as a file when the node lacks it. After the turn,
//! the node's commits come back as a bundle, are fetched into cco's clone through the same
//! checks as local work, and the local repository is put at them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cco_actors::{BoxFuture, PlaceError, PlacedTurn, ProcessControl, Spawned, TurnSite};
use cco_claude::{ClaudeSession, SessionSpec};
use ractor::ActorRef;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::link::call;
use super::place::Target;
use super::HeadInner;
use crate::wire::{
    encode, projects_dir, transfer_id, NodeMsg, Prepare, Request, Response, SpawnProcess, ToNode,
};

/// Longest a node may take to prepare a turn or to finish one (git on a big repository).
const GIT_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest a node may take to start a process.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(60);

struct OnNode {
    node: usize,
    name: String,
    agent: ActorRef<NodeMsg>,
    generation: watch::Receiver<u64>,
    turn: String,
    start: String,
    merging: Option<String>,
}

enum Bound {
    Nowhere,
    Local,
    Node(OnNode),
}

pub(crate) struct RemoteTurn {
    inner: Arc<HeadInner>,
    site: TurnSite,
    bound: Bound,
    processes: u64,
}

impl RemoteTurn {
    pub(crate) fn new(inner: Arc<HeadInner>, site: TurnSite) -> RemoteTurn {
        RemoteTurn {
            inner,
            site,
            bound: Bound::Nowhere,
            processes: 0,
        }
    }

    fn lane(&self) -> String {
        self.site
            .worktree
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.site.agent.clone())
    }

    /// The run this turn belongs to.
    fn link(&self) -> Result<cco_actors::RunLink, PlaceError> {
        self.inner
            .run()
            .cloned()
            .ok_or_else(|| PlaceError::Failed("the cluster is not attached to a run".into()))
    }

    /// The head's copy of a session's file, else the local agent's own (a worker that ran
    /// here before).
    fn session_source(&self, spec: &SessionSpec, session: &str) -> Option<PathBuf> {
        let copy = self.inner.session_copy(&self.site.agent, session)?;
        if copy.is_file() {
            return Some(copy);
        }
        let local = projects_dir(&spec.config_dir, &spec.cwd).join(format!("{session}.jsonl"));
        local.is_file().then_some(local)
    }

    /// Ends the turn on its node, if it has one (its process stops there).
    fn unbind(&mut self) {
        if let Bound::Node(on) = std::mem::replace(&mut self.bound, Bound::Nowhere) {
            let _ = on.agent.cast(NodeMsg::Cast(encode(
                &ToNode::EndTurn { turn: on.turn },
                b"",
            )));
        }
    }

    async fn spawn_here(&mut self, spec: SessionSpec) -> Result<Spawned, PlaceError> {
        if !matches!(self.bound, Bound::Local) {
            self.unbind();
            // The session may have run on a node until now: its file goes where this
            // machine's CLI looks for it.
            if let Some(session) = spec.resume_session_id.clone() {
                let local =
                    projects_dir(&spec.config_dir, &spec.cwd).join(format!("{session}.jsonl"));
                if !local.is_file() {
                    if let Some(copy) = self.inner.session_copy(&self.site.agent, &session) {
                        if copy.is_file() {
                            if let Some(dir) = local.parent() {
                                let _ = std::fs::create_dir_all(dir);
                            }
                            if let Err(error) = std::fs::copy(&copy, &local) {
                                warn!(%error, "could not install the session file here");
                            }
                        }
                    }
                }
            }
            self.bound = Bound::Local;
        }
        let (handle, updates) = ClaudeSession::spawn(spec)
            .map_err(|e| PlaceError::Failed(format!("could not start claude: {e}")))?;
        Ok(Spawned {
            local_pid: Some(handle.pid()),
            control: Box::new(handle),
            updates,
        })
    }

    /// Sends `path` to the node as a transfer; returns its id and size.
    async fn send(&self, agent: &ActorRef<NodeMsg>, path: &Path) -> Result<(u64, u64), PlaceError> {
        let id = transfer_id();
        let sent = crate::transfer::send_file(path, |seq, last, bytes| {
            agent
                .cast(NodeMsg::Cast(encode(
                    &ToNode::Part {
                        transfer: id,
                        seq,
                        last,
                    },
                    bytes,
                )))
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| PlaceError::Lost(e.to_string()))?;
        Ok((id, sent))
    }

    /// Makes the node ready for this turn: bundle, repository, session file.
    async fn prepare(&mut self, node: usize, spec: &SessionSpec) -> Result<(), PlaceError> {
        self.unbind();
        let super::NodeView {
            agent,
            generation,
            name,
            known,
            bundles,
        } = self
            .inner
            .node_for(node)
            .ok_or_else(|| PlaceError::Lost("the node went away".into()))?;
        let link = self.link()?;
        let git = link.git.clone();
        let turn = format!("{node}.{}", uuid::Uuid::new_v4().simple());
        let bundle_path = link
            .run_dir
            .join("cluster")
            .join("transfers")
            .join(format!("{turn}.bundle"));
        // Where the turn starts, and the bundle that brings it to the node: one git op.
        let (start, mut made) = git
            .bundle_start(&self.site.worktree, known.clone(), &bundle_path)
            .await
            .map_err(|e| PlaceError::Failed(format!("the worker's repository: {e}")))?;
        let tips: Vec<String> = std::iter::once(start.head.clone())
            .chain(start.merging.clone())
            .collect();
        // One bundle to a node at a time: wait for a turn sending it commits, then send only
        // what it still lacks (often nothing: the same start commit).
        let _gate = match made {
            None => None,
            Some(_) => {
                let gate = bundles.lock_owned().await;
                let now_known = self.inner.node_for(node).map(|view| view.known);
                if let Some(now_known) = now_known.filter(|k| *k != known) {
                    made = git
                        .create_bundle(&self.site.worktree, tips.clone(), now_known, &bundle_path)
                        .await
                        .map_err(|e| PlaceError::Failed(format!("bundle for the node: {e}")))?;
                    if made.is_none() {
                        let _ = std::fs::remove_file(&bundle_path);
                    }
                }
                Some(gate)
            }
        };
        for attempt in 0..2 {
            if attempt > 0 {
                // The node lacked the basis: everything, once.
                made = git
                    .create_bundle(&self.site.worktree, tips.clone(), Vec::new(), &bundle_path)
                    .await
                    .map_err(|e| PlaceError::Failed(format!("bundle for the node: {e}")))?;
            }
            let bundle = match made {
                None => None,
                Some(_) => {
                    let sent = self.send(&agent, &bundle_path).await;
                    let _ = std::fs::remove_file(&bundle_path);
                    let (id, bytes) = sent?;
                    self.inner.update(node, |r| r.bundle_bytes_sent += bytes);
                    Some(id)
                }
            };
            let request = Request::Prepare(Prepare {
                turn: turn.clone(),
                head: self.inner.name.clone(),
                run: link.run_id.clone(),
                team: self.site.team.clone().unwrap_or_else(|| "flat".into()),
                agent: self.site.agent.clone(),
                lane: self.lane(),
                start: start.head.clone(),
                merging: start.merging.clone(),
                bundle,
                session: spec.resume_session_id.clone(),
            });
            match self.ask(&agent, &generation, &request, GIT_TIMEOUT).await? {
                Response::Prepared { has_session } => {
                    self.inner.remember(node, tips.clone());
                    self.bound = Bound::Node(OnNode {
                        node,
                        name: name.clone(),
                        agent: agent.clone(),
                        generation: generation.clone(),
                        turn: turn.clone(),
                        start: start.head.clone(),
                        merging: start.merging.clone(),
                    });
                    if let (Some(session), false) = (&spec.resume_session_id, has_session) {
                        self.install_session(spec, session, &agent, &generation, &turn)
                            .await?;
                    }
                    info!(worker = %self.site.agent, node = %name, "turn prepared on the node");
                    return Ok(());
                }
                Response::NeedBundle if attempt == 0 => {}
                Response::Error { message } => return Err(PlaceError::Failed(message)),
                other => {
                    return Err(PlaceError::Failed(format!(
                        "node {name} could not prepare the turn (it answered {})",
                        other.name()
                    )))
                }
            }
        }
        Err(PlaceError::Failed(format!(
            "node {name} could not use the bundle"
        )))
    }

    async fn install_session(
        &self,
        spec: &SessionSpec,
        session: &str,
        agent: &ActorRef<NodeMsg>,
        generation: &watch::Receiver<u64>,
        turn: &str,
    ) -> Result<(), PlaceError> {
        let Some(source) = self.session_source(spec, session) else {
            // Nothing to move: the CLI says "no conversation found" and the policy starts
            // the task afresh.
            warn!(%session, "no copy of the session to move");
            return Ok(());
        };
        let (transfer, _) = self.send(agent, &source).await?;
        let request = Request::InstallSession {
            turn: turn.to_string(),
            session: session.to_string(),
            transfer,
        };
        match self.ask(agent, generation, &request, GIT_TIMEOUT).await? {
            Response::Done => {
                info!(worker = %self.site.agent, %session, "session moved to the node");
                Ok(())
            }
            Response::Error { message } => Err(PlaceError::Failed(message)),
            other => Err(PlaceError::Failed(format!(
                "installing the session: the node answered {}",
                other.name()
            ))),
        }
    }

    /// A request that fails as soon as the node is lost.
    async fn ask(
        &self,
        agent: &ActorRef<NodeMsg>,
        generation: &watch::Receiver<u64>,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, PlaceError> {
        let mut generation = generation.clone();
        tokio::select! {
            answer = call(agent, request, timeout) => answer.map_err(PlaceError::Lost),
            _ = generation.changed() => Err(PlaceError::Lost("the node was lost".into())),
        }
    }

    async fn spawn_there(&mut self, spec: SessionSpec) -> Result<Spawned, PlaceError> {
        let Bound::Node(on) = &self.bound else {
            return Err(PlaceError::Lost("the turn is not on a node".into()));
        };
        let (agent, generation, turn) = (on.agent.clone(), on.generation.clone(), on.turn.clone());
        self.processes += 1;
        let process = self.processes;
        let oauth = !spec
            .env
            .iter()
            .any(|(k, _)| cco_config::CREDENTIAL_VARS.contains(&k.as_str()));
        let request = Request::Spawn(Box::new(SpawnProcess {
            turn: turn.clone(),
            process,
            label: spec.label.clone(),
            prompt: spec.prompt.clone(),
            model: spec.model.clone(),
            resume: spec.resume_session_id.clone(),
            new_session: spec.new_session_id.clone(),
            fork: spec.fork_session,
            permission_mode: spec.permission_mode.clone(),
            max_turns: spec.max_turns,
            wall_timeout_ms: spec.wall_timeout.map(|d| d.as_millis() as u64),
            idle_timeout_ms: spec.idle_timeout.map(|d| d.as_millis() as u64),
            kill_grace_ms: spec.kill_grace.as_millis() as u64,
            linger_after_result_ms: spec.linger_after_result.map(|d| d.as_millis() as u64),
            max_line_bytes: spec.max_line_bytes,
            env: spec.env.clone(),
            env_remove: spec.env_remove.clone(),
            oauth,
        }));
        // The route exists before the node can send output.
        let (route_tx, route_rx) = mpsc::unbounded_channel();
        let key = (turn.clone(), process);
        self.inner
            .routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), route_tx);
        let forget = |inner: &HeadInner| {
            inner
                .routes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
        };
        match self.ask(&agent, &generation, &request, SPAWN_TIMEOUT).await {
            Ok(Response::Spawned { pid }) => Ok(Spawned {
                control: Box::new(RemoteControl { agent, turn }),
                updates: super::process::adapt(&spec, pid, route_rx),
                // The pid is the node's: never one to end here.
                local_pid: None,
            }),
            Ok(Response::Error { message }) => {
                forget(&self.inner);
                Err(PlaceError::Failed(message))
            }
            Ok(other) => {
                forget(&self.inner);
                Err(PlaceError::Failed(format!(
                    "starting claude on the node: it answered {}",
                    other.name()
                )))
            }
            Err(e) => {
                forget(&self.inner);
                Err(e)
            }
        }
    }

    async fn collect_from(&mut self, on: OnNode) -> Result<(), PlaceError> {
        let link = self.link()?;
        let git = link.git.clone();
        let inbox = self
            .inner
            .inbox
            .get()
            .ok_or_else(|| PlaceError::Failed("no inbox".into()))?;
        let transfer = transfer_id();
        let arrived = inbox.expect(transfer);
        let request = Request::Finish {
            turn: on.turn.clone(),
            conclude: on.merging.is_some(),
            transfer,
        };
        let answer = self
            .ask(&on.agent, &on.generation, &request, GIT_TIMEOUT)
            .await;
        let (result, bundle_bytes) = match answer {
            Ok(Response::Finished {
                result,
                bundle_bytes,
            }) => (result, bundle_bytes),
            Ok(Response::Error { message }) => {
                inbox.forget(transfer);
                // The local repository stays where the turn started; the checks that follow
                // (capture, conclusion of a merge) report what is missing.
                warn!(worker = %self.site.agent, node = %on.name, %message, "the node could not finish the turn");
                return Ok(());
            }
            Ok(other) => {
                inbox.forget(transfer);
                return Err(PlaceError::Failed(format!(
                    "finishing on the node: it answered {}",
                    other.name()
                )));
            }
            Err(e) => {
                inbox.forget(transfer);
                return Err(e);
            }
        };
        let into = format!("refs/cco/remote/{}/{}", link.run_id, self.lane());
        let file = match bundle_bytes {
            None => None,
            Some(_) => {
                let mut generation = on.generation.clone();
                let got = tokio::select! {
                    got = tokio::time::timeout(GIT_TIMEOUT, arrived) => got,
                    _ = generation.changed() => {
                        inbox.forget(transfer);
                        return Err(PlaceError::Lost("the node was lost while sending the turn's work".into()));
                    }
                };
                match got {
                    Ok(Ok(Ok((path, bytes)))) => {
                        self.inner
                            .update(on.node, |r| r.bundle_bytes_received += bytes);
                        Some(path)
                    }
                    Ok(Ok(Err(why))) => return Err(PlaceError::Lost(why)),
                    _ => {
                        inbox.forget(transfer);
                        return Err(PlaceError::Lost("the turn's work did not arrive".into()));
                    }
                }
            }
        };
        if file.is_none() {
            inbox.forget(transfer);
        }
        let changed = result != on.start || on.merging.is_some();
        if changed {
            let bundle = file.clone().unwrap_or_default();
            let adopted = git
                .adopt_bundle(&self.site.worktree, bundle, &result, &into)
                .await;
            if let Some(file) = &file {
                let _ = std::fs::remove_file(file);
            }
            adopted.map_err(|e| PlaceError::Failed(format!("the node's work was refused: {e}")))?;
        }
        self.inner.remember(on.node, [result]);
        Ok(())
    }
}

impl PlacedTurn for RemoteTurn {
    fn spawn(&mut self, spec: SessionSpec) -> BoxFuture<'_, Result<Spawned, PlaceError>> {
        Box::pin(async move {
            let target = self.inner.place(&self.site.agent).await.ok_or_else(|| {
                PlaceError::Lost(format!(
                    "no free worker slot here or on a node within {} ms",
                    self.inner.cfg.placement_wait_ms
                ))
            })?;
            match target {
                Target::Local => self.spawn_here(spec).await,
                Target::Node(node) => {
                    let ready = match &self.bound {
                        Bound::Node(on) => {
                            on.node == node && !on.generation.has_changed().unwrap_or(true)
                        }
                        _ => false,
                    };
                    if !ready {
                        self.prepare(node, &spec).await?;
                    }
                    self.spawn_there(spec).await
                }
            }
        })
    }

    fn collect(&mut self) -> BoxFuture<'_, Result<(), PlaceError>> {
        Box::pin(async move {
            match std::mem::replace(&mut self.bound, Bound::Nowhere) {
                Bound::Node(on) => self.collect_from(on).await,
                other => {
                    self.bound = other;
                    Ok(())
                }
            }
        })
    }
}

impl Drop for RemoteTurn {
    fn drop(&mut self) {
        self.unbind();
    }
}

/// Stops a process on a node.
struct RemoteControl {
    agent: ActorRef<NodeMsg>,
    turn: String,
}

impl RemoteControl {
    fn stop(&self, kill: bool) {
        let _ = self.agent.cast(NodeMsg::Cast(encode(
            &ToNode::Stop {
                turn: self.turn.clone(),
                kill,
            },
            b"",
        )));
    }
}

impl ProcessControl for RemoteControl {
    fn terminate(&self) {
        self.stop(false);
    }

    fn kill(&self) {
        self.stop(true);
    }
}
