//! `<run dir>/combined.log`: one human line per run event, agents' text included.
//!
//! Line format (what `cco logs` parses back with [`parse_line`]):
//!
//! ```text
//! 2025-01-31T12:00:00.123Z worker-1 tool: Bash
//! 2025-01-31T12:00:00.456Z worker-1 > I wrote the file.
//! 2025-01-31T12:00:01.000Z cco merged cco/worker-1/t1 into main (0123456789)
//! ```
//!
//! The timestamp (UTC), then the agent id ([`RUN_AGENT`] for run-level events), then the
//! message. A multi-line message (an agent's text, a failure reason) becomes several lines,
//! each with the timestamp and agent, so every line can be attributed. Lines are flushed
//! event by event, so the file is readable while the run goes on.
//!
//! The writer is a task subscribed to the run's event broadcast. It never slows the run
//! down: if it falls behind it writes how many events it missed; if a write fails (disk
//! full) it logs one warning and stops writing, and the run goes on.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::board::Board;
use crate::events::{EventSubject, RunEvent};

/// File name of the combined log inside the run folder.
pub const FILE_NAME: &str = "combined.log";

/// Agent column of run-level events (phases, merges, warnings, key rotation).
pub const RUN_AGENT: &str = "cco";

/// Starts the combined log writer of a run: subscribes now (so no event after this call is
/// missed) and writes `<run_dir>/combined.log` until the event channel closes.
///
/// The task holds only a receiver, never the board, so it ends when the run's board goes away.
pub(crate) fn spawn(board: &Board, run_dir: &Path) -> tokio::task::JoinHandle<()> {
    let events = board.events().subscribe();
    let path = run_dir.join(FILE_NAME);
    tokio::spawn(async move {
        let file = match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            Ok(file) => file,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot create the combined log; the run goes on without it");
                return;
            }
        };
        write_events(events, std::io::BufWriter::new(file), &path).await;
    })
}

/// Writes events to `out` until the channel closes or a write fails. `path` is for the warning.
pub(crate) async fn write_events<W: Write>(
    mut events: broadcast::Receiver<RunEvent>,
    mut out: W,
    path: &Path,
) {
    let mut log = RunLog::default();
    loop {
        let mut last = false;
        let lines = match events.recv().await {
            Ok(event) => {
                // RunFinished is the run's last event: the log is complete after it.
                last = matches!(event, RunEvent::RunFinished { .. });
                log.event_lines(Utc::now(), &event)
            }
            Err(RecvError::Lagged(missed)) => vec![log.line(
                Utc::now(),
                RUN_AGENT,
                &format!("… {missed} events missed (the log fell behind)"),
            )],
            Err(RecvError::Closed) => return,
        };
        if let Err(error) = write_lines(&mut out, &lines) {
            warn_write_failed(path, &error);
            return;
        }
        if last {
            return;
        }
    }
}

fn write_lines<W: Write>(out: &mut W, lines: &[String]) -> std::io::Result<()> {
    for line in lines {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

fn warn_write_failed(path: &Path, error: &std::io::Error) {
    tracing::warn!(path = %path.display(), %error, "cannot write the combined log (disk full?); it stops here, the run goes on");
}

/// Turns events into log lines. Keeps which worker holds which task, so a task's failure or
/// revision lands in that worker's lines.
#[derive(Debug, Default)]
pub(crate) struct RunLog {
    task_workers: HashMap<String, String>,
}

impl RunLog {
    /// One line (no newline): timestamp, agent, message. Newlines in `message` are not split.
    pub(crate) fn line(&self, at: DateTime<Utc>, agent: &str, message: &str) -> String {
        format!(
            "{} {} {}",
            at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            agent_column(agent),
            message
        )
    }

    /// The lines of one event ([`RunEvent::text`]), attributed to its agent; a task's
    /// events go to the worker that holds it.
    pub(crate) fn event_lines(&mut self, at: DateTime<Utc>, event: &RunEvent) -> Vec<String> {
        if let RunEvent::TaskAssigned { task, worker } = event {
            self.task_workers.insert(task.clone(), worker.clone());
        }
        let text = event.text();
        let agent = match &text.subject {
            EventSubject::Run => RUN_AGENT.to_string(),
            EventSubject::Agent(agent) => agent.clone(),
            EventSubject::Task(task) => self.owner(task),
        };
        text.lines
            .iter()
            .map(|line| self.line(at, &agent, line))
            .collect()
    }

    fn owner(&self, task: &str) -> String {
        self.task_workers
            .get(task)
            .cloned()
            .unwrap_or_else(|| RUN_AGENT.into())
    }
}

/// Agent ids are single words; anything else is made one so lines stay parseable.
fn agent_column(agent: &str) -> String {
    if agent.is_empty() {
        return "-".into();
    }
    agent
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect()
}

/// One parsed line of `combined.log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLine<'a> {
    pub at: &'a str,
    pub agent: &'a str,
    pub message: &'a str,
}

/// Splits a `combined.log` line into timestamp, agent and message (`None` if malformed).
pub fn parse_line(line: &str) -> Option<LogLine<'_>> {
    let (at, rest) = line.split_once(' ')?;
    if !at.ends_with('Z') || !at.contains('T') {
        return None;
    }
    let (agent, message) = rest.split_once(' ').unwrap_or((rest, ""));
    (!agent.is_empty()).then_some(LogLine { at, agent, message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 31, 12, 0, 0).unwrap() + chrono::Duration::milliseconds(123)
    }

    #[test]
    fn a_line_is_timestamp_agent_message_and_parses_back() {
        let mut log = RunLog::default();
        let lines = log.event_lines(
            at(),
            &RunEvent::ToolUsed {
                agent: "worker-1".into(),
                tool: "Bash".into(),
            },
        );
        assert_eq!(
            lines,
            vec!["2025-01-31T12:00:00.123Z worker-1 tool: Bash".to_string()]
        );
        let parsed = parse_line(&lines[0]).unwrap();
        assert_eq!(
            parsed,
            LogLine {
                at: "2025-01-31T12:00:00.123Z",
                agent: "worker-1",
                message: "tool: Bash"
            }
        );
    }

    #[test]
    fn agent_text_becomes_one_attributed_line_per_text_line() {
        let mut log = RunLog::default();
        let lines = log.event_lines(
            at(),
            &RunEvent::AgentOutput {
                agent: "em-2".into(),
                text: "first\n\nthird  \n".into(),
            },
        );
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines.iter().all(|l| parse_line(l).unwrap().agent == "em-2"));
        assert_eq!(parse_line(&lines[0]).unwrap().message, "> first");
        assert_eq!(parse_line(&lines[1]).unwrap().message, ">");
        assert_eq!(parse_line(&lines[2]).unwrap().message, "> third");
    }

    #[test]
    fn run_level_events_use_the_run_agent_and_task_events_follow_the_worker() {
        let mut log = RunLog::default();
        let merged = log.event_lines(
            at(),
            &RunEvent::Merged {
                source: "a".into(),
                target: "main".into(),
                commit: "0123456789abcdef".into(),
            },
        );
        assert_eq!(parse_line(&merged[0]).unwrap().agent, RUN_AGENT);
        assert!(
            merged[0].ends_with("merged a into main (0123456789)"),
            "{merged:?}"
        );
        log.event_lines(
            at(),
            &RunEvent::TaskAssigned {
                task: "flat/t1".into(),
                worker: "worker-2".into(),
            },
        );
        let failed = log.event_lines(
            at(),
            &RunEvent::TaskFailed {
                task: "flat/t1".into(),
                reason: "tests fail\nsecond line".into(),
            },
        );
        assert_eq!(failed.len(), 2);
        assert!(
            failed
                .iter()
                .all(|l| parse_line(l).unwrap().agent == "worker-2"),
            "{failed:?}"
        );
        assert_eq!(
            parse_line(&failed[0]).unwrap().message,
            "task flat/t1 FAILED: tests fail"
        );
        assert_eq!(parse_line(&failed[1]).unwrap().message, "  second line");
        let unknown = log.event_lines(
            at(),
            &RunEvent::TaskFailed {
                task: "x/y".into(),
                reason: "r".into(),
            },
        );
        assert_eq!(parse_line(&unknown[0]).unwrap().agent, RUN_AGENT);
    }

    #[test]
    fn malformed_lines_do_not_parse() {
        assert_eq!(parse_line(""), None);
        assert_eq!(parse_line("hello world again"), None);
        assert_eq!(
            parse_line("2025-01-31T12:00:00.123Z worker-1")
                .unwrap()
                .message,
            ""
        );
    }

    #[tokio::test]
    async fn the_writer_records_lag_and_stops_when_the_channel_closes() {
        let (tx, rx) = broadcast::channel(2);
        for n in 0..5 {
            tx.send(RunEvent::Warning {
                message: format!("w{n}"),
            })
            .unwrap();
        }
        drop(tx);
        let mut out = Vec::new();
        write_events(rx, &mut out, Path::new("mem")).await;
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("3 events missed"), "{text}");
        assert!(
            text.contains("warning: w3") && text.contains("warning: w4"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_full_disk_stops_the_writer_without_a_panic() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("no space left on device"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (tx, rx) = broadcast::channel(16);
        let writer = tokio::spawn(write_events(rx, Full, Path::new("full")));
        tx.send(RunEvent::Warning {
            message: "w".into(),
        })
        .unwrap();
        // The writer returns after the first failed write, with the sender still open.
        tokio::time::timeout(std::time::Duration::from_secs(10), writer)
            .await
            .expect("writer stopped")
            .unwrap();
        tx.send(RunEvent::Warning {
            message: "after".into(),
        })
        .ok();
    }
}
