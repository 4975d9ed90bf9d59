//! One op: its description ([`OpDesc`]: kind, what it works on, priority, lane, budget) and
//! the typed job that runs it, erased so every op shares one queue.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ractor::RpcReplyPort;

use crate::types::*;
use crate::{GitError, GitRepo};

pub(super) type Reply<T> = RpcReplyPort<Result<T, GitError>>;
type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Order in which queued ops run (FIFO within one priority).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    High,
    Normal,
    Low,
}

/// What an op may run beside (see `queue.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Runs alone: nothing else starts before it ran, nothing beside it (setup, ...).
    Exclusive,
    /// Writes or reads shared refs in general (creating team branches, the remote, the
    /// expected tips): one at a time, and never beside a [`Lane::Branches`] op.
    Shared,
    /// Writes or reads these shared branches only (a merge: its target, and its source when
    /// that is a branch; a read of one branch): one op at a time per branch, ops on other
    /// branches side by side (each target has its own integration worktree), never beside a
    /// [`Lane::Shared`] op.
    Branches(Vec<String>),
    /// Touches one agent's repository (and only its own refs in cco's clone: its task ref,
    /// snapshots, the copy of its branch): one at a time per agent, agents side by side.
    Agent(PathBuf),
    /// Reads only (a diff of a frozen ref): beside anything.
    Read,
}

/// What an op is, for the queue, status and tracing: its kind, what it works on, its default
/// [`Priority`], its [`Lane`] and whether its budget includes the verify command.
#[derive(Debug, Clone)]
pub struct OpDesc {
    pub name: &'static str,
    pub target: String,
    pub source: String,
    pub priority: Priority,
    pub lane: Lane,
    pub verifies: bool,
}

impl OpDesc {
    pub(super) fn new(name: &'static str, priority: Priority) -> Self {
        OpDesc {
            name,
            target: String::new(),
            source: String::new(),
            priority,
            lane: Lane::Shared,
            verifies: false,
        }
    }
    /// Runs in `lane` (default [`Lane::Shared`]).
    pub(super) fn lane(mut self, lane: Lane) -> Self {
        self.lane = lane;
        self
    }
    /// Ops an agent waits on before its next claude turn.
    pub(super) fn high(name: &'static str) -> Self {
        Self::new(name, Priority::High)
    }
    /// Captures and commits of finished turns.
    pub(super) fn normal(name: &'static str) -> Self {
        Self::new(name, Priority::Normal)
    }
    /// Merges, diffs and everything else.
    pub(super) fn low(name: &'static str) -> Self {
        Self::new(name, Priority::Low)
    }
    pub(super) fn on(mut self, target: impl std::fmt::Display) -> Self {
        self.target = target.to_string();
        self
    }
    pub(super) fn from(mut self, source: impl std::fmt::Display) -> Self {
        self.source = source.to_string();
        self
    }
    pub(super) fn verifying(mut self) -> Self {
        self.verifies = true;
        self
    }
    pub(super) fn label(&self) -> String {
        match (self.target.is_empty(), self.source.is_empty()) {
            (true, _) => self.name.to_string(),
            (false, true) => format!("{} {}", self.name, self.target),
            (false, false) => format!("{} {} -> {}", self.name, self.source, self.target),
        }
    }
    pub(super) fn budget(&self, cfg: &GitConfig) -> Duration {
        if self.verifies {
            cfg.op_timeout + cfg.verify_timeout
        } else {
            cfg.op_timeout
        }
    }
}

/// A typed op with the port its result goes to, erased so every op shares one queue.
pub(super) trait Job: Send {
    fn run(self: Box<Self>, repo: Arc<GitRepo>, budget: Duration, name: &'static str) -> BoxFuture;
    fn fail(self: Box<Self>, err: GitError);
}

pub(super) struct TypedJob<T, F> {
    pub reply: Reply<T>,
    pub f: F,
}

impl<T, F, Fut> Job for TypedJob<T, F>
where
    T: Send + 'static,
    F: FnOnce(Arc<GitRepo>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, GitError>> + Send + 'static,
{
    /// Runs the op within `budget` and sends the result. Dropping a timed-out op future kills
    /// its running git process group (see `cmd`).
    fn run(self: Box<Self>, repo: Arc<GitRepo>, budget: Duration, name: &'static str) -> BoxFuture {
        let TypedJob { reply, f } = *self;
        Box::pin(async move {
            let res = tokio::time::timeout(budget, f(repo))
                .await
                .unwrap_or_else(|_| {
                    Err(GitError::OpTimeout {
                        op: name.to_string(),
                        timeout: budget,
                    })
                });
            if let Err(e) = &res {
                tracing::warn!(error = %e, "git op failed");
            }
            let _ = reply.send(res);
        })
    }

    fn fail(self: Box<Self>, err: GitError) {
        let _ = self.reply.send(Err(err));
    }
}

/// One queued git operation: its description and the typed job that runs it.
pub struct GitOp {
    pub(super) desc: OpDesc,
    pub(super) job: Box<dyn Job>,
}

impl GitOp {
    pub fn desc(&self) -> &OpDesc {
        &self.desc
    }

    /// The priority an op gets unless the caller says otherwise
    /// ([`crate::GitHandle::with_priority`]): ops an agent waits on before its next claude turn are
    /// [`Priority::High`], captures and commits [`Priority::Normal`], the rest
    /// [`Priority::Low`]. At most one High or Normal op per agent is queued at a time, so the
    /// ops behind them cannot starve.
    pub fn default_priority(&self) -> Priority {
        self.desc.priority
    }
}
