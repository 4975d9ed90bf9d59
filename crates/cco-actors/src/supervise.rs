//! Supervision shared by the Director (its leads) and the leads (their workers).
//!
//! ractor has no restart strategies: a supervisor gets `ActorFailed` / `ActorTerminated` and
//! decides. [`ChildSlots`] is that decision, in the style of ractor's factory: stable slots
//! that outlive the actors filling them, each with its own [`RestartTracker`]; a stopped child
//! is found by its actor id ([`ChildSlots::slot_of`], the factory's `is_pid`), a restart is a
//! message the supervisor schedules after the backoff [`Exit::RestartAfter`] names, a new child
//! replaces the old in its slot ([`ChildSlots::fill`], the factory's `replace_worker`), and a
//! slot that restarts too often gives up. What the child was doing stays with the supervisor
//! (the lead's tasks, the Director's goals), so a restart loses nothing.
//!
//! [`shutdown_all`] is the ordered stop: children first (each waits for its own processes),
//! then the actors, because ractor would stop them without running their `post_stop`.

use std::time::{Duration, Instant};

use ractor::{ActorCell, ActorId, ActorRef, Message, RpcReplyPort, SupervisionEvent};

use crate::board::Board;
use crate::events::RunEvent;
use crate::restart::{RestartDecision, RestartPolicy, RestartTracker};

/// A supervised child's handle: what tells two children apart.
pub(crate) trait Child {
    fn child_id(&self) -> ActorId;
}

impl<M: Message> Child for ActorRef<M> {
    fn child_id(&self) -> ActorId {
        self.get_id()
    }
}

struct ChildSlot<H> {
    id: String,
    child: Option<H>,
    restarts: RestartTracker,
    dead: bool,
}

/// What becomes of a slot whose child stopped (or could not start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Schedule a respawn after `delay`; the slot has restarted `restarts` times in all.
    RestartAfter { delay: Duration, restarts: u32 },
    /// Too many restarts within the window: the slot stays empty for good. `all_dead`: no
    /// slot of this supervisor is left.
    GaveUp { all_dead: bool },
}

/// Stable child slots with their restart bookkeeping.
pub(crate) struct ChildSlots<H> {
    slots: Vec<ChildSlot<H>>,
}

impl<H: Child> ChildSlots<H> {
    /// One empty slot per id, each restarted by `policy`.
    pub(crate) fn new(ids: impl IntoIterator<Item = String>, policy: RestartPolicy) -> Self {
        ChildSlots {
            slots: ids
                .into_iter()
                .map(|id| ChildSlot {
                    id,
                    child: None,
                    restarts: RestartTracker::new(policy),
                    dead: false,
                })
                .collect(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The agent id of `slot` (stable across restarts).
    pub(crate) fn id(&self, slot: usize) -> &str {
        &self.slots[slot].id
    }

    /// Names a slot that has had no child yet (a team is named after its first goal).
    pub(crate) fn set_id(&mut self, slot: usize, id: String) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.id = id;
        }
    }

    /// The child filling `slot` now.
    pub(crate) fn get(&self, slot: usize) -> Option<&H> {
        self.slots.get(slot).and_then(|s| s.child.as_ref())
    }

    /// Restarts of `slot` so far.
    pub(crate) fn restarts(&self, slot: usize) -> u32 {
        self.slots.get(slot).map_or(0, |s| s.restarts.total())
    }

    #[cfg(test)]
    pub(crate) fn is_dead(&self, slot: usize) -> bool {
        self.slots.get(slot).is_some_and(|s| s.dead)
    }

    /// The slot whose current child is `id` (a supervision event names the child).
    pub(crate) fn slot_of(&self, id: ActorId) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.child.as_ref().is_some_and(|child| child.child_id() == id))
    }

    /// A newly spawned child fills `slot`.
    pub(crate) fn fill(&mut self, slot: usize, child: H) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.child = Some(child);
        }
    }

    /// The child of `slot` stopped, failed or could not start at `now` (children are
    /// permanent: a stop is as unexpected as a failure). Empties the slot and decides.
    pub(crate) fn on_exit(&mut self, slot: usize, now: Instant) -> Exit {
        let Some(s) = self.slots.get_mut(slot) else {
            return Exit::GaveUp {
                all_dead: self.all_dead(),
            };
        };
        s.child = None;
        match s.restarts.on_stop(true, now) {
            RestartDecision::RestartAfter(delay) => Exit::RestartAfter {
                delay,
                restarts: s.restarts.total(),
            },
            RestartDecision::Leave | RestartDecision::GiveUp => {
                s.dead = true;
                Exit::GaveUp {
                    all_dead: self.all_dead(),
                }
            }
        }
    }

    /// Every slot gave up.
    pub(crate) fn all_dead(&self) -> bool {
        self.slots.iter().all(|s| s.dead)
    }

    /// Empties every slot (for the ordered shutdown).
    pub(crate) fn take_all(&mut self) -> Vec<H> {
        self.slots
            .iter_mut()
            .filter_map(|s| s.child.take())
            .collect()
    }
}

/// Shows what [`ChildSlots::on_exit`] decided on the board: the restart count, the agent's
/// state and an `ActorRestarted` event, or the slot given up (`why`: the last error).
pub(crate) fn record_exit(board: &Board, agent: &str, exit: Exit, why: Option<&str>) {
    match exit {
        Exit::RestartAfter { restarts, .. } => {
            board.update_agent(agent, |a| a.restarts = restarts);
            board.set_agent_state(agent, "restarting");
            board.events().emit(RunEvent::ActorRestarted {
                agent: agent.to_string(),
                restarts,
            });
        }
        Exit::GaveUp { .. } => board.set_agent_state(
            agent,
            match why {
                Some(why) => format!("dead: {why}"),
                None => "dead: too many restarts".to_string(),
            },
        ),
    }
}

/// The child a supervision event says has stopped: its cell, whether it failed (panic or
/// error) rather than stopped, and why. `None` for other events.
pub(crate) fn stopped_child(event: &SupervisionEvent) -> Option<(ActorCell, bool, String)> {
    match event {
        SupervisionEvent::ActorTerminated(cell, _, reason) => {
            Some((cell.clone(), false, reason.clone().unwrap_or_default()))
        }
        SupervisionEvent::ActorFailed(cell, error) => Some((cell.clone(), true, error.to_string())),
        _ => None,
    }
}

/// Ordered stop of a set of children: all are asked to shut down at once (each reply comes
/// when the child's own processes and children are gone), then the actors are stopped. ractor
/// would otherwise stop them without running their `post_stop`.
pub(crate) async fn shutdown_all<M: Message>(
    children: Vec<ActorRef<M>>,
    shutdown: fn(RpcReplyPort<()>) -> M,
    timeout: Duration,
) {
    let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    struct Fake(u64);

    impl Child for Fake {
        fn child_id(&self) -> ActorId {
            ActorId::Local(self.0)
        }
    }

    fn policy(max_restarts: u32) -> RestartPolicy {
        RestartPolicy {
            max_restarts,
            window: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..RestartPolicy::default()
        }
    }

    fn slots(n: usize, max_restarts: u32) -> ChildSlots<Fake> {
        ChildSlots::new((1..=n).map(|i| format!("worker-{i}")), policy(max_restarts))
    }

    #[test]
    fn a_stopped_child_is_found_by_its_actor_id_and_its_slot_emptied() {
        let mut s = slots(3, 5);
        s.fill(0, Fake(10));
        s.fill(2, Fake(12));
        assert_eq!(s.slot_of(ActorId::Local(12)), Some(2));
        assert_eq!(s.slot_of(ActorId::Local(11)), None);
        assert_eq!(s.id(2), "worker-3");
        let exit = s.on_exit(2, Instant::now());
        assert_eq!(
            exit,
            Exit::RestartAfter {
                delay: Duration::from_millis(100),
                restarts: 1
            }
        );
        assert!(s.get(2).is_none());
        // An old child's late event finds no slot: the slot's new child is another actor.
        s.fill(2, Fake(22));
        assert_eq!(s.slot_of(ActorId::Local(12)), None);
        assert_eq!(s.slot_of(ActorId::Local(22)), Some(2));
        assert_eq!(s.restarts(2), 1);
    }

    #[test]
    fn restarts_back_off_then_the_slot_gives_up_and_the_last_one_says_all_dead() {
        let mut s = slots(2, 2);
        let now = Instant::now();
        s.fill(0, Fake(1));
        assert_eq!(
            s.on_exit(0, now),
            Exit::RestartAfter {
                delay: Duration::from_millis(100),
                restarts: 1
            }
        );
        assert_eq!(
            s.on_exit(0, now),
            Exit::RestartAfter {
                delay: Duration::from_millis(200),
                restarts: 2
            }
        );
        assert_eq!(s.on_exit(0, now), Exit::GaveUp { all_dead: false });
        assert!(s.is_dead(0) && !s.is_dead(1));
        s.on_exit(1, now);
        s.on_exit(1, now);
        assert_eq!(s.on_exit(1, now), Exit::GaveUp { all_dead: true });
        assert!(s.all_dead());
    }

    #[test]
    fn take_all_empties_every_slot_for_the_shutdown() {
        let mut s = slots(3, 5);
        s.fill(0, Fake(1));
        s.fill(1, Fake(2));
        assert_eq!(s.take_all(), vec![Fake(1), Fake(2)]);
        assert!((0..s.len()).all(|i| s.get(i).is_none()));
    }

    #[test]
    fn the_board_shows_restarts_and_dead_slots() {
        let board = Board::new("run", crate::events::EventBus::new(16));
        let mut events = board.events().subscribe();
        board.register_agent("worker-1", crate::board::Role::Worker, None, None, None);
        record_exit(
            &board,
            "worker-1",
            Exit::RestartAfter {
                delay: Duration::ZERO,
                restarts: 2,
            },
            None,
        );
        let agent = board.agent("worker-1").unwrap();
        assert_eq!((agent.restarts, agent.state.as_str()), (2, "restarting"));
        let restarted = std::iter::from_fn(|| events.try_recv().ok())
            .any(|e| matches!(e, RunEvent::ActorRestarted { restarts: 2, .. }));
        assert!(restarted);
        record_exit(
            &board,
            "worker-1",
            Exit::GaveUp { all_dead: true },
            Some("no worktree"),
        );
        assert_eq!(board.agent("worker-1").unwrap().state, "dead: no worktree");
    }
}
