//! Placement of workers, pure: each worker holds one slot (here or on a node) from its first
//! turn until its node is lost; local slots are used first (no transfer at all), then the
//! node with the most free slots.

use std::collections::{BTreeMap, BTreeSet};

/// Where a worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Local,
    /// Index of the node in the configured list.
    Node(usize),
}

/// What placement needs to know of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Capacity {
    pub(crate) up: bool,
    pub(crate) slots: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Placer {
    pub(crate) local_slots: usize,
    local: BTreeSet<String>,
    remote: BTreeMap<String, usize>,
}

impl Placer {
    pub(crate) fn new(local_slots: usize) -> Placer {
        Placer {
            local_slots,
            ..Placer::default()
        }
    }

    pub(crate) fn workers_on(&self, node: usize) -> Vec<String> {
        self.remote
            .iter()
            .filter(|(_, n)| **n == node)
            .map(|(w, _)| w.clone())
            .collect()
    }

    pub(crate) fn current(&self, worker: &str) -> Option<Target> {
        if self.local.contains(worker) {
            return Some(Target::Local);
        }
        self.remote.get(worker).map(|n| Target::Node(*n))
    }

    /// The worker's place: where it is (while that node is up), else a free slot; `None`
    /// when every slot is taken.
    pub(crate) fn place(&mut self, worker: &str, nodes: &[Capacity]) -> Option<Target> {
        if self.local.contains(worker) {
            return Some(Target::Local);
        }
        if let Some(&n) = self.remote.get(worker) {
            if nodes.get(n).is_some_and(|c| c.up) {
                return Some(Target::Node(n));
            }
            self.remote.remove(worker);
        }
        if self.local.len() < self.local_slots {
            self.local.insert(worker.to_string());
            return Some(Target::Local);
        }
        let best = nodes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.up)
            .map(|(i, c)| (i, c.slots as i64 - self.workers_on(i).len() as i64))
            .filter(|(_, free)| *free > 0)
            // Most free slots first; the first configured among equals.
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))?;
        self.remote.insert(worker.to_string(), best.0);
        Some(Target::Node(best.0))
    }

    /// Node `node` is lost: its workers are placed again at their next process.
    pub(crate) fn node_lost(&mut self, node: usize) -> Vec<String> {
        let gone = self.workers_on(node);
        self.remote.retain(|_, n| *n != node);
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(slots: u32) -> Capacity {
        Capacity { up: true, slots }
    }

    #[test]
    fn local_slots_first_then_the_node_with_most_free_slots() {
        let mut p = Placer::new(1);
        let nodes = [up(2), up(3)];
        assert_eq!(p.place("w1", &nodes), Some(Target::Local));
        assert_eq!(p.place("w2", &nodes), Some(Target::Node(1)));
        assert_eq!(p.place("w3", &nodes), Some(Target::Node(0)));
        assert_eq!(p.place("w4", &nodes), Some(Target::Node(1)));
        assert_eq!(p.place("w5", &nodes), Some(Target::Node(0)));
        assert_eq!(p.place("w6", &nodes), Some(Target::Node(1)));
        assert_eq!(p.place("w7", &nodes), None);
        // Sticky.
        assert_eq!(p.place("w2", &nodes), Some(Target::Node(1)));
        assert_eq!(p.place("w1", &nodes), Some(Target::Local));
    }

    #[test]
    fn workers_of_a_lost_node_move_and_a_rejoined_node_takes_work_again() {
        let mut p = Placer::new(0);
        let mut nodes = [up(2), up(2)];
        assert_eq!(p.place("w1", &nodes), Some(Target::Node(0)));
        assert_eq!(p.place("w2", &nodes), Some(Target::Node(1)));
        nodes[0].up = false;
        assert_eq!(p.node_lost(0), vec!["w1".to_string()]);
        assert_eq!(p.place("w1", &nodes), Some(Target::Node(1)));
        assert_eq!(p.place("w3", &nodes), None);
        nodes[0].up = true;
        assert_eq!(p.place("w3", &nodes), Some(Target::Node(0)));
        assert_eq!(p.current("w3"), Some(Target::Node(0)));
    }
}
