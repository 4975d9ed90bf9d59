//! What travels between the head and its nodes, over ractor_cluster.
//!
//! Two actor message types cross the link: [`NodeMsg`] (to a node's agent actor, found in the
//! process group [`NODES_GROUP`]) and [`HeadMsg`] (to a head's endpoint actor, in the group
//! [`head_group`] of its name). Each variant carries one byte string, a *frame*: a JSON header
//! ([`Request`], [`Response`], [`ToNode`], [`ToHead`]) and a raw payload (bundle bytes, output
//! lines, session file bytes). Frames are decoded by us, so a malformed one is an error we
//! report, never a panic (ractor's own decoders of typed fields may unwrap). Variants are
//! matched by name on the wire: add variants and fields (with defaults), never rename them.
//!
//! Large data (bundles, session files) goes in parts of at most [`CHUNK`] bytes: ractor_cluster
//! drops a whole session on a frame over 16 MiB, and smaller frames keep output flowing beside
//! a transfer on the one connection between two hosts.

use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::ClusterError;

/// Version of this protocol; a node and a head of different versions refuse each other.
/// 2: `Finish` no longer carries the head's basis (the turn's start is the basis).
pub const PROTOCOL: u32 = 2;
/// The process group every node's agent actor joins.
pub const NODES_GROUP: &str = "cco.nodes";
/// Largest part of a transfer (bundle, session file) in one message.
pub const CHUNK: usize = 1024 * 1024;
/// Output of a process is sent once this many payload bytes are pending (or every 50 ms).
pub const OUTPUT_BATCH: usize = 256 * 1024;

/// The process group of the head named `head` (its endpoint actor).
pub fn head_group(head: &str) -> String {
    format!("cco.head.{head}")
}

/// Messages to a node's agent actor.
#[derive(RactorClusterMessage)]
pub enum NodeMsg {
    /// A [`Request`] frame; answered with a [`Response`] frame.
    #[rpc]
    Call(Vec<u8>, RpcReplyPort<Vec<u8>>),
    /// A [`ToNode`] frame.
    Cast(Vec<u8>),
}

/// Messages to a head's endpoint actor.
#[derive(RactorClusterMessage)]
pub enum HeadMsg {
    /// A [`ToHead`] frame.
    Cast(Vec<u8>),
}

/// `[u32 header length][JSON header][payload]`.
pub fn encode(header: &impl Serialize, payload: &[u8]) -> Vec<u8> {
    let head = serde_json::to_vec(header).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + head.len() + payload.len());
    out.extend_from_slice(&(head.len() as u32).to_be_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
    out
}

/// The header and the payload of a frame.
pub fn decode<T: DeserializeOwned>(frame: &[u8]) -> Result<(T, &[u8]), ClusterError> {
    let bad = |why: String| ClusterError::Protocol(why);
    let len: [u8; 4] = frame
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("a frame shorter than its header length".into()))?;
    let len = u32::from_be_bytes(len) as usize;
    let head = frame
        .get(4..4 + len)
        .ok_or_else(|| bad("a frame shorter than its header".into()))?;
    let header = serde_json::from_slice(head).map_err(|e| bad(format!("a bad header: {e}")))?;
    Ok((header, &frame[4 + len..]))
}

/// Requests a head makes of a node (answered with a [`Response`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// The first request of a connection: who the head is, who the node is.
    Hello { head: String, protocol: u32 },
    /// Heartbeat.
    Ping { head: String },
    /// Prepares a turn's workspace (the payload is empty; a bundle came before as parts).
    Prepare(Prepare),
    /// Installs the session file received as transfer `transfer` for the turn's next process.
    InstallSession {
        turn: String,
        session: String,
        transfer: u64,
    },
    /// Starts one claude process of a prepared turn.
    Spawn(Box<SpawnProcess>),
    /// After the turn's last process: commit, bundle what is new since the turn's start
    /// (sent as transfer `transfer`), end the turn.
    Finish {
        turn: String,
        conclude: bool,
        transfer: u64,
    },
    /// The run ended: its processes are stopped and its folder on the node removed.
    Release { run: String },
}

/// A node's answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Response {
    Hello {
        node: String,
        protocol: u32,
        slots: u32,
        claude_version: Option<String>,
        free_disk_bytes: Option<u64>,
    },
    Pong,
    Prepared {
        has_session: bool,
    },
    /// The start commit is not there: send a bundle without a basis.
    NeedBundle,
    Spawned {
        pid: u32,
    },
    Finished {
        result: String,
        bundle_bytes: Option<u64>,
    },
    Done,
    Error {
        message: String,
    },
}

impl Response {
    /// The answer's name, for messages about an answer that was not expected.
    pub fn name(&self) -> &'static str {
        match self {
            Response::Hello { .. } => "hello",
            Response::Pong => "pong",
            Response::Prepared { .. } => "prepared",
            Response::NeedBundle => "need_bundle",
            Response::Spawned { .. } => "spawned",
            Response::Finished { .. } => "finished",
            Response::Done => "done",
            Response::Error { .. } => "error",
        }
    }
}

/// Where a turn starts on a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prepare {
    pub turn: String,
    pub head: String,
    pub run: String,
    pub team: String,
    pub agent: String,
    /// The worker's repository this turn runs in (one of its two), by name.
    pub lane: String,
    pub start: String,
    /// A conflict resolution: the commit being merged into `start`.
    pub merging: Option<String>,
    /// A bundle holding `start` (and `merging`) arrived as this transfer.
    pub bundle: Option<u64>,
    /// The session the next process resumes (the node says whether it has its file).
    pub session: Option<String>,
}

/// One claude process, as the head would run it (paths are the node's own).
#[derive(Clone, Serialize, Deserialize)]
pub struct SpawnProcess {
    pub turn: String,
    pub process: u64,
    pub label: String,
    pub prompt: String,
    pub model: Option<String>,
    pub resume: Option<String>,
    pub new_session: Option<String>,
    pub fork: bool,
    pub permission_mode: Option<String>,
    pub max_turns: Option<u32>,
    pub wall_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub kill_grace_ms: u64,
    pub linger_after_result_ms: Option<u64>,
    pub max_line_bytes: usize,
    /// The process's environment, credential included: used for this process only, never
    /// written to the node's disk.
    pub env: Vec<(String, String)>,
    pub env_remove: Vec<String>,
    /// No API key: the node's own Claude Code login is copied into the agent's config dir.
    pub oauth: bool,
}

impl std::fmt::Debug for SpawnProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpawnProcess")
            .field("turn", &self.turn)
            .field("process", &self.process)
            .field("env", &format!("{} variables", self.env.len()))
            .finish_non_exhaustive()
    }
}

/// One-way messages to a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ToNode {
    /// A part of transfer `transfer` (the payload).
    Part { transfer: u64, seq: u32, last: bool },
    /// Stop the turn's process: SIGTERM and grace, or SIGKILL (`kill`).
    Stop { turn: String, kill: bool },
    /// The head dropped the turn: stop its process, forget it.
    EndTurn { turn: String },
}

/// One-way messages to a head.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ToHead {
    /// Output of process `process` of `turn`, in order; line bytes are the payload.
    Output {
        turn: String,
        process: u64,
        items: Vec<OutItem>,
    },
    /// A part of transfer `transfer` (the payload).
    Part { transfer: u64, seq: u32, last: bool },
    /// Bytes of a session file from `offset` on (the payload): the head keeps a copy.
    Session {
        node: String,
        agent: String,
        session: String,
        offset: u64,
    },
}

/// One item of a process's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutItem {
    /// A complete stdout line of `len` bytes (the next bytes of the payload).
    Line {
        len: usize,
    },
    /// A stdout line longer than the limit, skipped.
    TooLong {
        line_no: u64,
        error: String,
        excerpt: String,
        len: u64,
        limit: usize,
    },
    Stderr {
        text: String,
    },
    /// The process ended (always the last item).
    Exit {
        code: Option<i32>,
        signal: Option<i32>,
        /// The node killed it (`wall`, `idle`, `requested`) before its result.
        killed: Option<String>,
        duration_ms: u64,
    },
}

/// A transfer id: random, so ids of several heads never meet on a node.
pub fn transfer_id() -> u64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u64::from_be_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ])
}

/// A name that may be one path component on a node (run, agent, lane, team, session ids).
pub fn check_name(what: &str, name: &str) -> Result<(), ClusterError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ClusterError::Protocol(format!("bad {what}: {name:?}")))
    }
}

/// `$CLAUDE_CONFIG_DIR/projects/<cwd with every non-alphanumeric char as '-'>`: where the
/// claude CLI keeps the sessions of `cwd`.
pub fn projects_dir(config_dir: &std::path::Path, cwd: &std::path::Path) -> std::path::PathBuf {
    let name: String = cwd
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    config_dir.join("projects").join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_frames_are_errors() {
        let frame = encode(
            &ToNode::Stop {
                turn: "t".into(),
                kill: true,
            },
            b"xyz",
        );
        let (header, payload): (ToNode, &[u8]) = decode(&frame).unwrap();
        assert!(matches!(header, ToNode::Stop { kill: true, .. }));
        assert_eq!(payload, b"xyz");
        assert!(decode::<ToNode>(&[0, 0]).is_err());
        assert!(decode::<ToNode>(&[0, 0, 0, 9, b'{']).is_err());
        assert!(decode::<ToNode>(&encode(&"not a message", b"")).is_err());
    }

    #[test]
    fn names_are_single_path_components() {
        for ok in ["worker-1", "run-20260101-000000", "a.b_c"] {
            check_name("name", ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "x\n"] {
            assert!(check_name("name", bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            projects_dir(
                std::path::Path::new("/c"),
                std::path::Path::new("/w/my.repo_x")
            ),
            std::path::PathBuf::from("/c/projects/-w-my-repo-x")
        );
    }
}
