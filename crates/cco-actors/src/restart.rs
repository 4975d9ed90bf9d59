//! Restart policies for supervised actors and for crashed claude processes.
//!
//! ractor has no restart strategies of its own: a supervisor receives `ActorFailed` /
//! `ActorTerminated` and decides. [`RestartPolicy`] is that decision, kept per stable slot
//! (the slot outlives the actor instances that fill it), in the style of ractor's factory:
//! a restart is a message scheduled after [`RestartTracker::next_delay`], and a slot that
//! restarts too often within a window gives up (and escalates to its own supervisor).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// When a stopped child is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Always restarted, whether it failed or stopped by itself (workers, leads).
    Permanent,
    /// Restarted only when it failed (panic or error), not on a clean stop.
    Transient,
    /// Never restarted.
    Temporary,
}

/// Restart intensity and backoff of one supervised slot.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    pub restart: Restart,
    /// At most this many restarts within `window`; one more and the slot gives up.
    pub max_restarts: u32,
    pub window: Duration,
    /// First delay; doubled per restart inside the window, capped at `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
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
pub enum RestartDecision {
    /// Schedule a restart after this delay.
    RestartAfter(Duration),
    /// Leave the slot empty (clean stop of a transient/temporary child).
    Leave,
    /// Too many restarts in the window: escalate.
    GiveUp,
}

/// Restart history of one slot.
#[derive(Debug, Clone)]
pub struct RestartTracker {
    policy: RestartPolicy,
    recent: VecDeque<Instant>,
    total: u32,
}

impl RestartTracker {
    pub fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            recent: VecDeque::new(),
            total: 0,
        }
    }

    /// Restarts performed so far (for status output).
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Decides for a child that stopped at `now`; `failed` is true for a panic/error.
    pub fn on_stop(&mut self, failed: bool, now: Instant) -> RestartDecision {
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

/// The child a supervision event says has stopped: its cell, whether it failed (panic or
/// error) rather than stopped, and why. `None` for other events.
pub fn stopped_child(
    event: &ractor::SupervisionEvent,
) -> Option<(ractor::ActorCell, bool, String)> {
    match event {
        ractor::SupervisionEvent::ActorTerminated(cell, _, reason) => {
            Some((cell.clone(), false, reason.clone().unwrap_or_default()))
        }
        ractor::SupervisionEvent::ActorFailed(cell, error) => {
            Some((cell.clone(), true, error.to_string()))
        }
        _ => None,
    }
}

/// Ordered stop of a set of children: all are asked to shut down at once (each reply comes
/// when the child's own processes and children are gone), then the actors are stopped. ractor
/// would otherwise stop them without running their `post_stop`.
pub async fn shutdown_all<M: ractor::Message>(
    children: Vec<ractor::ActorRef<M>>,
    shutdown: fn(ractor::RpcReplyPort<()>) -> M,
    timeout: Duration,
) {
    let timeout_ms = timeout.as_millis() as u64;
    let stops: Vec<_> = children
        .iter()
        .cloned()
        .map(|child| tokio::spawn(async move { ractor::call_t!(child, shutdown, timeout_ms) }))
        .collect();
    for stop in stops {
        let _ = stop.await;
    }
    for child in children {
        let _ = child
            .stop_and_wait(None, Some(Duration::from_secs(5)))
            .await;
    }
}

/// `initial * 2^attempt`, capped at `max`.
pub fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
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
