//! Parsing `orchestrator.json` into a [`Config`].
//!
//! Pure (no file system access): relative paths are resolved lexically against the directory
//! of the source file. Checks that need the file system (the claude binary, api-keys.json) are
//! done by [`crate::load`]. Keys of the original tool are read through `legacy`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::env::{env_object, EnvRules};
use crate::error::ConfigError;
use crate::legacy::{self, note};
use crate::model::{
    AuthMode, Config, GitCloneOptions, KeyNote, MergeStrategy, Models, OrphanPolicy,
    PermissionMode, RepositoryLocation, StructuredOutput, MAX_CLONE_DEPTH, MAX_MS, MAX_RUN_MINUTES,
    MAX_TURNS,
};
use crate::repository::{mask_userinfo, parse_repository};
use crate::validate::{
    branch_problem, config_dir_of, describe, env_file_problem, parse_json, resolve, show, Obj,
    Result,
};

/// Upper bound for `maxToolUsesPerInstance`.
pub const MAX_TOOL_USES_PER_INSTANCE: u64 = 1_000_000;
/// Upper bound for `maxTotalToolUses`.
pub const MAX_TOTAL_TOOL_USES: u64 = 100_000_000;
/// Upper bound for `maxApiRetries`.
pub const MAX_API_RETRIES: u64 = 10_000;
/// Upper bound for `maxAutoResolveConflicts`.
pub const MAX_AUTO_RESOLVE_CONFLICTS: u64 = 100_000;

/// The cco keys of orchestrator.json (listed in "expected one of" messages).
pub const TOP_KEYS: &[&str] = &[
    "repositoryUrl",
    "localRepoPath",
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
    "model",
    "models",
    "claudeBinary",
    "env",
    "envFiles",
    "mergeStrategy",
    "maxAutoResolveConflicts",
    "maxBudgetUsd",
    "maxToolUsesPerInstance",
    "maxTotalToolUses",
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
    "cluster",
    "minKeyBenchMs",
    "quotaWarningThreshold",
    "apiRetryBackoffMs",
    "maxApiRetryBackoffMs",
    "maxApiRetries",
    "structuredOutput",
    "orphanPolicy",
];
const CLONE_KEYS: &[&str] = &["depth", "singleBranch", "noSubmodules"];
const MODEL_KEYS: &[&str] = &["director", "em", "worker"];

const REPOSITORY_EXPECTED: &str =
    "a git URL (https://, http://, ssh://, git@host:path, file://) or a local path";

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
        let original: Vec<&str> = legacy::accepted_keys()
            .into_iter()
            .filter(|k| !TOP_KEYS.contains(k))
            .collect();
        top.check_keys_accepting(TOP_KEYS, &original)?;
        // Nested key checks first, so a typo anywhere is reported before value errors.
        let clone = top.object("gitCloneOptions", CLONE_KEYS)?;
        let cluster = crate::cluster::parse_cluster(&top, &config_dir_of(source))?;
        let models = top.object("models", MODEL_KEYS)?;
        legacy::check_comment(&top)?;
        let dir = config_dir_of(source);
        let mut notes: Vec<KeyNote> = Vec::new();

        let repository_url = top
            .string("repositoryUrl", false, false)?
            .ok_or_else(|| top.missing("repositoryUrl", REPOSITORY_EXPECTED))?;
        let mut repository = parse_repository(repository_url, &dir).map_err(|problem| {
            top.invalid(
                "repositoryUrl".into(),
                REPOSITORY_EXPECTED,
                format!("{} ({problem})", show(&mask_userinfo(repository_url))),
            )
        })?;
        let local_repo_path = top
            .string("localRepoPath", true, true)?
            .map(|raw| resolve(&dir, Path::new(raw)));
        if let Some(path) = &local_repo_path {
            repository = RepositoryLocation::LocalPath(path.clone());
        }

        let branch = top.string("branch", false, false)?.unwrap_or("main");
        if let Some(problem) = branch_problem(branch) {
            return Err(top.invalid(
                "branch".into(),
                "a valid git branch name",
                format!("{} ({problem})", show(branch)),
            ));
        }

        let git_clone_options = clone_options(&top, clone.as_ref(), &mut notes)?;

        let worker_count = top
            .int("workerCount", 1, 100, false)?
            .ok_or_else(|| top.missing("workerCount", "an integer from 1 to 100"))?;
        let group_key = legacy::renamed_key(&top, "groupSize")?;
        let engineer_manager_group_size = match group_key {
            Some(key) => top.int(key, 1, 100, false)?.unwrap_or(4),
            None => 4,
        };
        if group_key == Some("groupSize") {
            notes.push(note(
                "groupSize",
                Some("engineerManagerGroupSize"),
                format!("workers per Engineering Manager: {engineer_manager_group_size}"),
            ));
        }

        let models = match (legacy::model(&top)?, &models) {
            (Some(one), _) => Models {
                director: one.clone(),
                em: one.clone(),
                worker: one,
            },
            (None, None) => Models::default(),
            (None, Some(m)) => role_models(m)?,
        };

        let dir_field = |key: &str, default: &str| -> Result<PathBuf> {
            let raw = top.string(key, true, false)?.unwrap_or(default);
            Ok(resolve(&dir, Path::new(raw)))
        };
        let log_directory = dir_field("logDirectory", "logs")?;
        let workspace_key = legacy::renamed_key(&top, "workspaceDir")?;
        let workspace_directory =
            dir_field(workspace_key.unwrap_or("workspaceDirectory"), "workspace")?;
        if workspace_key == Some("workspaceDir") {
            notes.push(note(
                "workspaceDir",
                Some("workspaceDirectory"),
                format!(
                    "{} (resolved against the config directory; the original resolved it \
                     against the current directory)",
                    workspace_directory.display()
                ),
            ));
        }

        let claude_binary = top.string("claudeBinary", true, true)?.map(PathBuf::from);
        let env_files = env_files(&top)?;
        let env = env_object(
            &top,
            "env",
            EnvRules {
                credential: false,
                empty_object: true,
                empty_value: true,
            },
        )?
        .unwrap_or_default();

        let merge_strategy = merge_strategy(&top, &mut notes)?;
        let max_auto_resolve_conflicts = top
            .int(
                "maxAutoResolveConflicts",
                0,
                MAX_AUTO_RESOLVE_CONFLICTS,
                true,
            )?
            .map(to_u32);
        if max_auto_resolve_conflicts.is_some() && merge_strategy != MergeStrategy::Agent {
            notes.push(note(
                "maxAutoResolveConflicts",
                None,
                "no effect: it limits agent conflict resolution, and mergeStrategy is not \
                 \"agent\" (\"auto-resolve\")",
            ));
        }

        let (legacy_poll, legacy_timeout) = legacy::timing(&top, &mut notes)?;
        legacy::obsolete(&top, &mut notes)?;

        let optional_text = |key: &str| -> Result<Option<String>> {
            Ok(top.string(key, true, true)?.map(str::to_string))
        };
        let ms = |key: &str, default: u64, min: u64| -> Result<u64> {
            Ok(top.int(key, min, MAX_MS, false)?.unwrap_or(default))
        };

        let api_retry_backoff_ms = ms("apiRetryBackoffMs", 10_000, 0)?;
        let max_api_retry_backoff_ms = ms("maxApiRetryBackoffMs", 300_000, 0)?;
        if max_api_retry_backoff_ms < api_retry_backoff_ms {
            return Err(top.invalid(
                "maxApiRetryBackoffMs".into(),
                "at least apiRetryBackoffMs",
                format!("{max_api_retry_backoff_ms} (apiRetryBackoffMs is {api_retry_backoff_ms})"),
            ));
        }

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
            engineer_manager_group_size: to_usize(engineer_manager_group_size),
            max_run_duration_minutes: top
                .int("maxRunDurationMinutes", 1, MAX_RUN_MINUTES, false)?
                .unwrap_or(120),
            task_timeout_ms: ms("taskTimeoutMs", legacy_timeout.unwrap_or(600_000), 1000)?,
            idle_timeout_ms: ms("idleTimeoutMs", 300_000, 1000)?,
            kill_grace_ms: ms("killGraceMs", 5000, 0)?,
            poll_interval_ms: ms("pollIntervalMs", legacy_poll.unwrap_or(5000), 10)?,
            models,
            claude_binary,
            env_files,
            merge_strategy,
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
            local_repo_path,
            env,
            max_auto_resolve_conflicts,
            max_tool_uses_per_instance: top
                .int(
                    "maxToolUsesPerInstance",
                    1,
                    MAX_TOOL_USES_PER_INSTANCE,
                    true,
                )?
                .map(to_u32),
            max_total_tool_uses: top.int("maxTotalToolUses", 1, MAX_TOTAL_TOOL_USES, true)?,
            min_key_bench_ms: ms("minKeyBenchMs", 60_000, 0)?,
            quota_warning_threshold: top.fraction("quotaWarningThreshold")?.unwrap_or(0.9),
            api_retry_backoff_ms,
            max_api_retry_backoff_ms,
            max_api_retries: to_u32(
                top.int("maxApiRetries", 0, MAX_API_RETRIES, false)?
                    .unwrap_or(50),
            ),
            structured_output: top
                .choice("structuredOutput", StructuredOutput::CHOICES)?
                .unwrap_or_default(),
            orphan_policy: top
                .choice("orphanPolicy", OrphanPolicy::CHOICES)?
                .unwrap_or_default(),
            original_keys: notes,
            cluster,
        })
    }
}

/// `gitCloneOptions`, with the original's `cloneDepth` as its depth.
fn clone_options(
    top: &Obj<'_>,
    clone: Option<&Obj<'_>>,
    notes: &mut Vec<KeyNote>,
) -> Result<GitCloneOptions> {
    let mut options = match clone {
        None => GitCloneOptions::default(),
        Some(c) => GitCloneOptions {
            depth: c.int("depth", 1, MAX_CLONE_DEPTH, true)?.map(to_u32),
            single_branch: c.bool("singleBranch")?.unwrap_or(false),
            no_submodules: c.bool("noSubmodules")?.unwrap_or(false),
        },
    };
    if legacy::renamed_key(top, "cloneDepth")? == Some("cloneDepth") {
        options.depth = top.int("cloneDepth", 1, MAX_CLONE_DEPTH, true)?.map(to_u32);
        let what = match options.depth {
            Some(depth) => format!("a shallow clone of depth {depth}"),
            None => "a full clone".to_string(),
        };
        notes.push(note("cloneDepth", Some("gitCloneOptions.depth"), what));
    }
    Ok(options)
}

/// `models`, role by role; a partial object keeps the defaults for the other roles.
fn role_models(m: &Obj<'_>) -> Result<Models> {
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
    Ok(Models {
        director: model("director", defaults.director)?,
        em: model("em", defaults.em)?,
        worker: model("worker", defaults.worker)?,
    })
}

/// `mergeStrategy`, where the original's `"auto-resolve"` is cco's `"agent"`.
fn merge_strategy(top: &Obj<'_>, notes: &mut Vec<KeyNote>) -> Result<MergeStrategy> {
    if top.map.get("mergeStrategy").and_then(Value::as_str) == Some("auto-resolve") {
        notes.push(note(
            "mergeStrategy",
            Some("\"agent\""),
            "cco's name of \"auto-resolve\": conflicts go back to the agent that wrote the code",
        ));
        return Ok(MergeStrategy::Agent);
    }
    Ok(top
        .choice("mergeStrategy", MergeStrategy::CHOICES)?
        .unwrap_or_default())
}

fn env_files(top: &Obj<'_>) -> Result<Vec<PathBuf>> {
    let Some(items) = top.array(
        "envFiles",
        "an array of file names relative to the repository root",
    )?
    else {
        return Ok(vec![PathBuf::from(".env"), PathBuf::from(".env.local")]);
    };
    let mut files = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("envFiles[{i}]");
        let expected = "a file name relative to the repository root";
        let Value::String(name) = item else {
            return Err(ConfigError::WrongType {
                path: top.file.to_path_buf(),
                field,
                expected: expected.into(),
                found: describe(item, false),
            });
        };
        if let Some(problem) = env_file_problem(name) {
            return Err(top.invalid(field, expected, format!("{} ({problem})", show(name))));
        }
        files.push(PathBuf::from(name));
    }
    Ok(files)
}

// Range checks happen before these conversions, so they never saturate in practice; they
// exist to avoid `as` truncation and `unwrap` on input-derived numbers.
fn to_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}
