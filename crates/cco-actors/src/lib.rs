//! cco-actors: the supervision tree that runs a team of claude agents. Embedders use it
//! through the facade crate `cco`, which re-exports this crate's public items.
//!
//! ```text
//! Director (root; hierarchy mode: plans team goals, merges teams into the base branch)
//! ├── EM em-1 … EM em-N   (hierarchy)   or   Coordinator (flat: workerCount <= group size)
//! │   └── Worker … (two git worktrees, one claude process at a time)
//! GitActor (singleton; every shared ref)
//! ```
//!
//! Layout (every module is private; the public items are re-exported below):
//! - `orchestrator`: the API ([`Orchestrator::builder`], [`OrchestratorHandle`],
//!   [`RunSummary`], [`SavedRun`]); `outcome`: how a run ended ([`RunOutcome`]).
//! - `lifecycle`: a task's life as a type ([`TaskPhase`]) and the table that is its only
//!   writer; `board`: the run's shared state (tasks, agents, totals) outside every actor;
//!   `journal`: its crash-safe copy on disk, the durability barrier, resume of old journals.
//! - `director`, `lead` (EM / Coordinator), `worker`: the actors. Each lead is a shell around
//!   a pure core (`lead/core.rs`: decisions as effects; unit-tested without IO).
//! - `supervise`: child slots and restarts shared by the Director and the leads (`restart`:
//!   the policies); `planning`: the plan / repair loop shared by every planner.
//! - `session`: a claude "turn" with restarts, resume, key rotation and timeouts (the next step
//!   after each process is a pure decision, `session/policy.rs`); `keys`: credentials, the
//!   auth modes and quota-aware admission; `breaker`: the run-wide circuit breaker that holds
//!   new processes while the API is overloaded.
//! - `events`: the broadcast of [`RunEvent`]s and their text; `runlog`: `combined.log`.
//! - `cluster`: where a worker's turns run (this machine, or a node of a [`Cluster`]).
//! - `prompts`: every prompt, built with cco-protocol's builders from the run's facts.
//! - `context`, `auth`, `gitmap`, `persist`, `unix`: glue.
//!
//! Rules: no global actor names, no signal handlers, no tracing subscriber, no
//! `process::exit` — embedding applications own those. Handlers stay short; long work runs
//! in tasks that message their actor back with typed results. Stopping is ordered (workers,
//! then leads, then the Director, then git) because ractor stops children without running
//! their `post_stop`.

mod auth;
mod board;
mod breaker;
mod cluster;
mod context;
mod director;
mod error;
mod events;
mod gitmap;
mod journal;
mod keys;
mod lead;
mod lifecycle;
mod orchestrator;
mod outcome;
mod persist;
mod planning;
mod prompts;
mod restart;
mod runlock;
mod runlog;
mod secrets;
mod session;
mod supervise;
mod unix;
mod worker;

pub use auth::copy_user_login;
/// The one team of flat mode (the Coordinator's).
pub(crate) const FLAT_TEAM: &str = "flat";

pub use board::{
    AgentRecord, CredentialState, CredentialStatus, PauseCause, Role, RunPause, StatusSnapshot,
    TaskRecord, TaskState, Totals,
};
pub use cco_claude::{GuardSpec, OrphanPolicy};

/// The guard process that stops a claude process when the orchestrator's process dies (see
/// [`OrchestratorBuilder::guard`]): call [`guard::main`] first thing in a binary started as
/// the guard program.
pub mod guard {
    pub use cco_claude::guard::{main, GUARD_ARG};
}
pub use cco_git::{GitError, GitStatus};
pub use cco_protocol::TaskSpec;
pub use cluster::{
    BoxFuture, Cluster, ClusterReport, NodeRecord, NodeState, PlaceError, PlacedTurn,
    ProcessControl, RunLink, Spawned, TurnSite,
};
pub use error::StartError;
pub use events::{printable, EventSubject, EventText, RunEvent};
pub use journal::JournalError;
pub use lifecycle::{GateFailure, Interruption, MergeCause, TaskKind, TaskPhase, Turn};
pub use orchestrator::{
    Orchestrator, OrchestratorBuilder, OrchestratorHandle, RunSummary, SavedRun, ShutdownMode,
};
pub use outcome::{RunLimit, RunOutcome};
pub use runlock::{LockError, LockHolder, LOCK_FILE};

/// `<run dir>/combined.log`: one line per event, `<UTC timestamp> <agent> <message>`; and
/// `<run dir>/events.jsonl`: one JSON object per event (its fields and `at`).
pub mod log {
    pub use crate::runlog::{parse_line, LogLine, EVENTS_FILE_NAME, FILE_NAME, RUN_AGENT};
}
