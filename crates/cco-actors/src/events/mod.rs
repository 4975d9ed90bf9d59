//! Run events for subscribers (live view, logs, embedding applications), and their text.
//!
//! A `tokio::sync::broadcast` channel: a slow subscriber lags (and is told how many events it
//! missed) instead of slowing the run down. [`RunEvent::text`] (in `text.rs`) is the one place
//! an event becomes words for people: `combined.log` and embedders' output use it.

mod text;

pub use text::{EventSubject, EventText};

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use cco_config::Redactor;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::lifecycle::TaskPhase;

/// Something that happened in the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunEvent {
    RunStarted {
        run_id: String,
        base_branch: String,
        mode: String,
    },
    Phase {
        phase: String,
    },
    AgentState {
        agent: String,
        state: String,
    },
    ProcessStarted {
        agent: String,
        pid: u32,
        resume: bool,
        /// The credential it runs on (`oauth` or a key's name; never the secret).
        #[serde(default)]
        credential: Option<String>,
    },
    ProcessExited {
        agent: String,
        outcome: String,
    },
    ToolUsed {
        agent: String,
        tool: String,
    },
    /// Text an agent wrote (assistant text blocks, truncated to 2,000 chars, secrets redacted).
    AgentOutput {
        agent: String,
        text: String,
    },
    Planned {
        agent: String,
        items: usize,
    },
    TaskAssigned {
        task: String,
        worker: String,
    },
    TaskFinished {
        task: String,
        worker: String,
    },
    TaskRevised {
        task: String,
        feedback: String,
    },
    TaskFailed {
        task: String,
        reason: String,
    },
    Merged {
        source: String,
        target: String,
        commit: String,
    },
    Conflict {
        source: String,
        target: String,
        files: Vec<String>,
    },
    KeyBenched {
        key: String,
        until: DateTime<Utc>,
    },
    Paused {
        agent: String,
        until: DateTime<Utc>,
    },
    /// Several agents saw the API unavailable (529, 5xx, connection errors) within a short
    /// window: no new claude process starts until `until` (the run-wide circuit breaker).
    ApiOverloaded {
        agents: usize,
        until: DateTime<Utc>,
    },
    Cost {
        agent: String,
        total_usd: f64,
    },
    ActorRestarted {
        agent: String,
        restarts: u32,
    },
    Warning {
        message: String,
    },
    /// A task was added (its phase is then `queued`) or moved to its next phase; `cost_usd`
    /// is the task's cost so far. The record of every transition (`events.jsonl`), from which
    /// turns, reviews and merges of a task can be told after the run; the CLI's event lines and
    /// `combined.log` leave it out (the other events say the same in words). The phase is
    /// boxed: it is the largest field of any event, and every slot of the event channel is
    /// as large as the largest event (a bench run's 65,536 slots grew by 9.5 MiB with it
    /// inline).
    TaskMoved {
        task: String,
        phase: Box<TaskPhase>,
        cost_usd: f64,
    },
    /// A cluster node joined (or joined again after a loss: `rejoined`).
    NodeJoined {
        node: String,
        address: String,
        slots: u32,
        rejoined: bool,
    },
    /// A cluster node disconnected or stopped answering; its turns go elsewhere.
    NodeLost {
        node: String,
        reason: String,
    },
    /// A cluster node could not be joined (a wrong cookie, TLS, ...).
    NodeRefused {
        address: String,
        reason: String,
    },
    /// A worker's turns run on `node` from now on (`None`: on this machine).
    WorkerPlaced {
        agent: String,
        node: Option<String>,
    },
    /// Something about one agent's process worth a warning in its log (e.g. a stream line
    /// that was too long and was dropped).
    AgentWarning {
        agent: String,
        message: String,
    },
    RunFinished {
        reason: String,
    },
}

impl RunEvent {
    /// The event with its free text (reasons, feedback, states, messages, file and tool
    /// names: text agents or git wrote) cleaned: the secrets `redactor` knows taken out, and
    /// made [`printable`].
    fn cleaned(mut self, redactor: Option<&Redactor>) -> RunEvent {
        let texts: Vec<&mut String> = match &mut self {
            RunEvent::Phase { phase: text }
            | RunEvent::AgentState { state: text, .. }
            | RunEvent::ProcessExited { outcome: text, .. }
            | RunEvent::ToolUsed { tool: text, .. }
            | RunEvent::AgentOutput { text, .. }
            | RunEvent::TaskRevised { feedback: text, .. }
            | RunEvent::TaskFailed { reason: text, .. }
            | RunEvent::Warning { message: text }
            | RunEvent::AgentWarning { message: text, .. }
            | RunEvent::NodeLost { reason: text, .. }
            | RunEvent::NodeRefused { reason: text, .. }
            | RunEvent::RunFinished { reason: text } => vec![text],
            RunEvent::Conflict { files, .. } => files.iter_mut().collect(),
            _ => return self,
        };
        for text in texts {
            if let Some(Cow::Owned(clean)) = redactor.map(|r| r.redact(text)) {
                *text = clean;
            }
            if let Cow::Owned(clean) = printable(text) {
                *text = clean;
            }
        }
        self
    }
}

/// `text` safe to show on a terminal (and in a log someone will `cat`): control characters,
/// with which an escape sequence moves the cursor, retitles the window or writes the
/// clipboard, become visible escapes (`\u{1b}`), and so do the bidirectional overrides that
/// make text read differently from what it is; line feeds and tabs stay, a carriage return
/// becomes a line feed (`\r\n` one). Every run event's free text is printable; text read back
/// from a run's files (titles in the journal, a log written by an older cco) is made so again
/// where it is shown.
pub fn printable(text: &str) -> Cow<'_, str> {
    fn hidden(c: char) -> bool {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !text.chars().any(hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            c if hidden(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Sending side of the run's event channel; cheap to clone. Every event's free text is made
/// [`printable`], and once the run knows its secrets ([`EventBus::set_redactor`]) redacted,
/// before anyone sees it.
#[derive(Debug, Clone)]
pub(crate) struct EventBus {
    sender: broadcast::Sender<RunEvent>,
    redactor: Arc<OnceLock<Arc<Redactor>>>,
}

impl EventBus {
    pub(crate) fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(16));
        Self {
            sender,
            redactor: Arc::default(),
        }
    }

    /// The redactor of the run's secrets (set once, at the start).
    pub(crate) fn set_redactor(&self, redactor: Arc<Redactor>) {
        let _ = self.redactor.set(redactor);
    }

    pub(crate) fn emit(&self, event: RunEvent) {
        let event = event.cleaned(self.redactor.get().map(|r| &**r));
        tracing::debug!(?event, "run event");
        // No subscriber is fine.
        let _ = self.sender.send(event);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The event channel allocates every slot up front, each as large as the largest event:
    /// a large field inline in one variant costs capacity × its size for every run (boxed
    /// instead, like `TaskMoved`'s phase).
    #[test]
    fn text_is_printable_without_escape_sequences_or_overrides() {
        assert!(matches!(printable("plain\ttext\nlines"), Cow::Borrowed(_)));
        assert_eq!(
            printable("a\u{1b}]52;c;SGVsbG8=\u{7}b \u{1b}[2J"),
            "a\\u{1b}]52;c;SGVsbG8=\\u{7}b \\u{1b}[2J"
        );
        assert_eq!(printable("one\r\ntwo\rthree"), "one\ntwo\nthree");
        assert_eq!(printable("x\u{202e}gpj.exe"), "x\\u{202e}gpj.exe");
        assert_eq!(printable("\u{9b}31m"), "\\u{9b}31m");
    }

    #[tokio::test]
    async fn every_event_text_an_agent_or_git_wrote_is_printable_and_redacted() {
        let bus = EventBus::new(16);
        let mut rx = bus.subscribe();
        bus.set_redactor(Arc::new(Redactor::new([(
            "k".to_string(),
            cco_config::Secret::new("sk-ant-secret-value-1234"),
        )])));
        bus.emit(RunEvent::AgentOutput {
            agent: "worker-1".into(),
            text: "done\u{1b}[31m sk-ant-secret-value-1234".into(),
        });
        bus.emit(RunEvent::Conflict {
            source: "a".into(),
            target: "main".into(),
            files: vec!["ok.txt".into(), "evil\u{1b}]0;title\u{7}.txt".into()],
        });
        bus.emit(RunEvent::ToolUsed {
            agent: "worker-1".into(),
            tool: "Bash\u{1b}[2J".into(),
        });
        match rx.recv().await.unwrap() {
            RunEvent::AgentOutput { text, .. } => {
                assert!(
                    !text.contains('\u{1b}') && text.contains("\\u{1b}[31m"),
                    "{text}"
                );
                assert!(!text.contains("sk-ant-secret-value-1234"), "{text}");
            }
            other => panic!("{other:?}"),
        }
        match rx.recv().await.unwrap() {
            RunEvent::Conflict { files, .. } => {
                assert_eq!(files, ["ok.txt", "evil\\u{1b}]0;title\\u{7}.txt"])
            }
            other => panic!("{other:?}"),
        }
        match rx.recv().await.unwrap() {
            RunEvent::ToolUsed { tool, .. } => assert_eq!(tool, "Bash\\u{1b}[2J"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_event_stays_small() {
        assert!(
            std::mem::size_of::<RunEvent>() <= 96,
            "RunEvent is {} bytes: box the large field of the variant that grew",
            std::mem::size_of::<RunEvent>()
        );
    }
}
