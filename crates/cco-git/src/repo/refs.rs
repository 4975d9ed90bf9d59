//! Resolving names (batched with `cat-file --batch-check`), whether an object is here,
//! ancestry, the state of a checkout (merging, unmerged, dirty), and the branches of the clone.

use std::collections::BTreeSet;

use super::*;
use crate::names::*;
use crate::sanitize::ref_name_problem;
use crate::GitError;

pub(crate) fn nul_list(s: &str) -> Vec<String> {
    s.split('\0')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

impl GitRepo {
    /// True when cco's clone (the store) has commit `id`. A loose object is found without a
    /// process (what a node unpacked from a bundle, or made itself, usually is).
    pub async fn has_commit(&self, id: &str) -> Result<bool, GitError> {
        check_object_id("has_commit", id)?;
        if self.has_loose_object(id) {
            return Ok(true);
        }
        Ok(self.resolve(&self.repo_dir, id).await?.is_some())
    }

    /// True when cco's clone holds object `id` as a loose file (false says nothing: it may
    /// be packed).
    pub(super) fn has_loose_object(&self, id: &str) -> bool {
        is_object_id(id)
            && self
                .repo_dir
                .join(".git")
                .join("objects")
                .join(&id[..2])
                .join(&id[2..])
                .is_file()
    }

    /// `rev-parse --verify` of a commit-ish; `None` when it does not resolve.
    pub(super) async fn resolve(
        &self,
        at: impl Into<At<'_>>,
        rev: &str,
    ) -> Result<Option<String>, GitError> {
        if rev.starts_with('-') || rev.is_empty() {
            return Err(GitError::invalid(
                "resolve",
                format!("bad revision {rev:?}"),
            ));
        }
        let spec = format!("{rev}^{{commit}}");
        let out = self
            .git_at("rev-parse", at.into())
            .args(["rev-parse", "-q", "--verify", "--end-of-options", &spec])
            .output()
            .await?;
        Ok(out.success().then(|| out.stdout.trim().to_string()))
    }

    pub(super) async fn resolve_required(
        &self,
        at: impl Into<At<'_>>,
        rev: &str,
    ) -> Result<String, GitError> {
        self.resolve(at, rev)
            .await?
            .ok_or_else(|| GitError::NotFound {
                what: format!("revision {rev}"),
            })
    }

    /// The commit cco last wrote to `name` when it is a shared branch: agents start from,
    /// are parked at and are diffed against what cco wrote, never against commits someone
    /// else put there (the next merge finds and removes those: see `integrity.rs`).
    pub(super) fn expected_tip(&self, name: &str) -> Option<String> {
        let name = name.strip_prefix("refs/heads/").unwrap_or(name);
        self.tips.lock().ok()?.get(name).cloned()
    }

    /// A local branch name or any commit-ish; local branches win; a shared branch is the
    /// commit cco last wrote there.
    pub(super) async fn resolve_branchish(&self, rev: &str) -> Result<String, GitError> {
        if let Some(tip) = self.expected_tip(rev) {
            return Ok(tip);
        }
        if let Some(id) = self.read_ref_file(rev) {
            return Ok(id);
        }
        if ref_name_problem(rev).is_none() {
            if let Some(s) = self
                .resolve(&self.repo_dir, &format!("refs/heads/{rev}"))
                .await?
            {
                return Ok(s);
            }
        }
        self.resolve_required(&self.repo_dir, rev).await
    }

    /// What git would resolve branch-or-ref name `rev` to in cco's clone (a local branch
    /// wins), read from the ref's loose file without a process; `None` whenever git must be
    /// asked (no loose file, packed, not a ref name). cco writes its refs loose.
    pub(super) fn read_ref_file(&self, rev: &str) -> Option<String> {
        if ref_name_problem(rev).is_some() {
            return None;
        }
        let local = format!("refs/heads/{rev}");
        if let Some(id) = self.read_loose_ref(&local) {
            return Some(id);
        }
        if rev.starts_with("refs/") && !self.ref_is_file(&local) {
            return self.read_loose_ref(rev);
        }
        None
    }

    /// The commit id in cco's clone's loose ref file `name` (a full ref name), if there is
    /// one. `None` whenever git must be asked: no such file, packed, another ref backend.
    fn read_loose_ref(&self, name: &str) -> Option<String> {
        let git_dir = self.repo_dir.join(".git");
        if name
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
            || git_dir.join("reftable").exists()
        {
            return None;
        }
        let text = std::fs::read_to_string(git_dir.join(name)).ok()?;
        let id = text.trim_end();
        is_object_id(id).then(|| id.to_string())
    }

    /// Whether cco's clone surely has no ref `name` (a full ref name): no loose file, no
    /// packed entry, the files backend. `false` when unsure.
    pub(super) fn ref_surely_absent(&self, name: &str) -> bool {
        let git_dir = self.repo_dir.join(".git");
        !name
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
            && !git_dir.join("reftable").exists()
            && std::fs::symlink_metadata(git_dir.join("refs")).is_ok_and(|m| m.is_dir())
            && !self.ref_is_file(name)
    }

    /// Whether cco's clone may hold ref `name` somewhere git would find it before the loose
    /// file of another name (only a loose file or a packed entry can be it).
    fn ref_is_file(&self, name: &str) -> bool {
        let git_dir = self.repo_dir.join(".git");
        git_dir.join(name).exists()
            || std::fs::read_to_string(git_dir.join("packed-refs")).is_ok_and(|p| {
                p.lines()
                    .any(|l| l.split_once(' ').is_some_and(|(_, n)| n == name))
            })
    }

    /// [`GitRepo::resolve`] of several revisions with one `cat-file --batch-check` (same
    /// name resolution as `rev-parse --verify <rev>^{commit}`). Falls back to one
    /// `rev-parse` per revision when a name cannot be sent on a line.
    pub(super) async fn resolve_many(
        &self,
        at: impl Into<At<'_>>,
        revs: &[String],
    ) -> Result<Vec<Option<String>>, GitError> {
        let at: At<'_> = at.into();
        for rev in revs {
            if rev.starts_with('-') || rev.is_empty() {
                return Err(GitError::invalid(
                    "resolve",
                    format!("bad revision {rev:?}"),
                ));
            }
        }
        let batchable = revs.len() > 1
            && revs
                .iter()
                .all(|r| !r.contains(['\n', '\r', '\0']) && r.trim() == r);
        if !batchable {
            let mut out = Vec::with_capacity(revs.len());
            for rev in revs {
                out.push(self.resolve(at, rev).await?);
            }
            return Ok(out);
        }
        let mut input = String::new();
        for rev in revs {
            input.push_str(rev);
            input.push_str("^{commit}\n");
        }
        let args = ["cat-file", "--batch-check=%(objectname)"];
        let out = self
            .git_at("rev-parse", at)
            .args(args)
            .stdin(input.as_bytes())
            .output()
            .await?;
        let out = out.check()?;
        // "<oid>" per resolved name; "<name> missing" / "<name> ambiguous" otherwise.
        let lines: Vec<&str> = out.stdout.lines().collect();
        if lines.len() != revs.len() {
            return Err(GitError::invalid(
                "resolve",
                format!("cat-file answered {} of {} names", lines.len(), revs.len()),
            ));
        }
        Ok(lines
            .into_iter()
            .map(|l| {
                let l = l.trim();
                is_object_id(l).then(|| l.to_string())
            })
            .collect())
    }

    /// [`GitRepo::resolve_branchish`] of several names with one git process (run in `dir`;
    /// only give names that resolve the same in every worktree).
    pub(super) async fn resolve_branchish_many(
        &self,
        at: impl Into<At<'_>>,
        names: &[&str],
    ) -> Result<Vec<String>, GitError> {
        // Names cco knows or finds in loose ref files need no process.
        let known: Vec<Option<String>> = names
            .iter()
            .map(|name| self.expected_tip(name).or_else(|| self.read_ref_file(name)))
            .collect();
        if known.iter().all(Option::is_some) {
            return Ok(known.into_iter().flatten().collect());
        }
        let mut revs = Vec::new();
        let mut idx = Vec::new();
        for name in names {
            let local = ref_name_problem(name)
                .is_none()
                .then(|| format!("refs/heads/{name}"));
            idx.push((
                local.as_ref().map(|_| revs.len()),
                revs.len() + usize::from(local.is_some()),
            ));
            if let Some(l) = local {
                revs.push(l);
            }
            revs.push(name.to_string());
        }
        let found = self.resolve_many(at, &revs).await?;
        names
            .iter()
            .zip(idx)
            .map(|(name, (local, plain))| {
                self.expected_tip(name)
                    .or_else(|| local.and_then(|i| found[i].clone()))
                    .or_else(|| found[plain].clone())
                    .ok_or_else(|| GitError::NotFound {
                        what: format!("revision {name}"),
                    })
            })
            .collect()
    }

    pub(super) async fn is_ancestor(
        &self,
        at: impl Into<At<'_>>,
        a: &str,
        b: &str,
    ) -> Result<bool, GitError> {
        let out = self
            .git_at("merge-base", at.into())
            .args(["merge-base", "--is-ancestor", a, b])
            .output()
            .await?;
        match out.code {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(out.error()),
        }
    }

    pub(super) async fn merging(&self, at: impl Into<At<'_>>) -> Result<bool, GitError> {
        Ok(self
            .git_at("rev-parse", at.into())
            .args(["rev-parse", "-q", "--verify", "MERGE_HEAD"])
            .output()
            .await?
            .success())
    }

    pub(super) async fn unmerged_files(
        &self,
        at: impl Into<At<'_>>,
    ) -> Result<Vec<String>, GitError> {
        let out = self
            .git_at("diff", at.into())
            .args(["diff", "--name-only", "--diff-filter=U", "-z"])
            .run()
            .await?;
        let set: BTreeSet<String> = nul_list(&out).into_iter().collect();
        Ok(set.into_iter().collect())
    }

    /// Tracked changes or untracked (non-ignored) files.
    pub(super) async fn is_dirty(&self, at: impl Into<At<'_>>) -> Result<bool, GitError> {
        let out = self
            .git_at("status", at.into())
            .args(["status", "--porcelain", "-z"])
            .run()
            .await?;
        Ok(!out.is_empty())
    }

    pub async fn head(&self, branch: &str) -> Result<String, GitError> {
        self.refresh_agent_branch(branch).await?;
        self.resolve_branchish(branch).await
    }

    pub async fn branch_exists(&self, branch: &str) -> Result<bool, GitError> {
        if ref_name_problem(branch).is_some() {
            return Ok(false);
        }
        Ok(self
            .resolve(&self.repo_dir, &format!("refs/heads/{branch}"))
            .await?
            .is_some())
    }

    /// Creates `cco/<team>/team` from `from` (default: the base branch) unless it exists.
    pub async fn ensure_team_branch(
        &self,
        team: &str,
        from: Option<&str>,
    ) -> Result<String, GitError> {
        let name = team_branch(team);
        let full = format!("refs/heads/{name}");
        match self.resolve(&self.repo_dir, &full).await? {
            Some(tip) => self.adopt(&name, &tip),
            None => {
                let from = match from {
                    Some(f) => f.to_string(),
                    None => self.base()?,
                };
                let sha = self.resolve_branchish(&from).await?;
                // Create only (the empty old value): never overwrite a branch.
                self.git("update-ref", &self.repo_dir)
                    .args(["update-ref", "-m", "cco: team branch", &full, &sha, ""])
                    .run()
                    .await?;
                self.expect(&name, &sha);
            }
        }
        Ok(name)
    }
}
