//! A process running on a node, seen from the head as a local one: its raw output is parsed,
//! judged and written to the transcript here, exactly as `cco_claude::ClaudeSession` does for
//! a local process, and becomes the same [`SessionUpdate`]s (`Started` first, `Finished`
//! last). A lost node ends the process as a crash.

use std::io::Write;
use std::time::Duration;

use cco_claude::parse::{classify, Classified, Line, MalformedReason};
use cco_claude::{ExitInfo, OutcomeBuilder, SessionOutcome, SessionSpec, SessionUpdate};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::RouteMsg;
use crate::wire::OutItem;

/// Turns the routed output of one remote process into session updates.
pub(crate) fn adapt(
    spec: &SessionSpec,
    pid: u32,
    mut route: UnboundedReceiver<RouteMsg>,
) -> UnboundedReceiver<SessionUpdate> {
    let (tx, rx) = mpsc::unbounded_channel();
    let _ = tx.send(SessionUpdate::Started { pid });
    let mut adapter = Adapter {
        tx,
        builder: OutcomeBuilder::new(),
        line_no: 0,
        max_line_bytes: spec.max_line_bytes,
        transcript: spec.transcript.as_ref().and_then(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map(std::io::BufWriter::new)
                .map_err(|error| tracing::warn!(path = %path.display(), %error, "running without a transcript"))
                .ok()
        }),
        redact: spec.redact.clone(),
    };
    tokio::spawn(async move {
        while let Some(msg) = route.recv().await {
            match msg {
                RouteMsg::Output { items, payload } => {
                    if adapter.output(items, &payload) {
                        return;
                    }
                }
                RouteMsg::Lost(why) => {
                    adapter.finish(SessionOutcome::without_result(format!("node lost: {why}")));
                    return;
                }
            }
        }
        adapter.finish(SessionOutcome::without_result(
            "node lost: the process's output stopped without its end",
        ));
    });
    rx
}

struct Adapter {
    tx: UnboundedSender<SessionUpdate>,
    builder: OutcomeBuilder,
    line_no: u64,
    max_line_bytes: usize,
    transcript: Option<std::io::BufWriter<std::fs::File>>,
    redact: Option<cco_claude::Redactor>,
}

impl Adapter {
    /// Handles a batch; true once the process ended.
    fn output(&mut self, items: Vec<OutItem>, payload: &[u8]) -> bool {
        let mut at = 0usize;
        for item in items {
            match item {
                OutItem::Line { len } => {
                    let Some(bytes) = payload.get(at..at + len) else {
                        tracing::warn!("a node sent output shorter than it said");
                        return false;
                    };
                    at += len;
                    self.line(bytes);
                }
                OutItem::TooLong {
                    error,
                    excerpt,
                    len,
                    limit,
                    ..
                } => {
                    self.line_no += 1;
                    self.builder.observe_malformed();
                    let _ = self.tx.send(SessionUpdate::Malformed {
                        line_no: self.line_no,
                        error,
                        excerpt,
                        reason: MalformedReason::TooLong { len, limit },
                    });
                }
                OutItem::Stderr { text } => {
                    self.builder.observe_stderr(&text);
                    let _ = self.tx.send(SessionUpdate::Stderr(text));
                }
                OutItem::Exit {
                    code,
                    signal,
                    killed,
                    duration_ms,
                } => {
                    if let Some(reason) = killed.as_deref().and_then(crate::kill_reason) {
                        self.builder.mark_killed(reason);
                    }
                    let builder = std::mem::take(&mut self.builder);
                    let outcome = builder.finish(
                        ExitInfo { code, signal },
                        Duration::from_millis(duration_ms),
                    );
                    self.finish(outcome);
                    return true;
                }
            }
        }
        false
    }

    fn line(&mut self, bytes: &[u8]) {
        self.line_no += 1;
        if let Some(t) = self.transcript.as_mut() {
            let text = String::from_utf8_lossy(bytes);
            let text = match &self.redact {
                Some(redact) => redact(&text),
                None => text.into_owned(),
            };
            if writeln!(t, "{text}").is_err() {
                self.transcript = None;
            }
        }
        match classify(&Line::Complete(bytes.to_vec()), self.max_line_bytes) {
            Classified::Blank => {}
            Classified::Event(event) => {
                self.builder.observe(&event);
                let _ = self.tx.send(SessionUpdate::Event(event));
            }
            Classified::Malformed {
                error,
                excerpt,
                reason,
            } => {
                self.builder.observe_malformed();
                let _ = self.tx.send(SessionUpdate::Malformed {
                    line_no: self.line_no,
                    error,
                    excerpt,
                    reason,
                });
            }
        }
    }

    fn finish(&mut self, outcome: SessionOutcome) {
        if let Some(t) = self.transcript.as_mut() {
            let _ = t.flush();
        }
        let _ = self.tx.send(SessionUpdate::Finished(outcome));
    }
}
