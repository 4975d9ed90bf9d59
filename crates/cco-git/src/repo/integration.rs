//! The integration-worktree path of a merge: `git merge --no-ff` in a private detached
//! worktree, conflict handling per strategy (`union` via `merge-file --union`), the verify gate.

use std::path::Path;

use super::*;
use crate::cmd::{self, Spec};
use crate::error::tail;
use crate::GitError;

impl GitRepo {
    /// `git merge --no-ff` in the private integration worktree (detached at `old`), conflict
    /// handling per strategy, the verify gate, then [`GitRepo::land`].
    pub(super) async fn merge_in_worktree(
        &self,
        req: &MergeRequest,
        target_ref: &str,
        msg: &str,
        old: &str,
        src: &str,
    ) -> Result<MergeOutcome, GitError> {
        let wt = self.integration_path(&req.target);
        self.prepare_integration(&wt, old).await?;
        let mut args = vec!["merge", "-q", "--no-ff", "--no-edit", "-m", msg];
        match req.strategy {
            MergeStrategy::Ours => args.extend(["-X", "ours"]),
            MergeStrategy::Theirs => args.extend(["-X", "theirs"]),
            _ => {}
        }
        args.push(src);
        let out = self.git("merge", &wt).args(&args).output().await?;
        if !out.success() {
            let files = self.unmerged_files(&wt).await?;
            if files.is_empty() {
                let _ = self
                    .git("merge", &wt)
                    .args(["merge", "--abort"])
                    .output()
                    .await;
                return Err(out.error());
            }
            tracing::info!(source = %req.source, target = %req.target, ?files, strategy = ?req.strategy, "merge conflict");
            let resolved =
                req.strategy == MergeStrategy::Union && self.union_resolve(&wt, &files).await?;
            if !resolved {
                self.git("merge", &wt)
                    .args(["merge", "--abort"])
                    .run()
                    .await?;
                return match req.strategy {
                    MergeStrategy::Skip => Ok(MergeOutcome::Skipped { files }),
                    MergeStrategy::Fail => Err(GitError::MergeConflict {
                        source_branch: req.source.clone(),
                        target: req.target.clone(),
                        files,
                    }),
                    _ => Ok(MergeOutcome::Conflict { files }),
                };
            }
            self.git("commit", &wt)
                .args(["commit", "-q", "--no-edit"])
                .run()
                .await?;
        }
        let new = self.resolve_required(&wt, "HEAD").await?;

        if req.verify {
            if let Some(command) = &self.cfg.verify_command {
                self.copy_env_files(&wt)?;
                if let Some((status, output_tail)) = self.run_verify(&wt, command).await? {
                    let _ = self
                        .git("reset", &wt)
                        .args(["reset", "-q", "--hard", old])
                        .output()
                        .await;
                    return Ok(MergeOutcome::VerifyFailed {
                        status,
                        output_tail,
                    });
                }
            }
        }
        self.land(req, target_ref, msg, old, new, Some(&wt)).await
    }

    pub(super) async fn prepare_integration(&self, wt: &Path, old: &str) -> Result<(), GitError> {
        let ours = wt.exists() && self.our_worktree(wt).await.is_ok();
        if ours {
            let _ = self
                .git("merge", wt)
                .args(["merge", "--abort"])
                .output()
                .await;
            self.git("reset", wt)
                .args(["reset", "-q", "--hard", old])
                .run()
                .await?;
            self.git("clean", wt).args(["clean", "-fdq"]).run().await?;
        } else {
            if wt.exists() {
                // Our private directory, left over from a crash: holds no one's work.
                std::fs::remove_dir_all(wt).map_err(|e| GitError::io("integration", wt, e))?;
            }
            self.git("worktree", &self.repo_dir)
                .args(["worktree", "prune"])
                .run()
                .await?;
            if let Some(parent) = wt.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| GitError::io("integration", parent, e))?;
            }
            let p = wt.to_string_lossy().into_owned();
            self.git("worktree", &self.repo_dir)
                .args(["worktree", "add", "-q", "--detach", &p, old])
                .run()
                .await?;
        }
        Ok(())
    }

    /// Resolves each conflicted file keeping both sides' lines (`git merge-file --union`).
    /// Returns false when a conflict cannot be union-merged (e.g. binary).
    pub(super) async fn union_resolve(
        &self,
        wt: &Path,
        files: &[String],
    ) -> Result<bool, GitError> {
        for f in files {
            let out = self
                .git("checkout-index", wt)
                .args(["checkout-index", "--stage=all", "--temp", "--", f])
                .run()
                .await?;
            // "<base> <ours> <theirs>\t<path>", "." for a missing stage.
            let temps: Vec<String> = out
                .split('\t')
                .next()
                .unwrap_or("")
                .split(' ')
                .map(str::to_string)
                .collect();
            let cleanup = |temps: &[String]| {
                for t in temps.iter().filter(|t| t.as_str() != ".") {
                    let _ = std::fs::remove_file(wt.join(t));
                }
            };
            if temps.len() != 3 {
                cleanup(&temps);
                return Ok(false);
            }
            let (base, ours, theirs) = (&temps[0], &temps[1], &temps[2]);
            if ours == "." || theirs == "." {
                // modify/delete: keep the surviving content rather than losing anyone's work.
                cleanup(&temps);
                if wt.join(f).exists() {
                    self.git("add", wt).args(["add", "--", f]).run().await?;
                    continue;
                }
                return Ok(false);
            }
            let empty = ".cco-union-empty-base";
            let base_file = if base == "." {
                std::fs::write(wt.join(empty), b"").map_err(|e| GitError::io("union", wt, e))?;
                empty.to_string()
            } else {
                base.clone()
            };
            let out = self
                .git("merge-file", wt)
                .args(["merge-file", "--union", "-p", ours, &base_file, theirs])
                .output()
                .await?;
            cleanup(&temps);
            let _ = std::fs::remove_file(wt.join(empty));
            // merge-file exits with the conflict count (0 with --union) or 255 on error (e.g. binary).
            if out.code.is_none_or(|c| c > 127) || out.stderr.contains("Cannot merge binary") {
                return Ok(false);
            }
            std::fs::write(wt.join(f), out.stdout.as_bytes())
                .map_err(|e| GitError::io("union", wt.join(f), e))?;
            self.git("add", wt).args(["add", "--", f]).run().await?;
        }
        Ok(self.unmerged_files(wt).await?.is_empty())
    }

    pub(super) async fn run_verify(
        &self,
        wt: &Path,
        command: &str,
    ) -> Result<Option<(VerifyStatus, String)>, GitError> {
        let script = format!("{{\n{command}\n}} 2>&1");
        let res = cmd::run(Spec {
            op: "verify",
            program: "sh",
            args: vec!["-c".into(), script],
            dir: wt,
            envs: vec![],
            timeout: self.cfg.verify_timeout,
            stdin: None,
            files: Default::default(),
            max_stdout: None,
            env_remove: self.cfg.verify_env_remove.clone(),
            // Only its end is shown; a test suite printing gigabytes costs no memory.
            stdout_tail: Some(64 * 1024),
        })
        .await;
        match res {
            Ok(out) if out.success() => Ok(None),
            Ok(out) => {
                let status = match (out.code, out.signal) {
                    (Some(code), _) => VerifyStatus::Exited(code),
                    (None, Some(signal)) => VerifyStatus::Signaled(signal),
                    (None, None) => VerifyStatus::Exited(-1),
                };
                Ok(Some((status, tail(&out.stdout, 4000))))
            }
            Err(GitError::Timeout { timeout, .. }) => {
                Ok(Some((VerifyStatus::TimedOut(timeout), String::new())))
            }
            Err(e) => Err(e),
        }
    }

    /// Keeps worktrees that have `target` checked out consistent with the moved ref
    /// (two-way `read-tree -m -u` from the old to the new tip keeps local changes).
    pub(super) async fn refresh_checkouts(
        &self,
        target: &str,
        old: &str,
        new: &str,
        integration: Option<&Path>,
    ) -> Result<(), GitError> {
        for e in self.worktrees_on(target).await? {
            if Some(e.path.as_path()) != integration {
                let out = self
                    .git("read-tree", &e.path)
                    .args(["read-tree", "-m", "-u", old, new])
                    .output()
                    .await?;
                if !out.success() {
                    tracing::warn!(worktree = %e.path.display(), stderr = %tail(&out.stderr, 500), "could not refresh checkout of moved branch");
                }
            }
        }
        Ok(())
    }
}
