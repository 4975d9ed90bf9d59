//! [`RunClock`]: how long a run has been active, over every cco process that ran it.

use std::time::{Duration, Instant};

/// How long a run has been active: what earlier cco processes ran it (from the journal) plus
/// the time since this process started it. `maxRunDurationMinutes` is measured against it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunClock {
    before: Duration,
    since: Instant,
}

impl RunClock {
    /// A new run's clock, at zero from now.
    pub(crate) fn start() -> RunClock {
        RunClock::resumed(Duration::ZERO)
    }

    /// A resumed run's clock: `before` already used, counting on from now.
    pub(crate) fn resumed(before: Duration) -> RunClock {
        RunClock {
            before,
            since: Instant::now(),
        }
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.elapsed_at(Instant::now())
    }

    /// [`elapsed`](Self::elapsed) with the clock given.
    pub(crate) fn elapsed_at(&self, now: Instant) -> Duration {
        self.before + now.saturating_duration_since(self.since)
    }

    #[cfg(test)]
    pub(crate) fn since(&self) -> Instant {
        self.since
    }
}
