//! Turning an agent's final answer into a validated plan or review decision.
//!
//! Three steps, each with its own [`PlanError`] variant:
//!
//! 1. **Find** JSON objects in the text (module `extract`): bare, fenced, or inside prose.
//!    No `{...}` at all is [`PlanError::NoJson`].
//! 2. **Pick** the first object (in text order; an object nested inside another JSON object
//!    also counts) that has the expected tag field (`status` / `decision`) and deserialises.
//!    Balanced spans that are not JSON are skipped; if nothing usable is found, the most
//!    relevant failure is reported: a tagged object of the wrong shape
//!    ([`PlanError::Schema`]), then broken JSON that mentions the tag field
//!    ([`PlanError::InvalidJson`]), then an object without the tag field (`Schema`).
//! 3. **Validate** and normalise ([`PlanError::Validation`], listing every problem at once).
//!    Harmless fixes (slugged ids, dropped unsafe paths) become [`Parsed::warnings`].

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::extract::Scanner;

mod rejections;
mod validate;

use crate::schema::{DirectorPlan, PlanKind, ReviewDecision, TaskPlan};
pub use rejections::{PlanFailure, Rejections};
pub use validate::{sanitize_path, slugify};
use validate::{validate_director, validate_tasks};

/// At most this many tasks in one [`TaskPlan`].
pub const MAX_TASKS: usize = 200;
/// At most this many teams in one [`DirectorPlan`].
pub const MAX_TEAMS: usize = 50;
/// Longest task id / team name, in characters (after normalisation).
pub const MAX_ID_LEN: usize = 64;

/// How many characters of the answer an error quotes.
const EXCERPT_CHARS: usize = 300;
/// At most this many candidate spans are handed to serde_json for one answer.
const MAX_CANDIDATES: usize = 5_000;
/// At most this many bytes are handed to serde_json for one answer, in all.
const PARSE_BUDGET: usize = 64 << 20;

/// A successfully parsed and validated answer, with what was fixed on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    pub value: T,
    /// Human-readable notes on what was normalised or dropped (log them; they are not errors).
    pub warnings: Vec<String>,
}

/// Why an answer could not be used. Every message is written to be quoted back to the agent:
/// see [`PlanError::repair_prompt`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// No `{...}` object anywhere in the answer.
    #[error("no JSON object found in the answer (expected a {kind})")]
    NoJson { kind: PlanKind, excerpt: String },
    /// Something that looks like the answer, but is not valid JSON.
    #[error("the {kind} is not valid JSON: {error}")]
    InvalidJson {
        kind: PlanKind,
        error: String,
        excerpt: String,
    },
    /// Valid JSON of the wrong shape (missing or unknown tag, wrong field types).
    #[error("the JSON does not match the {kind} schema: {error}")]
    Schema { kind: PlanKind, error: String },
    /// The right shape, but the content breaks the rules (every problem listed).
    #[error("the {kind} breaks the rules: {}", problems.join("; "))]
    Validation {
        kind: PlanKind,
        problems: Vec<String>,
    },
}

impl PlanError {
    /// Which document was expected.
    pub fn kind(&self) -> PlanKind {
        match self {
            PlanError::NoJson { kind, .. }
            | PlanError::InvalidJson { kind, .. }
            | PlanError::Schema { kind, .. }
            | PlanError::Validation { kind, .. } => *kind,
        }
    }

    /// The follow-up prompt sent to the SAME agent session (with `--resume`) asking it to answer
    /// again with valid JSON only. Starts with `[cco:repair]`; quotes the error, the offending
    /// excerpt and the expected schema. See [`crate::RepairPrompt`] for the role-specific and
    /// structured-output variants.
    pub fn repair_prompt(&self) -> String {
        crate::prompt::RepairPrompt {
            error: self,
            role: None,
            answer: crate::prompt::AnswerFormat::Text,
        }
        .render()
    }
}

/// Parses and validates a Director's answer (hierarchy mode).
pub fn parse_director_plan(text: &str) -> Result<Parsed<DirectorPlan>, PlanError> {
    let plan: DirectorPlan = extract_typed(text, PlanKind::Director)?;
    validate_director(plan)
}

/// Parses and validates an EM's or the flat Coordinator's task plan.
pub fn parse_task_plan(text: &str) -> Result<Parsed<TaskPlan>, PlanError> {
    let plan: TaskPlan = extract_typed(text, PlanKind::Task)?;
    validate_tasks(plan)
}

/// Parses and validates a review decision.
pub fn parse_review(text: &str) -> Result<Parsed<ReviewDecision>, PlanError> {
    let review: ReviewDecision = extract_typed(text, PlanKind::Review)?;
    validate_review(review)
}

/// What an agent answered: the CLI's `structured_output` (a run with `--json-schema`) and the
/// final result text. Either may be missing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Answer<'a> {
    /// `structured_output` of the `result` event.
    pub structured: Option<&'a Value>,
    /// `result` of the `result` event.
    pub text: Option<&'a str>,
}

impl<'a> Answer<'a> {
    /// An answer with only a result text (a CLI without `--json-schema`).
    pub fn text(text: &'a str) -> Answer<'a> {
        Answer {
            structured: None,
            text: Some(text),
        }
    }
}

/// Parses and validates a Director's answer, `structured_output` first. See [`parse_answer`].
pub fn parse_director_answer(answer: Answer<'_>) -> Result<Parsed<DirectorPlan>, PlanError> {
    parse_answer(answer, PlanKind::Director, validate_director)
}

/// Parses and validates a task plan, `structured_output` first. See [`parse_answer`].
pub fn parse_task_answer(answer: Answer<'_>) -> Result<Parsed<TaskPlan>, PlanError> {
    parse_answer(answer, PlanKind::Task, validate_tasks)
}

/// Parses and validates a review decision, `structured_output` first. See [`parse_answer`].
pub fn parse_review_answer(answer: Answer<'_>) -> Result<Parsed<ReviewDecision>, PlanError> {
    parse_answer(answer, PlanKind::Review, validate_review)
}

/// The structured-output path with the text path as its fallback:
///
/// 1. A `structured_output` object that deserialises is validated like any answer; a
///    validation failure is the answer's error (the result text holds the same document).
/// 2. Otherwise (no structured output, or one of the wrong shape) the result text is parsed
///    as by [`parse_task_plan`] and friends; when the structured output existed but did not fit,
///    a warning says so.
/// 3. With neither, the error is [`PlanError::NoJson`] with an empty excerpt.
pub fn parse_answer<T: DeserializeOwned>(
    answer: Answer<'_>,
    kind: PlanKind,
    validate: impl Fn(T) -> Result<Parsed<T>, PlanError>,
) -> Result<Parsed<T>, PlanError> {
    let mut note = None;
    if let Some(Value::Object(obj)) = answer.structured {
        match from_tagged::<T>(obj, kind.tag_key()) {
            Ok(value) => return validate(value),
            Err(error) => {
                note = Some(format!(
                    "the structured output did not match the {kind} schema ({error}); used the result text instead"
                ))
            }
        }
    } else if let Some(other) = answer.structured.filter(|v| !v.is_null()) {
        note = Some(format!(
            "the structured output is {}, not an object; used the result text instead",
            crate::schema::type_name(other)
        ));
    }
    let text = answer.text.unwrap_or("");
    let mut parsed = extract_typed::<T>(text, kind).and_then(validate)?;
    parsed.warnings.extend(note);
    Ok(parsed)
}

pub(super) fn validate_review(review: ReviewDecision) -> Result<Parsed<ReviewDecision>, PlanError> {
    let value = match review {
        ReviewDecision::Revise { feedback } if feedback.trim().is_empty() => {
            return Err(PlanError::Validation {
                kind: PlanKind::Review,
                problems: vec!["\"decision\" is \"revise\" but \"feedback\" is empty: say what the worker must change".into()],
            })
        }
        ReviewDecision::Revise { feedback } => ReviewDecision::Revise {
            feedback: feedback.trim().to_string(),
        },
        ReviewDecision::Approve { notes } => ReviewDecision::Approve {
            notes: notes.trim().to_string(),
        },
    };
    Ok(Parsed {
        value,
        warnings: vec![],
    })
}

/// A string as a JSON string literal (`"t1"`, with `"` and control characters escaped): how
/// messages quote agent-provided values.
pub(crate) fn quote(s: &str) -> String {
    Value::from(s).to_string()
}

// ---------------------------------------------------------------------------------------------
// Step 1 and 2: find and pick.
// ---------------------------------------------------------------------------------------------

fn extract_typed<T: DeserializeOwned>(text: &str, kind: PlanKind) -> Result<T, PlanError> {
    // A double-encoded answer: the whole result is one JSON string holding the JSON.
    let trimmed = text.trim();
    if trimmed.starts_with('"') {
        if let Ok(inner) = serde_json::from_str::<String>(trimmed) {
            if inner.contains('{') {
                return extract_typed(&inner, kind);
            }
        }
    }

    let tag = kind.tag_key();
    let quoted_tag = format!("\"{tag}\"");
    let mut scanner = Scanner::new(text);
    let mut schema_err: Option<String> = None; // tagged object of the wrong shape
    let mut invalid_tagged: Option<(String, String)> = None; // broken JSON mentioning the tag
    let mut untagged: Option<String> = None; // valid object without the tag
    let mut candidates = 0usize;
    let mut parsed_bytes = 0usize;
    let mut pos = 0usize;

    while let Some(start) = scanner.next_open(pos) {
        if scanner.exhausted() || candidates >= MAX_CANDIDATES || parsed_bytes >= PARSE_BUDGET {
            break;
        }
        let Some(end) = scanner.close_of(start) else {
            pos = start + 1;
            continue;
        };
        let span = &text[start..=end];
        // A JSON object's first token is `"` or `}`: skip code blocks and prose braces cheaply.
        if !matches!(span[1..].trim_start().as_bytes().first(), Some(b'"' | b'}')) {
            pos = start + 1;
            continue;
        }
        candidates += 1;
        parsed_bytes += span.len();
        match serde_json::from_str::<Value>(span) {
            Ok(value) => {
                let mut found = None;
                visit_objects(&value, 0, &mut |obj| {
                    if found.is_some() || !obj.contains_key(tag) {
                        return;
                    }
                    match from_tagged::<T>(obj, tag) {
                        Ok(t) => found = Some(t),
                        Err(e) => {
                            schema_err.get_or_insert(e);
                        }
                    }
                });
                if let Some(t) = found {
                    return Ok(t);
                }
                if untagged.is_none() && value.is_object() {
                    untagged = Some(format!(
                        "the object has no \"{tag}\" field; it must be one of the forms below"
                    ));
                }
                pos = end + 1;
            }
            Err(e) => {
                let message = e.to_string();
                // Too deep to be a plan, and so is everything nested in it: skip the span.
                let hopeless = message.starts_with("recursion limit exceeded");
                if invalid_tagged.is_none() && !hopeless && span.contains(&quoted_tag) {
                    invalid_tagged = Some((message, excerpt_at(span, &e)));
                }
                pos = if hopeless { end + 1 } else { start + 1 };
            }
        }
    }

    if let Some(error) = schema_err {
        return Err(PlanError::Schema { kind, error });
    }
    if let Some((error, excerpt)) = invalid_tagged {
        return Err(PlanError::InvalidJson {
            kind,
            error,
            excerpt,
        });
    }
    // Truncated or unclosed JSON: an unclosed `{` followed by the tag field.
    if let Some(start) = first_unclosed_before_tag(text, &quoted_tag) {
        let tail = &text[start..];
        if let Err(e) = serde_json::from_str::<Value>(tail) {
            return Err(PlanError::InvalidJson {
                kind,
                error: e.to_string(),
                excerpt: excerpt_at(tail, &e),
            });
        }
    }
    if let Some(error) = untagged {
        return Err(PlanError::Schema { kind, error });
    }
    Err(PlanError::NoJson {
        kind,
        excerpt: head(text, EXCERPT_CHARS),
    })
}

/// Deserialises an object whose tag field is present, normalising the tag's spelling
/// (`" Continue "` -> `continue`, `changes-requested` -> `changes_requested`).
fn from_tagged<T: DeserializeOwned>(
    obj: &serde_json::Map<String, Value>,
    tag: &str,
) -> Result<T, String> {
    let mut obj = obj.clone();
    if let Some(Value::String(s)) = obj.get_mut(tag) {
        *s = s.trim().to_lowercase().replace([' ', '-'], "_");
    }
    serde_json::from_value(Value::Object(obj)).map_err(|e| e.to_string())
}

/// Pre-order walk over every object in `v` (the root first).
fn visit_objects(v: &Value, depth: usize, f: &mut impl FnMut(&serde_json::Map<String, Value>)) {
    if depth > 64 {
        return;
    }
    match v {
        Value::Object(map) => {
            f(map);
            for child in map.values() {
                visit_objects(child, depth + 1, f);
            }
        }
        Value::Array(items) => {
            for child in items {
                visit_objects(child, depth + 1, f);
            }
        }
        _ => {}
    }
}

/// The first `{` that is followed (somewhere) by the tag and whose span never closes.
fn first_unclosed_before_tag(text: &str, quoted_tag: &str) -> Option<usize> {
    let last_tag = text.rfind(quoted_tag)?;
    let mut scanner = Scanner::new(text);
    let mut pos = 0;
    while let Some(start) = scanner.next_open(pos) {
        if start > last_tag || scanner.exhausted() {
            return None;
        }
        match scanner.close_of(start) {
            Some(end) => pos = end + 1,
            None => return Some(start),
        }
    }
    None
}

/// Up to `max` characters of `s` (trimmed), with `…` if cut.
pub(crate) fn head(s: &str, max: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// About 160 characters of `span` around the position of a serde_json error.
fn excerpt_at(span: &str, e: &serde_json::Error) -> String {
    let line_start: usize = span
        .split_inclusive('\n')
        .take(e.line().saturating_sub(1))
        .map(str::len)
        .sum();
    let at = floor_boundary(span, line_start + e.column().saturating_sub(1));
    let from = floor_boundary(span, at.saturating_sub(80));
    let to = floor_boundary(span, (at + 80).min(span.len()));
    let mut s = String::new();
    if from > 0 {
        s.push('…');
    }
    s.push_str(&span[from..to]);
    if to < span.len() {
        s.push('…');
    }
    s
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod answer_tests;
#[cfg(test)]
mod tests;
