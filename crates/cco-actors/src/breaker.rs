//! The run-wide circuit breaker for an unavailable API.
//!
//! A 529 (overloaded), another 5xx or a connection error is not one key's fault: the CLI
//! retries it itself, and cco never benches a key for it. But when several agents see it
//! within a short window, the API is in a storm, and starting more claude processes only adds
//! to it. Then the breaker *opens*: no new claude process starts (running ones go on) until
//! the hold is over. Holds back off: `apiRetryBackoffMs` for the first, doubled for each
//! opening that follows soon after the previous one, at most `maxApiRetryBackoffMs`.
//!
//! Pure bookkeeping over `Instant`s given by the caller: the rules are unit-tested without
//! waiting.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::restart::backoff;

/// Agents that must see the API unavailable within [`WINDOW`] to open the breaker (fewer
/// when the run has fewer agents).
pub(crate) const AGENTS: usize = 3;
/// The window in which those sightings count.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct State {
    /// Recent sightings: when, and by which agent.
    seen: VecDeque<(Instant, String)>,
    open_until: Option<Instant>,
    /// Openings in a row (each one soon after the previous hold ended).
    openings: u32,
}

/// The breaker of one run.
#[derive(Debug)]
pub(crate) struct Breaker {
    /// Distinct agents that open it.
    agents: usize,
    base: Duration,
    max: Duration,
    state: Mutex<State>,
}

/// The breaker opened: new starts are held until `until`; `agents` saw the API unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Opened {
    pub(crate) until: Instant,
    pub(crate) agents: usize,
}

impl Breaker {
    /// A breaker for a run of `agent_count` claude agents, holding `base` first, at most `max`.
    pub(crate) fn new(agent_count: usize, base: Duration, max: Duration) -> Breaker {
        Breaker {
            agents: AGENTS.min(agent_count).max(1),
            base: base.max(Duration::from_millis(1)),
            max: max.max(base),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `agent` saw the API unavailable at `now` (a 529/5xx/connection `api_retry`, or a
    /// process that gave up on one). Returns the opening this caused, if it did.
    pub(crate) fn record(&self, agent: &str, now: Instant) -> Option<Opened> {
        let mut state = self.lock();
        while state
            .seen
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > WINDOW)
        {
            state.seen.pop_front();
        }
        state.seen.push_back((now, agent.to_string()));
        if state.open_until.is_some_and(|until| until > now) {
            return None;
        }
        let mut agents: Vec<&str> = state.seen.iter().map(|(_, a)| a.as_str()).collect();
        agents.sort_unstable();
        agents.dedup();
        let count = agents.len();
        if count < self.agents {
            return None;
        }
        // An opening soon after the last hold ended backs off further.
        let again = state
            .open_until
            .is_some_and(|until| now.saturating_duration_since(until) < WINDOW);
        state.openings = if again { state.openings + 1 } else { 1 };
        let until = now + backoff(self.base, self.max, state.openings - 1);
        state.open_until = Some(until);
        state.seen.clear();
        Some(Opened {
            until,
            agents: count,
        })
    }

    /// Until when new starts are held (`None`: the breaker is closed).
    pub(crate) fn holding(&self, now: Instant) -> Option<Instant> {
        self.lock().open_until.filter(|until| *until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(10);

    #[test]
    fn one_agent_alone_does_not_open_it_three_do() {
        let breaker = Breaker::new(8, BASE, Duration::from_secs(300));
        let t0 = Instant::now();
        for n in 0..5 {
            assert_eq!(
                breaker.record("worker-1", t0 + Duration::from_secs(n)),
                None
            );
        }
        assert_eq!(
            breaker.record("worker-2", t0 + Duration::from_secs(6)),
            None
        );
        assert_eq!(breaker.holding(t0), None);
        let opened = breaker
            .record("worker-3", t0 + Duration::from_secs(7))
            .expect("three agents open it");
        assert_eq!(opened.agents, 3);
        assert_eq!(opened.until, t0 + Duration::from_secs(17));
        assert_eq!(
            breaker.holding(t0 + Duration::from_secs(8)),
            Some(opened.until)
        );
        // More sightings while it is open change nothing; it closes at its time.
        assert_eq!(
            breaker.record("worker-4", t0 + Duration::from_secs(9)),
            None
        );
        assert_eq!(breaker.holding(t0 + Duration::from_secs(17)), None);
    }

    #[test]
    fn sightings_outside_the_window_do_not_count() {
        let breaker = Breaker::new(8, BASE, Duration::from_secs(300));
        let t0 = Instant::now();
        breaker.record("worker-1", t0);
        breaker.record("worker-2", t0 + Duration::from_secs(1));
        assert_eq!(
            breaker.record("worker-3", t0 + WINDOW + Duration::from_secs(2)),
            None
        );
    }

    #[test]
    fn openings_soon_after_each_other_back_off_up_to_the_cap_and_a_small_run_needs_fewer() {
        let breaker = Breaker::new(2, BASE, Duration::from_secs(25));
        let mut now = Instant::now();
        let mut holds = Vec::new();
        for _ in 0..4 {
            breaker.record("coordinator", now);
            let opened = breaker.record("worker-1", now).expect("two agents of two");
            holds.push(opened.until - now);
            now = opened.until + Duration::from_secs(1);
        }
        assert_eq!(
            holds,
            [10, 20, 25, 25].map(Duration::from_secs),
            "doubling, capped"
        );
        // A quiet minute later the hold starts small again.
        let later = now + WINDOW + Duration::from_secs(5);
        breaker.record("coordinator", later);
        let opened = breaker.record("worker-1", later).unwrap();
        assert_eq!(opened.until - later, BASE);
    }
}
