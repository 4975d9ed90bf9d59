//! How a run is shown: the live view (a terminal, see [`crate::live`]), plain event lines,
//! JSON lines, or nothing (`-q`).

use std::io::Write;

use std::time::Duration;

use cco::{OrchestratorHandle, RunEvent, RunSummary};
use tokio::sync::{broadcast, watch};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The redrawn block of [`crate::live`] (stdout is a terminal, no `--plain`/`--json`/`-q`).
    Live,
    Plain,
    Json,
    Quiet,
}

/// Shows the run in `mode` until it ends (live view or event lines), then its summary.
/// `events` comes from `OrchestratorBuilder::subscribe`, taken before the start, so the run's
/// first events (`RunStarted`) are not missed.
pub async fn show_run_from(
    handle: &OrchestratorHandle,
    events: broadcast::Receiver<RunEvent>,
    mode: Mode,
) -> RunSummary {
    let (done_tx, done) = watch::channel(false);
    let printer = match mode {
        Mode::Live => tokio::spawn(crate::live::run(handle.clone(), events, done)),
        _ => tokio::spawn(print_events(events, mode, done)),
    };
    let summary = handle.wait().await;
    // The printer prints what is queued, draws its last frame and restores the terminal.
    let _ = done_tx.send(true);
    let abort = printer.abort_handle();
    if tokio::time::timeout(Duration::from_secs(5), printer)
        .await
        .is_err()
    {
        abort.abort();
    }
    print_summary(&summary, mode);
    summary
}

/// Prints events until the channel closes or `done` turns true (the run has ended); then
/// prints what is still queued and returns.
pub async fn print_events(
    mut events: broadcast::Receiver<RunEvent>,
    mode: Mode,
    mut done: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => print_event(&event, mode),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    if mode == Mode::Plain {
                        println!("… {missed} events skipped");
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            changed = done.changed() => {
                if changed.is_err() || *done.borrow() {
                    break;
                }
            }
        }
    }
    while let Ok(event) = events.try_recv() {
        print_event(&event, mode);
    }
}

fn print_event(event: &RunEvent, mode: Mode) {
    let mut out = std::io::stdout().lock();
    let _ = match mode {
        Mode::Quiet | Mode::Live => Ok(()),
        Mode::Json => serde_json::to_string(event)
            .map_err(std::io::Error::other)
            .and_then(|line| writeln!(out, "{line}")),
        Mode::Plain => match plain_line(event) {
            Some(line) => writeln!(out, "{} {line}", chrono::Local::now().format("%H:%M:%S")),
            None => Ok(()),
        },
    };
}

/// One human line per event worth a line. Its text is printable as it is: the library makes
/// every event's free text printable when it emits it (`cco::printable`).
pub fn plain_line(event: &RunEvent) -> Option<String> {
    Some(match event {
        RunEvent::RunStarted {
            run_id,
            base_branch,
            mode,
        } => format!("run {run_id} started ({mode} mode) on {base_branch}"),
        RunEvent::Phase { phase } => format!("phase: {phase}"),
        RunEvent::AgentState { agent, state } => format!("{agent}: {state}"),
        RunEvent::ProcessStarted {
            agent,
            pid,
            resume,
            credential,
        } => {
            format!(
                "{agent}: claude pid {pid}{}{}",
                credential
                    .as_deref()
                    .map(|c| format!(" on {c}"))
                    .unwrap_or_default(),
                if *resume { " (resumed session)" } else { "" }
            )
        }
        RunEvent::ProcessExited { agent, outcome } => format!("{agent}: claude exited: {outcome}"),
        RunEvent::ToolUsed { .. }
        | RunEvent::Cost { .. }
        | RunEvent::AgentOutput { .. }
        | RunEvent::TaskMoved { .. } => return None,
        RunEvent::Planned { agent, items } => format!("{agent}: planned {items} item(s)"),
        RunEvent::TaskAssigned { task, worker } => format!("{task} → {worker}"),
        RunEvent::TaskFinished { task, worker } => {
            format!("{task}: finished by {worker}, reviewing")
        }
        RunEvent::TaskRevised { task, feedback } => {
            format!("{task}: sent back: {}", first_line(feedback))
        }
        RunEvent::TaskFailed { task, reason } => format!("{task}: FAILED: {}", first_line(reason)),
        RunEvent::Merged {
            source,
            target,
            commit,
        } => format!(
            "merged {source} into {target} ({})",
            &commit[..commit.len().min(10)]
        ),
        RunEvent::Conflict {
            source,
            target,
            files,
        } => format!(
            "conflict merging {source} into {target}: {}",
            files.join(", ")
        ),
        RunEvent::KeyBenched { key, until } => format!(
            "credential {key} rate limited until {}",
            until.format("%H:%M:%S UTC")
        ),
        RunEvent::Paused { agent, until } => format!(
            "{agent}: paused: every credential is rate limited until {}",
            until.format("%H:%M:%S UTC")
        ),
        RunEvent::ActorRestarted { agent, restarts } => {
            format!("{agent}: actor restarted ({restarts})")
        }
        RunEvent::Warning { message } => format!("warning: {message}"),
        RunEvent::WorkerPlaced { agent, node } => match node {
            Some(node) => format!("{agent}: runs on node {node}"),
            None => format!("{agent}: runs on this machine"),
        },
        RunEvent::AgentWarning { agent, message } => format!("{agent}: warning: {message}"),
        RunEvent::RunFinished { reason } => format!("run finished: {reason}"),
        // Events this version does not know (`RunEvent` is non-exhaustive): the library's words.
        other => other.text().lines.join(" "),
    })
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// The closing report.
pub fn print_summary(summary: &RunSummary, mode: Mode) {
    if mode == Mode::Json {
        if let Ok(line) =
            serde_json::to_string(&serde_json::json!({"event": "summary", "summary": summary}))
        {
            println!("{line}");
        }
        return;
    }
    let t = &summary.totals;
    println!();
    println!(
        "cco run {}: {}",
        summary.run_id,
        cco::printable(&summary.reason)
    );
    println!(
        "  tasks done {} / failed {} — merges {} — conflicts {} — cost ${:.4}",
        t.tasks_done, t.tasks_failed, t.merges, t.conflicts, t.cost_usd
    );
    for pause in &summary.pauses {
        let why = match pause.cause {
            cco::PauseCause::RateLimited => "every credential was rate limited",
            cco::PauseCause::ApiOverloaded => "the API was overloaded",
            _ => "held",
        };
        println!(
            "  paused {} → {} UTC: {why}",
            pause.since.format("%H:%M:%S"),
            pause.until.format("%H:%M:%S")
        );
    }
    if summary
        .credentials
        .iter()
        .any(|c| c.state != cco::CredentialState::Ready)
    {
        let list: Vec<String> = summary.credentials.iter().map(|c| c.describe()).collect();
        println!("  credentials: {}", list.join(" · "));
    }
    for task in summary.tasks.iter().filter(|t| t.failure.is_some()) {
        println!(
            "  failed {}: {}",
            task.key,
            cco::printable(task.failure.as_deref().unwrap_or_default())
        );
    }
}
