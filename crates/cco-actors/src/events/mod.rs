//! Run events for subscribers (live view, logs, embedding applications), and their text.
//!
//! A `tokio::sync::broadcast` channel: a slow subscriber lags (and is told how many events it
//! missed) instead of slowing the run down. [`RunEvent::text`] (in `text.rs`) is the one place
//! an event becomes words for people: `combined.log` and embedders' output use it.

mod text;

pub use text::{EventSubject, EventText};

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
    /// The event with the secrets `redactor` knows taken out of its free text (reasons,
    /// feedback, states, messages: text agents or git wrote).
    fn redacted(mut self, redactor: &Redactor) -> RunEvent {
        let text = match &mut self {
            RunEvent::Phase { phase: text }
            | RunEvent::AgentState { state: text, .. }
            | RunEvent::ProcessExited { outcome: text, .. }
            | RunEvent::AgentOutput { text, .. }
            | RunEvent::TaskRevised { feedback: text, .. }
            | RunEvent::TaskFailed { reason: text, .. }
            | RunEvent::Warning { message: text }
            | RunEvent::RunFinished { reason: text } => text,
            _ => return self,
        };
        if let std::borrow::Cow::Owned(clean) = redactor.redact(text) {
            *text = clean;
        }
        self
    }
}

/// Sending side of the run's event channel; cheap to clone. Once the run knows its secrets
/// ([`EventBus::set_redactor`]) every event is redacted before anyone sees it.
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
        let event = match self.redactor.get() {
            Some(redactor) => event.redacted(redactor),
            None => event,
        };
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
    fn an_event_stays_small() {
        assert!(
            std::mem::size_of::<RunEvent>() <= 96,
            "RunEvent is {} bytes: box the large field of the variant that grew",
            std::mem::size_of::<RunEvent>()
        );
    }
}
