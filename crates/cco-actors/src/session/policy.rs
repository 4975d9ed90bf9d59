//! What a turn does after one of its claude processes ended: a pure decision.
//!
//! [`next`] maps the process's outcome (and what the turn went through so far, [`Retries`])
//! to the next step ([`Next`]): the turn is done, it failed, or another process runs (after a
//! wait, resuming the session or starting over, benching the credential). The driver
//! (`drive.rs`) performs the step. New policies (rate-limit signals, transient API errors)
//! are new arms here, with their own counters in [`Retries`] and unit tests below.

use std::time::Duration;

use cco_claude::{KillReason, OutcomeKind, SessionOutcome};
use chrono::{DateTime, Utc};

use crate::keys::DEFAULT_BENCH;
use crate::restart::backoff;

/// The limits a turn runs under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TurnPolicy {
    /// Failed processes (crashes, idle kills, transient API errors, lost sessions) a turn
    /// survives (`maxTaskRestarts`).
    pub(crate) max_restarts: u32,
    /// First backoff after a failed process (`restartBackoffMs`), doubled per failure.
    pub(crate) restart_backoff: Duration,
    /// Longest backoff.
    pub(crate) max_backoff: Duration,
    /// The turn has a prompt for a wall-clock timeout (workers: "commit what works").
    pub(crate) has_timeout_prompt: bool,
}

/// What a turn went through so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Retries {
    /// Failed processes so far.
    pub(crate) failures: u32,
    /// The one resume after a wall-clock timeout was used.
    pub(crate) timeout_resumed: bool,
}

/// Why a session is resumed: decides the prompt it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// The process crashed, was killed for silence or hit a transient API error.
    Crashed,
    /// The credential hit its rate limit (the session continues on another).
    RateLimited,
    /// The wall-clock limit: the timeout prompt ("commit what works").
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
    Fail(String),
    /// Another process: after `wait`, starting as `restart` says; first bench the process's
    /// credential until `bench` when it is set.
    Again {
        wait: Duration,
        restart: Restart,
        bench: Option<DateTime<Utc>>,
    },
}

/// The step after a process of the turn ended with `outcome`. `has_session`: the turn knows
/// its session id (it can be resumed). `now` dates a rate limit without a reset time.
pub(crate) fn next(
    policy: &TurnPolicy,
    retries: &mut Retries,
    outcome: &SessionOutcome,
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
    match &outcome.kind {
        OutcomeKind::Success => Next::Done,
        // Not a failure of the turn: the same session goes on at once on another credential.
        OutcomeKind::RateLimited { resets_at } => Next::Again {
            wait: Duration::ZERO,
            restart: resume_or(Why::RateLimited, Restart::Same),
            bench: Some(
                resets_at
                    .filter(|t| *t > now)
                    .unwrap_or(now + DEFAULT_BENCH),
            ),
        },
        OutcomeKind::ResumeNotFound => {
            retries.failures += 1;
            if retries.failures > policy.max_restarts {
                return Next::Fail("session could not be resumed".into());
            }
            Next::Again {
                wait: Duration::ZERO,
                restart: Restart::Fresh,
                bench: None,
            }
        }
        OutcomeKind::Killed {
            reason: KillReason::WallTimeout,
        } => {
            if policy.has_timeout_prompt && !retries.timeout_resumed && has_session {
                retries.timeout_resumed = true;
                Next::Again {
                    wait: Duration::ZERO,
                    restart: Restart::Resume(Why::OutOfTime),
                    bench: None,
                }
            } else {
                Next::Fail("timed out".into())
            }
        }
        kind if kind.is_retryable() => {
            retries.failures += 1;
            if retries.failures > policy.max_restarts {
                return Next::Fail(format!(
                    "gave up after {} failed runs; last: {}",
                    retries.failures,
                    super::describe(outcome)
                ));
            }
            Next::Again {
                wait: backoff(
                    policy.restart_backoff,
                    policy.max_backoff,
                    retries.failures - 1,
                ),
                restart: resume_or(Why::Crashed, Restart::Fresh),
                bench: None,
            }
        }
        _ => Next::Fail(super::describe(outcome)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> TurnPolicy {
        TurnPolicy {
            max_restarts: 2,
            restart_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(250),
            has_timeout_prompt: true,
        }
    }

    fn ended(kind: OutcomeKind) -> SessionOutcome {
        let mut outcome = SessionOutcome::without_result("test");
        outcome.kind = kind;
        outcome
    }

    fn crashed() -> SessionOutcome {
        ended(OutcomeKind::Crashed {
            message: "exit code 1".into(),
        })
    }

    #[test]
    fn success_ends_the_turn_and_a_plain_error_fails_it() {
        let mut retries = Retries::default();
        let now = Utc::now();
        assert_eq!(
            next(
                &policy(),
                &mut retries,
                &ended(OutcomeKind::Success),
                true,
                now
            ),
            Next::Done
        );
        let error = ended(OutcomeKind::Error {
            message: "error_during_execution".into(),
        });
        assert_eq!(
            next(&policy(), &mut retries, &error, true, now),
            Next::Fail("error: error_during_execution".into())
        );
        assert_eq!(
            next(
                &policy(),
                &mut retries,
                &ended(OutcomeKind::MaxTurns),
                true,
                now
            ),
            Next::Fail("max turns reached".into())
        );
        assert_eq!(retries, Retries::default());
    }

    #[test]
    fn crashes_resume_the_session_with_a_doubling_backoff_then_give_up() {
        let mut retries = Retries::default();
        let now = Utc::now();
        let again = |wait| Next::Again {
            wait: Duration::from_millis(wait),
            restart: Restart::Resume(Why::Crashed),
            bench: None,
        };
        assert_eq!(
            next(&policy(), &mut retries, &crashed(), true, now),
            again(100)
        );
        let idle = ended(OutcomeKind::Killed {
            reason: KillReason::IdleTimeout,
        });
        assert_eq!(next(&policy(), &mut retries, &idle, true, now), again(200));
        assert_eq!(
            next(&policy(), &mut retries, &crashed(), true, now),
            Next::Fail("gave up after 3 failed runs; last: crashed: exit code 1".into())
        );
    }

    #[test]
    fn a_crash_before_any_session_starts_over_and_api_errors_count_as_crashes() {
        let mut retries = Retries::default();
        let api = ended(OutcomeKind::ApiError {
            status: Some(529),
            message: "overloaded".into(),
        });
        assert_eq!(
            next(&policy(), &mut retries, &api, false, Utc::now()),
            Next::Again {
                wait: Duration::from_millis(100),
                restart: Restart::Fresh,
                bench: None
            }
        );
        assert_eq!(retries.failures, 1);
    }

    #[test]
    fn a_rate_limit_benches_the_credential_until_its_reset_and_costs_no_restart() {
        let mut retries = Retries::default();
        let now = Utc::now();
        let reset = now + chrono::Duration::seconds(600);
        let limited = ended(OutcomeKind::RateLimited {
            resets_at: Some(reset),
        });
        for _ in 0..5 {
            assert_eq!(
                next(&policy(), &mut retries, &limited, true, now),
                Next::Again {
                    wait: Duration::ZERO,
                    restart: Restart::Resume(Why::RateLimited),
                    bench: Some(reset)
                }
            );
        }
        assert_eq!(retries.failures, 0);
        // No reset time (or one in the past): the default bench.
        let past = ended(OutcomeKind::RateLimited {
            resets_at: Some(now - chrono::Duration::seconds(1)),
        });
        let Next::Again { bench, restart, .. } = next(&policy(), &mut retries, &past, false, now)
        else {
            panic!("a rate limit is retried");
        };
        assert_eq!(bench, Some(now + DEFAULT_BENCH));
        assert_eq!(restart, Restart::Same);
    }

    #[test]
    fn a_lost_session_starts_the_turn_over_within_the_restart_limit() {
        let mut retries = Retries::default();
        let lost = ended(OutcomeKind::ResumeNotFound);
        let now = Utc::now();
        for _ in 0..2 {
            assert_eq!(
                next(&policy(), &mut retries, &lost, true, now),
                Next::Again {
                    wait: Duration::ZERO,
                    restart: Restart::Fresh,
                    bench: None
                }
            );
        }
        assert_eq!(
            next(&policy(), &mut retries, &lost, true, now),
            Next::Fail("session could not be resumed".into())
        );
    }

    #[test]
    fn a_wall_timeout_resumes_once_with_the_timeout_prompt_then_fails() {
        let timeout = ended(OutcomeKind::Killed {
            reason: KillReason::WallTimeout,
        });
        let now = Utc::now();
        let mut retries = Retries::default();
        assert_eq!(
            next(&policy(), &mut retries, &timeout, true, now),
            Next::Again {
                wait: Duration::ZERO,
                restart: Restart::Resume(Why::OutOfTime),
                bench: None
            }
        );
        assert_eq!(
            next(&policy(), &mut retries, &timeout, true, now),
            Next::Fail("timed out".into())
        );
        // Planners have no timeout prompt; nothing to resume without a session.
        let planner = TurnPolicy {
            has_timeout_prompt: false,
            ..policy()
        };
        assert_eq!(
            next(&planner, &mut Retries::default(), &timeout, true, now),
            Next::Fail("timed out".into())
        );
        assert_eq!(
            next(&policy(), &mut Retries::default(), &timeout, false, now),
            Next::Fail("timed out".into())
        );
    }
}
