//! cco-cluster: workers of a cco run on many hosts (issue 15), over
//! [ractor_cluster](https://docs.rs/ractor_cluster) — no network protocol of our own.
//!
//! - **The head** is `cco start`: Director, EMs, the GitActor, the journal and every worker
//!   actor stay there. [`ClusterHead`] is the run's [`cco_actors::Cluster`]: it connects to the
//!   configured nodes (cookie, TLS when configured, heartbeats, reconnects), places each
//!   worker on a slot (local slots first, then the node with the most free slots) and runs
//!   the worker's claude processes there. The rest of cco sees the same turn updates as for
//!   a local process.
//! - **A node** is `cco node` ([`start_node`]): a ractor_cluster `NodeServer` and an agent
//!   actor in the process group `cco.nodes`, which heads call.
//! - **Git is the data plane**: the start commit goes to the node as a bundle relative to what
//!   the node has; the node's agent works in a repository of its own; the turn's commits come
//!   back as a bundle the head fetches through the same checks as local work. Bundles and
//!   session files travel in parts of 1 MiB.
//! - **Sessions survive a lost host**: a node sends each session file to the head as it grows;
//!   when a node is lost, its turns end as crashed processes, the restart policy resumes the
//!   same session, and the worker is placed elsewhere with the file installed under its new
//!   working directory.
//!
//! Layout: `wire` (messages and frames), `transfer` (files in parts), `secret` (cookie,
//! TLS), `node/` (the daemon), `head/` (the run's side), `local` (nodes as child processes
//! of this machine, for the demo and the benchmark).

mod error;
mod head;
mod local;
mod node;
mod secret;
mod transfer;
mod wire;

use std::path::Path;
use std::time::Duration;

pub use error::ClusterError;
pub use head::ClusterHead;
pub use local::{stdin_closed, write_cookie, LocalNodes};
pub use node::{start_node, NodeHandle, NodeOptions};
pub use secret::{acceptor, connector, read_cookie, MIN_COOKIE_LEN};
pub use wire::{NODES_GROUP, PROTOCOL};

pub(crate) use cco_actors::copy_user_login;

/// `claude --version`, first line (`None` when it does not answer within 10 s).
pub async fn claude_version(claude: &Path) -> Option<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new(claude)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
}

pub(crate) fn kill_reason_name(reason: cco_claude::KillReason) -> &'static str {
    match reason {
        cco_claude::KillReason::WallTimeout => "wall",
        cco_claude::KillReason::IdleTimeout => "idle",
        cco_claude::KillReason::Requested => "requested",
    }
}

pub(crate) fn kill_reason(name: &str) -> Option<cco_claude::KillReason> {
    Some(match name {
        "wall" => cco_claude::KillReason::WallTimeout,
        "idle" => cco_claude::KillReason::IdleTimeout,
        "requested" => cco_claude::KillReason::Requested,
        _ => return None,
    })
}
