//! [`SessionSpec`]: everything needed to start one headless `claude` run — command line,
//! environment, limits and the optional transcript.
//!
//! Secrets: `env` values (API keys…) never appear in `Debug` output or in logs.

use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

/// Applied to every raw stdout line before it is written to the transcript.
pub type Redactor = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Called with every complete raw stdout line, in order, before it is parsed (a cluster node
/// forwards the lines to the head, which parses and judges them as for a local process).
pub type LineTap = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// Default SIGTERM → SIGKILL grace.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);
/// Default cap on one stdout line.
pub const DEFAULT_MAX_LINE_BYTES: usize = 8 * 1024 * 1024;
/// Default time a process may keep running after its `result` before it is terminated.
pub const DEFAULT_LINGER_AFTER_RESULT: Duration = Duration::from_secs(30);

/// Variables always removed from the inherited environment (`CLAUDECODE` makes the CLI
/// refuse to run "nested").
pub const ALWAYS_REMOVED_ENV: &[&str] = &["CLAUDECODE"];

/// The longest prompt passed on the command line (bytes); a longer one goes to stdin, well
/// under the kernel's 128 KiB limit on one argument.
pub const PROMPT_ARG_MAX: usize = 100 * 1024;

/// How to run one `claude -p` process.
#[derive(Clone)]
pub struct SessionSpec {
    pub binary: PathBuf,
    pub prompt: String,
    pub cwd: PathBuf,
    /// `CLAUDE_CONFIG_DIR` for this agent (created if missing).
    pub config_dir: PathBuf,
    /// Name used in logs (e.g. the agent id).
    pub label: String,
    pub model: Option<String>,
    /// `--resume <id>` (takes precedence over `new_session_id`).
    pub resume_session_id: Option<String>,
    /// `--session-id <uuid>` (ignored when resuming).
    pub new_session_id: Option<String>,
    /// With `resume_session_id`: `--fork-session`, continuing the history in a new session
    /// (`new_session_id` when set). Lets several turns start from one session in parallel.
    pub fork_session: bool,
    /// `--permission-mode X`; `bypassPermissions` as root also sets `IS_SANDBOX=1`.
    pub permission_mode: Option<String>,
    pub allowed_tools: Vec<String>,
    pub disallowed_tools: Vec<String>,
    pub append_system_prompt: Option<String>,
    pub max_turns: Option<u32>,
    pub max_budget_usd: Option<f64>,
    /// `--json-schema <schema>`: the CLI makes the model answer through its `StructuredOutput`
    /// tool, checks the answer against this JSON Schema and reports it as the `result`
    /// event's `structured_output` ([`crate::SessionOutcome::structured_output`]). Only for
    /// CLIs that support it (see [`crate::probe_cli`]).
    pub json_schema: Option<String>,
    /// Extra environment for the child (applied last; may hold secrets: never printed).
    pub env: Vec<(String, String)>,
    /// Removed from the inherited environment; `CLAUDECODE` is always removed.
    pub env_remove: Vec<String>,
    /// Kill the run after this long in total.
    pub wall_timeout: Option<Duration>,
    /// Kill the run when no stdout line arrived for this long.
    pub idle_timeout: Option<Duration>,
    /// SIGTERM to the group → this grace → SIGKILL.
    pub kill_grace: Duration,
    /// Longer stdout lines are reported as malformed and skipped without being buffered.
    pub max_line_bytes: usize,
    /// Terminate a process still running this long after its `result` (the outcome stays the
    /// result's). `None`: wait for it indefinitely (timeouts still apply).
    pub linger_after_result: Option<Duration>,
    /// Run claude under this guard so it stops when this process dies (see
    /// [`crate::guard`]). `None`: claude is started directly (and outlives a killed cco).
    pub guard: Option<crate::guard::GuardSpec>,
    /// Append every raw stdout line (redacted by `redact`) to this JSONL file.
    pub transcript: Option<PathBuf>,
    pub redact: Option<Redactor>,
    /// Every complete raw stdout line (see [`LineTap`]).
    pub on_line: Option<LineTap>,
}

impl SessionSpec {
    pub fn new(
        binary: impl Into<PathBuf>,
        prompt: impl Into<String>,
        cwd: impl Into<PathBuf>,
        config_dir: impl Into<PathBuf>,
    ) -> Self {
        SessionSpec {
            binary: binary.into(),
            prompt: prompt.into(),
            cwd: cwd.into(),
            config_dir: config_dir.into(),
            label: String::new(),
            model: None,
            resume_session_id: None,
            new_session_id: None,
            fork_session: false,
            permission_mode: None,
            allowed_tools: Vec::new(),
            disallowed_tools: Vec::new(),
            append_system_prompt: None,
            max_turns: None,
            max_budget_usd: None,
            json_schema: None,
            env: Vec::new(),
            env_remove: Vec::new(),
            wall_timeout: None,
            idle_timeout: None,
            kill_grace: DEFAULT_KILL_GRACE,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            linger_after_result: Some(DEFAULT_LINGER_AFTER_RESULT),
            guard: None,
            transcript: None,
            redact: None,
            on_line: None,
        }
    }

    /// Whether the prompt goes to the CLI's standard input instead of its command line: a
    /// single argument longer than the kernel's limit (`MAX_ARG_STRLEN`, 128 KiB on Linux)
    /// fails the spawn with `E2BIG` (a long `PROJECT_DIRECTION.md` in a planner's prompt, a
    /// big review). The CLI reads its prompt from stdin when `-p` has none.
    pub fn prompt_on_stdin(&self) -> bool {
        self.prompt.len() > PROMPT_ARG_MAX
    }

    /// The arguments after the binary name.
    ///
    /// `-p <prompt>` comes first and the variadic tool lists last, so a tool list can never
    /// swallow the prompt. A prompt (or system prompt) starting with `-` gets a leading space
    /// so the CLI's option parser cannot mistake it for a flag.
    pub fn command_args(&self) -> Vec<String> {
        let mut args = vec!["-p".to_owned()];
        if !self.prompt_on_stdin() {
            args.push(not_a_flag(&self.prompt));
        }
        args.extend([
            "--output-format".to_owned(),
            "stream-json".to_owned(),
            "--verbose".to_owned(),
        ]);
        if let Some(id) = &self.resume_session_id {
            args.extend(["--resume".to_owned(), id.clone()]);
            if self.fork_session {
                // A new session carrying the resumed one's history; its id may be fixed up front.
                args.push("--fork-session".to_owned());
                if let Some(new_id) = &self.new_session_id {
                    args.extend(["--session-id".to_owned(), new_id.clone()]);
                }
            }
        } else if let Some(id) = &self.new_session_id {
            args.extend(["--session-id".to_owned(), id.clone()]);
        }
        if let Some(model) = &self.model {
            args.extend(["--model".to_owned(), model.clone()]);
        }
        if let Some(mode) = &self.permission_mode {
            args.extend(["--permission-mode".to_owned(), mode.clone()]);
        }
        if let Some(sp) = &self.append_system_prompt {
            args.extend(["--append-system-prompt".to_owned(), not_a_flag(sp)]);
        }
        if let Some(n) = self.max_turns {
            args.extend(["--max-turns".to_owned(), n.to_string()]);
        }
        if let Some(usd) = self.max_budget_usd {
            args.extend(["--max-budget-usd".to_owned(), usd.to_string()]);
        }
        if let Some(schema) = &self.json_schema {
            args.extend(["--json-schema".to_owned(), not_a_flag(schema)]);
        }
        if !self.allowed_tools.is_empty() {
            args.push("--allowedTools".to_owned());
            args.extend(self.allowed_tools.iter().cloned());
        }
        if !self.disallowed_tools.is_empty() {
            args.push("--disallowedTools".to_owned());
            args.extend(self.disallowed_tools.iter().cloned());
        }
        args
    }

    /// The variables this spec sets (name, value) in order; later entries win. Holds secrets:
    /// do not log the values.
    pub fn command_env(&self) -> Vec<(String, String)> {
        let mut env = vec![(
            "CLAUDE_CONFIG_DIR".to_owned(),
            self.config_dir.to_string_lossy().into_owned(),
        )];
        if self.permission_mode.as_deref() == Some("bypassPermissions") && crate::unix::is_root() {
            env.push(("IS_SANDBOX".to_owned(), "1".to_owned()));
        }
        env.extend(self.env.iter().cloned());
        env
    }

    /// The variables removed from the inherited environment.
    pub fn command_env_remove(&self) -> Vec<String> {
        let mut names: Vec<String> = ALWAYS_REMOVED_ENV.iter().map(|s| (*s).to_owned()).collect();
        for name in &self.env_remove {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        // A variable the spec sets explicitly is not removed.
        let set = self.command_env();
        names.retain(|n| !set.iter().any(|(k, _)| k == n));
        names
    }

    /// The command [`crate::ClaudeSession::spawn`] runs: own process group, stdin null (or
    /// a pipe that gets the prompt, see [`SessionSpec::prompt_on_stdin`]),
    /// stdout/stderr piped, no kill-on-drop (the driver kills the whole group itself). With
    /// a [`SessionSpec::guard`] it is the guard with claude's command line after `--` (the
    /// driver adds the `--parent-fd` of its pipe when it spawns).
    pub fn build_command(&self) -> tokio::process::Command {
        self.command(None)
    }

    pub(crate) fn command(&self, parent_fd: Option<std::os::fd::RawFd>) -> tokio::process::Command {
        let mut cmd = match &self.guard {
            None => tokio::process::Command::new(&self.binary),
            Some(guard) => {
                let mut cmd = tokio::process::Command::new(&guard.program);
                cmd.args(guard.guard_args(self.kill_grace, parent_fd))
                    .arg(&self.binary);
                cmd
            }
        };
        let stdin = if self.prompt_on_stdin() {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        cmd.args(self.command_args())
            .current_dir(&self.cwd)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false)
            .process_group(0);
        for name in self.command_env_remove() {
            cmd.env_remove(name);
        }
        for (k, v) in self.command_env() {
            cmd.env(k, v);
        }
        cmd
    }
}

fn not_a_flag(s: &str) -> String {
    if s.starts_with('-') {
        format!(" {s}")
    } else {
        s.to_owned()
    }
}

/// A short, single-line preview of a long text for logs.
fn preview(s: &str) -> String {
    const MAX: usize = 60;
    let mut out: String = s
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

impl fmt::Debug for SessionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Redacted<'a>(&'a [(String, String)]);
        impl fmt::Debug for Redacted<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.iter().map(|(k, _)| (k, "<redacted>")))
                    .finish()
            }
        }
        f.debug_struct("SessionSpec")
            .field("binary", &self.binary)
            .field("label", &self.label)
            .field(
                "prompt",
                &format_args!("{:?} ({} bytes)", preview(&self.prompt), self.prompt.len()),
            )
            .field("cwd", &self.cwd)
            .field("config_dir", &self.config_dir)
            .field("model", &self.model)
            .field("resume_session_id", &self.resume_session_id)
            .field("new_session_id", &self.new_session_id)
            .field("permission_mode", &self.permission_mode)
            .field("allowed_tools", &self.allowed_tools)
            .field("disallowed_tools", &self.disallowed_tools)
            .field(
                "append_system_prompt",
                &self.append_system_prompt.as_deref().map(preview),
            )
            .field("max_turns", &self.max_turns)
            .field("max_budget_usd", &self.max_budget_usd)
            .field("json_schema", &self.json_schema.as_deref().map(preview))
            .field("env", &Redacted(&self.env))
            .field("env_remove", &self.env_remove)
            .field("wall_timeout", &self.wall_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("kill_grace", &self.kill_grace)
            .field("max_line_bytes", &self.max_line_bytes)
            .field("linger_after_result", &self.linger_after_result)
            .field("guard", &self.guard)
            .field("transcript", &self.transcript)
            .field("redact", &self.redact.as_ref().map(|_| "<fn>"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn spec() -> SessionSpec {
        SessionSpec::new("/bin/claude", "do the thing", "/tmp", "/tmp/cfg")
    }

    #[test]
    fn fork_resumes_into_a_new_fixed_session() {
        let mut s = spec();
        s.resume_session_id = Some("parent".into());
        s.new_session_id = Some("child".into());
        s.fork_session = true;
        let args = s.command_args();
        assert_eq!(
            &args[5..],
            [
                "--resume",
                "parent",
                "--fork-session",
                "--session-id",
                "child"
            ]
        );
    }

    #[test]
    fn args_minimal_and_full() {
        assert_eq!(
            spec().command_args(),
            [
                "-p",
                "do the thing",
                "--output-format",
                "stream-json",
                "--verbose"
            ]
        );
        let mut s = spec();
        s.prompt = "--help me".into();
        s.resume_session_id = Some("abc".into());
        s.new_session_id = Some("ignored".into());
        s.model = Some("opus".into());
        s.permission_mode = Some("acceptEdits".into());
        s.append_system_prompt = Some("be brief".into());
        s.max_turns = Some(7);
        s.max_budget_usd = Some(1.5);
        s.json_schema = Some(r#"{"type":"object"}"#.into());
        s.allowed_tools = vec!["Read".into(), "Bash(git log:*)".into()];
        s.disallowed_tools = vec!["WebFetch".into()];
        let args = s.command_args();
        assert_eq!(
            args,
            [
                "-p",
                " --help me",
                "--output-format",
                "stream-json",
                "--verbose",
                "--resume",
                "abc",
                "--model",
                "opus",
                "--permission-mode",
                "acceptEdits",
                "--append-system-prompt",
                "be brief",
                "--max-turns",
                "7",
                "--max-budget-usd",
                "1.5",
                "--json-schema",
                r#"{"type":"object"}"#,
                "--allowedTools",
                "Read",
                "Bash(git log:*)",
                "--disallowedTools",
                "WebFetch"
            ]
        );
        let mut s = spec();
        s.new_session_id = Some("0000-1111".into());
        assert!(s
            .command_args()
            .windows(2)
            .any(|w| w == ["--session-id", "0000-1111"]));
    }

    #[test]
    fn command_env_removes_claudecode_and_sets_config_dir() {
        let mut s = spec();
        s.env = vec![("ANTHROPIC_API_KEY".into(), "sk-secret".into())];
        s.env_remove = vec!["OPENAI_API_KEY".into()];
        let cmd = s.build_command();
        let envs: Vec<(&OsStr, Option<&OsStr>)> = cmd.as_std().get_envs().collect();
        let get = |k: &str| {
            envs.iter()
                .find(|(name, _)| *name == OsStr::new(k))
                .map(|(_, v)| *v)
        };
        assert_eq!(get("CLAUDECODE"), Some(None), "CLAUDECODE is removed");
        assert_eq!(get("OPENAI_API_KEY"), Some(None));
        assert_eq!(get("CLAUDE_CONFIG_DIR"), Some(Some(OsStr::new("/tmp/cfg"))));
        assert_eq!(
            get("ANTHROPIC_API_KEY"),
            Some(Some(OsStr::new("sk-secret")))
        );
        assert_eq!(
            cmd.as_std().get_current_dir(),
            Some(std::path::Path::new("/tmp"))
        );
        assert_eq!(cmd.as_std().get_args().count(), 5);
    }

    #[test]
    fn is_sandbox_only_for_root_bypass() {
        let mut s = spec();
        s.permission_mode = Some("bypassPermissions".into());
        let has = s
            .command_env()
            .iter()
            .any(|(k, v)| k == "IS_SANDBOX" && v == "1");
        assert_eq!(has, crate::unix::is_root());
        s.permission_mode = Some("acceptEdits".into());
        assert!(!s.command_env().iter().any(|(k, _)| k == "IS_SANDBOX"));
    }

    #[test]
    fn debug_redacts_env_values() {
        let mut s = spec();
        s.env = vec![("ANTHROPIC_API_KEY".into(), "sk-ant-very-secret".into())];
        s.redact = Some(Arc::new(|l: &str| l.replace("sk", "**")));
        let text = format!("{s:?} {s:#?}");
        assert!(!text.contains("very-secret"), "{text}");
        assert!(text.contains("ANTHROPIC_API_KEY"));
        assert!(text.contains("<redacted>"));
    }
}
