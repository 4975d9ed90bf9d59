//! The singleton GitActor: a queue of git ops served by [`Priority`] (ops a worker waits on
//! before its next turn first, then captures of finished turns, then merges, diffs and
//! everything else) and run side by side as their [`Lane`]s allow (`queue.rs`, sans IO): one
//! op at a time per shared branch (merges into different team branches side by side, each
//! in its own integration worktree), general shared-ref ops (fetch, push, team branch
//! creation) alone among those, one at a time per agent repository, agents side by side, at
//! most [`GitConfig::parallel_ops`] at once. Each op runs in a spawned task that messages the
//! actor when done, so `Status` is answered while ops run. On stop the ops in flight are
//! awaited (bounded by their budgets); queued ops are answered with [`GitError::Stopped`].
//!
//! Layout: `job.rs` (an op: [`OpDesc`] + typed job), `queue.rs` (admission), `handle.rs`
//! ([`GitHandle`], one method per op), this file (the actor).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::types::*;
use crate::{GitError, GitRepo};

mod handle;
mod job;
mod queue;

pub use handle::GitHandle;
pub use job::{GitOp, Lane, OpDesc, Priority};

/// Messages of the [`GitActor`]. Callers normally use [`GitHandle`] instead.
pub enum GitMsg {
    Op(GitOp, Priority),
    Status(RpcReplyPort<GitStatus>),
    /// Internal: in-flight op `id` finished after running this long.
    OpDone(u64, &'static str, Duration),
}

// Local only: ractor's `cluster` feature (on in the workspace) needs every message type to
// implement `Message`; this one never crosses a process boundary.
impl ractor::Message for GitMsg {}

pub struct GitActor;

/// An op in flight.
struct Running {
    label: String,
    lane: Lane,
    budget: Duration,
    task: JoinHandle<()>,
}

pub struct GitActorState {
    repo: Arc<GitRepo>,
    queue: queue::Queue<GitOp>,
    in_flight: BTreeMap<u64, Running>,
    next_id: u64,
    ops_done: u64,
    by_op: BTreeMap<String, OpStats>,
}

impl GitActorState {
    /// Starts every queued op the queue admits now.
    fn start_ready(&mut self, myself: &ActorRef<GitMsg>) {
        while let Some((lane, op)) = self.queue.next() {
            let GitOp { desc, job } = op;
            let name = desc.name;
            let budget = desc.budget(self.repo.config());
            let label = desc.label();
            let span = tracing::info_span!("git_op", op = name, target = %desc.target, source = %desc.source);
            let repo = self.repo.clone();
            let me = myself.clone();
            let id = self.next_id;
            self.next_id += 1;
            let task = tokio::spawn(async move {
                let started = std::time::Instant::now();
                // Inner task: a panic in the op must still release its lane.
                let inner = tokio::spawn(job.run(repo, budget, name).instrument(span));
                if let Err(e) = inner.await {
                    tracing::error!(op = name, error = %e, "git op task panicked");
                }
                let _ = me.send_message(GitMsg::OpDone(id, name, started.elapsed()));
            });
            self.in_flight.insert(
                id,
                Running {
                    label,
                    lane,
                    budget,
                    task,
                },
            );
        }
    }

    fn status(&self) -> GitStatus {
        let running: Vec<String> = self.in_flight.values().map(|r| r.label.clone()).collect();
        // The op on shared refs first: it is the one the others may be waiting for.
        let in_flight = self
            .in_flight
            .values()
            .find(|r| matches!(r.lane, Lane::Shared | Lane::Branches(_)))
            .or_else(|| self.in_flight.values().next())
            .map(|r| r.label.clone());
        GitStatus {
            in_flight,
            running,
            queued: self.queue.queued(),
            ops_done: self.ops_done,
            by_op: self.by_op.clone(),
        }
    }
}

impl Actor for GitActor {
    type Msg = GitMsg;
    type State = GitActorState;
    type Arguments = Arc<GitRepo>;

    async fn pre_start(
        &self,
        _myself: ActorRef<GitMsg>,
        repo: Arc<GitRepo>,
    ) -> Result<GitActorState, ActorProcessingErr> {
        let limit = repo.config().parallel_ops;
        Ok(GitActorState {
            repo,
            queue: queue::Queue::new(limit),
            in_flight: BTreeMap::new(),
            next_id: 0,
            ops_done: 0,
            by_op: Default::default(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<GitMsg>,
        msg: GitMsg,
        state: &mut GitActorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            GitMsg::Op(op, priority) => {
                let lane = op.desc.lane.clone();
                state.queue.push(priority, lane, op);
                state.start_ready(&myself);
            }
            GitMsg::Status(reply) => {
                let _ = reply.send(state.status());
            }
            GitMsg::OpDone(id, name, took) => {
                if let Some(done) = state.in_flight.remove(&id) {
                    state.queue.done(&done.lane);
                }
                state.ops_done += 1;
                let stats = state.by_op.entry(name.to_string()).or_default();
                stats.count += 1;
                stats.busy_ms += took.as_secs_f64() * 1000.0;
                state.start_ready(&myself);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<GitMsg>,
        state: &mut GitActorState,
    ) -> Result<(), ActorProcessingErr> {
        for op in state.queue.drain() {
            op.job.fail(GitError::Stopped {
                op: op.desc.name.to_string(),
            });
        }
        for (_, r) in std::mem::take(&mut state.in_flight) {
            tracing::info!(op = %r.label, "git actor stopping; waiting for the op in flight");
            if tokio::time::timeout(r.budget + Duration::from_secs(5), r.task)
                .await
                .is_err()
            {
                tracing::error!(op = %r.label, "git op in flight did not finish within its budget");
            }
        }
        Ok(())
    }
}
