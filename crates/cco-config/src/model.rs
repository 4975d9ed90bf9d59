//! The contents of `orchestrator.json`: [`Config`] and its parts, and how they are parsed.
//!
//! Parsing here is pure (no file system access): relative paths are resolved lexically against
//! the directory of the source file. Checks that need the file system (the claude binary,
//! api-keys.json) are done by [`crate::load`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ConfigError;
use crate::validate::{
    branch_problem, config_dir_of, env_file_problem, parse_json, resolve, show, Obj, Result,
};

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
    const CHOICES: &'static [(&'static str, AuthMode)] = &[
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
    const CHOICES: &'static [(&'static str, MergeStrategy)] = &[
        ("agent", MergeStrategy::Agent),
        ("ours", MergeStrategy::Ours),
        ("theirs", MergeStrategy::Theirs),
        ("union", MergeStrategy::Union),
        ("skip", MergeStrategy::Skip),
        ("fail", MergeStrategy::Fail),
    ];
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
    const CHOICES: &'static [(&'static str, PermissionMode)] = &[
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
    repository: RepositoryLocation,
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
}

const TOP_KEYS: &[&str] = &[
    "repositoryUrl",
    "branch",
    "gitCloneOptions",
    "workerCount",
    "authMode",
    "logDirectory",
    "workspaceDirectory",
    "engineerManagerGroupSize",
    "maxRunDurationMinutes",
    "taskTimeoutMs",
    "idleTimeoutMs",
    "killGraceMs",
    "pollIntervalMs",
    "models",
    "claudeBinary",
    "envFiles",
    "mergeStrategy",
    "maxBudgetUsd",
    "useRunBranch",
    "verifyCommand",
    "projectDirection",
    "maxTaskRestarts",
    "restartBackoffMs",
    "maxPlanRetries",
    "maxTurns",
    "permissionMode",
    "gitTimeoutMs",
    "push",
];
const CLONE_KEYS: &[&str] = &["depth", "singleBranch", "noSubmodules"];
const MODEL_KEYS: &[&str] = &["director", "em", "worker"];

impl Config {
    /// Parses and validates the text of an orchestrator.json read from `source` (used in
    /// messages and to resolve relative paths; the file itself is not read).
    pub fn from_json_str(text: &str, source: &Path) -> Result<Config, ConfigError> {
        let value = parse_json(text, source)?;
        let top = Obj::new(
            source,
            String::new(),
            &value,
            "a JSON object with the orchestrator settings",
            false,
        )?;
        top.check_keys(TOP_KEYS)?;
        // Nested key checks first, so a typo anywhere is reported before value errors.
        let clone = top.object("gitCloneOptions", CLONE_KEYS)?;
        let models = top.object("models", MODEL_KEYS)?;
        let dir = config_dir_of(source);

        let repository_url = top.string("repositoryUrl", false, false)?.ok_or_else(|| {
            top.missing(
                "repositoryUrl",
                "a git URL (https://, ssh://, git@host:path, file://) or a local path",
            )
        })?;
        let repository = parse_repository(repository_url, &dir).map_err(|problem| {
            top.invalid(
                "repositoryUrl".into(),
                "a git URL (https://, http://, ssh://, git@host:path, file://) or a local path",
                format!("{} ({problem})", show(&mask_userinfo(repository_url))),
            )
        })?;

        let branch = top.string("branch", false, false)?.unwrap_or("main");
        if let Some(problem) = branch_problem(branch) {
            return Err(top.invalid(
                "branch".into(),
                "a valid git branch name",
                format!("{} ({problem})", show(branch)),
            ));
        }

        let git_clone_options = match &clone {
            None => GitCloneOptions::default(),
            Some(c) => GitCloneOptions {
                depth: c.int("depth", 1, MAX_CLONE_DEPTH, true)?.map(to_u32),
                single_branch: c.bool("singleBranch")?.unwrap_or(false),
                no_submodules: c.bool("noSubmodules")?.unwrap_or(false),
            },
        };

        let worker_count = top
            .int("workerCount", 1, 100, false)?
            .ok_or_else(|| top.missing("workerCount", "an integer from 1 to 100"))?;

        let models = match &models {
            None => Models::default(),
            Some(m) => {
                let defaults = Models::default();
                let model = |key: &str, default: String| -> Result<String> {
                    match m.string(key, true, false)? {
                        None => Ok(default),
                        Some(s) if s.starts_with('-') || s.trim() != s => Err(m.invalid(
                            m.path(key),
                            "a model name such as \"sonnet\" or \"claude-opus-4-1\"",
                            show(s),
                        )),
                        Some(s) => Ok(s.to_string()),
                    }
                };
                Models {
                    director: model("director", defaults.director)?,
                    em: model("em", defaults.em)?,
                    worker: model("worker", defaults.worker)?,
                }
            }
        };

        let dir_field = |key: &str, default: &str| -> Result<PathBuf> {
            let raw = top.string(key, true, false)?.unwrap_or(default);
            Ok(resolve(&dir, Path::new(raw)))
        };
        let log_directory = dir_field("logDirectory", "logs")?;
        let workspace_directory = dir_field("workspaceDirectory", "workspace")?;

        let claude_binary = top.string("claudeBinary", true, true)?.map(PathBuf::from);

        let env_files = match top.array(
            "envFiles",
            "an array of file names relative to the repository root",
        )? {
            None => vec![PathBuf::from(".env"), PathBuf::from(".env.local")],
            Some(items) => {
                let mut files = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let field = format!("envFiles[{i}]");
                    let expected = "a file name relative to the repository root";
                    let Value::String(name) = item else {
                        return Err(ConfigError::WrongType {
                            path: source.to_path_buf(),
                            field,
                            expected: expected.into(),
                            found: crate::validate::describe(item, false),
                        });
                    };
                    if let Some(problem) = env_file_problem(name) {
                        return Err(top.invalid(
                            field,
                            expected,
                            format!("{} ({problem})", show(name)),
                        ));
                    }
                    files.push(PathBuf::from(name));
                }
                files
            }
        };

        let optional_text = |key: &str| -> Result<Option<String>> {
            Ok(top.string(key, true, true)?.map(str::to_string))
        };

        let ms = |key: &str, default: u64, min: u64| -> Result<u64> {
            Ok(top.int(key, min, MAX_MS, false)?.unwrap_or(default))
        };

        Ok(Config {
            source: source.to_path_buf(),
            repository_url: repository_url.to_string(),
            repository,
            branch: branch.to_string(),
            git_clone_options,
            worker_count: to_usize(worker_count),
            auth_mode: top
                .choice("authMode", AuthMode::CHOICES)?
                .unwrap_or_default(),
            log_directory,
            workspace_directory,
            engineer_manager_group_size: to_usize(
                top.int("engineerManagerGroupSize", 1, 100, false)?
                    .unwrap_or(4),
            ),
            max_run_duration_minutes: top
                .int("maxRunDurationMinutes", 1, MAX_RUN_MINUTES, false)?
                .unwrap_or(120),
            task_timeout_ms: ms("taskTimeoutMs", 600_000, 1000)?,
            idle_timeout_ms: ms("idleTimeoutMs", 300_000, 1000)?,
            kill_grace_ms: ms("killGraceMs", 5000, 0)?,
            poll_interval_ms: ms("pollIntervalMs", 5000, 10)?,
            models,
            claude_binary,
            env_files,
            merge_strategy: top
                .choice("mergeStrategy", MergeStrategy::CHOICES)?
                .unwrap_or_default(),
            max_budget_usd: top.positive_number("maxBudgetUsd")?,
            use_run_branch: top.bool("useRunBranch")?.unwrap_or(false),
            verify_command: optional_text("verifyCommand")?,
            project_direction: optional_text("projectDirection")?,
            max_task_restarts: to_u32(top.int("maxTaskRestarts", 0, 20, false)?.unwrap_or(3)),
            restart_backoff_ms: ms("restartBackoffMs", 1000, 0)?,
            max_plan_retries: to_u32(top.int("maxPlanRetries", 0, 20, false)?.unwrap_or(3)),
            max_turns: top.int("maxTurns", 1, MAX_TURNS, true)?.map(to_u32),
            permission_mode: top
                .choice("permissionMode", PermissionMode::CHOICES)?
                .unwrap_or_default(),
            git_timeout_ms: ms("gitTimeoutMs", 120_000, 1000)?,
            push: top.bool("push")?.unwrap_or(true),
        })
    }

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

    pub fn git_timeout(&self) -> Duration {
        Duration::from_millis(self.git_timeout_ms)
    }
}

// Range checks happen before these conversions, so they never saturate in practice; they
// exist to avoid `as` truncation and `unwrap` on input-derived numbers.
fn to_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Parses a `repositoryUrl`; the error is a short reason for the message.
pub(crate) fn parse_repository(raw: &str, dir: &Path) -> Result<RepositoryLocation, String> {
    if raw.trim().is_empty() {
        return Err("it is empty".into());
    }
    if raw.trim() != raw {
        return Err("it has leading or trailing whitespace".into());
    }
    // A leading "-" would be read by git as an option (e.g. "--upload-pack=...").
    if raw.starts_with('-') {
        return Err("it starts with \"-\"".into());
    }
    if raw.chars().any(char::is_control) {
        return Err("it contains a control character".into());
    }
    if let Some(rest) = raw.strip_prefix("file://") {
        if rest.is_empty() {
            return Err("the file:// URL has no path".into());
        }
        return Ok(RepositoryLocation::LocalPath(resolve(dir, Path::new(rest))));
    }
    for scheme in ["https://", "http://", "ssh://"] {
        if let Some(rest) = raw.strip_prefix(scheme) {
            let authority = rest.split('/').next().unwrap_or("");
            let host = authority.rsplit('@').next().unwrap_or("");
            if host.is_empty() || host.starts_with(':') {
                return Err(format!("the {scheme} URL has no host"));
            }
            if raw.chars().any(char::is_whitespace) {
                return Err("a URL cannot contain whitespace".into());
            }
            return Ok(RepositoryLocation::Remote(raw.to_string()));
        }
    }
    if let Some(at) = raw.find("://") {
        return Err(format!("unsupported URL scheme \"{}\"", &raw[..at]));
    }
    if is_scp_like(raw) {
        return Ok(RepositoryLocation::Remote(raw.to_string()));
    }
    Ok(RepositoryLocation::LocalPath(resolve(dir, Path::new(raw))))
}

/// `user@host:path`, as git's scp-like syntax (a user is required, so `C:`-style or
/// `dir:file` local paths are not mistaken for remotes).
fn is_scp_like(raw: &str) -> bool {
    let Some((user_host, path)) = raw.split_once(':') else {
        return false;
    };
    let Some((user, host)) = user_host.split_once('@') else {
        return false;
    };
    let word = |s: &str, extra: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    };
    word(user, "._-")
        && word(host, ".-")
        && !path.is_empty()
        && !raw.chars().any(char::is_whitespace)
}

/// Hides a password in `scheme://user:password@host/...` before a URL goes into a message.
fn mask_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) if authority[..at].contains(':') => {
            let user = authority[..at].split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme_end + 3], &rest[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_forms() {
        let dir = Path::new("/cfg");
        let remote = |s: &str| RepositoryLocation::Remote(s.into());
        assert_eq!(
            parse_repository("https://github.com/a/b.git", dir),
            Ok(remote("https://github.com/a/b.git"))
        );
        assert_eq!(
            parse_repository("http://h/a", dir),
            Ok(remote("http://h/a"))
        );
        assert_eq!(
            parse_repository("ssh://git@h:22/a", dir),
            Ok(remote("ssh://git@h:22/a"))
        );
        assert_eq!(
            parse_repository("git@github.com:a/b.git", dir),
            Ok(remote("git@github.com:a/b.git"))
        );
        assert_eq!(
            parse_repository("file:///srv/repo", dir),
            Ok(RepositoryLocation::LocalPath("/srv/repo".into()))
        );
        assert_eq!(
            parse_repository("./demo-repo", dir),
            Ok(RepositoryLocation::LocalPath("/cfg/demo-repo".into()))
        );
        assert_eq!(
            parse_repository("/abs/repo", dir),
            Ok(RepositoryLocation::LocalPath("/abs/repo".into()))
        );
        for bad in [
            "",
            " ",
            "-oProxyCommand=x",
            "ftp://h/a",
            "https://",
            "https:///a",
            "a\nb",
            " x",
        ] {
            assert!(parse_repository(bad, dir).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn masks_passwords() {
        assert_eq!(mask_userinfo("https://u:tok@h/a"), "https://u:***@h/a");
        assert_eq!(mask_userinfo("https://h/a@b"), "https://h/a@b");
        assert_eq!(mask_userinfo("ftp://x"), "ftp://x");
    }

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
