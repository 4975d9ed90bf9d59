//! Agent log: one agent's lines of `combined.log` (its text, tool calls, processes, tasks),
//! followed live as they are written; and its claude transcripts (`sessions/`), each shown
//! as the stream it was: the agent's text, every tool call with its input, every tool result,
//! and each process's result and cost.

use maud::{html, Markup};
use serde_json::Value;

use super::{agent_link, first_line, money, short, task_link, Ctx};
use crate::source::AgentLine;

/// Lines of an agent's log shown when its page opens.
pub(crate) const TAIL_LINES: usize = 500;
/// Characters of one tool input or result shown.
const MAX_TEXT: usize = 4000;

pub(super) fn render(ctx: &Ctx<'_>, agent: &str) -> Option<Markup> {
    let snapshot = ctx.run.snapshot();
    let record = snapshot
        .as_ref()
        .and_then(|s| s.agents.iter().find(|a| a.id == agent).cloned());
    let sessions = ctx.run.sessions(agent);
    let (lines, end) = ctx.run.log_tail(agent, TAIL_LINES);
    if record.is_none() && sessions.is_empty() && lines.is_empty() {
        return None;
    }
    Some(html! {
        h1 { "Log of " (agent) }
        @if let Some(a) = &record {
            dl.facts {
                dt { "role" } dd { (a.role.as_str()) @if let Some(t) = &a.team { " · " (t) } }
                dt { "state" } dd { span class=(super::team::state_class(&a.state)) { (ctx.clean(&a.state)) } }
                dt { "task" } dd { @if let Some(t) = &a.current_task { (task_link(t)) } @else { "—" } }
                dt { "pid" } dd.mono { @if let Some(pid) = a.pid { (pid) } @else { "—" } }
                dt { "restarts" } dd { (a.restarts) }
                dt { "cost" } dd { (money(a.cost_usd)) }
            }
        }
        @if !sessions.is_empty() {
            h2 { "Transcripts" }
            ul.sessions {
                @for (session, bytes, _) in sessions.iter().rev() {
                    li {
                        a.mono href=(format!("/agent/{agent}/session/{session}")) { (session) }
                        " " span.note { (bytes / 1024) " KiB" }
                    }
                }
            }
        }
        h2 { "Stream " span.note { "(last " (TAIL_LINES) " lines, following)" } }
        div #log.log data-from=(end) {
            (render_lines(ctx, &lines))
        }
    })
}

/// Log lines as rows (also what a live update appends).
pub(crate) fn render_lines(ctx: &Ctx<'_>, lines: &[AgentLine]) -> Markup {
    html! {
        @for line in lines {
            @let message = ctx.clean(&line.message);
            div class=(format!("line l-{}", line_kind(&message))) {
                span.at { (line.at.get(11..19).unwrap_or(&line.at)) }
                " "
                span.msg { (message) }
            }
        }
    }
}

fn line_kind(message: &str) -> &'static str {
    if message.starts_with('>') {
        "text"
    } else if message.starts_with("tool: ") {
        "tool"
    } else if message.starts_with("claude ") {
        "process"
    } else if message.contains("FAILED") || message.starts_with("warning") {
        "bad"
    } else {
        "event"
    }
}

pub(super) fn render_session(ctx: &Ctx<'_>, agent: &str, session: &str) -> Option<Markup> {
    let (text, cut) = ctx.run.transcript(agent, session)?;
    let entries: Vec<Markup> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|event| entry(ctx, &event))
        .collect();
    Some(html! {
        h1 { "Transcript " span.mono { (short(session)) } " of " (agent_link(agent)) }
        p.note.mono { (session) }
        @if cut { p.note { "Only the end of a long transcript is shown." } }
        div.transcript {
            @for e in &entries { (e) }
            @if entries.is_empty() { p.empty { "Nothing yet." } }
        }
    })
}

fn clip(text: &str) -> String {
    if text.chars().count() > MAX_TEXT {
        let cut: String = text.chars().take(MAX_TEXT).collect();
        format!("{cut}\n…")
    } else {
        text.to_string()
    }
}

/// The words of a tool call's input: the command, the file, or the input as JSON.
fn tool_input(input: &Value) -> String {
    for key in ["command", "file_path", "path", "pattern", "url", "prompt"] {
        if let Some(text) = input.get(key).and_then(Value::as_str) {
            return text.to_string();
        }
    }
    serde_json::to_string(input).unwrap_or_default()
}

fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn entry(ctx: &Ctx<'_>, event: &Value) -> Option<Markup> {
    let kind = event.get("type").and_then(Value::as_str)?;
    let blocks = || {
        event
            .pointer("/message/content")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    Some(match kind {
        "system" if event.get("subtype").and_then(Value::as_str) == Some("init") => html! {
            div.entry.system {
                "process started · model " (event.get("model").and_then(Value::as_str).unwrap_or("?"))
            }
        },
        "assistant" => html! {
            @for block in blocks() {
                @match block.get("type").and_then(Value::as_str) {
                    Some("text") => div.entry.text { p.pre { (ctx.clean(&clip(block.get("text").and_then(Value::as_str).unwrap_or("")))) } },
                    Some("tool_use") => div.entry.tool {
                        b { (ctx.clean(block.get("name").and_then(Value::as_str).unwrap_or("tool"))) }
                        " "
                        code { (ctx.clean(&clip(&tool_input(block.get("input").unwrap_or(&Value::Null))))) }
                    },
                    _ => {},
                }
            }
        },
        "user" => html! {
            @for block in blocks() {
                @if block.get("type").and_then(Value::as_str) == Some("tool_result") {
                    @let text = content_text(block.get("content").unwrap_or(&Value::Null));
                    @let error = block.get("is_error").and_then(Value::as_bool).unwrap_or(false);
                    details class=(if error { "entry result-of error" } else { "entry result-of" }) {
                        summary { (ctx.clean(&first_line(&text, 140))) }
                        pre { (ctx.clean(&clip(&text))) }
                    }
                }
            }
        },
        "result" => html! {
            div.entry.result {
                b { (event.get("subtype").and_then(Value::as_str).unwrap_or("result")) }
                @if let Some(cost) = event.get("total_cost_usd").and_then(Value::as_f64) { " · " (money(cost)) }
                @if let Some(turns) = event.get("num_turns").and_then(Value::as_u64) { " · " (turns) " turns" }
                @if let Some(ms) = event.get("duration_ms").and_then(Value::as_f64) { " · " (super::duration(ms / 1000.0)) }
                @if let Some(text) = event.get("result").and_then(Value::as_str) {
                    p.pre { (ctx.clean(&clip(text))) }
                }
            }
        },
        _ => return None,
    })
}
