//! Plays one turn: init event, the selected rule's steps, final text and `result`.

use crate::cli::Args;
use crate::events::{self, Ctx, Ending};
use crate::out;
use crate::script::{Facts, Rule, Script, Step};
use crate::session::Session;
use crate::signals;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Values for `{{name}}` templates.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub session_id: String,
    pub cwd: String,
    pub agent: String,
    pub role: String,
    pub task_id: String,
    pub history_len: usize,
    pub prompt: String,
}

/// Expands `{{name}}` in one pass (so a prompt containing `{{...}}` is not expanded again).
/// Unknown names stay as written. In a template that looks like JSON (starts with `{` or `[`)
/// the prompt is JSON-string-escaped so the result stays valid JSON.
pub fn render(template: &str, v: &Vars) -> String {
    if !template.contains("{{") {
        return template.to_string();
    }
    let json_like = matches!(template.trim_start().chars().next(), Some('{' | '['));
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            rest = &rest[open..];
            break;
        };
        let name = &after[..close];
        match name.trim() {
            "session_id" => out.push_str(&v.session_id),
            "cwd" => out.push_str(&v.cwd),
            "agent" => out.push_str(&v.agent),
            "role" => out.push_str(&v.role),
            "task_id" => out.push_str(&v.task_id),
            "history_len" => out.push_str(&v.history_len.to_string()),
            "prompt" if json_like => {
                let quoted = Value::from(v.prompt.as_str()).to_string();
                out.push_str(&quoted[1..quoted.len() - 1]);
            }
            "prompt" => out.push_str(&v.prompt),
            _ => {
                out.push_str("{{");
                out.push_str(name);
                out.push_str("}}");
            }
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// Everything that stays the same across the turns of one process.
pub struct Env<'a> {
    pub args: &'a Args,
    pub script: &'a Script,
    pub state_dir: PathBuf,
    pub cwd: PathBuf,
    pub ctx: Ctx,
    /// `--json-schema`, parsed and checked: the `StructuredOutput` tool's schema.
    pub schema: Option<Value>,
}

fn env_opt(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Plays one turn and prints its events. Returns how it ended (the caller picks the exit code).
/// `cost_total` is the process's cumulative cost, updated here.
pub fn turn(env: &Env, session: &mut Session, prompt: &str, cost_total: &mut f64) -> Ending {
    let start = Instant::now();
    let ctx = &env.ctx;
    let history_len = session.lines;
    signals::begin_turn(ctx, start, *cost_total);
    out::lock().event(events::init(ctx));
    session.append(
        &json!({"type": "user", "session_id": session.id, "timestamp": events::timestamp(),
        "cwd": ctx.cwd, "message": {"role": "user", "content": prompt}}),
    );

    let facts = Facts {
        role: env_opt("CCO_AGENT_ROLE"),
        agent: env_opt("CCO_AGENT_ID"),
        prompt: prompt.to_string(),
        api_key: env_opt("ANTHROPIC_API_KEY"),
        resume: env.args.resume.is_some() || env.args.continue_session,
        model: env.args.model.clone(),
    };
    let fallback = Rule::default();
    let rule = env
        .script
        .select(&facts, &env.state_dir)
        .unwrap_or(&fallback);
    let vars = Vars {
        session_id: session.id.clone(),
        cwd: ctx.cwd.clone(),
        agent: facts.agent.clone().unwrap_or_default(),
        role: facts.role.clone().unwrap_or_default(),
        task_id: env_opt("CCO_TASK_ID").unwrap_or_default(),
        history_len,
        prompt: prompt.to_string(),
    };
    let mut p = Player {
        env,
        vars,
        msg_id: String::new(),
        request_id: String::new(),
        input_tokens: 2100 + 40 * history_len as u64,
        tool_steps: 0,
        structured: None,
        structured_calls: 0,
    };
    p.next_message();
    let ending = p.play(rule);

    let (num_turns, cost) = match &ending {
        Ending::Success { .. } | Ending::NoStructuredOutput { .. } => (
            rule.num_turns.unwrap_or(p.tool_steps + 1),
            rule.cost_usd.unwrap_or(0.001),
        ),
        Ending::MaxTurns { limit } => (limit + 1, rule.cost_usd.unwrap_or(0.001)),
        Ending::Api { .. } | Ending::Aborted => (p.tool_steps + 1, 0.0),
    };
    *cost_total += cost;
    let line = events::result(
        ctx,
        &ending,
        num_turns,
        *cost_total,
        start.elapsed().as_millis() as u64,
    );
    {
        let mut o = out::lock();
        o.result(line, &ending.text());
        signals::end_turn();
    }
    session.append(
        &json!({"type": "assistant", "session_id": session.id, "timestamp": events::timestamp(),
        "message": {"role": "assistant", "content": ending.text()}, "is_error": ending.is_error()}),
    );
    ending
}

pub(crate) struct Player<'a> {
    pub(crate) env: &'a Env<'a>,
    pub(crate) vars: Vars,
    pub(crate) msg_id: String,
    pub(crate) request_id: String,
    pub(crate) input_tokens: u64,
    pub(crate) tool_steps: u32,
    /// The last valid `StructuredOutput` input (`--json-schema` runs).
    pub(crate) structured: Option<Value>,
    /// `StructuredOutput` calls so far.
    pub(crate) structured_calls: u32,
}

impl Player<'_> {
    /// A new API response: blocks until the next tool result share this message id.
    pub(crate) fn next_message(&mut self) {
        self.msg_id = events::prefixed_id("msg_fake_", 24);
        self.request_id = events::prefixed_id("req_fake_", 20);
    }

    pub(crate) fn ctx(&self) -> &Ctx {
        &self.env.ctx
    }

    pub(crate) fn r(&self, t: &str) -> String {
        render(t, &self.vars)
    }

    pub(crate) fn emit_block(&self, block: Value) {
        let line = events::assistant(
            self.ctx(),
            &self.msg_id,
            &self.request_id,
            self.input_tokens,
            block,
        );
        out::lock().event(line);
    }

    pub(crate) fn path(&self, p: &str) -> PathBuf {
        self.env.cwd.join(self.r(p))
    }

    /// One more API round trip (a tool call): counted in `num_turns`, bounded by `--max-turns`.
    fn count_round_trip(&mut self) -> Option<Ending> {
        self.tool_steps += 1;
        signals::set_num_turns(self.tool_steps);
        (self.env.args.max_turns == Some(self.tool_steps)).then_some(Ending::MaxTurns {
            limit: self.tool_steps,
        })
    }

    fn play(&mut self, rule: &Rule) -> Ending {
        if let Some(ending) = self.play_steps(&rule.steps) {
            return ending;
        }
        let text = self.r(rule.result.as_deref().unwrap_or("ok"));
        if self.env.schema.is_some() {
            if self.structured.is_none() {
                // The model ended with text: the CLI insists once.
                if !text.is_empty() {
                    self.emit_block(events::text_block(&text));
                }
                out::lock().event(events::user_text(self.ctx(), STRUCTURED_OUTPUT_ENFORCE));
                self.next_message();
                if let Some(ending) = self.play_steps(&rule.enforce_steps) {
                    return ending;
                }
            }
            return match self.structured.take() {
                Some(value) => Ending::Success {
                    text: value.to_string(),
                    is_error: rule.is_error.unwrap_or(false),
                    structured: Some(value),
                },
                None => Ending::NoStructuredOutput {
                    attempts: self.structured_calls + 1,
                },
            };
        }
        if !text.is_empty() {
            self.emit_block(events::text_block(&text));
        }
        Ending::Success {
            text,
            is_error: rule.is_error.unwrap_or(false),
            structured: None,
        }
    }

    /// Plays `steps`; `Some` when one of them ended the turn.
    fn play_steps(&mut self, steps: &[Step]) -> Option<Ending> {
        let args = self.env.args;
        for step in steps {
            match step {
                Step::Text(t) => self.emit_block(events::text_block(&self.r(t))),
                Step::Write(_) | Step::Append(_) | Step::Bash(_) | Step::Commit(_) => {
                    self.tool(step);
                    if let Some(end) = self.count_round_trip() {
                        return Some(end);
                    }
                }
                Step::StructuredOutput(input) => {
                    self.structured_output(input);
                    if let Some(end) = self.count_round_trip() {
                        return Some(end);
                    }
                }
                Step::SleepMs(ms) => std::thread::sleep(Duration::from_millis(*ms)),
                Step::Hang(true) => loop {
                    std::thread::sleep(Duration::from_secs(3600))
                },
                Step::Hang(false) => {}
                Step::IgnoreSigterm(on) => signals::ignore_sigterm(*on),
                Step::SpawnGrandchild { pid_file } => self.spawn_grandchild(&self.path(pid_file)),
                Step::RateLimit(f) => {
                    let resets_at = chrono::Utc::now().timestamp().max(0) as u64 + f.resets_in_secs;
                    let ending = self.api_failure(events::api_error(Some(429)), f, Some(resets_at));
                    if ending.is_some() {
                        return ending;
                    }
                }
                Step::Overloaded(f) => {
                    if let Some(end) = self.api_failure(events::api_error(Some(529)), f, None) {
                        return Some(end);
                    }
                }
                Step::ApiError(f) => {
                    if let Some(end) = self.api_failure(events::api_error(f.status), f, None) {
                        return Some(end);
                    }
                }
                Step::RateLimitEvent(e) => {
                    if let Some(end) = self.rate_limit_event(e) {
                        return Some(end);
                    }
                }
                Step::Raw(line) => out::lock().raw(line),
                Step::BigLine(n) => {
                    let (prefix, suffix) =
                        events::assistant_text_frame(self.ctx(), &self.msg_id, &self.request_id);
                    let filler = n.saturating_sub(prefix.len() + suffix.len());
                    out::lock().big_line(&prefix, filler, &suffix);
                }
                Step::Crash { exit_code } => std::process::exit(*exit_code),
                Step::MaxTurns(true) => {
                    return Some(Ending::MaxTurns {
                        limit: args.max_turns.unwrap_or(self.tool_steps.max(1)),
                    })
                }
                Step::MaxTurns(false) => {}
            }
        }
        None
    }
}

/// The user message the real CLI adds when a `--json-schema` run ends with plain text.
pub const STRUCTURED_OUTPUT_ENFORCE: &str =
    "[structured-output-enforce] You MUST call the StructuredOutput tool to complete this request.";

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            session_id: "S".into(),
            agent: "w1".into(),
            history_len: 4,
            prompt: "say \"hi\"\n{{agent}}".into(),
            ..Default::default()
        }
    }

    #[test]
    fn templates_expand_once() {
        assert_eq!(
            render("{{session_id}}/{{agent}}/{{history_len}}/{{nope}}", &vars()),
            "S/w1/4/{{nope}}"
        );
        assert_eq!(render("p={{prompt}}", &vars()), "p=say \"hi\"\n{{agent}}");
    }

    #[test]
    fn prompt_is_escaped_inside_json() {
        let out = render(r#"{"echo":"{{prompt}}"}"#, &vars());
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["echo"], "say \"hi\"\n{{agent}}");
    }

    #[test]
    fn quoting() {
        assert_eq!(crate::tools::shell_quote("it's"), r"'it'\''s'");
    }
}
