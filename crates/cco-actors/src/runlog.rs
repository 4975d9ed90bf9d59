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
//!
//! The same task writes `<run dir>/events.jsonl` ([`EVENTS_FILE_NAME`]): every event as one
//! JSON object, its fields as [`RunEvent`] serialises them plus `at` (the UTC time it was
//! written), so a run can be told again after it ended (the dashboard's timeline and task
//! pages read it). Events it fell behind on are a `{"at":…,"missed":N}` line.
//! `TaskMoved` (a task's phase, for the record) goes there and not into `combined.log`: the
//! other events say the same in words.

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

/// File name of the event record inside the run folder: one JSON object per event.
pub const EVENTS_FILE_NAME: &str = "events.jsonl";

/// Starts the combined log writer of a run: subscribes now (so no event after this call is
/// missed) and writes `<run_dir>/combined.log` until the event channel closes.
///
/// The task holds only a receiver, never the board, so it ends when the run's board goes away.
pub(crate) fn spawn(board: &Board, run_dir: &Path) -> tokio::task::JoinHandle<()> {
    let events = board.events().subscribe();
    let path = run_dir.join(FILE_NAME);
    let record_path = run_dir.join(EVENTS_FILE_NAME);
    tokio::spawn(async move {
        let open = |path: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
        };
        let file = match open(&path) {
            Ok(file) => file,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot create the combined log; the run goes on without it");
                return;
            }
        };
        let record = match open(&record_path) {
            Ok(file) => Some(std::io::BufWriter::new(file)),
            Err(error) => {
                tracing::warn!(path = %record_path.display(), %error, "cannot create the event record; the run goes on without it");
                None
            }
        };
        let sink = Sink {
            log: std::io::BufWriter::new(file),
            path,
            record,
            record_path,
        };
        write_to(events, sink).await;
    })
}

/// Writes events to `out` until the channel closes or a write fails. `path` is for the warning.
#[cfg(test)]
pub(crate) async fn write_events<W: Write>(
    events: broadcast::Receiver<RunEvent>,
    out: W,
    path: &Path,
) {
    let sink = Sink::<W, W> {
        log: out,
        path: path.to_path_buf(),
        record: None,
        record_path: path.to_path_buf(),
    };
    write_to(events, sink).await;
}

/// Where the writer writes: `combined.log`, and `events.jsonl` until a write to it fails.
struct Sink<L, R> {
    log: L,
    path: std::path::PathBuf,
    record: Option<R>,
    record_path: std::path::PathBuf,
}

async fn write_to<L: Write, R: Write>(
    mut events: broadcast::Receiver<RunEvent>,
    mut sink: Sink<L, R>,
) {
    let mut log = RunLog::default();
    loop {
        let mut last = false;
        let received = events.recv().await;
        let at = Utc::now();
        let (lines, recorded) = match received {
            Ok(event) => {
                // RunFinished is the run's last event: the log is complete after it.
                last = matches!(event, RunEvent::RunFinished { .. });
                let recorded = sink.record.as_ref().map(|_| record_line(at, &event));
                let lines = if matches!(event, RunEvent::TaskMoved { .. }) {
                    Vec::new()
                } else {
                    log.event_lines(at, &event)
                };
                (lines, recorded)
            }
            Err(RecvError::Lagged(missed)) => (
                vec![log.line(
                    at,
                    RUN_AGENT,
                    &format!("… {missed} events missed (the log fell behind)"),
                )],
                Some(format!(
                    "{{\"at\":\"{}\",\"missed\":{missed}}}",
                    at.format(TIME_FORMAT)
                )),
            ),
            Err(RecvError::Closed) => return,
        };
        // Both files are flushed whenever the writer has caught up, so they are readable
        // while the run goes on, with one write per burst of events rather than per event.
        let flush = last || events.is_empty();
        if let (Some(out), Some(line)) = (sink.record.as_mut(), recorded) {
            if let Err(error) = write_lines(out, &[line], flush) {
                warn_write_failed(&sink.record_path, &error);
                sink.record = None;
            }
        }
        if let Err(error) = write_lines(&mut sink.log, &lines, flush) {
            warn_write_failed(&sink.path, &error);
            return;
        }
        if last {
            return;
        }
    }
}

/// Timestamps of both files: UTC, milliseconds.
const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// One line of `events.jsonl`: `{"at":"<UTC time>",<the event's fields>}`.
fn record_line(at: DateTime<Utc>, event: &RunEvent) -> String {
    let fields = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
    let rest = fields.strip_prefix('{').unwrap_or("}");
    let sep = if rest == "}" { "" } else { "," };
    format!("{{\"at\":\"{}\"{sep}{rest}", at.format(TIME_FORMAT))
}

fn write_lines<W: Write>(out: &mut W, lines: &[String], flush: bool) -> std::io::Result<()> {
    for line in lines {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    if flush {
        out.flush()?;
    }
    Ok(())
}

fn warn_write_failed(path: &Path, error: &std::io::Error) {
    tracing::warn!(path = %path.display(), %error, "cannot write a run log (disk full?); it stops here, the run goes on");
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
            at.format(TIME_FORMAT),
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

    #[test]
    fn a_record_line_is_the_event_with_its_time_and_reads_back() {
        let line = record_line(
            at(),
            &RunEvent::TaskMoved {
                task: "flat/t1".into(),
                phase: Box::new(crate::lifecycle::TaskPhase::Done {
                    commit: "abc".into(),
                }),
                cost_usd: 0.5,
            },
        );
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["at"], "2025-01-31T12:00:00.123Z");
        assert_eq!(value["event"], "task_moved");
        assert_eq!(value["phase"]["name"], "done");
        let event: RunEvent = serde_json::from_value(value).unwrap();
        assert!(matches!(event, RunEvent::TaskMoved { cost_usd, .. } if cost_usd == 0.5));
    }

    #[tokio::test]
    async fn the_record_gets_every_event_and_the_log_leaves_task_moves_out() {
        let (tx, rx) = broadcast::channel(16);
        let (log, record) = (SharedBuf::default(), SharedBuf::default());
        let sink = Sink {
            log: log.clone(),
            path: "log".into(),
            record: Some(record.clone()),
            record_path: "record".into(),
        };
        tx.send(RunEvent::TaskMoved {
            task: "flat/t1".into(),
            phase: Box::new(crate::lifecycle::TaskPhase::Queued),
            cost_usd: 0.0,
        })
        .unwrap();
        tx.send(RunEvent::RunFinished {
            reason: "done".into(),
        })
        .unwrap();
        write_to(rx, sink).await;
        let log = log.text();
        let record = record.text();
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.contains("run finished: done"), "{log}");
        let events: Vec<serde_json::Value> = record
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(events.len(), 2, "{record}");
        assert_eq!(events[0]["event"], "task_moved");
        assert_eq!(events[1]["event"], "run_finished");
    }

    #[derive(Clone, Default)]
    struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl SharedBuf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl Write for SharedBuf {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
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
