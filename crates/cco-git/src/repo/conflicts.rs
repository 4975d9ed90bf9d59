//! Merges an agent resolves in its own repository: started by cco
//! ([`GitRepo::merge_into_worktree`], which remembers both parents), concluded by cco after
//! the agent's turn ([`GitRepo::conclude_worktree_merge`], which refuses a resolution that
//! adds conflict markers against both parents, whether the agent committed it or not).

use std::collections::BTreeSet;
use std::path::Path;

use super::*;
use crate::checks;
use crate::GitError;

fn count_markers(text: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with("<<<<<<<") || l.starts_with(">>>>>>>"))
        .count()
}

impl GitRepo {
    /// Merges `from` (a branch or commit-ish of cco's clone) into the agent's branch, leaving
    /// conflict markers for the agent. Called again while that merge is unresolved, it
    /// reports the same conflicts.
    pub async fn merge_into_worktree(
        &self,
        worktree: &Path,
        from: &str,
    ) -> Result<WorktreeMerge, GitError> {
        let agent = self.our_agent(worktree)?;
        if self.merging(&agent).await? {
            let files = self.unmerged_files(&agent).await?;
            return Ok(WorktreeMerge::Conflicted { files });
        }
        let dirty = !self
            .agent_git("status", &agent)
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
        let head = self.resolve_required(&agent, "HEAD").await?;
        if self.is_ancestor(&agent, &sha, &head).await? {
            return Ok(WorktreeMerge::UpToDate);
        }
        let msg = format!(
            "Merge {from} into {}",
            agent.branch.as_deref().unwrap_or("HEAD")
        );
        let args = [
            "merge",
            "-q",
            "--no-ff",
            "--no-edit",
            "--no-verify",
            "-m",
            &msg,
            &sha,
        ];
        let out = self.agent_git("merge", &agent).args(args).output().await?;
        if out.success() {
            return Ok(WorktreeMerge::Clean {
                commit: self.resolve_required(&agent, "HEAD").await?,
            });
        }
        let files = self.unmerged_files(&agent).await?;
        if files.is_empty() {
            let _ = self
                .agent_git("merge", &agent)
                .args(["merge", "--abort"])
                .output()
                .await;
            return Err(out.error());
        }
        if let Ok(mut r) = self.resolutions.lock() {
            r.insert(agent.path.clone(), (head, sha));
        }
        Ok(WorktreeMerge::Conflicted { files })
    }

    /// Commits the agent's conflict resolution (when the agent has not) and checks it.
    /// Refuses while any changed file still holds conflict markers (`<<<<<<<` / `>>>>>>>`
    /// lines not already in HEAD) or unmerged paths remain after staging; unmerged files the
    /// agent edited clean but forgot to `git add` are staged here. Then the resolution — HEAD
    /// against both parents of the merge cco started — must add no conflict marker that
    /// neither parent had: else [`GitError::ConflictMarkers`] names file and line (the
    /// committed resolution stays for the agent to fix on top).
    pub async fn conclude_worktree_merge(&self, worktree: &Path) -> Result<String, GitError> {
        let agent = self.our_agent(worktree)?;
        let mut candidates: BTreeSet<String> =
            self.unmerged_files(&agent).await?.into_iter().collect();
        let changed = self
            .agent_git("diff", &agent)
            .args(["diff", "--name-only", "-z", "--no-ext-diff", "HEAD"])
            .run()
            .await?;
        candidates.extend(nul_list(&changed));
        let mut with_markers = Vec::new();
        for f in &candidates {
            let Ok(text) = std::fs::read(agent.path.join(f)) else {
                continue;
            };
            let n = count_markers(&String::from_utf8_lossy(&text));
            if n == 0 {
                continue;
            }
            let spec = format!("HEAD:{f}");
            let before = self
                .agent_git("show", &agent)
                .args(["show", "--no-textconv", &spec])
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
        let merging = self.merging(&agent).await?;
        self.stage_all(&agent, None).await?;
        let left = self.unmerged_files(&agent).await?;
        if !left.is_empty() {
            return Err(GitError::UnresolvedConflicts {
                path: worktree.to_path_buf(),
                files: left,
            });
        }
        let nothing = self
            .agent_git("diff", &agent)
            .args(["diff", "--cached", "--quiet", "--no-ext-diff"])
            .output()
            .await?
            .success();
        if merging {
            self.agent_git("commit", &agent)
                .args(["commit", "-q", "--no-edit", "--no-verify"])
                .run()
                .await?;
        } else if !nothing {
            self.agent_git("commit", &agent)
                .args([
                    "commit",
                    "-q",
                    "--no-verify",
                    "-m",
                    "cco: resolve merge conflicts",
                ])
                .run()
                .await?;
        }
        let head = self.resolve_required(&agent, "HEAD").await?;
        let parents = self
            .resolutions
            .lock()
            .ok()
            .and_then(|r| r.get(&agent.path).cloned());
        let parents = match parents {
            Some(p) => Some(p),
            // cco restarted since it started the merge: the merge commit names them.
            None => self.merge_parents(&agent, &head).await?,
        };
        if let Some((ours, theirs)) = parents {
            let leftovers = self
                .resolution_markers(&agent, &ours, &theirs, &head)
                .await?;
            if !leftovers.is_empty() {
                return Err(GitError::ConflictMarkers {
                    path: worktree.to_path_buf(),
                    markers: leftovers,
                });
            }
        }
        if let Ok(mut r) = self.resolutions.lock() {
            r.remove(&agent.path);
        }
        Ok(head)
    }

    /// The first two parents of `commit` when it is a merge.
    async fn merge_parents(
        &self,
        agent: &AgentRepo,
        commit: &str,
    ) -> Result<Option<(String, String)>, GitError> {
        let out = self
            .agent_git("rev-list", agent)
            .args(["rev-list", "--parents", "-n1", commit])
            .run()
            .await?;
        let ids: Vec<&str> = out.split_whitespace().collect();
        Ok((ids.len() >= 3).then(|| (ids[1].to_string(), ids[2].to_string())))
    }

    /// Conflict markers `head` adds against both `ours` and `theirs`.
    async fn resolution_markers(
        &self,
        agent: &AgentRepo,
        ours: &str,
        theirs: &str,
        head: &str,
    ) -> Result<Vec<FileLine>, GitError> {
        let mut sides = Vec::new();
        for parent in [ours, theirs] {
            let out = self
                .agent_git("diff", agent)
                .args([
                    "diff",
                    "-U0",
                    "--no-color",
                    "--no-ext-diff",
                    "--no-textconv",
                    "--no-renames",
                    parent,
                    head,
                ])
                .run()
                .await?;
            sides.push(checks::parse_diff(&out));
        }
        Ok(checks::leftover_markers(&checks::in_both(
            &sides[0], &sides[1],
        )))
    }
}
