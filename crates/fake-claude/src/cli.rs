//! Hand-rolled flag parser that mimics the real CLI's (commander.js) behaviour and messages:
//! unknown flags and bad values fail with `error: ...` and exit 1, variadic tool lists eat
//! values up to the next flag, `--flag=value` works for long options.

/// `--output-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
    StreamJson,
}

/// Everything fake-claude reads from its command line.
#[derive(Debug, Clone)]
pub struct Args {
    pub print: bool,
    pub prompt: Option<String>,
    pub output_format: OutputFormat,
    pub verbose: bool,
    pub input_stream_json: bool,
    pub resume: Option<String>,
    pub continue_session: bool,
    pub session_id: Option<String>,
    pub model: Option<String>,
    pub permission_mode: Option<String>,
    pub skip_permissions: bool,
    pub allowed_tools: Vec<String>,
    pub disallowed_tools: Vec<String>,
    pub append_system_prompt: Option<String>,
    pub system_prompt: Option<String>,
    pub max_turns: Option<u32>,
    pub max_budget_usd: Option<f64>,
    /// `--json-schema <schema>` (the JSON text).
    pub json_schema: Option<String>,
    pub fork_session: bool,
    pub version: bool,
    pub help: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            print: false,
            prompt: None,
            output_format: OutputFormat::Text,
            verbose: false,
            input_stream_json: false,
            resume: None,
            continue_session: false,
            session_id: None,
            model: None,
            permission_mode: None,
            skip_permissions: false,
            allowed_tools: Vec::new(),
            disallowed_tools: Vec::new(),
            append_system_prompt: None,
            system_prompt: None,
            max_turns: None,
            max_budget_usd: None,
            json_schema: None,
            fork_session: false,
            version: false,
            help: false,
        }
    }
}

impl Args {
    /// True when permissions are bypassed (either spelling).
    pub fn bypass_permissions(&self) -> bool {
        self.skip_permissions || self.permission_mode.as_deref() == Some("bypassPermissions")
    }

    /// True when a tool is disabled outright by `--disallowedTools` (a bare tool name;
    /// patterns like `Bash(git:*)` only restrict, they do not remove the tool).
    pub fn tool_disallowed(&self, tool: &str) -> bool {
        self.disallowed_tools.iter().any(|t| t == tool)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Bool,
    /// One value; the placeholder is used in commander-style error messages.
    Value(&'static str),
    /// One or more values up to the next flag.
    Variadic(&'static str),
}

/// (names, kind). The real CLI's flags that headless use can meet; anything else is unknown.
const FLAGS: &[(&[&str], Kind)] = &[
    (&["-p", "--print"], Kind::Bool),
    (&["--verbose"], Kind::Bool),
    (&["-d", "--debug"], Kind::Bool),
    (&["--output-format"], Kind::Value("<format>")),
    (&["--input-format"], Kind::Value("<format>")),
    (&["--include-partial-messages"], Kind::Bool),
    (&["--replay-user-messages"], Kind::Bool),
    (&["-r", "--resume"], Kind::Value("[value]")),
    (&["-c", "--continue"], Kind::Bool),
    (&["--session-id"], Kind::Value("<uuid>")),
    (&["--fork-session"], Kind::Bool),
    (&["--model"], Kind::Value("<model>")),
    (&["--fallback-model"], Kind::Value("<model>")),
    (&["--permission-mode"], Kind::Value("<mode>")),
    (&["--dangerously-skip-permissions"], Kind::Bool),
    (&["--allow-dangerously-skip-permissions"], Kind::Bool),
    (
        &["--allowedTools", "--allowed-tools"],
        Kind::Variadic("<tools...>"),
    ),
    (
        &["--disallowedTools", "--disallowed-tools"],
        Kind::Variadic("<tools...>"),
    ),
    (&["--tools"], Kind::Variadic("<tools...>")),
    (&["--append-system-prompt"], Kind::Value("<prompt>")),
    (&["--system-prompt"], Kind::Value("<prompt>")),
    (&["--max-turns"], Kind::Value("<turns>")),
    (&["--max-budget-usd"], Kind::Value("<amount>")),
    (&["--json-schema"], Kind::Value("<schema>")),
    (&["--mcp-config"], Kind::Variadic("<configs...>")),
    (&["--strict-mcp-config"], Kind::Bool),
    (&["--settings"], Kind::Value("<file-or-json>")),
    (&["--setting-sources"], Kind::Value("<sources>")),
    (&["--add-dir"], Kind::Variadic("<directories...>")),
    (&["-v", "--version"], Kind::Bool),
    (&["-h", "--help"], Kind::Bool),
];

fn lookup(name: &str) -> Option<(&'static str, Kind)> {
    FLAGS
        .iter()
        .find(|(names, _)| names.contains(&name))
        .map(|(names, kind)| (*names.last().unwrap(), *kind))
}

fn choice(flag: &str, ph: &str, value: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "error: option '{flag} {ph}' argument '{value}' is invalid. Allowed choices are {}.",
            allowed.join(", ")
        ))
    }
}

/// Parses the arguments after the program name. `Err` holds the stderr message (exit 1).
pub fn parse<I: IntoIterator<Item = String>>(argv: I) -> Result<Args, String> {
    let argv: Vec<String> = argv.into_iter().collect();
    let mut a = Args::default();
    let mut positionals = Vec::new();
    let mut i = 0;
    let mut only_positionals = false;
    while i < argv.len() {
        let arg = &argv[i];
        i += 1;
        if only_positionals || !arg.starts_with('-') || arg == "-" {
            positionals.push(arg.clone());
            continue;
        }
        if arg == "--" {
            only_positionals = true;
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let Some((long, kind)) = lookup(name) else {
            return Err(format!("error: unknown option '{name}'"));
        };
        let mut values = Vec::new();
        match kind {
            Kind::Bool => {
                if inline.is_some() {
                    return Err(format!("error: option '{long}' does not take an argument"));
                }
            }
            Kind::Value(ph) => match inline {
                Some(v) => values.push(v),
                None if i < argv.len() && !argv[i].starts_with('-') => {
                    values.push(argv[i].clone());
                    i += 1;
                }
                None => return Err(format!("error: option '{long} {ph}' argument missing")),
            },
            Kind::Variadic(ph) => {
                values.extend(inline);
                while i < argv.len() && !argv[i].starts_with('-') {
                    values.push(argv[i].clone());
                    i += 1;
                }
                if values.is_empty() {
                    return Err(format!("error: option '{long} {ph}' argument missing"));
                }
            }
        }
        let value = values.first().cloned().unwrap_or_default();
        match long {
            "--print" => a.print = true,
            "--verbose" => a.verbose = true,
            "--output-format" => {
                choice(long, "<format>", &value, &["text", "json", "stream-json"])?;
                a.output_format = match value.as_str() {
                    "json" => OutputFormat::Json,
                    "stream-json" => OutputFormat::StreamJson,
                    _ => OutputFormat::Text,
                };
            }
            "--input-format" => {
                choice(long, "<format>", &value, &["text", "stream-json"])?;
                a.input_stream_json = value == "stream-json";
            }
            "--resume" => a.resume = Some(value),
            "--continue" => a.continue_session = true,
            "--session-id" => a.session_id = Some(value),
            "--fork-session" => a.fork_session = true,
            "--model" => a.model = Some(value),
            "--permission-mode" => {
                choice(
                    long,
                    "<mode>",
                    &value,
                    &[
                        "acceptEdits",
                        "bypassPermissions",
                        "default",
                        "dontAsk",
                        "plan",
                    ],
                )?;
                a.permission_mode = Some(value);
            }
            "--dangerously-skip-permissions" => a.skip_permissions = true,
            "--allowed-tools" => a.allowed_tools.extend(split_tools(&values)),
            "--disallowed-tools" => a.disallowed_tools.extend(split_tools(&values)),
            "--append-system-prompt" => a.append_system_prompt = Some(value),
            "--system-prompt" => a.system_prompt = Some(value),
            "--max-turns" => {
                a.max_turns = Some(value.parse().map_err(|_| {
                    format!("error: option '--max-turns <turns>' argument '{value}' is invalid.")
                })?)
            }
            "--max-budget-usd" => {
                a.max_budget_usd = Some(value.parse().map_err(|_| {
                    format!(
                        "error: option '--max-budget-usd <amount>' argument '{value}' is invalid."
                    )
                })?)
            }
            "--json-schema" => a.json_schema = Some(value),
            "--version" => a.version = true,
            "--help" => a.help = true,
            // Accepted for compatibility, no effect on the fake.
            _ => {}
        }
    }
    if positionals.len() > 1 {
        return Err(format!(
            "error: too many arguments. Expected 1 argument but got {}.",
            positionals.len()
        ));
    }
    a.prompt = positionals.pop();
    Ok(a)
}

/// `--allowedTools "Bash(git:*) Edit" Write,Read` -> [Bash(git:*), Edit, Write, Read].
/// Splits on commas and spaces outside parentheses.
fn split_tools(values: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for v in values {
        let mut depth = 0i32;
        let mut cur = String::new();
        for c in v.chars() {
            match c {
                '(' => {
                    depth += 1;
                    cur.push(c)
                }
                ')' => {
                    depth -= 1;
                    cur.push(c)
                }
                ',' | ' ' if depth <= 0 => {
                    if !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                    }
                }
                _ => cur.push(c),
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn typical_headless_invocation() {
        let a = p(&[
            "-p",
            "do it",
            "--output-format",
            "stream-json",
            "--verbose",
            "--allowedTools",
            "Bash(git commit:*) Edit",
            "Write",
            "--model=opus",
            "--max-turns",
            "5",
        ])
        .unwrap();
        assert!(a.print && a.verbose);
        assert_eq!(a.prompt.as_deref(), Some("do it"));
        assert_eq!(a.output_format, OutputFormat::StreamJson);
        assert_eq!(a.allowed_tools, ["Bash(git commit:*)", "Edit", "Write"]);
        assert_eq!(a.model.as_deref(), Some("opus"));
        assert_eq!(a.max_turns, Some(5));
    }

    #[test]
    fn errors_like_commander() {
        assert_eq!(p(&["--x"]).unwrap_err(), "error: unknown option '--x'");
        assert_eq!(
            p(&["-p", "--model"]).unwrap_err(),
            "error: option '--model <model>' argument missing"
        );
        assert!(p(&["--output-format", "xml"])
            .unwrap_err()
            .contains("Allowed choices are text, json, stream-json"));
        assert!(p(&["a", "b"])
            .unwrap_err()
            .starts_with("error: too many arguments"));
    }

    #[test]
    fn double_dash_protects_a_prompt_starting_with_dash() {
        let a = p(&["-p", "--verbose", "--", "- Task t1"]).unwrap();
        assert_eq!(a.prompt.as_deref(), Some("- Task t1"));
        assert!(p(&["-p", "- Task t1"]).is_err());
    }

    #[test]
    fn variadic_eats_until_next_flag() {
        let a = p(&["--disallowedTools", "Bash", "Write", "-p", "x"]).unwrap();
        assert_eq!(a.disallowed_tools, ["Bash", "Write"]);
        assert_eq!(a.prompt.as_deref(), Some("x"));
        assert!(a.tool_disallowed("Bash"));
    }
}
