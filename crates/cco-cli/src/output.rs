//! How a run is shown: plain event lines, JSON lines, or nothing (`-q`).

use std::io::Write;

use cco_actors::{RunEvent, RunSummary};
use tokio::sync::broadcast;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Json,
    Quiet,
}

/// Prints events until the channel closes.
pub async fn print_events(mut events: broadcast::Receiver<RunEvent>, mode: Mode) {
    loop {
        match events.recv().await {
            Ok(event) => print_event(&event, mode),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                if mode == Mode::Plain {
                    println!("… {missed} events skipped");
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn print_event(event: &RunEvent, mode: Mode) {
    let mut out = std::io::stdout().lock();
    let _ = match mode {
        Mode::Quiet => Ok(()),
        Mode::Json => serde_json::to_string(event).map_err(std::io::Error::other).and_then(|line| writeln!(out, "{line}")),
        Mode::Plain => match plain_line(event) {
            Some(line) => writeln!(out, "{} {line}", chrono::Local::now().format("%H:%M:%S")),
            None => Ok(()),
        },
    };
}

/// One human line per event worth a line.
pub fn plain_line(event: &RunEvent) -> Option<String> {
    Some(match event {
        RunEvent::RunStarted { run_id, base_branch, mode } => format!("run {run_id} started ({mode} mode) on {base_branch}"),
        RunEvent::Phase { phase } => format!("phase: {phase}"),
        RunEvent::AgentState { agent, state } => format!("{agent}: {state}"),
        RunEvent::ProcessStarted { agent, pid, resume } => {
            format!("{agent}: claude pid {pid}{}", if *resume { " (resumed session)" } else { "" })
        }
        RunEvent::ProcessExited { agent, outcome } => format!("{agent}: claude exited: {outcome}"),
        RunEvent::ToolUsed { .. } | RunEvent::Cost { .. } | RunEvent::AgentOutput { .. } => return None,
        RunEvent::Planned { agent, items } => format!("{agent}: planned {items} item(s)"),
        RunEvent::TaskAssigned { task, worker } => format!("{task} → {worker}"),
        RunEvent::TaskFinished { task, worker } => format!("{task}: finished by {worker}, reviewing"),
        RunEvent::TaskRevised { task, feedback } => format!("{task}: sent back: {}", first_line(feedback)),
        RunEvent::TaskFailed { task, reason } => format!("{task}: FAILED: {}", first_line(reason)),
        RunEvent::Merged { source, target, commit } => format!("merged {source} into {target} ({})", &commit[..commit.len().min(10)]),
        RunEvent::Conflict { source, target, files } => format!("conflict merging {source} into {target}: {}", files.join(", ")),
        RunEvent::KeyBenched { key, until } => format!("key {key} rate limited until {until}"),
        RunEvent::Paused { agent, until } => format!("{agent}: paused: rate limited until {until}"),
        RunEvent::ActorRestarted { agent, restarts } => format!("{agent}: actor restarted ({restarts})"),
        RunEvent::Warning { message } => format!("warning: {message}"),
        RunEvent::RunFinished { reason } => format!("run finished: {reason}"),
    })
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// The closing report.
pub fn print_summary(summary: &RunSummary, mode: Mode) {
    if mode == Mode::Json {
        if let Ok(line) = serde_json::to_string(&serde_json::json!({"event": "summary", "summary": summary})) {
            println!("{line}");
        }
        return;
    }
    let t = &summary.totals;
    println!();
    println!("cco run {}: {}", summary.run_id, summary.reason);
    println!(
        "  tasks done {} / failed {} — merges {} — conflicts {} — cost ${:.4}",
        t.tasks_done, t.tasks_failed, t.merges, t.conflicts, t.cost_usd
    );
    for task in summary.tasks.iter().filter(|t| t.failure.is_some()) {
        println!("  failed {}: {}", task.key, task.failure.as_deref().unwrap_or_default());
    }
}
