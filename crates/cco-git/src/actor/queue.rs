//! The GitActor's queue, sans IO: which queued op may start now. One FIFO per [`Priority`],
//! served highest first; an op whose lane is busy is skipped (the ones behind it may start),
//! so one agent's op never waits behind another agent's.
//!
//! Admission by [`Lane`], with at most `limit` ops running:
//! - `Exclusive`: only when nothing runs; while one is queued nothing new starts.
//! - `Shared`: one at a time and only when no `Branches` op runs (the single owner of shared
//!   refs), beside agent and read ops; while one is queued no new `Branches` op starts.
//! - `Branches(names)`: when no running op holds one of `names` and no `Shared` op runs:
//!   merges into different team branches run side by side.
//!   One slot is kept for these two (when `limit` > 1): merges never wait behind a crowd of
//!   captures, so the lanes that cannot all run side by side never idle while there is work
//!   for them.
//! - `Agent(path)`: one at a time per agent repository.
//! - `Read`: beside anything.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;

use super::job::{Lane, Priority};

/// What runs now.
#[derive(Debug, Default)]
struct Running {
    total: usize,
    exclusive: bool,
    shared: bool,
    /// Branches held by running `Branches` ops, and how many such ops run.
    branches: HashSet<String>,
    branch_ops: usize,
    agents: HashSet<PathBuf>,
}

/// Queued items (`T`: the op) with their lanes.
pub(super) struct Queue<T> {
    queues: [VecDeque<(Lane, T)>; 3],
    running: Running,
    limit: usize,
}

impl<T> Queue<T> {
    pub fn new(limit: usize) -> Self {
        Queue {
            queues: Default::default(),
            running: Running::default(),
            limit: limit.max(1),
        }
    }

    pub fn push(&mut self, priority: Priority, lane: Lane, item: T) {
        self.queues[priority as usize].push_back((lane, item));
    }

    pub fn queued(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    #[cfg(test)]
    pub fn running(&self) -> usize {
        self.running.total
    }

    fn admits(&self, lane: &Lane, shared_waiting: bool) -> bool {
        let r = &self.running;
        if r.exclusive || r.total >= self.limit {
            return false;
        }
        // Slots agent and read ops may take: all but the one kept for shared-ref ops.
        let others = r.total - usize::from(r.shared) - r.branch_ops;
        let room = others < self.limit.saturating_sub(1).max(1);
        match lane {
            Lane::Exclusive => r.total == 0,
            Lane::Shared => !r.shared && r.branch_ops == 0,
            Lane::Branches(names) => {
                !r.shared && !shared_waiting && names.iter().all(|n| !r.branches.contains(n))
            }
            Lane::Agent(path) => room && !r.agents.contains(path),
            Lane::Read => room,
        }
    }

    /// The next op that may start now (marked running), if any.
    pub fn next(&mut self) -> Option<(Lane, T)> {
        // What waits, in one pass over the queue: an `Exclusive` op holds everything else
        // back; a `Shared` op would wait for ever behind a stream of merges into different
        // branches, so while one waits no new `Branches` op starts.
        let (mut exclusive_waiting, mut shared_waiting) = (false, false);
        for (lane, _) in self.queues.iter().flatten() {
            match lane {
                Lane::Exclusive => exclusive_waiting = true,
                Lane::Shared => shared_waiting = true,
                _ => {}
            }
        }
        let (p, i) = self.queues.iter().enumerate().find_map(|(p, q)| {
            q.iter()
                .position(|(lane, _)| {
                    (!exclusive_waiting || *lane == Lane::Exclusive)
                        && self.admits(lane, shared_waiting)
                })
                .map(|i| (p, i))
        })?;
        let (lane, item) = self.queues[p].remove(i)?;
        let r = &mut self.running;
        r.total += 1;
        match &lane {
            Lane::Exclusive => r.exclusive = true,
            Lane::Shared => r.shared = true,
            Lane::Branches(names) => {
                r.branch_ops += 1;
                r.branches.extend(names.iter().cloned());
            }
            Lane::Agent(path) => {
                r.agents.insert(path.clone());
            }
            Lane::Read => {}
        }
        Some((lane, item))
    }

    /// An op of `lane` finished.
    pub fn done(&mut self, lane: &Lane) {
        let r = &mut self.running;
        r.total = r.total.saturating_sub(1);
        match lane {
            Lane::Exclusive => r.exclusive = false,
            Lane::Shared => r.shared = false,
            Lane::Branches(names) => {
                r.branch_ops = r.branch_ops.saturating_sub(1);
                for n in names {
                    r.branches.remove(n);
                }
            }
            Lane::Agent(path) => {
                r.agents.remove(path);
            }
            Lane::Read => {}
        }
    }

    /// Everything still queued (the actor stops).
    pub fn drain(&mut self) -> Vec<T> {
        self.queues
            .iter_mut()
            .flat_map(|q| q.drain(..))
            .map(|(_, t)| t)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(n: &str) -> Lane {
        Lane::Agent(PathBuf::from(n))
    }

    fn started(q: &mut Queue<&'static str>) -> Vec<&'static str> {
        std::iter::from_fn(|| q.next().map(|(_, t)| t)).collect()
    }

    #[test]
    fn agents_run_side_by_side_with_one_shared_op_and_one_op_per_agent() {
        let mut q = Queue::new(8);
        q.push(Priority::Low, Lane::Shared, "merge 1");
        q.push(Priority::Low, Lane::Shared, "merge 2");
        q.push(Priority::Normal, agent("a"), "capture a");
        q.push(Priority::High, agent("a"), "sync a");
        q.push(Priority::Normal, agent("b"), "capture b");
        q.push(Priority::Low, Lane::Read, "diff");
        assert_eq!(
            started(&mut q),
            vec!["sync a", "capture b", "merge 1", "diff"]
        );
        assert_eq!((q.running(), q.queued()), (4, 2));
        q.done(&agent("a"));
        assert_eq!(started(&mut q), vec!["capture a"]);
        q.done(&Lane::Shared);
        assert_eq!(started(&mut q), vec!["merge 2"]);
    }

    #[test]
    fn the_limit_bounds_what_runs_and_one_is_the_old_serial_queue() {
        let mut q = Queue::new(1);
        q.push(Priority::Low, Lane::Shared, "merge");
        q.push(Priority::Low, Lane::Read, "diff");
        q.push(Priority::High, agent("a"), "sync");
        assert_eq!(started(&mut q), vec!["sync"]);
        q.done(&agent("a"));
        assert_eq!(started(&mut q), vec!["merge"]);
        q.done(&Lane::Shared);
        assert_eq!(started(&mut q), vec!["diff"]);
        // Two slots: one for agents, one kept for the shared lane.
        let mut q = Queue::new(2);
        for a in ["a", "b", "c"] {
            q.push(Priority::Normal, agent(a), a);
        }
        assert_eq!(started(&mut q), vec!["a"]);
        q.push(Priority::Low, Lane::Shared, "merge");
        assert_eq!(started(&mut q), vec!["merge"]);
    }

    #[test]
    fn a_merge_never_waits_behind_a_crowd_of_captures() {
        let mut q = Queue::new(4);
        for a in ["a", "b", "c", "d", "e"] {
            q.push(Priority::Normal, agent(a), a);
        }
        assert_eq!(started(&mut q), vec!["a", "b", "c"]);
        q.push(Priority::Low, Lane::Shared, "merge");
        assert_eq!(started(&mut q), vec!["merge"]);
        q.done(&agent("a"));
        assert_eq!(started(&mut q), vec!["d"]);
    }

    fn branches(names: &[&str]) -> Lane {
        Lane::Branches(names.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn merges_into_different_branches_run_side_by_side_and_one_at_a_time_per_branch() {
        let mut q = Queue::new(4);
        q.push(Priority::Low, branches(&["team-a"]), "merge a1");
        q.push(Priority::Low, branches(&["team-a"]), "merge a2");
        q.push(Priority::Low, branches(&["team-b"]), "merge b1");
        // The Director's merge of team-b into main waits for team-b's merge in flight.
        q.push(
            Priority::Low,
            branches(&["main", "team-b"]),
            "merge b -> main",
        );
        q.push(
            Priority::Low,
            branches(&["main", "team-c"]),
            "merge c -> main",
        );
        assert_eq!(
            started(&mut q),
            vec!["merge a1", "merge b1", "merge c -> main"]
        );
        q.done(&branches(&["team-b"]));
        assert!(started(&mut q).is_empty(), "main is held by c's merge");
        q.done(&branches(&["main", "team-c"]));
        assert_eq!(started(&mut q), vec!["merge b -> main"]);
        q.done(&branches(&["team-a"]));
        assert_eq!(started(&mut q), vec!["merge a2"]);
    }

    #[test]
    fn a_shared_op_waits_for_the_branch_ops_and_holds_new_ones_back() {
        let mut q = Queue::new(4);
        q.push(Priority::Low, branches(&["team-a"]), "merge a");
        assert_eq!(started(&mut q), vec!["merge a"]);
        q.push(Priority::Low, Lane::Shared, "ensure team-c");
        q.push(Priority::Low, branches(&["team-b"]), "merge b");
        q.push(Priority::Normal, agent("x"), "capture x");
        assert_eq!(
            started(&mut q),
            vec!["capture x"],
            "the shared op waits for merge a; merge b waits for the shared op"
        );
        q.done(&branches(&["team-a"]));
        assert_eq!(started(&mut q), vec!["ensure team-c"]);
        q.done(&Lane::Shared);
        assert_eq!(started(&mut q), vec!["merge b"]);
        q.done(&branches(&["team-b"]));
        q.done(&agent("x"));
        assert_eq!((q.running(), q.queued()), (0, 0));
    }

    #[test]
    fn merges_keep_their_slot_beside_a_crowd_of_captures() {
        let mut q = Queue::new(4);
        for a in ["a", "b", "c", "d"] {
            q.push(Priority::Normal, agent(a), a);
        }
        assert_eq!(started(&mut q), vec!["a", "b", "c"]);
        q.push(Priority::Low, branches(&["team-a"]), "merge a");
        q.push(Priority::Low, branches(&["team-b"]), "merge b");
        // The slot kept for shared-ref ops: one merge, the other waits for a free slot.
        assert_eq!(started(&mut q), vec!["merge a"]);
        // A freed slot goes by priority (captures before merges), then to the merge.
        q.done(&agent("a"));
        assert_eq!(started(&mut q), vec!["d"]);
        q.done(&agent("b"));
        assert_eq!(started(&mut q), vec!["merge b"]);
    }

    #[test]
    fn an_exclusive_op_waits_for_everything_and_holds_everything_back() {
        let mut q = Queue::new(8);
        q.push(Priority::Normal, agent("a"), "capture");
        assert_eq!(started(&mut q), vec!["capture"]);
        q.push(Priority::Low, Lane::Exclusive, "setup");
        q.push(Priority::High, agent("b"), "sync");
        assert!(
            started(&mut q).is_empty(),
            "setup waits, sync waits for setup"
        );
        q.done(&agent("a"));
        assert_eq!(started(&mut q), vec!["setup"]);
        q.done(&Lane::Exclusive);
        assert_eq!(started(&mut q), vec!["sync"]);
        assert_eq!(q.drain().len(), 0);
    }
}
