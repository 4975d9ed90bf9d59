//! The one command builder: every git process cco runs is built by [`GitRepo::git`] (or
//! [`GitRepo::agent_git`] for an agent's repository) and run by [`GitCmd::output`] /
//! [`GitCmd::run`], so what applies to all of them (identity, timeout, process group,
//! stale-lock retry, the hardening of `harden.rs`) is written once, here.

use std::path::{Path, PathBuf};

use crate::cmd::{self, Output, Spec};
use crate::harden;
use crate::repo::{AgentRepo, GitRepo};
use crate::GitError;

/// Whose configuration a git process may read besides its repository's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trust {
    /// Local work: no system config, cco's own (empty) global config.
    Local,
    /// Talking to the run's remote (clone, fetch, push of origin): the user's global and
    /// system config too (credentials, ssh, URL rewrites).
    Remote,
}

/// Where a git command runs: a directory of cco's own repository, or an agent's repository.
#[derive(Clone, Copy)]
pub(crate) enum At<'a> {
    Dir(&'a Path),
    Agent(&'a AgentRepo),
}

impl<'a> From<&'a Path> for At<'a> {
    fn from(p: &'a Path) -> Self {
        At::Dir(p)
    }
}

impl<'a> From<&'a PathBuf> for At<'a> {
    fn from(p: &'a PathBuf) -> Self {
        At::Dir(p)
    }
}

impl<'a> From<&'a AgentRepo> for At<'a> {
    fn from(a: &'a AgentRepo) -> Self {
        At::Agent(a)
    }
}

/// One git invocation being built. Nothing runs until [`GitCmd::output`] or [`GitCmd::run`].
#[must_use = "a git command does nothing until it is run"]
pub(crate) struct GitCmd<'a> {
    repo: &'a GitRepo,
    op: &'a str,
    dir: &'a Path,
    /// Global options (before the subcommand).
    pre: Vec<String>,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
    trust: Trust,
    /// The git dir whose config is scanned for agent-named drivers (`None`: not scanned).
    git_dir: Option<PathBuf>,
    /// Files stdin is read from and stdout written to (opened for each attempt).
    stdin_file: Option<&'a Path>,
    /// Where in `stdin_file` the input starts (a bundle's pack follows its header).
    stdin_offset: u64,
    stdout_file: Option<&'a Path>,
    /// See [`GitCmd::max_stdout`].
    max_stdout: Option<u64>,
}

impl GitRepo {
    /// A git command for op `op` (a label for logs and errors) run in `dir`, a directory of
    /// cco's own repository (the clone or one of its integration worktrees) or outside any.
    pub(crate) fn git<'a>(&'a self, op: &'a str, dir: &'a Path) -> GitCmd<'a> {
        let common = self.repo_dir().join(".git");
        GitCmd {
            repo: self,
            op,
            dir,
            pre: Vec::new(),
            args: Vec::new(),
            envs: Vec::new(),
            stdin: None,
            trust: Trust::Local,
            git_dir: common.is_dir().then_some(common),
            stdin_file: None,
            stdin_offset: 0,
            stdout_file: None,
            max_stdout: None,
        }
    }

    /// [`GitRepo::git`] or [`GitRepo::agent_git`], by place.
    pub(crate) fn git_at<'a>(&'a self, op: &'a str, at: At<'a>) -> GitCmd<'a> {
        match at {
            At::Dir(dir) => self.git(op, dir),
            At::Agent(agent) => self.agent_git(op, agent),
        }
    }

    /// A git command in an agent's repository: its git dir and work tree are named
    /// explicitly (whatever the agent did to `.git` files or `core.worktree`).
    pub(crate) fn agent_git<'a>(&'a self, op: &'a str, agent: &'a AgentRepo) -> GitCmd<'a> {
        let mut cmd = self.git(op, &agent.path);
        cmd.pre = vec![
            format!("--git-dir={}", agent.git_dir.display()),
            format!("--work-tree={}", agent.path.display()),
        ];
        cmd.git_dir = Some(agent.git_dir.clone());
        cmd
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

    /// Lets the process read the user's global and system config (see [`Trust::Remote`]).
    pub fn remote(mut self) -> Self {
        self.trust = Trust::Remote;
        self
    }

    /// Global options (`-c key=value`, ...) before the subcommand.
    pub fn pre<I, S>(mut self, opts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.pre
            .extend(opts.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// Written to git's standard input (then closed).
    pub fn stdin(mut self, data: &[u8]) -> Self {
        self.stdin = Some(data.to_vec());
        self
    }

    /// Standard input read from file `path` (binary data, e.g. a pack) from byte `offset` on.
    pub fn stdin_file_at(mut self, path: &'a Path, offset: u64) -> Self {
        self.stdin_file = Some(path);
        self.stdin_offset = offset;
        self
    }

    /// Standard output written to file `path` (created or truncated); the output's `stdout`
    /// is then empty.
    pub fn stdout_file(mut self, path: &'a Path) -> Self {
        self.stdout_file = Some(path);
        self
    }

    /// At most `bytes` of standard output are read: git printing more is killed and the
    /// command fails with [`GitError::OutputTooLarge`] (what an agent's commits make git
    /// print must not take cco's memory).
    pub fn max_stdout(mut self, bytes: u64) -> Self {
        self.max_stdout = Some(bytes);
        self
    }

    /// Runs git; returns the output whatever the exit code. A failure caused by a stale lock
    /// file is retried once after removing the lock.
    pub async fn output(self) -> Result<Output, GitError> {
        let repo = self.repo;
        let cfg = repo.config();
        let hardening = repo.hardening();
        let mut envs = hardened_env(hardening, self.trust);
        envs.extend(self.envs);
        if let Some((name, email)) = repo.identity() {
            for k in ["GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"] {
                envs.push((k.into(), name.clone()));
            }
            for k in ["GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"] {
                envs.push((k.into(), email.clone()));
            }
        }
        let mut args = Vec::new();
        let mut overrides = harden::fixed_overrides(hardening);
        if let Some(git_dir) = &self.git_dir {
            overrides.extend(repo.driver_overrides(git_dir).await?);
        }
        for o in overrides {
            args.push("-c".to_string());
            args.push(o);
        }
        args.extend(self.pre);
        args.extend(self.args);
        let program = cfg.git_program.to_string_lossy().into_owned();
        let mut retried = false;
        loop {
            let files = cmd::Files {
                stdin: match self.stdin_file {
                    Some(p) => {
                        use std::io::{Seek, SeekFrom};
                        let mut file =
                            std::fs::File::open(p).map_err(|e| GitError::io(self.op, p, e))?;
                        if self.stdin_offset > 0 {
                            file.seek(SeekFrom::Start(self.stdin_offset))
                                .map_err(|e| GitError::io(self.op, p, e))?;
                        }
                        Some(file)
                    }
                    None => None,
                },
                stdout: match self.stdout_file {
                    Some(p) => {
                        Some(std::fs::File::create(p).map_err(|e| GitError::io(self.op, p, e))?)
                    }
                    None => None,
                },
            };
            let out = cmd::run(Spec {
                op: self.op,
                program: &program,
                args: args.clone(),
                dir: self.dir,
                envs: envs.clone(),
                timeout: cfg.git_timeout,
                stdin: self.stdin.clone(),
                files,
                max_stdout: self.max_stdout,
                env_remove: Vec::new(),
                stdout_tail: None,
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

/// The environment every git process gets (on top of what `cmd` sets).
fn hardened_env(h: &harden::Hardening, trust: Trust) -> Vec<(String, String)> {
    let mut envs = vec![
        ("GIT_NO_REPLACE_OBJECTS".to_string(), "1".to_string()),
        ("GIT_ATTR_NOSYSTEM".into(), "1".into()),
        ("GIT_PAGER".into(), "cat".into()),
        ("GIT_SEQUENCE_EDITOR".into(), "true".into()),
    ];
    if trust == Trust::Local {
        envs.push(("GIT_CONFIG_NOSYSTEM".into(), "1".into()));
        envs.push(("GIT_CONFIG_GLOBAL".into(), h.empty.display().to_string()));
    }
    envs
}

impl GitRepo {
    /// The overrides that neutralise agent-named drivers in the config of `git_dir` (see
    /// `harden.rs`), read with one `git config` (cached while the file is unchanged).
    pub(crate) async fn driver_overrides(&self, git_dir: &Path) -> Result<Vec<String>, GitError> {
        if !git_dir.join("config").is_file() {
            return Ok(Vec::new());
        }
        if let Some(cached) = self.drivers().get(git_dir) {
            return Ok(cached);
        }
        let h = self.hardening();
        let mut args = Vec::new();
        for o in harden::fixed_overrides(h) {
            args.push("-c".to_string());
            args.push(o);
        }
        args.push(format!("--git-dir={}", git_dir.display()));
        args.extend(["config", "--list", "-z", "--name-only"].map(String::from));
        let out = cmd::run(Spec {
            op: "config",
            program: &self.config().git_program.to_string_lossy(),
            args,
            dir: git_dir,
            envs: hardened_env(h, Trust::Local),
            timeout: self.config().git_timeout,
            stdin: None,
            files: Default::default(),
            max_stdout: None,
            env_remove: Vec::new(),
            stdout_tail: None,
        })
        .await?
        .check()?;
        let overrides = harden::driver_overrides(out.stdout.split('\0').filter(|k| !k.is_empty()));
        if !overrides.is_empty() {
            tracing::warn!(git_dir = %git_dir.display(), ?overrides, "repository config names drivers that run programs; cco's git neutralises them");
        }
        self.drivers().put(git_dir, overrides.clone());
        Ok(overrides)
    }
}
