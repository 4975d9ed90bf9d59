//! Unix process hygiene for resumed runs.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Kills the process group of a claude process left over by a cco that died (`kill -9`),
/// but only when `/proc/<pid>/environ` proves it is that agent's process: a recycled pid
/// belonging to something else is never touched. Returns true when a group was killed.
pub fn kill_leftover_agent_process(pid: u32, agent: &str) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let marker = format!("CCO_AGENT_ID={agent}");
    let ours = environ
        .split(|b| *b == 0)
        .any(|entry| entry == marker.as_bytes());
    if !ours {
        return false;
    }
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    killpg(Pid::from_raw(raw), Signal::SIGKILL).is_ok()
}
