//! Unix process hygiene: the claude processes (and their children) a cco that died left behind
//! are ended by the next cco of the run (`cco resume`, `cco start --fresh`).

use std::collections::BTreeMap;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::board::ProcessRecord;

/// The environment variable naming the run every claude process of cco belongs to.
pub(crate) const RUN_ID_VAR: &str = "CCO_RUN_ID";

/// Kills the process group of a claude process left over by a cco that died (`kill -9`),
/// but only when `/proc/<pid>/environ` proves it is that agent's process: a recycled pid
/// belonging to something else is never touched. Returns true when a group was killed.
pub fn kill_leftover_agent_process(pid: u32, agent: &str) -> bool {
    let marker = format!("CCO_AGENT_ID={agent}");
    if !environ_has(pid, &[marker.as_bytes()]) {
        return false;
    }
    kill_group(pid)
}

/// Kills the process groups of journaled claude processes of run `run_id` that are still
/// alive: a group is killed when any process in it (claude itself, or a child it left when
/// it died) carries both that agent's and that run's markers in its environment, so nothing
/// that merely reuses a pid or a group id is touched. Returns the groups killed.
pub(crate) fn kill_leftover_processes(run_id: &str, processes: &[ProcessRecord]) -> Vec<u32> {
    if processes.is_empty() {
        return Vec::new();
    }
    let groups = process_groups();
    let run_marker = format!("{RUN_ID_VAR}={run_id}");
    let mut killed = Vec::new();
    for p in processes {
        if killed.contains(&p.pgid) {
            continue;
        }
        let agent_marker = format!("CCO_AGENT_ID={}", p.agent);
        let members = groups.get(&p.pgid).map(Vec::as_slice).unwrap_or_default();
        let ours = members
            .iter()
            .any(|&pid| environ_has(pid, &[agent_marker.as_bytes(), run_marker.as_bytes()]));
        if ours && kill_group(p.pgid) {
            tracing::warn!(agent = %p.agent, pid = p.pid, pgid = p.pgid, "killed a claude process group left by a previous cco");
            killed.push(p.pgid);
        }
    }
    killed
}

fn kill_group(pgid: u32) -> bool {
    let Ok(raw) = i32::try_from(pgid) else {
        return false;
    };
    raw > 1 && killpg(Pid::from_raw(raw), Signal::SIGKILL).is_ok()
}

/// Whether the environment of `pid` holds every entry of `entries` (`NAME=value`).
fn environ_has(pid: u32, entries: &[&[u8]]) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    entries
        .iter()
        .all(|wanted| environ.split(|b| *b == 0).any(|entry| entry == *wanted))
}

/// Every live process by process group (from `/proc/<pid>/stat`).
fn process_groups() -> BTreeMap<u32, Vec<u32>> {
    let mut groups: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return groups;
    };
    for pid in entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
    {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp ...`: comm may hold spaces and parentheses.
        let pgrp = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(2))
            .and_then(|g| g.parse::<u32>().ok());
        if let Some(pgrp) = pgrp {
            groups.entry(pgrp).or_default().push(pid);
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn a_journaled_group_is_killed_only_when_it_carries_the_run_and_agent_markers() {
        let spawn = |run: &str| {
            std::process::Command::new("sh")
                .args(["-c", "sleep 60 & wait"])
                .env("CCO_AGENT_ID", "worker-1")
                .env(RUN_ID_VAR, run)
                .process_group(0)
                .spawn()
                .unwrap()
        };
        let mut ours = spawn("run-a");
        let mut other = spawn("run-b");
        // Until `sh` has exec'd, /proc shows the test's own environment and process group:
        // wait for the markers (a dead cco's processes have long exec'd).
        for (child, run) in [(&ours, "run-a"), (&other, "run-b")] {
            let marker = format!("{RUN_ID_VAR}={run}");
            cco_testkit::wait_until(
                std::time::Duration::from_secs(5),
                "the shell to start",
                || {
                    environ_has(child.id(), &[marker.as_bytes()])
                        && process_groups()
                            .get(&child.id())
                            .is_some_and(|members| members.contains(&child.id()))
                },
            );
        }
        let record = |pid: u32| ProcessRecord {
            agent: "worker-1".into(),
            pid,
            pgid: pid,
            task: None,
            started_at: chrono::Utc::now(),
        };
        let killed = kill_leftover_processes("run-a", &[record(ours.id()), record(other.id())]);
        assert_eq!(killed, vec![ours.id()]);
        assert!(ours.wait().unwrap().code().is_none(), "killed by a signal");
        assert!(
            other.try_wait().unwrap().is_none(),
            "another run's group is left alone"
        );
        assert!(kill_group(other.id()));
        other.wait().unwrap();
        // Its `sleep` child is gone with the group.
        cco_testkit::wait_until(
            std::time::Duration::from_secs(5),
            "the group to end",
            || !cco_testkit::process_group_alive(ours.id()),
        );
    }
}
