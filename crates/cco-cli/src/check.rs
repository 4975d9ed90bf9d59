//! `cco check`: what a run of a config would do, for people (a short summary ending with
//! `config OK`) or machines (`--json`). The same summary closes `cco init`.
//!
//! Secrets never appear: key names and variable names are shown, values never; a password in
//! a repository URL is masked; and the finished text goes through the config's redactor as a
//! last guard.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use cco_config::{AuthMode, KeyAuth, LoadedConfig, MergeStrategy};
use serde_json::json;

use crate::cli::CheckArgs;
use crate::term::{self, paint};

/// How long `claude --version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(args: CheckArgs) -> ExitCode {
    let loaded = match crate::commands::load_config(&args.config, &args.workspace) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let version = claude_version(&loaded.claude_binary).await;
    let redactor = loaded.redactor();
    if args.json {
        let value = summary_json(&loaded, &version);
        let text = serde_json::to_string_pretty(&value).unwrap_or_default();
        println!("{}", redactor.redact(&text));
    } else {
        for warning in &loaded.warnings {
            term::warn(&redactor.redact(warning));
        }
        let colour = term::stdout_colour();
        let from_flag = args.workspace.workspace.is_some();
        print!(
            "{}",
            redactor.redact(&summary_text(&loaded, &version, colour, from_flag))
        );
    }
    ExitCode::SUCCESS
}

/// The first line of `claude --version`, or why there is none.
pub async fn claude_version(binary: &Path) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(VERSION_TIMEOUT, cmd.output()).await {
        Err(_) => Err(format!(
            "`--version` did not answer within {} s",
            VERSION_TIMEOUT.as_secs()
        )),
        Ok(Err(error)) => Err(format!("cannot run it: {error}")),
        Ok(Ok(out)) if !out.status.success() => Err(format!(
            "`--version` failed ({})",
            crate::commands::describe_status(out.status)
        )),
        Ok(Ok(out)) => {
            let text = String::from_utf8_lossy(&out.stdout);
            match text.lines().map(str::trim).find(|l| !l.is_empty()) {
                Some(line) => Ok(line.chars().take(120).collect()),
                None => Err("`--version` printed nothing".into()),
            }
        }
    }
}

/// True when the config in `dir` fails to load only for want of a claude binary.
pub fn claude_missing(dir: &Path) -> bool {
    matches!(
        cco_config::load(dir),
        Err(cco_config::ConfigError::ClaudeBinary { .. })
    )
}

/// Where the claude CLI's own login is (`.credentials.json` in `CLAUDE_CONFIG_DIR` or
/// `~/.claude`), the files cco copies for `oauth` agents.
pub fn claude_login() -> Option<std::path::PathBuf> {
    let dir = match std::env::var_os("CLAUDE_CONFIG_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".claude"),
    };
    let file = dir.join(".credentials.json");
    file.is_file().then_some(file)
}

/// Team sizes as the Director forms them: groups of `engineerManagerGroupSize`, the last one
/// smaller.
fn team_sizes(workers: usize, group: usize) -> Vec<usize> {
    let group = group.max(1);
    (0..workers.div_ceil(group))
        .map(|i| group.min(workers - i * group))
        .collect()
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The team layout in words.
pub fn mode_text(loaded: &LoadedConfig) -> String {
    let c = &loaded.config;
    if c.is_flat() {
        format!(
            "flat: one Coordinator leads {} (workerCount {} <= engineerManagerGroupSize {})",
            plural(c.worker_count, "worker", "workers"),
            c.worker_count,
            c.engineer_manager_group_size
        )
    } else {
        let sizes = team_sizes(c.worker_count, c.engineer_manager_group_size);
        let list: Vec<String> = sizes.iter().map(usize::to_string).collect();
        format!(
            "hierarchy: a Director, {} and {} in teams of {}",
            plural(sizes.len(), "Engineering Manager", "Engineering Managers"),
            plural(c.worker_count, "worker", "workers"),
            list.join(", ")
        )
    }
}

fn models_text(loaded: &LoadedConfig) -> String {
    let m = &loaded.config.models;
    if loaded.config.is_flat() {
        format!("coordinator {}, workers {}", m.director, m.worker)
    } else {
        format!(
            "director {}, engineering managers {}, workers {}",
            m.director, m.em, m.worker
        )
    }
}

fn key_list(loaded: &LoadedConfig) -> String {
    loaded
        .api_keys
        .iter()
        .map(|key| format!("{} ({})", key.name, key.var_names().join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

fn auth_text(loaded: &LoadedConfig) -> String {
    let login = match claude_login() {
        Some(path) => format!("the claude CLI's login ({})", path.display()),
        None => "the claude CLI's login (none found: run `claude` and `/login` first)".into(),
    };
    let keys = plural(loaded.api_keys.len(), "key", "keys");
    match loaded.config.auth_mode {
        AuthMode::Oauth if loaded.api_keys.is_empty() => {
            format!("oauth: {login}; while it is rate limited, new agents wait for its reset")
        }
        AuthMode::Oauth => format!(
            "oauth: {login}; while it is rate limited, {keys} from {}: {}, then the login again after its reset",
            loaded.api_keys_path().display(),
            key_list(loaded)
        ),
        AuthMode::ApiKeysFirst if loaded.api_keys.is_empty() => {
            format!("api-keys-first: no keys, so {login}")
        }
        AuthMode::ApiKeysFirst => format!(
            "api-keys-first: {keys} from {}: {}; while every key is rate limited, {login}, then the keys again at their reset",
            loaded.api_keys_path().display(),
            key_list(loaded)
        ),
        AuthMode::ApiKeysOnly => format!(
            "api-keys-only: {keys} from {}: {}",
            loaded.api_keys_path().display(),
            key_list(loaded)
        ),
    }
}

fn merging_text(loaded: &LoadedConfig) -> String {
    let c = &loaded.config;
    let strategy = match c.merge_strategy {
        MergeStrategy::Agent => match c.max_auto_resolve_conflicts {
            Some(n) => format!(
                "conflicts go back to an agent (at most {n} rounds in the run, then as \"fail\")"
            ),
            None => "conflicts go back to the agent that wrote the code".into(),
        },
        MergeStrategy::Ours => "conflicts keep the base branch's side (ours)".into(),
        MergeStrategy::Theirs => "conflicts keep the worker's side (theirs)".into(),
        MergeStrategy::Union => "conflicts keep both sides (union)".into(),
        MergeStrategy::Skip => "a conflicting branch is skipped".into(),
        MergeStrategy::Fail => "a conflict stops the run".into(),
    };
    let verify = match &c.verify_command {
        Some(cmd) => format!("verify `{cmd}` before the base branch moves"),
        None => "no verify command".into(),
    };
    let target = if c.use_run_branch {
        format!(
            "into a new run branch cco/run-<time> made from {}",
            c.branch
        )
    } else {
        format!("into {}", c.branch)
    };
    let push = if c.push { "pushed" } else { "not pushed" };
    format!("{target} ({push}); {strategy}; {verify}")
}

fn limits_text(loaded: &LoadedConfig) -> String {
    let c = &loaded.config;
    let mut parts = vec![format!("run {} min", c.max_run_duration_minutes)];
    parts.push(match c.max_budget_usd {
        Some(usd) => format!("budget ${usd:.2}"),
        None => "no budget limit".into(),
    });
    parts.push(format!(
        "turns {} (idle {})",
        crate::live::format_duration(c.task_timeout()),
        crate::live::format_duration(c.idle_timeout())
    ));
    if let Some(n) = c.max_tool_uses_per_instance {
        parts.push(format!("{n} tool uses per claude process"));
    }
    if let Some(n) = c.max_total_tool_uses {
        parts.push(format!("{n} tool uses in the run"));
    }
    if let Some(n) = c.max_turns {
        parts.push(format!("--max-turns {n}"));
    }
    parts.push(format!("{} restarts per task", c.max_task_restarts));
    parts.join(", ")
}

/// Where workers run (issue 15), and whether the cookie file would be accepted.
fn cluster_text(cluster: &cco_config::ClusterConfig) -> String {
    let nodes: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| match n.slots {
            Some(slots) => format!("{} ({slots} slots)", n.address),
            None => n.address.clone(),
        })
        .collect();
    let cookie = match cco::cluster::read_cookie(&cluster.cookie_file) {
        Ok(_) => format!("cookie {}", cluster.cookie_file.display()),
        Err(error) => format!("PROBLEM: {error}"),
    };
    format!(
        "{} node(s): {}; {} local slot(s); {}; {}",
        cluster.nodes.len(),
        nodes.join(", "),
        cluster.local_slots,
        if cluster.tls.is_some() {
            "TLS"
        } else if cluster.insecure_transport {
            "plain TCP (insecureTransport)"
        } else {
            "plain TCP on loopback"
        },
        cookie
    )
}

fn repository_text(loaded: &LoadedConfig) -> String {
    let c = &loaded.config;
    let url = cco_config::mask_userinfo(&c.repository_url);
    match &c.local_repo_path {
        Some(path) => format!(
            "{url}, cloned from the local repository {} (localRepoPath)",
            path.display()
        ),
        None => url,
    }
}

/// The summary for people, one `label  value` line each, ending with `config OK`.
/// `workspace_from_flag`: the workspace was given with `-w`.
pub fn summary_text(
    loaded: &LoadedConfig,
    version: &Result<String, String>,
    colour: bool,
    workspace_from_flag: bool,
) -> String {
    let c = &loaded.config;
    let mut rows: Vec<(&str, String)> = vec![
        ("config", loaded.config_path().display().to_string()),
        ("repository", repository_text(loaded)),
        ("branch", c.branch.clone()),
        (
            "workspace",
            format!(
                "{}{}",
                c.workspace_directory.display(),
                if workspace_from_flag {
                    " (from -w)"
                } else {
                    ""
                }
            ),
        ),
        ("logs", c.log_directory.display().to_string()),
        ("mode", mode_text(loaded)),
        ("models", models_text(loaded)),
        ("auth", auth_text(loaded)),
    ];
    if !c.env.is_empty() {
        let names: Vec<&str> = c.env.keys().map(String::as_str).collect();
        rows.push(("agent env", format!("{} (values hidden)", names.join(", "))));
    }
    rows.push(("merges", merging_text(loaded)));
    rows.push(("limits", limits_text(loaded)));
    if let Some(cluster) = &c.cluster {
        rows.push(("cluster", cluster_text(cluster)));
    }
    let claude = match version {
        Ok(v) => format!("{} ({v})", loaded.claude_binary.display()),
        Err(why) => format!(
            "{} (version unknown: {why})",
            loaded.claude_binary.display()
        ),
    };
    rows.push(("claude", claude));
    let mut out = String::new();
    for (label, value) in rows {
        out.push_str(&format!(
            "{}  {value}\n",
            paint(&format!("{label:<11}"), term::heading_style(), colour)
        ));
    }
    if !c.original_keys.is_empty() {
        out.push_str(&format!(
            "{}\n",
            paint(
                "keys of the original tool (@mohsen/claude-code-orchestrator):",
                term::heading_style(),
                colour
            )
        ));
        for note in &c.original_keys {
            let arrow = match &note.use_instead {
                Some(new) => format!("{} -> {new}", note.key),
                None => note.key.clone(),
            };
            out.push_str(&format!("  {arrow}: {}\n", note.note));
        }
    }
    out.push_str(&format!(
        "{}\n",
        paint("config OK", term::ok_style(), colour)
    ));
    out
}

/// The summary for machines.
pub fn summary_json(loaded: &LoadedConfig, version: &Result<String, String>) -> serde_json::Value {
    let c = &loaded.config;
    let keys: Vec<serde_json::Value> = loaded
        .api_keys
        .iter()
        .map(|key| {
            json!({
                "name": key.name,
                "form": match key.auth { KeyAuth::ApiKey(_) => "apiKey", KeyAuth::Env(_) => "env" },
                "variables": key.var_names(),
            })
        })
        .collect();
    let mut config = serde_json::to_value(c).unwrap_or_default();
    if let Some(url) = config.get_mut("repositoryUrl") {
        *url = json!(cco_config::mask_userinfo(&c.repository_url));
    }
    json!({
        "ok": true,
        "configFile": loaded.config_path(),
        "apiKeysFile": loaded.api_keys_path().is_file().then(|| loaded.api_keys_path()),
        "mode": if c.is_flat() { "flat" } else { "hierarchy" },
        "teams": if c.is_flat() { vec![c.worker_count] } else { team_sizes(c.worker_count, c.engineer_manager_group_size) },
        "apiKeys": keys,
        "claudeBinary": loaded.claude_binary,
        "claudeVersion": version.as_ref().ok(),
        "claudeVersionError": version.as_ref().err(),
        "claudeLogin": claude_login(),
        "warnings": loaded.warnings,
        "originalKeys": c.original_keys,
        "config": config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teams_are_groups_with_a_smaller_last_one() {
        assert_eq!(team_sizes(6, 4), [4, 2]);
        assert_eq!(team_sizes(16, 4), [4, 4, 4, 4]);
        assert_eq!(team_sizes(5, 2), [2, 2, 1]);
    }
}
