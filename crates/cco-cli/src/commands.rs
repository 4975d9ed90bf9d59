//! One function per subcommand; each returns the process exit code. Shared here: loading a
//! config (with the demo hint and the `-w` override) and describing a child's exit status.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cco::{Orchestrator, RunOutcome};
use cco_config::LoadedConfig;
use clap::CommandFactory;

use crate::cli::{Cli, Command, ConfigArg, StartArgs, StatusArgs, WorkspaceArg};
use crate::output::{self, Mode};
use crate::term;

pub(crate) use crate::term::init_tracing;

/// Exit codes (see [`exit_code`] for a run's): 1 the run failed, 2 bad configuration or usage
/// (or a run that cannot be resumed, or another cco runs the config).
pub(crate) const EXIT_FAILED: u8 = 1;
pub(crate) const EXIT_CONFIG: u8 = 2;

/// The exit code of a run that ended with `outcome` (typed: never read from the reason):
/// 0 completed (or a limit, or a stop asked for without a signal); 1 the run failed
/// (planning failed, every task failed, no valid first plan, the tree failed); 3 integrity
/// stop; 4 paused on an environmental error; 5 completed with failed tasks; 128 + n stopped
/// by signal n (130 SIGINT, 143 SIGTERM).
pub(crate) fn exit_code(outcome: &RunOutcome) -> u8 {
    match outcome {
        RunOutcome::Completed
        | RunOutcome::CompletedWithoutTasks {
            after_planning_failure: false,
        }
        | RunOutcome::LimitReached { .. } => 0,
        RunOutcome::CompletedWithoutTasks {
            after_planning_failure: true,
        }
        | RunOutcome::AllTasksFailed { .. }
        | RunOutcome::PlanningFailed
        | RunOutcome::Failed => EXIT_FAILED,
        RunOutcome::CompletedWithFailures { .. } => 5,
        RunOutcome::IntegrityStop => 3,
        RunOutcome::EnvironmentPaused => 4,
        RunOutcome::Stopped { signal: None, .. } => 0,
        RunOutcome::Stopped {
            signal: Some(signal),
            ..
        } => u8::try_from(128 + signal).unwrap_or(EXIT_FAILED),
        // An outcome this binary does not know (the library's list is non-exhaustive).
        _ => EXIT_FAILED,
    }
}

/// File in a run folder naming the workspace given with `-w`, so `cco resume` uses it too.
pub(crate) const WORKSPACE_RECORD: &str = "cli-workspace";

pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        None => without_subcommand(cli.start).await,
        Some(Command::Init(args)) => crate::init::run(args).await,
        Some(Command::Check(args)) => crate::check::run(args).await,
        Some(Command::Start(args)) => start(args).await,
        Some(Command::Resume(args)) => {
            start(StartArgs {
                config: args.config,
                workspace: args.workspace,
                output: args.output,
                ui: args.ui,
                resume: true,
                fresh: false,
            })
            .await
        }
        Some(Command::Status(args)) => status(args),
        Some(Command::Logs(args)) => crate::logs::run(args).await,
        Some(Command::Demo(args)) => crate::demo::run(args).await,
        Some(Command::Ui(args)) => crate::ui::run(args).await,
        Some(Command::Node(args)) => crate::node::run(args).await,
    }
}

/// `cco [OPTIONS]`: with options it is `start` (the original tool's command line); alone, on a
/// terminal, the first steps; alone elsewhere, a usage error.
async fn without_subcommand(args: StartArgs) -> ExitCode {
    if std::env::args_os().len() > 1 {
        return start(args).await;
    }
    if std::io::stdout().is_terminal() {
        print!("{}", term::FIRST_STEPS);
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "cco: a command is needed (demo, init, check, start, ...)\n\n{}",
        Cli::command().render_usage()
    );
    ExitCode::from(EXIT_CONFIG)
}

/// Loads the config at `arg` (a directory or a settings file). On error prints it (and the
/// demo's setup hint where it applies) and returns the exit code.
pub(crate) fn load_config(
    arg: &ConfigArg,
    workspace: &WorkspaceArg,
) -> Result<LoadedConfig, ExitCode> {
    let path = arg.path();
    match cco_config::load_path(&path) {
        Ok(mut loaded) => {
            apply_workspace(&mut loaded, workspace.workspace.as_deref());
            Ok(loaded)
        }
        Err(error) => {
            eprintln!("cco: {error}");
            let dir = if path.is_file() {
                path.parent().map(Path::to_path_buf).unwrap_or_default()
            } else {
                path.clone()
            };
            crate::demo::hint_if_unprepared(&dir);
            if matches!(error, cco_config::ConfigError::MissingFile { .. }) && !path.is_file() {
                let init = match &arg.config {
                    Some(dir) if path.extension().is_none_or(|ext| ext != "json") => {
                        format!("cco init {}", term::shell_word(&dir.display().to_string()))
                    }
                    _ => "cco init [DIR]".to_string(),
                };
                eprintln!(
                    "hint: create a config with `{init}`, or pass `--config DIR`; `cco demo` shows a run offline"
                );
            }
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

/// `-w DIR`: the run's workspace instead of the config's `workspaceDirectory`.
pub(crate) fn apply_workspace(loaded: &mut LoadedConfig, workspace: Option<&Path>) {
    if let Some(dir) = workspace {
        loaded.config.workspace_directory =
            std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    }
}

/// `exit code 128`, `killed by SIGKILL`: an exit status in words (never `Some(128)`).
pub(crate) fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => match nix::sys::signal::Signal::try_from(signal) {
            Ok(name) => format!("killed by {name}"),
            Err(_) => format!("killed by signal {signal}"),
        },
        (None, None) => "ended without an exit code".into(),
    }
}

pub(crate) fn output_mode(args: &crate::cli::OutputArgs) -> Mode {
    if args.json {
        Mode::Json
    } else if args.quiet {
        Mode::Quiet
    } else if !args.plain && crate::live::supported() {
        Mode::Live
    } else {
        Mode::Plain
    }
}

/// True when `arg` names no settings file: nothing to start from.
fn has_no_config(arg: &ConfigArg) -> bool {
    let path = arg.path();
    !path.is_file()
        && !path.join(cco_config::CONFIG_FILE_NAME).exists()
        && path.extension().is_none_or(|ext| ext != "json")
}

async fn start(mut args: StartArgs) -> ExitCode {
    init_tracing(&args.output);
    if has_no_config(&args.config) {
        // The original tool's `start` set a config up when there was none; so does cco, on a
        // terminal (elsewhere nobody can answer, and the error below says what to do).
        if term::interactive() {
            match crate::init::offer_from_start(args.config.config.clone()).await {
                Ok(dir) => args.config.config = Some(dir),
                Err(code) => return code,
            }
        }
    }
    let mut config = match load_config(&args.config, &args.workspace) {
        Ok(config) => config,
        Err(code) => return code,
    };
    for warning in &config.warnings {
        term::warn(warning);
    }
    let mode = output_mode(&args.output);
    // One cco per run: said before anything else (which run to resume, what to start over).
    if let Err(error) = Orchestrator::check_lock(&config.config.workspace_directory) {
        eprintln!("cco: {error}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let unfinished = match Orchestrator::resumable_run(&config.config.log_directory) {
        Ok(unfinished) => unfinished,
        // The last run may not have finished, and nothing says what it holds.
        Err((run_dir, error)) if !args.fresh => {
            eprintln!(
                "cco: the last run ({}) cannot be read: {error}",
                run_dir.display()
            );
            if args.resume {
                eprintln!("hint: it cannot be resumed; start over with `cco start --fresh`");
            } else {
                eprintln!("hint: start over with `cco start --fresh` (its folder stays as it is)");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(_) => None,
    };
    if let Some(run_dir) = unfinished.as_ref().filter(|_| args.resume) {
        if let Err(code) = resume_workspace(&mut config, run_dir, &args.workspace) {
            return code;
        }
    }
    // The dashboard reads the config too (its redactor, limits and credentials).
    let ui_config = args.ui.ui.map(|addr| (addr, config.clone()));
    let cluster = config.config.cluster.clone();
    let mut builder = with_guard(Orchestrator::builder(config));
    if let Some(cluster) = cluster {
        match cco::cluster::ClusterHead::new(&cluster) {
            Ok(head) => builder = builder.cluster(std::sync::Arc::new(head)),
            Err(error) => {
                eprintln!("cco: cluster: {error}");
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    }
    match (unfinished, args.resume, args.fresh) {
        (Some(run_dir), true, _) => {
            eprintln!("cco: resuming {}", run_dir.display());
            builder = builder.resume(run_dir);
        }
        (Some(run_dir), false, false) => {
            eprintln!(
                "cco: the last run ({}) did not finish. Continue it with `cco resume` (or `cco start --resume`), \
                 or start over with `cco start --fresh`.",
                run_dir.display()
            );
            return ExitCode::from(EXIT_CONFIG);
        }
        (None, true, _) => {
            eprintln!("cco: there is no unfinished run to resume");
            return ExitCode::from(EXIT_CONFIG);
        }
        _ => {}
    }
    // Subscribed before the start: no event is missed, not even RunStarted.
    let events = builder.subscribe();
    let handle = match builder.start().await {
        Ok(handle) => handle,
        Err(error @ cco::StartError::Locked(_)) => {
            eprintln!("cco: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(error) => {
            eprintln!("cco: {error}");
            let code = match error {
                cco::StartError::Journal(_) => EXIT_CONFIG,
                _ => EXIT_FAILED,
            };
            return ExitCode::from(code);
        }
    };
    for warning in handle.warnings() {
        term::warn(warning);
    }
    if let Some(dir) = &args.workspace.workspace {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        let _ = std::fs::write(
            handle.run_dir().join(WORKSPACE_RECORD),
            dir.display().to_string(),
        );
    }
    let signals = tokio::spawn(crate::unix::handle_signals(handle.clone()));
    if mode != Mode::Json {
        eprintln!(
            "cco: run {} — logs in {} (SIGUSR1 prints status, Ctrl-C stops)",
            handle.run_id(),
            handle.run_dir().display()
        );
    }
    let dashboard = match &ui_config {
        Some((addr, config)) => crate::ui::serve_live(&handle, config, *addr).await,
        None => None,
    };
    let summary = output::show_run_from(&handle, events, mode).await;
    signals.abort();
    crate::ui::write_timeline(handle.run_dir());
    if let Some(dashboard) = dashboard {
        dashboard.stop().await;
    }
    ExitCode::from(exit_code(&summary.outcome))
}

/// Agents stop when cco dies (`orphanPolicy` "stop"): every claude process runs under this
/// binary's hidden guard mode (`cco __guard`).
pub(crate) fn with_guard(builder: cco::OrchestratorBuilder) -> cco::OrchestratorBuilder {
    match std::env::current_exe() {
        Ok(exe) => builder.guard(cco::GuardSpec::cco(exe, cco_claude::OrphanPolicy::Stop)),
        Err(error) => {
            term::warn(&format!(
                "cannot find the cco binary ({error}): agents would outlive a killed cco"
            ));
            builder
        }
    }
}

/// A resumed run works in the workspace it started in: the one recorded for a `-w` start
/// unless `-w` says otherwise (then they must agree).
fn resume_workspace(
    config: &mut LoadedConfig,
    run_dir: &Path,
    workspace: &WorkspaceArg,
) -> Result<(), ExitCode> {
    let Ok(recorded) = std::fs::read_to_string(run_dir.join(WORKSPACE_RECORD)) else {
        return Ok(());
    };
    let recorded = PathBuf::from(recorded.trim());
    match &workspace.workspace {
        None => {
            eprintln!(
                "cco: the run was started with -w {0}; resuming in {0}",
                recorded.display()
            );
            apply_workspace(config, Some(&recorded));
            Ok(())
        }
        Some(_) if config.config.workspace_directory == recorded => Ok(()),
        Some(_) => {
            eprintln!(
                "cco: the run being resumed works in {}, not in {}: resume it with -w {}",
                recorded.display(),
                config.config.workspace_directory.display(),
                recorded.display()
            );
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

/// The newest run folder under the config's log directory.
pub(crate) fn latest_run_dir(log_directory: &Path) -> Option<PathBuf> {
    Orchestrator::latest_run(log_directory)
}

fn status(args: StatusArgs) -> ExitCode {
    let config = match load_config(&args.config, &WorkspaceArg::default()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let Some(run_dir) = latest_run_dir(&config.config.log_directory) else {
        eprintln!(
            "cco: no run found in {}",
            config.config.log_directory.display()
        );
        return ExitCode::from(EXIT_FAILED);
    };
    // The journal is rewritten on every change: it is the live state of a running run too.
    let journal = match Orchestrator::read_run(&run_dir) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("cco: {error}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    for warning in &journal.warnings {
        term::warn(warning);
    }
    if args.json {
        match serde_json::to_string_pretty(&journal.snapshot) {
            Ok(text) => println!("{text}"),
            Err(error) => eprintln!("cco: {error}"),
        }
    } else {
        let state = match &journal.end_reason {
            Some(reason) if journal.finished => format!("finished: {reason}"),
            // An integrity stop or an environmental pause.
            Some(reason) => format!("paused: {reason} (`cco resume` continues it)"),
            None => "running (or interrupted: `cco resume` continues it)".to_string(),
        };
        // Titles and reasons in the journal are agents' words.
        println!("{} — {}", run_dir.display(), cco::printable(&state));
        print!("{}", journal.snapshot.render_tree());
        if let Some((url, token)) = cco_web::recorded_dashboard(&run_dir) {
            let token = if token {
                " (access token required)"
            } else {
                ""
            };
            println!("dashboard: {url}{token}");
        }
    }
    ExitCode::SUCCESS
}
