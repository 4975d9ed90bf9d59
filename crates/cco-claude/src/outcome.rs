//! How a run ended: [`SessionOutcome`], judged by [`OutcomeBuilder`] from the events seen,
//! the stderr tail and the exit status. Pure code: fixtures are judged without a process.
//!
//! Rules:
//! - A `result` event decides (the last one, for multi-turn runs), by `is_error`, never by
//!   `subtype`; a non-zero exit after a result does not change the judgement, nor does a kill
//!   we started only after the result (a process that lingered after its result). A result
//!   that arrives after we started killing is a consequence of the kill: the run is Killed.
//! - Rate limits are recognised only from structured fields (`api_error_status` 429,
//!   `api_error_type` "rate_limit_error", a `rate_limit_event` with status `rejected`), never
//!   by searching text for "429".
//! - Without a result: our kill → [`OutcomeKind::Killed`]; "No conversation found" on stderr
//!   with a non-zero exit → [`OutcomeKind::ResumeNotFound`]; a rejected rate limit →
//!   [`OutcomeKind::RateLimited`]; otherwise [`OutcomeKind::Crashed`] (also for exit 0).

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use crate::api::{ApiErrorClass, ApiRetry, ApiSignal, RateLimitStatus};
use crate::events::{ContentBlock, ResultEvent, StreamEvent, SystemEvent};

/// Bytes of stderr kept in [`SessionOutcome::stderr_tail`].
pub const STDERR_TAIL_BYTES: usize = 8 * 1024;

/// Everything known about a finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionOutcome {
    pub kind: OutcomeKind,
    pub session_id: Option<String>,
    pub result_text: Option<String>,
    /// `structured_output` of the last `result` (runs with `--json-schema`); `null` is `None`.
    pub structured_output: Option<serde_json::Value>,
    /// From the last `result` event (cumulative over the turns of one process); 0 without one.
    pub total_cost_usd: f64,
    pub num_turns: Option<u64>,
    /// Wall-clock time from spawn to the end of the owner task.
    pub duration: Duration,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// The last [`STDERR_TAIL_BYTES`] of stderr.
    pub stderr_tail: String,
    pub malformed_lines: u64,
    /// Parsed events (all types).
    pub events: u64,
    /// Name of the last `tool_use` seen.
    pub last_tool: Option<String>,
    /// `system/api_retry` events seen.
    pub api_retries: u32,
    /// The last of them.
    pub last_api_retry: Option<ApiRetry>,
    /// The last `rate_limit_event` (subscription logins only).
    pub last_rate_limit: Option<RateLimitStatus>,
}

impl SessionOutcome {
    /// The outcome of a run whose driver ended without judging it (its task was dropped or
    /// panicked): a crash with `message`, nothing else known.
    pub fn without_result(message: impl Into<String>) -> SessionOutcome {
        SessionOutcome {
            kind: OutcomeKind::Crashed {
                message: message.into(),
            },
            session_id: None,
            result_text: None,
            structured_output: None,
            total_cost_usd: 0.0,
            num_turns: None,
            duration: Duration::ZERO,
            exit_code: None,
            signal: None,
            stderr_tail: String::new(),
            malformed_lines: 0,
            events: 0,
            last_tool: None,
            api_retries: 0,
            last_api_retry: None,
            last_rate_limit: None,
        }
    }
}

/// The verdict on a run.
#[derive(Debug, Clone, PartialEq)]
pub enum OutcomeKind {
    Success,
    MaxTurns,
    RateLimited {
        resets_at: Option<DateTime<Utc>>,
    },
    /// An `is_error` result caused by the API (529, 500, …): transient.
    ApiError {
        status: Option<u16>,
        message: String,
    },
    /// Any other `is_error` result (e.g. `error_during_execution`).
    Error {
        message: String,
    },
    /// `--resume` of an id the config dir does not know.
    ResumeNotFound,
    /// We killed it (timeout or request) before it produced a result.
    Killed {
        reason: KillReason,
    },
    /// Exited without a result; the message names the exit code/signal and the stderr tail.
    Crashed {
        message: String,
    },
}

/// Why the driver killed the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KillReason {
    WallTimeout,
    IdleTimeout,
    /// [`crate::SessionHandle::terminate`], [`crate::SessionHandle::kill`] or a dropped handle.
    Requested,
}

impl OutcomeKind {
    pub fn is_success(&self) -> bool {
        matches!(self, OutcomeKind::Success)
    }

    /// Worth running again as is: crashes, timeouts and transient API errors.
    /// (A rate limit is not: wait for `resets_at` first.)
    pub fn is_retryable(&self) -> bool {
        match self {
            OutcomeKind::Crashed { .. } | OutcomeKind::ApiError { .. } => true,
            OutcomeKind::Killed { reason } => {
                matches!(reason, KillReason::WallTimeout | KillReason::IdleTimeout)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for OutcomeKind {
    /// One line for people: `success`, `API error 529 (overloaded): <message>`,
    /// `killed by cco (wall-clock timeout)`, ...
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutcomeKind::Success => f.write_str("success"),
            OutcomeKind::MaxTurns => f.write_str("max turns reached"),
            OutcomeKind::RateLimited { resets_at } => {
                write!(f, "{}", ApiErrorClass::RateLimited)?;
                if let Some(at) = resets_at {
                    write!(f, " until {}", at.format("%Y-%m-%d %H:%M:%S UTC"))?;
                }
                Ok(())
            }
            OutcomeKind::ApiError { status, message } => {
                write!(f, "{}", ApiErrorClass::from_status(*status))?;
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            OutcomeKind::Error { message } => write!(f, "error: {message}"),
            OutcomeKind::ResumeNotFound => f.write_str("session not found for --resume"),
            OutcomeKind::Killed { reason } => write!(f, "killed by cco ({reason})"),
            OutcomeKind::Crashed { message } => write!(f, "crashed: {message}"),
        }
    }
}

impl std::fmt::Display for KillReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KillReason::WallTimeout => "wall-clock timeout",
            KillReason::IdleTimeout => "idle timeout: no output",
            KillReason::Requested => "stop requested",
        })
    }
}

/// How the process ended (from `ExitStatus`, or made up in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ExitInfo {
    pub fn code(code: i32) -> Self {
        ExitInfo {
            code: Some(code),
            signal: None,
        }
    }
    pub fn signal(signal: i32) -> Self {
        ExitInfo {
            code: None,
            signal: Some(signal),
        }
    }
    pub fn from_status(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        ExitInfo {
            code: status.code(),
            signal: status.signal(),
        }
    }
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => match signal_name(s) {
                Some(name) => write!(f, "killed by signal {s} ({name})"),
                None => write!(f, "killed by signal {s}"),
            },
            (None, None) => f.write_str("unknown exit status"),
        }
    }
}

/// The name of a signal number (`SIGKILL`), when the platform knows it.
pub(crate) fn signal_name(signal: i32) -> Option<&'static str> {
    nix::sys::signal::Signal::try_from(signal)
        .ok()
        .map(|s| s.as_str())
}

/// Accumulates what a run produced; [`OutcomeBuilder::judge`] / [`OutcomeBuilder::finish`]
/// give the verdict.
#[derive(Debug, Clone, Default)]
pub struct OutcomeBuilder {
    session_id: Option<String>,
    last_result: Option<ResultEvent>,
    /// `Some(resets_at)` once a `rate_limit_event` with status `rejected` was seen.
    rate_limit_rejected: Option<Option<i64>>,
    last_tool: Option<String>,
    events: u64,
    malformed: u64,
    stderr: String,
    /// First reason we started killing the process.
    killed: Option<KillReason>,
    /// A result event arrived before any kill started.
    result_before_kill: bool,
    api_retries: u32,
    last_api_retry: Option<ApiRetry>,
    last_rate_limit: Option<RateLimitStatus>,
}

impl OutcomeBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one parsed event.
    pub fn observe(&mut self, event: &StreamEvent) {
        self.events += 1;
        match event.api_signal() {
            Some(ApiSignal::Retry(r)) => {
                self.api_retries += 1;
                self.last_api_retry = Some(r);
            }
            Some(ApiSignal::RateLimit(r)) => self.last_rate_limit = Some(r),
            None => {}
        }
        match event {
            StreamEvent::System(SystemEvent::Init(init)) => {
                if let Some(id) = &init.session_id {
                    self.session_id = Some(id.clone());
                }
            }
            StreamEvent::Assistant(a) => {
                for block in &a.message.content {
                    if let ContentBlock::ToolUse { name, .. } = block {
                        self.last_tool = Some(name.clone());
                    }
                }
            }
            StreamEvent::RateLimit(r) if r.is_rejected() => {
                self.rate_limit_rejected = Some(r.rate_limit_info.resets_at);
            }
            StreamEvent::Result(r) => {
                self.last_result = Some(r.clone());
                if self.killed.is_none() {
                    self.result_before_kill = true;
                }
            }
            _ => {}
        }
        if self.session_id.is_none() {
            if let Some(id) = event.session_id() {
                self.session_id = Some(id.to_owned());
            }
        }
    }

    /// Records that the driver started killing the process (the first reason sticks).
    pub fn mark_killed(&mut self, reason: KillReason) {
        self.killed.get_or_insert(reason);
    }

    pub fn killed(&self) -> Option<KillReason> {
        self.killed
    }

    /// Counts one malformed stdout line.
    pub fn observe_malformed(&mut self) {
        self.malformed += 1;
    }

    /// Feeds one stderr line (only the tail is kept).
    pub fn observe_stderr(&mut self, line: &str) {
        self.stderr.push_str(line);
        self.stderr.push('\n');
        if self.stderr.len() > 2 * STDERR_TAIL_BYTES {
            self.stderr = tail(&self.stderr, STDERR_TAIL_BYTES).to_owned();
        }
    }

    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    pub fn last_result(&self) -> Option<&ResultEvent> {
        self.last_result.as_ref()
    }

    pub fn stderr_tail(&self) -> &str {
        tail(&self.stderr, STDERR_TAIL_BYTES)
    }

    /// The verdict, given how the process ended.
    pub fn judge(&self, exit: ExitInfo) -> OutcomeKind {
        if let Some(result) = self
            .last_result
            .as_ref()
            .filter(|_| self.result_before_kill)
        {
            return judge_result(result, self.rate_limit_rejected);
        }
        if let Some(reason) = self.killed {
            return OutcomeKind::Killed { reason };
        }
        if let Some(result) = &self.last_result {
            return judge_result(result, self.rate_limit_rejected);
        }
        let stderr = self.stderr_tail();
        if stderr.contains("No conversation found") && exit.code != Some(0) {
            return OutcomeKind::ResumeNotFound;
        }
        if let Some(resets_at) = self.rate_limit_rejected {
            return OutcomeKind::RateLimited {
                resets_at: resets_at.and_then(unix_secs),
            };
        }
        let stderr_excerpt = tail(stderr.trim_end(), 2000);
        let message = if stderr_excerpt.is_empty() {
            format!("claude exited without a result: {exit}")
        } else {
            format!("claude exited without a result: {exit}; stderr: {stderr_excerpt}")
        };
        OutcomeKind::Crashed { message }
    }

    /// Builds the full outcome.
    pub fn finish(self, exit: ExitInfo, duration: Duration) -> SessionOutcome {
        let kind = self.judge(exit);
        let stderr_tail = self.stderr_tail().to_owned();
        let result = self.last_result;
        SessionOutcome {
            kind,
            session_id: self
                .session_id
                .or_else(|| result.as_ref().and_then(|r| r.session_id.clone())),
            result_text: result.as_ref().and_then(|r| r.result.clone()),
            structured_output: result
                .as_ref()
                .and_then(|r| r.structured_output.clone())
                .filter(|v| !v.is_null()),
            total_cost_usd: result
                .as_ref()
                .and_then(|r| r.total_cost_usd)
                .unwrap_or(0.0),
            num_turns: result.as_ref().and_then(|r| r.num_turns),
            duration,
            exit_code: exit.code,
            signal: exit.signal,
            stderr_tail,
            malformed_lines: self.malformed,
            events: self.events,
            last_tool: self.last_tool,
            api_retries: self.api_retries,
            last_api_retry: self.last_api_retry,
            last_rate_limit: self.last_rate_limit,
        }
    }
}

/// Judges a whole run at once: `events` in order, the stderr text, the exit, and whether we
/// started killing the process after the last of these events.
pub fn judge<'a>(
    events: impl IntoIterator<Item = &'a StreamEvent>,
    stderr: &str,
    exit: ExitInfo,
    killed: Option<KillReason>,
) -> OutcomeKind {
    let mut b = OutcomeBuilder::new();
    events.into_iter().for_each(|e| b.observe(e));
    stderr.lines().for_each(|l| b.observe_stderr(l));
    if let Some(reason) = killed {
        b.mark_killed(reason);
    }
    b.judge(exit)
}

fn judge_result(r: &ResultEvent, rate_limit_rejected: Option<Option<i64>>) -> OutcomeKind {
    if !r.is_error {
        return OutcomeKind::Success;
    }
    let rate_limited = r.api_error_status == Some(429)
        || r.api_error_type.as_deref() == Some("rate_limit_error")
        || rate_limit_rejected.is_some();
    if rate_limited {
        return OutcomeKind::RateLimited {
            resets_at: rate_limit_rejected.flatten().and_then(unix_secs),
        };
    }
    if r.subtype.as_deref() == Some("error_max_turns")
        || r.terminal_reason.as_deref() == Some("max_turns")
    {
        return OutcomeKind::MaxTurns;
    }
    let message = result_message(r);
    if r.api_error_status.is_some() || r.terminal_reason.as_deref() == Some("api_error") {
        return OutcomeKind::ApiError {
            status: r.api_error_status,
            message,
        };
    }
    OutcomeKind::Error { message }
}

fn result_message(r: &ResultEvent) -> String {
    if let Some(text) = r.result.as_deref().filter(|t| !t.is_empty()) {
        return text.to_owned();
    }
    if !r.errors.is_empty() {
        return r.errors.join("; ");
    }
    match (&r.subtype, &r.terminal_reason) {
        (Some(s), Some(t)) => format!("{s} ({t})"),
        (Some(s), None) => s.clone(),
        (None, Some(t)) => t.clone(),
        (None, None) => "error result without a message".to_owned(),
    }
}

fn unix_secs(secs: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(secs, 0).single()
}

/// The last `max` bytes of `s`, cut at a char boundary.
fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}
