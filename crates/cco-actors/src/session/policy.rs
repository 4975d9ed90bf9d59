//! What a turn does after one of its claude processes ended: a pure decision.
//!
//! [`next`] maps the process's outcome (and why cco stopped it, if it did: [`Stopped`]; and
//! what the turn went through so far, [`Retries`]) to the next step ([`Next`]): the turn is
//! done, it failed (with a typed [`FailCause`]), or another process runs (after a wait,
//! resuming the session or starting over, benching the credential). The driver (`drive.rs`)
//! performs the step. Each kind of trouble has its own policy and counter:
//!
//! | trouble | next process | counted against |
//! |---|---|---|
//! | rate limit (a 429 `api_retry`, a `rejected` rate limit, a 429 result) | at once, same session, the credential benched until the latest of its reset, the retry delay and the minimum bench | nothing |
//! | API unavailable (529, 5xx, connection errors) | same session after a capped exponential backoff (`apiRetryBackoffMs` … `maxApiRetryBackoffMs`) | `maxApiRetries` (then [`FailCause::ApiUnavailable`]) |
//! | crash, idle kill, other API errors | same session after `restartBackoffMs × 2^(n-1)` (≤ 60 s) | `maxTaskRestarts` |
//! | wall-clock timeout, tool-use cap | once, same session, the timeout prompt | one resume |
//! | session not found for `--resume` | a fresh session at once | `maxTaskRestarts` |

use std::time::Duration;

use cco_claude::{ApiErrorClass, KillReason, OutcomeKind, SessionOutcome};
use cco_protocol::ResumeCause;
use chrono::{DateTime, Utc};

use super::FailCause;
use crate::restart::backoff;

/// The limits a turn runs under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TurnPolicy {
    /// Failed processes (crashes, idle kills, other errors, lost sessions) a turn survives
    /// (`maxTaskRestarts`).
    pub(crate) max_restarts: u32,
    /// First backoff after a failed process (`restartBackoffMs`), doubled per failure.
    pub(crate) restart_backoff: Duration,
    /// Longest backoff after a failed process.
    pub(crate) max_backoff: Duration,
    /// A wall-clock timeout (or the tool-use cap) resumes the session once with the timeout
    /// prompt ("commit what works", "answer now") before the turn fails.
    pub(crate) timeout_resume: bool,
    /// Processes ended by an unavailable API a turn survives (`maxApiRetries`).
    pub(crate) max_api_retries: u32,
    /// First wait after such a process (`apiRetryBackoffMs`), doubled per failure ...
    pub(crate) api_backoff: Duration,
    /// ... up to this (`maxApiRetryBackoffMs`).
    pub(crate) max_api_backoff: Duration,
    /// A rate-limited credential is benched at least this long (`minKeyBenchMs`).
    pub(crate) min_bench: Duration,
}

/// What a turn went through so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Retries {
    /// Failed processes so far (crashes, idle kills, lost sessions).
    pub(crate) failures: u32,
    /// Processes ended by an unavailable API so far.
    pub(crate) api_failures: u32,
    /// The one resume after a wall-clock timeout (or the tool-use cap) was used.
    pub(crate) timeout_resumed: bool,
}

/// Why cco ended a process itself (its outcome then says only "killed by cco").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// The first sign of a rate limit (a 429 `api_retry`, a `rejected` rate limit): the
    /// credential must rest; `not_before`: when the signal says it may be used again.
    RateLimited { not_before: Option<DateTime<Utc>> },
    /// The process reached `maxToolUsesPerInstance`.
    ToolCap,
}

/// Why a session is resumed: decides the prompt it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// It was interrupted (crashed, stalled, rate limited, API unavailable).
    Interrupted(ResumeCause),
    /// Its time (or its tool uses) ran out: the timeout prompt.
    OutOfTime,
}

/// How the next process of the turn starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Restart {
    /// `--resume` the turn's session, with the prompt for `Why`.
    Resume(Why),
    /// A new session with the turn's first prompt (the session is forgotten).
    Fresh,
    /// As the last process started (no session to resume yet).
    Same,
}

/// The next step of a turn.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Next {
    /// The turn succeeded.
    Done,
    /// The turn failed, for this reason.
    Fail { reason: String, cause: FailCause },
    /// Another process: after `wait`, starting as `restart` says; first bench the process's
    /// credential until `bench` when it is set. `api_unavailable`: the process ended on an
    /// unavailable API (the run's circuit breaker hears of it).
    Again {
        wait: Duration,
        restart: Restart,
        bench: Option<DateTime<Utc>>,
        api_unavailable: bool,
    },
}

impl Next {
    fn again(wait: Duration, restart: Restart) -> Next {
        Next::Again {
            wait,
            restart,
            bench: None,
            api_unavailable: false,
        }
    }

    fn fail(reason: impl Into<String>) -> Next {
        Next::Fail {
            reason: reason.into(),
            cause: FailCause::Agent,
        }
    }
}

/// The latest of the times a rate limit may end, and `now` + the minimum bench.
pub(crate) fn bench_until(
    now: DateTime<Utc>,
    min_bench: Duration,
    candidates: impl IntoIterator<Item = Option<DateTime<Utc>>>,
) -> DateTime<Utc> {
    let minimum = chrono::Duration::from_std(min_bench)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(now);
    candidates
        .into_iter()
        .flatten()
        .fold(minimum, DateTime::max)
}

/// The step after a process of the turn ended with `outcome` (`stopped`: cco ended it, and
/// why). `has_session`: the turn knows its session id (it can be resumed).
pub(crate) fn next(
    policy: &TurnPolicy,
    retries: &mut Retries,
    outcome: &SessionOutcome,
    stopped: Option<Stopped>,
    has_session: bool,
    now: DateTime<Utc>,
) -> Next {
    let resume_or = |why, otherwise| {
        if has_session {
            Restart::Resume(why)
        } else {
            otherwise
        }
    };
    // Not a failure of the turn: the same session goes on at once on another credential.
    let rate_limited = |candidates: Vec<Option<DateTime<Utc>>>| Next::Again {
        wait: Duration::ZERO,
        restart: resume_or(Why::Interrupted(ResumeCause::RateLimited), Restart::Same),
        bench: Some(bench_until(now, policy.min_bench, candidates)),
        api_unavailable: false,
    };
    let out_of_time = |retries: &mut Retries, what: &str| {
        if policy.timeout_resume && !retries.timeout_resumed && has_session {
            retries.timeout_resumed = true;
            Next::again(Duration::ZERO, Restart::Resume(Why::OutOfTime))
        } else {
            Next::fail(what)
        }
    };
    match stopped {
        Some(Stopped::RateLimited { not_before }) => return rate_limited(vec![not_before]),
        Some(Stopped::ToolCap) => return out_of_time(retries, "tool-use cap reached"),
        None => {}
    }
    match &outcome.kind {
        OutcomeKind::Success => Next::Done,
        OutcomeKind::RateLimited { resets_at } => {
            let retry_at = outcome
                .last_api_retry
                .as_ref()
                .filter(|r| r.class == ApiErrorClass::RateLimited)
                .and_then(|r| r.retry_at(now));
            let event_reset = outcome.last_rate_limit.as_ref().and_then(|r| r.resets_at);
            rate_limited(vec![*resets_at, event_reset, retry_at])
        }
        OutcomeKind::ResumeNotFound => {
            retries.failures += 1;
            if retries.failures > policy.max_restarts {
                return Next::fail("session could not be resumed");
            }
            Next::again(Duration::ZERO, Restart::Fresh)
        }
        OutcomeKind::Killed {
            reason: KillReason::WallTimeout,
        } => out_of_time(retries, "timed out"),
        kind if kind.is_api_unavailable() => {
            retries.api_failures += 1;
            if retries.api_failures > policy.max_api_retries {
                return Next::Fail {
                    reason: format!(
                        "the API was unavailable for {} runs in a row; last: {kind}",
                        retries.api_failures
                    ),
                    cause: FailCause::ApiUnavailable,
                };
            }
            Next::Again {
                wait: backoff(
                    policy.api_backoff,
                    policy.max_api_backoff,
                    retries.api_failures - 1,
                ),
                restart: resume_or(
                    Why::Interrupted(ResumeCause::ApiUnavailable),
                    Restart::Fresh,
                ),
                bench: None,
                api_unavailable: true,
            }
        }
        kind if kind.is_retryable() => {
            retries.failures += 1;
            if retries.failures > policy.max_restarts {
                return Next::fail(format!(
                    "gave up after {} failed runs; last: {kind}",
                    retries.failures
                ));
            }
            let cause = match kind {
                OutcomeKind::Killed {
                    reason: KillReason::IdleTimeout,
                } => ResumeCause::Stalled,
                _ => ResumeCause::Crashed,
            };
            let wait = backoff(
                policy.restart_backoff,
                policy.max_backoff,
                retries.failures - 1,
            );
            Next::again(wait, resume_or(Why::Interrupted(cause), Restart::Fresh))
        }
        kind => Next::fail(kind.to_string()),
    }
}

#[cfg(test)]
mod tests;
