//! Embedding cco: run a team of claude agents on a repository from your own program.
//!
//! ```text
//! cargo run -p cco --example embed -- <config dir>
//! ```
//!
//! The config directory is the same one `cco start --config` takes (orchestrator.json,
//! optional api-keys.json). Try it offline on the demo: `cco demo --dir /tmp/d --setup-only`,
//! then `cargo run -p cco --example embed -- /tmp/d`.
//!
//! The library installs nothing global: no signal handlers, no tracing subscriber, no
//! `process::exit`, no actor names. This program owns all of those, as any embedder must.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cco::{Orchestrator, RunEvent, RunOutcome, ShutdownMode};
use tokio::sync::broadcast::error::RecvError;

#[tokio::main]
async fn main() -> ExitCode {
    // 1. Logging is the application's choice (the library only emits `tracing` events).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .init();

    // 2. Load and validate the config directory: every error names the file and the field.
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    let config = match cco::config::load(&dir) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("config: {error}");
            return ExitCode::from(2);
        }
    };
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }

    // 3. Start: clones the repository into the workspace and starts the supervision tree.
    //    `.resume(run_dir)` would continue an interrupted run instead.
    let handle = match Orchestrator::builder(config)
        .event_capacity(8192)
        .start()
        .await
    {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("start: {error}");
            return ExitCode::from(1);
        }
    };
    println!(
        "run {} on {} — logs in {}",
        handle.run_id(),
        handle.base_branch(),
        handle.run_dir().display()
    );

    // 4. Live events: a broadcast channel; a slow subscriber lags instead of slowing the run.
    let mut events = handle.subscribe();
    let printer = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(RunEvent::Planned { agent, items }) => {
                    println!("{agent} planned {items} item(s)")
                }
                Ok(RunEvent::TaskAssigned { task, worker }) => println!("{task} -> {worker}"),
                Ok(RunEvent::Merged {
                    source,
                    target,
                    commit,
                }) => println!("merged {source} into {target} at {commit}"),
                Ok(RunEvent::Conflict { source, files, .. }) => {
                    println!("conflict on {source}: {}", files.join(", "))
                }
                Ok(RunEvent::TaskFailed { task, reason }) => println!("{task} failed: {reason}"),
                Ok(RunEvent::RunFinished { reason }) => {
                    println!("finished: {reason}");
                    return;
                }
                // Anything else, in the library's words.
                Ok(event) => {
                    let text = event.text();
                    if text.progress {
                        for line in text.lines {
                            println!("  {line}");
                        }
                    }
                }
                Err(RecvError::Lagged(missed)) => eprintln!("({missed} events missed)"),
                Err(RecvError::Closed) => return,
            }
        }
    });

    // 5. Stopping is the application's job: Ctrl-C stops gracefully, a second one forces.
    //    Passing the signal on (SIGINT is 2) makes the outcome say so.
    let stopper = handle.clone();
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            match stopper.request_stop_for_signal(2) {
                ShutdownMode::Graceful => eprintln!("stopping gracefully (Ctrl-C again to force)"),
                ShutdownMode::Force => eprintln!("forcing"),
            }
        }
    });

    // 6. Status whenever you like: the whole tree, tasks and totals.
    let watcher = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        tick.tick().await;
        while !watcher.is_finished() {
            tick.tick().await;
            let status = watcher.status();
            eprintln!(
                "[{}] {} task(s) done, ${:.4} spent",
                status.phase, status.totals.tasks_done, status.totals.cost_usd
            );
        }
    });

    // 7. The end: the summary (also written to <run dir>/summary.json).
    let summary = handle.wait().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), printer).await;
    println!(
        "{}: {} done, {} failed, {} merges, {} conflicts, ${:.4}",
        summary.reason,
        summary.totals.tasks_done,
        summary.totals.tasks_failed,
        summary.totals.merges,
        summary.totals.conflicts,
        summary.totals.cost_usd
    );
    for task in &summary.tasks {
        println!("  {} [{}] {}", task.key, task.phase.name(), task.title);
    }
    // The outcome is typed: map it to what your program needs (here: an exit code).
    match summary.outcome {
        RunOutcome::Completed
        | RunOutcome::CompletedWithoutTasks {
            after_planning_failure: false,
        } => ExitCode::SUCCESS,
        RunOutcome::CompletedWithFailures { .. } => ExitCode::from(5),
        RunOutcome::Stopped {
            signal: Some(signal),
            ..
        } => ExitCode::from(u8::try_from(128 + signal).unwrap_or(1)),
        _ => ExitCode::from(1),
    }
}
