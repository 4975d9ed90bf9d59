//! Unit tests of the turn policy: one test per kind of trouble.

use super::*;
use cco_claude::{ApiRetry, RateLimitState, RateLimitStatus};

fn policy() -> TurnPolicy {
    TurnPolicy {
        max_restarts: 2,
        restart_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(250),
        timeout_resume: true,
        max_api_retries: 4,
        api_backoff: Duration::from_millis(1000),
        max_api_backoff: Duration::from_millis(3000),
        min_bench: Duration::from_secs(60),
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

fn resume(cause: ResumeCause) -> Restart {
    Restart::Resume(Why::Interrupted(cause))
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

#[test]
fn success_ends_the_turn_and_a_plain_error_fails_it_in_words() {
    let mut retries = Retries::default();
    let now = Utc::now();
    let p = policy();
    let success = ended(OutcomeKind::Success);
    assert_eq!(
        next(&p, &mut retries, &success, None, true, now),
        Next::Done
    );
    let error = ended(OutcomeKind::Error {
        message: "error_during_execution".into(),
    });
    assert_eq!(
        next(&p, &mut retries, &error, None, true, now),
        Next::fail("error: error_during_execution")
    );
    let max_turns = ended(OutcomeKind::MaxTurns);
    assert_eq!(
        next(&p, &mut retries, &max_turns, None, true, now),
        Next::fail("max turns reached")
    );
    assert_eq!(retries, Retries::default());
}

#[test]
fn crashes_resume_the_session_with_a_doubling_backoff_then_give_up() {
    let mut retries = Retries::default();
    let now = Utc::now();
    let p = policy();
    assert_eq!(
        next(&p, &mut retries, &crashed(), None, true, now),
        Next::again(Duration::from_millis(100), resume(ResumeCause::Crashed))
    );
    // Killed for silence: resumed as stalled, not as crashed.
    let idle = ended(OutcomeKind::Killed {
        reason: KillReason::IdleTimeout,
    });
    assert_eq!(
        next(&p, &mut retries, &idle, None, true, now),
        Next::again(Duration::from_millis(200), resume(ResumeCause::Stalled))
    );
    let Next::Fail { reason, cause } = next(&p, &mut retries, &crashed(), None, true, now) else {
        panic!("a third crash fails the turn");
    };
    assert_eq!(cause, FailCause::Agent);
    assert_eq!(
        reason,
        "gave up after 3 failed runs; last: crashed: exit code 1"
    );
}

#[test]
fn an_unavailable_api_has_its_own_budget_and_backoff_and_never_benches() {
    let mut retries = Retries::default();
    let now = Utc::now();
    let p = policy();
    let overloaded = ended(OutcomeKind::ApiError {
        status: Some(529),
        message: "Overloaded".into(),
    });
    let waits: Vec<u64> = (0..4)
        .map(
            |_| match next(&p, &mut retries, &overloaded, None, true, now) {
                Next::Again {
                    wait,
                    restart,
                    bench,
                    api_unavailable,
                } => {
                    assert_eq!(restart, resume(ResumeCause::ApiUnavailable));
                    assert_eq!(bench, None, "a 529 never benches the key");
                    assert!(api_unavailable);
                    wait.as_millis() as u64
                }
                other => panic!("{other:?}"),
            },
        )
        .collect();
    assert_eq!(waits, [1000, 2000, 3000, 3000], "doubling, capped");
    assert_eq!(retries.failures, 0, "maxTaskRestarts is untouched");
    // A crash still has its whole budget.
    assert!(matches!(
        next(&p, &mut retries, &crashed(), None, true, now),
        Next::Again { .. }
    ));
    let Next::Fail { reason, cause } = next(&p, &mut retries, &overloaded, None, true, now) else {
        panic!("the budget is used up");
    };
    assert_eq!(cause, FailCause::ApiUnavailable);
    assert!(
        reason.contains("API error 529 (overloaded)") && !reason.contains("Some("),
        "{reason}"
    );
    // 5xx and connection errors are the same; before any session: a fresh start.
    for status in [Some(500), Some(503), None] {
        let mut retries = Retries::default();
        let outage = ended(OutcomeKind::ApiError {
            status,
            message: String::new(),
        });
        assert_eq!(
            next(&p, &mut retries, &outage, None, false, now),
            Next::Again {
                wait: Duration::from_millis(1000),
                restart: Restart::Fresh,
                bench: None,
                api_unavailable: true
            }
        );
    }
}

#[test]
fn a_rate_limit_signal_benches_until_the_latest_of_reset_delay_and_minimum() {
    let mut retries = Retries::default();
    let now = Utc::now();
    let p = policy();
    let killed = ended(OutcomeKind::Killed {
        reason: KillReason::Requested,
    });
    // The signal says 600 s: longer than the minimum.
    let stopped = Stopped::RateLimited {
        not_before: Some(now + secs(600)),
    };
    for _ in 0..5 {
        assert_eq!(
            next(&p, &mut retries, &killed, Some(stopped), true, now),
            Next::Again {
                wait: Duration::ZERO,
                restart: resume(ResumeCause::RateLimited),
                bench: Some(now + secs(600)),
                api_unavailable: false
            }
        );
    }
    assert_eq!(retries, Retries::default(), "a rate limit costs no restart");
    // A 30 s retry delay: the minimum bench (60 s) wins; without a session, the same start.
    let short = Stopped::RateLimited {
        not_before: Some(now + secs(30)),
    };
    let Next::Again { bench, restart, .. } =
        next(&p, &mut retries, &killed, Some(short), false, now)
    else {
        panic!("a rate limit is retried");
    };
    assert_eq!(bench, Some(now + secs(60)));
    assert_eq!(restart, Restart::Same);
}

#[test]
fn a_rate_limited_result_uses_every_reset_time_it_carries() {
    let now = Utc::now();
    let p = policy();
    let mut limited = ended(OutcomeKind::RateLimited {
        resets_at: Some(now + secs(10)),
    });
    limited.last_api_retry = Some(ApiRetry {
        class: ApiErrorClass::RateLimited,
        attempt: Some(1),
        max_retries: Some(3),
        retry_delay: Some(Duration::from_secs(90)),
        error: None,
    });
    let Next::Again { bench, .. } = next(&p, &mut Retries::default(), &limited, None, true, now)
    else {
        panic!("a rate limit is retried");
    };
    assert_eq!(bench, Some(now + secs(90)), "the retry delay is the latest");
    limited.last_rate_limit = Some(RateLimitStatus {
        state: RateLimitState::Rejected,
        resets_at: Some(now + secs(3600)),
        utilization: None,
        limit_type: None,
        surpassed_threshold: None,
        using_overage: None,
        windows: Vec::new(),
    });
    let Next::Again { bench, .. } = next(&p, &mut Retries::default(), &limited, None, true, now)
    else {
        panic!("a rate limit is retried");
    };
    assert_eq!(bench, Some(now + secs(3600)));
}

#[test]
fn a_lost_session_starts_the_turn_over_within_the_restart_limit() {
    let mut retries = Retries::default();
    let lost = ended(OutcomeKind::ResumeNotFound);
    let now = Utc::now();
    for _ in 0..2 {
        assert_eq!(
            next(&policy(), &mut retries, &lost, None, true, now),
            Next::again(Duration::ZERO, Restart::Fresh)
        );
    }
    assert_eq!(
        next(&policy(), &mut retries, &lost, None, true, now),
        Next::fail("session could not be resumed")
    );
}

#[test]
fn a_wall_timeout_or_the_tool_cap_resumes_once_with_the_timeout_prompt_then_fails() {
    let timeout = ended(OutcomeKind::Killed {
        reason: KillReason::WallTimeout,
    });
    let now = Utc::now();
    let mut retries = Retries::default();
    let out_of_time = Next::again(Duration::ZERO, Restart::Resume(Why::OutOfTime));
    assert_eq!(
        next(&policy(), &mut retries, &timeout, None, true, now),
        out_of_time
    );
    assert_eq!(
        next(&policy(), &mut retries, &timeout, None, true, now),
        Next::fail("timed out")
    );
    // The tool-use cap is a timeout too (and shares its one resume).
    let killed = ended(OutcomeKind::Killed {
        reason: KillReason::Requested,
    });
    let cap = Some(Stopped::ToolCap);
    let mut retries = Retries::default();
    assert_eq!(
        next(&policy(), &mut retries, &killed, cap, true, now),
        out_of_time
    );
    assert_eq!(
        next(&policy(), &mut retries, &killed, cap, true, now),
        Next::fail("tool-use cap reached")
    );
    // Without the resume, or without a session to resume: it fails at once.
    let strict = TurnPolicy {
        timeout_resume: false,
        ..policy()
    };
    assert_eq!(
        next(&strict, &mut Retries::default(), &timeout, None, true, now),
        Next::fail("timed out")
    );
    assert_eq!(
        next(
            &policy(),
            &mut Retries::default(),
            &timeout,
            None,
            false,
            now
        ),
        Next::fail("timed out")
    );
}
