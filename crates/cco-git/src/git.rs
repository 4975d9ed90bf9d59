//! The one command builder: every git process cco runs is built by [`GitRepo::git`] and run by
//! [`GitCmd::output`] / [`GitCmd::run`], so what applies to all of them (identity, timeout,
//! process group, stale-lock retry, the hardening of `harden.rs`) is written once, here.

use std::path::Path;

use crate::cmd::{self, Output, Spec};
use crate::repo::GitRepo;
use crate::GitError;

/// One git invocation being built. Nothing runs until [`GitCmd::output`] or [`GitCmd::run`].
#[must_use = "a git command does nothing until it is run"]
pub(crate) struct GitCmd<'a> {
    repo: &'a GitRepo,
    op: &'a str,
    dir: &'a Path,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
}

impl GitRepo {
    /// A git command for op `op` (a label for logs and errors) run in `dir`.
    pub(crate) fn git<'a>(&'a self, op: &'a str, dir: &'a Path) -> GitCmd<'a> {
        GitCmd {
            repo: self,
            op,
            dir,
            args: Vec::new(),
            envs: Vec::new(),
            stdin: None,
        }
    }
}

impl<'a> GitCmd<'a> {
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    pub fn envs(mut self, envs: &[(&str, &str)]) -> Self {
        self.envs
            .extend(envs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    /// Written to git's standard input (then closed).
    pub fn stdin(mut self, data: &[u8]) -> Self {
        self.stdin = Some(data.to_vec());
        self
    }

    /// Runs git; returns the output whatever the exit code. A failure caused by a stale lock
    /// file is retried once after removing the lock.
    pub async fn output(self) -> Result<Output, GitError> {
        let repo = self.repo;
        let cfg = repo.config();
        let mut envs = self.envs;
        if let Some((name, email)) = repo.identity() {
            for k in ["GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"] {
                envs.push((k.into(), name.clone()));
            }
            for k in ["GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"] {
                envs.push((k.into(), email.clone()));
            }
        }
        let program = cfg.git_program.to_string_lossy().into_owned();
        let mut retried = false;
        loop {
            let out = cmd::run(Spec {
                op: self.op,
                program: &program,
                args: self.args.clone(),
                dir: self.dir,
                envs: envs.clone(),
                timeout: cfg.git_timeout,
                stdin: self.stdin.clone(),
            })
            .await?;
            if !out.success() && !retried {
                if let Some(lock) = cmd::lock_in_stderr(&out.stderr) {
                    // An index lock belongs to the worktree we run in; other locks (refs,
                    // config) to the whole repository, i.e. any worktree of the workspace.
                    let scope: &Path = if lock.file_name().is_some_and(|n| n == "index.lock") {
                        self.dir
                    } else {
                        &cfg.workspace
                    };
                    if cmd::remove_stale_lock(&lock, &[scope], cfg.stale_lock_age) {
                        retried = true;
                        continue;
                    }
                }
            }
            return Ok(out);
        }
    }

    /// Runs git and fails on a non-zero exit; returns stdout.
    pub async fn run(self) -> Result<String, GitError> {
        Ok(self.output().await?.check()?.stdout)
    }
}
