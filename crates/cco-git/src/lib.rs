//! cco-git: every git operation of a cco run, through one GitActor (the single owner of the
//! shared refs).
//!
//! # Layout
//! - [`GitRepo`] (`repo/`): the plain async layer — functions that run git processes, one
//!   file per concern (see its module docs). Testable without the actor; not safe to call
//!   concurrently on one repository.
//! - `git.rs`: the one command builder. Every git process cco runs is built there, so what
//!   applies to all of them (identity, timeout, process group, stale-lock retry, hardening)
//!   is written once. `harden.rs`: the hardening — no hooks, no agent-writable config, agent-
//!   named drivers neutralised (see its module docs).
//! - `checks.rs` (pure): added lines of patches, conflict markers, `.git` paths, symlink
//!   targets; `secrets.rs` (pure): the secret scanner. `repo/integrity.rs` runs them and keeps
//!   the expected tips of shared branches.
//! - [`GitActor`] / [`GitHandle`] (`actor/`): the singleton ractor actor and its cloneable
//!   async front door. An op is one [`GitHandle`] method: its description ([`OpDesc`]) and a
//!   closure over [`GitRepo`]. Ops run in spawned tasks (so [`GitHandle::status`] answers
//!   meanwhile), side by side as their [`Lane`]s allow: one at a time per shared branch
//!   (merges into different team branches side by side, each in its own integration
//!   worktree), fetch, push and team branch creation alone among those, one at a time per
//!   agent repository, agents side by side, at most [`GitConfig::parallel_ops`]. Ops a worker waits
//!   on before its next turn go first, captures of finished turns next, merges and diffs last
//!   ([`Priority`]).
//! - Hot ops keep their process count low: revisions are resolved in batches
//!   (`cat-file --batch-check`), the worktree list is read from `$GIT_COMMON_DIR/worktrees`
//!   (git itself is asked when the layout is not the plain files one), `commit_all` with
//!   nothing to commit is one `status`, `diff_summary` one `log` and one `diff`.
//! - `cmd.rs`: process runner. Every git (and the verify command) runs in its own process
//!   group; on timeout — or when an op future is dropped — the whole group gets SIGKILL,
//!   hooks included. A failure caused by a stale `*.lock` (old enough, no git process running
//!   in that directory) removes the lock and retries once.
//! - [`RepoReader`] (`read.rs`): read-only views for people (a task ref's patch and file
//!   list), built by the same command builder, run beside the actor: they move and write
//!   nothing, and run nothing the repository's configuration names.
//! - `sanitize.rs`: untrusted branch names ([`sanitize_branch_component`]) and paths
//!   ([`validate_relative_path`]) from agents; the secret-file rule ([`is_secret_path`]).
//!
//! # On-disk layout of a run (`<workspace>`)
//! - `repo/`: a `git clone --no-checkout` of the source (local paths are cloned too — never
//!   the user's checkout) whose HEAD is **detached**: no branch is checked out there, its
//!   working directory stays empty, and branches only move via `update-ref` compare-and-swap.
//!   The fetch refspec is widened to all branches even after `--single-branch`/`--depth`.
//!   `cco.*` git config keys record the base/run branch so `setup` on resume reuses it.
//! - `worktrees/<agent-id>/`: one **repository of its own** per agent (worker, lead, Director)
//!   on `cco/<team>/<agent-id>` (flat mode: team `flat`): a copy of the run's skeleton `.git`
//!   (made once by `git init` without templates), objects borrowed from `repo/` through
//!   `objects/info/alternates`, its own refs, hooks and config. It holds no ref cco
//!   integrates into; work comes back only as objects copied into cco's clone and checked
//!   there before the task ref is set: [`GitRepo::capture_task`] copies them with
//!   `pack-objects` in the agent's repository and `unpack-objects --strict` in cco's clone,
//!   [`GitRepo::fetch_task_result`] with a fetch (`fsck` on). cco's clone keeps a copy of a
//!   worker branch (`refs/heads/cco/<team>/<id>`) when cco commits there or a caller names
//!   the branch. Env files are copied in with mode 0600.
//! - `integration/<target-slug>/`: private worktrees with a detached HEAD where merges are
//!   made and verified before the target ref moves. A clean merge with nothing to verify
//!   needs no checkout: it is made in memory (`git merge-tree --write-tree` + `commit-tree`,
//!   the same result as `git merge --no-ff`); conflicts, verify runs and configuration that
//!   changes what `git merge` commits use the integration worktree.
//! - Team branches are `cco/<team>/team` ([`team_branch`]): git cannot hold `cco/<team>` next to
//!   `cco/<team>/<worker>` (a ref cannot be both a file and a directory).
//! - Task refs: `refs/cco/tasks/<run>/<team>/<task-id>` ([`task_ref`]): a worker's finished turn,
//!   frozen by [`GitRepo::capture_task`] (which also resets the agent's repository to the
//!   target) so the worker can start its next task while this one is reviewed and merged
//!   from the ref. Components longer than 64 bytes keep a prefix and get a hash suffix.
//! - `refs/cco/foreign/<branch>/<time>`: commits found on a shared branch that cco did not
//!   write (the branch itself is put back).
//! - Snapshots: `refs/cco/snapshots/<worker-id>/<timestamp>` (a commit whose parent is the
//!   worker's HEAD and whose tree is its working tree incl. untracked, non-excluded files).
//!
//! # Rules
//! - Shared branches (base, run, team) move only by cco's compare-and-swap, only onto
//!   commits that passed [`GitRepo::check_commits`], and only from the tip cco last wrote
//!   ([`GitRepo::expected_tips`]).
//! - No git process of cco runs a hook or a program an agent configured.
//! - Nothing holding unmerged commits or uncommitted changes is deleted or reset without a
//!   snapshot first.
//! - Secret files (`api-keys.json`, `.env*`, `.claude/`, configured env files; any letter
//!   case) are listed in every repository's `info/exclude`, unstaged by every commit cco
//!   makes, and a merge refuses a source branch that adds one; secret values are refused by
//!   the content checks.
//! - Conflicts are never resolved by overwriting whole files: `Ours`/`Theirs` pick a side per
//!   conflicting hunk (`-X`), `Union` keeps both sides' lines, `Agent` hands the conflict to
//!   the worker's session via [`GitRepo::merge_into_worktree`] /
//!   [`GitRepo::conclude_worktree_merge`].

mod actor;
mod checks;
mod cmd;
mod error;
mod git;
mod harden;
mod names;
mod read;
mod repo;
mod sanitize;
mod secrets;
mod types;

pub use actor::{GitActor, GitActorState, GitHandle, GitMsg, GitOp, Lane, OpDesc, Priority};
pub use error::{EnvFailure, GitError, Refusal, SecretFinding};
pub use names::{task_ref, team_branch, worker_branch};
pub use read::{FileChange, Patch, RepoReader, MAX_PATCH_BYTES};
pub use repo::{GitRepo, RemoteStart};
pub use sanitize::{
    branch_name_problem, is_secret_path, ref_name_problem, sanitize_branch_component, slugify,
    validate_relative_path, Sanitized, MAX_BRANCH_COMPONENT, MAX_NAME_COMPONENT, MAX_REF_COMPONENT,
};
pub use secrets::MIN_SECRET_LEN;
pub use types::*;
