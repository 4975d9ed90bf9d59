//! Process-group signalling. The only place that sends signals.
//!
//! Guards: a process group id of 0 or 1 is never signalled (`killpg(0)` would hit our own
//! group, 1 is init); "no such process" counts as success (the group is already gone).

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Sends `signal` to every process of group `pgid`. Returns false when nothing was signalled.
pub(crate) fn signal_group(pgid: u32, signal: Signal) -> bool {
    let Ok(raw) = i32::try_from(pgid) else {
        return false;
    };
    if raw <= 1 {
        return false;
    }
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) => true,
        Err(Errno::ESRCH) => false,
        Err(e) => {
            tracing::warn!(pgid, signal = signal.as_str(), error = %e, "killpg failed");
            false
        }
    }
}

/// SIGTERM to the group.
pub(crate) fn term_group(pgid: u32) -> bool {
    signal_group(pgid, Signal::SIGTERM)
}

/// SIGKILL to the group.
pub(crate) fn kill_group(pgid: u32) -> bool {
    signal_group(pgid, Signal::SIGKILL)
}

/// True when running as root (bypass-permissions modes then need `IS_SANDBOX=1`).
pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
