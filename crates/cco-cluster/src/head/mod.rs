//! The head's side: [`ClusterHead`], the [`Cluster`] a run's workers ask where their turns
//! run.
//!
//! Layout: this file holds the shared state (nodes, placement, routes of running processes)
//! and the [`Cluster`] impl; `link.rs` keeps one connection per configured node (connect,
//! hello, heartbeats, loss, reconnect with backoff); `endpoint.rs` is the actor nodes send
//! output, session files and bundles to; `turn.rs` is a worker's turn on a node
//! ([`PlacedTurn`]); `process.rs` turns a remote process's raw output into the updates a
//! local process gives; `place.rs` decides where workers go.

mod endpoint;
mod link;
mod place;
mod process;
mod turn;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cco_actors::{
    BoxFuture, Cluster, ClusterReport, NodeRecord, NodeState, PlacedTurn, RunLink, TurnSite,
};
use cco_config::ClusterConfig;
use ractor::ActorRef;
use ractor_cluster::NodeServerMessage;
use tokio::sync::{mpsc, watch, Notify};
use tracing::info;

use crate::error::ClusterError;
use crate::transfer::Inbox;
use crate::wire::{NodeMsg, OutItem};
use place::{Capacity, Placer, Target};

/// Commits remembered per node as a basis for bundles (the newest).
const KNOWN_COMMITS: usize = 64;

/// A process's output as the endpoint routes it.
pub(crate) enum RouteMsg {
    Output {
        items: Vec<OutItem>,
        payload: Vec<u8>,
    },
    Lost(String),
}

/// One configured node, as the head knows it.
pub(crate) struct NodeLink {
    pub(crate) record: NodeRecord,
    /// Its agent actor while it is up.
    pub(crate) agent: Option<ActorRef<NodeMsg>>,
    /// Bumped on every loss: work bound to an older generation is gone.
    pub(crate) generation: watch::Sender<u64>,
    /// Commits it has (sent to it or received from it), newest last.
    pub(crate) known: VecDeque<String>,
    /// Held by a turn while it sends this node commits it lacks, until the node has them:
    /// turns that need the same commits wait and then send only what is still missing
    /// (else every worker starting at once sends the node the same commits).
    pub(crate) bundles: Arc<tokio::sync::Mutex<()>>,
}

/// A node that is up, as a turn needs it.
pub(crate) struct NodeView {
    pub(crate) agent: ActorRef<NodeMsg>,
    /// Changes when the node is lost.
    pub(crate) generation: watch::Receiver<u64>,
    pub(crate) name: String,
    /// Commits it has (a basis for bundles).
    pub(crate) known: Vec<String>,
    /// See [`NodeLink::bundles`].
    pub(crate) bundles: Arc<tokio::sync::Mutex<()>>,
}

pub(crate) struct HeadState {
    pub(crate) nodes: Vec<NodeLink>,
    pub(crate) placer: Placer,
}

/// What every part of the head shares.
pub(crate) struct HeadInner {
    pub(crate) cfg: ClusterConfig,
    pub(crate) cookie: String,
    pub(crate) tls: Option<tokio_rustls::TlsConnector>,
    /// This head's node name (unique per process).
    pub(crate) name: String,
    pub(crate) state: Mutex<HeadState>,
    /// Capacity or node states changed.
    pub(crate) changed: Notify,
    pub(crate) link: OnceLock<RunLink>,
    pub(crate) inbox: OnceLock<Inbox>,
    pub(crate) routes: Mutex<HashMap<(String, u64), mpsc::UnboundedSender<RouteMsg>>>,
    pub(crate) server: Mutex<Option<ActorRef<NodeServerMessage>>>,
    pub(crate) tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    pub(crate) endpoint: Mutex<Option<ActorRef<crate::wire::HeadMsg>>>,
}

impl HeadInner {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, HeadState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn run(&self) -> Option<&RunLink> {
        self.link.get()
    }

    pub(crate) fn report(&self, report: ClusterReport) {
        if let Some(link) = self.run() {
            (link.report)(report);
        }
    }

    /// The node records as they are now, with the workers placed on each.
    pub(crate) fn records(&self) -> Vec<NodeRecord> {
        let state = self.lock();
        state
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut r = n.record.clone();
                r.workers = state.placer.workers_on(i);
                r
            })
            .collect()
    }

    /// Publishes the node records (after any change of state or counters).
    pub(crate) fn publish(&self) {
        self.report(ClusterReport::Nodes(self.records()));
    }

    pub(crate) fn update(&self, node: usize, f: impl FnOnce(&mut NodeRecord)) {
        if let Some(n) = self.lock().nodes.get_mut(node) {
            f(&mut n.record);
        }
        self.publish();
    }

    /// `<run dir>/cluster`.
    pub(crate) fn dir(&self) -> Option<PathBuf> {
        self.run().map(|l| l.run_dir.join("cluster"))
    }

    /// Where the head keeps its copy of `agent`'s session `session`.
    pub(crate) fn session_copy(&self, agent: &str, session: &str) -> Option<PathBuf> {
        crate::wire::check_name("agent", agent).ok()?;
        crate::wire::check_name("session", session).ok()?;
        Some(
            self.dir()?
                .join("sessions")
                .join(agent)
                .join(format!("{session}.jsonl")),
        )
    }

    pub(crate) fn remember(&self, node: usize, commits: impl IntoIterator<Item = String>) {
        let mut state = self.lock();
        if let Some(n) = state.nodes.get_mut(node) {
            for c in commits {
                if !n.known.contains(&c) {
                    n.known.push_back(c);
                }
            }
            while n.known.len() > KNOWN_COMMITS {
                n.known.pop_front();
            }
        }
    }

    /// The node's agent, its generation and what it knows, while it is up.
    pub(crate) fn node_for(&self, node: usize) -> Option<NodeView> {
        let state = self.lock();
        let n = state.nodes.get(node)?;
        if !n.record.state.is_up() {
            return None;
        }
        Some(NodeView {
            agent: n.agent.clone()?,
            generation: n.generation.subscribe(),
            name: n.record.name.clone(),
            known: n.known.iter().cloned().collect(),
            bundles: Arc::clone(&n.bundles),
        })
    }

    /// A place for `worker`, waiting (at most `placementWaitMs`) for a free slot.
    pub(crate) async fn place(&self, worker: &str) -> Option<Target> {
        let deadline = Instant::now() + Duration::from_millis(self.cfg.placement_wait_ms);
        loop {
            let changed = self.changed.notified();
            let (placed, moved) = {
                let mut state = self.lock();
                let before = state.placer.current(worker);
                let caps: Vec<Capacity> = state
                    .nodes
                    .iter()
                    .map(|n| Capacity {
                        up: n.record.state.is_up(),
                        slots: n.record.slots,
                    })
                    .collect();
                let placed = state.placer.place(worker, &caps);
                let moved = placed.is_some() && placed != before;
                let name = match placed {
                    Some(Target::Node(i)) => Some(state.nodes[i].record.name.clone()),
                    _ => None,
                };
                (placed, moved.then_some(name))
            };
            if let Some(node) = moved {
                info!(%worker, node = node.as_deref().unwrap_or("local"), "worker placed");
                self.report(ClusterReport::Placed {
                    agent: worker.to_string(),
                    node,
                });
                self.publish();
            }
            if placed.is_some() {
                return placed;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let _ = tokio::time::timeout(left.min(Duration::from_secs(1)), changed).await;
        }
    }

    /// Node `node` is lost: running processes there end, its workers go elsewhere.
    pub(crate) fn node_lost(&self, node: usize, reason: &str) {
        let name = {
            let mut state = self.lock();
            let Some(n) = state.nodes.get_mut(node) else {
                return;
            };
            if !n.record.state.is_up() {
                return;
            }
            n.record.state = NodeState::Lost;
            n.record.last_error = Some(reason.to_string());
            n.agent = None;
            n.known.clear();
            n.generation.send_modify(|g| *g += 1);
            let name = n.record.name.clone();
            state.placer.node_lost(node);
            name
        };
        tracing::warn!(node = %name, %reason, "node lost");
        let routes: Vec<_> = self
            .routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((turn, _), _)| turn.starts_with(&format!("{node}.")))
            .map(|(k, tx)| (k.clone(), tx.clone()))
            .collect();
        for (_, tx) in routes {
            let _ = tx.send(RouteMsg::Lost(format!("{name}: {reason}")));
        }
        self.report(ClusterReport::Lost {
            node: name,
            reason: reason.to_string(),
        });
        self.publish();
        self.changed.notify_waiters();
    }
}

/// A run's cluster: connects to the configured nodes and places workers' turns on them.
pub struct ClusterHead {
    inner: Arc<HeadInner>,
}

impl ClusterHead {
    /// Reads the cookie (refused if others may read it) and the TLS settings; connects
    /// nothing yet ([`Cluster::attach`] does).
    pub fn new(cfg: &ClusterConfig) -> Result<ClusterHead, ClusterError> {
        let cookie = crate::read_cookie(&cfg.cookie_file)?;
        let tls = match &cfg.tls {
            Some(tls) => Some(crate::secret::connector(&tls.ca_file)?),
            None => None,
        };
        let nodes = cfg
            .nodes
            .iter()
            .map(|n| NodeLink {
                record: NodeRecord::new(&n.address, n.slots.unwrap_or(0)),
                agent: None,
                generation: watch::channel(0).0,
                known: VecDeque::new(),
                bundles: Arc::default(),
            })
            .collect();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "head".into());
        let name = format!(
            "cco-head-{}-{}-{:04x}",
            host.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect::<String>(),
            std::process::id(),
            crate::wire::transfer_id() & 0xffff
        );
        Ok(ClusterHead {
            inner: Arc::new(HeadInner {
                cfg: cfg.clone(),
                cookie,
                tls,
                name,
                state: Mutex::new(HeadState {
                    nodes,
                    placer: Placer::new(cfg.local_slots),
                }),
                changed: Notify::new(),
                link: OnceLock::new(),
                inbox: OnceLock::new(),
                routes: Mutex::new(HashMap::new()),
                server: Mutex::new(None),
                tasks: Mutex::new(Vec::new()),
                endpoint: Mutex::new(None),
            }),
        })
    }

    /// The node records as they are now.
    pub fn nodes(&self) -> Vec<NodeRecord> {
        self.inner.records()
    }

    /// Waits until `count` nodes are up (or `timeout` passes); returns how many are.
    pub async fn wait_for_nodes(&self, count: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let changed = self.inner.changed.notified();
            let up = self
                .inner
                .lock()
                .nodes
                .iter()
                .filter(|n| n.record.state.is_up())
                .count();
            if up >= count || Instant::now() >= deadline {
                return up;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), changed).await;
        }
    }
}

impl Cluster for ClusterHead {
    fn attach(&self, link: RunLink) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let dir = link.run_dir.join("cluster");
            for sub in ["sessions", "transfers"] {
                std::fs::create_dir_all(dir.join(sub))
                    .map_err(|e| format!("{}: {e}", dir.join(sub).display()))?;
            }
            let _ = self
                .inner
                .inbox
                .set(Inbox::new(dir.join("transfers"), true));
            if self.inner.link.set(link).is_err() {
                return Err("this cluster is attached to a run already".into());
            }
            self.inner.publish();
            link::start(&self.inner).await.map_err(|e| e.to_string())
        })
    }

    fn turn(&self, site: TurnSite) -> Box<dyn PlacedTurn> {
        Box::new(turn::RemoteTurn::new(Arc::clone(&self.inner), site))
    }

    fn detach(&self) -> BoxFuture<'_, ()> {
        Box::pin(link::stop(&self.inner))
    }
}
