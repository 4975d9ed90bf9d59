//! The head's endpoint actor: what nodes send (process output, session files, bundle parts)
//! arrives here and is routed to the turn that waits for it. Its handler does no await: it
//! writes files and forwards to channels.

use std::io::{Seek, Write};
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::warn;

use super::{HeadInner, RouteMsg};
use crate::error::ClusterError;
use crate::wire::{decode, HeadMsg, OutItem, ToHead};

struct Endpoint;

pub(super) async fn spawn(inner: &Arc<HeadInner>) -> Result<ActorRef<HeadMsg>, ClusterError> {
    let (actor, _) = Actor::spawn(None, Endpoint, Arc::clone(inner))
        .await
        .map_err(|e| ClusterError::Listen {
            address: "head endpoint".into(),
            reason: e.to_string(),
        })?;
    Ok(actor)
}

impl Actor for Endpoint {
    type Msg = HeadMsg;
    type State = Arc<HeadInner>;
    type Arguments = Arc<HeadInner>;

    async fn pre_start(
        &self,
        _myself: ActorRef<HeadMsg>,
        inner: Arc<HeadInner>,
    ) -> Result<Arc<HeadInner>, ActorProcessingErr> {
        Ok(inner)
    }

    async fn handle(
        &self,
        _myself: ActorRef<HeadMsg>,
        msg: HeadMsg,
        inner: &mut Arc<HeadInner>,
    ) -> Result<(), ActorProcessingErr> {
        let HeadMsg::Cast(frame) = msg;
        match decode::<ToHead>(&frame) {
            Ok((
                ToHead::Output {
                    turn,
                    process,
                    items,
                },
                payload,
            )) => {
                let last = items.iter().any(|i| matches!(i, OutItem::Exit { .. }));
                let key = (turn, process);
                let mut routes = inner.routes.lock().unwrap_or_else(|p| p.into_inner());
                let route = if last {
                    routes.remove(&key)
                } else {
                    routes.get(&key).cloned()
                };
                if let Some(route) = route {
                    let _ = route.send(RouteMsg::Output {
                        items,
                        payload: payload.to_vec(),
                    });
                }
            }
            Ok((
                ToHead::Part {
                    transfer,
                    seq,
                    last,
                },
                bytes,
            )) => {
                if let Some(inbox) = inner.inbox.get() {
                    inbox.part(transfer, seq, last, bytes);
                }
            }
            Ok((
                ToHead::Session {
                    node,
                    agent,
                    session,
                    offset,
                },
                bytes,
            )) => {
                if let Err(error) = keep_session(inner, &agent, &session, offset, bytes) {
                    warn!(%agent, %session, %error, "session file not kept");
                }
                let index = inner
                    .lock()
                    .nodes
                    .iter()
                    .position(|n| n.record.name == node);
                if let Some(index) = index {
                    inner.update(index, |r| r.session_bytes_received += bytes.len() as u64);
                }
            }
            Err(error) => warn!(%error, "message from a node dropped"),
        }
        Ok(())
    }
}

/// Writes `bytes` at `offset` of the head's copy of the session file (cut there first: the
/// node sends a rewritten file whole).
fn keep_session(
    inner: &HeadInner,
    agent: &str,
    session: &str,
    offset: u64,
    bytes: &[u8],
) -> std::io::Result<()> {
    let path = inner
        .session_copy(agent, session)
        .ok_or_else(|| std::io::Error::other("bad agent or session name"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    let len = file.metadata()?.len();
    if offset > len {
        return Err(std::io::Error::other(format!(
            "a part at {offset} of a copy of {len} bytes"
        )));
    }
    file.set_len(offset)?;
    file.seek(std::io::SeekFrom::Start(offset))?;
    file.write_all(bytes)
}
