//! The plain async git layer: every function runs git processes (bounded by
//! [`GitConfig::git_timeout`]) and can be used without the actor (tests do). It is NOT safe to
//! call concurrently on one repository — the [`crate::GitActor`] serialises it.

use std::collections::BTreeSet;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::cmd::{self, Output, Spec};
use crate::error::tail;
use crate::sanitize::{
    branch_name_problem, is_secret_path, single_component, slugify, validate_relative_path,
};
use crate::types::*;
use crate::GitError;

/// Lines appended to `$GIT_COMMON_DIR/info/exclude` so secrets never show up as untracked.
const SECRET_EXCLUDES: &[&str] = &[".claude/", "api-keys.json", ".env*"];

/// Branch of team `team` (hierarchy mode). Not `cco/<team>`: git cannot hold both the ref
/// `cco/<team>` and the worker refs `cco/<team>/<worker>` (file/directory conflict).
pub fn team_branch(team: &str) -> String {
    format!("cco/{}/team", single_component(team))
}

/// Branch of a worker: `cco/<team>/<worker-id>` (flat mode: team `flat`). A worker named
/// `team` becomes `team-worker` so it cannot collide with [`team_branch`].
pub fn worker_branch(team: &str, worker_id: &str) -> String {
    let w = single_component(worker_id);
    let w = if w == "team" {
        "team-worker".to_string()
    } else {
        w
    };
    format!("cco/{}/{}", single_component(team), w)
}

/// The frozen ref of a task's work: `refs/cco/tasks/<run>/<team>/<task-id>`. A worker's
/// finished turn is captured here (see [`GitRepo::capture_task`]) so the worker can take its
/// next task while this one is reviewed and merged. Per run, so a task id reused by a later
/// run in the same workspace never sees an earlier run's work. Outside `refs/heads/`: not a
/// branch anyone checks out, but kept (and fetchable) like one.
pub fn task_ref(run: &str, team: &str, task_id: &str) -> String {
    format!(
        "refs/cco/tasks/{}/{}/{}",
        single_component(run),
        single_component(team),
        single_component(task_id)
    )
}

/// `name` as a full ref name git can use without resolving it first: a full ref (`refs/...`)
/// as it is, a valid branch name as `refs/heads/<name>`. `None` for anything else (ids,
/// `main~1`): resolve those. Only for ops that run one at a time (the GitActor's): nothing can
/// move the ref between two commands of the op.
fn direct_ref(name: &str) -> Option<String> {
    if branch_name_problem(name).is_some() {
        None
    } else if name.starts_with("refs/") {
        Some(name.to_string())
    } else {
        Some(format!("refs/heads/{name}"))
    }
}

/// The branch a worktree's `HEAD` file names: `Some(None)` when detached, `None` when git
/// should be asked (a symbolic ref to something else than a branch, an unknown format).
fn branch_of(head: &Path) -> Option<Option<String>> {
    let text = std::fs::read_to_string(head).ok()?;
    let text = text.trim_end_matches('\n');
    if let Some(r) = text.strip_prefix("ref: ") {
        let b = r.strip_prefix("refs/heads/")?;
        (!b.is_empty() && b != ".invalid").then(|| Some(b.to_string()))
    } else if matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(None)
    } else {
        None
    }
}

/// One entry of `git worktree list --porcelain`.
#[derive(Debug, Clone)]
struct WorktreeEntry {
    path: PathBuf,
    branch: Option<String>,
    /// The worktree's private git dir (`$GIT_COMMON_DIR/worktrees/<id>`), when known.
    git_dir: Option<PathBuf>,
}

pub struct GitRepo {
    cfg: GitConfig,
    repo_dir: PathBuf,
    env_rel: Vec<PathBuf>,
    info: Mutex<Option<RepoInfo>>,
    /// In-memory merges allowed (tests turn them off to compare with the worktree path).
    fast_merge: std::sync::atomic::AtomicBool,
    /// `Some(None)`: in-memory merges impossible; `Some(Some(hooks dir))`: possible.
    merge_tree_env: Mutex<Option<Option<PathBuf>>>,
}

impl std::fmt::Debug for GitRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitRepo")
            .field("repo_dir", &self.repo_dir)
            .finish()
    }
}

fn strs(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn nul_list(s: &str) -> Vec<String> {
    s.split('\0')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn is_url(source: &str) -> bool {
    source.contains("://")
        || (!source.starts_with('/')
            && !source.starts_with('.')
            && source.contains(':')
            && source.contains('@'))
}

fn timestamp() -> String {
    chrono::Utc::now().format("%Y%m%d-%H%M%S-%3f").to_string()
}

/// Splits `git diff --numstat -z --stat` output into (files, insertions, deletions, stat).
/// A numstat record is `<added>\t<deleted>\t<path>\0`, or for a rename/copy
/// `<added>\t<deleted>\t\0<old>\0<new>\0` (the file is `<new>`, as `--name-only` lists it);
/// binary files count `-`. The stat text follows the last record.
fn parse_numstat_z_then_stat(out: &str) -> Option<(Vec<String>, u64, u64, String)> {
    let (mut files, mut ins, mut del) = (Vec::new(), 0u64, 0u64);
    let mut rest = out;
    while !rest.is_empty() && !rest.starts_with(' ') {
        let (added, r) = rest.split_once('\t')?;
        let (deleted, r) = r.split_once('\t')?;
        let num = |n: &str| -> Option<u64> {
            if n == "-" {
                Some(0)
            } else {
                n.parse().ok()
            }
        };
        ins += num(added)?;
        del += num(deleted)?;
        let (path, r) = r.split_once('\0')?;
        rest = if path.is_empty() {
            let (_old, r) = r.split_once('\0')?;
            let (new, r) = r.split_once('\0')?;
            files.push(new.to_string());
            r
        } else {
            files.push(path.to_string());
            r
        };
    }
    Some((files, ins, del, rest.to_string()))
}

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

fn count_markers(text: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with("<<<<<<<") || l.starts_with(">>>>>>>"))
        .count()
}

impl GitRepo {
    /// Validates the configuration (env file paths); runs no git.
    pub fn new(cfg: GitConfig) -> Result<GitRepo, GitError> {
        let mut env_rel = Vec::new();
        for e in &cfg.env_files {
            let rel = validate_relative_path(&e.relative.to_string_lossy())?;
            if !e.source.is_absolute() {
                return Err(GitError::InvalidPath {
                    path: e.source.display().to_string(),
                    reason: "env file source must be absolute".into(),
                });
            }
            env_rel.push(rel);
        }
        let repo_dir = cfg.workspace.join("repo");
        Ok(GitRepo {
            cfg,
            repo_dir,
            env_rel,
            info: Mutex::new(None),
            fast_merge: std::sync::atomic::AtomicBool::new(true),
            merge_tree_env: Mutex::new(None),
        })
    }

    /// Testing aid: `false` makes every merge go through the integration worktree.
    #[doc(hidden)]
    pub fn set_in_memory_merges(&self, enabled: bool) {
        self.fast_merge
            .store(enabled, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn config(&self) -> &GitConfig {
        &self.cfg
    }

    /// `<workspace>/repo`.
    pub fn repo_dir(&self) -> &Path {
        &self.repo_dir
    }

    /// Set by [`GitRepo::setup`].
    pub fn info(&self) -> Option<RepoInfo> {
        self.info.lock().map(|g| g.clone()).unwrap_or(None)
    }

    fn base(&self) -> Result<String, GitError> {
        self.info()
            .map(|i| i.base_branch)
            .ok_or_else(|| GitError::invalid("git", "repository not set up (call setup first)"))
    }

    pub fn worktree_path(&self, worker_id: &str) -> PathBuf {
        self.cfg
            .workspace
            .join("worktrees")
            .join(single_component(worker_id))
    }

    fn integration_path(&self, target: &str) -> PathBuf {
        self.cfg.workspace.join("integration").join(slugify(target))
    }

    // ----- running git -------------------------------------------------------------------

    /// Runs git; returns the output whatever the exit code. A failure caused by a stale lock
    /// file is retried once after removing the lock.
    async fn git_out(
        &self,
        op: &str,
        dir: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<Output, GitError> {
        self.git_io(op, dir, args, envs, None).await
    }

    /// [`GitRepo::git_out`] with `stdin` written to the process.
    async fn git_io(
        &self,
        op: &str,
        dir: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
        stdin: Option<&[u8]>,
    ) -> Result<Output, GitError> {
        let mut envs: Vec<(String, String)> = envs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some((name, email)) = &self.cfg.identity {
            for k in ["GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"] {
                envs.push((k.into(), name.clone()));
            }
            for k in ["GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"] {
                envs.push((k.into(), email.clone()));
            }
        }
        let mut retried = false;
        loop {
            let out = cmd::run(Spec {
                op,
                program: "git",
                args: strs(args),
                dir,
                envs: envs.clone(),
                timeout: self.cfg.git_timeout,
                stdin: stdin.map(<[u8]>::to_vec),
            })
            .await?;
            if !out.success() && !retried {
                if let Some(lock) = cmd::lock_in_stderr(&out.stderr) {
                    // An index lock belongs to the worktree we run in; other locks (refs,
                    // config) to the whole repository, i.e. any worktree of the workspace.
                    let scope: &Path = if lock.file_name().is_some_and(|n| n == "index.lock") {
                        dir
                    } else {
                        &self.cfg.workspace
                    };
                    if cmd::remove_stale_lock(&lock, &[scope], self.cfg.stale_lock_age) {
                        retried = true;
                        continue;
                    }
                }
            }
            return Ok(out);
        }
    }

    /// Runs git and fails on a non-zero exit; returns stdout.
    async fn git(&self, op: &str, dir: &Path, args: &[&str]) -> Result<String, GitError> {
        self.git_env(op, dir, args, &[]).await
    }

    async fn git_env(
        &self,
        op: &str,
        dir: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<String, GitError> {
        let out = self.git_out(op, dir, args, envs).await?;
        Ok(cmd::check(op, &strs(args), dir, out)?.stdout)
    }

    /// `rev-parse --verify` of a commit-ish; `None` when it does not resolve.
    async fn resolve(&self, dir: &Path, rev: &str) -> Result<Option<String>, GitError> {
        if rev.starts_with('-') || rev.is_empty() {
            return Err(GitError::invalid(
                "resolve",
                format!("bad revision {rev:?}"),
            ));
        }
        let spec = format!("{rev}^{{commit}}");
        let out = self
            .git_out(
                "rev-parse",
                dir,
                &["rev-parse", "-q", "--verify", "--end-of-options", &spec],
                &[],
            )
            .await?;
        Ok(out.success().then(|| out.stdout.trim().to_string()))
    }

    async fn resolve_required(&self, dir: &Path, rev: &str) -> Result<String, GitError> {
        self.resolve(dir, rev)
            .await?
            .ok_or_else(|| GitError::NotFound {
                what: format!("revision {rev}"),
            })
    }

    /// A local branch name or any commit-ish; local branches win.
    async fn resolve_branchish(&self, rev: &str) -> Result<String, GitError> {
        if branch_name_problem(rev).is_none() {
            if let Some(s) = self
                .resolve(&self.repo_dir, &format!("refs/heads/{rev}"))
                .await?
            {
                return Ok(s);
            }
        }
        self.resolve_required(&self.repo_dir, rev).await
    }

    /// [`GitRepo::resolve`] of several revisions with one `cat-file --batch-check` (same
    /// name resolution as `rev-parse --verify <rev>^{commit}`). Falls back to one
    /// `rev-parse` per revision when a name cannot be sent on a line.
    async fn resolve_many(
        &self,
        dir: &Path,
        revs: &[String],
    ) -> Result<Vec<Option<String>>, GitError> {
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
                out.push(self.resolve(dir, rev).await?);
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
            .git_io("rev-parse", dir, &args, &[], Some(input.as_bytes()))
            .await?;
        let out = cmd::check("rev-parse", &strs(&args), dir, out)?;
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
                (matches!(l.len(), 40 | 64) && l.bytes().all(|b| b.is_ascii_hexdigit()))
                    .then(|| l.to_string())
            })
            .collect())
    }

    /// [`GitRepo::resolve_branchish`] of several names with one git process (run in `dir`;
    /// only give names that resolve the same in every worktree).
    async fn resolve_branchish_many(
        &self,
        dir: &Path,
        names: &[&str],
    ) -> Result<Vec<String>, GitError> {
        let mut revs = Vec::new();
        let mut idx = Vec::new();
        for name in names {
            let local = branch_name_problem(name)
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
        let found = self.resolve_many(dir, &revs).await?;
        names
            .iter()
            .zip(idx)
            .map(|(name, (local, plain))| {
                local
                    .and_then(|i| found[i].clone())
                    .or_else(|| found[plain].clone())
                    .ok_or_else(|| GitError::NotFound {
                        what: format!("revision {name}"),
                    })
            })
            .collect()
    }

    async fn is_ancestor(&self, dir: &Path, a: &str, b: &str) -> Result<bool, GitError> {
        let out = self
            .git_out(
                "merge-base",
                dir,
                &["merge-base", "--is-ancestor", a, b],
                &[],
            )
            .await?;
        match out.code {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(cmd::check(
                "merge-base",
                &strs(&["merge-base", "--is-ancestor", a, b]),
                dir,
                out,
            )
            .unwrap_err()),
        }
    }

    async fn merging(&self, dir: &Path) -> Result<bool, GitError> {
        Ok(self
            .git_out(
                "rev-parse",
                dir,
                &["rev-parse", "-q", "--verify", "MERGE_HEAD"],
                &[],
            )
            .await?
            .success())
    }

    async fn unmerged_files(&self, dir: &Path) -> Result<Vec<String>, GitError> {
        let out = self
            .git(
                "diff",
                dir,
                &["diff", "--name-only", "--diff-filter=U", "-z"],
            )
            .await?;
        let set: BTreeSet<String> = nul_list(&out).into_iter().collect();
        Ok(set.into_iter().collect())
    }

    /// Tracked changes or untracked (non-ignored) files.
    async fn is_dirty(&self, dir: &Path) -> Result<bool, GitError> {
        let out = self
            .git("status", dir, &["status", "--porcelain", "-z"])
            .await?;
        Ok(!out.is_empty())
    }

    /// The worktrees of the repository (main one first), like `git worktree list`.
    async fn worktrees(&self) -> Result<Vec<WorktreeEntry>, GitError> {
        if let Some(list) = self.worktrees_from_files() {
            return Ok(list);
        }
        self.worktrees_from_git().await
    }

    /// The worktree list read the way git reads it (`gitrepository-layout(5)`:
    /// `$GIT_COMMON_DIR/HEAD`, `worktrees/<id>/gitdir` and `worktrees/<id>/HEAD`) without
    /// spawning git. `None` (ask git) whenever the layout is not the plain files one.
    fn worktrees_from_files(&self) -> Option<Vec<WorktreeEntry>> {
        let common = self.repo_dir.join(".git");
        if !common.is_dir() || common.join("reftable").exists() {
            return None;
        }
        let main_path = std::fs::canonicalize(&self.repo_dir).ok()?;
        let mut list = vec![WorktreeEntry {
            path: main_path,
            branch: branch_of(&common.join("HEAD"))?,
            git_dir: Some(common.clone()),
        }];
        let dir = common.join("worktrees");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(list),
            Err(_) => return None,
        };
        let mut linked = Vec::new();
        for entry in entries {
            let git_dir = entry.ok()?.path();
            if !git_dir.is_dir() {
                continue;
            }
            let gitdir = std::fs::read_to_string(git_dir.join("gitdir")).ok()?;
            let dotgit = PathBuf::from(gitdir.trim_end_matches(['\n', '\r']));
            if !dotgit.is_absolute() || dotgit.file_name() != Some(".git".as_ref()) {
                return None;
            }
            linked.push(WorktreeEntry {
                path: dotgit.parent()?.to_path_buf(),
                branch: branch_of(&git_dir.join("HEAD"))?,
                git_dir: Some(git_dir),
            });
        }
        linked.sort_by(|a, b| a.path.cmp(&b.path));
        list.extend(linked);
        Some(list)
    }

    /// The worktrees with `branch` checked out. Read from the files, only each worktree's
    /// `HEAD` first (this runs after every merge, and a run has two worktrees per worker);
    /// git is asked when the layout is not the plain files one.
    async fn worktrees_on(&self, branch: &str) -> Result<Vec<WorktreeEntry>, GitError> {
        let common = self.repo_dir.join(".git");
        let want = format!("ref: refs/heads/{branch}");
        let plain = common.is_dir() && !common.join("reftable").exists();
        let dir = common.join("worktrees");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) if plain => Some(entries),
            Err(e) if plain && e.kind() == std::io::ErrorKind::NotFound => None,
            _ => {
                let all = self.worktrees().await?;
                return Ok(all
                    .into_iter()
                    .filter(|e| e.branch.as_deref() == Some(branch))
                    .collect());
            }
        };
        let mut heads = vec![common.join("HEAD")];
        heads.extend(
            entries
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().join("HEAD")),
        );
        let named = heads.iter().any(|head| {
            std::fs::read_to_string(head).is_ok_and(|t| t.trim_end_matches('\n') == want)
        });
        if !named {
            return Ok(Vec::new());
        }
        // Rare: someone checked the branch out. The full listing says where.
        let all = self.worktrees().await?;
        Ok(all
            .into_iter()
            .filter(|e| e.branch.as_deref() == Some(branch))
            .collect())
    }

    /// The entry of one linked worktree (canonical path `want`) read from its own files:
    /// `<want>/.git` names `$GIT_COMMON_DIR/worktrees/<id>`, whose `gitdir` points back.
    /// `None` (list them all) whenever anything is not the plain files layout.
    fn worktree_from_files(&self, want: &Path) -> Option<WorktreeEntry> {
        let common = self.repo_dir.join(".git");
        if !common.is_dir() || common.join("reftable").exists() {
            return None;
        }
        let dotgit = std::fs::read_to_string(want.join(".git")).ok()?;
        let git_dir = PathBuf::from(
            dotgit
                .strip_prefix("gitdir: ")?
                .trim_end_matches(['\n', '\r']),
        );
        let git_dir = std::fs::canonicalize(want.join(git_dir)).ok()?;
        if git_dir.parent()? != std::fs::canonicalize(common.join("worktrees")).ok()? {
            return None;
        }
        let back = std::fs::read_to_string(git_dir.join("gitdir")).ok()?;
        let back = PathBuf::from(back.trim_end_matches(['\n', '\r']));
        if back.file_name() != Some(".git".as_ref())
            || std::fs::canonicalize(back.parent()?).ok()? != want
        {
            return None;
        }
        Some(WorktreeEntry {
            path: want.to_path_buf(),
            branch: branch_of(&git_dir.join("HEAD"))?,
            git_dir: Some(git_dir),
        })
    }

    async fn worktrees_from_git(&self) -> Result<Vec<WorktreeEntry>, GitError> {
        let out = self
            .git(
                "worktree",
                &self.repo_dir,
                &["worktree", "list", "--porcelain"],
            )
            .await?;
        let mut list = Vec::new();
        for block in out.split("\n\n") {
            let mut path = None;
            let mut branch = None;
            for line in block.lines() {
                if let Some(p) = line.strip_prefix("worktree ") {
                    path = Some(PathBuf::from(p));
                } else if let Some(b) = line.strip_prefix("branch refs/heads/") {
                    branch = Some(b.to_string());
                }
            }
            if let Some(path) = path {
                list.push(WorktreeEntry {
                    path,
                    branch,
                    git_dir: None,
                });
            }
        }
        Ok(list)
    }

    /// The entry of `worktree` if it is a linked worktree of our repository; refuses anything
    /// else (never operate on the user's own checkout).
    async fn our_worktree(&self, worktree: &Path) -> Result<WorktreeEntry, GitError> {
        let want =
            std::fs::canonicalize(worktree).map_err(|e| GitError::io("worktree", worktree, e))?;
        let repo = std::fs::canonicalize(&self.repo_dir).unwrap_or_else(|_| self.repo_dir.clone());
        if want != repo {
            if let Some(entry) = self.worktree_from_files(&want) {
                return Ok(entry);
            }
        }
        for e in self.worktrees().await? {
            let p = std::fs::canonicalize(&e.path).unwrap_or_else(|_| e.path.clone());
            if p == want && p != repo {
                return Ok(e);
            }
        }
        Err(GitError::invalid(
            "worktree",
            format!(
                "{} is not a worktree of {}",
                worktree.display(),
                self.repo_dir.display()
            ),
        ))
    }

    // ----- setup -------------------------------------------------------------------------

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
        self.write_excludes()?;
        *self
            .info
            .lock()
            .map_err(|_| GitError::Actor("poisoned".into()))? = Some(info.clone());
        Ok(info)
    }

    async fn reuse_clone(&self) -> Result<RepoInfo, GitError> {
        let repo = &self.repo_dir;
        let get = |key: &'static str| async move {
            let out = self
                .git_out("config", repo, &["config", "--get", key], &[])
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
            .git_out("remote", repo, &["remote", "get-url", "origin"], &[])
            .await?
            .success()
        {
            let out = self
                .git_out("fetch", repo, &["fetch", "-q", "origin"], &[])
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

    async fn fresh_clone(&self) -> Result<RepoInfo, GitError> {
        let ws = self.cfg.workspace.clone();
        let repo = self.repo_dir.clone();
        let url = is_url(&self.cfg.source);
        let source = if url {
            self.cfg.source.clone()
        } else {
            let p = std::fs::canonicalize(&self.cfg.source)
                .map_err(|e| GitError::io("clone", &self.cfg.source, e))?;
            p.to_string_lossy().into_owned()
        };
        if let Some(b) = &self.cfg.base_branch {
            if let Some(problem) = branch_name_problem(b) {
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
        args.extend(["--", &source, &repo_s]);
        self.git("clone", &ws, &args).await?;

        let head = self
            .git("symbolic-ref", &repo, &["symbolic-ref", "--short", "HEAD"])
            .await?
            .trim()
            .to_string();
        let upstream = self.cfg.base_branch.clone().unwrap_or(head);
        // A single-branch clone only fetches its one branch forever after; widen the refspec
        // so later fetches of other branches (and merges of them) work.
        self.git(
            "config",
            &repo,
            &[
                "config",
                "--replace-all",
                "remote.origin.fetch",
                "+refs/heads/*:refs/remotes/origin/*",
            ],
        )
        .await?;
        let refspec = format!("+refs/heads/{upstream}:refs/remotes/origin/{upstream}");
        let mut fetch = vec!["fetch", "-q"];
        if let Some(d) = &depth {
            fetch.push(d);
        }
        fetch.extend(["origin", &refspec]);
        self.git("fetch", &repo, &fetch).await?;
        if self
            .resolve(&repo, &format!("refs/heads/{upstream}"))
            .await?
            .is_none()
        {
            let remote = format!("refs/remotes/origin/{upstream}");
            self.git(
                "branch",
                &repo,
                &["branch", "--no-track", &upstream, &remote],
            )
            .await?;
        }
        let tip = self
            .resolve_required(&repo, &format!("refs/heads/{upstream}"))
            .await?;
        // Detached HEAD in a no-checkout clone: no branch is checked out here, so worktrees can
        // check out any branch and update-ref never leaves this checkout inconsistent.
        self.git(
            "update-ref",
            &repo,
            &["update-ref", "--no-deref", "HEAD", &tip],
        )
        .await?;

        if self.cfg.identity.is_none()
            && !self
                .git_out("config", &repo, &["config", "user.email"], &[])
                .await?
                .success()
        {
            self.git("config", &repo, &["config", "user.name", "cco"])
                .await?;
            self.git("config", &repo, &["config", "user.email", "cco@localhost"])
                .await?;
        }

        let push_remote = if url {
            Some("origin".to_string())
        } else {
            let src = PathBuf::from(&source);
            let bare = self
                .git_out(
                    "rev-parse",
                    &src,
                    &["rev-parse", "--is-bare-repository"],
                    &[],
                )
                .await?;
            if bare.stdout.trim() == "true" {
                Some("origin".to_string())
            } else {
                // A local checkout: push to *its* remote (never into the user's checkout).
                let up = self
                    .git_out(
                        "config",
                        &src,
                        &["config", "--get", "remote.origin.url"],
                        &[],
                    )
                    .await?;
                let up_url = up.stdout.trim().to_string();
                if up.success() && !up_url.is_empty() {
                    self.git("remote", &repo, &["remote", "add", "upstream", &up_url])
                        .await?;
                    Some("upstream".to_string())
                } else {
                    None
                }
            }
        };

        let run_branch = if self.cfg.use_run_branch {
            let name = format!("cco/run-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S"));
            self.git("branch", &repo, &["branch", "--no-track", &name, &tip])
                .await?;
            Some(name)
        } else {
            None
        };
        let base = run_branch.clone().unwrap_or_else(|| upstream.clone());
        self.git("config", &repo, &["config", "cco.baseBranch", &base])
            .await?;
        self.git(
            "config",
            &repo,
            &["config", "cco.upstreamBranch", &upstream],
        )
        .await?;
        if let Some(r) = &run_branch {
            self.git("config", &repo, &["config", "cco.runBranch", r])
                .await?;
        }
        if let Some(r) = &push_remote {
            self.git("config", &repo, &["config", "cco.pushRemote", r])
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

    fn write_excludes(&self) -> Result<(), GitError> {
        let info = self.repo_dir.join(".git").join("info");
        std::fs::create_dir_all(&info).map_err(|e| GitError::io("exclude", &info, e))?;
        let path = info.join("exclude");
        let mut text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut wanted: Vec<String> = SECRET_EXCLUDES.iter().map(|s| s.to_string()).collect();
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

    fn copy_env_files(&self, worktree: &Path) -> Result<(), GitError> {
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

    // ----- branches & worktrees ----------------------------------------------------------

    pub async fn head(&self, branch: &str) -> Result<String, GitError> {
        self.resolve_branchish(branch).await
    }

    pub async fn branch_exists(&self, branch: &str) -> Result<bool, GitError> {
        if branch_name_problem(branch).is_some() {
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
        if !self.branch_exists(&name).await? {
            let from = match from {
                Some(f) => f.to_string(),
                None => self.base()?,
            };
            let sha = self.resolve_branchish(&from).await?;
            self.git(
                "branch",
                &self.repo_dir,
                &["branch", "--no-track", &name, &sha],
            )
            .await?;
        }
        Ok(name)
    }

    /// Worktree `<workspace>/worktrees/<worker-id>` on `cco/<team>/<worker-id>` branched from
    /// `from`; reuses an existing one (resume). Env files are (re)copied with mode 0600.
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
        let reused = if path.exists() {
            let entry = self.our_worktree(&path).await?;
            if entry.branch.as_deref() != Some(branch.as_str()) {
                tracing::warn!(path = %path.display(), expected = %branch, actual = ?entry.branch, "reused worktree is on another branch");
            }
            true
        } else {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| GitError::io("worktree", parent, e))?;
            }
            let p = path.to_string_lossy().into_owned();
            // The worker's branch (if it exists) and the start point, in one process.
            let branch_ref = format!("refs/heads/{branch}");
            let from_local = branch_name_problem(from)
                .is_none()
                .then(|| format!("refs/heads/{from}"));
            let mut revs = vec![branch_ref];
            revs.extend(from_local);
            revs.push(from.to_string());
            let found = self.resolve_many(&self.repo_dir, &revs).await?;
            let args: Vec<String> = match &found[0] {
                Some(sha) => {
                    new_head = Some(sha.clone());
                    strs(&["worktree", "add", "-q", &p, &branch])
                }
                None => {
                    let sha = found[1..].iter().flatten().next().cloned().ok_or_else(|| {
                        GitError::NotFound {
                            what: format!("revision {from}"),
                        }
                    })?;
                    at_start_point = true;
                    new_head = Some(sha.clone());
                    strs(&["worktree", "add", "-q", "-b", &branch, &p, &sha])
                }
            };
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = self.git_out("worktree", &self.repo_dir, &args, &[]).await?;
            if !out.success() {
                // A worktree deleted without `git worktree remove` is still registered:
                // prune the registrations of missing worktrees and try once more.
                self.git("worktree", &self.repo_dir, &["worktree", "prune"])
                    .await?;
                self.git("worktree", &self.repo_dir, &args).await?;
            }
            false
        };
        self.write_excludes()?;
        self.copy_env_files(&path)?;
        if !self.cfg.clone.no_submodules && path.join(".gitmodules").exists() {
            let out = self
                .git_out(
                    "submodule",
                    &path,
                    &["submodule", "update", "--init", "--recursive"],
                    &[],
                )
                .await?;
            if !out.success() {
                tracing::warn!(path = %path.display(), stderr = %tail(&out.stderr, 500), "submodule update failed");
            }
        }
        let entry = self.our_worktree(&path).await?;
        let head = match new_head {
            Some(head) => head,
            None => self.resolve_required(&path, "HEAD").await?,
        };
        Ok(WorktreeInfo {
            path,
            branch: entry.branch.unwrap_or(branch),
            head,
            reused,
            at_start_point,
        })
    }

    /// `git add -A` into the current index of `dir` (or `index` if given), then unstages every
    /// secret file the add (or an agent's `git add -f`) staged.
    async fn stage_all(&self, dir: &Path, index: Option<&str>) -> Result<Vec<String>, GitError> {
        let envs: Vec<(&str, &str)> = index
            .map(|i| vec![("GIT_INDEX_FILE", i)])
            .unwrap_or_default();
        self.git_env("add", dir, &["add", "-A"], &envs).await?;
        let added = self
            .git_env(
                "diff",
                dir,
                &[
                    "diff",
                    "--cached",
                    "--name-only",
                    "--no-renames",
                    "--diff-filter=A",
                    "-z",
                    "HEAD",
                ],
                &envs,
            )
            .await?;
        let secrets: Vec<String> = nul_list(&added)
            .into_iter()
            .filter(|p| is_secret_path(p, &self.env_rel))
            .collect();
        if !secrets.is_empty() {
            tracing::warn!(dir = %dir.display(), files = ?secrets, "unstaging secret files");
            let mut args = vec!["rm", "--cached", "-q", "--ignore-unmatch", "--"];
            args.extend(secrets.iter().map(String::as_str));
            self.git_env("rm", dir, &args, &envs).await?;
        }
        Ok(secrets)
    }

    /// Commits everything the agent left uncommitted (secret files excluded). `None` when
    /// there was nothing to commit.
    pub async fn commit_all(
        &self,
        worktree: &Path,
        message: &str,
    ) -> Result<Option<String>, GitError> {
        let entry = self.our_worktree(worktree).await?;
        Ok(self.commit_worktree(worktree, &entry, message).await?.0)
    }

    /// [`GitRepo::commit_all`] of a checked worktree; also says whether the worktree was
    /// dirty (anything staged, changed or untracked, or a merge in progress).
    async fn commit_worktree(
        &self,
        worktree: &Path,
        entry: &WorktreeEntry,
        message: &str,
    ) -> Result<(Option<String>, bool), GitError> {
        // Common case (agents commit their own work): nothing staged, changed or untracked
        // and no merge in progress — one `status` answers it. Anything else takes the full
        // path below.
        if let Some(git_dir) = &entry.git_dir {
            let status = self
                .git(
                    "status",
                    worktree,
                    &[
                        "status",
                        "--porcelain",
                        "-z",
                        "--untracked-files=normal",
                        "--ignore-submodules=none",
                    ],
                )
                .await?;
            if status.is_empty() && !git_dir.join("MERGE_HEAD").exists() {
                return Ok((None, false));
            }
        }
        // `add -A` would mark conflicted files resolved, markers and all.
        let unmerged = self.unmerged_files(worktree).await?;
        if !unmerged.is_empty() {
            return Err(GitError::UnresolvedConflicts {
                path: worktree.to_path_buf(),
                files: unmerged,
            });
        }
        self.stage_all(worktree, None).await?;
        let nothing = self
            .git_out("diff", worktree, &["diff", "--cached", "--quiet"], &[])
            .await?
            .success();
        if nothing && !self.merging(worktree).await? {
            return Ok((None, true));
        }
        let msg = if message.trim().is_empty() {
            "cco: commit work"
        } else {
            message
        };
        self.git("commit", worktree, &["commit", "-q", "-m", msg])
            .await?;
        Ok((Some(self.resolve_required(worktree, "HEAD").await?), true))
    }

    /// Freezes a worker's finished turn and frees its worktree for the next task, in one op:
    /// commits what the agent left uncommitted (as [`GitRepo::commit_all`]), points `task_ref`
    /// (see [`task_ref`]) at the worktree's HEAD, then resets the worktree to the tip of
    /// `target` ("parks" it). The work stays reachable from `task_ref` for review and merge.
    ///
    /// A worktree whose HEAD is already in `target` (nothing done, or already parked: a
    /// capture repeated after a restart) leaves `task_ref` as it was. Unresolved conflicts are
    /// an error and leave the worktree untouched (use [`GitRepo::sync_worktree`], which
    /// snapshots).
    pub async fn capture_task(
        &self,
        worktree: &Path,
        message: &str,
        task_ref: &str,
        target: &str,
    ) -> Result<CaptureOutcome, GitError> {
        if !task_ref.starts_with("refs/cco/tasks/") || branch_name_problem(task_ref).is_some() {
            return Err(GitError::invalid(
                "capture_task",
                format!("not a task ref: {task_ref:?}"),
            ));
        }
        let entry = self.our_worktree(worktree).await?;
        let (committed, was_dirty) = self.commit_worktree(worktree, &entry, message).await?;
        // HEAD when it holds commits the target does not (in topological order the first
        // commit of `HEAD ^tip` is HEAD itself), nothing when the target contains it. The
        // target is named by its ref without resolving it first ([`direct_ref`]); a name
        // that is not one is resolved.
        let not_in = |tip: String| async move {
            let args = ["rev-list", "--topo-order", "-n1", "HEAD", "--not", &tip];
            let out = self.git_out("rev-list", worktree, &args, &[]).await?;
            Ok::<_, GitError>(out.success().then(|| (tip.clone(), out.stdout)))
        };
        let found = match direct_ref(target) {
            Some(tip) => not_in(tip).await?,
            None => None,
        };
        let (tip, not_in_target) = match found {
            Some(found) => found,
            None => {
                let tip = self.resolve_required(&self.repo_dir, target).await?;
                let args = ["rev-list", "--topo-order", "-n1", "HEAD", "--not", &tip];
                let out = self.git("rev-list", worktree, &args).await?;
                (tip, out)
            }
        };
        let new_head = Some(not_in_target.trim().to_string()).filter(|h| !h.is_empty());
        let new_work = new_head.is_some();
        let task_commit = match new_head {
            Some(head) => {
                self.git(
                    "update-ref",
                    &self.repo_dir,
                    &["update-ref", "-m", "cco: capture task", task_ref, &head],
                )
                .await?;
                Some(head)
            }
            None => self.resolve(&self.repo_dir, task_ref).await?,
        };
        // Everything not in `target` is now in `task_ref` (or was already in `target`).
        self.git("reset", worktree, &["reset", "-q", "--hard", &tip])
            .await?;
        if was_dirty {
            // Untracked files that were not committed (secret files): nothing else is left.
            self.git("clean", worktree, &["clean", "-fdq"]).await?;
        }
        Ok(CaptureOutcome {
            committed,
            task_commit,
            moved: new_work,
        })
    }

    /// Records the worktree's full state (HEAD + tracked changes + untracked, non-excluded
    /// files) as `refs/cco/snapshots/<worker-id>/<timestamp>`. Without `force`, only when the
    /// worktree is dirty. The real index and working tree are not touched.
    pub async fn snapshot(
        &self,
        worktree: &Path,
        worker_id: &str,
        force: bool,
    ) -> Result<Option<String>, GitError> {
        let head = self.resolve_required(worktree, "HEAD").await?;
        let git_dir = self
            .git("rev-parse", worktree, &["rev-parse", "--absolute-git-dir"])
            .await?
            .trim()
            .to_string();
        let index = format!("{git_dir}/cco-snapshot.index");
        let _ = std::fs::remove_file(&index);
        let env = [("GIT_INDEX_FILE", index.as_str())];
        let tree = async {
            self.git_env("read-tree", worktree, &["read-tree", "HEAD"], &env)
                .await?;
            self.stage_all(worktree, Some(&index)).await?;
            Ok::<_, GitError>(
                self.git_env("write-tree", worktree, &["write-tree"], &env)
                    .await?
                    .trim()
                    .to_string(),
            )
        }
        .await;
        let _ = std::fs::remove_file(&index);
        let tree = tree?;
        let head_tree = self
            .git("rev-parse", worktree, &["rev-parse", "HEAD^{tree}"])
            .await?
            .trim()
            .to_string();
        if tree == head_tree && !force {
            return Ok(None);
        }
        let id = single_component(worker_id);
        let ts = timestamp();
        let msg = format!("cco snapshot of {id} at {ts}");
        let commit = self
            .git(
                "commit-tree",
                worktree,
                &["commit-tree", &tree, "-p", &head, "-m", &msg],
            )
            .await?
            .trim()
            .to_string();
        let mut name = format!("refs/cco/snapshots/{id}/{ts}");
        let mut n = 1;
        while self.resolve(&self.repo_dir, &name).await?.is_some() {
            name = format!("refs/cco/snapshots/{id}/{ts}-{n}");
            n += 1;
        }
        self.git(
            "update-ref",
            &self.repo_dir,
            &["update-ref", &name, &commit],
        )
        .await?;
        tracing::info!(worktree = %worktree.display(), snapshot = %name, "worktree state snapshotted");
        Ok(Some(name))
    }

    /// Removes a worker's worktree (and optionally its branch) after snapshotting anything
    /// that would be lost: uncommitted changes, or — when the branch goes — commits not in
    /// the base branch.
    pub async fn remove_worktree(
        &self,
        worker_id: &str,
        delete_branch: bool,
    ) -> Result<RemoveOutcome, GitError> {
        let path = self.worktree_path(worker_id);
        self.git("worktree", &self.repo_dir, &["worktree", "prune"])
            .await?;
        if !path.exists() {
            return Err(GitError::NotFound {
                what: format!("worktree {}", path.display()),
            });
        }
        let entry = self.our_worktree(&path).await?;
        let head = self.resolve_required(&path, "HEAD").await?;
        let unmerged_commits = match (delete_branch, self.info()) {
            (true, Some(info)) => {
                !self
                    .is_ancestor(
                        &self.repo_dir,
                        &head,
                        &format!("refs/heads/{}", info.base_branch),
                    )
                    .await?
            }
            (true, None) => true,
            _ => false,
        };
        let snapshot = self.snapshot(&path, worker_id, unmerged_commits).await?;
        let p = path.to_string_lossy().into_owned();
        self.git(
            "worktree",
            &self.repo_dir,
            &["worktree", "remove", "--force", &p],
        )
        .await?;
        let mut branch_deleted = false;
        if delete_branch {
            if let Some(b) = entry.branch {
                self.git("branch", &self.repo_dir, &["branch", "-D", "-q", &b])
                    .await?;
                branch_deleted = true;
            }
        }
        Ok(RemoveOutcome {
            snapshot,
            branch_deleted,
        })
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

    /// Resets the worktree to `to` (a branch or any commit-ish, e.g. a [`task_ref`]). It is
    /// snapshotted first when it holds anything not in `to` nor in `kept_in`: uncommitted
    /// changes, a merge in progress, or a HEAD that neither contains. Already at `to` and
    /// clean: no change (two git processes).
    pub async fn switch_worktree(
        &self,
        worktree: &Path,
        to: &str,
        kept_in: Option<&str>,
    ) -> Result<SyncOutcome, GitError> {
        self.our_worktree(worktree).await?;
        // One process for the target, HEAD and MERGE_HEAD. Branches are shared by every
        // worktree; any other name of `to` is resolved in the clone, as before.
        let local = branch_name_problem(to)
            .is_none()
            .then(|| format!("refs/heads/{to}"));
        let mut revs = vec!["HEAD".to_string(), "MERGE_HEAD".to_string()];
        revs.extend(local.clone());
        let found = self.resolve_many(worktree, &revs).await?;
        let head = found[0].clone().ok_or_else(|| GitError::NotFound {
            what: "revision HEAD".into(),
        })?;
        let merging = found[1].is_some();
        let target = match found.get(2).cloned().flatten() {
            Some(t) => t,
            None => self.resolve_required(&self.repo_dir, to).await?,
        };
        let dirty = self.is_dirty(worktree).await?;
        if head == target && !merging && !dirty {
            return Ok(SyncOutcome {
                head: target,
                snapshot: None,
            });
        }
        let mut contained = head == target || self.is_ancestor(worktree, &head, &target).await?;
        if !contained {
            if let Some(kept) = kept_in {
                let kept = self.resolve_branchish(kept).await?;
                contained = self.is_ancestor(worktree, &head, &kept).await?;
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
            self.git("merge", worktree, &["merge", "--abort"]).await?;
        }
        self.git("reset", worktree, &["reset", "-q", "--hard", &target])
            .await?;
        if dirty || merging {
            // Untracked leftovers are in the snapshot; ignored/excluded files (env files,
            // build caches) stay.
            self.git("clean", worktree, &["clean", "-fdq"]).await?;
        }
        Ok(SyncOutcome {
            head: target,
            snapshot,
        })
    }

    // ----- merging -----------------------------------------------------------------------

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
        if let Some(problem) = branch_name_problem(&req.target) {
            return Err(GitError::InvalidBranchName {
                name: req.target.clone(),
                reason: problem,
            });
        }
        let target_ref = format!("refs/heads/{}", req.target);
        // Target tip and source in one process (the source: a local branch wins).
        let source_local = branch_name_problem(&req.source)
            .is_none()
            .then(|| format!("refs/heads/{}", req.source));
        let mut revs = vec![target_ref.clone()];
        revs.extend(source_local.clone());
        revs.push(req.source.clone());
        let found = self.resolve_many(&repo, &revs).await?;
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
        let mut mb = self
            .git_out("merge-base", &repo, &["merge-base", &old, &src], &[])
            .await?;
        if !mb.success() {
            let shallow = self
                .git(
                    "rev-parse",
                    &repo,
                    &["rev-parse", "--is-shallow-repository"],
                )
                .await?;
            if shallow.trim() == "true" {
                tracing::info!("no merge base in a shallow clone; unshallowing");
                self.git("fetch", &repo, &["fetch", "-q", "--unshallow", "origin"])
                    .await?;
                mb = self
                    .git_out("merge-base", &repo, &["merge-base", &old, &src], &[])
                    .await?;
            }
        }
        let mb = cmd::check("merge-base", &strs(&["merge-base", &old, &src]), &repo, mb)?
            .stdout
            .trim()
            .to_string();
        // The source is contained in the target exactly when it is their (only) merge base.
        if mb == src {
            return Ok(MergeOutcome::UpToDate { commit: old });
        }
        let added = self
            .git(
                "diff",
                &repo,
                &[
                    "diff",
                    "--name-only",
                    "--no-renames",
                    "--diff-filter=A",
                    "-z",
                    &mb,
                    &src,
                ],
            )
            .await?;
        if let Some(secret) = nul_list(&added)
            .into_iter()
            .find(|p| is_secret_path(p, &self.env_rel))
        {
            return Err(GitError::SecretFile {
                op: "merge".into(),
                branch: req.source.clone(),
                path: secret,
            });
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
    async fn merge_in_memory(
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
        let out = self.git_out("merge-tree", repo, &args, &[]).await?;
        let tree = out.stdout.split('\0').next().unwrap_or("").trim();
        let tree_ok = matches!(tree.len(), 40 | 64) && tree.bytes().all(|b| b.is_ascii_hexdigit());
        if out.code != Some(0) || !tree_ok {
            // 1 = conflicts: the worktree path reports (or union-resolves) them exactly as
            // `git merge` leaves them. Anything else is unexpected: let `git merge` decide.
            if out.code != Some(1) {
                tracing::warn!(code = ?out.code, stderr = %tail(&out.stderr, 500), "merge-tree failed; merging in the integration worktree");
            }
            return Ok(None);
        }
        let commit = self
            .git_io(
                "commit-tree",
                repo,
                &["commit-tree", tree, "-p", old, "-p", src, "-F", "-"],
                &[],
                Some(message.as_bytes()),
            )
            .await?;
        let commit = cmd::check(
            "commit-tree",
            &strs(&["commit-tree", tree, "-p", old, "-p", src, "-F", "-"]),
            repo,
            commit,
        )?
        .stdout
        .trim()
        .to_string();
        Ok(Some(commit))
    }

    /// Whether [`GitRepo::merge_in_memory`] may be used: the installed git has
    /// `merge-tree --write-tree` with `-X` and `--attr-source` (probed once), no
    /// configuration makes `git merge` commit something else than `commit-tree` would
    /// (`merge.log`, `merge.renormalize`, `merge.verifySignatures`, `commit.cleanup`, a
    /// relative `core.hooksPath`; read once per repository), and no hook `git merge` runs
    /// is installed (checked every time).
    async fn merge_tree_usable(&self) -> Result<bool, GitError> {
        let cached = self.merge_tree_env.lock().ok().and_then(|g| g.clone());
        let env = match cached {
            Some(env) => env,
            None => {
                let env = self.probe_merge_tree_env().await?;
                if let Ok(mut g) = self.merge_tree_env.lock() {
                    *g = Some(env.clone());
                }
                env
            }
        };
        let Some(hooks) = env else {
            return Ok(false);
        };
        for hook in [
            "pre-merge-commit",
            "prepare-commit-msg",
            "commit-msg",
            "post-merge",
        ] {
            let p = hooks.join(hook);
            if std::fs::metadata(&p)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `Some(hooks dir)` when in-memory merges are possible (see `merge_tree_usable`).
    async fn probe_merge_tree_env(&self) -> Result<Option<PathBuf>, GitError> {
        let repo = &self.repo_dir;
        let probe = self
            .git_out(
                "merge-tree",
                repo,
                &[
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
                ],
                &[],
            )
            .await?;
        if !probe.success() {
            tracing::info!(stderr = %tail(&probe.stderr, 300), "git merge-tree --write-tree unusable; merges use the integration worktree");
            return Ok(None);
        }
        let out = self
            .git_out(
                "config",
                repo,
                &[
                    "config",
                    "-z",
                    "--get-regexp",
                    r"^(merge\.(log|renormalize|verifysignatures)|commit\.cleanup|core\.hookspath)$",
                ],
                &[],
            )
            .await?;
        let mut hooks = repo.join(".git").join("hooks");
        for item in nul_list(&out.stdout) {
            let (key, value) = item.split_once('\n').unwrap_or((item.as_str(), ""));
            let v = value.trim().to_ascii_lowercase();
            let off = matches!(v.as_str(), "false" | "no" | "off" | "0" | "");
            let blocks = match key {
                "merge.log" | "merge.renormalize" | "merge.verifysignatures" => !off,
                "commit.cleanup" => !matches!(v.as_str(), "default" | "whitespace"),
                "core.hookspath" => {
                    let p = PathBuf::from(value);
                    if p.is_absolute() {
                        hooks = p;
                        false
                    } else {
                        true
                    }
                }
                _ => true,
            };
            if blocks {
                tracing::info!(%key, %value, "configuration changes what git merge commits; merges use the integration worktree");
                return Ok(None);
            }
        }
        Ok(Some(hooks))
    }

    /// Moves the target from `old` to `new` (compare-and-swap), keeps checkouts of the target
    /// consistent, pushes base merges.
    async fn land(
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
            .git_out(
                "update-ref",
                repo,
                &["update-ref", "-m", msg, target_ref, &new, old],
                &[],
            )
            .await?;
        if !out.success() {
            let actual = self.resolve(repo, target_ref).await?.unwrap_or_default();
            return Err(GitError::RefMoved {
                branch: req.target.clone(),
                expected: old.to_string(),
                actual,
            });
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

    /// `git merge --no-ff` in the private integration worktree (detached at `old`), conflict
    /// handling per strategy, the verify gate, then [`GitRepo::land`].
    async fn merge_in_worktree(
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
        let out = self.git_out("merge", &wt, &args, &[]).await?;
        if !out.success() {
            let files = self.unmerged_files(&wt).await?;
            if files.is_empty() {
                let _ = self.git_out("merge", &wt, &["merge", "--abort"], &[]).await;
                return Err(cmd::check("merge", &strs(&args), &wt, out).unwrap_err());
            }
            tracing::info!(source = %req.source, target = %req.target, ?files, strategy = ?req.strategy, "merge conflict");
            let resolved =
                req.strategy == MergeStrategy::Union && self.union_resolve(&wt, &files).await?;
            if !resolved {
                self.git("merge", &wt, &["merge", "--abort"]).await?;
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
            self.git("commit", &wt, &["commit", "-q", "--no-edit"])
                .await?;
        }
        let new = self.resolve_required(&wt, "HEAD").await?;

        if req.verify {
            if let Some(command) = &self.cfg.verify_command {
                self.copy_env_files(&wt)?;
                if let Some((status, output_tail)) = self.run_verify(&wt, command).await? {
                    let _ = self
                        .git_out("reset", &wt, &["reset", "-q", "--hard", old], &[])
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

    async fn prepare_integration(&self, wt: &Path, old: &str) -> Result<(), GitError> {
        let ours = wt.exists() && self.our_worktree(wt).await.is_ok();
        if ours {
            let _ = self.git_out("merge", wt, &["merge", "--abort"], &[]).await;
            self.git("reset", wt, &["reset", "-q", "--hard", old])
                .await?;
            self.git("clean", wt, &["clean", "-fdq"]).await?;
        } else {
            if wt.exists() {
                // Our private directory, left over from a crash: holds no one's work.
                std::fs::remove_dir_all(wt).map_err(|e| GitError::io("integration", wt, e))?;
            }
            self.git("worktree", &self.repo_dir, &["worktree", "prune"])
                .await?;
            if let Some(parent) = wt.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| GitError::io("integration", parent, e))?;
            }
            let p = wt.to_string_lossy().into_owned();
            self.git(
                "worktree",
                &self.repo_dir,
                &["worktree", "add", "-q", "--detach", &p, old],
            )
            .await?;
        }
        Ok(())
    }

    /// Resolves each conflicted file keeping both sides' lines (`git merge-file --union`).
    /// Returns false when a conflict cannot be union-merged (e.g. binary).
    async fn union_resolve(&self, wt: &Path, files: &[String]) -> Result<bool, GitError> {
        for f in files {
            let out = self
                .git(
                    "checkout-index",
                    wt,
                    &["checkout-index", "--stage=all", "--temp", "--", f],
                )
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
                    self.git("add", wt, &["add", "--", f]).await?;
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
                .git_out(
                    "merge-file",
                    wt,
                    &["merge-file", "--union", "-p", ours, &base_file, theirs],
                    &[],
                )
                .await?;
            cleanup(&temps);
            let _ = std::fs::remove_file(wt.join(empty));
            // merge-file exits with the conflict count (0 with --union) or 255 on error (e.g. binary).
            if out.code.is_none_or(|c| c > 127) || out.stderr.contains("Cannot merge binary") {
                return Ok(false);
            }
            std::fs::write(wt.join(f), out.stdout.as_bytes())
                .map_err(|e| GitError::io("union", wt.join(f), e))?;
            self.git("add", wt, &["add", "--", f]).await?;
        }
        Ok(self.unmerged_files(wt).await?.is_empty())
    }

    async fn run_verify(
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
    async fn refresh_checkouts(
        &self,
        target: &str,
        old: &str,
        new: &str,
        integration: Option<&Path>,
    ) -> Result<(), GitError> {
        for e in self.worktrees_on(target).await? {
            if Some(e.path.as_path()) != integration {
                let out = self
                    .git_out(
                        "read-tree",
                        &e.path,
                        &["read-tree", "-m", "-u", old, new],
                        &[],
                    )
                    .await?;
                if !out.success() {
                    tracing::warn!(worktree = %e.path.display(), stderr = %tail(&out.stderr, 500), "could not refresh checkout of moved branch");
                }
            }
        }
        Ok(())
    }

    async fn push_after_merge(&self, target: &str) -> Result<PushStatus, GitError> {
        let Some(info) = self.info() else {
            return Ok(PushStatus::NotPushed);
        };
        if !self.cfg.push || target != info.base_branch {
            return Ok(PushStatus::NotPushed);
        }
        self.push(target).await
    }

    /// Pushes `branch` to the run's push remote (same name there).
    pub async fn push(&self, branch: &str) -> Result<PushStatus, GitError> {
        let Some(remote) = self.info().and_then(|i| i.push_remote) else {
            return Ok(PushStatus::NotPushed);
        };
        if let Some(problem) = branch_name_problem(branch) {
            return Err(GitError::InvalidBranchName {
                name: branch.into(),
                reason: problem,
            });
        }
        let spec = format!("refs/heads/{branch}:refs/heads/{branch}");
        let out = self
            .git_out("push", &self.repo_dir, &["push", "-q", &remote, &spec], &[])
            .await?;
        if out.success() {
            Ok(PushStatus::Pushed { remote })
        } else {
            tracing::warn!(%remote, %branch, stderr = %tail(&out.stderr, 500), "push failed");
            Ok(PushStatus::Failed {
                remote,
                error: tail(&out.stderr, 1500),
            })
        }
    }

    /// Fetches `branch` from origin into `refs/remotes/origin/<branch>`; returns its tip.
    pub async fn fetch(&self, branch: &str) -> Result<String, GitError> {
        if let Some(problem) = branch_name_problem(branch) {
            return Err(GitError::InvalidBranchName {
                name: branch.into(),
                reason: problem,
            });
        }
        let spec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        self.git("fetch", &self.repo_dir, &["fetch", "-q", "origin", &spec])
            .await?;
        self.resolve_required(&self.repo_dir, &format!("refs/remotes/origin/{branch}"))
            .await
    }

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
            .git(
                "status",
                worktree,
                &["status", "--porcelain", "--untracked-files=no"],
            )
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
        let out = self.git_out("merge", worktree, &args, &[]).await?;
        if out.success() {
            return Ok(WorktreeMerge::Clean {
                commit: self.resolve_required(worktree, "HEAD").await?,
            });
        }
        let files = self.unmerged_files(worktree).await?;
        if files.is_empty() {
            let _ = self
                .git_out("merge", worktree, &["merge", "--abort"], &[])
                .await;
            return Err(cmd::check("merge", &strs(&args), worktree, out).unwrap_err());
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
            .git("diff", worktree, &["diff", "--name-only", "-z", "HEAD"])
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
                .git_out("show", worktree, &["show", &spec], &[])
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
            .git_out("diff", worktree, &["diff", "--cached", "--quiet"], &[])
            .await?
            .success();
        if merging {
            self.git("commit", worktree, &["commit", "-q", "--no-edit"])
                .await?;
        } else if !nothing {
            self.git(
                "commit",
                worktree,
                &["commit", "-q", "-m", "cco: resolve merge conflicts"],
            )
            .await?;
        }
        self.resolve_required(worktree, "HEAD").await
    }

    // ----- reporting ---------------------------------------------------------------------

    /// What `head` adds over `base` (commits `base..head`, changes since their merge base).
    pub async fn diff_summary(&self, base: &str, head: &str) -> Result<DiffSummary, GitError> {
        let repo = &self.repo_dir;
        // Local branches and full ref names are used as they are ([`direct_ref`]); anything
        // else, or a name that does not resolve so, is resolved first.
        let log_of = |range: String| async move {
            let args = ["log", "--format=%H%x1f%s", "--end-of-options", &range];
            let out = self.git_out("log", repo, &args, &[]).await?;
            Ok::<_, GitError>(out.success().then_some(out.stdout))
        };
        let fast = match (direct_ref(base), direct_ref(head)) {
            (Some(b), Some(h)) => log_of(format!("{b}..{h}")).await?.map(|log| (b, h, log)),
            _ => None,
        };
        let (b, h, log) = match fast {
            Some(found) => found,
            None => {
                let resolved = self.resolve_branchish_many(repo, &[base, head]).await?;
                let (b, h) = (resolved[0].clone(), resolved[1].clone());
                let range = format!("{b}..{h}");
                let log = self
                    .git("log", repo, &["log", "--format=%H%x1f%s", &range])
                    .await?;
                (b, h, log)
            }
        };
        let three = format!("{b}...{h}");
        let commits = log
            .lines()
            .filter_map(|l| l.split_once('\x1f'))
            .map(|(sha, subject)| (sha.to_string(), subject.to_string()))
            .collect();
        // One diff for files, counts and the stat: `--numstat -z` records first, then the
        // `--stat` text (each of its lines starts with a space).
        let out = self
            .git("diff", repo, &["diff", "--numstat", "-z", "--stat", &three])
            .await?;
        let (files, insertions, deletions, stat) =
            parse_numstat_z_then_stat(&out).ok_or_else(|| {
                GitError::invalid("diff", "unexpected `diff --numstat -z --stat` output")
            })?;
        Ok(DiffSummary {
            commits,
            files,
            insertions,
            deletions,
            stat,
        })
    }

    pub async fn log_graph(&self, branch: &str, max: usize) -> Result<String, GitError> {
        let sha = self.resolve_branchish(branch).await?;
        let n = format!("-n{}", max.max(1));
        self.git(
            "log",
            &self.repo_dir,
            &["log", "--graph", "--oneline", "--decorate", &n, &sha],
        )
        .await
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

    #[test]
    fn numstat_z_then_stat() {
        let out = "-\t-\tbin.dat\x000\t0\t\0f\0g \u{e9}.txt\x001\t2\ttab\tname\0 bin.dat | Bin\n 3 files changed\n";
        let (files, ins, del, stat) = parse_numstat_z_then_stat(out).unwrap();
        assert_eq!(files, vec!["bin.dat", "g \u{e9}.txt", "tab\tname"]);
        assert_eq!((ins, del), (1, 2));
        assert_eq!(stat, " bin.dat | Bin\n 3 files changed\n");
        assert_eq!(parse_numstat_z_then_stat("").unwrap().0.len(), 0);
        assert!(parse_numstat_z_then_stat("garbage").is_none());
    }

    #[tokio::test]
    async fn worktree_list_from_files_matches_git() {
        let tmp = cco_testkit::temp_dir();
        let src = cco_testkit::init_repo(&tmp.path().join("src"));
        let repo =
            GitRepo::new(GitConfig::new(tmp.path().join("ws"), src.to_string_lossy())).unwrap();
        repo.setup().await.unwrap();
        repo.create_worktree("flat", "w1", "main").await.unwrap();
        let w2 = repo.create_worktree("flat", "w2", "main").await.unwrap();
        // A detached one and one on the base branch.
        cco_testkit::git(&w2.path, &["checkout", "-q", "--detach"]);
        let on_main = tmp.path().join("on main");
        cco_testkit::git(
            repo.repo_dir(),
            &["worktree", "add", "-q", &on_main.to_string_lossy(), "main"],
        );
        let canon = |list: Vec<WorktreeEntry>| -> Vec<(PathBuf, Option<String>)> {
            let mut v: Vec<_> = list
                .into_iter()
                .map(|e| (std::fs::canonicalize(&e.path).unwrap(), e.branch))
                .collect();
            v.sort();
            v
        };
        let files = repo.worktrees_from_files().expect("plain layout");
        assert!(files.iter().skip(1).all(|e| e.git_dir.is_some()));
        let files = canon(files);
        assert_eq!(files.len(), 4);
        assert_eq!(files, canon(repo.worktrees_from_git().await.unwrap()));
        assert!(files.contains(&(
            std::fs::canonicalize(&on_main).unwrap(),
            Some("main".into())
        )));
    }
}
