//! Plain input/output types of the git layer (no ractor, no cco-config: the actors crate maps
//! its configuration onto these).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a conflicting merge is resolved (mirrors `cco_config::MergeStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeStrategy {
    /// Leave the target untouched and report the files; an agent resolves them in its worktree.
    #[default]
    Agent,
    /// `-X ours`: in conflicting hunks keep the target's side (non-conflicting hunks of both land).
    Ours,
    /// `-X theirs`: in conflicting hunks keep the source's side.
    Theirs,
    /// Keep both sides' lines in conflicting hunks (`git merge-file --union`).
    Union,
    /// Leave unmerged and report [`MergeOutcome::Skipped`].
    Skip,
    /// Return [`crate::GitError::MergeConflict`].
    Fail,
}

/// Clone options (mirrors `cco_config::GitCloneOptions`; `cloneDepth` is `depth`). cco
/// repairs shallow and single-branch clones itself before it needs other history or
/// branches (the fetch refspec is widened, a merge without a merge base unshallows).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneOptions {
    /// `--depth` (also for a local source: it is then cloned through `file://`).
    pub depth: Option<u32>,
    /// `--single-branch`.
    pub single_branch: bool,
    /// No `git submodule update` in agents' repositories.
    pub no_submodules: bool,
}

/// A secret/env file copied into every worktree (mode 0600) and excluded from commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvFile {
    /// Absolute path of the existing source file.
    pub source: PathBuf,
    /// Where it goes inside a worktree (relative, validated with `validate_relative_path`).
    pub relative: PathBuf,
}

impl EnvFile {
    /// `source` relative to `root` when it lies below it, else just its file name.
    pub fn from_source(source: impl Into<PathBuf>, root: Option<&std::path::Path>) -> EnvFile {
        let source = source.into();
        let relative = root
            .and_then(|r| source.strip_prefix(r).ok().map(PathBuf::from))
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| {
                source
                    .file_name()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(".env"))
            });
        EnvFile { source, relative }
    }
}

/// Everything the git layer needs for one run.
#[derive(Debug, Clone)]
pub struct GitConfig {
    /// The run's workspace; the clone lives in `<workspace>/repo`.
    pub workspace: PathBuf,
    /// `repositoryUrl` (any git URL incl. `file://`) or a local path (cloned too).
    pub source: String,
    /// A local repository to clone instead of `source` (`localRepoPath`): no network at
    /// clone time; `source`, when it is a URL, stays the remote pushed to.
    pub local_source: Option<PathBuf>,
    /// Base branch; `None` = the source's default branch.
    pub base_branch: Option<String>,
    pub clone: CloneOptions,
    /// Create `cco/run-<timestamp>` from the base branch and use it as this run's base.
    pub use_run_branch: bool,
    pub env_files: Vec<EnvFile>,
    /// Test gate run with `sh -c` in the integration worktree before a target branch moves.
    pub verify_command: Option<String>,
    pub verify_timeout: Duration,
    /// Variables taken out of the verify command's environment (it runs code agents wrote;
    /// cco's own credentials are not its business).
    pub verify_env_remove: Vec<String>,
    /// Timeout of every single git process (its whole process group is killed on expiry).
    pub git_timeout: Duration,
    /// Budget of one whole op (several git processes; merges add `verify_timeout`).
    pub op_timeout: Duration,
    /// Push the base branch to the remote after each merge into it (when there is a remote).
    pub push: bool,
    /// An `index.lock` older than this with no git process in that directory is removed.
    pub stale_lock_age: Duration,
    /// Author/committer of commits made by cco (`None` = git's configured identity, falling
    /// back to `cco <cco@localhost>` when none is configured).
    pub identity: Option<(String, String)>,
    /// The git program (default `git`, found on `PATH`).
    pub git_program: PathBuf,
    /// At most this many git ops run at once (ops on shared refs one at a time, ops of one
    /// agent's repository one at a time; see `GitActor`). 1 = one op at a time.
    pub parallel_ops: usize,
    /// Secret values the run knows (API keys, env values of key entries, an OAuth token):
    /// commits adding one never reach a shared ref.
    pub secrets: SecretValues,
    /// The largest patch (`git log -p` of a task's commits) the content checks read: a
    /// larger change is refused ([`crate::Refusal::TooLarge`]) instead of read into memory.
    pub max_check_bytes: u64,
}

/// Secret values, never printed (`Debug` shows how many).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretValues(Vec<String>);

impl SecretValues {
    pub fn new(values: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let mut v: Vec<String> = values
            .into_iter()
            .map(Into::into)
            .filter(|s: &String| s.len() >= crate::secrets::MIN_SECRET_LEN)
            .collect();
        v.sort();
        v.dedup();
        SecretValues(v)
    }

    pub(crate) fn values(&self) -> &[String] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValues({} redacted)", self.0.len())
    }
}

impl GitConfig {
    pub fn new(workspace: impl Into<PathBuf>, source: impl Into<String>) -> Self {
        GitConfig {
            workspace: workspace.into(),
            source: source.into(),
            local_source: None,
            base_branch: None,
            clone: CloneOptions::default(),
            use_run_branch: false,
            env_files: Vec::new(),
            verify_command: None,
            verify_timeout: Duration::from_secs(600),
            verify_env_remove: Vec::new(),
            git_timeout: Duration::from_secs(120),
            op_timeout: Duration::from_secs(600),
            push: false,
            stale_lock_age: Duration::from_secs(5),
            identity: None,
            git_program: PathBuf::from("git"),
            secrets: SecretValues::default(),
            parallel_ops: 4,
            max_check_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Result of [`crate::GitRepo::setup`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoInfo {
    /// `<workspace>/repo`: a `--no-checkout` clone with a detached HEAD (see crate docs).
    pub repo_dir: PathBuf,
    /// The branch this run merges into (the run branch when one is used).
    pub base_branch: String,
    /// The branch the run started from (equals `base_branch` without a run branch).
    pub upstream_branch: String,
    pub run_branch: Option<String>,
    /// Remote pushed to after base merges, if any.
    pub push_remote: Option<String>,
    /// True when an existing clone was reused (resume).
    pub reused: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorktreeInfo {
    pub path: PathBuf,
    pub branch: String,
    pub head: String,
    /// True when an existing worktree was reused (resume after a crash).
    pub reused: bool,
    /// True when the worktree and its branch were both created now, at the tip of `from`:
    /// nothing in it yet.
    #[serde(default)]
    pub at_start_point: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeRequest {
    /// Branch (or any commit-ish) to merge.
    pub source: String,
    /// Local branch that moves (compare-and-swap) when the merge lands.
    pub target: String,
    pub strategy: MergeStrategy,
    /// Commit message; default `Merge <source> into <target>`.
    pub message: Option<String>,
    /// Run the configured `verify_command` before moving the target.
    pub verify: bool,
}

impl MergeRequest {
    pub fn new(
        source: impl Into<String>,
        target: impl Into<String>,
        strategy: MergeStrategy,
    ) -> Self {
        MergeRequest {
            source: source.into(),
            target: target.into(),
            strategy,
            message: None,
            verify: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PushStatus {
    /// Not the base branch, push disabled, or no remote.
    NotPushed,
    Pushed {
        remote: String,
    },
    /// The merge landed locally; only the push failed.
    Failed {
        remote: String,
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MergeOutcome {
    /// The source was already contained in the target. `commit`: the commit that brought it
    /// there (the first on the target's first-parent chain containing it; see
    /// [`crate::GitRepo::merged_by`]), e.g. a merge cco made before a restart.
    UpToDate { commit: String },
    Merged {
        commit: String,
        previous: String,
        pushed: PushStatus,
    },
    /// Strategy `Agent` (or a conflict `-X ours/theirs` cannot resolve): target untouched.
    Conflict { files: Vec<String> },
    /// Strategy `Skip`: target untouched.
    Skipped { files: Vec<String> },
    /// The verify command failed on the merged result: target untouched. `status`: how it
    /// ended; `output_tail`: the end of its output (stdout and stderr).
    VerifyFailed {
        status: VerifyStatus,
        output_tail: String,
    },
}

/// How a failed verify command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VerifyStatus {
    /// It exited with this non-zero code.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(i32),
    /// It ran longer than the verify timeout (its process group was killed).
    TimedOut(std::time::Duration),
}

impl std::fmt::Display for VerifyStatus {
    /// `exit 1`, `killed by signal 9`, `timed out after 600 s`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyStatus::Exited(code) => write!(f, "exit {code}"),
            VerifyStatus::Signaled(signal) => write!(f, "killed by signal {signal}"),
            VerifyStatus::TimedOut(d) => write!(f, "timed out after {} s", d.as_secs()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorktreeMerge {
    UpToDate,
    Clean {
        commit: String,
    },
    /// Conflict markers left in the worktree for the agent; finish with `conclude_worktree_merge`.
    Conflicted {
        files: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOutcome {
    pub head: String,
    /// Snapshot ref taken because the worktree held something not in the target.
    pub snapshot: Option<String>,
}

/// What [`crate::GitRepo::capture_task`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureOutcome {
    /// The commit cco made of what the agent left uncommitted, if any.
    pub committed: Option<String>,
    /// Where the task ref points now; `None` when no work was ever captured for the task.
    pub task_commit: Option<String>,
    /// The task ref moved to new work in this capture.
    pub moved: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveOutcome {
    pub snapshot: Option<String>,
    pub branch_deleted: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffSummary {
    /// `(sha, subject)`, newest first.
    pub commits: Vec<(String, String)>,
    pub files: Vec<String>,
    pub insertions: u64,
    pub deletions: u64,
    pub stat: String,
}

/// One side of a conflict resolution under review (see [`ResolutionDiff`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentDiff {
    /// The parent commit of the merge.
    pub commit: String,
    /// `--stat` and the patch (cut at a size limit) from this parent to the resolved work.
    pub diff: String,
}

/// A conflict resolution as its reviewer sees it ([`crate::GitRepo::resolution_diff`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolutionDiff {
    /// The merge commit that concluded the resolution.
    pub merge_commit: String,
    /// The resolved work (the merge commit, or a commit that fixed it on top).
    pub head: String,
    /// First parent (the work the other branch was merged into), second parent (that branch).
    pub parents: [ParentDiff; 2],
    /// Files both sides changed since they split (where the conflicts were).
    pub files: Vec<String>,
}

/// Answer of `GitMsg::Status`; served while ops run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GitStatus {
    /// The op in flight on shared refs, else any op in flight.
    pub in_flight: Option<String>,
    /// Every op in flight.
    #[serde(default)]
    pub running: Vec<String>,
    pub queued: usize,
    pub ops_done: u64,
    /// Finished ops by kind (`capture_task`, `merge`, ...): how many and how long they ran.
    #[serde(default)]
    pub by_op: std::collections::BTreeMap<String, OpStats>,
}

/// Count and run time of one kind of git op (queue time excluded).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpStats {
    pub count: u64,
    pub busy_ms: f64,
}

impl GitStatus {
    /// Total time the GitActor spent running ops.
    pub fn busy_ms(&self) -> f64 {
        self.by_op.values().map(|s| s.busy_ms).sum()
    }
}

/// A place in a file of a commit: path (in the commit's tree) and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FileLine {
    pub path: String,
    pub line: u64,
}

impl FileLine {
    pub fn new(path: impl Into<String>, line: u64) -> Self {
        FileLine {
            path: path.into(),
            line,
        }
    }
}

impl std::fmt::Display for FileLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.path, self.line)
    }
}
