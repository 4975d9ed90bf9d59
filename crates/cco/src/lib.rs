//! cco: run a team of Claude Code agents on one repository, hands-off, from your own program.
//!
//! This crate is the stable face of cco's crates (as ripgrep's `grep` is of its own): load a
//! config directory ([`config::load`]), start an [`Orchestrator`], watch its [`RunEvent`]s and
//! [`status`](OrchestratorHandle::status), stop it, and read its [`RunSummary`] and
//! [`RunOutcome`]. Runs on disk are found and read with [`Orchestrator::latest_run`],
//! [`Orchestrator::unfinished_run`] and [`Orchestrator::read_run`].
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = cco::config::load(std::path::Path::new("my-config"))?;
//! let handle = cco::Orchestrator::builder(config).start().await?;
//! let mut events = handle.subscribe();
//! tokio::spawn(async move {
//!     while let Ok(event) = events.recv().await {
//!         for line in event.text().lines {
//!             println!("{line}");
//!         }
//!     }
//! });
//! let summary = handle.wait().await;
//! match summary.outcome {
//!     cco::RunOutcome::Completed => println!("done: {}", summary.reason),
//!     other => println!("{}: {}", other.label(), summary.reason),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The library owns nothing global: no signal handlers, no tracing subscriber, no
//! `process::exit`, no actor names. The application owns those (see `docs/embedding.md` and
//! `examples/embed.rs`). Data types are `#[non_exhaustive]`: new fields and variants are not
//! breaking changes; match them with a wildcard arm and build them with their constructors.

pub use cco_actors::{
    AgentRecord, CredentialState, CredentialStatus, EventSubject, EventText, GateFailure, GitError,
    GitStatus, GuardSpec, Interruption, JournalError, LockError, LockHolder, MergeCause,
    Orchestrator, OrchestratorBuilder, OrchestratorHandle, OrphanPolicy, PauseCause, Role,
    RunEvent, RunLimit, RunOutcome, RunPause, RunSummary, SavedRun, ShutdownMode, StartError,
    StatusSnapshot, TaskKind, TaskPhase, TaskRecord, TaskSpec, TaskState, Totals, Turn, LOCK_FILE,
};

/// Text from a run (an agent's words, a reason, a file name) made safe to show on a terminal.
pub use cco_actors::printable;

/// Config directories: `orchestrator.json` and `api-keys.json` (see docs/configuration.md).
pub mod config {
    pub use cco_config::{
        load, ApiKey, AuthMode, Config, ConfigError, LoadedConfig, MergeStrategy, Models,
        OrphanPolicy, PermissionMode, RepositoryLocation, StructuredOutput, API_KEYS_FILE_NAME,
        CONFIG_FILE_NAME,
    };
}

/// Workers on many hosts (issue 15): the node daemon and the run's [`cluster::Cluster`] (give a
/// [`cluster::ClusterHead`] to [`OrchestratorBuilder::cluster`]). See `docs/cluster.md`.
pub mod cluster {
    pub use cco_actors::{
        Cluster, ClusterReport, NodeRecord, NodeState, PlaceError, PlacedTurn, ProcessControl,
        RunLink, Spawned, TurnSite,
    };
    pub use cco_cluster::{
        acceptor, claude_version, connector, read_cookie, start_node, stdin_closed, write_cookie,
        ClusterError, ClusterHead, LocalNodes, NodeHandle, NodeOptions, MIN_COOKIE_LEN,
    };
    pub use cco_config::{ClusterConfig, ClusterTls, NodeAddress};
}

/// The guard process that stops claude processes when your process dies (see
/// `OrchestratorBuilder::guard` and docs/embedding.md): call `guard::main` first thing in
/// `main` when the binary is started as the guard.
pub mod guard {
    pub use cco_actors::guard::{main, GUARD_ARG};
}

/// `<run dir>/combined.log`: one line per event, `<UTC timestamp> <agent> <message>`; and
/// `<run dir>/events.jsonl`: one JSON object per event (its fields and `at`).
pub mod log {
    pub use cco_actors::log::{parse_line, LogLine, EVENTS_FILE_NAME, FILE_NAME, RUN_AGENT};
}
