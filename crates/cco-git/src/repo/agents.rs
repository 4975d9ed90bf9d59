//! Agents' repositories: one per agent (worker, and the leads' and Director's read-only
//! checkouts) at `<workspace>/worktrees/<agent-id>`. Each is its own repository (its own
//! `.git` directory, refs, hooks and config) that borrows objects from cco's clone through
//! `objects/info/alternates` and holds no ref cco integrates into: whatever an agent does to
//! refs, hooks or config there stays there. Work comes back only when cco fetches it
//! ([`GitRepo::fetch_task_result`]).
//!
//! Nothing holding work is reset or deleted without a snapshot first.

use std::path::{Path, PathBuf};

use super::*;
use crate::error::tail;
use crate::names::*;
use crate::sanitize::ref_name_problem;
use crate::GitError;

/// An agent's repository cco has checked: `path` is a directory below
/// `<workspace>/worktrees/` whose `.git` is a real directory (not a link, not a `gitdir:`
/// file pointing elsewhere).
#[derive(Debug, Clone)]
pub(crate) struct AgentRepo {
    /// Canonical path of the work tree.
    pub path: PathBuf,
    /// `<path>/.git`.
    pub git_dir: PathBuf,
    /// The branch its `HEAD` names (`None`: detached or unreadable).
    pub branch: Option<String>,
}

/// Undoes what an agent can plant in its git dir to make cco's own git write into another
/// repository (cco's clone): git follows both, whatever `--git-dir` and `GIT_COMMON_DIR` say.
/// - A `commondir` file: git takes refs, objects and config from the repository it names
///   (git's ref store reads the file itself). An agent's repository is never a linked
///   worktree, so the file has no legitimate use there: it is removed.
/// - A symbolic link to a directory in the `refs` or `logs` tree (`.git/refs` pointing to the
///   clone's refs, say): git creates a ref's lock file in the linked directory and renames it
///   there. Each such link is replaced by an empty directory (the refs the agent kept behind
///   it are not its repository's). A link in place of a ref file is harmless: git replaces
///   it when it writes the ref.
///
/// Either way cco's own `git commit` or `git reset` of a capture would move the clone's
/// branches (which the integrity check would put back, but cco's own git would have moved
/// them).
fn defuse_git_dir(git_dir: &Path) -> Result<(), GitError> {
    let planted = git_dir.join("commondir");
    if let Ok(meta) = std::fs::symlink_metadata(&planted) {
        let target = std::fs::read_to_string(&planted).unwrap_or_default();
        tracing::warn!(
            file = %planted.display(),
            names = %target.trim(),
            "an agent's repository names another repository's git dir (commondir): removed, cco's git never follows it"
        );
        let removed = if meta.is_dir() {
            std::fs::remove_dir_all(&planted)
        } else {
            std::fs::remove_file(&planted)
        };
        removed.map_err(|e| GitError::io("agent repository", &planted, e))?;
    }
    let mut dirs = vec![git_dir.join("refs"), git_dir.join("logs")];
    while let Some(dir) = dirs.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&dir) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            if !std::fs::metadata(&dir).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let target = std::fs::read_link(&dir).unwrap_or_default();
            tracing::warn!(
                link = %dir.display(),
                target = %target.display(),
                "an agent's repository links a refs directory elsewhere: replaced by a directory of its own"
            );
            std::fs::remove_file(&dir)
                .and_then(|()| std::fs::create_dir(&dir))
                .map_err(|e| GitError::io("agent repository", &dir, e))?;
            continue;
        }
        if meta.is_dir() {
            let entries =
                std::fs::read_dir(&dir).map_err(|e| GitError::io("agent repository", &dir, e))?;
            dirs.extend(entries.flatten().map(|e| e.path()));
        }
    }
    Ok(())
}

impl GitRepo {
    fn agents_root(&self) -> PathBuf {
        self.config().workspace.join("worktrees")
    }

    /// The agent repository at `path`, checked (see [`AgentRepo`]). Refuses anything else:
    /// cco never runs git in a directory it did not create for an agent.
    pub(super) fn our_agent(&self, path: &Path) -> Result<AgentRepo, GitError> {
        let bad = |reason: &str| {
            GitError::invalid("agent repository", format!("{}: {reason}", path.display()))
        };
        let canon = std::fs::canonicalize(path).map_err(|e| GitError::io("worktree", path, e))?;
        let root = std::fs::canonicalize(self.agents_root()).map_err(|_| bad("no agents yet"))?;
        if canon.parent() != Some(root.as_path()) {
            return Err(bad("not an agent repository of this workspace"));
        }
        let git_dir = canon.join(".git");
        match std::fs::symlink_metadata(&git_dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(bad("`.git` is not a directory")),
            Err(e) => return Err(GitError::io("agent repository", &git_dir, e)),
        }
        defuse_git_dir(&git_dir)?;
        let branch = super::worktrees::branch_of(&git_dir.join("HEAD")).flatten();
        Ok(AgentRepo {
            path: canon,
            git_dir,
            branch,
        })
    }

    /// The agent repository registered for worker branch `branch` (see
    /// [`GitRepo::create_worktree`]), if any.
    pub(super) fn agent_of_branch(&self, branch: &str) -> Option<AgentRepo> {
        let path = self.agent_paths().get(branch).cloned()?;
        self.our_agent(&path).ok()
    }

    /// When `name` is a worker branch whose agent repository cco knows, copies the agent's
    /// current tip of it into cco's clone (the same fetch as a task result), so names of
    /// worker branches work in cco's clone as they always did.
    pub(super) async fn refresh_agent_branch(&self, name: &str) -> Result<(), GitError> {
        let name = name.strip_prefix("refs/heads/").unwrap_or(name);
        let Some(agent) = self.agent_of_branch(name) else {
            return Ok(());
        };
        let full = format!("refs/heads/{name}");
        let found = self
            .resolve_many(&agent, std::slice::from_ref(&full))
            .await?;
        let Some(tip) = found.into_iter().next().flatten() else {
            return Ok(());
        };
        if self.resolve(&self.repo_dir, &full).await?.as_deref() == Some(tip.as_str()) {
            return Ok(());
        }
        self.fetch_from_agent(&agent, &tip, Some(&full)).await
    }

    /// `<workspace>/worktrees/<worker-id>`: a repository of its own on `cco/<team>/<worker-id>`
    /// started at `from` (a branch or commit-ish of cco's clone), or re-attached when it
    /// exists (resume). When cco's clone still holds the worker's branch (a repository
    /// deleted behind cco's back) it starts there instead. Env files are (re)copied with mode
    /// 0600. A checkout left by an older cco (a linked worktree of the clone) is moved aside
    /// (`<path>.legacy-<time>`, nothing deleted) and replaced.
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
        if path.exists() && !std::fs::symlink_metadata(path.join(".git")).is_ok_and(|m| m.is_dir())
        {
            let aside = PathBuf::from(format!("{}.legacy-{}", path.display(), timestamp()));
            tracing::warn!(path = %path.display(), aside = %aside.display(), "not a repository of its own (an older cco's worktree?): moved aside");
            std::fs::rename(&path, &aside).map_err(|e| GitError::io("worktree", &path, e))?;
            let _ = self
                .git("worktree", &self.repo_dir)
                .args(["worktree", "prune"])
                .output()
                .await;
        }
        let reused = if path.exists() {
            let agent = self.our_agent(&path)?;
            if agent.branch.as_deref() != Some(branch.as_str()) {
                tracing::warn!(path = %path.display(), expected = %branch, actual = ?agent.branch, "reused agent repository is on another branch");
            }
            self.link_objects(&agent.git_dir)?;
            true
        } else {
            // The worker's branch (if cco's clone holds it) and the start point, in one
            // process.
            let mut revs = vec![format!("refs/heads/{branch}")];
            revs.extend(
                ref_name_problem(from)
                    .is_none()
                    .then(|| format!("refs/heads/{from}")),
            );
            revs.push(from.to_string());
            // Without a process when the files answer: no copy of the worker's branch, and
            // a start point cco knows or finds in a loose ref file (the usual new worker).
            let found = match (
                self.ref_surely_absent(&revs[0]),
                self.expected_tip(from).or_else(|| self.read_ref_file(from)),
            ) {
                (true, Some(sha)) => vec![None, Some(sha)],
                _ => self.resolve_many(&self.repo_dir, &revs).await?,
            };
            let sha = match &found[0] {
                Some(sha) => sha.clone(),
                None => {
                    at_start_point = true;
                    found[1..].iter().flatten().next().cloned().ok_or_else(|| {
                        GitError::NotFound {
                            what: format!("revision {from}"),
                        }
                    })?
                }
            };
            self.init_agent_repo(&path, &branch, &sha).await?;
            new_head = Some(sha);
            false
        };
        let agent = self.our_agent(&path)?;
        self.write_excludes(&agent.git_dir)?;
        self.copy_env_files(&agent.path)?;
        if !self.config().clone.no_submodules && agent.path.join(".gitmodules").exists() {
            let out = self
                .agent_git("submodule", &agent)
                .remote()
                .args(["submodule", "update", "--init", "--recursive"])
                .output()
                .await?;
            if !out.success() {
                tracing::warn!(path = %path.display(), stderr = %tail(&out.stderr, 500), "submodule update failed");
            }
        }
        let head = match new_head {
            Some(head) => head,
            None => self.resolve_required(&agent, "HEAD").await?,
        };
        if let Ok(mut paths) = self.agent_paths_mut() {
            paths.insert(branch.clone(), agent.path.clone());
        }
        Ok(WorktreeInfo {
            path,
            branch: agent.branch.unwrap_or(branch),
            head,
            reused,
            at_start_point,
        })
    }

    /// A new repository at `path` on `branch` at `sha`: the run's skeleton copied (or `git
    /// init` without templates: no sample hooks), objects borrowed from cco's clone, the
    /// clone's shallow boundary, the fallback identity when the user has none, then a checkout
    /// of `sha`.
    async fn init_agent_repo(&self, path: &Path, branch: &str, sha: &str) -> Result<(), GitError> {
        let root = self.agents_root();
        std::fs::create_dir_all(&root).map_err(|e| GitError::io("worktree", &root, e))?;
        let git_dir = path.join(".git");
        let identity = match self.identity_is_fallback() {
            true => self
                .identity()
                .map(|(name, email)| format!("[user]\n\tname = {name}\n\temail = {email}\n")),
            false => None,
        }
        .unwrap_or_default();
        match self.skeleton(&root).await {
            Some(skeleton) => {
                std::fs::create_dir(path).map_err(|e| GitError::io("worktree", path, e))?;
                skeleton
                    .write(&git_dir, branch, &identity)
                    .map_err(|e| GitError::io("worktree", &git_dir, e))?;
                // cco wrote this config and no agent has run here: what git found in the
                // skeleton's holds (a later change of the file is read again).
                self.drivers().put(&git_dir, skeleton.overrides);
            }
            None => {
                let p = path.to_string_lossy().into_owned();
                let initial = format!("--initial-branch={branch}");
                self.git("init", &root)
                    .args(["init", "-q", "--template=", &initial, "--", &p])
                    .run()
                    .await?;
                if !identity.is_empty() {
                    use std::io::Write;
                    let config = git_dir.join("config");
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .open(&config)
                        .map_err(|e| GitError::io("worktree", &config, e))?;
                    f.write_all(identity.as_bytes())
                        .map_err(|e| GitError::io("worktree", &config, e))?;
                }
            }
        }
        self.link_objects(&git_dir)?;
        let shallow = self.repo_dir.join(".git").join("shallow");
        if shallow.exists() {
            std::fs::copy(&shallow, git_dir.join("shallow"))
                .map_err(|e| GitError::io("worktree", &shallow, e))?;
        }
        let agent = self.our_agent(path)?;
        self.agent_git("reset", &agent)
            .args(["reset", "-q", "--hard", sha])
            .run()
            .await?;
        tracing::info!(path = %path.display(), %branch, "agent repository created");
        Ok(())
    }

    /// Points the agent repository's alternates at cco's object store (again, if an agent
    /// changed them): the agent reads every object cco has without copying any.
    fn link_objects(&self, git_dir: &Path) -> Result<(), GitError> {
        let info = git_dir.join("objects").join("info");
        std::fs::create_dir_all(&info).map_err(|e| GitError::io("worktree", &info, e))?;
        let objects = std::fs::canonicalize(self.repo_dir.join(".git").join("objects"))
            .map_err(|e| GitError::io("worktree", &self.repo_dir, e))?;
        let want = format!("{}\n", objects.display());
        let file = info.join("alternates");
        if std::fs::read_to_string(&file).ok().as_deref() != Some(want.as_str()) {
            std::fs::write(&file, want).map_err(|e| GitError::io("worktree", &file, e))?;
        }
        Ok(())
    }

    /// Removes an agent's repository (and optionally cco's copy of its branch) after
    /// snapshotting anything that would be lost: uncommitted changes, or — when the branch
    /// goes — commits not in the base branch.
    pub async fn remove_worktree(
        &self,
        worker_id: &str,
        delete_branch: bool,
    ) -> Result<RemoveOutcome, GitError> {
        let path = self.worktree_path(worker_id);
        if !path.exists() {
            return Err(GitError::NotFound {
                what: format!("worktree {}", path.display()),
            });
        }
        let agent = self.our_agent(&path)?;
        let head = self.resolve_required(&agent, "HEAD").await?;
        let unmerged_commits = match (delete_branch, self.info()) {
            (true, Some(info)) => {
                let base = self
                    .resolve_required(&self.repo_dir, &format!("refs/heads/{}", info.base_branch))
                    .await?;
                !self.is_ancestor(&agent, &head, &base).await?
            }
            (true, None) => true,
            _ => false,
        };
        let snapshot = self.snapshot(&path, worker_id, unmerged_commits).await?;
        std::fs::remove_dir_all(&agent.path)
            .map_err(|e| GitError::io("remove_worktree", &agent.path, e))?;
        let mut branch_deleted = false;
        if delete_branch {
            if let Some(b) = &agent.branch {
                if let Ok(mut paths) = self.agent_paths_mut() {
                    paths.remove(b);
                }
                let r = format!("refs/heads/{b}");
                self.git("update-ref", &self.repo_dir)
                    .args(["update-ref", "-d", &r])
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

    /// The agent repository's HEAD and, while a merge is under way, its MERGE_HEAD (one
    /// process).
    pub(super) async fn head_and_merge_head(
        &self,
        agent: &AgentRepo,
    ) -> Result<(String, Option<String>), GitError> {
        let found = self
            .resolve_many(agent, &["HEAD".to_string(), "MERGE_HEAD".to_string()])
            .await?;
        let head = found[0].clone().ok_or_else(|| GitError::NotFound {
            what: "revision HEAD".into(),
        })?;
        Ok((head, found[1].clone()))
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

    /// Resets the agent repository to `to` (a branch of cco's clone or any commit-ish there,
    /// e.g. a [`task_ref`]). It is snapshotted first when it holds anything not in `to` nor in
    /// `kept_in`: uncommitted changes, a merge in progress, or a HEAD that neither contains.
    /// Already at `to` and clean: no change.
    pub async fn switch_worktree(
        &self,
        worktree: &Path,
        to: &str,
        kept_in: Option<&str>,
    ) -> Result<SyncOutcome, GitError> {
        let agent = self.our_agent(worktree)?;
        let target = self.resolve_branchish(to).await?;
        let (head, merge_head) = self.head_and_merge_head(&agent).await?;
        let merging = merge_head.is_some();
        let dirty = self.is_dirty(&agent).await?;
        if head == target && !merging && !dirty {
            return Ok(SyncOutcome {
                head: target,
                snapshot: None,
            });
        }
        let mut contained = head == target || self.is_ancestor(&agent, &head, &target).await?;
        if !contained {
            if let Some(kept) = kept_in {
                let kept = self.resolve_branchish(kept).await?;
                contained = self.is_ancestor(&agent, &head, &kept).await?;
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
            self.agent_git("merge", &agent)
                .args(["merge", "--abort"])
                .run()
                .await?;
        }
        self.agent_git("reset", &agent)
            .args(["reset", "-q", "--hard", &target])
            .run()
            .await?;
        if dirty || merging {
            // Untracked leftovers are in the snapshot; ignored/excluded files (env files,
            // build caches) stay.
            self.agent_git("clean", &agent)
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
