//! [`GitHandle`]: the cloneable async front door of the GitActor. Each op is one method: an
//! [`OpDesc`] and a closure over [`GitRepo`].

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use tokio::task::JoinHandle;

use super::job::{GitOp, Lane, OpDesc, Priority, TypedJob};
use super::{GitActor, GitMsg};
use crate::types::*;
use crate::{GitError, GitRepo, RemoteStart};

/// Cloneable front door to the GitActor: async methods, no ractor plumbing for callers.
#[derive(Clone)]
pub struct GitHandle {
    actor: ActorRef<GitMsg>,
    rpc_timeout: Duration,
    priority: Option<Priority>,
    /// The expected tips of the shared branches (see [`GitHandle::expected_tips`]).
    tips: Arc<std::sync::Mutex<std::collections::BTreeMap<String, String>>>,
    /// `<workspace>/worktrees`: where agents' repositories are (their ops' lanes).
    agents_root: PathBuf,
}

impl GitHandle {
    /// Spawns an unnamed GitActor (names are process-global; several orchestrators may share
    /// a process). Runs no git yet: call [`GitHandle::setup`] first.
    pub async fn spawn(cfg: GitConfig) -> Result<(GitHandle, JoinHandle<()>), GitError> {
        // Calls wait for queued ops too; this is a safety net, not a deadline.
        let rpc_timeout = (cfg.op_timeout + cfg.verify_timeout) * 4;
        let agents_root = cfg.workspace.join("worktrees");
        let repo = Arc::new(GitRepo::new(cfg)?);
        let tips = repo.tips_handle();
        let (actor, join) = Actor::spawn(None, GitActor, repo)
            .await
            .map_err(|e| GitError::Actor(format!("spawn: {e}")))?;
        Ok((
            GitHandle {
                actor,
                rpc_timeout,
                priority: None,
                tips,
                agents_root,
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

    /// The lane of ops on agent `worker_id`'s repository.
    fn agent_lane(&self, worker_id: &str) -> Lane {
        Lane::Agent(
            self.agents_root
                .join(crate::sanitize::single_component(worker_id)),
        )
    }

    /// The lane of ops on these branches (`refs/heads/` or not: one name per branch).
    fn branch_lane<'a>(names: impl IntoIterator<Item = &'a str>) -> Lane {
        let mut names: Vec<String> = names
            .into_iter()
            .map(|n| n.strip_prefix("refs/heads/").unwrap_or(n).to_string())
            .collect();
        names.sort();
        names.dedup();
        Lane::Branches(names)
    }

    /// Queues `f` as one op described by `desc` and waits for its result.
    async fn call<T, F, Fut>(&self, desc: OpDesc, f: F) -> Result<T, GitError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<GitRepo>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, GitError>> + Send + 'static,
    {
        let name = desc.name;
        let priority = self.priority.unwrap_or(desc.priority);
        let res = self
            .actor
            .call(
                |reply| {
                    let job = Box::new(TypedJob { reply, f });
                    GitMsg::Op(GitOp { desc, job }, priority)
                },
                Some(self.rpc_timeout),
            )
            .await;
        match res {
            Ok(CallResult::Success(r)) => r,
            Ok(CallResult::Timeout) => Err(GitError::OpTimeout {
                op: name.to_string(),
                timeout: self.rpc_timeout,
            }),
            Ok(CallResult::SenderError) | Err(_) => Err(GitError::Stopped {
                op: name.to_string(),
            }),
        }
    }

    pub async fn setup(&self) -> Result<RepoInfo, GitError> {
        self.call(OpDesc::low("setup").lane(Lane::Exclusive), |r| async move {
            r.setup().await
        })
        .await
    }

    pub async fn ensure_team_branch(
        &self,
        team: &str,
        from: Option<&str>,
    ) -> Result<String, GitError> {
        let (team, from) = (team.to_string(), from.map(str::to_string));
        let desc = OpDesc::low("ensure_team_branch")
            .on(&team)
            .from(from.as_deref().unwrap_or_default());
        self.call(desc, move |r| async move {
            r.ensure_team_branch(&team, from.as_deref()).await
        })
        .await
    }

    pub async fn create_worktree(
        &self,
        team: &str,
        worker_id: &str,
        from: &str,
    ) -> Result<WorktreeInfo, GitError> {
        let (team, id, from) = (team.to_string(), worker_id.to_string(), from.to_string());
        let desc = OpDesc::high("create_worktree")
            .on(&id)
            .from(&from)
            .lane(self.agent_lane(&id));
        self.call(desc, move |r| async move {
            r.create_worktree(&team, &id, &from).await
        })
        .await
    }

    pub async fn commit_all(
        &self,
        worktree: impl Into<PathBuf>,
        message: &str,
    ) -> Result<Option<String>, GitError> {
        let (worktree, message) = (worktree.into(), message.to_string());
        let desc = OpDesc::normal("commit_all")
            .on(worktree.display())
            .lane(Lane::Agent(worktree.clone()));
        self.call(desc, move |r| async move {
            r.commit_all(&worktree, &message).await
        })
        .await
    }

    pub async fn snapshot(
        &self,
        worktree: impl Into<PathBuf>,
        worker_id: &str,
    ) -> Result<Option<String>, GitError> {
        let (worktree, id) = (worktree.into(), worker_id.to_string());
        let desc = OpDesc::low("snapshot")
            .on(worktree.display())
            .lane(Lane::Agent(worktree.clone()));
        self.call(desc, move |r| async move {
            r.snapshot(&worktree, &id, false).await
        })
        .await
    }

    pub async fn remove_worktree(
        &self,
        worker_id: &str,
        delete_branch: bool,
    ) -> Result<RemoveOutcome, GitError> {
        let id = worker_id.to_string();
        let desc = OpDesc::low("remove_worktree")
            .on(&id)
            .lane(self.agent_lane(&id));
        self.call(desc, move |r| async move {
            r.remove_worktree(&id, delete_branch).await
        })
        .await
    }

    pub async fn sync_worktree(
        &self,
        worktree: impl Into<PathBuf>,
        onto: &str,
    ) -> Result<SyncOutcome, GitError> {
        self.switch_worktree(worktree, onto, None).await
    }

    /// See [`GitRepo::switch_worktree`].
    pub async fn switch_worktree(
        &self,
        worktree: impl Into<PathBuf>,
        to: &str,
        kept_in: Option<&str>,
    ) -> Result<SyncOutcome, GitError> {
        let (worktree, to, kept_in) =
            (worktree.into(), to.to_string(), kept_in.map(str::to_string));
        let desc = OpDesc::high("sync_worktree")
            .on(worktree.display())
            .from(&to)
            .lane(Lane::Agent(worktree.clone()));
        self.call(desc, move |r| async move {
            r.switch_worktree(&worktree, &to, kept_in.as_deref()).await
        })
        .await
    }

    /// [`GitRepo::remote_start`] then [`GitRepo::create_bundle`] of its commits (HEAD, and
    /// MERGE_HEAD during a merge) relative to `basis`, in one op: where a turn moving to
    /// another host starts, and the bundle that brings it there (`None`: nothing to send).
    pub async fn bundle_start(
        &self,
        worktree: impl Into<PathBuf>,
        basis: Vec<String>,
        out: impl Into<PathBuf>,
    ) -> Result<(RemoteStart, Option<u64>), GitError> {
        let (worktree, out) = (worktree.into(), out.into());
        let desc = OpDesc::high("bundle_start")
            .on(worktree.display())
            .lane(Lane::Agent(worktree.clone()));
        self.call(desc, move |r| async move {
            let start = r.remote_start(&worktree).await?;
            let tips: Vec<String> = std::iter::once(start.head.clone())
                .chain(start.merging.clone())
                .collect();
            let bundle = r.create_bundle(&tips, &basis, &out).await?;
            Ok((start, bundle))
        })
        .await
    }

    /// See [`GitRepo::create_bundle`]; `worktree` is the agent repository the bundle is for
    /// (its lane).
    pub async fn create_bundle(
        &self,
        worktree: impl Into<PathBuf>,
        tips: Vec<String>,
        basis: Vec<String>,
        out: impl Into<PathBuf>,
    ) -> Result<Option<u64>, GitError> {
        let (worktree, out) = (worktree.into(), out.into());
        let desc = OpDesc::high("create_bundle")
            .on(worktree.display())
            .lane(Lane::Agent(worktree));
        self.call(desc, move |r| async move {
            r.create_bundle(&tips, &basis, &out).await
        })
        .await
    }

    /// A bundle from another host applied to the agent repository at `worktree`: `commit`
    /// fetched into `into` ([`GitRepo::fetch_bundle`]) when `bundle` is a file (else the
    /// commit is in cco's clone already), then the repository put there
    /// ([`GitRepo::adopt_remote_result`]); one op.
    pub async fn adopt_bundle(
        &self,
        worktree: impl Into<PathBuf>,
        bundle: impl Into<PathBuf>,
        commit: &str,
        into: &str,
    ) -> Result<(), GitError> {
        let (worktree, bundle) = (worktree.into(), bundle.into());
        let (commit, into) = (commit.to_string(), into.to_string());
        let desc = OpDesc::high("adopt_bundle")
            .on(worktree.display())
            .from(&commit)
            .lane(Lane::Agent(worktree.clone()));
        self.call(desc, move |r| async move {
            // No bundle: the commit is here already.
            if bundle.is_file() {
                r.fetch_bundle(&bundle, &commit, &into).await?;
            }
            r.adopt_remote_result(&worktree, &commit).await
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
        let desc = OpDesc::normal("capture_task")
            .on(&task_ref)
            .from(worktree.display())
            .lane(Lane::Agent(worktree.clone()));
        self.call(desc, move |r| async move {
            r.capture_task(&worktree, &message, &task_ref, &target)
                .await
        })
        .await
    }

    pub async fn merge(&self, req: MergeRequest) -> Result<MergeOutcome, GitError> {
        // On its target's lane and its source's (a team branch merged into the base waits
        // for a merge into that team branch in flight): merges into other branches run beside.
        let desc = OpDesc::low("merge")
            .on(&req.target)
            .from(&req.source)
            .verifying()
            .lane(Self::branch_lane([
                req.target.as_str(),
                req.source.as_str(),
            ]));
        self.call(desc, move |r| async move { r.merge(&req).await })
            .await
    }

    pub async fn merge_into_worktree(
        &self,
        worktree: impl Into<PathBuf>,
        from: &str,
    ) -> Result<WorktreeMerge, GitError> {
        let (worktree, from) = (worktree.into(), from.to_string());
        let desc = OpDesc::high("merge_into_worktree")
            .on(worktree.display())
            .from(&from)
            .lane(Lane::Agent(worktree.clone()));
        self.call(desc, move |r| async move {
            r.merge_into_worktree(&worktree, &from).await
        })
        .await
    }

    pub async fn conclude_worktree_merge(
        &self,
        worktree: impl Into<PathBuf>,
    ) -> Result<String, GitError> {
        let worktree = worktree.into();
        let desc = OpDesc::high("conclude_worktree_merge")
            .on(worktree.display())
            .lane(Lane::Agent(worktree.clone()));
        self.call(desc, move |r| async move {
            r.conclude_worktree_merge(&worktree).await
        })
        .await
    }

    pub async fn diff_summary(&self, base: &str, head: &str) -> Result<DiffSummary, GitError> {
        let (base, head) = (base.to_string(), head.to_string());
        let desc = OpDesc::low("diff_summary")
            .on(&base)
            .from(&head)
            .lane(Lane::Read);
        self.call(
            desc,
            move |r| async move { r.diff_summary(&base, &head).await },
        )
        .await
    }

    /// See [`GitRepo::resolution_diff`]: the conflict resolution `head` ends with, against
    /// each parent of its merge, for a review.
    pub async fn resolution_diff(
        &self,
        target: &str,
        head: &str,
    ) -> Result<Option<ResolutionDiff>, GitError> {
        let (target, head) = (target.to_string(), head.to_string());
        let desc = OpDesc::low("resolution_diff")
            .on(&target)
            .from(&head)
            .lane(Lane::Read);
        self.call(desc, move |r| async move {
            r.resolution_diff(&target, &head).await
        })
        .await
    }

    /// See [`GitRepo::merged_by`]. Runs on `target`'s lane: after a merge into it that is in
    /// flight.
    pub async fn merged_by(&self, target: &str, source: &str) -> Result<Option<String>, GitError> {
        let (target, source) = (target.to_string(), source.to_string());
        let desc = OpDesc::normal("merged_by")
            .on(&target)
            .from(&source)
            .lane(Self::branch_lane([target.as_str()]));
        self.call(
            desc,
            move |r| async move { r.merged_by(&target, &source).await },
        )
        .await
    }

    pub async fn head(&self, branch: &str) -> Result<String, GitError> {
        let branch = branch.to_string();
        let desc = OpDesc::low("head")
            .on(&branch)
            .lane(Self::branch_lane([branch.as_str()]));
        self.call(desc, move |r| async move { r.head(&branch).await })
            .await
    }

    pub async fn branch_exists(&self, branch: &str) -> Result<bool, GitError> {
        let branch = branch.to_string();
        let desc = OpDesc::low("branch_exists")
            .on(&branch)
            .lane(Self::branch_lane([branch.as_str()]));
        self.call(desc, move |r| async move { r.branch_exists(&branch).await })
            .await
    }

    pub async fn log_graph(&self, branch: &str, max: usize) -> Result<String, GitError> {
        let branch = branch.to_string();
        let desc = OpDesc::low("log_graph")
            .on(&branch)
            .lane(Self::branch_lane([branch.as_str()]));
        self.call(
            desc,
            move |r| async move { r.log_graph(&branch, max).await },
        )
        .await
    }

    pub async fn fetch(&self, branch: &str) -> Result<String, GitError> {
        let branch = branch.to_string();
        let desc = OpDesc::low("fetch").on(&branch);
        self.call(desc, move |r| async move { r.fetch(&branch).await })
            .await
    }

    /// The commit cco last wrote to each shared branch (base, run, team branches), read
    /// without a round trip to the actor: for the journal to persist. See
    /// [`GitRepo::expected_tips`].
    pub fn expected_tips(&self) -> std::collections::BTreeMap<String, String> {
        self.tips.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Restores the expected tips a journal kept (before the first merge of a resumed run).
    pub async fn restore_expected_tips(
        &self,
        tips: std::collections::BTreeMap<String, String>,
    ) -> Result<(), GitError> {
        let desc = OpDesc::high("restore_expected_tips").lane(Lane::Exclusive);
        self.call(desc, move |r| async move {
            r.restore_expected_tips(tips);
            Ok(())
        })
        .await
    }

    /// See [`GitRepo::adopt_unrecorded_merges`] (a resumed run, after
    /// [`GitHandle::restore_expected_tips`]).
    pub async fn adopt_unrecorded_merges(
        &self,
        branch: &str,
        sources: Vec<String>,
    ) -> Result<bool, GitError> {
        let branch = branch.to_string();
        let desc = OpDesc::high("adopt_unrecorded_merges").on(&branch);
        self.call(desc, move |r| async move {
            r.adopt_unrecorded_merges(&branch, &sources).await
        })
        .await
    }

    /// See [`GitRepo::check_commits`]: the content checks (paths, symlinks, submodules,
    /// conflict markers, secrets) of what `head` adds over `base`.
    pub async fn check_commits(&self, base: &str, head: &str) -> Result<(), GitError> {
        let (base, head) = (base.to_string(), head.to_string());
        let desc = OpDesc::normal("check_commits").on(&base).from(&head);
        self.call(desc, move |r| async move {
            let base = r.head(&base).await?;
            let head = r.head(&head).await?;
            r.check_commits(&base, &head).await
        })
        .await
    }

    /// See [`GitRepo::fetch_task_result`].
    pub async fn fetch_task_result(
        &self,
        worktree: impl Into<PathBuf>,
        commit: &str,
        task_ref: &str,
    ) -> Result<(), GitError> {
        let (worktree, commit, task_ref) =
            (worktree.into(), commit.to_string(), task_ref.to_string());
        let desc = OpDesc::normal("fetch_task_result")
            .on(&task_ref)
            .from(worktree.display())
            .lane(Lane::Agent(worktree.clone()));
        self.call(desc, move |r| async move {
            r.fetch_task_result(&worktree, &commit, &task_ref).await
        })
        .await
    }

    /// See [`GitRepo::remove_stale_locks`]: call once the run's lock is held, before any
    /// agent runs.
    pub async fn remove_stale_locks(&self) -> Result<Vec<PathBuf>, GitError> {
        let desc = OpDesc::high("remove_stale_locks").lane(Lane::Exclusive);
        self.call(desc, |r| async move { Ok(r.remove_stale_locks()) })
            .await
    }

    pub async fn push(&self, branch: &str) -> Result<PushStatus, GitError> {
        let branch = branch.to_string();
        let desc = OpDesc::low("push").on(&branch);
        self.call(desc, move |r| async move { r.push(&branch).await })
            .await
    }
}
