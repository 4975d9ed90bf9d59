//! What a node sends back to a head: a process's output (raw stdout lines, stderr, its exit)
//! in batches, the session files its processes write (so the head can move a session to
//! another host), and transfers (result bundles).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cco_claude::{MalformedReason, OutcomeKind, SessionUpdate};
use ractor::ActorRef;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc::UnboundedReceiver;

use super::Node;
use crate::error::ClusterError;
use crate::wire::{encode, head_group, HeadMsg, OutItem, ToHead, CHUNK, OUTPUT_BATCH};

/// How often a running process's session files are sent to the head.
const SESSION_SYNC: Duration = Duration::from_secs(1);
/// Output waits at most this long for more before it is sent.
const OUTPUT_LINGER: Duration = Duration::from_millis(50);

/// The endpoint actor of head `head` (found through its process group).
pub(crate) fn head_endpoint(head: &str) -> Option<ActorRef<HeadMsg>> {
    ractor::pg::get_members(&head_group(head))
        .into_iter()
        .next()
        .map(ActorRef::<HeadMsg>::from)
}

fn cast(head: &str, frame: Vec<u8>) -> Result<(), String> {
    let endpoint = head_endpoint(head).ok_or_else(|| format!("head {head} is not connected"))?;
    endpoint
        .cast(HeadMsg::Cast(frame))
        .map_err(|e| e.to_string())
}

pub(crate) struct Forward {
    pub(crate) node: Arc<Node>,
    pub(crate) head: String,
    pub(crate) agent: String,
    pub(crate) turn: String,
    pub(crate) process: u64,
    pub(crate) lines: UnboundedReceiver<Vec<u8>>,
    pub(crate) updates: UnboundedReceiver<SessionUpdate>,
    pub(crate) sessions: Arc<Mutex<BTreeMap<String, u64>>>,
    pub(crate) projects: PathBuf,
}

struct Batch {
    items: Vec<OutItem>,
    payload: Vec<u8>,
}

impl Batch {
    fn flush(&mut self, f: &Forward) {
        if self.items.is_empty() {
            return;
        }
        let header = ToHead::Output {
            turn: f.turn.clone(),
            process: f.process,
            items: std::mem::take(&mut self.items),
        };
        let frame = encode(&header, &self.payload);
        self.payload.clear();
        if let Err(why) = cast(&f.head, frame) {
            tracing::debug!(%why, "output dropped");
        }
    }
}

/// Sends a process's output to its head until the process ended.
pub(crate) async fn forward(mut f: Forward) {
    let mut batch = Batch {
        items: Vec::new(),
        payload: Vec::new(),
    };
    let mut sync = tokio::time::interval(SESSION_SYNC);
    sync.tick().await;
    let mut lines_open = true;
    let exit = loop {
        let linger = tokio::time::sleep(OUTPUT_LINGER);
        tokio::select! {
            // Lines first: every line of the process is sent before its exit.
            biased;
            line = f.lines.recv(), if lines_open => match line {
                Some(line) => {
                    batch.items.push(OutItem::Line { len: line.len() });
                    batch.payload.extend_from_slice(&line);
                    if batch.payload.len() >= OUTPUT_BATCH {
                        batch.flush(&f);
                    }
                }
                None => lines_open = false,
            },
            update = f.updates.recv() => match update {
                Some(SessionUpdate::Finished(outcome)) => break Some(outcome),
                Some(SessionUpdate::Stderr(text)) => batch.items.push(OutItem::Stderr { text }),
                Some(SessionUpdate::Malformed { line_no, error, excerpt, reason: MalformedReason::TooLong { len, limit } }) => {
                    batch.items.push(OutItem::TooLong { line_no, error, excerpt, len, limit });
                }
                Some(_) => {}
                None => break None,
            },
            _ = sync.tick() => {
                batch.flush(&f);
                sync_sessions(&f.node, &f.head, &f.agent, &f.sessions, &f.projects).await;
            }
            _ = linger, if !batch.items.is_empty() => batch.flush(&f),
        }
    };
    // Lines tapped before the exit are all queued by now.
    while let Ok(line) = f.lines.try_recv() {
        batch.items.push(OutItem::Line { len: line.len() });
        batch.payload.extend_from_slice(&line);
    }
    sync_sessions(&f.node, &f.head, &f.agent, &f.sessions, &f.projects).await;
    if let Some(t) = f.node.turns().get_mut(&f.turn) {
        t.running = None;
    }
    let item = match exit {
        Some(outcome) => OutItem::Exit {
            code: outcome.exit_code,
            signal: outcome.signal,
            killed: match outcome.kind {
                OutcomeKind::Killed { reason } => Some(crate::kill_reason_name(reason).into()),
                _ => None,
            },
            duration_ms: outcome.duration.as_millis() as u64,
        },
        None => OutItem::Exit {
            code: None,
            signal: None,
            killed: None,
            duration_ms: 0,
        },
    };
    batch.items.push(item);
    batch.flush(&f);
}

/// Sends what the head does not have yet of each session file.
pub(crate) async fn sync_sessions(
    node: &Node,
    head: &str,
    agent: &str,
    sessions: &Mutex<BTreeMap<String, u64>>,
    projects: &Path,
) {
    let known: Vec<(String, u64)> = sessions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    for (session, sent) in known {
        let path = projects.join(format!("{session}.jsonl"));
        let Ok(mut file) = tokio::fs::File::open(&path).await else {
            continue;
        };
        let Ok(len) = file.metadata().await.map(|m| m.len()) else {
            continue;
        };
        // A file that shrank was rewritten: send it whole again.
        let mut offset = if len < sent { 0 } else { sent };
        if offset == len {
            continue;
        }
        if file.seek(std::io::SeekFrom::Start(offset)).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; CHUNK];
        while offset < len {
            let want = CHUNK.min((len - offset) as usize);
            if file.read_exact(&mut buf[..want]).await.is_err() {
                break;
            }
            let header = ToHead::Session {
                node: node.opts.name.clone(),
                agent: agent.to_string(),
                session: session.clone(),
                offset,
            };
            if cast(head, encode(&header, &buf[..want])).is_err() {
                return;
            }
            offset += want as u64;
        }
        sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(session, offset);
    }
}

/// Sends the file at `path` to head `head` as transfer `id`.
pub(crate) async fn send_transfer(
    _node: &Node,
    head: &str,
    id: u64,
    path: &Path,
) -> Result<u64, ClusterError> {
    crate::transfer::send_file(path, |seq, last, bytes| {
        cast(
            head,
            encode(
                &ToHead::Part {
                    transfer: id,
                    seq,
                    last,
                },
                bytes,
            ),
        )
    })
    .await
}
