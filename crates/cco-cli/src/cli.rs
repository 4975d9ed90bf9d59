//! Command-line definitions.
//!
//! `cco` without a subcommand but with options (`cco --config DIR`) runs `start`, as the
//! original tool did; `cco` alone prints first steps on a terminal.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "cco",
    version,
    about = "Runs a team of Claude Code agents on one repository, hands-off.",
    after_help = "First steps: `cco demo` (offline, a minute), `cco init` (make a config), \
                  `cco check` then `cco start`.\n\
                  Without a subcommand, `cco --config DIR` is `cco start --config DIR`.\n\n\
                  Exit codes of start, resume and demo:\n  \
                  0    completed (also: a run limit reached, or a stop asked for without a signal)\n  \
                  1    the run failed: planning failed, every task failed, no valid first plan\n  \
                  2    usage or configuration error, the run is locked, or its journal is unreadable\n  \
                  3    integrity stop: a shared branch no longer held what cco wrote\n  \
                  4    paused on an environmental error (disk full, ...): fix it, then `cco resume`\n  \
                  5    completed, but some tasks failed\n  \
                  128+n stopped by signal n (130 SIGINT, 143 SIGTERM, 129 SIGHUP)",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `cco [OPTIONS]` without a subcommand runs `start` with these options.
    #[command(flatten)]
    pub start: StartArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a config directory by answering a few questions (or with flags and --yes).
    Init(InitArgs),
    /// Check a config directory and print what a run would do (secrets never shown).
    Check(CheckArgs),
    /// Start a run from a config directory (orchestrator.json, optional api-keys.json).
    Start(StartArgs),
    /// Continue the last run of a config directory after a crash: re-attach worktrees, resume
    /// each agent's claude session, re-queue tasks that were in flight.
    Resume(ResumeArgs),
    /// Print the status of the running (or last) run of a config directory.
    Status(StatusArgs),
    /// Print (and follow) one agent's log of the running or last run.
    Logs(LogsArgs),
    /// Offline demo: a sample repository and a scripted fake claude team, start to finish.
    Demo(DemoArgs),
    /// Serve the web dashboard of the running or a finished run of a config directory (from
    /// its run folder) until Ctrl-C.
    Ui(UiArgs),
    /// Run workers' claude processes for the heads (`cco start` with a `cluster` config)
    /// that connect here (see docs/cluster.md).
    Node(NodeArgs),
}

/// `--ui [ADDR]`: the web dashboard of the run, served while it goes on.
#[derive(Debug, Args, Clone, Default)]
pub struct UiArg {
    /// Serve the web dashboard of the run at ADDR (PORT, HOST:PORT) [default: 127.0.0.1 and
    /// a free port]. A non-loopback address needs the access token printed at the start.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:0",
          value_parser = crate::ui::parse_addr)]
    pub ui: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub struct UiArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The run: its id (a folder name under the log directory) or its folder [default: the
    /// newest run]
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
    /// Where to serve (PORT, HOST:PORT). A non-loopback address needs the access token
    /// printed at the start.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0", value_parser = crate::ui::parse_addr)]
    pub addr: SocketAddr,
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Address heads connect to, e.g. 10.0.0.5:7700 (not loopback: needs --tls-cert and
    /// --tls-key, or --insecure-transport)
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: std::net::SocketAddr,
    /// The cluster's cookie: a file readable by its owner only (chmod 600)
    #[arg(long, value_name = "FILE")]
    pub cookie_file: PathBuf,
    /// Workers this node runs at once
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub slots: u32,
    /// Where runs, repositories and agents' config dirs live
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// TLS certificate chain (PEM) of this node
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of this node
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Unique name in the cluster [default: <hostname>-<port>]
    #[arg(long)]
    pub name: Option<String>,
    /// The claude CLI to run [default: `claude` on PATH]
    #[arg(long, value_name = "PATH")]
    pub claude: Option<PathBuf>,
    /// Accept plain TCP on a non-loopback address (API keys then cross the network in clear)
    #[arg(long)]
    pub insecure_transport: bool,
    /// Also stop when stdin closes: for a node started by another process that holds its
    /// stdin (`cco demo --nodes`), which then goes when that process dies, even by SIGKILL
    #[arg(long)]
    pub stop_with_stdin: bool,
    /// More log detail on stderr: -v info, -vv debug
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
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
    /// Serve the web dashboard of the demo run at ADDR (default 127.0.0.1 and a free port),
    /// and keep it open after the run until Ctrl-C.
    #[command(flatten)]
    pub ui: UiArg,
    /// Run the workers on this many local `cco node` processes (127.0.0.1), printing which
    /// worker ran where.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=8))]
    pub nodes: u32,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Agent id (e.g. worker-1, em-parser, coordinator, director).
    pub agent: String,
    /// Keep printing new lines as they arrive, until the run ends.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ConfigArg {
    /// Config directory holding orchestrator.json (and optional api-keys.json), or a settings
    /// file: then exactly that file is read, and api-keys.json beside it [default: .]
    #[arg(long, short = 'c', value_name = "DIR|FILE")]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    /// The path given, or the current directory.
    pub fn path(&self) -> PathBuf {
        self.config.clone().unwrap_or_else(|| PathBuf::from("."))
    }
}

#[derive(Debug, Args, Clone, Default)]
pub struct WorkspaceArg {
    /// Workspace directory (the run's clone, worktrees and agent state) instead of the
    /// config's workspaceDirectory.
    #[arg(long, short = 'w', value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub workspace: WorkspaceArg,
    /// Print the checked settings as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Default)]
pub struct StartArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub workspace: WorkspaceArg,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub ui: UiArg,
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
    pub workspace: WorkspaceArg,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub ui: UiArg,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print the snapshot as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone, Default)]
pub struct OutputArgs {
    /// Plain event lines instead of the live view (the default when stdout is not a terminal).
    #[arg(long, conflicts_with = "json")]
    pub plain: bool,
    /// Machine-readable events: one JSON object per line on stdout.
    #[arg(long)]
    pub json: bool,
    /// More log detail on stderr: -v info, -vv debug, -vvv trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only warnings and errors on stderr, and no event lines.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `authMode` values, for `cco init --auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthArg {
    /// The claude CLI's own login.
    Oauth,
    /// API keys from api-keys.json, then the CLI login.
    ApiKeysFirst,
    /// Only API keys from api-keys.json.
    ApiKeysOnly,
}

#[derive(Debug, Args, Default)]
pub struct InitArgs {
    /// The config directory to create [default: asked on a terminal; else `../<name>-cco`
    /// beside a git checkout, the current directory elsewhere]
    pub dir: Option<PathBuf>,
    /// Repository to work on: a git URL or a local path [default: `origin` of the git
    /// repository in the current directory, or that directory]
    #[arg(long, value_name = "URL|PATH")]
    pub repo: Option<String>,
    /// Base branch that finished work is merged into [default: the repository's current branch]
    #[arg(long, value_name = "NAME")]
    pub branch: Option<String>,
    /// Number of workers, 1 to 100 [default: 3]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub workers: Option<u32>,
    /// How agents authenticate [default: oauth when claude is logged in, else api-keys-only
    /// when ANTHROPIC_API_KEY is set]
    #[arg(long, value_enum)]
    pub auth: Option<AuthArg>,
    /// API keys for api-keys.json: a file with one key per line, or an api-keys.json; `-`
    /// reads standard input [default: ANTHROPIC_API_KEY when set]
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Shell command that must pass before the base branch moves; "" for none [default: one
    /// of `cargo test`, `npm test`, `make test`, `pytest` matching the repository's files]
    #[arg(long, value_name = "COMMAND")]
    pub verify: Option<String>,
    /// Spending limit of a run in USD; 0 for none [default: none]
    #[arg(long, value_name = "USD")]
    pub budget: Option<f64>,
    /// Time limit of a run in minutes [default: 120]
    #[arg(long, value_name = "MINUTES", value_parser = clap::value_parser!(u64).range(1..=43200))]
    pub duration: Option<u64>,
    /// The claude CLI to run [default: `claude` on PATH]
    #[arg(long, value_name = "PATH")]
    pub claude_binary: Option<PathBuf>,
    /// Take the default for every question not answered by a flag (no prompts).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Replace an existing orchestrator.json / api-keys.json in DIR.
    #[arg(long)]
    pub force: bool,
}
