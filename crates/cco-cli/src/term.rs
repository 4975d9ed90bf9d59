//! What the binary writes for people: colour only where it belongs, the stderr log level, and
//! whether a person is there to answer a question.
//!
//! Colour follows the common conventions, as decided by `anstream` (the crate clap uses for
//! the same job): `NO_COLOR` turns it off, `CLICOLOR_FORCE` on, and otherwise only a terminal
//! gets ANSI codes, so a log redirected to a file or a pipe is plain text.

use std::io::IsTerminal;
use std::path::Path;

use anstyle::{AnsiColor, Style};
use tracing_subscriber::EnvFilter;

use crate::cli::OutputArgs;

/// True when stderr should carry ANSI colour codes.
pub fn stderr_colour() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
}

/// True when stdout should carry ANSI colour codes.
pub fn stdout_colour() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
}

/// True when a person can answer questions: standard input and standard error (where the
/// questions are drawn) are terminals.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The default stderr filter: warnings, and nothing else unless asked for. cco's own one-line
/// progress (`cco: run ... — logs in ...`, stop messages) is printed directly, not traced.
pub fn default_filter(args: &OutputArgs) -> &'static str {
    match (args.quiet, args.verbose) {
        (true, _) | (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    }
}

/// Installs the binary's tracing subscriber (the library never installs one): stderr, above
/// the live block while one is on screen; ANSI colour only as [`stderr_colour`] says.
pub fn init_tracing(args: &OutputArgs) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter(args)));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::live::StderrWriter)
        .with_ansi(stderr_colour())
        .with_target(false)
        .try_init();
}

/// `text` in `style` when `colour`, else as is.
pub fn paint(text: &str, style: Style, colour: bool) -> String {
    if colour {
        format!("{}{text}{}", style.render(), style.render_reset())
    } else {
        text.to_string()
    }
}

pub fn warning_style() -> Style {
    Style::new().fg_color(Some(AnsiColor::Yellow.into())).bold()
}

pub fn ok_style() -> Style {
    Style::new().fg_color(Some(AnsiColor::Green.into())).bold()
}

pub fn heading_style() -> Style {
    Style::new().bold()
}

/// Prints a warning line on stderr (`warning:` in yellow on a terminal).
pub fn warn(text: &str) {
    eprintln!(
        "{} {text}",
        paint("warning:", warning_style(), stderr_colour())
    );
}

/// What `cco` alone prints on a terminal.
pub const FIRST_STEPS: &str = "\
cco runs a team of Claude Code agents on one repository, hands-off.

First steps:
  cco demo                      a whole team on a sample project, offline, in a minute
  cco init                      answer a few questions, get a config directory
  cco check --config DIR        see what a run would do
  cco start --config DIR        run it (Ctrl-C stops gracefully)

More: cco --help, cco <command> --help, and the README.
";

/// How to run this very binary from the current directory: `cco` when that is what `PATH`
/// finds, else its path (relative when shorter, e.g. `target/release/cco` after `cargo run`).
pub fn cco_command() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "cco".into();
    };
    let same = |path: &Path| path.canonicalize().ok() == exe.canonicalize().ok();
    if which::which("cco").is_ok_and(|found| same(&found)) {
        return "cco".into();
    }
    let shown = std::env::current_dir()
        .ok()
        .and_then(|cwd| exe.strip_prefix(&cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| exe.clone());
    let text = shown.display().to_string();
    let text = if text.contains('/') {
        text
    } else {
        format!("./{text}")
    };
    shell_word(&text)
}

/// `text` as a shell word: quoted only when it needs to be.
pub fn shell_word(text: &str) -> String {
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}
