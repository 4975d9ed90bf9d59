//! `cco resume`: the lead takes its team's tasks back from the journaled task table and
//! continues each from its phase.
//!
//! | journaled phase | what the lead does |
//! |---|---|
//! | queued, pinned | nothing: the scheduler hands them out (pinned turns to their worker) |
//! | running | pinned to its worker, resuming the turn's session in the same worktree; with no session known, queued again |
//! | finished | the worktree holding the turn's work is held for it and captured once known; then reviewed or merged |
//! | captured, reviewing | summarised and reviewed again from the task ref (no worker needed) |
//! | merging | merged again from the task ref |
//! | done, failed | nothing: merged work lives in git and is never redone |

use tracing::warn;

use super::core::LeadCore;
use super::pipeline::RESTORED;
use crate::lifecycle::{TaskPhase, Turn};

impl LeadCore {
    /// Takes the team's journaled tasks back (see the module docs). Returns how many there
    /// were: none means the lead starts as a new one would.
    pub(crate) fn restore(&mut self) -> usize {
        self.session_id = self.board.agent(&self.cfg.id).and_then(|a| a.session_id);
        let mut tasks = self.board.tasks_of_team(&self.cfg.team);
        tasks.sort_by(|a, b| a.key.cmp(&b.key));
        for task in &tasks {
            let Some(spec) = self.board.spec(&task.key) else {
                warn!(task = %task.key, "a journaled task without its spec is left as it is");
                continue;
            };
            let key = task.key.clone();
            self.specs.insert(key.clone(), spec);
            self.queue.push(key.clone());
            match task.phase.clone() {
                TaskPhase::Queued
                | TaskPhase::Pinned { .. }
                | TaskPhase::Done { .. }
                | TaskPhase::Failed { .. } => {}
                TaskPhase::Running { worker, turn, .. } => {
                    let back = match &task.session_id {
                        Some(session) => TaskPhase::Pinned {
                            worker,
                            turn: turn.resumed(session.clone()),
                        },
                        None if turn == Turn::Fresh => TaskPhase::Queued,
                        // A turn of a session that never started: its context, afresh.
                        None => TaskPhase::Pinned {
                            worker,
                            turn: turn.without_session(),
                        },
                    };
                    let _ = self.board.advance(&key, back);
                }
                TaskPhase::Finished { worker, lane, .. } => match self.slot_of_worker(&worker) {
                    // No other job can have run in that worktree since: the capture frees it
                    // together with moving the task on, so a journal never shows one without
                    // the other.
                    Some(slot) if lane < 2 => {
                        self.slots[slot].lanes[lane].busy = Some(key.clone());
                        self.recaptures.push((slot, lane, key));
                    }
                    _ => {
                        warn!(task = %key, %worker, "the worktree of a finished turn is unknown: doing the task again");
                        let _ = self.board.advance(
                            &key,
                            TaskPhase::Pinned {
                                worker,
                                turn: Turn::Fresh,
                            },
                        );
                    }
                },
                TaskPhase::Captured => self.start_diff(key, RESTORED.into()),
                TaskPhase::Reviewing { .. } => {
                    if self.board.advance(&key, TaskPhase::Captured).is_ok() {
                        self.start_diff(key, RESTORED.into());
                    }
                }
                TaskPhase::Merging { .. } => self.order_merge(&key),
            }
        }
        tasks.len()
    }
}
