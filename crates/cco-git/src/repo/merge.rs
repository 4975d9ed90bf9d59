//! Merging into a shared branch: in memory when nothing needs a checkout
//! (`merge-tree --write-tree` + `commit-tree`), else in the integration worktree
//! (`integration.rs`); then the compare-and-swap that lands it.

use std::path::Path;

use super::*;
use crate::error::tail;
use crate::sanitize::ref_name_problem;
use crate::GitError;

/// git's whitespace clean-up of a commit message (`git stripspace`, no comment stripping):
/// trailing whitespace removed from every line, leading and trailing blank lines dropped,
/// runs of blank lines collapsed into one, every line ends with a newline.
fn strip_space(msg: &str) -> String {
    let mut out = String::new();
    let mut blank = false;
    for line in msg.split('\n') {
        let line = line.trim_end_matches([' ', '\t', '\r']);
        if line.is_empty() {
            blank = true;
            continue;
        }
        if blank && !out.is_empty() {
            out.push('\n');
        }
        blank = false;
        out.push_str(line);
        out.push('\n');
    }
    out
}

impl GitRepo {
    /// Merges `source` into `target`, resolves conflicts per strategy, runs the verify gate,
    /// then moves the target with compare-and-swap. The target never moves on conflict or a
    /// red gate.
    ///
    /// A clean merge that needs no checkout (no verify command to run) is made in memory:
    /// `git merge-tree --write-tree` (the same `ort` merge `git merge` runs, attributes read
    /// from the target tip as in the integration worktree), `commit-tree` with both parents
    /// and the message `git merge` would write. Everything else — conflicts (and so `union`
    /// and the conflict reports), verify runs, hooks `git merge` would run, configuration
    /// that changes what `git merge` commits, a git without the needed `merge-tree` — is
    /// merged in a private integration worktree (detached at the target tip) with
    /// `git merge --no-ff`.
    pub async fn merge(&self, req: &MergeRequest) -> Result<MergeOutcome, GitError> {
        let repo = self.repo_dir.clone();
        if let Some(problem) = ref_name_problem(&req.target) {
            return Err(GitError::InvalidBranchName {
                name: req.target.clone(),
                reason: problem,
            });
        }
        self.refresh_agent_branch(&req.source).await?;
        let target_ref = format!("refs/heads/{}", req.target);
        // Target tip and source in one process (the source: a local branch wins).
        let source_local = ref_name_problem(&req.source)
            .is_none()
            .then(|| format!("refs/heads/{}", req.source));
        let mut revs = vec![target_ref.clone()];
        revs.extend(source_local.clone());
        revs.push(req.source.clone());
        // Both in loose ref files (cco writes its refs loose): no process. The target is
        // read from its file, not taken from the expected tips: the guard below compares them.
        let found = match (
            self.read_ref_file(&target_ref),
            self.read_ref_file(&req.source),
        ) {
            (Some(old), Some(src)) => vec![Some(old), Some(src)],
            _ => self.resolve_many(&repo, &revs).await?,
        };
        let old = found[0].clone().ok_or_else(|| GitError::NotFound {
            what: format!("branch {}", req.target),
        })?;
        let src =
            found[1..]
                .iter()
                .flatten()
                .next()
                .cloned()
                .ok_or_else(|| GitError::NotFound {
                    what: format!("revision {}", req.source),
                })?;
        // Shared branches must still hold what cco last wrote (the target, and the source
        // when it is one: a team branch merged into the base).
        self.guard_shared(&req.target, &old).await?;
        let source_branch = req
            .source
            .strip_prefix("refs/heads/")
            .unwrap_or(&req.source);
        if source_branch != req.target && self.is_shared(source_branch) {
            self.guard_shared(source_branch, &src).await?;
        }
        let mut mb = self
            .git("merge-base", &repo)
            .args(["merge-base", &old, &src])
            .output()
            .await?;
        if !mb.success() {
            let shallow = self
                .git("rev-parse", &repo)
                .args(["rev-parse", "--is-shallow-repository"])
                .run()
                .await?;
            if shallow.trim() == "true" {
                tracing::info!("no merge base in a shallow clone; unshallowing");
                self.git("fetch", &repo)
                    .remote()
                    .args(["fetch", "-q", "--unshallow", "origin"])
                    .run()
                    .await?;
                mb = self
                    .git("merge-base", &repo)
                    .args(["merge-base", &old, &src])
                    .output()
                    .await?;
            }
        }
        let mb = mb.check()?.stdout.trim().to_string();
        // The source is contained in the target exactly when it is their (only) merge base.
        if mb == src {
            let commit = self
                .merged_by(&old, &src)
                .await?
                .unwrap_or_else(|| old.clone());
            return Ok(MergeOutcome::UpToDate { commit });
        }
        // What reaches the target must pass the content checks, secret files included (done
        // at capture for task refs cco captured in this process).
        if !self.is_vetted(&src) {
            self.check_commits(&mb, &src).await?;
        }
        let msg = req
            .message
            .clone()
            .unwrap_or_else(|| format!("Merge {} into {}", req.source, req.target));

        let needs_checkout = req.verify && self.cfg.verify_command.is_some();
        if !needs_checkout {
            if let Some(new) = self.merge_in_memory(req, &old, &src, &msg).await? {
                return self.land(req, &target_ref, &msg, &old, new, None).await;
            }
        }
        self.merge_in_worktree(req, &target_ref, &msg, &old, &src)
            .await
    }

    /// The merge commit of a clean merge of `src` into `old` made without a checkout, or
    /// `None` when this merge must go through the integration worktree.
    pub(super) async fn merge_in_memory(
        &self,
        req: &MergeRequest,
        old: &str,
        src: &str,
        msg: &str,
    ) -> Result<Option<String>, GitError> {
        if !self.fast_merge.load(std::sync::atomic::Ordering::Relaxed)
            || !self.merge_tree_usable().await?
        {
            return Ok(None);
        }
        // `git merge` writes the message after whitespace cleanup and refuses an empty one.
        let message = strip_space(msg);
        if message.is_empty() {
            return Ok(None);
        }
        let repo = &self.repo_dir;
        let attr_source = format!("--attr-source={old}");
        let mut args = vec![
            attr_source.as_str(),
            "merge-tree",
            "--write-tree",
            "--no-messages",
            "--name-only",
            "-z",
        ];
        match req.strategy {
            MergeStrategy::Ours => args.extend(["-X", "ours"]),
            MergeStrategy::Theirs => args.extend(["-X", "theirs"]),
            _ => {}
        }
        args.extend(["--end-of-options", old, src]);
        let out = self.git("merge-tree", repo).args(&args).output().await?;
        let tree = out.stdout.split('\0').next().unwrap_or("").trim();
        let tree_ok = is_object_id(tree);
        if out.code != Some(0) || !tree_ok {
            // 1 = conflicts: the worktree path reports (or union-resolves) them exactly as
            // `git merge` leaves them. Anything else is unexpected: let `git merge` decide.
            if out.code != Some(1) {
                tracing::warn!(code = ?out.code, stderr = %tail(&out.stderr, 500), "merge-tree failed; merging in the integration worktree");
            }
            return Ok(None);
        }
        let commit = self
            .git("commit-tree", repo)
            .args(["commit-tree", tree, "-p", old, "-p", src, "-F", "-"])
            .stdin(message.as_bytes())
            .output()
            .await?;
        let commit = commit.check()?.stdout.trim().to_string();
        Ok(Some(commit))
    }

    /// Whether [`GitRepo::merge_in_memory`] may be used: the installed git has
    /// `merge-tree --write-tree` with `-X` and `--attr-source`, and no configuration makes
    /// `git merge` commit something else than `commit-tree` would (`merge.log`,
    /// `merge.renormalize`, `commit.cleanup`). Probed once per repository. (Hooks never run
    /// in cco's git, so none can make the two differ.)
    pub(super) async fn merge_tree_usable(&self) -> Result<bool, GitError> {
        if let Some(known) = self.merge_tree_env.lock().ok().and_then(|g| *g) {
            return Ok(known);
        }
        let usable = self.probe_merge_tree_env().await?;
        if let Ok(mut g) = self.merge_tree_env.lock() {
            *g = Some(usable);
        }
        Ok(usable)
    }

    async fn probe_merge_tree_env(&self) -> Result<bool, GitError> {
        let repo = &self.repo_dir;
        let probe = self
            .git("merge-tree", repo)
            .args([
                "--attr-source=HEAD",
                "merge-tree",
                "--write-tree",
                "--no-messages",
                "--name-only",
                "-z",
                "-X",
                "ours",
                "--end-of-options",
                "HEAD",
                "HEAD",
            ])
            .output()
            .await?;
        if !probe.success() {
            tracing::info!(stderr = %tail(&probe.stderr, 300), "git merge-tree --write-tree unusable; merges use the integration worktree");
            return Ok(false);
        }
        let out = self
            .git("config", repo)
            .args([
                "config",
                "-z",
                "--get-regexp",
                r"^(merge\.(log|renormalize)|commit\.cleanup)$",
            ])
            .output()
            .await?;
        for item in nul_list(&out.stdout) {
            let (key, value) = item.split_once('\n').unwrap_or((item.as_str(), ""));
            let v = value.trim().to_ascii_lowercase();
            let off = matches!(v.as_str(), "false" | "no" | "off" | "0" | "");
            let blocks = match key {
                "merge.log" | "merge.renormalize" => !off,
                "commit.cleanup" => !matches!(v.as_str(), "default" | "whitespace"),
                _ => true,
            };
            if blocks {
                tracing::info!(%key, %value, "configuration changes what git merge commits; merges use the integration worktree");
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Moves the target from `old` to `new` (compare-and-swap), keeps checkouts of the target
    /// consistent, pushes base merges.
    pub(super) async fn land(
        &self,
        req: &MergeRequest,
        target_ref: &str,
        msg: &str,
        old: &str,
        new: String,
        integration: Option<&Path>,
    ) -> Result<MergeOutcome, GitError> {
        let repo = &self.repo_dir;
        let out = self
            .git("update-ref", repo)
            .args(["update-ref", "-m", msg, target_ref, &new, old])
            .output()
            .await?;
        if !out.success() {
            let actual = self.resolve(repo, target_ref).await?.unwrap_or_default();
            return Err(GitError::RefMoved {
                branch: req.target.clone(),
                expected: old.to_string(),
                actual,
            });
        }
        if self.is_shared(&req.target) {
            self.expect(&req.target, &new);
        }
        self.refresh_checkouts(&req.target, old, &new, integration)
            .await?;
        let pushed = self.push_after_merge(&req.target).await?;
        tracing::info!(source = %req.source, target = %req.target, commit = %new, "merged");
        Ok(MergeOutcome::Merged {
            commit: new,
            previous: old.to_string(),
            pushed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_space_matches_git_stripspace() {
        for msg in [
            "Merge a into b",
            "\n\n  lead  \t\n\n\n\nbody # kept \r\n\n\n",
            "a\n \n\t\nb\x0b\nc\x0c\n",
            "",
            " \n\t\n",
        ] {
            let mut child = std::process::Command::new("git")
                .arg("stripspace")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(msg.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert_eq!(
                strip_space(msg),
                String::from_utf8_lossy(&out.stdout),
                "{msg:?}"
            );
        }
    }
}
