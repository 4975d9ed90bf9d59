//! The questions of `cco init` on a terminal, through `inquire` (prompts drawn on stderr,
//! answers read from the terminal; API keys are never echoed).

use inquire::validator::Validation;
use inquire::{Confirm, CustomType, Password, PasswordDisplayMode, Select, Text};

use super::InitError;
use cco_config::AuthMode;

/// Who answers the questions no flag answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker {
    /// A person, on a terminal.
    Terminal,
    /// Nobody: the defaults (`--yes`).
    Defaults,
    /// Nobody, and no `--yes`: every question needs its flag.
    Nobody,
}

impl Asker {
    /// The answer from the flag, else the default (`--yes`), else the terminal.
    pub fn answer<T>(
        self,
        flag: Option<T>,
        default: Option<T>,
        flag_name: &str,
        ask: impl FnOnce(Option<T>) -> inquire::error::InquireResult<T>,
    ) -> Result<T, InitError> {
        if let Some(value) = flag {
            return Ok(value);
        }
        match self {
            Asker::Terminal => ask(default).map_err(InitError::from),
            Asker::Defaults => default.ok_or_else(|| {
                InitError::Usage(format!("{flag_name} has no default here: pass it"))
            }),
            Asker::Nobody => Err(InitError::Usage(format!(
                "no terminal to ask on: pass {flag_name} (or --yes to take the defaults)"
            ))),
        }
    }
}

impl From<inquire::InquireError> for InitError {
    fn from(error: inquire::InquireError) -> Self {
        match error {
            inquire::InquireError::OperationCanceled
            | inquire::InquireError::OperationInterrupted => InitError::Cancelled,
            other => InitError::Failed(format!("cannot ask on this terminal: {other}")),
        }
    }
}

type Check = Result<Validation, inquire::CustomUserError>;

fn valid_if(ok: bool, message: &str) -> Check {
    Ok(if ok {
        Validation::Valid
    } else {
        Validation::Invalid(message.into())
    })
}

pub fn text(
    message: &str,
    help: &str,
    default: Option<String>,
    required: bool,
) -> inquire::error::InquireResult<String> {
    let mut prompt = Text::new(message).with_help_message(help);
    if let Some(default) = &default {
        prompt = prompt.with_default(default);
    }
    if required {
        prompt =
            prompt.with_validator(|s: &str| valid_if(!s.trim().is_empty(), "an answer is needed"));
    }
    prompt.prompt().map(|s| s.trim().to_string())
}

pub fn directory(
    default: Option<std::path::PathBuf>,
) -> inquire::error::InquireResult<std::path::PathBuf> {
    let default = default.map(|d| d.display().to_string());
    text(
        "Config directory:",
        "where orchestrator.json, logs and the run's own clone will live",
        default,
        true,
    )
    .map(std::path::PathBuf::from)
}

pub fn workers(default: Option<u32>) -> inquire::error::InquireResult<u32> {
    let mut prompt = CustomType::<u32>::new("Number of workers:")
        .with_help_message("1 to 100; up to 4 are led by one Coordinator, more form teams")
        .with_error_message("a whole number from 1 to 100")
        .with_validator(|n: &u32| valid_if((1..=100).contains(n), "a whole number from 1 to 100"));
    if let Some(default) = default {
        prompt = prompt.with_default(default);
    }
    prompt.prompt()
}

/// The auth modes, in the order shown.
const AUTH_CHOICES: [(AuthMode, &str); 3] = [
    (
        AuthMode::Oauth,
        "oauth           the claude CLI's own login",
    ),
    (
        AuthMode::ApiKeysFirst,
        "api-keys-first  API keys, then the CLI login when all are rate limited",
    ),
    (AuthMode::ApiKeysOnly, "api-keys-only   API keys only"),
];

pub fn auth(default: Option<AuthMode>, help: &str) -> inquire::error::InquireResult<AuthMode> {
    let labels: Vec<&str> = AUTH_CHOICES.iter().map(|(_, l)| *l).collect();
    let start = AUTH_CHOICES
        .iter()
        .position(|(m, _)| Some(*m) == default)
        .unwrap_or(0);
    let chosen = Select::new("How do agents authenticate?", labels)
        .with_help_message(help)
        .with_starting_cursor(start)
        .without_filtering()
        // The answer line shows the mode's name only.
        .with_formatter(&|option| {
            option
                .value
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .prompt()?;
    Ok(AUTH_CHOICES
        .iter()
        .find(|(_, l)| *l == chosen)
        .map_or(AuthMode::Oauth, |(m, _)| *m))
}

pub fn confirm(message: &str, default: bool) -> inquire::error::InquireResult<bool> {
    Confirm::new(message).with_default(default).prompt()
}

/// One API key, never echoed.
pub fn api_key(message: &str) -> inquire::error::InquireResult<String> {
    Password::new(message)
        .without_confirmation()
        .with_display_mode(PasswordDisplayMode::Hidden)
        .with_help_message("input is hidden; paste the key and press Enter")
        .with_validator(|s: &str| {
            let s = s.trim();
            if s.is_empty() {
                valid_if(false, "a key is needed")
            } else {
                valid_if(!s.chars().any(char::is_whitespace), "a key has no spaces")
            }
        })
        .prompt()
        .map(|s| s.trim().to_string())
}

/// The verify command: one of the detected ones, none, or typed in.
pub fn verify(
    detected: &[String],
    default: Option<String>,
) -> inquire::error::InquireResult<Option<String>> {
    const NONE: &str = "(none)";
    const OTHER: &str = "(another command...)";
    let mut options: Vec<String> = detected.to_vec();
    options.push(NONE.into());
    options.push(OTHER.into());
    let start = default
        .as_ref()
        .and_then(|d| options.iter().position(|o| o == d))
        .unwrap_or(options.len() - 2);
    let chosen = Select::new(
        "Verify command (must pass before the base branch moves):",
        options,
    )
    .with_help_message("suggested from the repository's files")
    .with_starting_cursor(start)
    .without_filtering()
    .prompt()?;
    match chosen.as_str() {
        NONE => Ok(None),
        OTHER => text("Command:", "run by sh in the merged work tree", None, true).map(Some),
        _ => Ok(Some(chosen)),
    }
}

pub fn budget(default: Option<f64>) -> inquire::error::InquireResult<Option<f64>> {
    let answer = Text::new("Budget limit of a run in USD:")
        .with_help_message("empty for none; the run stops when its cost reaches it")
        .with_default(&default.map(|b| b.to_string()).unwrap_or_default())
        .with_validator(|s: &str| {
            let s = s.trim();
            valid_if(
                s.is_empty() || s.parse::<f64>().is_ok_and(|v| v.is_finite() && v >= 0.0),
                "a number of dollars, or empty for none",
            )
        })
        .with_formatter(&|s| match s.trim().parse::<f64>() {
            Ok(v) if v > 0.0 => format!("${v}"),
            _ => "none".to_string(),
        })
        .prompt()?;
    Ok(answer.trim().parse::<f64>().ok().filter(|v| *v > 0.0))
}

pub fn duration(default: Option<u64>) -> inquire::error::InquireResult<u64> {
    let mut prompt = CustomType::<u64>::new("Time limit of a run in minutes:")
        .with_error_message("a whole number of minutes")
        .with_validator(|n: &u64| valid_if((1..=43200).contains(n), "1 to 43200 minutes"));
    if let Some(default) = default {
        prompt = prompt.with_default(default);
    }
    prompt.prompt()
}
