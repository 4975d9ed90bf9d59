//! The tool steps (`write`, `append`, `bash`, `commit`) and `spawn_grandchild`: they really
//! touch the worktree and answer like the real tools.

use crate::events;
use crate::out;
use crate::play::Player;
use crate::script::Step;
use crate::signals;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A tool call's outcome: (content, is_error field, tool_use_result, extra event before it).
pub(crate) struct ToolOutcome {
    content: String,
    is_error: Option<bool>,
    tool_use_result: Value,
    before: Option<String>,
}

impl ToolOutcome {
    pub(crate) fn error(msg: String) -> ToolOutcome {
        ToolOutcome {
            content: format!("<tool_use_error>{msg}</tool_use_error>"),
            is_error: Some(true),
            tool_use_result: json!(msg),
            before: None,
        }
    }
}
impl Player<'_> {
    pub(crate) fn tool(&mut self, step: &Step) {
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

    pub(crate) fn spawn_grandchild(&self, pid_file: &Path) {
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
