//! The node daemon (`cco node`): runs workers' claude processes for the heads that connect.
//!
//! A node starts a ractor_cluster `NodeServer` (cookie authentication, TLS when given a
//! certificate) and one agent actor in the process group [`NODES_GROUP`]; ractor_cluster
//! cannot spawn actors remotely, so heads find this actor through the group and call it.
//! Every request a head makes is answered by that actor; long ones (git, bundles) run in
//! spawned tasks so heartbeats are answered meanwhile.
//!
//! On disk (`--dir`): `runs/<run>/` per run of a head, with `repo/` (a store fed with git
//! bundles), `worktrees/<lane>/` (a repository of its own per worker repository, objects
//! borrowed from the store, made and hardened by cco-git as on the head) and
//! `agents/<agent>/claude-config/` (each agent's `CLAUDE_CONFIG_DIR`); `tmp/` holds transfers
//! while they arrive. A credential arrives with each process and lives only in that
//! process's environment: cco writes none to disk.
//!
//! When a head disconnects, its processes are stopped (a killed head never leaves claude
//! running here); its repositories stay for its `cco resume`. `Release` removes a run.

mod output;
mod turns;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::node::{NodeConnectionMode, NodeServerSessionInformation};
use ractor_cluster::{
    IncomingEncryptionMode, NodeEventSubscription, NodeServer, NodeServerMessage,
};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::error::ClusterError;
use crate::transfer::Inbox;
use crate::wire::{decode, encode, NodeMsg, Request, Response, ToNode, NODES_GROUP, PROTOCOL};

pub(crate) use turns::TurnSlot;

/// How a node runs.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// `--listen`: where heads connect.
    pub listen: SocketAddr,
    /// `--name`: unique in a cluster (a second node of the same name evicts the first).
    pub name: String,
    /// `--slots`: how many workers this node runs at once.
    pub slots: u32,
    /// `--dir`: runs, repositories, agents' config dirs.
    pub dir: PathBuf,
    /// The claude CLI this node runs.
    pub claude: PathBuf,
    /// Timeout of each git process.
    pub git_timeout: Duration,
    /// Runs claude under this guard, so claude stops when the node dies (`cco __guard`).
    pub guard: Option<cco_claude::GuardSpec>,
}

/// The state every request of a node shares.
pub(crate) struct Node {
    pub(crate) opts: NodeOptions,
    pub(crate) claude_version: Option<String>,
    pub(crate) inbox: Inbox,
    pub(crate) runs: Mutex<HashMap<String, Arc<turns::RunStore>>>,
    /// Held while a run's store is created: the first turns of a run arrive together (one per
    /// worker placed here), and only one may `git init` its repository.
    pub(crate) creating_run: tokio::sync::Mutex<()>,
    pub(crate) turns: Mutex<HashMap<String, TurnSlot>>,
}

impl Node {
    pub(crate) fn turns(&self) -> std::sync::MutexGuard<'_, HashMap<String, TurnSlot>> {
        self.turns.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running node; [`NodeHandle::stop`] ends it.
pub struct NodeHandle {
    node: Arc<Node>,
    server: ActorRef<NodeServerMessage>,
    agent: ActorRef<NodeMsg>,
    events: Option<tokio::task::JoinHandle<()>>,
}

/// Starts a node: its NodeServer listening on `opts.listen`, its agent actor in the group.
/// `tls`: accept TLS connections only. The cookie is the cluster's (see [`crate::read_cookie`]).
pub async fn start_node(
    opts: NodeOptions,
    cookie: String,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<NodeHandle, ClusterError> {
    let listen = opts.listen;
    // ractor_cluster's listener fails in its own task: find a taken port here, with a clear
    // error, first.
    std::net::TcpListener::bind(listen).map_err(|e| ClusterError::Listen {
        address: listen.to_string(),
        reason: e.to_string(),
    })?;
    for sub in ["runs", "tmp"] {
        let dir = opts.dir.join(sub);
        std::fs::create_dir_all(&dir).map_err(|e| ClusterError::io("node folder", &dir, e))?;
    }
    // Transfers of a previous life are incomplete by definition.
    if let Ok(entries) = std::fs::read_dir(opts.dir.join("tmp")) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let claude_version = crate::claude_version(&opts.claude).await;
    let node = Arc::new(Node {
        inbox: Inbox::new(opts.dir.join("tmp"), false),
        claude_version,
        runs: Mutex::new(HashMap::new()),
        creating_run: tokio::sync::Mutex::new(()),
        turns: Mutex::new(HashMap::new()),
        opts,
    });
    let encryption = tls.map(IncomingEncryptionMode::Tls);
    let server = NodeServer::new(
        listen.port(),
        cookie,
        node.opts.name.clone(),
        listen.ip().to_string(),
        encryption,
        Some(NodeConnectionMode::Isolated),
    )
    .with_listen_addr(listen.ip());
    let (server, _) = Actor::spawn(None, server, ())
        .await
        .map_err(|e| ClusterError::Listen {
            address: listen.to_string(),
            reason: e.to_string(),
        })?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _ = server.cast(NodeServerMessage::SubscribeToEvents {
        id: "cco-node".into(),
        subscription: Box::new(Sessions(tx)),
    });
    let (agent, _) = Actor::spawn(None, NodeAgent, Arc::clone(&node))
        .await
        .map_err(|e| ClusterError::Listen {
            address: listen.to_string(),
            reason: e.to_string(),
        })?;
    ractor::pg::join(NODES_GROUP.to_string(), vec![agent.get_cell()]);
    let watcher = Arc::clone(&node);
    let events = tokio::spawn(async move {
        while let Some(gone) = rx.recv().await {
            // A head that disconnects (killed, lost) leaves no process running here.
            info!(head = %gone, "head disconnected: stopping its processes");
            turns::stop_head(&watcher, &gone, false);
        }
    });
    info!(name = %node.opts.name, %listen, slots = node.opts.slots, "node ready");
    Ok(NodeHandle {
        node,
        server,
        agent,
        events: Some(events),
    })
}

impl NodeHandle {
    /// The node's name.
    pub fn name(&self) -> &str {
        &self.node.opts.name
    }

    /// Stops every process (SIGTERM, grace, SIGKILL), then the node's actors.
    pub async fn stop(mut self) {
        let handles = turns::stop_all(&self.node);
        for handle in handles {
            let _ = tokio::time::timeout(Duration::from_secs(15), handle.wait()).await;
        }
        if let Some(events) = self.events.take() {
            events.abort();
        }
        self.agent.stop(None);
        let _ = self
            .server
            .stop_and_wait(None, Some(Duration::from_secs(5)))
            .await;
    }
}

/// Heads that disconnect, by name.
struct Sessions(mpsc::UnboundedSender<String>);

impl NodeEventSubscription for Sessions {
    fn node_session_opened(&self, _ses: NodeServerSessionInformation) {}

    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        if let Some(peer) = ses.peer_name {
            // ractor_cluster names a peer `<name>@<host>`; heads name themselves `<name>`.
            let name = peer
                .name
                .rsplit_once('@')
                .map_or(peer.name.as_str(), |(n, _)| n);
            let _ = self.0.send(name.to_string());
        }
    }

    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        info!(peer = ?ses.peer_name.map(|p| p.name), addr = %ses.peer_addr, "head authenticated");
    }
}

struct NodeAgent;

impl Actor for NodeAgent {
    type Msg = NodeMsg;
    type State = Arc<Node>;
    type Arguments = Arc<Node>;

    async fn pre_start(
        &self,
        _myself: ActorRef<NodeMsg>,
        node: Arc<Node>,
    ) -> Result<Arc<Node>, ActorProcessingErr> {
        Ok(node)
    }

    async fn handle(
        &self,
        _myself: ActorRef<NodeMsg>,
        msg: NodeMsg,
        node: &mut Arc<Node>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NodeMsg::Call(frame, reply) => call(node, &frame, reply),
            NodeMsg::Cast(frame) => cast(node, &frame),
        }
        Ok(())
    }
}

fn answer(reply: RpcReplyPort<Vec<u8>>, response: Result<Response, ClusterError>) {
    let response = response.unwrap_or_else(|e| Response::Error {
        message: e.to_string(),
    });
    let _ = reply.send(encode(&response, b""));
}

/// A request: quick ones answered here, the rest in a task of their own.
fn call(node: &Arc<Node>, frame: &[u8], reply: RpcReplyPort<Vec<u8>>) {
    let request = match decode::<Request>(frame) {
        Ok((request, _)) => request,
        Err(e) => return answer(reply, Err(e)),
    };
    match request {
        Request::Hello { head, protocol } => {
            let response = if protocol != PROTOCOL {
                Err(ClusterError::Protocol(format!(
                    "head {head} speaks protocol {protocol}, this node {PROTOCOL}: run the same cco version on both"
                )))
            } else {
                info!(%head, "head joined");
                Ok(Response::Hello {
                    node: node.opts.name.clone(),
                    protocol: PROTOCOL,
                    slots: node.opts.slots,
                    claude_version: node.claude_version.clone(),
                    free_disk_bytes: free_disk(&node.opts.dir),
                })
            };
            answer(reply, response);
        }
        Request::Ping { .. } => answer(reply, Ok(Response::Pong)),
        request => {
            let node = Arc::clone(node);
            tokio::spawn(async move {
                let response = turns::handle(&node, request).await;
                if let Err(error) = &response {
                    warn!(%error, "request failed");
                }
                answer(reply, response);
            });
        }
    }
}

fn cast(node: &Arc<Node>, frame: &[u8]) {
    match decode::<ToNode>(frame) {
        Ok((
            ToNode::Part {
                transfer,
                seq,
                last,
            },
            bytes,
        )) => {
            node.inbox.part(transfer, seq, last, bytes);
        }
        Ok((ToNode::Stop { turn, kill }, _)) => turns::stop_turn(node, &turn, kill),
        Ok((ToNode::EndTurn { turn }, _)) => {
            turns::stop_turn(node, &turn, false);
            node.turns().remove(&turn);
        }
        Err(error) => warn!(%error, "message dropped"),
    }
}

/// Free bytes on the file system holding `dir`.
fn free_disk(dir: &std::path::Path) -> Option<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(stat.blocks_available() as u64 * stat.fragment_size() as u64)
}
