//! Command-line definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cco",
    version,
    about = "Runs a team of Claude Code agents on one repository, hands-off."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a run from a config directory (orchestrator.json, optional api-keys.json).
    Start(StartArgs),
    /// Print the status of the running (or last) run of a config directory.
    Status(StatusArgs),
    /// Check a config directory and print the resolved settings (secrets redacted).
    Check(ConfigArg),
    /// Continue the last run of a config directory after a crash: re-attach worktrees, resume
    /// each agent's claude session, re-queue tasks that were in flight.
    Resume(ResumeArgs),
    /// Offline demo: a sample repository and a scripted fake claude team, start to finish.
    Demo(DemoArgs),
    /// Print (and follow) one agent's log of the running or last run.
    Logs(LogsArgs),
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to create the demo (default: a new temporary folder, kept after the run).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Only create the sample repository, the config and the fake claude, then stop; run it
    /// later with `cco start --config <dir>`.
    #[arg(long)]
    pub setup_only: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Agent id (e.g. worker-1, em-2, coordinator, director).
    pub agent: String,
    /// Keep printing new lines as they arrive.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Directory holding orchestrator.json (and optional api-keys.json).
    #[arg(long, short = 'c', default_value = ".")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Continue the last run of this config if it did not finish (same as `cco resume`).
    #[arg(long, conflicts_with = "fresh")]
    pub resume: bool,
    /// Start a new run even though the last one did not finish.
    #[arg(long)]
    pub fresh: bool,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print the snapshot as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// Plain event lines instead of the live view (the default when stdout is not a terminal).
    #[arg(long, conflicts_with = "json")]
    pub plain: bool,
    /// Machine-readable events: one JSON object per line on stdout.
    #[arg(long)]
    pub json: bool,
    /// More log detail on stderr (repeat for more); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only warnings and errors on stderr, and no event lines.
    #[arg(short, long)]
    pub quiet: bool,
}
