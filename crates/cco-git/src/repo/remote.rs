//! Fetch from and push to the run's remote.

use super::*;
use crate::error::tail;
use crate::sanitize::branch_name_problem;
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
        let Some(remote) = self.info().and_then(|i| i.push_remote) else {
            return Ok(PushStatus::NotPushed);
        };
        if let Some(problem) = branch_name_problem(branch) {
            return Err(GitError::InvalidBranchName {
                name: branch.into(),
                reason: problem,
            });
        }
        let spec = format!("refs/heads/{branch}:refs/heads/{branch}");
        let out = self
            .git("push", &self.repo_dir)
            .args(["push", "-q", &remote, &spec])
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
        if let Some(problem) = branch_name_problem(branch) {
            return Err(GitError::InvalidBranchName {
                name: branch.into(),
                reason: problem,
            });
        }
        let spec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        self.git("fetch", &self.repo_dir)
            .args(["fetch", "-q", "origin", &spec])
            .run()
            .await?;
        self.resolve_required(&self.repo_dir, &format!("refs/remotes/origin/{branch}"))
            .await
    }
}
