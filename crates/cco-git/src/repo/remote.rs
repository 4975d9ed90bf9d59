//! Fetch from and push to the run's remote.

use super::*;
use crate::error::tail;
use crate::sanitize::ref_name_problem;
use crate::GitError;

impl GitRepo {
    pub(super) async fn push_after_merge(&self, target: &str) -> Result<PushStatus, GitError> {
        let Some(info) = self.info() else {
            return Ok(PushStatus::NotPushed);
        };
        if !self.cfg.push || target != info.base_branch {
            return Ok(PushStatus::NotPushed);
        }
        self.push(target).await
    }

    /// Pushes `branch` to the run's push remote (same name there).
    pub async fn push(&self, branch: &str) -> Result<PushStatus, GitError> {
        if let Some(problem) = ref_name_problem(branch) {
            return Err(GitError::InvalidBranchName {
                name: branch.into(),
                reason: problem,
            });
        }
        // Only a branch cco wrote, only the commit cco wrote (pushed by id: nothing can
        // move the branch between the check and the push).
        let Some(expected) = self.expected_tips().get(branch).cloned() else {
            return Err(GitError::invalid(
                "push",
                format!("cco did not write {branch}; not pushed"),
            ));
        };
        let tip = self
            .resolve_required(&self.repo_dir, &format!("refs/heads/{branch}"))
            .await?;
        self.guard_shared(branch, &tip).await?;
        let Some(remote) = self.info().and_then(|i| i.push_remote) else {
            return Ok(PushStatus::NotPushed);
        };
        let spec = format!("{expected}:refs/heads/{branch}");
        let out = self
            .git("push", &self.repo_dir)
            .remote()
            .args(["push", "-q", "--no-verify", &remote, &spec])
            .output()
            .await?;
        if out.success() {
            Ok(PushStatus::Pushed { remote })
        } else {
            tracing::warn!(%remote, %branch, stderr = %tail(&out.stderr, 500), "push failed");
            Ok(PushStatus::Failed {
                remote,
                error: tail(&out.stderr, 1500),
            })
        }
    }

    /// Fetches `branch` from origin into `refs/remotes/origin/<branch>`; returns its tip.
    pub async fn fetch(&self, branch: &str) -> Result<String, GitError> {
        if let Some(problem) = ref_name_problem(branch) {
            return Err(GitError::InvalidBranchName {
                name: branch.into(),
                reason: problem,
            });
        }
        let spec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        self.git("fetch", &self.repo_dir)
            .remote()
            .args(["fetch", "-q", "origin", &spec])
            .run()
            .await?;
        self.resolve_required(&self.repo_dir, &format!("refs/remotes/origin/{branch}"))
            .await
    }
}
