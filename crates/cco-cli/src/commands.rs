//! One function per subcommand; each returns the process exit code.

use std::path::Path;
use std::process::ExitCode;

use cco_actors::{Orchestrator, StatusSnapshot};
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, OutputArgs, StartArgs, StatusArgs};
use crate::output::{self, Mode};

/// Exit codes: 0 the run ended (complete, limit or requested stop), 1 the run failed,
/// 2 bad configuration or usage.
const EXIT_FAILED: u8 = 1;
const EXIT_CONFIG: u8 = 2;

pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Start(args) => start(args).await,
        Command::Status(args) => status(args),
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Logs(args) => crate::logs::run(args).await,
        Command::Check(args) => match cco_config::load(&args.config) {
            Ok(config) => {
                for warning in &config.warnings {
                    eprintln!("warning: {warning}");
                }
                println!("{:#?}", config.config);
                println!("claude binary: {}", config.claude_binary.display());
                println!("api keys: {}", config.api_keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", "));
                ExitCode::SUCCESS
            }
            Err(error) => config_error(&error),
        },
    }
}

fn config_error(error: &cco_config::ConfigError) -> ExitCode {
    eprintln!("cco: {error}");
    ExitCode::from(EXIT_CONFIG)
}

pub(crate) fn init_tracing(args: &OutputArgs) {
    let default = match (args.quiet, args.verbose) {
        (true, _) => "warn",
        (false, 0) => "warn,cco_actors=info",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // The binary owns the global subscriber; the library never installs one. Its writer is
    // stderr, printed above the live block while one is on screen.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(crate::live::StderrWriter).with_target(false).try_init();
}

pub(crate) fn output_mode(args: &OutputArgs) -> Mode {
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

async fn start(args: StartArgs) -> ExitCode {
    init_tracing(&args.output);
    let config = match cco_config::load(&args.config.config) {
        Ok(config) => config,
        Err(error) => {
            crate::demo::hint_if_unprepared(&args.config.config);
            return config_error(&error);
        }
    };
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    let mode = output_mode(&args.output);
    let handle = match Orchestrator::builder(config).start().await {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("cco: {error}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let signals = tokio::spawn(crate::unix::handle_signals(handle.clone()));
    if mode != Mode::Json {
        eprintln!("cco: run {} — logs in {} (SIGUSR1 prints status, Ctrl-C stops)", handle.run_id(), handle.run_dir().display());
    }
    let summary = output::show_run(&handle, mode).await;
    signals.abort();
    let failed_start = summary.reason.contains("failed") && summary.totals.tasks_done == 0 && !summary.completed;
    if failed_start {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// The newest run folder under the config's log directory.
pub(crate) fn latest_run_dir(log_directory: &Path) -> Option<std::path::PathBuf> {
    let mut runs: Vec<_> = std::fs::read_dir(log_directory)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("run-") && e.path().is_dir())
        .map(|e| e.path())
        .collect();
    runs.sort();
    runs.pop()
}

fn status(args: StatusArgs) -> ExitCode {
    let config = match cco_config::load(&args.config.config) {
        Ok(config) => config,
        Err(error) => return config_error(&error),
    };
    let Some(run_dir) = latest_run_dir(&config.config.log_directory) else {
        eprintln!("cco: no run found in {}", config.config.log_directory.display());
        return ExitCode::from(EXIT_FAILED);
    };
    let state = run_dir.join("state.json");
    let snapshot: StatusSnapshot = match std::fs::read(&state).map_err(|e| e.to_string()).and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string())) {
        Ok(snapshot) => snapshot,
        Err(error) => {
            eprintln!("cco: cannot read {}: {error}", state.display());
            return ExitCode::from(EXIT_FAILED);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&snapshot) {
            Ok(text) => println!("{text}"),
            Err(error) => eprintln!("cco: {error}"),
        }
    } else {
        print!("{}", snapshot.render_tree());
    }
    ExitCode::SUCCESS
}
