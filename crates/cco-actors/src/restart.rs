//! Restart policies for supervised actors, and the backoff of crashed claude processes.
//!
//! ractor has no restart strategies of its own: a supervisor receives `ActorFailed` /
//! `ActorTerminated` and decides. [`RestartPolicy`] is that decision, kept per stable slot by
//! [`crate::supervise::ChildSlots`] (the slot outlives the actor instances that fill it): a
//! restart is a message scheduled after the backoff, and a slot that restarts too often within
//! a window gives up (and escalates to its own supervisor).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// When a stopped child is restarted. (Every supervised child of cco is permanent today; the
/// other kinds complete the vocabulary for children that may end by themselves.)
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Restart {
    /// Always restarted, whether it failed or stopped by itself (workers, leads).
    Permanent,
    /// Restarted only when it failed (panic or error), not on a clean stop.
    Transient,
    /// Never restarted.
    Temporary,
}

/// Restart intensity and backoff of one supervised slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RestartPolicy {
    pub(crate) restart: Restart,
    /// At most this many restarts within `window`; one more and the slot gives up.
    pub(crate) max_restarts: u32,
    pub(crate) window: Duration,
    /// First delay; doubled per restart inside the window, capped at `max_backoff`.
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            restart: Restart::Permanent,
            max_restarts: 5,
            window: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// What the supervisor does with a child that stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestartDecision {
    /// Schedule a restart after this delay.
    RestartAfter(Duration),
    /// Leave the slot empty (clean stop of a transient/temporary child).
    Leave,
    /// Too many restarts in the window: escalate.
    GiveUp,
}

/// Restart history of one slot.
#[derive(Debug, Clone)]
pub(crate) struct RestartTracker {
    policy: RestartPolicy,
    recent: VecDeque<Instant>,
    total: u32,
}

impl RestartTracker {
    pub(crate) fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            recent: VecDeque::new(),
            total: 0,
        }
    }

    /// Restarts performed so far (for status output).
    pub(crate) fn total(&self) -> u32 {
        self.total
    }

    /// Decides for a child that stopped at `now`; `failed` is true for a panic/error.
    pub(crate) fn on_stop(&mut self, failed: bool, now: Instant) -> RestartDecision {
        let wanted = match self.policy.restart {
            Restart::Permanent => true,
            Restart::Transient => failed,
            Restart::Temporary => false,
        };
        if !wanted {
            return RestartDecision::Leave;
        }
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.policy.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() as u32 >= self.policy.max_restarts {
            return RestartDecision::GiveUp;
        }
        let delay = backoff(
            self.policy.initial_backoff,
            self.policy.max_backoff,
            self.recent.len() as u32,
        );
        self.recent.push_back(now);
        self.total += 1;
        RestartDecision::RestartAfter(delay)
    }
}

/// `initial * 2^attempt`, capped at `max`.
pub(crate) fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
    initial.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(restart: Restart) -> RestartPolicy {
        RestartPolicy {
            restart,
            max_restarts: 3,
            window: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
        }
    }

    #[test]
    fn permanent_restarts_with_doubling_backoff_then_gives_up() {
        let mut tracker = RestartTracker::new(policy(Restart::Permanent));
        let now = Instant::now();
        assert_eq!(
            tracker.on_stop(true, now),
            RestartDecision::RestartAfter(Duration::from_millis(100))
        );
        assert_eq!(
            tracker.on_stop(false, now),
            RestartDecision::RestartAfter(Duration::from_millis(200))
        );
        assert_eq!(
            tracker.on_stop(true, now),
            RestartDecision::RestartAfter(Duration::from_millis(350))
        );
        assert_eq!(tracker.on_stop(true, now), RestartDecision::GiveUp);
        assert_eq!(tracker.total(), 3);
    }

    #[test]
    fn restarts_outside_the_window_are_forgotten() {
        let mut tracker = RestartTracker::new(policy(Restart::Permanent));
        let start = Instant::now();
        for _ in 0..3 {
            assert!(matches!(
                tracker.on_stop(true, start),
                RestartDecision::RestartAfter(_)
            ));
        }
        let later = start + Duration::from_secs(11);
        assert_eq!(
            tracker.on_stop(true, later),
            RestartDecision::RestartAfter(Duration::from_millis(100))
        );
    }

    #[test]
    fn transient_and_temporary() {
        let now = Instant::now();
        let mut transient = RestartTracker::new(policy(Restart::Transient));
        assert_eq!(transient.on_stop(false, now), RestartDecision::Leave);
        assert!(matches!(
            transient.on_stop(true, now),
            RestartDecision::RestartAfter(_)
        ));
        let mut temporary = RestartTracker::new(policy(Restart::Temporary));
        assert_eq!(temporary.on_stop(true, now), RestartDecision::Leave);
    }

    #[test]
    fn backoff_never_overflows() {
        assert_eq!(
            backoff(Duration::from_secs(1), Duration::from_secs(60), 1000),
            Duration::from_secs(60)
        );
    }
}
