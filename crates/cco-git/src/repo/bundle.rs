//! Git bundles: how commits travel between cco's clone and a repository on another host
//! (issue 15), with no shared file system and no git server.
//!
//! - The head sends a worker's start commit to a node as a bundle relative to what that node
//!   already has ([`GitRepo::create_bundle`]); the node fetches it into its store
//!   ([`GitRepo::fetch_bundle`]) and its agent repository borrows the objects from there.
//! - The node sends the turn's commits back the same way; the head fetches them into cco's
//!   clone through the same checks as a local agent's work (`fsck` of every object received,
//!   only the local file transport), then points the worker's local repository at them
//!   ([`GitRepo::adopt_remote_result`]): the capture, review and merge that follow are the
//!   ones of a local turn, with the content checks of [`GitRepo::check_commits`].
//! - A node keeps its store with [`GitRepo::init_store`]: `<workspace>/repo` made by `git
//!   init` instead of a clone.
//!
//! A bundle's ref names and commits are input: a name must be a valid ref under `refs/`, and
//! only the commit the caller expects is fetched.

use std::path::Path;

use super::*;
use crate::sanitize::ref_name_problem;
use crate::GitError;

fn is_commit_id(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn check_id(op: &str, id: &str) -> Result<(), GitError> {
    if is_commit_id(id) {
        Ok(())
    } else {
        Err(GitError::invalid(op, format!("not a commit id: {id:?}")))
    }
}

/// Where a worker's local repository stands before its turn runs on another host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStart {
    /// The commit the turn starts from (the repository's HEAD).
    pub head: String,
    /// The commit being merged into it when a conflict resolution is under way (MERGE_HEAD).
    pub merging: Option<String>,
}

impl GitRepo {
    /// A node's store: `<workspace>/repo` created with `git init` (no template, no checkout)
    /// when it does not exist, with the secret excludes and cco's commit identity. Agent
    /// repositories are then created in it with [`GitRepo::create_worktree`] from commits
    /// fetched with [`GitRepo::fetch_bundle`].
    pub async fn init_store(&self) -> Result<(), GitError> {
        let ws = &self.cfg.workspace;
        std::fs::create_dir_all(ws).map_err(|e| GitError::io("init_store", ws, e))?;
        if !self.repo_dir.join(".git").is_dir() {
            let dir = self.repo_dir.to_string_lossy().into_owned();
            self.git("init", ws)
                .args(["init", "-q", "--template=", "--", &dir])
                .run()
                .await?;
        }
        self.write_excludes(&self.repo_dir.join(".git"))?;
        self.resolve_identity().await
    }

    /// Writes a bundle of `tips` (commits of cco's clone / the store) to `out`, leaving out
    /// what `basis` already holds (commits the other side has; unknown ones are ignored).
    /// `None` when the other side needs nothing (every tip is in the basis). Returns the
    /// bundle's size in bytes.
    pub async fn create_bundle(
        &self,
        tips: &[String],
        basis: &[String],
        out: &Path,
    ) -> Result<Option<u64>, GitError> {
        for id in tips.iter().chain(basis) {
            check_id("create_bundle", id)?;
        }
        // The usual case of a start commit the other side was sent (or made) before: no
        // process at all.
        if tips.iter().all(|tip| basis.contains(tip)) {
            return Ok(None);
        }
        // A bundle names its tips by refs: temporary ones, unique to this bundle.
        let tag = uuid_like();
        let names: Vec<String> = (0..tips.len())
            .map(|i| format!("refs/cco/bundle/{tag}/{i}"))
            .collect();
        let mut create = String::new();
        for (name, tip) in names.iter().zip(tips) {
            create.push_str(&format!("create {name} {tip}\n"));
        }
        self.git("update-ref", &self.repo_dir)
            .args(["update-ref", "--stdin"])
            .stdin(create.as_bytes())
            .run()
            .await?;
        let made = self.bundle_of(&names, tips, basis, out).await;
        // The temporary refs are loose files cco just wrote: removed without a process.
        let _ = std::fs::remove_dir_all(
            self.repo_dir
                .join(".git")
                .join("refs")
                .join("cco")
                .join("bundle")
                .join(&tag),
        );
        if !made? {
            return Ok(None);
        }
        let size = std::fs::metadata(out)
            .map_err(|e| GitError::io("create_bundle", out, e))?
            .len();
        Ok(Some(size))
    }

    /// `git bundle create` of the refs `names` (pointing at `tips`) without what `basis` holds;
    /// false when there is nothing new. The bundle is tried first (the usual case: one
    /// process); only when git refuses it does a `rev-list` tell an empty bundle from a basis
    /// commit this repository lacks (then the bundle is made without a basis).
    async fn bundle_of(
        &self,
        names: &[String],
        tips: &[String],
        basis: &[String],
        out: &Path,
    ) -> Result<bool, GitError> {
        let create = |basis: &[String]| {
            let mut args = vec![
                "bundle".to_string(),
                "create".into(),
                "-q".into(),
                out.to_string_lossy().into_owned(),
            ];
            args.extend(names.iter().cloned());
            if !basis.is_empty() {
                args.push("--not".into());
                args.extend(basis.iter().cloned());
            }
            async move {
                self.git("bundle", &self.repo_dir)
                    .args(&args)
                    .output()
                    .await
            }
        };
        let first = create(basis).await?;
        if first.success() {
            return Ok(true);
        }
        let new = |basis: &[String]| {
            let mut args: Vec<String> = vec!["rev-list".into(), "-n1".into()];
            args.extend(tips.iter().cloned());
            if !basis.is_empty() {
                args.push("--not".into());
                args.extend(basis.iter().cloned());
            }
            async move {
                self.git("rev-list", &self.repo_dir)
                    .args(&args)
                    .output()
                    .await
            }
        };
        let with_basis = new(basis).await?;
        if with_basis.success() {
            if with_basis.stdout.trim().is_empty() {
                return Ok(false);
            }
            // Something new, and git still refused: its own error.
            return first.check().map(|_| true);
        }
        // A basis commit is unknown here: everything.
        if new(&[]).await?.check()?.stdout.trim().is_empty() {
            return Ok(false);
        }
        create(&[]).await?.check().map(|_| true)
    }

    /// Fetches `commit` from the bundle file `bundle` into ref `into` of cco's clone (the
    /// store on a node): the bundle must name `commit` under a valid ref, its prerequisites
    /// must be here (`git bundle verify`), and every object received is checked (`fsck`).
    pub async fn fetch_bundle(
        &self,
        bundle: &Path,
        commit: &str,
        into: &str,
    ) -> Result<(), GitError> {
        check_id("fetch_bundle", commit)?;
        if !into.starts_with("refs/cco/") || ref_name_problem(into).is_some() {
            return Err(GitError::invalid(
                "fetch_bundle",
                format!("not a cco ref: {into:?}"),
            ));
        }
        let file = bundle.to_string_lossy().into_owned();
        let heads = self
            .git("bundle", &self.repo_dir)
            .args(["bundle", "list-heads", &file])
            .run()
            .await?;
        let name = heads
            .lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(id, name)| {
                *id == commit && name.starts_with("refs/") && ref_name_problem(name).is_none()
            })
            .map(|(_, name)| name.to_string())
            .ok_or_else(|| {
                GitError::invalid(
                    "fetch_bundle",
                    format!("the bundle does not hold commit {commit} under a ref"),
                )
            })?;
        // A bundle whose prerequisites are not here fails the fetch (git checks them).
        match self
            .checked_fetch(&file, &format!("+{name}:{into}"), None, commit)
            .await
        {
            Err(GitError::Command { stderr_tail, .. }) if stderr_tail.contains("prerequisite") => {
                Err(GitError::NotFound {
                    what: format!("the commits the bundle builds on ({stderr_tail})"),
                })
            }
            other => other,
        }
    }

    /// True when cco's clone (the store) has commit `id`.
    pub async fn has_commit(&self, id: &str) -> Result<bool, GitError> {
        check_id("has_commit", id)?;
        Ok(self.resolve(&self.repo_dir, id).await?.is_some())
    }

    /// Where the agent repository at `worktree` stands before its turn moves to another
    /// host: uncommitted work is committed first (as [`GitRepo::commit_all`]) so it travels
    /// with the start commit; a merge under way stays (its other parent is `merging`).
    pub async fn remote_start(&self, worktree: &Path) -> Result<RemoteStart, GitError> {
        let agent = self.our_agent(worktree)?;
        let merging = agent.git_dir.join("MERGE_HEAD").exists();
        if !merging && self.is_dirty(&agent).await? {
            self.commit_all(
                worktree,
                "cco: work in progress before the turn moved to another host",
            )
            .await?;
        }
        let (head, merging) = self.head_and_merge_head(&agent).await?;
        Ok(RemoteStart { head, merging })
    }

    /// Puts the agent repository at `worktree` at `commit` (fetched from another host's
    /// bundle): a merge under way is aborted (the commit holds its resolution), the work
    /// tree is reset and cleaned. This repository only mirrors the other host's, so nothing
    /// here is work of its own to keep.
    pub async fn adopt_remote_result(&self, worktree: &Path, commit: &str) -> Result<(), GitError> {
        check_id("adopt_remote_result", commit)?;
        let agent = self.our_agent(worktree)?;
        if agent.git_dir.join("MERGE_HEAD").exists() {
            self.agent_git("merge", &agent)
                .args(["merge", "--abort"])
                .run()
                .await?;
        }
        // No agent works here (its turns run on the other host): nothing untracked to clean.
        self.agent_git("reset", &agent)
            .args(["reset", "-q", "--hard", commit])
            .run()
            .await?;
        Ok(())
    }

    /// Puts the agent repository at `worktree` at `commit`, discarding what is there (a
    /// merge under way, changes, untracked files that are not excluded; ignored ones such as
    /// build caches stay): a node's repository of a worker before its next turn, whose
    /// previous turn went back to the head already. Three git processes at most.
    pub async fn reset_agent_repo(&self, worktree: &Path, commit: &str) -> Result<(), GitError> {
        self.adopt_remote_result(worktree, commit).await?;
        let agent = self.our_agent(worktree)?;
        self.agent_git("clean", &agent)
            .args(["clean", "-fdq"])
            .run()
            .await?;
        Ok(())
    }
}

/// A short unique name (time and a counter) for temporary refs.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        chrono::Utc::now().format("%Y%m%d%H%M%S%6f"),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
