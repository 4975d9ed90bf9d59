//! The `FAKE_CLAUDE_SCRIPT` file: rules, matching and `times` bookkeeping.
//!
//! Unknown fields are rejected so a typo in a test script fails loudly (exit 2) instead of
//! silently never matching.

use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptFile {
    #[serde(default)]
    rules: Vec<Value>,
    #[serde(default)]
    default: Option<Rule>,
}

/// A parsed script. `keys[i]` identifies `rules[i]` in the marker files.
#[derive(Debug, Default)]
pub struct Script {
    pub rules: Vec<Rule>,
    keys: Vec<String>,
    pub default: Option<Rule>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "match", default)]
    pub matcher: Match,
    #[serde(default)]
    pub times: Option<u32>,
    #[serde(default)]
    pub steps: Vec<Step>,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub is_error: Option<bool>,
    #[serde(default)]
    pub cost_usd: Option<f64>,
    #[serde(default)]
    pub num_turns: Option<u32>,
    /// With `--json-schema`: played after the CLI's `[structured-output-enforce]` message when
    /// `steps` ended without a valid `structured_output` call.
    #[serde(default)]
    pub enforce_steps: Vec<Step>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    pub role: Option<String>,
    pub agent: Option<String>,
    pub prompt_contains: Option<String>,
    pub api_key: Option<String>,
    pub resume: Option<bool>,
    pub model: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOp {
    pub path: String,
    pub content: String,
}

/// `rate_limit` (429s), `overloaded` (529s) and `api_error` (any `status`; `null` or absent:
/// a connection error): a failing request and the CLI's own retries of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiFailure {
    /// `api_error` only: the HTTP status (`null`: no response).
    #[serde(default)]
    pub status: Option<u16>,
    /// `rate_limit` only: `resetsAt` of the `rejected` rate_limit_event = now + this.
    #[serde(default = "default_resets")]
    pub resets_in_secs: u64,
    /// `system/api_retry` events before giving up (or recovering).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// `retry_delay_ms` of every retry (default: the CLI's backoff, 1 s, 2 s, 4 s ...).
    #[serde(default)]
    pub retry_delay_ms: Option<u64>,
    /// Really wait `retry_delay_ms` after each `api_retry` event, as the CLI does.
    #[serde(default)]
    pub wait: bool,
    /// After the retries the API answers again and the turn goes on; otherwise the CLI gives
    /// up with the error result (exit 1).
    #[serde(default)]
    pub recover: bool,
}

/// `rate_limit_event`: a subscription's rate-limit status (OAuth logins).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitEventStep {
    /// `allowed`, `allowed_warning` or `rejected` (ends the turn: error result, exit 1, no retries).
    pub status: String,
    #[serde(default)]
    pub utilization: Option<f64>,
    #[serde(default)]
    pub surpassed_threshold: Option<f64>,
    #[serde(default = "default_resets")]
    pub resets_in_secs: u64,
    #[serde(default = "default_window")]
    pub rate_limit_type: String,
    /// Utilization of the `seven_day` window (listed in `unifiedWindows` when given).
    #[serde(default)]
    pub seven_day_utilization: Option<f64>,
}

fn default_window() -> String {
    "five_hour".into()
}

fn default_resets() -> u64 {
    3600
}
fn default_retries() -> u32 {
    2
}
fn default_exit_code() -> i32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    Text(String),
    Write(FileOp),
    Append(FileOp),
    Bash(String),
    Commit(String),
    SleepMs(u64),
    Hang(bool),
    IgnoreSigterm(bool),
    SpawnGrandchild {
        pid_file: String,
    },
    RateLimit(ApiFailure),
    Overloaded(ApiFailure),
    ApiError(ApiFailure),
    RateLimitEvent(RateLimitEventStep),
    /// A `StructuredOutput` tool call with this input (`--json-schema` runs).
    StructuredOutput(serde_json::Value),
    Raw(String),
    BigLine(usize),
    Crash {
        #[serde(default = "default_exit_code")]
        exit_code: i32,
    },
    MaxTurns(bool),
}

impl Step {
    /// Steps that are a tool call (and so cost one API round trip).
    pub fn is_tool(&self) -> bool {
        matches!(
            self,
            Step::Write(_) | Step::Append(_) | Step::Bash(_) | Step::Commit(_)
        )
    }
}

/// What a rule is matched against.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub role: Option<String>,
    pub agent: Option<String>,
    pub prompt: String,
    pub api_key: Option<String>,
    pub resume: bool,
    pub model: Option<String>,
}

impl Match {
    pub fn holds(&self, f: &Facts) -> bool {
        fn eq(want: &Option<String>, have: &Option<String>) -> bool {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        }
        eq(&self.role, &f.role)
            && eq(&self.agent, &f.agent)
            && eq(&self.api_key, &f.api_key)
            && eq(&self.model, &f.model)
            && self
                .prompt_contains
                .as_ref()
                .is_none_or(|p| f.prompt.contains(p.as_str()))
            && self.resume.is_none_or(|r| r == f.resume)
    }
}

impl Script {
    /// Reads and validates the script; the error is the text after `invalid script <path>: `.
    pub fn load(path: &Path) -> Result<Script, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Script, String> {
        let file: ScriptFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut script = Script {
            default: file.default,
            ..Default::default()
        };
        for (i, raw) in file.rules.into_iter().enumerate() {
            // Key = index + hash of the rule's canonical JSON: scripts that share a state dir
            // only share counters for identical rules at the same position.
            let key = format!("rule{i}-{:016x}", fnv1a(raw.to_string().as_bytes()));
            let rule: Rule = serde_json::from_value(raw).map_err(|e| format!("rules[{i}]: {e}"))?;
            script.rules.push(rule);
            script.keys.push(key);
        }
        Ok(script)
    }

    /// The first rule whose match holds and whose `times` is not used up (claiming one use),
    /// else `default`. `state_dir` holds the `times` marker files.
    pub fn select(&self, facts: &Facts, state_dir: &Path) -> Option<&Rule> {
        for (rule, key) in self.rules.iter().zip(&self.keys) {
            if !rule.matcher.holds(facts) {
                continue;
            }
            match rule.times {
                None => return Some(rule),
                Some(n) => {
                    if claim(state_dir, key, n) {
                        return Some(rule);
                    }
                }
            }
        }
        self.default.as_ref()
    }
}

/// Claims one of `n` uses: exclusive-create of `<key>.<k>` is atomic across processes, so
/// concurrent runs never play a rule more than `n` times.
fn claim(state_dir: &Path, key: &str, n: u32) -> bool {
    if n == 0 {
        return false;
    }
    if let Err(e) = std::fs::create_dir_all(state_dir) {
        eprintln!(
            "fake-claude: cannot create state dir {}: {e}",
            state_dir.display()
        );
        return false;
    }
    (0..n).any(|k| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(state_dir.join(format!("{key}.{k}")))
            .is_ok()
    })
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spec_example() {
        let s = Script::parse(
            r#"{"rules":[
              {"name":"n","match":{"role":"worker","prompt_contains":"Task t1","resume":false},
               "times":2,"steps":[{"text":"working..."},{"crash":{"exit_code":1}}]},
              {"match":{"prompt_contains":"Task t1"},
               "steps":[{"write":{"path":"a","content":"b"}},{"commit":"Add"},{"sleep_ms":5},
                        {"hang":true},{"ignore_sigterm":true},{"spawn_grandchild":{"pid_file":"p"}},
                        {"rate_limit":{"resets_in_secs":60,"retries":2}},{"overloaded":{"retries":1,"retry_delay_ms":5,"wait":true,"recover":true}},
                        {"raw":"{"},{"big_line":100},{"max_turns":true},{"append":{"path":"a","content":"c"}},
                        {"bash":"true"}],
               "result":"r","cost_usd":0.01}],
              "default":{"result":"nothing to do"}}"#,
        )
        .unwrap();
        assert_eq!(s.rules.len(), 2);
        assert_eq!(s.rules[1].steps.len(), 13);
        assert_eq!(s.default.unwrap().result.as_deref(), Some("nothing to do"));
    }

    #[test]
    fn rejects_typos() {
        assert!(Script::parse(r#"{"rules":[{"steps":[{"txt":"x"}]}]}"#).is_err());
        assert!(Script::parse(r#"{"rules":[{"match":{"prompt_regex":"x"}}]}"#).is_err());
        assert!(Script::parse(r#"{"rulez":[]}"#).is_err());
    }

    #[test]
    fn times_are_counted_in_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let s = Script::parse(r#"{"rules":[{"times":2,"result":"a"}],"default":{"result":"d"}}"#)
            .unwrap();
        let f = Facts::default();
        let picks: Vec<_> = (0..4)
            .map(|_| s.select(&f, dir.path()).unwrap().result.clone().unwrap())
            .collect();
        assert_eq!(picks, ["a", "a", "d", "d"]);
    }
}
