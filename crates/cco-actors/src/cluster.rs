//! Where a worker's turns run: on this machine, or on a node of a cluster (issue 15).
//!
//! cco-actors knows no network. A cluster (the `cco-cluster` crate, or any embedder's) is
//! given to [`OrchestratorBuilder::cluster`](crate::OrchestratorBuilder::cluster) as a
//! [`Cluster`]; every worker then asks it for a [`PlacedTurn`] per turn, and the turn's owner
//! task (`session/drive.rs`) starts each claude process through it instead of spawning one
//! itself. A placed turn returns the process's [`SessionUpdate`]s exactly as a local process
//! would, so the restart policy, the journal and the lead see no difference; after the last
//! process it [collects](PlacedTurn::collect) the turn's commits into the worker's local
//! repository, where they are captured, reviewed and merged as local work is.
//!
//! A host that is lost while a process runs ends that process as a crash ("node lost"): the
//! policy resumes the same session after its backoff, and the next
//! [`spawn`](PlacedTurn::spawn) places the worker elsewhere (another node, or this machine)
//! with the session's file installed under the new working directory. Directors, leads and
//! reviews always run here.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use cco_claude::{SessionHandle, SessionSpec, SessionUpdate};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedReceiver;

/// A boxed future, for the object-safe traits below.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Stops a running claude process, wherever it runs.
pub trait ProcessControl: Send + Sync {
    /// SIGTERM to its process group, the grace period, then SIGKILL.
    fn terminate(&self);
    /// SIGKILL now.
    fn kill(&self);
}

impl ProcessControl for SessionHandle {
    fn terminate(&self) {
        SessionHandle::terminate(self);
    }

    fn kill(&self) {
        SessionHandle::kill(self);
    }
}

/// A started process: its control and its updates (`Started` first, `Finished` last).
pub struct Spawned {
    pub control: Box<dyn ProcessControl>,
    pub updates: UnboundedReceiver<SessionUpdate>,
    /// Its pid when it runs on this machine (journaled, so a cco that dies has it ended by
    /// the next); `None` on another host (that host ends it when this cco goes).
    pub local_pid: Option<u32>,
}

/// Why a placed turn could not start a process or bring its work back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceError {
    /// The host is gone, unreachable or full: the turn is worth another try, possibly
    /// elsewhere (the restart policy decides, with its backoff and limit).
    Lost(String),
    /// It cannot work this way (a local spawn failed, a refused bundle): the turn fails.
    Failed(String),
}

impl std::fmt::Display for PlaceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlaceError::Lost(why) => write!(f, "node lost: {why}"),
            PlaceError::Failed(why) => f.write_str(why),
        }
    }
}

/// One worker turn, placed by a [`Cluster`].
pub trait PlacedTurn: Send {
    /// Starts one claude process of the turn. `spec` is the process as it would run here (the
    /// worker's local repository as `cwd`, its config dir, environment and credential); a
    /// remote place runs the same command in its own repository for this worker, prepared
    /// from the local one first when needed.
    fn spawn(&mut self, spec: SessionSpec) -> BoxFuture<'_, Result<Spawned, PlaceError>>;
    /// After the turn's last process: its commits into the worker's local repository (a
    /// no-op for a turn that ran here).
    fn collect(&mut self) -> BoxFuture<'_, Result<(), PlaceError>>;
}

/// Whose turn is being placed.
#[derive(Debug, Clone)]
pub struct TurnSite {
    pub agent: String,
    pub team: Option<String>,
    /// The worker's local repository this turn runs in (one of its two).
    pub worktree: PathBuf,
    pub task: Option<String>,
}

/// What a run gives its cluster when it starts.
#[derive(Clone)]
pub struct RunLink {
    pub run_id: String,
    pub run_dir: PathBuf,
    pub git: cco_git::GitHandle,
    /// `cco resume` of a run: turns that ran on nodes when the previous cco died are ended.
    pub resumed: bool,
    /// Tells the run what the cluster sees (nodes, placements); cheap, callable anywhere.
    pub report: Arc<dyn Fn(ClusterReport) + Send + Sync>,
}

/// What a cluster tells the run.
#[derive(Debug, Clone)]
pub enum ClusterReport {
    /// The nodes as they are now (every change).
    Nodes(Vec<NodeRecord>),
    /// Worker `agent` runs its turns on `node` (`None`: on this machine).
    Placed {
        agent: String,
        node: Option<String>,
    },
    Joined {
        node: String,
        address: String,
        slots: u32,
        rejoined: bool,
    },
    Lost {
        node: String,
        reason: String,
    },
    Refused {
        address: String,
        reason: String,
    },
}

/// The run's view of its cluster.
pub trait Cluster: Send + Sync + 'static {
    /// Connects the run (nodes may still be joining when it returns).
    fn attach(&self, link: RunLink) -> BoxFuture<'_, Result<(), String>>;
    /// A turn of a worker, placed when its first process starts.
    fn turn(&self, site: TurnSite) -> Box<dyn PlacedTurn>;
    /// The run ended: processes still running on nodes are stopped, nodes release the run.
    fn detach(&self) -> BoxFuture<'_, ()>;
}

/// A node as the run sees it (status, SIGUSR1 dump, `summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeRecord {
    /// The node's name (`cco node --name`), or its address until it has answered.
    pub name: String,
    pub address: String,
    pub state: NodeState,
    /// Worker slots the run may use there.
    pub slots: u32,
    /// Workers placed there now.
    pub workers: Vec<String>,
    /// How often it joined (a rejoin after a loss counts).
    pub joins: u32,
    pub claude_version: Option<String>,
    pub free_disk_bytes: Option<u64>,
    /// Git bundles sent to it and received from it, in bytes.
    pub bundle_bytes_sent: u64,
    pub bundle_bytes_received: u64,
    /// Session files received from it, in bytes.
    pub session_bytes_received: u64,
    pub last_error: Option<String>,
}

impl NodeRecord {
    /// A configured node that has not answered yet.
    pub fn new(address: &str, slots: u32) -> NodeRecord {
        NodeRecord {
            name: address.to_string(),
            address: address.to_string(),
            state: NodeState::Connecting,
            slots,
            workers: Vec::new(),
            joins: 0,
            claude_version: None,
            free_disk_bytes: None,
            bundle_bytes_sent: 0,
            bundle_bytes_received: 0,
            session_bytes_received: 0,
            last_error: None,
        }
    }
}

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Connecting,
    Joined,
    /// Disconnected or stopped answering heartbeats; reconnected with a backoff.
    Lost,
    /// Joined again after a loss.
    Rejoined,
    /// Refused the connection (a wrong cookie, TLS) or was refused by cco.
    Refused,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Connecting => "connecting",
            NodeState::Joined => "joined",
            NodeState::Lost => "lost",
            NodeState::Rejoined => "rejoined",
            NodeState::Refused => "refused",
        }
    }

    /// Turns can be placed there.
    pub fn is_up(self) -> bool {
        matches!(self, NodeState::Joined | NodeState::Rejoined)
    }
}
