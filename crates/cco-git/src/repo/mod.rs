//! [`GitRepo`]: the plain async git layer. Every method runs git processes (built by the one
//! command builder in `git.rs`, each bounded by [`GitConfig::git_timeout`]) and can be used
//! without the actor (tests do). Calls may run concurrently only as the GitActor's lanes
//! allow ([`crate::Lane`]): one op on shared refs at a time, one op per agent repository at
//! a time; ops on different agents' repositories touch only their own refs in cco's clone
//! (task refs, snapshots, branch copies), which git updates atomically.
//!
//! One file per concern:
//! - `refs.rs`: resolving names (batched), ancestry, state of a checkout; branches.
//! - `setup.rs`: the clone (fresh or reused), excludes, env files.
//! - `worktrees.rs`: listing and recognising the checkouts of the clone.
//! - `agents.rs`: agents' checkouts: create, switch/sync, remove; `skeleton.rs`: the `.git`
//!   a new one starts from.
//! - `capture.rs`: committing an agent's leftovers, freezing a task's work, snapshots;
//!   `pack.rs`: copying an agent's objects in (a pack, checked), without a fetch.
//! - `merge.rs`: merging into a shared branch (in memory when possible) and landing it;
//!   `integration.rs`: the integration-worktree path, union resolution, the verify gate.
//! - `conflicts.rs`: merges an agent resolves in its own checkout.
//! - `remote.rs`: fetch and push. `diff.rs`: summaries and logs.
//! - `bundle.rs`: bundles to and from other hosts, a node's store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::git::At;
use crate::harden::{DriverCache, Hardening};
use crate::sanitize::{single_component, slugify, validate_relative_path};
use crate::types::*;
use crate::GitError;

mod agents;
mod bundle;
mod capture;
mod conflicts;
mod diff;
mod integration;
mod integrity;
mod merge;
mod pack;
mod refs;
mod remote;
mod setup;
mod skeleton;
mod worktrees;

#[cfg(test)]
mod sweep_tests;

pub(crate) use agents::AgentRepo;
pub use bundle::RemoteStart;
pub(crate) use refs::nul_list;

/// True when `s` is a full object id (SHA-1 or SHA-256, hex).
fn is_object_id(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `Ok` when `id` is a full object id; else op `op`'s invalid-input error.
fn check_object_id(op: &str, id: &str) -> Result<(), GitError> {
    if is_object_id(id) {
        Ok(())
    } else {
        Err(GitError::invalid(op, format!("not a commit id: {id:?}")))
    }
}

/// `Ok` when `name` is a valid ref name under `prefix` (`refs/cco/`, `refs/cco/tasks/`);
/// else op `op`'s invalid-input error, saying it is not `what` (`a cco ref`, `a task ref`).
fn check_ref_under(op: &str, prefix: &str, what: &str, name: &str) -> Result<(), GitError> {
    if name.starts_with(prefix) && crate::sanitize::ref_name_problem(name).is_none() {
        Ok(())
    } else {
        Err(GitError::invalid(op, format!("not {what}: {name:?}")))
    }
}

fn timestamp() -> String {
    chrono::Utc::now().format("%Y%m%d-%H%M%S-%3f").to_string()
}

pub struct GitRepo {
    cfg: GitConfig,
    repo_dir: PathBuf,
    env_rel: Vec<PathBuf>,
    info: Mutex<Option<RepoInfo>>,
    /// In-memory merges allowed (tests turn them off to compare with the worktree path).
    fast_merge: std::sync::atomic::AtomicBool,
    /// `Some(false)`: in-memory merges impossible; `Some(true)`: possible.
    merge_tree_env: Mutex<Option<bool>>,
    hardening: Hardening,
    drivers: DriverCache,
    /// Author/committer of cco's commits, resolved by `setup`; `true` when it is cco's
    /// fallback (the user has none).
    identity: Mutex<Option<((String, String), bool)>>,
    /// Worker branch -> the agent repository on it (registered by `create_worktree`).
    agent_paths: Mutex<BTreeMap<String, PathBuf>>,
    /// Agent repository -> (its HEAD, the merged commit) of the merge cco started there and
    /// the agent resolves (see `conflicts.rs`).
    resolutions: Mutex<BTreeMap<PathBuf, (String, String)>>,
    /// Shared branch -> the commit cco last wrote to it (see `integrity.rs`).
    tips: Arc<Mutex<BTreeMap<String, String>>>,
    /// Task commits whose content passed [`GitRepo::check_commits`] at capture.
    vetted: Mutex<std::collections::HashSet<String>>,
    /// What a new agent repository's `.git` is copied from (`None`: made by `git init`);
    /// made once, by the first agent repository asked for, while the others wait for it.
    skeleton: tokio::sync::OnceCell<Option<skeleton::Skeleton>>,
}

impl std::fmt::Debug for GitRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitRepo")
            .field("repo_dir", &self.repo_dir)
            .finish()
    }
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
        // Paths no one can put a file into.
        let hardening = Hardening {
            no_hooks: PathBuf::from("/dev/null"),
            empty: PathBuf::from("/dev/null"),
        };
        Ok(GitRepo {
            identity: Mutex::new(cfg.identity.clone().map(|i| (i, false))),
            cfg,
            repo_dir,
            env_rel,
            info: Mutex::new(None),
            fast_merge: std::sync::atomic::AtomicBool::new(true),
            merge_tree_env: Mutex::new(None),
            hardening,
            drivers: DriverCache::default(),
            agent_paths: Mutex::new(BTreeMap::new()),
            resolutions: Mutex::new(BTreeMap::new()),
            tips: Arc::new(Mutex::new(BTreeMap::new())),
            vetted: Mutex::new(Default::default()),
            skeleton: tokio::sync::OnceCell::new(),
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

    /// Author and committer of the commits cco makes (see [`GitConfig::identity`]).
    pub(crate) fn identity(&self) -> Option<(String, String)> {
        self.identity
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(|(i, _)| i.clone()))
    }

    fn identity_is_fallback(&self) -> bool {
        self.identity
            .lock()
            .ok()
            .is_some_and(|g| g.as_ref().is_some_and(|(_, f)| *f))
    }

    /// The expected tips, shared (the [`crate::GitHandle`] reads them without a round trip).
    pub(crate) fn tips_handle(&self) -> Arc<Mutex<BTreeMap<String, String>>> {
        self.tips.clone()
    }

    pub(crate) fn hardening(&self) -> &Hardening {
        &self.hardening
    }

    pub(crate) fn drivers(&self) -> &DriverCache {
        &self.drivers
    }

    fn agent_paths(&self) -> BTreeMap<String, PathBuf> {
        self.agent_paths
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default()
    }

    fn agent_paths_mut(&self) -> Result<MutexGuard<'_, BTreeMap<String, PathBuf>>, GitError> {
        self.agent_paths
            .lock()
            .map_err(|_| GitError::Actor("poisoned".into()))
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
}
