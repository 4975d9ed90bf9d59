//! cco-claude: drives one headless `claude` process and reads its stream-json output.
//!
//! Layout:
//! - [`events`]: typed stream-json events (tolerant: unknown types/fields are kept as
//!   `Unknown` or ignored) and [`parse_line`], which deserializes a line straight into them.
//! - [`parse`]: line-by-line reading with a line-length cap ([`BoundedLines`]: an over-long
//!   line is skipped chunk by chunk, never buffered whole); malformed lines are reported,
//!   never fatal.
//! - [`api`]: typed API signals as they arrive ([`ApiSignal`]: `system/api_retry`,
//!   `rate_limit_event`) and the classification of API errors ([`ApiErrorClass`]: 429,
//!   529, other 5xx, connection), with texts for people.
//! - [`outcome`]: [`SessionOutcome`] and the pure judgement ([`OutcomeBuilder`], [`judge`]) of
//!   events + stderr + exit status, so transcripts can be judged without a process.
//! - [`spec`]: [`SessionSpec`], everything needed to build the command line and environment
//!   (its `Debug` redacts env values).
//! - [`session`]: [`ClaudeSession::spawn`] runs the process in its own process group; a
//!   background owner task reads stdout/stderr, enforces wall-clock and idle timeouts and
//!   turns the end of the process into a [`SessionOutcome`].
//! - [`probe`]: [`probe_cli`] asks `claude --help` once per run what the CLI supports
//!   (structured output with `--json-schema`).
//! - [`guard`]: agents stop when cco dies: the guard process (`cco __guard`) between the
//!   driver and claude, with a pipe only the driver holds ([`GuardSpec`], [`OrphanPolicy`]).
//! - `unix`: process-group signalling (SIGTERM, grace, SIGKILL) via `nix`.
//! - [`error`]: [`DriverError`], the only error type ([`ParseError`] is per line).
//!
//! Rules: the owner task kills the whole process group when its control channel closes (the
//! handle was dropped), so a dropped or panicked caller never leaves an orphan or a zombie.
//! After the main process exits, the rest of its group gets SIGKILL and the child is reaped.
//! The outcome is judged by `is_error` of the `result` event, never by `subtype`, and rate
//! limits only from structured fields, never by searching text for "429".
//! Nothing here installs signal handlers or a tracing subscriber; secrets in
//! [`SessionSpec::env`] are never logged or printed.

pub mod api;
pub mod error;
pub mod events;
pub mod guard;
pub mod outcome;
pub mod parse;
pub mod probe;
pub mod session;
pub mod spec;
mod unix;

pub use api::{
    ApiErrorClass, ApiRetry, ApiSignal, RateLimitState, RateLimitStatus, RateLimitWindowStatus,
};
pub use error::DriverError;
pub use events::{
    parse_line, ApiRetryEvent, AssistantEvent, ContentBlock, InitEvent, Message, ParseError,
    RateLimitEvent, RateLimitInfo, RateLimitWindow, ResultEvent, StreamEvent, SystemEvent, Usage,
    UserEvent,
};
pub use guard::{GuardSpec, OrphanPolicy};
pub use outcome::{judge, ExitInfo, KillReason, OutcomeBuilder, OutcomeKind, SessionOutcome};
pub use parse::{human_bytes, BoundedLines, Line, MalformedReason};
pub use probe::{probe_cli, CliFeatures, ProbeError, StructuredOutput};
pub use session::{ClaudeSession, SessionHandle, SessionUpdate};
pub use spec::{LineTap, Redactor, SessionSpec};
