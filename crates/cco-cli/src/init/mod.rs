//! `cco init [DIR]`: a config directory from a few questions.
//!
//! Each question (repository, base branch, workers, auth mode and keys, verify command, budget,
//! duration) is answered by its flag, else on a terminal (`ask`, with defaults from `detect`),
//! else by its default with `--yes`; without a terminal and without `--yes` a missing flag is a
//! usage error, so scripts and tests never hang on a prompt. `write` produces the files; then
//! the config is loaded exactly as `cco check` loads it, its summary printed, and the next
//! command named. `cco start` without a config calls [`offer_from_start`] on a terminal.

mod ask;
mod detect;
mod write;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cco_config::{AuthMode, API_KEYS_FILE_NAME, CONFIG_FILE_NAME};

use crate::cli::{AuthArg, ConfigArg, InitArgs, WorkspaceArg};
use crate::commands::{EXIT_CONFIG, EXIT_FAILED};
use crate::term;
use ask::Asker;
use write::Answers;

/// Why `init` stopped.
#[derive(Debug)]
pub enum InitError {
    /// The person pressed Esc or Ctrl-C.
    Cancelled,
    /// A flag is missing or wrong.
    Usage(String),
    /// Something could not be read or written.
    Failed(String),
}

pub async fn run(args: InitArgs) -> ExitCode {
    let asker = if args.yes {
        Asker::Defaults
    } else if term::interactive() {
        Asker::Terminal
    } else {
        Asker::Nobody
    };
    let dir = match setup(&args, asker) {
        Ok(dir) => dir,
        Err(error) => return report(error),
    };
    match finish(&dir).await {
        Ok(()) => {
            println!(
                "\nNext: {} start --config {}",
                term::cco_command(),
                term::shell_word(&detect::shown(&dir, &cwd()))
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// `cco start` found no config: offers to make one here and now (on a terminal). The
/// directory to start from, or the exit code when nothing is to be started.
pub async fn offer_from_start(config: Option<PathBuf>) -> Result<PathBuf, ExitCode> {
    let place = config.clone().unwrap_or_else(|| PathBuf::from("."));
    eprintln!(
        "cco: no {CONFIG_FILE_NAME} in {}",
        std::path::absolute(&place).unwrap_or(place).display()
    );
    match ask::confirm("Set up a config now (cco init)?", true) {
        Ok(true) => {}
        Ok(false) | Err(_) => {
            eprintln!("hint: `cco init [DIR]` sets one up; `cco demo` shows a run offline");
            return Err(ExitCode::from(EXIT_CONFIG));
        }
    }
    let args = InitArgs {
        dir: config,
        ..InitArgs::default()
    };
    let dir = setup(&args, Asker::Terminal).map_err(report)?;
    finish(&dir).await?;
    match ask::confirm("Start the run now?", true) {
        Ok(true) => Ok(dir),
        _ => {
            println!(
                "Start it later: {} start --config {}",
                term::cco_command(),
                term::shell_word(&detect::shown(&dir, &cwd()))
            );
            Err(ExitCode::SUCCESS)
        }
    }
}

fn report(error: InitError) -> ExitCode {
    match error {
        InitError::Cancelled => {
            eprintln!("cco init: cancelled");
            ExitCode::from(EXIT_FAILED)
        }
        InitError::Usage(message) => {
            eprintln!("cco init: {message}");
            ExitCode::from(EXIT_CONFIG)
        }
        InitError::Failed(message) => {
            eprintln!("cco init: {message}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn cwd() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

/// Loads the written config as `cco check` does and prints its summary.
async fn finish(dir: &Path) -> Result<(), ExitCode> {
    let arg = ConfigArg {
        config: Some(dir.to_path_buf()),
    };
    let loaded = match crate::commands::load_config(&arg, &WorkspaceArg::default()) {
        Ok(loaded) => loaded,
        Err(code) => {
            if crate::check::claude_missing(dir) {
                eprintln!(
                    "hint: install the Claude Code CLI (`npm install -g @anthropic-ai/claude-code`), \
                     or name it with `cco init --claude-binary PATH` (claudeBinary)"
                );
            }
            eprintln!(
                "cco init: the files are written; fix the above, then `cco check --config {}`",
                term::shell_word(&dir.display().to_string())
            );
            return Err(code);
        }
    };
    for warning in &loaded.warnings {
        term::warn(warning);
    }
    let version = crate::check::claude_version(&loaded.claude_binary).await;
    println!();
    let summary = crate::check::summary_text(&loaded, &version, term::stdout_colour(), false);
    print!("{}", loaded.redactor().redact(&summary));
    Ok(())
}

/// Asks what the flags did not say, then writes the files. Returns the config directory.
fn setup(args: &InitArgs, asker: Asker) -> Result<PathBuf, InitError> {
    let cwd = cwd();
    let here = detect::checkout(&cwd);

    let dir = asker.answer(
        args.dir.clone(),
        Some(detect::default_dir(&cwd, here.as_ref())),
        "DIR",
        ask::directory,
    )?;
    let dir = detect::clean(&dir);
    if let Some(root) = here
        .as_ref()
        .map(|c| &c.root)
        .filter(|r| dir.starts_with(r))
    {
        term::warn(&format!(
            "{} is inside the git checkout {}: cco's own clone, worktrees and logs would live \
             in your repository; a directory beside it is better",
            dir.display(),
            root.display()
        ));
    }
    let config_file = dir.join(CONFIG_FILE_NAME);
    may_replace(&config_file, args, asker)?;

    let repo_default = here.as_ref().map(|c| {
        c.origin
            .clone()
            .unwrap_or_else(|| c.root.display().to_string())
    });
    let repo = asker.answer(args.repo.clone(), repo_default, "--repo", |default| {
        ask::text(
            "Repository (git URL or local path):",
            "the repository the team works on; cco clones it and never touches your checkout",
            default,
            true,
        )
    })?;
    let (repo, source) = resolve_repo(&repo, &cwd, here.as_ref(), &dir)?;

    let branch_default = source
        .as_ref()
        .and_then(|c| c.branch.clone())
        .unwrap_or_else(|| write::DEFAULT_BRANCH.into());
    let branch = asker.answer(args.branch.clone(), Some(branch_default), "--branch", |d| {
        ask::text(
            "Base branch:",
            "finished, reviewed and verified work is merged into it",
            d,
            true,
        )
    })?;
    check_field(&dir, "branch", &serde_json::json!(branch))?;

    let workers = asker.answer(
        args.workers,
        Some(write::DEFAULT_WORKERS),
        "--workers",
        ask::workers,
    )?;

    let login = crate::check::claude_login();
    let env_key = detect::env_api_key();
    let auth_default = match (&login, &env_key) {
        (None, Some(_)) => AuthMode::ApiKeysOnly,
        _ => AuthMode::Oauth,
    };
    let auth_help = match (&login, &env_key) {
        (Some(path), _) => format!("claude is logged in ({})", path.display()),
        (None, Some(_)) => "no claude login found; ANTHROPIC_API_KEY is set".to_string(),
        (None, None) => "no claude login found: run `claude` and /login, or use API keys".into(),
    };
    let auth = asker.answer(
        args.auth.map(|a| match a {
            AuthArg::Oauth => AuthMode::Oauth,
            AuthArg::ApiKeysFirst => AuthMode::ApiKeysFirst,
            AuthArg::ApiKeysOnly => AuthMode::ApiKeysOnly,
        }),
        Some(auth_default),
        "--auth",
        |d| ask::auth(d, &auth_help),
    )?;
    let (keys, keys_json) = if auth == AuthMode::Oauth {
        (Vec::new(), None)
    } else {
        let found = api_keys(args, asker, env_key)?;
        may_replace(&dir.join(API_KEYS_FILE_NAME), args, asker)?;
        found
    };

    let detected = source
        .as_ref()
        .map(|c| detect::verify_commands(&c.root))
        .unwrap_or_default();
    let verify = asker.answer(
        args.verify
            .clone()
            .map(|v| Some(v.trim().to_string()).filter(|v| !v.is_empty())),
        Some(detected.first().cloned()),
        "--verify",
        |d| ask::verify(&detected, d.flatten()),
    )?;
    let budget = match args.budget {
        Some(b) if !b.is_finite() || b < 0.0 => {
            return Err(InitError::Usage(format!(
                "--budget {b}: expected a number of dollars >= 0 (0 for none)"
            )))
        }
        flag => asker.answer(
            flag.map(|b| Some(b).filter(|b| *b > 0.0)),
            Some(None),
            "--budget",
            |d| ask::budget(d.flatten()),
        )?,
    };
    let duration = asker.answer(
        args.duration,
        Some(write::DEFAULT_DURATION),
        "--duration",
        ask::duration,
    )?;

    let answers = Answers {
        repo,
        branch,
        workers,
        auth,
        keys,
        keys_json,
        verify,
        budget,
        duration,
        claude_binary: args
            .claude_binary
            .as_ref()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
    };
    write_files(&dir, &answers)?;
    Ok(dir)
}

/// An existing file may be replaced only with `--force` or a yes on the terminal.
fn may_replace(path: &Path, args: &InitArgs, asker: Asker) -> Result<(), InitError> {
    if !path.exists() || args.force {
        return Ok(());
    }
    let question = format!("{} exists. Replace it?", path.display());
    if asker == Asker::Terminal && ask::confirm(&question, false)? {
        return Ok(());
    }
    Err(InitError::Usage(format!(
        "{} exists; pass --force to replace it, or choose another directory",
        path.display()
    )))
}

/// A repository answer as written into the config: URLs as they are, local paths absolute
/// (the config resolves relative paths against its own directory, the person meant the
/// current one). Also the local checkout to detect the branch and test command in.
fn resolve_repo(
    repo: &str,
    cwd: &Path,
    here: Option<&detect::Checkout>,
    dir: &Path,
) -> Result<(String, Option<detect::Checkout>), InitError> {
    let probe = cco_config::Config::from_json_str(
        &serde_json::json!({"repositoryUrl": repo, "workerCount": 1}).to_string(),
        &dir.join(CONFIG_FILE_NAME),
    );
    let config = probe.map_err(|e| InitError::Usage(field_error(&e)))?;
    match config.repository() {
        cco_config::RepositoryLocation::Remote(url) => {
            let source = here
                .filter(|c| c.origin.as_deref() == Some(url.as_str()))
                .cloned();
            Ok((url.clone(), source))
        }
        cco_config::RepositoryLocation::LocalPath(_) => {
            let raw = Path::new(repo.strip_prefix("file://").unwrap_or(repo));
            let path = detect::clean(&cwd.join(raw));
            let source = detect::checkout(&path);
            if source.is_none() {
                return Err(InitError::Usage(format!(
                    "{}: not a git repository (a local repository must be one)",
                    path.display()
                )));
            }
            Ok((path.display().to_string(), source))
        }
    }
}

/// A config error without the file name (the file does not exist yet).
fn field_error(error: &cco_config::ConfigError) -> String {
    let text = error.to_string();
    let prefix = format!("{}: ", error.path().display());
    text.strip_prefix(&prefix).unwrap_or(&text).to_string()
}

/// Checks one answer the way the config loader will.
fn check_field(dir: &Path, key: &str, value: &serde_json::Value) -> Result<(), InitError> {
    let mut doc = serde_json::json!({"repositoryUrl": "/r", "workerCount": 1});
    doc[key] = value.clone();
    cco_config::Config::from_json_str(&doc.to_string(), &dir.join(CONFIG_FILE_NAME))
        .map(|_| ())
        .map_err(|e| InitError::Usage(field_error(&e)))
}

/// The keys for api-keys.json: from `--api-key-file`, else asked (or `ANTHROPIC_API_KEY`).
fn api_keys(
    args: &InitArgs,
    asker: Asker,
    env_key: Option<String>,
) -> Result<(Vec<String>, Option<String>), InitError> {
    if let Some(file) = &args.api_key_file {
        return write::read_key_file(file).map_err(InitError::Usage);
    }
    match asker {
        Asker::Terminal => {
            let mut keys = Vec::new();
            if let Some(key) = env_key {
                if ask::confirm("Use the key in ANTHROPIC_API_KEY?", true)? {
                    keys.push(key);
                }
            }
            if keys.is_empty() {
                keys.push(ask::api_key("API key:")?);
            }
            while ask::confirm("Add another key (rotated when one is rate limited)?", false)? {
                keys.push(ask::api_key("API key:")?);
            }
            Ok((keys, None))
        }
        Asker::Defaults if env_key.is_some() => Ok((env_key.into_iter().collect(), None)),
        _ => Err(InitError::Usage(
            "the api-keys modes need keys: pass --api-key-file FILE (one key per line, or an \
             api-keys.json; - for standard input), or set ANTHROPIC_API_KEY and pass --yes"
                .into(),
        )),
    }
}

fn write_files(dir: &Path, answers: &Answers) -> Result<(), InitError> {
    let failed = |path: &Path, e: std::io::Error| {
        InitError::Failed(format!("cannot write {}: {e}", path.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
    let config = dir.join(CONFIG_FILE_NAME);
    std::fs::write(&config, write::orchestrator_json(answers)).map_err(|e| failed(&config, e))?;
    println!("wrote {}", config.display());
    let keys_text = match (&answers.keys_json, answers.keys.is_empty()) {
        (Some(text), _) => Some(text.clone()),
        (None, false) => Some(write::api_keys_json(&answers.keys)),
        (None, true) => None,
    };
    if let Some(text) = keys_text {
        let path = dir.join(API_KEYS_FILE_NAME);
        write::write_private(&path, &text).map_err(|e| failed(&path, e))?;
        println!("wrote {} (mode 0600: keep it private)", path.display());
    }
    Ok(())
}
