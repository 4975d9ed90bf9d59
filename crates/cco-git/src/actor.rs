//! The singleton GitActor: a queue of git ops, one in flight at a time, served by
//! [`Priority`]: ops a worker waits on before its next turn first, then captures of finished
//! turns, then merges, diffs and everything else. The in-flight op
//! runs in a spawned task that messages the actor when done, so `Status` is answered while
//! an op runs. On stop the in-flight op is awaited (bounded by its budget); queued ops are
//! answered with [`GitError::Stopped`].

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::types::*;
use crate::{GitError, GitRepo};

type Reply<T> = RpcReplyPort<Result<T, GitError>>;

/// One queued git operation; each carries the port its result is sent to.
pub enum GitOp {
    Setup {
        reply: Reply<RepoInfo>,
    },
    EnsureTeamBranch {
        team: String,
        from: Option<String>,
        reply: Reply<String>,
    },
    CreateWorktree {
        team: String,
        worker_id: String,
        from: String,
        reply: Reply<WorktreeInfo>,
    },
    CommitAll {
        worktree: PathBuf,
        message: String,
        reply: Reply<Option<String>>,
    },
    Snapshot {
        worktree: PathBuf,
        worker_id: String,
        reply: Reply<Option<String>>,
    },
    RemoveWorktree {
        worker_id: String,
        delete_branch: bool,
        reply: Reply<RemoveOutcome>,
    },
    SyncWorktree {
        worktree: PathBuf,
        onto: String,
        kept_in: Option<String>,
        reply: Reply<SyncOutcome>,
    },
    CaptureTask {
        worktree: PathBuf,
        message: String,
        task_ref: String,
        target: String,
        reply: Reply<CaptureOutcome>,
    },
    Merge {
        req: MergeRequest,
        reply: Reply<MergeOutcome>,
    },
    MergeIntoWorktree {
        worktree: PathBuf,
        from: String,
        reply: Reply<WorktreeMerge>,
    },
    ConcludeWorktreeMerge {
        worktree: PathBuf,
        reply: Reply<String>,
    },
    DiffSummary {
        base: String,
        head: String,
        reply: Reply<DiffSummary>,
    },
    Head {
        branch: String,
        reply: Reply<String>,
    },
    BranchExists {
        branch: String,
        reply: Reply<bool>,
    },
    LogGraph {
        branch: String,
        max: usize,
        reply: Reply<String>,
    },
    Fetch {
        branch: String,
        reply: Reply<String>,
    },
    Push {
        branch: String,
        reply: Reply<PushStatus>,
    },
}

/// Order in which queued ops run (FIFO within one priority).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    High,
    Normal,
    Low,
}

/// Messages of the [`GitActor`]. Callers normally use [`GitHandle`] instead.
pub enum GitMsg {
    Op(GitOp, Priority),
    Status(RpcReplyPort<GitStatus>),
    /// Internal: the in-flight op finished after running this long.
    OpDone(&'static str, Duration),
}

fn wt(p: &std::path::Path) -> String {
    p.display().to_string()
}

impl GitOp {
    /// `(op, target, source)` for status and tracing.
    fn describe(&self) -> (&'static str, String, String) {
        use GitOp::*;
        match self {
            Setup { .. } => ("setup", String::new(), String::new()),
            EnsureTeamBranch { team, from, .. } => (
                "ensure_team_branch",
                team.clone(),
                from.clone().unwrap_or_default(),
            ),
            CreateWorktree {
                worker_id, from, ..
            } => ("create_worktree", worker_id.clone(), from.clone()),
            CommitAll { worktree, .. } => ("commit_all", wt(worktree), String::new()),
            Snapshot { worktree, .. } => ("snapshot", wt(worktree), String::new()),
            RemoveWorktree { worker_id, .. } => {
                ("remove_worktree", worker_id.clone(), String::new())
            }
            SyncWorktree { worktree, onto, .. } => ("sync_worktree", wt(worktree), onto.clone()),
            CaptureTask {
                worktree, task_ref, ..
            } => ("capture_task", task_ref.clone(), wt(worktree)),
            Merge { req, .. } => ("merge", req.target.clone(), req.source.clone()),
            MergeIntoWorktree { worktree, from, .. } => {
                ("merge_into_worktree", wt(worktree), from.clone())
            }
            ConcludeWorktreeMerge { worktree, .. } => {
                ("conclude_worktree_merge", wt(worktree), String::new())
            }
            DiffSummary { base, head, .. } => ("diff_summary", base.clone(), head.clone()),
            Head { branch, .. } => ("head", branch.clone(), String::new()),
            BranchExists { branch, .. } => ("branch_exists", branch.clone(), String::new()),
            LogGraph { branch, .. } => ("log_graph", branch.clone(), String::new()),
            Fetch { branch, .. } => ("fetch", branch.clone(), String::new()),
            Push { branch, .. } => ("push", branch.clone(), String::new()),
        }
    }

    /// The priority an op gets unless the caller says otherwise
    /// ([`GitHandle::with_priority`]): ops an agent waits on before its next claude turn are
    /// [`Priority::High`], captures and commits [`Priority::Normal`], the rest
    /// [`Priority::Low`]. At most one High or Normal op per agent is queued at a time, so the
    /// ops behind them cannot starve.
    pub fn default_priority(&self) -> Priority {
        use GitOp::*;
        match self {
            CreateWorktree { .. }
            | SyncWorktree { .. }
            | MergeIntoWorktree { .. }
            | ConcludeWorktreeMerge { .. } => Priority::High,
            CommitAll { .. } | CaptureTask { .. } => Priority::Normal,
            _ => Priority::Low,
        }
    }

    fn budget(&self, cfg: &GitConfig) -> Duration {
        match self {
            GitOp::Merge { .. } => cfg.op_timeout + cfg.verify_timeout,
            _ => cfg.op_timeout,
        }
    }

    /// Answers the op with an error without running it.
    fn fail(self, err: impl Fn() -> GitError) {
        use GitOp::*;
        match self {
            Setup { reply } => drop(reply.send(Err(err()))),
            EnsureTeamBranch { reply, .. } => drop(reply.send(Err(err()))),
            CreateWorktree { reply, .. } => drop(reply.send(Err(err()))),
            CommitAll { reply, .. } => drop(reply.send(Err(err()))),
            Snapshot { reply, .. } => drop(reply.send(Err(err()))),
            RemoveWorktree { reply, .. } => drop(reply.send(Err(err()))),
            SyncWorktree { reply, .. } => drop(reply.send(Err(err()))),
            CaptureTask { reply, .. } => drop(reply.send(Err(err()))),
            Merge { reply, .. } => drop(reply.send(Err(err()))),
            MergeIntoWorktree { reply, .. } => drop(reply.send(Err(err()))),
            ConcludeWorktreeMerge { reply, .. } => drop(reply.send(Err(err()))),
            DiffSummary { reply, .. } => drop(reply.send(Err(err()))),
            Head { reply, .. } => drop(reply.send(Err(err()))),
            BranchExists { reply, .. } => drop(reply.send(Err(err()))),
            LogGraph { reply, .. } => drop(reply.send(Err(err()))),
            Fetch { reply, .. } => drop(reply.send(Err(err()))),
            Push { reply, .. } => drop(reply.send(Err(err()))),
        }
    }

    /// Runs the op within `budget` and sends the result. Dropping a timed-out op future kills
    /// its running git process group (see `cmd`).
    async fn run(self, repo: Arc<GitRepo>, budget: Duration, name: &'static str) {
        async fn bounded<T>(
            budget: Duration,
            name: &str,
            fut: impl std::future::Future<Output = Result<T, GitError>>,
        ) -> Result<T, GitError> {
            tokio::time::timeout(budget, fut).await.unwrap_or_else(|_| {
                Err(GitError::OpTimeout {
                    op: name.to_string(),
                    timeout: budget,
                })
            })
        }
        use GitOp::*;
        let r = &repo;
        macro_rules! go {
            ($reply:expr, $fut:expr) => {{
                let res = bounded(budget, name, $fut).await;
                if let Err(e) = &res {
                    tracing::warn!(error = %e, "git op failed");
                }
                let _ = $reply.send(res);
            }};
        }
        match self {
            Setup { reply } => go!(reply, r.setup()),
            EnsureTeamBranch { team, from, reply } => {
                go!(reply, r.ensure_team_branch(&team, from.as_deref()))
            }
            CreateWorktree {
                team,
                worker_id,
                from,
                reply,
            } => go!(reply, r.create_worktree(&team, &worker_id, &from)),
            CommitAll {
                worktree,
                message,
                reply,
            } => go!(reply, r.commit_all(&worktree, &message)),
            Snapshot {
                worktree,
                worker_id,
                reply,
            } => go!(reply, r.snapshot(&worktree, &worker_id, false)),
            RemoveWorktree {
                worker_id,
                delete_branch,
                reply,
            } => go!(reply, r.remove_worktree(&worker_id, delete_branch)),
            SyncWorktree {
                worktree,
                onto,
                kept_in,
                reply,
            } => go!(
                reply,
                r.switch_worktree(&worktree, &onto, kept_in.as_deref())
            ),
            CaptureTask {
                worktree,
                message,
                task_ref,
                target,
                reply,
            } => go!(
                reply,
                r.capture_task(&worktree, &message, &task_ref, &target)
            ),
            Merge { req, reply } => go!(reply, r.merge(&req)),
            MergeIntoWorktree {
                worktree,
                from,
                reply,
            } => go!(reply, r.merge_into_worktree(&worktree, &from)),
            ConcludeWorktreeMerge { worktree, reply } => {
                go!(reply, r.conclude_worktree_merge(&worktree))
            }
            DiffSummary { base, head, reply } => go!(reply, r.diff_summary(&base, &head)),
            Head { branch, reply } => go!(reply, r.head(&branch)),
            BranchExists { branch, reply } => go!(reply, r.branch_exists(&branch)),
            LogGraph { branch, max, reply } => go!(reply, r.log_graph(&branch, max)),
            Fetch { branch, reply } => go!(reply, r.fetch(&branch)),
            Push { branch, reply } => go!(reply, r.push(&branch)),
        }
    }
}

pub struct GitActor;

pub struct GitActorState {
    repo: Arc<GitRepo>,
    /// One FIFO per [`Priority`], highest first.
    queues: [VecDeque<GitOp>; 3],
    in_flight: Option<(String, Duration, JoinHandle<()>)>,
    ops_done: u64,
    by_op: std::collections::BTreeMap<String, OpStats>,
}

impl GitActorState {
    fn start_next(&mut self, myself: &ActorRef<GitMsg>) {
        if self.in_flight.is_some() {
            return;
        }
        let Some(op) = self.queues.iter_mut().find_map(VecDeque::pop_front) else {
            return;
        };
        let (name, target, source) = op.describe();
        let budget = op.budget(self.repo.config());
        let label = match (target.is_empty(), source.is_empty()) {
            (true, _) => name.to_string(),
            (false, true) => format!("{name} {target}"),
            (false, false) => format!("{name} {source} -> {target}"),
        };
        let span = tracing::info_span!("git_op", op = name, target = %target, source = %source);
        let repo = self.repo.clone();
        let me = myself.clone();
        let task = tokio::spawn(async move {
            let started = std::time::Instant::now();
            // Inner task: a panic in the op must still release the queue.
            let inner = tokio::spawn(op.run(repo, budget, name).instrument(span));
            if let Err(e) = inner.await {
                tracing::error!(op = name, error = %e, "git op task panicked");
            }
            let _ = me.send_message(GitMsg::OpDone(name, started.elapsed()));
        });
        self.in_flight = Some((label, budget, task));
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
        Ok(GitActorState {
            repo,
            queues: Default::default(),
            in_flight: None,
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
                state.queues[priority as usize].push_back(op);
                state.start_next(&myself);
            }
            GitMsg::Status(reply) => {
                let _ = reply.send(GitStatus {
                    in_flight: state.in_flight.as_ref().map(|(l, _, _)| l.clone()),
                    queued: state.queues.iter().map(VecDeque::len).sum(),
                    ops_done: state.ops_done,
                    by_op: state.by_op.clone(),
                });
            }
            GitMsg::OpDone(name, took) => {
                state.in_flight = None;
                state.ops_done += 1;
                let stats = state.by_op.entry(name.to_string()).or_default();
                stats.count += 1;
                stats.busy_ms += took.as_secs_f64() * 1000.0;
                state.start_next(&myself);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<GitMsg>,
        state: &mut GitActorState,
    ) -> Result<(), ActorProcessingErr> {
        let queued: Vec<GitOp> = state.queues.iter_mut().flat_map(|q| q.drain(..)).collect();
        for op in queued {
            let name = op.describe().0;
            op.fail(|| GitError::Stopped {
                op: name.to_string(),
            });
        }
        if let Some((label, budget, task)) = state.in_flight.take() {
            tracing::info!(op = %label, "git actor stopping; waiting for the in-flight op");
            if tokio::time::timeout(budget + Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::error!(op = %label, "in-flight git op did not finish within its budget");
            }
        }
        Ok(())
    }
}

/// Cloneable front door to the GitActor: async methods, no ractor plumbing for callers.
#[derive(Clone)]
pub struct GitHandle {
    actor: ActorRef<GitMsg>,
    rpc_timeout: Duration,
    priority: Option<Priority>,
}

impl GitHandle {
    /// Spawns an unnamed GitActor (names are process-global; several orchestrators may share
    /// a process). Runs no git yet: call [`GitHandle::setup`] first.
    pub async fn spawn(cfg: GitConfig) -> Result<(GitHandle, JoinHandle<()>), GitError> {
        // Calls wait for queued ops too; this is a safety net, not a deadline.
        let rpc_timeout = (cfg.op_timeout + cfg.verify_timeout) * 4;
        let repo = Arc::new(GitRepo::new(cfg)?);
        let (actor, join) = Actor::spawn(None, GitActor, repo)
            .await
            .map_err(|e| GitError::Actor(format!("spawn: {e}")))?;
        Ok((
            GitHandle {
                actor,
                rpc_timeout,
                priority: None,
            },
            join,
        ))
    }

    /// Overrides the RPC safety-net timeout (default 4 × (op_timeout + verify_timeout)).
    /// A handle whose ops all run at `priority` instead of their kind's default (e.g. a
    /// worktree prepared ahead of need, in the background: [`Priority::Low`]).
    pub fn with_priority(&self, priority: Priority) -> Self {
        GitHandle {
            priority: Some(priority),
            ..self.clone()
        }
    }

    pub fn with_rpc_timeout(mut self, t: Duration) -> Self {
        self.rpc_timeout = t;
        self
    }

    pub fn actor(&self) -> &ActorRef<GitMsg> {
        &self.actor
    }

    /// Stops the actor: the in-flight op finishes (bounded by its budget), queued ops fail.
    pub async fn stop(&self) -> Result<(), GitError> {
        self.actor
            .stop_and_wait(None, None)
            .await
            .map_err(|e| GitError::Actor(format!("stop: {e}")))
    }

    pub async fn status(&self) -> Result<GitStatus, GitError> {
        match self
            .actor
            .call(GitMsg::Status, Some(Duration::from_secs(10)))
            .await
        {
            Ok(CallResult::Success(s)) => Ok(s),
            Ok(CallResult::Timeout) => Err(GitError::Actor("status timed out".into())),
            Ok(CallResult::SenderError) => Err(GitError::Actor("status reply dropped".into())),
            Err(e) => Err(GitError::Actor(format!("actor unavailable: {e}"))),
        }
    }

    async fn op<T: Send + 'static>(
        &self,
        name: &str,
        build: impl FnOnce(Reply<T>) -> GitOp,
    ) -> Result<T, GitError> {
        match self
            .actor
            .call(
                |reply| {
                    let op = build(reply);
                    let priority = self.priority.unwrap_or_else(|| op.default_priority());
                    GitMsg::Op(op, priority)
                },
                Some(self.rpc_timeout),
            )
            .await
        {
            Ok(CallResult::Success(r)) => r,
            Ok(CallResult::Timeout) => Err(GitError::OpTimeout {
                op: name.to_string(),
                timeout: self.rpc_timeout,
            }),
            Ok(CallResult::SenderError) => Err(GitError::Stopped {
                op: name.to_string(),
            }),
            Err(_) => Err(GitError::Stopped {
                op: name.to_string(),
            }),
        }
    }

    pub async fn setup(&self) -> Result<RepoInfo, GitError> {
        self.op("setup", |reply| GitOp::Setup { reply }).await
    }
    pub async fn ensure_team_branch(
        &self,
        team: &str,
        from: Option<&str>,
    ) -> Result<String, GitError> {
        let (team, from) = (team.to_string(), from.map(str::to_string));
        self.op("ensure_team_branch", |reply| GitOp::EnsureTeamBranch {
            team,
            from,
            reply,
        })
        .await
    }
    pub async fn create_worktree(
        &self,
        team: &str,
        worker_id: &str,
        from: &str,
    ) -> Result<WorktreeInfo, GitError> {
        let (team, worker_id, from) = (team.to_string(), worker_id.to_string(), from.to_string());
        self.op("create_worktree", |reply| GitOp::CreateWorktree {
            team,
            worker_id,
            from,
            reply,
        })
        .await
    }
    pub async fn commit_all(
        &self,
        worktree: impl Into<PathBuf>,
        message: &str,
    ) -> Result<Option<String>, GitError> {
        let (worktree, message) = (worktree.into(), message.to_string());
        self.op("commit_all", |reply| GitOp::CommitAll {
            worktree,
            message,
            reply,
        })
        .await
    }
    pub async fn snapshot(
        &self,
        worktree: impl Into<PathBuf>,
        worker_id: &str,
    ) -> Result<Option<String>, GitError> {
        let (worktree, worker_id) = (worktree.into(), worker_id.to_string());
        self.op("snapshot", |reply| GitOp::Snapshot {
            worktree,
            worker_id,
            reply,
        })
        .await
    }
    pub async fn remove_worktree(
        &self,
        worker_id: &str,
        delete_branch: bool,
    ) -> Result<RemoveOutcome, GitError> {
        let worker_id = worker_id.to_string();
        self.op("remove_worktree", |reply| GitOp::RemoveWorktree {
            worker_id,
            delete_branch,
            reply,
        })
        .await
    }
    pub async fn sync_worktree(
        &self,
        worktree: impl Into<PathBuf>,
        onto: &str,
    ) -> Result<SyncOutcome, GitError> {
        let (worktree, onto) = (worktree.into(), onto.to_string());
        self.op("sync_worktree", |reply| GitOp::SyncWorktree {
            worktree,
            onto,
            kept_in: None,
            reply,
        })
        .await
    }
    /// See [`GitRepo::switch_worktree`].
    pub async fn switch_worktree(
        &self,
        worktree: impl Into<PathBuf>,
        to: &str,
        kept_in: Option<&str>,
    ) -> Result<SyncOutcome, GitError> {
        let (worktree, onto, kept_in) =
            (worktree.into(), to.to_string(), kept_in.map(str::to_string));
        self.op("sync_worktree", |reply| GitOp::SyncWorktree {
            worktree,
            onto,
            kept_in,
            reply,
        })
        .await
    }
    /// See [`GitRepo::capture_task`].
    pub async fn capture_task(
        &self,
        worktree: impl Into<PathBuf>,
        message: &str,
        task_ref: &str,
        target: &str,
    ) -> Result<CaptureOutcome, GitError> {
        let worktree = worktree.into();
        let (message, task_ref, target) = (
            message.to_string(),
            task_ref.to_string(),
            target.to_string(),
        );
        self.op("capture_task", |reply| GitOp::CaptureTask {
            worktree,
            message,
            task_ref,
            target,
            reply,
        })
        .await
    }
    pub async fn merge(&self, req: MergeRequest) -> Result<MergeOutcome, GitError> {
        self.op("merge", |reply| GitOp::Merge { req, reply }).await
    }
    pub async fn merge_into_worktree(
        &self,
        worktree: impl Into<PathBuf>,
        from: &str,
    ) -> Result<WorktreeMerge, GitError> {
        let (worktree, from) = (worktree.into(), from.to_string());
        self.op("merge_into_worktree", |reply| GitOp::MergeIntoWorktree {
            worktree,
            from,
            reply,
        })
        .await
    }
    pub async fn conclude_worktree_merge(
        &self,
        worktree: impl Into<PathBuf>,
    ) -> Result<String, GitError> {
        let worktree = worktree.into();
        self.op("conclude_worktree_merge", |reply| {
            GitOp::ConcludeWorktreeMerge { worktree, reply }
        })
        .await
    }
    pub async fn diff_summary(&self, base: &str, head: &str) -> Result<DiffSummary, GitError> {
        let (base, head) = (base.to_string(), head.to_string());
        self.op("diff_summary", |reply| GitOp::DiffSummary {
            base,
            head,
            reply,
        })
        .await
    }
    pub async fn head(&self, branch: &str) -> Result<String, GitError> {
        let branch = branch.to_string();
        self.op("head", |reply| GitOp::Head { branch, reply }).await
    }
    pub async fn branch_exists(&self, branch: &str) -> Result<bool, GitError> {
        let branch = branch.to_string();
        self.op("branch_exists", |reply| GitOp::BranchExists {
            branch,
            reply,
        })
        .await
    }
    pub async fn log_graph(&self, branch: &str, max: usize) -> Result<String, GitError> {
        let branch = branch.to_string();
        self.op("log_graph", |reply| GitOp::LogGraph { branch, max, reply })
            .await
    }
    pub async fn fetch(&self, branch: &str) -> Result<String, GitError> {
        let branch = branch.to_string();
        self.op("fetch", |reply| GitOp::Fetch { branch, reply })
            .await
    }
    pub async fn push(&self, branch: &str) -> Result<PushStatus, GitError> {
        let branch = branch.to_string();
        self.op("push", |reply| GitOp::Push { branch, reply }).await
    }
}
