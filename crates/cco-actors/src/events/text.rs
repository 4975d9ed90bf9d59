//! [`RunEvent`] as text for people: what the event is about ([`EventSubject`]) and its lines.

use super::RunEvent;

/// What an event is about: the column a log line is attributed to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventSubject {
    /// The run itself (phases, merges, warnings, key rotation).
    Run,
    /// An agent (`director`, `coordinator`, `em-1`, `worker-3`, ...).
    Agent(String),
    /// A task (`<team>/<task id>`): shown under the worker that holds it, when known.
    Task(String),
}

/// One event in words: its subject and one or more lines (continuation lines are indented,
/// an agent's own text is quoted line by line with `> `).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventText {
    pub subject: EventSubject,
    pub lines: Vec<String>,
    /// Worth a line in a terse progress view (tool calls, costs and agents' text are not).
    pub progress: bool,
}

impl RunEvent {
    /// The event as text for people.
    pub fn text(&self) -> EventText {
        use EventSubject::{Agent, Run, Task};
        let (subject, message, progress): (EventSubject, String, bool) = match self {
            RunEvent::RunStarted {
                run_id,
                base_branch,
                mode,
            } => (
                Run,
                format!("run {run_id} started ({mode} mode) on {base_branch}"),
                true,
            ),
            RunEvent::Phase { phase } => (Run, format!("phase: {phase}"), true),
            RunEvent::AgentState { agent, state } => {
                (Agent(agent.clone()), format!("state: {state}"), true)
            }
            RunEvent::ProcessStarted {
                agent,
                pid,
                resume,
                credential,
            } => (
                Agent(agent.clone()),
                format!(
                    "claude started, pid {pid}{}{}",
                    credential
                        .as_deref()
                        .map(|c| format!(" on {c}"))
                        .unwrap_or_default(),
                    if *resume { " (resumed session)" } else { "" }
                ),
                true,
            ),
            RunEvent::ProcessExited { agent, outcome } => (
                Agent(agent.clone()),
                format!("claude exited: {outcome}"),
                true,
            ),
            RunEvent::ToolUsed { agent, tool } => {
                (Agent(agent.clone()), format!("tool: {tool}"), false)
            }
            RunEvent::AgentOutput { agent, text } => {
                let lines = text
                    .trim_end()
                    .lines()
                    .map(|l| format!("> {l}").trim_end().to_string())
                    .collect();
                return EventText {
                    subject: Agent(agent.clone()),
                    lines,
                    progress: false,
                };
            }
            RunEvent::Planned { agent, items } => (
                Agent(agent.clone()),
                format!("planned {items} item(s)"),
                true,
            ),
            RunEvent::TaskAssigned { task, worker } => {
                (Agent(worker.clone()), format!("assigned task {task}"), true)
            }
            RunEvent::TaskFinished { task, worker } => (
                Agent(worker.clone()),
                format!("finished task {task}, in review"),
                true,
            ),
            RunEvent::TaskRevised { task, feedback } => (
                Task(task.clone()),
                format!("task {task} sent back: {feedback}"),
                true,
            ),
            RunEvent::TaskFailed { task, reason } => (
                Task(task.clone()),
                format!("task {task} FAILED: {reason}"),
                true,
            ),
            RunEvent::Merged {
                source,
                target,
                commit,
            } => (
                Run,
                format!(
                    "merged {source} into {target} ({})",
                    commit.get(..10).unwrap_or(commit)
                ),
                true,
            ),
            RunEvent::Conflict {
                source,
                target,
                files,
            } => (
                Run,
                format!(
                    "conflict merging {source} into {target}: {}",
                    files.join(", ")
                ),
                true,
            ),
            RunEvent::KeyBenched { key, until } => (
                Run,
                format!(
                    "credential {key} rate limited until {}",
                    until.format("%H:%M:%S UTC")
                ),
                true,
            ),
            RunEvent::Paused { agent, until } => (
                Agent(agent.clone()),
                format!(
                    "paused: every credential is rate limited until {}",
                    until.format("%H:%M:%S UTC")
                ),
                true,
            ),
            RunEvent::ApiOverloaded { agents, until } => (
                Run,
                format!(
                    "the API is overloaded ({agents} agents saw 529/5xx errors): new claude processes wait until {}",
                    until.format("%H:%M:%S UTC")
                ),
                true,
            ),
            RunEvent::Cost { agent, total_usd } => (
                Agent(agent.clone()),
                format!("cost: run total now ${total_usd:.4}"),
                false,
            ),
            RunEvent::ActorRestarted { agent, restarts } => (
                Agent(agent.clone()),
                format!("actor restarted ({restarts})"),
                true,
            ),
            RunEvent::Warning { message } => (Run, format!("warning: {message}"), true),
            RunEvent::TaskMoved { task, phase, .. } => (
                Task(task.clone()),
                format!("task {task}: {}", phase.name()),
                false,
            ),
            RunEvent::NodeJoined {
                node,
                address,
                slots,
                rejoined,
            } => (
                Run,
                format!(
                    "node {node} ({address}) {} with {slots} slots",
                    if *rejoined { "rejoined" } else { "joined" }
                ),
                true,
            ),
            RunEvent::NodeLost { node, reason } => {
                (Run, format!("node {node} lost: {reason}"), true)
            }
            RunEvent::NodeRefused { address, reason } => {
                (Run, format!("node {address} refused: {reason}"), true)
            }
            RunEvent::WorkerPlaced { agent, node } => (
                Agent(agent.clone()),
                match node {
                    Some(node) => format!("runs on node {node}"),
                    None => "runs on this machine".to_string(),
                },
                true,
            ),
            RunEvent::AgentWarning { agent, message } => {
                (Agent(agent.clone()), format!("warning: {message}"), true)
            }
            RunEvent::RunFinished { reason } => (Run, format!("run finished: {reason}"), true),
        };
        // Continuation lines of a multi-line message are indented.
        let mut lines = message.trim_end().lines();
        let first = lines.next().unwrap_or("").to_string();
        let mut out = vec![first];
        out.extend(lines.map(|l| format!("  {l}").trim_end().to_string()));
        EventText {
            subject,
            lines: out,
            progress,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_names_its_subject_and_indents_its_continuation_lines() {
        let failed = RunEvent::TaskFailed {
            task: "flat/t1".into(),
            reason: "tests fail\nsecond line".into(),
        }
        .text();
        assert_eq!(failed.subject, EventSubject::Task("flat/t1".into()));
        assert_eq!(
            failed.lines,
            vec!["task flat/t1 FAILED: tests fail", "  second line"]
        );
        assert!(failed.progress);
        let output = RunEvent::AgentOutput {
            agent: "em-2".into(),
            text: "first\n\nthird  \n".into(),
        }
        .text();
        assert_eq!(output.lines, vec!["> first", ">", "> third"]);
        assert!(!output.progress);
        let merged = RunEvent::Merged {
            source: "a".into(),
            target: "main".into(),
            commit: "0123456789abcdef".into(),
        }
        .text();
        assert_eq!(merged.subject, EventSubject::Run);
        assert_eq!(merged.lines, vec!["merged a into main (0123456789)"]);
        // A short (or odd) commit id is shown whole, never sliced mid-character.
        let short = RunEvent::Merged {
            source: "a".into(),
            target: "main".into(),
            commit: "abc".into(),
        }
        .text();
        assert_eq!(short.lines, vec!["merged a into main (abc)"]);
    }
}
