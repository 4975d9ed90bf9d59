//! The contents of `orchestrator.json`: [`Config`] and its parts. Parsing is in `parse`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::validate::config_dir_of;

/// Upper bound for every millisecond setting (30 days): keeps `Instant + Duration` arithmetic
/// in the rest of cco far from overflow.
pub const MAX_MS: u64 = 30 * 24 * 60 * 60 * 1000;
/// Upper bound for `maxRunDurationMinutes` (30 days).
pub const MAX_RUN_MINUTES: u64 = 30 * 24 * 60;
/// Upper bound for `gitCloneOptions.depth`.
pub const MAX_CLONE_DEPTH: u64 = 1_000_000;
/// Upper bound for `maxTurns`.
pub const MAX_TURNS: u64 = 100_000;

/// How `claude` processes authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// The user's logged-in Claude subscription (the CLI's own credentials).
    #[default]
    Oauth,
    /// Keys from api-keys.json first; fall back to OAuth when all are exhausted.
    ApiKeysFirst,
    /// Only keys from api-keys.json; at least one is required.
    ApiKeysOnly,
}

impl AuthMode {
    pub(crate) const CHOICES: &'static [(&'static str, AuthMode)] = &[
        ("oauth", AuthMode::Oauth),
        ("api-keys-first", AuthMode::ApiKeysFirst),
        ("api-keys-only", AuthMode::ApiKeysOnly),
    ];
}

/// How a worker's branch is merged into the base branch when git cannot do it cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MergeStrategy {
    /// Ask a claude agent to resolve the conflicts.
    #[default]
    Agent,
    /// Keep the base branch's side of each conflict.
    Ours,
    /// Keep the worker's side of each conflict.
    Theirs,
    /// Keep both sides (git's union merge).
    Union,
    /// Leave the conflicting branch unmerged and carry on.
    Skip,
    /// Stop the run.
    Fail,
}

impl MergeStrategy {
    pub(crate) const CHOICES: &'static [(&'static str, MergeStrategy)] = &[
        ("agent", MergeStrategy::Agent),
        ("ours", MergeStrategy::Ours),
        ("theirs", MergeStrategy::Theirs),
        ("union", MergeStrategy::Union),
        ("skip", MergeStrategy::Skip),
        ("fail", MergeStrategy::Fail),
    ];
}

/// Whether planners and reviewers answer through the CLI's structured output
/// (`--json-schema`, Claude Code 2.1 and later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StructuredOutput {
    /// Ask the CLI once per run (`claude --help` lists `--json-schema`).
    #[default]
    Auto,
    /// Always (the CLI refuses the flag if it does not know it).
    On,
    /// Never: answers are parsed from the result text, with the repair loop.
    Off,
}

impl StructuredOutput {
    pub(crate) const CHOICES: &'static [(&'static str, StructuredOutput)] = &[
        ("auto", StructuredOutput::Auto),
        ("on", StructuredOutput::On),
        ("off", StructuredOutput::Off),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StructuredOutput::Auto => "auto",
            StructuredOutput::On => "on",
            StructuredOutput::Off => "off",
        }
    }
}

/// What happens to the agents' claude processes when cco itself dies (`kill -9`, a crash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OrphanPolicy {
    /// They are stopped (gracefully, then killed) within seconds; their sessions stay
    /// resumable with `cco resume`.
    #[default]
    Stop,
    /// They run their turn to its end, unsupervised (no timeout, budget or review watches
    /// them); `cco resume` ends what is left when it starts.
    Continue,
}

impl OrphanPolicy {
    pub(crate) const CHOICES: &'static [(&'static str, OrphanPolicy)] = &[
        ("stop", OrphanPolicy::Stop),
        ("continue", OrphanPolicy::Continue),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrphanPolicy::Stop => "stop",
            OrphanPolicy::Continue => "continue",
        }
    }
}

/// The claude CLI's `--permission-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum PermissionMode {
    AcceptEdits,
    #[default]
    BypassPermissions,
    Default,
    Plan,
    DontAsk,
}

impl PermissionMode {
    pub(crate) const CHOICES: &'static [(&'static str, PermissionMode)] = &[
        ("acceptEdits", PermissionMode::AcceptEdits),
        ("bypassPermissions", PermissionMode::BypassPermissions),
        ("default", PermissionMode::Default),
        ("plan", PermissionMode::Plan),
        ("dontAsk", PermissionMode::DontAsk),
    ];

    /// The value to pass to `claude --permission-mode`.
    pub fn as_str(self) -> &'static str {
        Self::CHOICES
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("default", |(name, _)| name)
    }
}

/// Options for the initial `git clone` of a remote repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GitCloneOptions {
    /// `--depth N` (a shallow clone).
    pub depth: Option<u32>,
    /// `--single-branch`.
    pub single_branch: bool,
    /// Skip `--recurse-submodules`.
    pub no_submodules: bool,
}

/// The claude model per role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Models {
    pub director: String,
    pub em: String,
    pub worker: String,
}

impl Default for Models {
    fn default() -> Self {
        Models {
            director: "opus".into(),
            em: "sonnet".into(),
            worker: "sonnet".into(),
        }
    }
}

/// Where the repository to work on lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryLocation {
    /// A URL git can clone: `https://`, `http://`, `ssh://` or scp-like `git@host:path`.
    Remote(String),
    /// A repository on this machine (from `file://` or a plain path), absolute.
    LocalPath(PathBuf),
}

/// The validated contents of `orchestrator.json`. Field docs give the JSON name and default;
/// `docs/configuration.md` has the full table.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// The file this was parsed from; relative paths below were resolved against its directory.
    #[serde(skip)]
    pub source: PathBuf,
    /// `repositoryUrl` exactly as written; see [`Config::repository`] for the parsed form.
    pub repository_url: String,
    #[serde(skip)]
    pub(crate) repository: RepositoryLocation,
    /// `branch` ("main"): the base branch work is merged into.
    pub branch: String,
    pub git_clone_options: GitCloneOptions,
    pub worker_count: usize,
    pub auth_mode: AuthMode,
    /// `logDirectory` ("logs"), resolved against the config directory.
    pub log_directory: PathBuf,
    /// `workspaceDirectory` ("workspace"), resolved against the config directory.
    pub workspace_directory: PathBuf,
    pub engineer_manager_group_size: usize,
    pub max_run_duration_minutes: u64,
    pub task_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub kill_grace_ms: u64,
    pub poll_interval_ms: u64,
    pub models: Models,
    /// `claudeBinary` as written (unresolved); `LoadedConfig::claude_binary` is the resolved path.
    pub claude_binary: Option<PathBuf>,
    /// `envFiles`: paths relative to the repository root, copied into each worktree.
    pub env_files: Vec<PathBuf>,
    pub merge_strategy: MergeStrategy,
    pub max_budget_usd: Option<f64>,
    pub use_run_branch: bool,
    pub verify_command: Option<String>,
    pub project_direction: Option<String>,
    pub max_task_restarts: u32,
    pub restart_backoff_ms: u64,
    pub max_plan_retries: u32,
    pub max_turns: Option<u32>,
    pub permission_mode: PermissionMode,
    pub git_timeout_ms: u64,
    pub push: bool,
    /// `localRepoPath`, resolved: the run clones this local repository instead of
    /// `repositoryUrl` ([`Config::repository`] is then this path). Pushes go to that checkout's
    /// own `origin`, never into the checkout itself.
    pub local_repo_path: Option<PathBuf>,
    /// `env` ({}): extra environment for every agent's claude process (a proxy, a gateway's
    /// `ANTHROPIC_BASE_URL`, ...). Values are secrets: redacted in every log. Names cco sets
    /// itself (`CLAUDE_CONFIG_DIR`, `CCO_*`, the credential's variables) are refused.
    pub env: BTreeMap<String, Secret>,
    /// `maxAutoResolveConflicts` (none): with `mergeStrategy` `agent`, at most this many
    /// conflict rounds are handed to agents in the whole run; after that conflicts are handled
    /// as with `fail` (logged).
    pub max_auto_resolve_conflicts: Option<u32>,
    /// `maxToolUsesPerInstance` (none): tool uses one claude process may make (counted from its
    /// stream); at the cap its turn is ended gracefully and treated like a timed-out turn.
    pub max_tool_uses_per_instance: Option<u32>,
    /// `maxTotalToolUses` (none): tool uses of the whole run; once reached no new turn
    /// starts and the run ends with that reason (like `maxBudgetUsd`).
    pub max_total_tool_uses: Option<u64>,
    /// `minKeyBenchMs` (60000): a rate-limited credential rests at least this long, however
    /// early the server says it resets.
    pub min_key_bench_ms: u64,
    /// `quotaWarningThreshold` (0.9): a credential whose reported utilization is above this
    /// (or whose status is `allowed_warning`) gets no new agents while another has headroom.
    pub quota_warning_threshold: f64,
    /// `apiRetryBackoffMs` (10000): the first wait after a claude process gave up on an
    /// unavailable API (529, 5xx, connection errors); doubled per such process of a turn.
    pub api_retry_backoff_ms: u64,
    /// `maxApiRetryBackoffMs` (300000): the longest such wait, and the longest hold of the
    /// run-wide circuit breaker.
    pub max_api_retry_backoff_ms: u64,
    /// `maxApiRetries` (50): processes ended by an unavailable API a turn survives (apart
    /// from `maxTaskRestarts`); a task whose turn used them up goes back to the queue.
    pub max_api_retries: u32,
    /// `structuredOutput` ("auto"): planners and reviewers answer through `--json-schema`.
    pub structured_output: StructuredOutput,
    /// `orphanPolicy` ("stop"): what happens to agents' claude processes when cco dies.
    pub orphan_policy: OrphanPolicy,
    /// How keys of the original tool's schema (`workspaceDir`, `cloneDepth`, `timingBaseMs`,
    /// ...) were read; `cco check` prints these.
    pub original_keys: Vec<KeyNote>,
    /// `cluster` (none): workers on other hosts (see `docs/cluster.md`).
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

/// How one key of the original tool (`@mohsen/claude-code-orchestrator`) was understood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyNote {
    /// The key as written, e.g. `workspaceDir`.
    pub key: String,
    /// The cco key (or value) to write instead, when there is one.
    pub use_instead: Option<String>,
    /// What cco made of it, in one sentence.
    pub note: String,
}

impl Config {
    /// The parsed `repositoryUrl`.
    pub fn repository(&self) -> &RepositoryLocation {
        &self.repository
    }

    /// The directory holding the source file; relative paths are resolved against it.
    pub fn config_dir(&self) -> PathBuf {
        config_dir_of(&self.source)
    }

    /// True when all workers fit in one team, so the Director manages them without EMs.
    pub fn is_flat(&self) -> bool {
        self.worker_count <= self.engineer_manager_group_size
    }

    /// Number of Engineering Manager teams: 1 in flat mode, else ceil(workers / group size).
    pub fn team_count(&self) -> usize {
        if self.is_flat() {
            1
        } else {
            self.worker_count
                .div_ceil(self.engineer_manager_group_size.max(1))
        }
    }

    pub fn max_run_duration(&self) -> Duration {
        Duration::from_secs(self.max_run_duration_minutes.saturating_mul(60))
    }

    pub fn task_timeout(&self) -> Duration {
        Duration::from_millis(self.task_timeout_ms)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    pub fn kill_grace(&self) -> Duration {
        Duration::from_millis(self.kill_grace_ms)
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    /// Delay before the first restart of a crashed task; doubled for each further restart.
    pub fn restart_backoff(&self) -> Duration {
        Duration::from_millis(self.restart_backoff_ms)
    }

    /// The delay before restart number `attempt` (0-based), capped at [`MAX_MS`].
    pub fn restart_delay(&self, attempt: u32) -> Duration {
        let factor = 1u64.checked_shl(attempt.min(32)).unwrap_or(u64::MAX);
        Duration::from_millis(self.restart_backoff_ms.saturating_mul(factor).min(MAX_MS))
    }

    pub fn min_key_bench(&self) -> Duration {
        Duration::from_millis(self.min_key_bench_ms)
    }

    pub fn api_retry_backoff(&self) -> Duration {
        Duration::from_millis(self.api_retry_backoff_ms)
    }

    pub fn max_api_retry_backoff(&self) -> Duration {
        Duration::from_millis(self.max_api_retry_backoff_ms)
    }

    pub fn git_timeout(&self) -> Duration {
        Duration::from_millis(self.git_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn restart_delay_doubles_and_caps() {
        let c = Config::from_json_str(
            r#"{"repositoryUrl":"/r","workerCount":1}"#,
            Path::new("/c/o.json"),
        )
        .unwrap();
        assert_eq!(c.restart_delay(0), Duration::from_millis(1000));
        assert_eq!(c.restart_delay(3), Duration::from_millis(8000));
        assert_eq!(c.restart_delay(200), Duration::from_millis(MAX_MS));
    }
}
