//! `cco demo`: the offline demo. A sample repository, a config and a scripted fake claude in
//! one folder, then a full run of the supervision tree on it, in this process, through the
//! library (`cco::Orchestrator`) exactly as `cco start` does.
//!
//! The fake claude is this very binary: `cco __fake-claude <claude args>` runs the
//! `fake-claude` crate (see [`fake_claude_entry`]), so a user who only installed `cco` needs
//! nothing else. The folder gets a `claude` wrapper script that sets the script path and
//! execs it. What the scripted team does is described in [`project`].

mod nodes;
mod project;

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use cco::{Orchestrator, RunEvent, RunSummary};

use crate::cli::{DemoArgs, OutputArgs};
use crate::output::{self, Mode};

/// The hidden first argument that turns `cco` into the fake claude.
pub const FAKE_CLAUDE_ARG: &str = "__fake-claude";
/// Set on the re-executed process (see [`fake_claude_entry`]); removed before fake-claude runs.
const FAKE_CLAUDE_ENV: &str = "CCO_INTERNAL_RUN_FAKE_CLAUDE";

/// `cco __fake-claude ARGS` → the fake claude with `ARGS`. Returns `None` for every other
/// command line. Must run first in `main`, while the process has one thread (fake-claude
/// blocks signals for its `sigwait` thread before any other thread exists).
///
/// `fake_claude::run()` reads `std::env::args()` itself, so the marker argument cannot simply
/// be skipped: the process re-executes itself without it (same pid, so process-group
/// handling is unchanged) with an environment flag saying "be fake-claude".
pub fn fake_claude_entry() -> Option<ExitCode> {
    if std::env::var_os(FAKE_CLAUDE_ENV).is_some_and(|v| v == "1") {
        // Not inherited by what the fake runs (git, sh test.sh, ...).
        std::env::remove_var(FAKE_CLAUDE_ENV);
        let code = fake_claude::run();
        return Some(ExitCode::from(u8::try_from(code).unwrap_or(1)));
    }
    let mut args = std::env::args_os();
    let _program = args.next();
    if args.next().as_deref() != Some(OsStr::new(FAKE_CLAUDE_ARG)) {
        return None;
    }
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => {
            eprintln!("cco {FAKE_CLAUDE_ARG}: cannot find the cco executable: {error}");
            return Some(ExitCode::from(1));
        }
    };
    let error = Command::new(exe)
        .arg0("claude")
        .args(args)
        .env(FAKE_CLAUDE_ENV, "1")
        .exec();
    eprintln!("cco {FAKE_CLAUDE_ARG}: cannot re-execute: {error}");
    Some(ExitCode::from(1))
}

/// Called by `cco start` and `cco check` when a config directory does not load: if it is the demo config whose
/// generated files are missing, say how to create them.
pub fn hint_if_unprepared(config_dir: &Path) {
    let Ok(text) = std::fs::read_to_string(config_dir.join(cco_config::CONFIG_FILE_NAME)) else {
        return;
    };
    if text.trim() != project::CONFIG.trim() {
        return;
    }
    if !config_dir.join(project::WRAPPER).is_file() || !config_dir.join(project::REPO_DIR).is_dir()
    {
        eprintln!(
            "hint: this is the demo config; create its sample repository and fake claude first:\n      {} demo --dir {} --setup-only",
            crate::term::cco_command(),
            crate::term::shell_word(&config_dir.display().to_string())
        );
    }
}

pub async fn run(args: DemoArgs) -> ExitCode {
    // Warnings only on stderr unless -v: the event lines tell the story.
    let mut tracing_args = args.output.clone();
    if tracing_args.verbose == 0 {
        tracing_args.quiet = true;
    }
    crate::commands::init_tracing(&tracing_args);
    let dir = match args.dir.clone() {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!(
            "cco-demo-{}-{}",
            chrono::Local::now().format("%Y%m%d-%H%M%S"),
            std::process::id()
        )),
    };
    // A demo folder a cco is running: nothing in it is touched (prepare cleans it).
    if dir.join(project::MARKER).is_file() {
        let workspace = cco_config::load(&dir)
            .map(|c| c.config.workspace_directory)
            .unwrap_or_else(|_| dir.join("workspace"));
        if let Err(error) = Orchestrator::check_lock(&workspace) {
            eprintln!("cco demo: {error}");
            return ExitCode::from(2);
        }
    }
    let dir = match prepare(&dir) {
        Ok(dir) => dir,
        Err(error) => {
            eprintln!("cco demo: {error}");
            return ExitCode::from(1);
        }
    };
    if args.setup_only {
        let cco = crate::term::cco_command();
        println!("Demo prepared in {}:", dir.display());
        println!(
            "  {}/            the sample repository (a tiny POSIX sh calculator)",
            project::REPO_DIR
        );
        println!("  orchestrator.json     6 workers in 2 teams of 3 (hierarchy mode)");
        println!("  claude                the scripted fake claude (cco {FAKE_CLAUDE_ARG})");
        println!(
            "Run it with:  {cco} start --config {}",
            crate::term::shell_word(&dir.display().to_string())
        );
        return ExitCode::SUCCESS;
    }
    run_demo(&dir, &args.output, args.ui.ui, args.nodes).await
}

/// Creates (or re-creates) the demo folder; returns it absolute.
fn prepare(dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    if dir.join(project::MARKER).is_file() {
        for name in project::GENERATED {
            let path = dir.join(name);
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match removed {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot clean {}: {e}", path.display())),
            }
        }
    } else if let Some(name) = project::GENERATED.iter().find(|n| dir.join(n).exists()) {
        return Err(format!(
            "{} already exists and was not made by `cco demo`: choose another --dir",
            dir.join(name).display()
        ));
    }
    let write = |path: &Path, text: &str| -> Result<(), String> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write(
        &dir.join(project::MARKER),
        "Created by `cco demo`; a re-run cleans the generated files of this folder.\n",
    )?;

    // The sample repository.
    let repo = dir.join(project::REPO_DIR);
    for (path, text) in project::REPO_FILES {
        write(&repo.join(path), text)?;
    }
    git(&repo, &["init", "-q"])?;
    git(&repo, &["symbolic-ref", "HEAD", "refs/heads/main"])?;
    git(&repo, &["add", "-A"])?;
    git(
        &repo,
        &["commit", "-q", "-m", "calc: add() and a test runner"],
    )?;

    // The config (kept when present, so a user's edits survive a re-run).
    let config = dir.join(cco_config::CONFIG_FILE_NAME);
    if !config.exists() {
        write(&config, project::CONFIG)?;
    }

    // The fake claude: the script, and a wrapper that runs this binary as fake-claude.
    let script = dir.join(project::SCRIPT_FILE);
    let text = serde_json::to_string_pretty(&project::script()).map_err(|e| e.to_string())?;
    write(&script, &text)?;
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the cco executable: {e}"))?;
    let wrapper = dir.join(project::WRAPPER);
    write(
        &wrapper,
        &format!(
            "#!/bin/sh\n# The demo's claude: cco playing the scripted fake claude (offline, no credentials).\n\
             FAKE_CLAUDE_SCRIPT={} FAKE_CLAUDE_STATE_DIR={} exec {} {FAKE_CLAUDE_ARG} \"$@\"\n",
            sh_quote(&script),
            sh_quote(&dir.join(project::STATE_DIR)),
            sh_quote(&exe),
        ),
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", wrapper.display()))?;
    Ok(dir)
}

fn sh_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

/// Runs git with a fixed identity (the user may have none configured).
fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=cco demo",
            "-c",
            "user.email=demo@cco.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git (is it installed?): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What the recap counts from the events.
#[derive(Default)]
struct Tally {
    /// Claude processes that crashed (exited without a result).
    crashed: usize,
    /// Processes started with `--resume` right after a crash of the same agent.
    resumed_after_crash: usize,
    conflicts: usize,
}

async fn run_demo(
    dir: &Path,
    output_args: &OutputArgs,
    ui: Option<std::net::SocketAddr>,
    node_count: u32,
) -> ExitCode {
    let mode = crate::commands::output_mode(output_args);
    let started = Instant::now();
    let config = match cco_config::load(dir) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("cco demo: {error}");
            return ExitCode::from(2);
        }
    };
    if matches!(mode, Mode::Plain | Mode::Live) {
        println!("cco demo in {}", dir.display());
        println!(
            "  a sample repository ({}/: a tiny sh calculator with PROJECT_DIRECTION.md),",
            project::REPO_DIR
        );
        println!("  a Director, 2 Engineering Managers and 6 workers, all played by a scripted fake claude:");
        println!("  watch for one merge conflict resolved by a worker and one crashed claude process resumed.");
        println!();
    }
    let ui_config = ui.map(|addr| (addr, config.clone()));
    // `--nodes N`: the workers run on N local `cco node` processes.
    let mut cluster_nodes = None;
    let mut builder_cluster = None;
    if node_count > 0 {
        match nodes::start(dir, node_count, config.config.worker_count) {
            Ok((started, cluster)) => match cco::cluster::ClusterHead::new(&cluster) {
                Ok(head) => {
                    cluster_nodes = Some(started);
                    builder_cluster = Some(std::sync::Arc::new(head));
                }
                Err(error) => {
                    eprintln!("cco demo: cluster: {error}");
                    return ExitCode::from(1);
                }
            },
            Err(error) => {
                eprintln!("cco demo: {error}");
                return ExitCode::from(1);
            }
        }
    }
    let mut builder = crate::commands::with_guard(Orchestrator::builder(config));
    if let Some(head) = builder_cluster {
        builder = builder.cluster(head);
    }
    // Both subscriptions are taken before the start, so no event is missed.
    let tally_events = builder.subscribe();
    let display_events = builder.subscribe();
    let handle = match builder.start().await {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("cco demo: {error}");
            let locked = matches!(error, cco::StartError::Locked(_));
            return ExitCode::from(if locked { 2 } else { 1 });
        }
    };
    let tally = tokio::spawn(count_events(tally_events));
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
    // The same view as `cco start`: live view on a terminal, else event lines; then the summary.
    let summary = output::show_run_from(&handle, display_events, mode).await;
    signals.abort();
    crate::ui::write_timeline(handle.run_dir());
    // The tally ends by itself at `RunFinished`, which comes before the summary.
    let tally = match tokio::time::timeout(std::time::Duration::from_secs(2), tally).await {
        Ok(Ok(tally)) => tally,
        _ => Tally::default(),
    };
    if matches!(mode, Mode::Plain | Mode::Live) {
        recap(dir, &summary, &tally, handle.run_dir(), started);
        if cluster_nodes.is_some() {
            nodes::recap(&mut std::io::stdout().lock(), &summary);
        }
    }
    drop(cluster_nodes);
    // A newcomer gets to look around: the dashboard stays until Ctrl-C (unless Ctrl-C, or
    // another signal, already stopped the demo).
    let stopped_by_signal = matches!(
        summary.outcome,
        cco::RunOutcome::Stopped {
            signal: Some(_),
            ..
        }
    );
    if let Some(dashboard) = dashboard {
        if !stopped_by_signal {
            let stop = crate::ui::stop_signal();
            println!();
            println!(
                "The dashboard of this run stays open at {} — Ctrl-C to quit.",
                dashboard.login_url()
            );
            let _ = std::io::stdout().flush();
            stop.await;
        }
        dashboard.stop().await;
    }
    ExitCode::from(crate::commands::exit_code(&summary.outcome))
}

async fn count_events(mut events: tokio::sync::broadcast::Receiver<RunEvent>) -> Tally {
    let mut tally = Tally::default();
    let mut just_crashed = std::collections::HashSet::new();
    loop {
        match events.recv().await {
            Ok(RunEvent::ProcessExited { agent, outcome }) => {
                if outcome.starts_with("crashed") {
                    tally.crashed += 1;
                    just_crashed.insert(agent);
                } else {
                    just_crashed.remove(&agent);
                }
            }
            Ok(RunEvent::ProcessStarted { agent, resume, .. }) => {
                if just_crashed.remove(&agent) && resume {
                    tally.resumed_after_crash += 1;
                }
            }
            Ok(RunEvent::Conflict { .. }) => tally.conflicts += 1,
            Ok(RunEvent::RunFinished { .. }) => return tally,
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return tally,
        }
    }
}

fn recap(dir: &Path, summary: &RunSummary, tally: &Tally, run_dir: &Path, started: Instant) {
    let mut out = std::io::stdout().lock();
    let t = &summary.totals;
    let teams: std::collections::BTreeSet<&str> = summary
        .tasks
        .iter()
        .map(|task| task.team.as_str())
        .collect();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "demo recap ({:.1} s): {} tasks done by {} teams and merged into {}; {} merge conflict(s) sent back to \
         the worker's own session and resolved; {} crashed claude process(es), {} resumed in the same session.",
        started.elapsed().as_secs_f64(),
        t.tasks_done,
        teams.len(),
        summary.base_branch,
        tally.conflicts.max(t.conflicts as usize),
        tally.crashed,
        tally.resumed_after_crash,
    );
    let repo = dir.join("workspace").join("repo");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{} in the run's clone ({}):",
        summary.base_branch,
        repo.display()
    );
    match git(
        &repo,
        &["log", "--graph", "--oneline", &summary.base_branch],
    ) {
        Ok(graph) => {
            let _ = write!(out, "{graph}");
        }
        Err(error) => {
            let _ = writeln!(out, "  (cannot show the history: {error})");
        }
    }
    // A binary that exists from here: `cco` on PATH, else this one's path.
    let cco = crate::term::cco_command();
    let dir_word = crate::term::shell_word(&dir.display().to_string());
    let _ = writeln!(out);
    let _ = writeln!(out, "Look around:");
    let _ = writeln!(
        out,
        "  git -C {} show {}:README.md",
        crate::term::shell_word(&repo.display().to_string()),
        summary.base_branch
    );
    let _ = writeln!(out, "  {cco} status --config {dir_word}");
    let _ = writeln!(out, "  {cco} logs --config {dir_word} worker-1");
    let _ = writeln!(
        out,
        "  {cco} ui --config {dir_word}       # the run in a browser: team, board, diffs, timeline"
    );
    let _ = writeln!(
        out,
        "  ls {}/sessions      # every claude transcript",
        crate::term::shell_word(&run_dir.display().to_string())
    );
    let _ = writeln!(
        out,
        "  {cco} demo --dir {dir_word} --setup-only && {cco} start --config {dir_word}   # run it again"
    );
    if cco != "cco" {
        let _ = writeln!(
            out,
            "(`cargo install --path crates/cco-cli` puts `cco` on your PATH.)"
        );
    }
}
