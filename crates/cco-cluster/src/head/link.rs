//! One connection per configured node: connect (TLS when configured), wait until
//! ractor_cluster authenticated it (a wrong cookie shows as a session that closes before
//! that), find the node's agent in its process group, say hello, then heartbeat. A node
//! that disconnects or misses its heartbeats is lost; the link reconnects with a backoff
//! and the node rejoins (with a new node id: old actor refs stay dead).

use std::sync::Arc;
use std::time::Duration;

use cco_actors::{ClusterReport, NodeState};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use ractor_cluster::node::{NodeConnectionMode, NodeServerSessionInformation};
use ractor_cluster::{NodeEventSubscription, NodeServer, NodeServerMessage, NodeSessionMessage};
use tokio::sync::broadcast;
use tracing::{info, warn};

use super::HeadInner;
use crate::error::ClusterError;
use crate::wire::{decode, encode, NodeMsg, Request, Response, NODES_GROUP, PROTOCOL};

/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A connection not authenticated and ready after this long is given up.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// What happened to the sessions of each peer address (a wrong cookie shows as a session
/// that closed without being authenticated).
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    authenticated: bool,
    closed: bool,
}

type SeenMap = Arc<std::sync::Mutex<std::collections::HashMap<String, Seen>>>;

/// Sessions that disconnected (by ractor_cluster node id), and what each address went
/// through.
struct Sessions {
    disconnects: broadcast::Sender<u64>,
    seen: SeenMap,
}

impl Sessions {
    fn mark(&self, ses: &NodeServerSessionInformation, f: impl FnOnce(&mut Seen)) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        f(seen.entry(ses.peer_addr.clone()).or_default());
    }
}

impl NodeEventSubscription for Sessions {
    fn node_session_opened(&self, _ses: NodeServerSessionInformation) {}

    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        self.mark(&ses, |s| s.closed = true);
        let _ = self.disconnects.send(ses.node_id);
    }

    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        self.mark(&ses, |s| s.authenticated = true);
    }
}

/// Starts the head's NodeServer (loopback only: the head connects out, nothing connects in),
/// its endpoint actor and one link task per node.
pub(super) async fn start(inner: &Arc<HeadInner>) -> Result<(), ClusterError> {
    let server = NodeServer::new(
        0,
        inner.cookie.clone(),
        inner.name.clone(),
        "127.0.0.1".into(),
        None,
        Some(NodeConnectionMode::Isolated),
    )
    .with_listen_addr(std::net::IpAddr::from([127, 0, 0, 1]));
    let (server, _) = Actor::spawn(None, server, ())
        .await
        .map_err(|e| ClusterError::Listen {
            address: "127.0.0.1:0".into(),
            reason: e.to_string(),
        })?;
    let (tx, _) = broadcast::channel(64);
    let seen = SeenMap::default();
    let _ = server.cast(NodeServerMessage::SubscribeToEvents {
        id: "cco-head".into(),
        subscription: Box::new(Sessions {
            disconnects: tx.clone(),
            seen: Arc::clone(&seen),
        }),
    });
    *inner.server.lock().unwrap_or_else(|p| p.into_inner()) = Some(server.clone());
    let endpoint = super::endpoint::spawn(inner).await?;
    ractor::pg::join(
        crate::wire::head_group(&inner.name),
        vec![endpoint.get_cell()],
    );
    *inner.endpoint.lock().unwrap_or_else(|p| p.into_inner()) = Some(endpoint);
    let count = inner.lock().nodes.len();
    let mut tasks = inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
    for node in 0..count {
        let inner = Arc::clone(inner);
        let server = server.clone();
        let disconnects = tx.subscribe();
        let seen = Arc::clone(&seen);
        tasks.push(tokio::spawn(async move {
            run_link(&inner, node, &server, disconnects, seen).await;
        }));
    }
    Ok(())
}

/// Ends the run on every node (its processes stop, its folders go) and the head's actors.
pub(super) async fn stop(inner: &Arc<HeadInner>) {
    let run = inner.run().map(|l| l.run_id.clone());
    let agents: Vec<ActorRef<NodeMsg>> = inner
        .lock()
        .nodes
        .iter()
        .filter_map(|n| n.agent.clone())
        .collect();
    if let Some(run) = run {
        let releases = agents.into_iter().map(|agent| {
            let run = run.clone();
            async move {
                let _ = call(&agent, &Request::Release { run }, Duration::from_secs(30)).await;
            }
        });
        for release in releases {
            release.await;
        }
    }
    for task in inner
        .tasks
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain(..)
    {
        task.abort();
    }
    if let Some(endpoint) = inner
        .endpoint
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        endpoint.stop(None);
    }
    let server = inner
        .server
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(server) = server {
        let _ = server
            .stop_and_wait(None, Some(Duration::from_secs(5)))
            .await;
    }
}

/// One request to a node, with a timeout.
pub(crate) async fn call(
    agent: &ActorRef<NodeMsg>,
    request: &Request,
    timeout: Duration,
) -> Result<Response, String> {
    let frame = encode(request, b"");
    match agent
        .call(|port| NodeMsg::Call(frame, port), Some(timeout))
        .await
    {
        Ok(CallResult::Success(reply)) => decode::<Response>(&reply)
            .map(|(r, _)| r)
            .map_err(|e| e.to_string()),
        Ok(CallResult::Timeout) => Err(format!("no answer within {} ms", timeout.as_millis())),
        Ok(CallResult::SenderError) => Err("the connection closed".into()),
        Err(e) => Err(format!("the connection closed ({e})")),
    }
}

/// Why a link attempt ended.
enum Ended {
    /// Could not connect or was refused: try again after the backoff.
    Failed { refused: bool, reason: String },
    /// Was up, then lost.
    Lost(String),
}

async fn run_link(
    inner: &Arc<HeadInner>,
    node: usize,
    server: &ActorRef<NodeServerMessage>,
    mut disconnects: broadcast::Receiver<u64>,
    seen: SeenMap,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match connect_once(inner, node, server, &mut disconnects, &seen).await {
            Ended::Lost(reason) => {
                inner.node_lost(node, &reason);
                backoff = Duration::from_millis(200);
            }
            Ended::Failed { refused, reason } => {
                let address = inner.cfg.nodes[node].address.clone();
                let first = {
                    let mut state = inner.lock();
                    let n = &mut state.nodes[node];
                    let first = n.record.last_error.as_deref() != Some(reason.as_str());
                    n.record.last_error = Some(reason.clone());
                    if refused {
                        n.record.state = NodeState::Refused;
                    }
                    first
                };
                if first {
                    if refused {
                        warn!(%address, %reason, "node refused");
                        inner.report(ClusterReport::Refused {
                            address,
                            reason: reason.clone(),
                        });
                    } else {
                        info!(%address, %reason, "node not reachable yet");
                    }
                    inner.publish();
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn closed_unauthenticated(seen: &SeenMap, addr: &str) -> bool {
    seen.lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(addr)
        .is_some_and(|s| s.closed && !s.authenticated)
}

/// The session of the connection to `addr`, once ractor_cluster has one.
async fn session_to(
    server: &ActorRef<NodeServerMessage>,
    addr: &str,
) -> Option<NodeServerSessionInformation> {
    let sessions = ractor::call_t!(server, NodeServerMessage::GetSessions, 2000).ok()?;
    sessions
        .into_values()
        .find(|s| !s.is_server && s.peer_addr == addr)
}

async fn connect_once(
    inner: &Arc<HeadInner>,
    node: usize,
    server: &ActorRef<NodeServerMessage>,
    disconnects: &mut broadcast::Receiver<u64>,
    seen: &SeenMap,
) -> Ended {
    let cfg = inner.cfg.nodes[node].clone();
    let failed = |refused: bool, reason: String| Ended::Failed { refused, reason };
    let addr = match tokio::net::lookup_host(&cfg.address).await {
        Ok(mut addrs) => match addrs.next() {
            Some(a) => a,
            None => return failed(false, format!("{} resolves to no address", cfg.address)),
        },
        Err(e) => return failed(false, format!("cannot resolve {}: {e}", cfg.address)),
    };
    let addr_text = addr.to_string();
    seen.lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&addr_text);
    let connected = match &inner.tls {
        None => ractor_cluster::client_connect(server, addr).await,
        Some(tls) => {
            let name = cfg
                .server_name
                .clone()
                .unwrap_or_else(|| cfg.host().to_string());
            match crate::secret::server_name(&name) {
                Ok(name) => {
                    ractor_cluster::client_connect_enc(server, addr, tls.clone(), name).await
                }
                Err(e) => return failed(true, e.to_string()),
            }
        }
    };
    if let Err(e) = connected {
        let reason = match e {
            ractor_cluster::ClientConnectErr::Socket(e) => format!("cannot connect: {e}"),
            ractor_cluster::ClientConnectErr::Encryption(e) => {
                return failed(true, format!("TLS handshake failed: {e}"))
            }
            other => format!("cannot connect: {other}"),
        };
        return failed(false, reason);
    }
    // Connected means TCP only: wait for the session to be authenticated and ready.
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    let session = loop {
        match session_to(server, &addr_text).await {
            Some(s) => {
                let ready = ractor::call_t!(s.actor, NodeSessionMessage::GetReadyState, 2000)
                    .unwrap_or(false);
                if ready {
                    break s;
                }
            }
            None if closed_unauthenticated(seen, &addr_text) => {
                return failed(
                    true,
                    "the node closed the connection before it was authenticated: the cookie \
                     differs from the node's (or the node expects TLS, or it is not a cco node)"
                        .into(),
                )
            }
            None => {}
        }
        if tokio::time::Instant::now() >= deadline {
            if let Some(s) = session_to(server, &addr_text).await {
                s.actor.stop(None);
            }
            return failed(
                true,
                format!(
                    "not authenticated within {} s: a wrong cookie, or TLS settings that differ",
                    READY_TIMEOUT.as_secs()
                ),
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let node_id = session.node_id;
    // The node's agent shows up in the group once the groups synced.
    let agent = loop {
        let found = ractor::pg::get_members(&NODES_GROUP.to_string())
            .into_iter()
            .find(|cell| cell.get_id().node() == node_id);
        if let Some(cell) = found {
            break ActorRef::<NodeMsg>::from(cell);
        }
        if tokio::time::Instant::now() >= deadline {
            session.actor.stop(None);
            return failed(true, "authenticated, but no cco node agent there".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let hello = Request::Hello {
        head: inner.name.clone(),
        protocol: PROTOCOL,
    };
    let (name, slots, claude_version, free_disk) = match call(&agent, &hello, READY_TIMEOUT).await {
        Ok(Response::Hello {
            node,
            slots,
            claude_version,
            free_disk_bytes,
            ..
        }) => (node, slots, claude_version, free_disk_bytes),
        Ok(Response::Error { message }) => {
            session.actor.stop(None);
            return failed(true, message);
        }
        Ok(other) => {
            session.actor.stop(None);
            return failed(
                true,
                format!("unexpected answer to hello: {}", other.name()),
            );
        }
        Err(e) => return failed(false, e),
    };
    let duplicate = inner
        .lock()
        .nodes
        .iter()
        .enumerate()
        .any(|(i, n)| i != node && n.record.state.is_up() && n.record.name == name);
    if duplicate {
        session.actor.stop(None);
        return failed(
            true,
            format!("another configured node is named {name} already"),
        );
    }
    let (rejoined, slots) = {
        let mut state = inner.lock();
        let n = &mut state.nodes[node];
        let rejoined = n.record.joins > 0;
        let slots = match cfg.slots {
            Some(cap) => cap.min(slots),
            None => slots,
        };
        n.record.name = name.clone();
        n.record.slots = slots;
        n.record.joins += 1;
        n.record.state = if rejoined {
            NodeState::Rejoined
        } else {
            NodeState::Joined
        };
        n.record.claude_version = claude_version;
        n.record.free_disk_bytes = free_disk;
        n.record.last_error = None;
        n.agent = Some(agent.clone());
        (rejoined, slots)
    };
    info!(node = %name, address = %cfg.address, slots, rejoined, "node joined");
    inner.report(ClusterReport::Joined {
        node: name.clone(),
        address: cfg.address.clone(),
        slots,
        rejoined,
    });
    inner.publish();
    inner.changed.notify_waiters();

    // Heartbeats until the node is lost.
    let every = Duration::from_millis(inner.cfg.heartbeat_ms);
    let timeout = Duration::from_millis(inner.cfg.node_timeout_ms);
    let ping = Request::Ping {
        head: inner.name.clone(),
    };
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::select! {
            gone = disconnects.recv() => match gone {
                Ok(id) if id == node_id => return Ended::Lost("disconnected".into()),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Ended::Lost("the head's node server stopped".into()),
            },
            _ = tokio::time::sleep(every) => {}
        }
        match call(&agent, &ping, timeout).await {
            Ok(_) => last_ok = tokio::time::Instant::now(),
            Err(why) => {
                if last_ok.elapsed() >= timeout {
                    // A hung node is never noticed by the transport: close its session, so
                    // its actors are gone for good and a reconnect starts afresh.
                    if let Some(s) = session_to(server, &addr_text).await {
                        s.actor.stop(None);
                    }
                    return Ended::Lost(format!(
                        "no heartbeat answer for {} ms ({why})",
                        timeout.as_millis()
                    ));
                }
            }
        }
    }
}
