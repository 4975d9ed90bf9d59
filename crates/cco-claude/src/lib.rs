//! cco-claude: drives one headless `claude` process and reads its stream-json output.
//!
//! Layout:
//! - [`events`]: typed stream-json events (tolerant: unknown types/fields are kept as `Unknown`).
//! - [`parse`]: line-by-line parsing with a line-length cap; malformed lines are reported, never fatal.
//! - [`spec`]: [`SessionSpec`], everything needed to build the command line and environment.
//! - [`session`]: [`ClaudeSession::spawn`] runs the process in its own process group; a
//!   background owner task reads stdout/stderr, enforces wall-clock and idle timeouts and
//!   turns the end of the process into a [`SessionOutcome`].
//! - `unix`: process-group signalling (SIGTERM, grace, SIGKILL) via `nix`.
//!
//! Rules: the owner task kills the whole process group when its control channel closes (the
//! handle was dropped), so a dropped or panicked caller never leaves an orphan or a zombie.
//! Nothing here installs signal handlers or a tracing subscriber.

// API SKETCH (to be implemented): see the helper task. Do not change public names without
// updating crates/cco-actors.
