//! Merges an agent resolves in its own checkout: started by cco, concluded (checked and
//! committed) by cco after the agent's turn.

use std::collections::BTreeSet;
use std::path::Path;

use super::*;
use crate::GitError;

fn count_markers(text: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with("<<<<<<<") || l.starts_with(">>>>>>>"))
        .count()
}

impl GitRepo {
    /// Merges `from` into the worktree's branch, leaving conflict markers for the agent.
    /// Called again while that merge is unresolved, it reports the same conflicts.
    pub async fn merge_into_worktree(
        &self,
        worktree: &Path,
        from: &str,
    ) -> Result<WorktreeMerge, GitError> {
        let entry = self.our_worktree(worktree).await?;
        if self.merging(worktree).await? {
            let files = self.unmerged_files(worktree).await?;
            return Ok(WorktreeMerge::Conflicted { files });
        }
        let dirty = !self
            .git("status", worktree)
            .args(["status", "--porcelain", "--untracked-files=no"])
            .run()
            .await?
            .is_empty();
        if dirty {
            return Err(GitError::invalid(
                "merge_into_worktree",
                format!(
                    "{} has uncommitted changes; commit_all first",
                    worktree.display()
                ),
            ));
        }
        let sha = self.resolve_branchish(from).await?;
        if self.is_ancestor(worktree, &sha, "HEAD").await? {
            return Ok(WorktreeMerge::UpToDate);
        }
        let msg = format!(
            "Merge {from} into {}",
            entry.branch.as_deref().unwrap_or("HEAD")
        );
        let args = ["merge", "-q", "--no-ff", "--no-edit", "-m", &msg, &sha];
        let out = self.git("merge", worktree).args(args).output().await?;
        if out.success() {
            return Ok(WorktreeMerge::Clean {
                commit: self.resolve_required(worktree, "HEAD").await?,
            });
        }
        let files = self.unmerged_files(worktree).await?;
        if files.is_empty() {
            let _ = self
                .git("merge", worktree)
                .args(["merge", "--abort"])
                .output()
                .await;
            return Err(out.error());
        }
        Ok(WorktreeMerge::Conflicted { files })
    }

    /// Commits the agent's conflict resolution. Refuses while any changed file still holds
    /// conflict markers (`<<<<<<<` / `>>>>>>>` lines not already in HEAD) or unmerged paths
    /// remain after staging. Unmerged files the agent edited clean but forgot to `git add`
    /// are staged here.
    pub async fn conclude_worktree_merge(&self, worktree: &Path) -> Result<String, GitError> {
        self.our_worktree(worktree).await?;
        let mut candidates: BTreeSet<String> =
            self.unmerged_files(worktree).await?.into_iter().collect();
        let changed = self
            .git("diff", worktree)
            .args(["diff", "--name-only", "-z", "HEAD"])
            .run()
            .await?;
        candidates.extend(nul_list(&changed));
        let mut with_markers = Vec::new();
        for f in &candidates {
            let Ok(text) = std::fs::read(worktree.join(f)) else {
                continue;
            };
            let n = count_markers(&String::from_utf8_lossy(&text));
            if n == 0 {
                continue;
            }
            let spec = format!("HEAD:{f}");
            let before = self
                .git("show", worktree)
                .args(["show", &spec])
                .output()
                .await?;
            let before = if before.success() {
                count_markers(&before.stdout)
            } else {
                0
            };
            if n > before {
                with_markers.push(f.clone());
            }
        }
        if !with_markers.is_empty() {
            return Err(GitError::UnresolvedConflicts {
                path: worktree.to_path_buf(),
                files: with_markers,
            });
        }
        let merging = self.merging(worktree).await?;
        self.stage_all(worktree, None).await?;
        let left = self.unmerged_files(worktree).await?;
        if !left.is_empty() {
            return Err(GitError::UnresolvedConflicts {
                path: worktree.to_path_buf(),
                files: left,
            });
        }
        let nothing = self
            .git("diff", worktree)
            .args(["diff", "--cached", "--quiet"])
            .output()
            .await?
            .success();
        if merging {
            self.git("commit", worktree)
                .args(["commit", "-q", "--no-edit"])
                .run()
                .await?;
        } else if !nothing {
            self.git("commit", worktree)
                .args(["commit", "-q", "-m", "cco: resolve merge conflicts"])
                .run()
                .await?;
        }
        self.resolve_required(worktree, "HEAD").await
    }
}
