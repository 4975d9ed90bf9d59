//! The clone: fresh (`clone --no-checkout`, refspec widened, base/run branch, detached HEAD)
//! or reused on resume; secret excludes; env files copied into checkouts.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;
use crate::error::tail;
use crate::sanitize::ref_name_problem;
use crate::GitError;

fn is_url(source: &str) -> bool {
    source.contains("://")
        || (!source.starts_with('/')
            && !source.starts_with('.')
            && source.contains(':')
            && source.contains('@'))
}

/// Lines appended to `$GIT_COMMON_DIR/info/exclude` so secrets never show up as untracked.
const SECRET_EXCLUDES: &[&str] = &[".claude/", "api-keys.json", ".env*"];

/// A gitignore pattern matching `pattern` in any letter case (`.env*` -> `.[eE][nN][vV]*`).
fn any_case(pattern: &str) -> String {
    pattern
        .chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Hooks in cco's clone that refuse every push into it: cco's own git never runs hooks
/// (`core.hooksPath=/dev/null`), so these only stop a foreign `git push <clone>`.
fn refuse_pushes(git_dir: &Path) -> Result<(), GitError> {
    let hooks = git_dir.join("hooks");
    std::fs::create_dir_all(&hooks).map_err(|e| GitError::io("setup", &hooks, e))?;
    for name in ["pre-receive", "update"] {
        let p = hooks.join(name);
        std::fs::write(
            &p,
            "#!/bin/sh\necho 'cco: this repository belongs to cco; it accepts no pushes' >&2\nexit 1\n",
        )
        .map_err(|e| GitError::io("setup", &p, e))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| GitError::io("setup", &p, e))?;
    }
    Ok(())
}

impl GitRepo {
    /// Clones the source into `<workspace>/repo` (or reuses an existing clone on resume),
    /// makes every later fetch work even after a single-branch/shallow clone, creates the
    /// local base branch and the optional run branch, and detaches HEAD so no branch is
    /// checked out in `<workspace>/repo` (branches only move with compare-and-swap).
    pub async fn setup(&self) -> Result<RepoInfo, GitError> {
        let ws = &self.cfg.workspace;
        std::fs::create_dir_all(ws).map_err(|e| GitError::io("setup", ws, e))?;
        let repo = self.repo_dir.clone();
        let info = if repo.join(".git").exists() {
            self.reuse_clone().await?
        } else {
            self.fresh_clone().await?
        };
        let tip = self
            .resolve_required(&repo, &format!("refs/heads/{}", info.base_branch))
            .await?;
        if info.reused {
            self.adopt(&info.base_branch, &tip);
        } else {
            self.expect(&info.base_branch, &tip);
        }
        let git_dir = repo.join(".git");
        self.write_excludes(&git_dir)?;
        refuse_pushes(&git_dir)?;
        self.resolve_identity().await?;
        *self
            .info
            .lock()
            .map_err(|_| GitError::Actor("poisoned".into()))? = Some(info.clone());
        Ok(info)
    }

    pub(super) async fn reuse_clone(&self) -> Result<RepoInfo, GitError> {
        let repo = &self.repo_dir;
        let get = |key: &'static str| async move {
            let out = self
                .git("config", repo)
                .args(["config", "--get", key])
                .output()
                .await?;
            Ok::<_, GitError>(
                out.success()
                    .then(|| out.stdout.trim().to_string())
                    .filter(|s| !s.is_empty()),
            )
        };
        let base = get("cco.baseBranch").await?;
        let Some(base) = base else {
            return Err(GitError::invalid(
                "setup",
                format!("{} exists but was not created by cco", repo.display()),
            ));
        };
        let upstream = get("cco.upstreamBranch")
            .await?
            .unwrap_or_else(|| base.clone());
        let run_branch = get("cco.runBranch").await?;
        let push_remote = get("cco.pushRemote").await?;
        if self
            .git("remote", repo)
            .args(["remote", "get-url", "origin"])
            .output()
            .await?
            .success()
        {
            let out = self
                .git("fetch", repo)
                .remote()
                .args(["fetch", "-q", "origin"])
                .output()
                .await?;
            if !out.success() {
                tracing::warn!(stderr = %tail(&out.stderr, 500), "fetch on resume failed; continuing with local refs");
            }
        }
        self.resolve_required(repo, &format!("refs/heads/{base}"))
            .await?;
        Ok(RepoInfo {
            repo_dir: repo.clone(),
            base_branch: base,
            upstream_branch: upstream,
            run_branch,
            push_remote,
            reused: true,
        })
    }

    pub(super) async fn fresh_clone(&self) -> Result<RepoInfo, GitError> {
        let ws = self.cfg.workspace.clone();
        let repo = self.repo_dir.clone();
        // `localRepoPath`: clone that instead of the configured source.
        let (url, source) = match &self.cfg.local_source {
            Some(local) => (false, local.to_string_lossy().into_owned()),
            None => (is_url(&self.cfg.source), self.cfg.source.clone()),
        };
        let source = if url {
            source
        } else {
            let p =
                std::fs::canonicalize(&source).map_err(|e| GitError::io("clone", &source, e))?;
            p.to_string_lossy().into_owned()
        };
        // git ignores --depth for a plain local path; through file:// it is honoured.
        let clone_from = if !url && self.cfg.clone.depth.is_some() {
            format!("file://{source}")
        } else {
            source.clone()
        };
        if let Some(b) = &self.cfg.base_branch {
            if let Some(problem) = ref_name_problem(b) {
                return Err(GitError::InvalidBranchName {
                    name: b.clone(),
                    reason: problem,
                });
            }
        }
        let depth = self
            .cfg
            .clone
            .depth
            .map(|d| format!("--depth={}", d.max(1)));
        let mut args = vec!["clone", "-q", "--no-checkout"];
        if let Some(d) = &depth {
            args.push(d);
        }
        if self.cfg.clone.single_branch {
            args.push("--single-branch");
        }
        if let Some(b) = &self.cfg.base_branch {
            args.extend(["--branch", b]);
        }
        let repo_s = repo.to_string_lossy().into_owned();
        args.extend(["--", &clone_from, &repo_s]);
        self.git("clone", &ws).remote().args(&args).run().await?;

        let head = self
            .git("symbolic-ref", &repo)
            .args(["symbolic-ref", "--short", "HEAD"])
            .run()
            .await?
            .trim()
            .to_string();
        let upstream = self.cfg.base_branch.clone().unwrap_or(head);
        // A single-branch clone only fetches its one branch forever after; widen the refspec
        // so later fetches of other branches (and merges of them) work.
        self.git("config", &repo)
            .args([
                "config",
                "--replace-all",
                "remote.origin.fetch",
                "+refs/heads/*:refs/remotes/origin/*",
            ])
            .run()
            .await?;
        let refspec = format!("+refs/heads/{upstream}:refs/remotes/origin/{upstream}");
        let mut fetch = vec!["fetch", "-q"];
        if let Some(d) = &depth {
            fetch.push(d);
        }
        fetch.extend(["origin", &refspec]);
        self.git("fetch", &repo).remote().args(&fetch).run().await?;
        if self
            .resolve(&repo, &format!("refs/heads/{upstream}"))
            .await?
            .is_none()
        {
            let remote = format!("refs/remotes/origin/{upstream}");
            self.git("branch", &repo)
                .args(["branch", "--no-track", &upstream, &remote])
                .run()
                .await?;
        }
        let tip = self
            .resolve_required(&repo, &format!("refs/heads/{upstream}"))
            .await?;
        // Detached HEAD in a no-checkout clone: no branch is checked out here, so worktrees can
        // check out any branch and update-ref never leaves this checkout inconsistent.
        self.git("update-ref", &repo)
            .args(["update-ref", "--no-deref", "HEAD", &tip])
            .run()
            .await?;

        let push_remote = if url {
            Some("origin".to_string())
        } else if self.cfg.local_source.is_some() && is_url(&self.cfg.source) {
            // Cloned from a local copy: pushes go to the configured repository.
            self.git("remote", &repo)
                .args(["remote", "add", "upstream", &self.cfg.source])
                .run()
                .await?;
            Some("upstream".to_string())
        } else {
            let src = PathBuf::from(&source);
            let bare = self
                .git("rev-parse", &src)
                .args(["rev-parse", "--is-bare-repository"])
                .output()
                .await?;
            if bare.stdout.trim() == "true" {
                Some("origin".to_string())
            } else {
                // A local checkout: push to *its* remote (never into the user's checkout).
                let up = self
                    .git("config", &src)
                    .args(["config", "--get", "remote.origin.url"])
                    .output()
                    .await?;
                let up_url = up.stdout.trim().to_string();
                if up.success() && !up_url.is_empty() {
                    self.git("remote", &repo)
                        .args(["remote", "add", "upstream", &up_url])
                        .run()
                        .await?;
                    Some("upstream".to_string())
                } else {
                    None
                }
            }
        };

        let run_branch = if self.cfg.use_run_branch {
            let name = format!("cco/run-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S"));
            self.git("branch", &repo)
                .args(["branch", "--no-track", &name, &tip])
                .run()
                .await?;
            Some(name)
        } else {
            None
        };
        let base = run_branch.clone().unwrap_or_else(|| upstream.clone());
        self.git("config", &repo)
            .args(["config", "cco.baseBranch", &base])
            .run()
            .await?;
        self.git("config", &repo)
            .args(["config", "cco.upstreamBranch", &upstream])
            .run()
            .await?;
        if let Some(r) = &run_branch {
            self.git("config", &repo)
                .args(["config", "cco.runBranch", r])
                .run()
                .await?;
        }
        if let Some(r) = &push_remote {
            self.git("config", &repo)
                .args(["config", "cco.pushRemote", r])
                .run()
                .await?;
        }
        tracing::info!(repo = %repo.display(), %base, ?run_branch, ?push_remote, "repository cloned");
        Ok(RepoInfo {
            repo_dir: repo,
            base_branch: base,
            upstream_branch: upstream,
            run_branch,
            push_remote,
            reused: false,
        })
    }

    /// The identity of cco's commits: the configured one, else the user's (read with the
    /// user's config, once), else `cco <cco@localhost>` (also written into each agent
    /// repository so agents can commit).
    pub(super) async fn resolve_identity(&self) -> Result<(), GitError> {
        if self.identity().is_some() {
            return Ok(());
        }
        let get = |key: &'static str| async move {
            let out = self
                .git("config", &self.repo_dir)
                .remote()
                .args(["config", "--get", key])
                .output()
                .await?;
            Ok::<_, GitError>(Some(out.stdout.trim().to_string()).filter(|s| !s.is_empty()))
        };
        let (name, email) = (get("user.name").await?, get("user.email").await?);
        let found = match (name, email) {
            (Some(n), Some(e)) if !(n == "cco" && e == "cco@localhost") => ((n, e), false),
            _ => (("cco".to_string(), "cco@localhost".to_string()), true),
        };
        *self
            .identity
            .lock()
            .map_err(|_| GitError::Actor("poisoned".into()))? = Some(found);
        Ok(())
    }

    /// Appends the secret excludes (and env files) to `<git_dir>/info/exclude`.
    pub(super) fn write_excludes(&self, git_dir: &Path) -> Result<(), GitError> {
        let info = git_dir.join("info");
        std::fs::create_dir_all(&info).map_err(|e| GitError::io("exclude", &info, e))?;
        let path = info.join("exclude");
        let mut text = std::fs::read_to_string(&path).unwrap_or_default();
        // Case-insensitive patterns (`.ENV`, `.Env.local` are secret files too).
        let mut wanted: Vec<String> = SECRET_EXCLUDES.iter().map(|s| any_case(s)).collect();
        wanted.extend(self.env_rel.iter().map(|p| format!("/{}", p.display())));
        let mut changed = false;
        for line in wanted {
            if !text.lines().any(|l| l == line) {
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(&line);
                text.push('\n');
                changed = true;
            }
        }
        if changed {
            std::fs::write(&path, text).map_err(|e| GitError::io("exclude", &path, e))?;
        }
        Ok(())
    }

    pub(super) fn copy_env_files(&self, worktree: &Path) -> Result<(), GitError> {
        for (e, rel) in self.cfg.env_files.iter().zip(&self.env_rel) {
            let dest = worktree.join(rel);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|err| GitError::io("env files", parent, err))?;
            }
            let data = std::fs::read(&e.source)
                .map_err(|err| GitError::io("env files", &e.source, err))?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&dest)
                .map_err(|err| GitError::io("env files", &dest, err))?;
            std::io::Write::write_all(&mut f, &data)
                .map_err(|err| GitError::io("env files", &dest, err))?;
            // `mode` only applies on creation.
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600))
                .map_err(|err| GitError::io("env files", &dest, err))?;
        }
        Ok(())
    }
}
