//! One function per subcommand; each returns the process exit code.

use std::path::Path;
use std::process::ExitCode;

use cco::Orchestrator;
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
        Command::Resume(args) => {
            start(StartArgs {
                config: args.config,
                output: args.output,
                resume: true,
                fresh: false,
            })
            .await
        }
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
                println!(
                    "api keys: {}",
                    config
                        .api_keys
                        .iter()
                        .map(|k| k.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
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
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::live::StderrWriter)
        .with_target(false)
        .try_init();
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
    let unfinished = Orchestrator::unfinished_run(&config.config.log_directory);
    let mut builder = Orchestrator::builder(config);
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
            return ExitCode::from(EXIT_FAILED);
        }
        _ => {}
    }
    // Subscribed before the start: no event is missed, not even RunStarted.
    let events = builder.subscribe();
    let handle = match builder.start().await {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("cco: {error}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    for warning in handle.warnings() {
        eprintln!("warning: {warning}");
    }
    let signals = tokio::spawn(crate::unix::handle_signals(handle.clone()));
    if mode != Mode::Json {
        eprintln!(
            "cco: run {} — logs in {} (SIGUSR1 prints status, Ctrl-C stops)",
            handle.run_id(),
            handle.run_dir().display()
        );
    }
    let summary = output::show_run_from(&handle, events, mode).await;
    signals.abort();
    let failed_start =
        summary.reason.contains("failed") && summary.totals.tasks_done == 0 && !summary.completed;
    if failed_start {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// The newest run folder under the config's log directory.
pub(crate) fn latest_run_dir(log_directory: &Path) -> Option<std::path::PathBuf> {
    Orchestrator::latest_run(log_directory)
}

fn status(args: StatusArgs) -> ExitCode {
    let config = match cco_config::load(&args.config.config) {
        Ok(config) => config,
        Err(error) => return config_error(&error),
    };
    let Some(run_dir) = Orchestrator::latest_run(&config.config.log_directory) else {
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
        eprintln!("warning: {warning}");
    }
    if args.json {
        match serde_json::to_string_pretty(&journal.snapshot) {
            Ok(text) => println!("{text}"),
            Err(error) => eprintln!("cco: {error}"),
        }
    } else {
        let state = match &journal.end_reason {
            Some(reason) => format!("finished: {reason}"),
            None => "running (or interrupted: `cco resume` continues it)".to_string(),
        };
        println!("{} — {state}", run_dir.display());
        print!("{}", journal.snapshot.render_tree());
    }
    ExitCode::SUCCESS
}
