//! Plays one turn: init event, the selected rule's steps, final text and `result`.

use crate::cli::Args;
use crate::events::{self, Ctx, Ending};
use crate::out;
use crate::script::{Facts, Rule, Script, Step};
use crate::session::Session;
use crate::signals;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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
    };
    p.next_message();
    let ending = p.play(rule);

    let (num_turns, cost) = match &ending {
        Ending::Success { .. } => (
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

struct Player<'a> {
    env: &'a Env<'a>,
    vars: Vars,
    msg_id: String,
    request_id: String,
    input_tokens: u64,
    tool_steps: u32,
}

/// A tool call's outcome: (content, is_error field, tool_use_result, extra event before it).
struct ToolOutcome {
    content: String,
    is_error: Option<bool>,
    tool_use_result: Value,
    before: Option<String>,
}

impl ToolOutcome {
    fn error(msg: String) -> ToolOutcome {
        ToolOutcome {
            content: format!("<tool_use_error>{msg}</tool_use_error>"),
            is_error: Some(true),
            tool_use_result: json!(msg),
            before: None,
        }
    }
}

impl Player<'_> {
    /// A new API response: blocks until the next tool result share this message id.
    fn next_message(&mut self) {
        self.msg_id = events::prefixed_id("msg_fake_", 24);
        self.request_id = events::prefixed_id("req_fake_", 20);
    }

    fn ctx(&self) -> &Ctx {
        &self.env.ctx
    }

    fn r(&self, t: &str) -> String {
        render(t, &self.vars)
    }

    fn emit_block(&self, block: Value) {
        let line = events::assistant(
            self.ctx(),
            &self.msg_id,
            &self.request_id,
            self.input_tokens,
            block,
        );
        out::lock().event(line);
    }

    fn path(&self, p: &str) -> PathBuf {
        self.env.cwd.join(self.r(p))
    }

    fn play(&mut self, rule: &Rule) -> Ending {
        let args = self.env.args;
        for step in &rule.steps {
            match step {
                Step::Text(t) => self.emit_block(events::text_block(&self.r(t))),
                Step::Write(_) | Step::Append(_) | Step::Bash(_) | Step::Commit(_) => {
                    self.tool(step);
                    self.tool_steps += 1;
                    signals::set_num_turns(self.tool_steps);
                    if args.max_turns == Some(self.tool_steps) {
                        return Ending::MaxTurns {
                            limit: self.tool_steps,
                        };
                    }
                }
                Step::SleepMs(ms) => std::thread::sleep(Duration::from_millis(*ms)),
                Step::Hang(true) => loop {
                    std::thread::sleep(Duration::from_secs(3600))
                },
                Step::Hang(false) => {}
                Step::IgnoreSigterm(on) => signals::ignore_sigterm(*on),
                Step::SpawnGrandchild { pid_file } => self.spawn_grandchild(&self.path(pid_file)),
                Step::RateLimit(rl) => {
                    let resets_at =
                        chrono::Utc::now().timestamp().max(0) as u64 + rl.resets_in_secs;
                    return self.api_failure(events::RATE_LIMITED, rl.retries, Some(resets_at));
                }
                Step::Overloaded(o) => {
                    return self.api_failure(events::OVERLOADED, o.retries, None)
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
                    return Ending::MaxTurns {
                        limit: args.max_turns.unwrap_or(self.tool_steps.max(1)),
                    }
                }
                Step::MaxTurns(false) => {}
            }
        }
        let text = self.r(rule.result.as_deref().unwrap_or("ok"));
        if !text.is_empty() {
            self.emit_block(events::text_block(&text));
        }
        Ending::Success {
            text,
            is_error: rule.is_error.unwrap_or(false),
        }
    }

    fn api_failure(&self, e: events::ApiError, retries: u32, resets_at: Option<u64>) -> Ending {
        let mut o = out::lock();
        for attempt in 1..=retries {
            o.event(events::api_retry(self.ctx(), &e, attempt, retries));
        }
        if let Some(at) = resets_at {
            o.event(events::rate_limit_rejected(self.ctx(), at));
        }
        o.event(events::api_error_message(self.ctx(), &e));
        Ending::Api { error: e }
    }

    fn tool(&mut self, step: &Step) {
        let (name, input) = match step {
            Step::Write(f) => (
                "Write",
                json!({"file_path": self.path(&f.path), "content": self.r(&f.content)}),
            ),
            Step::Append(f) => (
                "Edit",
                json!({"file_path": self.path(&f.path), "old_string": "", "new_string": self.r(&f.content), "replace_all": false}),
            ),
            Step::Bash(c) => (
                "Bash",
                json!({"command": self.r(c), "description": "Run a command"}),
            ),
            Step::Commit(m) => (
                "Bash",
                json!({"command": format!("git add -A && git commit -q -m {}", shell_quote(&self.r(m))),
                       "description": "Commit the changes"}),
            ),
            _ => unreachable!("tool() only gets tool steps"),
        };
        let id = events::prefixed_id("toolu_fake_", 20);
        self.emit_block(events::tool_use_block(&id, name, input.clone()));

        let outcome = if self.env.args.tool_disallowed(name) {
            // What the real CLI answers when --disallowedTools removed the tool.
            ToolOutcome::error(format!(
                "Error: No such tool available: {name}. {name} is disabled for this session, in subagents as well as here."
            ))
        } else {
            match step {
                Step::Write(_) | Step::Append(_) => {
                    let path = PathBuf::from(input["file_path"].as_str().unwrap_or_default());
                    let text = if name == "Write" {
                        &input["content"]
                    } else {
                        &input["new_string"]
                    };
                    file_tool(&path, text.as_str().unwrap_or_default(), name == "Edit")
                }
                _ => self.bash(
                    input["command"].as_str().unwrap_or_default(),
                    matches!(step, Step::Commit(_)),
                ),
            }
        };
        let mut o = out::lock();
        if let Some(before) = outcome.before {
            o.event(before);
        }
        o.event(events::tool_result(
            self.ctx(),
            &id,
            &outcome.content,
            outcome.is_error,
            outcome.tool_use_result,
        ));
        drop(o);
        self.next_message();
        self.input_tokens += 150;
    }

    fn bash(&self, command: &str, is_commit: bool) -> ToolOutcome {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(command).current_dir(&self.env.cwd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Commits must work on machines without a git identity.
        for (var, val) in [
            ("GIT_AUTHOR_NAME", "fake-claude"),
            ("GIT_AUTHOR_EMAIL", "fake-claude@localhost"),
            ("GIT_COMMITTER_NAME", "fake-claude"),
            ("GIT_COMMITTER_EMAIL", "fake-claude@localhost"),
        ] {
            if std::env::var_os(var).is_none() {
                cmd.env(var, val);
            }
        }
        let output = signals::spawn_tool(&mut cmd).and_then(|c| c.wait_with_output());
        signals::tool_done();
        let output = match output {
            Ok(o) => o,
            Err(e) => return ToolOutcome::error(format!("Error: cannot run sh: {e}")),
        };
        let code = output.status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            128 + output.status.signal().unwrap_or(0)
        });
        let stdout = String::from_utf8_lossy(&output.stdout)
            .trim_end_matches('\n')
            .to_string();
        let stderr = String::from_utf8_lossy(&output.stderr)
            .trim_end_matches('\n')
            .to_string();
        let joined = [stdout.as_str(), stderr.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("\n");
        if code != 0 {
            let content = if joined.is_empty() {
                format!("Exit code {code}")
            } else {
                format!("Exit code {code}\n{joined}")
            };
            return ToolOutcome {
                tool_use_result: json!(format!("Error: {content}")),
                content,
                is_error: Some(true),
                before: None,
            };
        }
        let mut result = json!({"stdout": stdout, "stderr": stderr, "interrupted": false, "isImage": false, "noOutputExpected": false});
        let mut before = None;
        if is_commit {
            if let Some((sha, branch)) = head_commit(&self.env.cwd) {
                result["gitOperation"] =
                    json!({"commit": {"sha": sha, "kind": "committed", "branch": branch}});
                before = Some(events::vcs_commit(self.ctx(), &branch));
            }
        }
        ToolOutcome {
            content: if joined.is_empty() {
                "(Bash completed with no output)".into()
            } else {
                joined
            },
            is_error: Some(false),
            tool_use_result: result,
            before,
        }
    }

    fn spawn_grandchild(&self, pid_file: &Path) {
        let mut cmd = Command::new("sleep");
        // Null stdio: a leftover grandchild must not hold the orchestrator's stdout pipe open
        // (the real CLI's tools never inherit its stdout either).
        cmd.arg("3600")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match signals::unblock_in_child(&mut cmd).spawn() {
            Ok(child) => {
                // Write then rename: a poller never sees an empty pid file.
                let tmp = pid_file.with_extension("fake-claude-tmp");
                let res = std::fs::write(&tmp, child.id().to_string())
                    .and_then(|_| std::fs::rename(&tmp, pid_file));
                if let Err(e) = res {
                    eprintln!(
                        "fake-claude: cannot write pid file {}: {e}",
                        pid_file.display()
                    );
                }
                // Not waited for: it must outlive us unless the process group is killed.
                drop(child);
            }
            Err(e) => eprintln!("fake-claude: cannot spawn grandchild: {e}"),
        }
    }
}

/// Write (create/overwrite) or Edit (append) a file, answering like the real tools.
fn file_tool(path: &Path, content: &str, append: bool) -> ToolOutcome {
    let existed = path.exists();
    let res = (|| {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if append {
            use std::io::Write;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?
                .write_all(content.as_bytes())
        } else {
            std::fs::write(path, content)
        }
    })();
    if let Err(e) = res {
        return ToolOutcome::error(format!("Error writing file: {e}"));
    }
    let p = path.display().to_string();
    let (content_msg, result) = if append {
        (
            format!("The file {p} has been updated successfully."),
            json!({"filePath": p, "oldString": "", "newString": content, "originalFile": null,
                   "structuredPatch": [], "userModified": false, "replaceAll": false}),
        )
    } else if existed {
        (
            format!("The file {p} has been updated successfully."),
            json!({"type": "update", "filePath": p, "content": content, "structuredPatch": [],
                   "originalFile": null, "userModified": false}),
        )
    } else {
        (
            format!("File created successfully at: {p} (file state is current in your context — no need to Read it back)"),
            json!({"type": "create", "filePath": p, "content": content, "structuredPatch": [],
                   "originalFile": null, "userModified": false}),
        )
    };
    ToolOutcome {
        content: content_msg,
        is_error: None,
        tool_use_result: result,
        before: None,
    }
}

/// (short sha, branch) of HEAD, for the commit's `vcs_state_changed` event.
fn head_commit(cwd: &Path) -> Option<(String, String)> {
    let mut cmd = Command::new("git");
    cmd.args(["log", "-1", "--format=%h%x00%D"])
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    let out = signals::unblock_in_child(&mut cmd).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (sha, refs) = text.trim_end().split_once('\0')?;
    let branch = refs
        .split(", ")
        .find_map(|r| r.strip_prefix("HEAD -> "))
        .unwrap_or("HEAD")
        .to_string();
    Some((sha.to_string(), branch))
}

/// Single-quotes `s` for `sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

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
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
