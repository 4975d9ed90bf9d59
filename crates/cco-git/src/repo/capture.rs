//! Committing what an agent left uncommitted (secret files never), freezing a finished turn
//! in its task ref, and snapshots of a checkout's full state.

use std::path::Path;

use super::*;
use crate::names::*;
use crate::sanitize::{branch_name_problem, is_secret_path, single_component};
use crate::GitError;

fn timestamp() -> String {
    chrono::Utc::now().format("%Y%m%d-%H%M%S-%3f").to_string()
}

impl GitRepo {
    /// `git add -A` into the current index of `dir` (or `index` if given), then unstages every
    /// secret file the add (or an agent's `git add -f`) staged.
    pub(super) async fn stage_all(
        &self,
        dir: &Path,
        index: Option<&str>,
    ) -> Result<Vec<String>, GitError> {
        let envs: Vec<(&str, &str)> = index
            .map(|i| vec![("GIT_INDEX_FILE", i)])
            .unwrap_or_default();
        self.git("add", dir)
            .args(["add", "-A"])
            .envs(&envs)
            .run()
            .await?;
        let added = self
            .git("diff", dir)
            .args([
                "diff",
                "--cached",
                "--name-only",
                "--no-renames",
                "--diff-filter=A",
                "-z",
                "HEAD",
            ])
            .envs(&envs)
            .run()
            .await?;
        let secrets: Vec<String> = nul_list(&added)
            .into_iter()
            .filter(|p| is_secret_path(p, &self.env_rel))
            .collect();
        if !secrets.is_empty() {
            tracing::warn!(dir = %dir.display(), files = ?secrets, "unstaging secret files");
            let mut args = vec!["rm", "--cached", "-q", "--ignore-unmatch", "--"];
            args.extend(secrets.iter().map(String::as_str));
            self.git("rm", dir).args(&args).envs(&envs).run().await?;
        }
        Ok(secrets)
    }

    /// Commits everything the agent left uncommitted (secret files excluded). `None` when
    /// there was nothing to commit.
    pub async fn commit_all(
        &self,
        worktree: &Path,
        message: &str,
    ) -> Result<Option<String>, GitError> {
        let entry = self.our_worktree(worktree).await?;
        Ok(self.commit_worktree(worktree, &entry, message).await?.0)
    }

    /// [`GitRepo::commit_all`] of a checked worktree; also says whether the worktree was
    /// dirty (anything staged, changed or untracked, or a merge in progress).
    pub(super) async fn commit_worktree(
        &self,
        worktree: &Path,
        entry: &WorktreeEntry,
        message: &str,
    ) -> Result<(Option<String>, bool), GitError> {
        // Common case (agents commit their own work): nothing staged, changed or untracked
        // and no merge in progress — one `status` answers it. Anything else takes the full
        // path below.
        if let Some(git_dir) = &entry.git_dir {
            let status = self
                .git("status", worktree)
                .args([
                    "status",
                    "--porcelain",
                    "-z",
                    "--untracked-files=normal",
                    "--ignore-submodules=none",
                ])
                .run()
                .await?;
            if status.is_empty() && !git_dir.join("MERGE_HEAD").exists() {
                return Ok((None, false));
            }
        }
        // `add -A` would mark conflicted files resolved, markers and all.
        let unmerged = self.unmerged_files(worktree).await?;
        if !unmerged.is_empty() {
            return Err(GitError::UnresolvedConflicts {
                path: worktree.to_path_buf(),
                files: unmerged,
            });
        }
        self.stage_all(worktree, None).await?;
        let nothing = self
            .git("diff", worktree)
            .args(["diff", "--cached", "--quiet"])
            .output()
            .await?
            .success();
        if nothing && !self.merging(worktree).await? {
            return Ok((None, true));
        }
        let msg = if message.trim().is_empty() {
            "cco: commit work"
        } else {
            message
        };
        self.git("commit", worktree)
            .args(["commit", "-q", "-m", msg])
            .run()
            .await?;
        Ok((Some(self.resolve_required(worktree, "HEAD").await?), true))
    }

    /// Freezes a worker's finished turn and frees its worktree for the next task, in one op:
    /// commits what the agent left uncommitted (as [`GitRepo::commit_all`]), points `task_ref`
    /// (see [`task_ref`]) at the worktree's HEAD, then resets the worktree to the tip of
    /// `target` ("parks" it). The work stays reachable from `task_ref` for review and merge.
    ///
    /// A worktree whose HEAD is already in `target` (nothing done, or already parked: a
    /// capture repeated after a restart) leaves `task_ref` as it was. Unresolved conflicts are
    /// an error and leave the worktree untouched (use [`GitRepo::sync_worktree`], which
    /// snapshots).
    pub async fn capture_task(
        &self,
        worktree: &Path,
        message: &str,
        task_ref: &str,
        target: &str,
    ) -> Result<CaptureOutcome, GitError> {
        if !task_ref.starts_with("refs/cco/tasks/") || branch_name_problem(task_ref).is_some() {
            return Err(GitError::invalid(
                "capture_task",
                format!("not a task ref: {task_ref:?}"),
            ));
        }
        let entry = self.our_worktree(worktree).await?;
        let (committed, was_dirty) = self.commit_worktree(worktree, &entry, message).await?;
        // HEAD when it holds commits the target does not (in topological order the first
        // commit of `HEAD ^tip` is HEAD itself), nothing when the target contains it. The
        // target is named by its ref without resolving it first ([`direct_ref`]); a name
        // that is not one is resolved.
        let not_in = |tip: String| async move {
            let args = ["rev-list", "--topo-order", "-n1", "HEAD", "--not", &tip];
            let out = self.git("rev-list", worktree).args(args).output().await?;
            Ok::<_, GitError>(out.success().then(|| (tip.clone(), out.stdout)))
        };
        let found = match direct_ref(target) {
            Some(tip) => not_in(tip).await?,
            None => None,
        };
        let (tip, not_in_target) = match found {
            Some(found) => found,
            None => {
                let tip = self.resolve_required(&self.repo_dir, target).await?;
                let args = ["rev-list", "--topo-order", "-n1", "HEAD", "--not", &tip];
                let out = self.git("rev-list", worktree).args(args).run().await?;
                (tip, out)
            }
        };
        let new_head = Some(not_in_target.trim().to_string()).filter(|h| !h.is_empty());
        let new_work = new_head.is_some();
        let task_commit = match new_head {
            Some(head) => {
                self.git("update-ref", &self.repo_dir)
                    .args(["update-ref", "-m", "cco: capture task", task_ref, &head])
                    .run()
                    .await?;
                Some(head)
            }
            None => self.resolve(&self.repo_dir, task_ref).await?,
        };
        // Everything not in `target` is now in `task_ref` (or was already in `target`).
        self.git("reset", worktree)
            .args(["reset", "-q", "--hard", &tip])
            .run()
            .await?;
        if was_dirty {
            // Untracked files that were not committed (secret files): nothing else is left.
            self.git("clean", worktree)
                .args(["clean", "-fdq"])
                .run()
                .await?;
        }
        Ok(CaptureOutcome {
            committed,
            task_commit,
            moved: new_work,
        })
    }

    /// Records the worktree's full state (HEAD + tracked changes + untracked, non-excluded
    /// files) as `refs/cco/snapshots/<worker-id>/<timestamp>`. Without `force`, only when the
    /// worktree is dirty. The real index and working tree are not touched.
    pub async fn snapshot(
        &self,
        worktree: &Path,
        worker_id: &str,
        force: bool,
    ) -> Result<Option<String>, GitError> {
        let head = self.resolve_required(worktree, "HEAD").await?;
        let git_dir = self
            .git("rev-parse", worktree)
            .args(["rev-parse", "--absolute-git-dir"])
            .run()
            .await?
            .trim()
            .to_string();
        let index = format!("{git_dir}/cco-snapshot.index");
        let _ = std::fs::remove_file(&index);
        let env = [("GIT_INDEX_FILE", index.as_str())];
        let tree = async {
            self.git("read-tree", worktree)
                .args(["read-tree", "HEAD"])
                .envs(&env)
                .run()
                .await?;
            self.stage_all(worktree, Some(&index)).await?;
            Ok::<_, GitError>(
                self.git("write-tree", worktree)
                    .args(["write-tree"])
                    .envs(&env)
                    .run()
                    .await?
                    .trim()
                    .to_string(),
            )
        }
        .await;
        let _ = std::fs::remove_file(&index);
        let tree = tree?;
        let head_tree = self
            .git("rev-parse", worktree)
            .args(["rev-parse", "HEAD^{tree}"])
            .run()
            .await?
            .trim()
            .to_string();
        if tree == head_tree && !force {
            return Ok(None);
        }
        let id = single_component(worker_id);
        let ts = timestamp();
        let msg = format!("cco snapshot of {id} at {ts}");
        let commit = self
            .git("commit-tree", worktree)
            .args(["commit-tree", &tree, "-p", &head, "-m", &msg])
            .run()
            .await?
            .trim()
            .to_string();
        let mut name = format!("refs/cco/snapshots/{id}/{ts}");
        let mut n = 1;
        while self.resolve(&self.repo_dir, &name).await?.is_some() {
            name = format!("refs/cco/snapshots/{id}/{ts}-{n}");
            n += 1;
        }
        self.git("update-ref", &self.repo_dir)
            .args(["update-ref", &name, &commit])
            .run()
            .await?;
        tracing::info!(worktree = %worktree.display(), snapshot = %name, "worktree state snapshotted");
        Ok(Some(name))
    }
}
