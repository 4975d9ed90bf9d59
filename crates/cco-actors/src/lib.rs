//! cco-actors: the embeddable supervision tree that runs a team of claude agents.
//!
//! ```text
//! Director (root; hierarchy mode: plans team goals, merges teams into the base branch)
//! ├── EM team-1 … EM team-N   (hierarchy)   or   Coordinator (flat: workerCount <= group size)
//! │   └── Worker … (one git worktree, one claude process at a time)
//! GitActor (singleton; every git operation, one at a time)
//! ```
//!
//! Layout:
//! - [`orchestrator`]: the public API ([`Orchestrator::builder`], [`OrchestratorHandle`]).
//! - [`director`], [`lead`] (EM / Coordinator), [`worker`]: the actors.
//! - [`session`]: a claude "turn" with restarts, resume, key rotation and timeouts, run by a
//!   process-owner task that kills the process group when its owning actor goes away.
//! - [`board`]: tasks, agents and totals, kept outside the actors (survives restarts);
//!   [`events`]: the broadcast of [`RunEvent`]s.
//! - [`restart`]: restart policies (ractor has none); [`keys`]: credential rotation.
//! - [`prompts`], [`auth`], [`gitmap`], [`persist`]: glue.
//!
//! Rules: no global actor names, no signal handlers, no tracing subscriber, no
//! `process::exit` — embedding applications own those. Handlers stay short; long work runs
//! in tasks that message their actor back. Stopping is ordered (workers, then leads, then the
//! Director, then git) because ractor stops children without running their `post_stop`.

pub mod auth;
pub mod board;
pub mod context;
pub mod director;
pub mod error;
pub mod events;
pub mod gitmap;
pub mod journal;
pub mod keys;
pub mod lead;
pub mod orchestrator;
pub mod persist;
pub mod prompts;
pub mod restart;
pub mod runlog;
pub mod session;
mod unix;
pub mod worker;

pub use board::{AgentRecord, Role, StatusSnapshot, TaskRecord, TaskState, Totals};
pub use error::StartError;
pub use events::RunEvent;
pub use orchestrator::{
    Orchestrator, OrchestratorBuilder, OrchestratorHandle, RunSummary, ShutdownMode,
};
