//! Orchestrator overhead: the bench process's own CPU time (getrusage RUSAGE_SELF: every
//! thread of this process, never the claude/git children) and peak RSS (VmHWM), measured
//! around each scheduling run, which runs in this process.

use std::time::Duration;

use serde::Serialize;

use crate::sched::SchedResult;

/// This process's user+system CPU time so far.
pub fn cpu_time() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(usage) => {
            let tv = |t: nix::sys::time::TimeVal| {
                Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000)
            };
            tv(usage.user_time()) + tv(usage.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

/// A `kB` field of /proc/self/status, in bytes.
fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

pub fn rss() -> u64 {
    status_kb("VmRSS").unwrap_or(0)
}

pub fn peak_rss() -> u64 {
    status_kb("VmHWM").unwrap_or(0)
}

/// Resets VmHWM to the current RSS (Linux: `echo 5 > /proc/self/clear_refs`). Returns false
/// when not supported; the peak is then the process's peak so far.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// What one run cost this process.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Usage {
    pub cpu_ms: f64,
    /// RSS before the run started.
    pub baseline_rss_bytes: u64,
    /// VmHWM after the run (reset before it when the kernel allows).
    pub peak_rss_bytes: u64,
    pub peak_reset: bool,
}

pub struct Meter {
    cpu: Duration,
    baseline: u64,
    reset: bool,
}

impl Meter {
    pub fn start() -> Meter {
        let reset = reset_peak_rss();
        Meter {
            cpu: cpu_time(),
            baseline: rss(),
            reset,
        }
    }

    pub fn stop(self) -> Usage {
        Usage {
            cpu_ms: (cpu_time().saturating_sub(self.cpu)).as_secs_f64() * 1000.0,
            baseline_rss_bytes: self.baseline,
            peak_rss_bytes: peak_rss(),
            peak_reset: self.reset,
        }
    }
}

/// Overhead normalised per worker and per 1,000 run events.
#[derive(Debug, Clone, Serialize)]
pub struct OverheadRow {
    pub label: String,
    pub workers: usize,
    pub events: u64,
    pub cpu_ms: f64,
    pub cpu_ms_per_worker: f64,
    pub cpu_ms_per_1000_events: f64,
    pub peak_rss_mib: f64,
    /// (peak - baseline RSS) / workers.
    pub rss_growth_kib_per_worker: f64,
    /// (peak - baseline RSS) per 1,000 events.
    pub rss_growth_kib_per_1000_events: f64,
    /// Board updates the dashboard's client received (`None`: no dashboard).
    pub dashboard_updates: Option<u64>,
    /// CPU ms of one board page (measured after the run).
    pub dashboard_board_cpu_ms: Option<f64>,
}

pub fn rows(sched: &[SchedResult]) -> Vec<OverheadRow> {
    sched
        .iter()
        .map(|r| {
            let u = r.usage;
            let growth_kib = u.peak_rss_bytes.saturating_sub(u.baseline_rss_bytes) as f64 / 1024.0;
            let events = r.events.max(1) as f64;
            OverheadRow {
                label: r.label.clone(),
                workers: r.workers,
                events: r.events,
                cpu_ms: u.cpu_ms,
                cpu_ms_per_worker: u.cpu_ms / r.workers as f64,
                cpu_ms_per_1000_events: u.cpu_ms / events * 1000.0,
                peak_rss_mib: u.peak_rss_bytes as f64 / (1024.0 * 1024.0),
                rss_growth_kib_per_worker: growth_kib / r.workers as f64,
                rss_growth_kib_per_1000_events: growth_kib / events * 1000.0,
                dashboard_updates: r.ui.then_some(r.ui_updates),
                dashboard_board_cpu_ms: r.ui.then_some(r.ui_board_cpu_ms),
            }
        })
        .collect()
}
