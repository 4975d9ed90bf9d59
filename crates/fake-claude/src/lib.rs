//! fake-claude: the scripted test double of the real `claude` CLI (spec: `docs/fake-claude.md`).
//!
//! It accepts the real CLI's headless flags, refuses what the real CLI refuses, prints
//! stream-json events shaped like `tests/fixtures/claude-stream-json/*.jsonl` and exits with
//! the real exit codes. What happens in a turn is chosen by the JSON script named by
//! `FAKE_CLAUDE_SCRIPT`.
//!
//! Layout:
//! - [`cli`]: flag parsing with the real CLI's (commander) error messages.
//! - [`script`]: script file, rule matching, `times` marker files.
//! - [`session`]: session files under `$CLAUDE_CONFIG_DIR/projects/...` (resume, fork).
//! - [`events`]: builders for every event type (init, assistant, user/tool_result, api_retry,
//!   rate_limit_event, result, ...), fields in the fixtures' order.
//! - [`out`]: the stdout sink (line-atomic; output formats).
//! - [`signals`]: SIGTERM/SIGINT via a `sigwait` thread; the Bash tool child registry.
//! - [`play`]: plays a turn's steps; templates. `tools`: the tool steps (files, Bash, git);
//!   `api`: API failures with the CLI's retries, `rate_limit_event`s, the `StructuredOutput`
//!   tool.
//! - [`schema_check`]: the `--json-schema` check (ajv's messages, the keywords cco uses).
//!
//! No async runtime and no arg-parsing crate: benchmarks spawn hundreds of these, so start-up
//! must stay cheap.

mod api;
pub mod cli;
pub mod events;
pub mod out;
pub mod play;
pub mod schema_check;
pub mod script;
pub mod session;
pub mod signals;
mod tools;

use cli::{Args, OutputFormat};
use session::Session;
use std::io::{BufRead, Read};
use std::path::PathBuf;

/// Exits at once, skipping atexit work (used while holding the output lock).
pub fn hard_exit(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; every line we wrote was already flushed.
    unsafe { nix::libc::_exit(code) }
}

const HELP: &str = "Usage: fake-claude [options] [prompt]

The scripted test double of the claude CLI (see docs/fake-claude.md).

Options:
  -p, --print                      print mode (required)
  --output-format <format>         text | json | stream-json
  --input-format <format>          text | stream-json
  --verbose
  -r, --resume <id>                resume a session
  -c, --continue                   resume the latest session of this directory
  --session-id <uuid>              fix the session id
  --fork-session                   with --resume/--continue: new id, same history
  --model <model>
  --permission-mode <mode>
  --dangerously-skip-permissions
  --allowedTools <tools...>
  --disallowedTools <tools...>
  --append-system-prompt <prompt>
  --max-turns <turns>
  --max-budget-usd <amount>
{{json_schema}}  -v, --version
  -h, --help";

/// The `--help` line of `--json-schema` (absent when playing an older CLI).
const JSON_SCHEMA_HELP: &str =
    "  --json-schema <schema>           JSON Schema for structured output validation\n";

/// Set to `1` to play a CLI older than `--json-schema` (2.0.x): `--help` does not list it
/// and the flag is an unknown option.
pub const NO_JSON_SCHEMA_ENV: &str = "FAKE_CLAUDE_NO_JSON_SCHEMA";

fn legacy_cli() -> bool {
    std::env::var(NO_JSON_SCHEMA_ENV).is_ok_and(|v| v == "1")
}

fn fail(msg: &str) -> i32 {
    eprintln!("{msg}");
    1
}

/// `opus` -> `claude-opus-5-5` (the fixtures' model); full ids pass through.
fn resolve_model(m: Option<&str>) -> String {
    let env_model = std::env::var("ANTHROPIC_MODEL").ok();
    match m.or(env_model.as_deref()) {
        None | Some("") => "claude-opus-5-5".into(),
        Some(alias @ ("opus" | "sonnet" | "haiku")) => format!("claude-{alias}-5-5"),
        Some(full) => full.into(),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { nix::libc::geteuid() == 0 }
}

/// The whole program; returns the exit code.
pub fn run() -> i32 {
    // Before any thread exists, so every thread inherits the mask (see `signals`).
    signals::block();
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) => return fail(&msg),
    };
    if args.help {
        let schema_line = if legacy_cli() { "" } else { JSON_SCHEMA_HELP };
        println!("{}", HELP.replace("{{json_schema}}", schema_line));
        return 0;
    }
    if args.json_schema.is_some() && legacy_cli() {
        return fail("error: unknown option '--json-schema'");
    }
    let schema = match args
        .json_schema
        .as_deref()
        .map(serde_json::from_str::<serde_json::Value>)
    {
        None => None,
        Some(Ok(schema)) => {
            if let Err(e) = schema_check::check_supported(&schema) {
                eprintln!("fake-claude: --json-schema: {e}");
                return 2;
            }
            Some(schema)
        }
        Some(Err(e)) => return fail(&format!("Error: Invalid JSON schema: {e}")),
    };
    if args.version {
        println!("{} (Claude Code)", events::VERSION);
        return 0;
    }
    if std::env::var_os("CLAUDECODE").is_some_and(|v| !v.is_empty()) {
        return fail(
            "Error: Claude Code cannot be launched inside another Claude Code session.\n\
             Nested sessions share runtime resources and will crash all active sessions.\n\
             To bypass this check, unset the CLAUDECODE environment variable.",
        );
    }
    if !args.print {
        return fail("fake-claude: only print mode is supported: pass -p/--print");
    }
    if args.output_format == OutputFormat::StreamJson && !args.verbose {
        return fail("Error: When using --print, --output-format=stream-json requires --verbose");
    }
    if args.input_stream_json && args.output_format != OutputFormat::StreamJson {
        return fail("Error: --input-format=stream-json requires output-format=stream-json.");
    }
    if args.bypass_permissions() && is_root() && std::env::var("IS_SANDBOX").as_deref() != Ok("1") {
        return fail(
            "--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons",
        );
    }
    if let Some(id) = &args.session_id {
        if uuid::Uuid::parse_str(id).is_err() {
            return fail("Error: Invalid session ID. Must be a valid UUID.");
        }
        if (args.resume.is_some() || args.continue_session) && !args.fork_session {
            return fail(
                "Error: --session-id can only be used with --continue or --resume if --fork-session is also specified.",
            );
        }
    }

    let script = match std::env::var_os("FAKE_CLAUDE_SCRIPT").filter(|p| !p.is_empty()) {
        None => script::Script::default(),
        Some(path) => match script::Script::load(path.as_ref()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!(
                    "fake-claude: invalid script {}: {e}",
                    PathBuf::from(path).display()
                );
                return 2;
            }
        },
    };

    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let cwd_str = cwd.display().to_string();
    let config = session::config_dir();
    let project = session::project_dir(&config, &cwd_str);
    let mut session = match open_session(&args, &project) {
        Ok(s) => s,
        Err(msg) => return fail(&msg),
    };

    let state_dir = std::env::var_os("FAKE_CLAUDE_STATE_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| config.join("fake-claude-state"));
    let ctx = events::Ctx {
        session_id: session.id.clone(),
        cwd: cwd_str,
        model: resolve_model(args.model.as_deref()),
        permission_mode: if args.skip_permissions {
            "bypassPermissions".into()
        } else {
            args.permission_mode
                .clone()
                .unwrap_or_else(|| "default".into())
        },
        tools: events::tools(schema.is_some())
            .into_iter()
            .filter(|t| !args.tool_disallowed(t))
            .map(str::to_string)
            .collect(),
        api_key_source: if std::env::var_os("ANTHROPIC_API_KEY").is_some() {
            "ANTHROPIC_API_KEY"
        } else {
            "none"
        }
        .into(),
    };
    let env = play::Env {
        args: &args,
        script: &script,
        state_dir,
        cwd,
        ctx,
        schema,
    };
    out::init(args.output_format, args.verbose);
    signals::start();

    let mut cost = 0.0;
    if args.input_stream_json {
        // One turn per user line; turn errors don't end the process, EOF does (exit 0).
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            let msg: serde_json::Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(e) => return fail(&format!("Error parsing streaming input line: {line}: {e}")),
            };
            if msg["type"] != "user" {
                continue;
            }
            let prompt = user_text(&msg["message"]["content"]);
            play::turn(&env, &mut session, &prompt, &mut cost);
        }
        return 0;
    }

    let prompt = match &args.prompt {
        Some(p) => p.clone(),
        None => {
            let mut s = String::new();
            let _ = std::io::stdin().read_to_string(&mut s);
            s.trim_end().to_string()
        }
    };
    if prompt.is_empty() {
        return fail("Error: Input must be provided either through stdin or as a prompt argument when using --print");
    }
    // Exit 1 for any is_error result (API failure, max turns, scripted error), like the real CLI.
    i32::from(play::turn(&env, &mut session, &prompt, &mut cost).is_error())
}

/// Resolves `--resume` / `--continue` / `--fork-session` / `--session-id` to a session.
fn open_session(args: &Args, project: &std::path::Path) -> Result<Session, String> {
    let existing = if let Some(id) = &args.resume {
        Some(
            Session::resume(project, id)
                .ok_or_else(|| format!("No conversation found with session ID: {id}"))?,
        )
    } else if args.continue_session {
        Some(Session::latest(project).ok_or("No conversation found to continue")?)
    } else {
        None
    };
    let new_id = || args.session_id.clone().unwrap_or_else(events::uuid);
    match existing {
        Some(s) if args.fork_session => s
            .fork(project, &new_id())
            .map_err(|e| format!("fake-claude: cannot fork session: {e}")),
        Some(s) => Ok(s),
        None => Ok(Session::open(project, &new_id())),
    }
}

/// The text of a stream-json user message: a string or the text blocks joined.
fn user_text(content: &serde_json::Value) -> String {
    match content {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}
