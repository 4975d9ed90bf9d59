//! Agents' checkouts: created (or re-attached on resume), switched to a branch or task ref,
//! removed. Nothing holding work is reset or deleted without a snapshot first.

use std::path::Path;

use super::*;
use crate::error::tail;
use crate::names::*;
use crate::sanitize::branch_name_problem;
use crate::GitError;

impl GitRepo {
    /// Worktree `<workspace>/worktrees/<worker-id>` on `cco/<team>/<worker-id>` branched from
    /// `from`; reuses an existing one (resume). Env files are (re)copied with mode 0600.
    pub async fn create_worktree(
        &self,
        team: &str,
        worker_id: &str,
        from: &str,
    ) -> Result<WorktreeInfo, GitError> {
        let branch = worker_branch(team, worker_id);
        let path = self.worktree_path(worker_id);
        let mut at_start_point = false;
        let mut new_head = None;
        let reused = if path.exists() {
            let entry = self.our_worktree(&path).await?;
            if entry.branch.as_deref() != Some(branch.as_str()) {
                tracing::warn!(path = %path.display(), expected = %branch, actual = ?entry.branch, "reused worktree is on another branch");
            }
            true
        } else {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| GitError::io("worktree", parent, e))?;
            }
            let p = path.to_string_lossy().into_owned();
            // The worker's branch (if it exists) and the start point, in one process.
            let branch_ref = format!("refs/heads/{branch}");
            let from_local = branch_name_problem(from)
                .is_none()
                .then(|| format!("refs/heads/{from}"));
            let mut revs = vec![branch_ref];
            revs.extend(from_local);
            revs.push(from.to_string());
            let found = self.resolve_many(&self.repo_dir, &revs).await?;
            let args: Vec<String> = match &found[0] {
                Some(sha) => {
                    new_head = Some(sha.clone());
                    ["worktree", "add", "-q", &p, &branch]
                        .map(String::from)
                        .to_vec()
                }
                None => {
                    let sha = found[1..].iter().flatten().next().cloned().ok_or_else(|| {
                        GitError::NotFound {
                            what: format!("revision {from}"),
                        }
                    })?;
                    at_start_point = true;
                    new_head = Some(sha.clone());
                    ["worktree", "add", "-q", "-b", &branch, &p, &sha]
                        .map(String::from)
                        .to_vec()
                }
            };
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = self
                .git("worktree", &self.repo_dir)
                .args(&args)
                .output()
                .await?;
            if !out.success() {
                // A worktree deleted without `git worktree remove` is still registered:
                // prune the registrations of missing worktrees and try once more.
                self.git("worktree", &self.repo_dir)
                    .args(["worktree", "prune"])
                    .run()
                    .await?;
                self.git("worktree", &self.repo_dir)
                    .args(&args)
                    .run()
                    .await?;
            }
            false
        };
        self.write_excludes()?;
        self.copy_env_files(&path)?;
        if !self.cfg.clone.no_submodules && path.join(".gitmodules").exists() {
            let out = self
                .git("submodule", &path)
                .args(["submodule", "update", "--init", "--recursive"])
                .output()
                .await?;
            if !out.success() {
                tracing::warn!(path = %path.display(), stderr = %tail(&out.stderr, 500), "submodule update failed");
            }
        }
        let entry = self.our_worktree(&path).await?;
        let head = match new_head {
            Some(head) => head,
            None => self.resolve_required(&path, "HEAD").await?,
        };
        Ok(WorktreeInfo {
            path,
            branch: entry.branch.unwrap_or(branch),
            head,
            reused,
            at_start_point,
        })
    }

    /// Removes a worker's worktree (and optionally its branch) after snapshotting anything
    /// that would be lost: uncommitted changes, or — when the branch goes — commits not in
    /// the base branch.
    pub async fn remove_worktree(
        &self,
        worker_id: &str,
        delete_branch: bool,
    ) -> Result<RemoveOutcome, GitError> {
        let path = self.worktree_path(worker_id);
        self.git("worktree", &self.repo_dir)
            .args(["worktree", "prune"])
            .run()
            .await?;
        if !path.exists() {
            return Err(GitError::NotFound {
                what: format!("worktree {}", path.display()),
            });
        }
        let entry = self.our_worktree(&path).await?;
        let head = self.resolve_required(&path, "HEAD").await?;
        let unmerged_commits = match (delete_branch, self.info()) {
            (true, Some(info)) => {
                !self
                    .is_ancestor(
                        &self.repo_dir,
                        &head,
                        &format!("refs/heads/{}", info.base_branch),
                    )
                    .await?
            }
            (true, None) => true,
            _ => false,
        };
        let snapshot = self.snapshot(&path, worker_id, unmerged_commits).await?;
        let p = path.to_string_lossy().into_owned();
        self.git("worktree", &self.repo_dir)
            .args(["worktree", "remove", "--force", &p])
            .run()
            .await?;
        let mut branch_deleted = false;
        if delete_branch {
            if let Some(b) = entry.branch {
                self.git("branch", &self.repo_dir)
                    .args(["branch", "-D", "-q", &b])
                    .run()
                    .await?;
                branch_deleted = true;
            }
        }
        Ok(RemoveOutcome {
            snapshot,
            branch_deleted,
        })
    }

    /// After the worker's branch was merged: move it to the tip of `onto` for the next task,
    /// snapshotting first if the worktree holds anything not in `onto`.
    pub async fn sync_worktree(
        &self,
        worktree: &Path,
        onto: &str,
    ) -> Result<SyncOutcome, GitError> {
        self.switch_worktree(worktree, onto, None).await
    }

    /// Resets the worktree to `to` (a branch or any commit-ish, e.g. a [`task_ref`]). It is
    /// snapshotted first when it holds anything not in `to` nor in `kept_in`: uncommitted
    /// changes, a merge in progress, or a HEAD that neither contains. Already at `to` and
    /// clean: no change (two git processes).
    pub async fn switch_worktree(
        &self,
        worktree: &Path,
        to: &str,
        kept_in: Option<&str>,
    ) -> Result<SyncOutcome, GitError> {
        self.our_worktree(worktree).await?;
        // One process for the target, HEAD and MERGE_HEAD. Branches are shared by every
        // worktree; any other name of `to` is resolved in the clone, as before.
        let local = branch_name_problem(to)
            .is_none()
            .then(|| format!("refs/heads/{to}"));
        let mut revs = vec!["HEAD".to_string(), "MERGE_HEAD".to_string()];
        revs.extend(local.clone());
        let found = self.resolve_many(worktree, &revs).await?;
        let head = found[0].clone().ok_or_else(|| GitError::NotFound {
            what: "revision HEAD".into(),
        })?;
        let merging = found[1].is_some();
        let target = match found.get(2).cloned().flatten() {
            Some(t) => t,
            None => self.resolve_required(&self.repo_dir, to).await?,
        };
        let dirty = self.is_dirty(worktree).await?;
        if head == target && !merging && !dirty {
            return Ok(SyncOutcome {
                head: target,
                snapshot: None,
            });
        }
        let mut contained = head == target || self.is_ancestor(worktree, &head, &target).await?;
        if !contained {
            if let Some(kept) = kept_in {
                let kept = self.resolve_branchish(kept).await?;
                contained = self.is_ancestor(worktree, &head, &kept).await?;
            }
        }
        let worker_id = worktree
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "worker".into());
        let snapshot = if dirty || merging || !contained {
            self.snapshot(worktree, &worker_id, !contained).await?
        } else {
            None
        };
        if merging {
            self.git("merge", worktree)
                .args(["merge", "--abort"])
                .run()
                .await?;
        }
        self.git("reset", worktree)
            .args(["reset", "-q", "--hard", &target])
            .run()
            .await?;
        if dirty || merging {
            // Untracked leftovers are in the snapshot; ignored/excluded files (env files,
            // build caches) stay.
            self.git("clean", worktree)
                .args(["clean", "-fdq"])
                .run()
                .await?;
        }
        Ok(SyncOutcome {
            head: target,
            snapshot,
        })
    }
}
