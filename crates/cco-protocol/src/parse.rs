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

use std::collections::{HashMap, HashSet};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::extract::Scanner;
use crate::schema::{DirectorPlan, PlanKind, ReviewDecision, TaskPlan, TaskSpec, TeamGoal};

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
    match review {
        ReviewDecision::Revise { feedback } if feedback.trim().is_empty() => Err(PlanError::Validation {
            kind: PlanKind::Review,
            problems: vec![
                "\"decision\" is \"revise\" but \"feedback\" is empty: say what the worker must change".into(),
            ],
        }),
        ReviewDecision::Revise { feedback } => {
            Ok(Parsed { value: ReviewDecision::Revise { feedback: feedback.trim().to_string() }, warnings: vec![] })
        }
        ReviewDecision::Approve { notes } => {
            Ok(Parsed { value: ReviewDecision::Approve { notes: notes.trim().to_string() }, warnings: vec![] })
        }
    }
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
fn head(s: &str, max: usize) -> String {
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

// ---------------------------------------------------------------------------------------------
// Step 3: validate.
// ---------------------------------------------------------------------------------------------

/// Lowercases and maps everything outside `[a-z0-9]` to `-`, collapsing runs and trimming.
///
/// ```
/// assert_eq!(cco_protocol::slugify("  Parser / Lexer_2 "), "parser-lexer-2");
/// assert_eq!(cco_protocol::slugify("Ünïcode!"), "n-code");
/// ```
pub fn slugify(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// Cleans an untrusted `files` entry: `None` (with the reason) if it must be dropped.
///
/// Dropped: empty, absolute (`/x`, `\x`, `C:x`, `~/x`), any `..` component, any `.git`
/// component, NUL bytes. Kept entries are normalised: `\` -> `/`, no `.` or empty components.
pub fn sanitize_path(raw: &str) -> Result<String, &'static str> {
    let p = raw.trim();
    if p.is_empty() {
        return Err("empty path");
    }
    if p.contains('\0') {
        return Err("contains a NUL byte");
    }
    let p = p.replace('\\', "/");
    let bytes = p.as_bytes();
    if p.starts_with('/')
        || p.starts_with('~')
        || (bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic())
    {
        return Err("absolute path");
    }
    let mut parts = Vec::new();
    for comp in p.split('/') {
        match comp {
            "" | "." => {}
            ".." => return Err("contains a `..` component"),
            c if c.eq_ignore_ascii_case(".git") => return Err("inside .git"),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err("empty path");
    }
    Ok(parts.join("/"))
}

/// Checks one id or team name; returns the slug or records a problem.
fn check_id(what: &str, index: usize, raw: &str, problems: &mut Vec<String>) -> Option<String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        problems.push(format!(
            "{what} #{} has an empty {}",
            index + 1,
            id_field(what)
        ));
        return None;
    }
    let slug = slugify(trimmed);
    if slug.is_empty() {
        problems.push(format!(
            "{what} {} {trimmed:?} has no letters or digits (use lowercase letters, digits and '-')",
            id_field(what)
        ));
        return None;
    }
    if slug.chars().count() > MAX_ID_LEN {
        problems.push(format!(
            "{what} {} {:?} is longer than {MAX_ID_LEN} characters",
            id_field(what),
            head(trimmed, 80)
        ));
        return None;
    }
    Some(slug)
}

fn id_field(what: &str) -> &'static str {
    if what == "team" {
        "name"
    } else {
        "id"
    }
}

/// Records duplicates/collisions among `(original, slug)` pairs.
fn check_unique(what: &str, ids: &[(String, String)], problems: &mut Vec<String>) {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (orig, slug) in ids {
        if let Some(prev) = seen.insert(slug.as_str(), orig.as_str()) {
            if prev == orig {
                problems.push(format!("duplicate {what} {}: {orig:?}", id_field(what)));
            } else {
                problems.push(format!(
                    "{what} {}s {prev:?} and {orig:?} are the same after normalisation to {slug:?}; rename one",
                    id_field(what)
                ));
            }
        }
    }
}

fn validate_director(plan: DirectorPlan) -> Result<Parsed<DirectorPlan>, PlanError> {
    let (summary, teams) = match plan {
        DirectorPlan::Complete { reason } => {
            return Ok(Parsed {
                value: DirectorPlan::Complete {
                    reason: reason.trim().to_string(),
                },
                warnings: vec![],
            })
        }
        DirectorPlan::Continue { summary, teams } => (summary, teams),
    };
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    if teams.is_empty() {
        problems.push("\"status\" is \"continue\" but \"teams\" is empty or missing; list at least one team, or answer \"complete\"".into());
    }
    if teams.len() > MAX_TEAMS {
        problems.push(format!(
            "too many teams: {} (at most {MAX_TEAMS})",
            teams.len()
        ));
    }
    let mut ids = Vec::new();
    let mut out = Vec::with_capacity(teams.len());
    for (i, team) in teams.into_iter().enumerate() {
        let orig = team.name.trim().to_string();
        let goal = team.goal.trim().to_string();
        if let Some(slug) = check_id("team", i, &orig, &mut problems) {
            if slug != orig {
                warnings.push(format!("team name {orig:?} normalised to {slug:?}"));
            }
            if goal.is_empty() {
                problems.push(format!("team {orig:?} has an empty \"goal\""));
            }
            ids.push((orig, slug.clone()));
            out.push(TeamGoal { name: slug, goal });
        }
    }
    check_unique("team", &ids, &mut problems);
    if !problems.is_empty() {
        return Err(PlanError::Validation {
            kind: PlanKind::Director,
            problems,
        });
    }
    Ok(Parsed {
        value: DirectorPlan::Continue {
            summary: summary.trim().to_string(),
            teams: out,
        },
        warnings,
    })
}

fn validate_tasks(plan: TaskPlan) -> Result<Parsed<TaskPlan>, PlanError> {
    let tasks = match plan {
        TaskPlan::Complete { reason } => {
            return Ok(Parsed {
                value: TaskPlan::Complete {
                    reason: reason.trim().to_string(),
                },
                warnings: vec![],
            })
        }
        TaskPlan::Continue { tasks } => tasks,
    };
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    if tasks.is_empty() {
        problems.push("\"status\" is \"continue\" but \"tasks\" is empty or missing; list at least one task, or answer \"complete\"".into());
    }
    if tasks.len() > MAX_TASKS {
        problems.push(format!(
            "too many tasks: {} (at most {MAX_TASKS})",
            tasks.len()
        ));
    }

    // Ids and titles.
    let mut ids: Vec<(String, String)> = Vec::new();
    let mut bad_ids: HashSet<String> = HashSet::new();
    let mut out: Vec<TaskSpec> = Vec::with_capacity(tasks.len());
    for (i, t) in tasks.into_iter().enumerate() {
        let orig = t.id.trim().to_string();
        let Some(slug) = check_id("task", i, &orig, &mut problems) else {
            bad_ids.insert(orig);
            continue;
        };
        let mut title = t.title.trim().to_string();
        let mut description = t.description.trim().to_string();
        if title.is_empty() {
            if description.is_empty() {
                problems.push(format!("task {orig:?} has an empty \"title\""));
            } else {
                title = head(description.lines().next().unwrap_or(""), 80);
                warnings.push(format!(
                    "task {orig:?} had no title; using the start of its description"
                ));
            }
        }
        if description.is_empty() {
            description = title.clone();
        }
        if slug != orig {
            warnings.push(format!("task id {orig:?} normalised to {slug:?}"));
            if !title.contains(&orig) {
                title = format!("{title} (id: {orig})");
            }
        }
        let mut files = Vec::new();
        for f in &t.files {
            match sanitize_path(f) {
                Ok(p) if !files.contains(&p) => files.push(p),
                Ok(_) => {}
                Err(why) => warnings.push(format!(
                    "task {slug:?}: dropped file {:?} ({why})",
                    head(f, 120)
                )),
            }
        }
        ids.push((orig, slug.clone()));
        out.push(TaskSpec {
            id: slug,
            title,
            description,
            files,
            acceptance: t.acceptance.trim().to_string(),
            depends_on: t.depends_on,
        });
    }
    check_unique("task", &ids, &mut problems);

    // Dependencies: resolve by original id first, then by slug.
    let by_orig: HashMap<&str, &str> = ids.iter().map(|(o, s)| (o.as_str(), s.as_str())).collect();
    let slugs: HashSet<&str> = ids.iter().map(|(_, s)| s.as_str()).collect();
    let known: Vec<&str> = ids.iter().map(|(_, s)| s.as_str()).take(20).collect();
    let mut resolved_deps: Vec<Vec<String>> = Vec::with_capacity(out.len());
    for t in &out {
        let mut deps: Vec<String> = Vec::new();
        for d in &t.depends_on {
            let d = d.trim();
            let target = by_orig.get(d).map(|s| s.to_string()).or_else(|| {
                let s = slugify(d);
                slugs.contains(s.as_str()).then_some(s)
            });
            match target {
                Some(s) if !deps.contains(&s) => deps.push(s),
                Some(_) => {}
                None if bad_ids.contains(d) => {}
                None => problems.push(format!(
                    "task {:?}: \"depends_on\" names {:?}, which is not a task id in this plan (ids: {})",
                    t.id,
                    head(d, 80),
                    known.join(", ")
                )),
            }
        }
        resolved_deps.push(deps);
    }
    for (t, deps) in out.iter_mut().zip(resolved_deps) {
        t.depends_on = deps;
    }
    if problems.is_empty() {
        if let Some(cycle) = find_cycle(&out) {
            problems.push(format!(
                "\"depends_on\" has a cycle: {}",
                cycle.join(" -> ")
            ));
        }
    }
    if !problems.is_empty() {
        return Err(PlanError::Validation {
            kind: PlanKind::Task,
            problems,
        });
    }
    Ok(Parsed {
        value: TaskPlan::Continue { tasks: out },
        warnings,
    })
}

/// The first dependency cycle (as `a -> b -> a`), searching tasks in plan order.
fn find_cycle(tasks: &[TaskSpec]) -> Option<Vec<String>> {
    let index: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut state = vec![0u8; tasks.len()];
    for root in 0..tasks.len() {
        if state[root] != 0 {
            continue;
        }
        // Iterative DFS: (node, next dependency to look at).
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        state[root] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(dep) = tasks[node].depends_on.get(*next) {
                *next += 1;
                let Some(&d) = index.get(dep.as_str()) else {
                    continue;
                };
                match state[d] {
                    0 => {
                        state[d] = 1;
                        stack.push((d, 0));
                    }
                    1 => {
                        let from = stack.iter().position(|&(n, _)| n == d).unwrap_or(0);
                        let mut cycle: Vec<String> = stack[from..]
                            .iter()
                            .map(|&(n, _)| tasks[n].id.clone())
                            .collect();
                        cycle.push(tasks[d].id.clone());
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                state[node] = 2;
                stack.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(text: &str) -> Vec<TaskSpec> {
        match parse_task_plan(text).unwrap().value {
            TaskPlan::Continue { tasks } => tasks,
            other => panic!("expected continue, got {other:?}"),
        }
    }

    fn problems(r: Result<Parsed<TaskPlan>, PlanError>) -> Vec<String> {
        match r {
            Err(PlanError::Validation { problems, .. }) => problems,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    // ---- finding the JSON ----

    #[test]
    fn bare_json() {
        let t = tasks(r#"{"status":"continue","tasks":[{"id":"t1","title":"A"}]}"#);
        assert_eq!(t, vec![TaskSpec::new("t1", "A")]);
    }

    #[test]
    fn fenced_json_with_and_without_language() {
        for fence in ["```json", "```", "```JSON"] {
            let text = format!("Plan below.\n{fence}\n{{\"status\":\"continue\",\"tasks\":[{{\"id\":\"t1\",\"title\":\"A\"}}]}}\n```\nThanks!");
            assert_eq!(tasks(&text).len(), 1, "{fence}");
        }
    }

    #[test]
    fn json_in_prose_with_braces_and_strings() {
        let text = r#"I looked at {the code} and "quotes {". Final:
{"status":"continue","tasks":[{"id":"t1","title":"Handle } and { in strings \" ok","description":"x"}]} done."#;
        let t = tasks(text);
        assert_eq!(t[0].title, "Handle } and { in strings \" ok");
    }

    #[test]
    fn picks_first_snippet_with_expected_shape() {
        let text = r#"Example of a file: {"name": "x"}. Not JSON: {oops}.
Review format reminder {"decision":"approve"}.
{"status":"continue","tasks":[{"id":"first","title":"A"}]}
{"status":"continue","tasks":[{"id":"second","title":"B"}]}"#;
        assert_eq!(tasks(text)[0].id, "first");
    }

    #[test]
    fn code_blocks_and_deep_junk_before_the_plan() {
        let deep = format!("{}{}", "{\"a\":".repeat(300), "}".repeat(300));
        let text = format!(
            "```rust\nfn main() {{ let x = {{ 1 }}; if x {{ }} }}\n```\n{deep}\n{{\"status\":\"continue\",\"tasks\":[{{\"id\":\"t1\",\"title\":\"A\"}}]}}"
        );
        assert_eq!(tasks(&text)[0].id, "t1");
    }

    #[test]
    fn nested_plan_inside_wrapper_object() {
        let t = tasks(r#"{"answer":{"status":"continue","tasks":[{"id":"t1","title":"A"}]}}"#);
        assert_eq!(t[0].id, "t1");
    }

    #[test]
    fn double_encoded_answer() {
        let inner = r#"{"decision":"approve","notes":"fine"}"#;
        let text = serde_json::to_string(inner).unwrap();
        assert_eq!(
            parse_review(&text).unwrap().value,
            ReviewDecision::Approve {
                notes: "fine".into()
            }
        );
    }

    #[test]
    fn unknown_fields_tolerated() {
        let p = parse_director_plan(
            r#"{"status":"continue","confidence":0.9,"summary":"s","teams":[{"name":"parser","goal":"g","size":3}]}"#,
        )
        .unwrap();
        assert_eq!(
            p.value,
            DirectorPlan::Continue {
                summary: "s".into(),
                teams: vec![TeamGoal {
                    name: "parser".into(),
                    goal: "g".into()
                }]
            }
        );
    }

    #[test]
    fn status_spelling_is_normalised() {
        let p = parse_task_plan(r#"{"status":" Complete ","reason":"all done"}"#).unwrap();
        assert_eq!(
            p.value,
            TaskPlan::Complete {
                reason: "all done".into()
            }
        );
        let r = parse_review(r#"{"decision":"Changes-Requested","feedback":"fix"}"#).unwrap();
        assert_eq!(
            r.value,
            ReviewDecision::Revise {
                feedback: "fix".into()
            }
        );
    }

    #[test]
    fn complete_without_reason_is_ok() {
        assert_eq!(
            parse_task_plan(r#"{"status":"complete"}"#).unwrap().value,
            TaskPlan::Complete {
                reason: String::new()
            }
        );
        assert_eq!(
            parse_director_plan(r#"{"status":"complete"}"#)
                .unwrap()
                .value,
            DirectorPlan::Complete {
                reason: String::new()
            }
        );
    }

    // ---- errors ----

    #[test]
    fn no_json() {
        let e = parse_task_plan("I could not decide, sorry.").unwrap_err();
        assert!(
            matches!(e, PlanError::NoJson { ref excerpt, kind: PlanKind::Task } if excerpt.contains("sorry"))
        );
        assert!(matches!(
            parse_task_plan("").unwrap_err(),
            PlanError::NoJson { .. }
        ));
        // Braces in prose that are not JSON and do not mention the tag: still "no JSON".
        assert!(matches!(
            parse_task_plan("use {x} here").unwrap_err(),
            PlanError::NoJson { .. }
        ));
    }

    #[test]
    fn invalid_json_trailing_comma() {
        let e = parse_task_plan(
            r#"```json
{"status":"continue","tasks":[{"id":"t1","title":"A"},]}
```"#,
        )
        .unwrap_err();
        match &e {
            PlanError::InvalidJson { error, excerpt, .. } => {
                assert!(
                    error.contains("trailing comma") || error.contains("expected value"),
                    "{error}"
                );
                assert!(excerpt.contains("\"t1\""), "{excerpt}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_json_is_invalid_json() {
        let e =
            parse_task_plan(r#"{"status":"continue","tasks":[{"id":"t1","title":"A"#).unwrap_err();
        assert!(
            matches!(e, PlanError::InvalidJson { ref error, .. } if error.contains("EOF")),
            "{e:?}"
        );
    }

    #[test]
    fn schema_errors() {
        let e = parse_task_plan(r#"{"status":"maybe","tasks":[]}"#).unwrap_err();
        assert!(
            matches!(e, PlanError::Schema { ref error, .. } if error.contains("maybe")),
            "{e:?}"
        );
        let e = parse_task_plan(r#"{"tasks":[{"id":"t1","title":"A"}]}"#).unwrap_err();
        assert!(
            matches!(e, PlanError::Schema { ref error, .. } if error.contains("\"status\"")),
            "{e:?}"
        );
        let e = parse_task_plan(r#"{"status":"continue","tasks":"do everything"}"#).unwrap_err();
        assert!(matches!(e, PlanError::Schema { .. }), "{e:?}");
        let e = parse_review(r#"{"decision":"approve","notes":{"a":1}}"#).unwrap_err();
        assert!(
            matches!(
                e,
                PlanError::Schema {
                    kind: PlanKind::Review,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = parse_review(r#"{"decision":42}"#).unwrap_err();
        assert!(matches!(e, PlanError::Schema { .. }), "{e:?}");
    }

    #[test]
    fn wrong_document_kind_is_schema_error() {
        // A director plan where a review was expected.
        let e = parse_review(r#"{"status":"complete"}"#).unwrap_err();
        assert!(
            matches!(e, PlanError::Schema { ref error, .. } if error.contains("\"decision\"")),
            "{e:?}"
        );
    }

    // ---- director validation ----

    #[test]
    fn director_validation() {
        let e = parse_director_plan(r#"{"status":"continue","teams":[]}"#).unwrap_err();
        assert!(
            matches!(e, PlanError::Validation { ref problems, .. } if problems[0].contains("\"teams\" is empty"))
        );

        let e = parse_director_plan(
            r#"{"status":"continue","teams":[{"name":"","goal":"g"},{"name":"a","goal":" "},{"name":"Parser","goal":"g"},{"name":"parser","goal":"g"}]}"#,
        )
        .unwrap_err();
        let PlanError::Validation { problems, .. } = e else {
            panic!()
        };
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("team #1 has an empty name"));
        assert!(problems[1].contains("\"a\" has an empty \"goal\""));
        assert!(problems[2].contains("\"Parser\" and \"parser\" are the same after normalisation"));

        let many: Vec<String> = (0..51)
            .map(|i| format!(r#"{{"name":"t{i}","goal":"g"}}"#))
            .collect();
        let e = parse_director_plan(&format!(
            r#"{{"status":"continue","teams":[{}]}}"#,
            many.join(",")
        ))
        .unwrap_err();
        assert!(e.to_string().contains("too many teams: 51"));

        let p = parse_director_plan(
            r#"{"status":"continue","teams":[{"name":"HTTP API!","goal":"g"}]}"#,
        )
        .unwrap();
        let DirectorPlan::Continue { teams, .. } = p.value else {
            panic!()
        };
        assert_eq!(teams[0].name, "http-api");
        assert_eq!(p.warnings.len(), 1);
    }

    // ---- task validation ----

    #[test]
    fn continue_needs_tasks() {
        let p = problems(parse_task_plan(r#"{"status":"continue"}"#));
        assert!(p[0].contains("\"tasks\" is empty or missing"));
    }

    #[test]
    fn ids_are_slugged_and_original_kept_in_title() {
        let p = parse_task_plan(
            r#"{"status":"continue","tasks":[{"id":"Lexer Tokens","title":"Write lexer"},{"id":"T2","title":"Use it","depends_on":["Lexer Tokens"]}]}"#,
        )
        .unwrap();
        let TaskPlan::Continue { tasks } = p.value else {
            panic!()
        };
        assert_eq!(tasks[0].id, "lexer-tokens");
        assert_eq!(tasks[0].title, "Write lexer (id: Lexer Tokens)");
        assert_eq!(tasks[1].id, "t2");
        assert_eq!(tasks[1].depends_on, vec!["lexer-tokens"]);
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
    }

    #[test]
    fn id_rules() {
        let long = "x".repeat(65);
        let p = problems(parse_task_plan(&format!(
            r#"{{"status":"continue","tasks":[{{"id":"","title":"a"}},{{"id":"!!!","title":"b"}},{{"id":"{long}","title":"c"}},{{"id":"t1","title":"d"}},{{"id":"t1","title":"e"}},{{"id":"T1","title":"f"}}]}}"#
        )));
        assert_eq!(p.len(), 5, "{p:?}");
        assert!(p[0].contains("task #1 has an empty id"));
        assert!(p[1].contains("no letters or digits"));
        assert!(p[2].contains("longer than 64"));
        assert!(p[3].contains("duplicate task id: \"t1\""));
        assert!(
            p[4].contains("\"t1\" and \"T1\" are the same after normalisation to \"t1\""),
            "{p:?}"
        );
        // Exactly 64 is fine.
        let ok = "y".repeat(64);
        assert_eq!(
            tasks(&format!(
                r#"{{"status":"continue","tasks":[{{"id":"{ok}","title":"a"}}]}}"#
            ))[0]
                .id,
            ok
        );
    }

    #[test]
    fn title_rules() {
        let p = problems(parse_task_plan(
            r#"{"status":"continue","tasks":[{"id":"t1","title":" "}]}"#,
        ));
        assert!(p[0].contains("empty \"title\""));
        let p = parse_task_plan(r#"{"status":"continue","tasks":[{"id":"t1","description":"Do the thing\nin detail"}]}"#)
            .unwrap();
        let TaskPlan::Continue { tasks } = p.value else {
            panic!()
        };
        assert_eq!(tasks[0].title, "Do the thing");
        assert_eq!(tasks[0].description, "Do the thing\nin detail");
        assert_eq!(p.warnings.len(), 1);
    }

    #[test]
    fn task_cap() {
        let many: Vec<String> = (0..201)
            .map(|i| format!(r#"{{"id":"t{i}","title":"x"}}"#))
            .collect();
        let p = problems(parse_task_plan(&format!(
            r#"{{"status":"continue","tasks":[{}]}}"#,
            many.join(",")
        )));
        assert!(p
            .iter()
            .any(|p| p.contains("too many tasks: 201 (at most 200)")));
        let many: Vec<String> = (0..200)
            .map(|i| format!(r#"{{"id":"t{i}","title":"x"}}"#))
            .collect();
        assert_eq!(
            tasks(&format!(
                r#"{{"status":"continue","tasks":[{}]}}"#,
                many.join(",")
            ))
            .len(),
            200
        );
    }

    #[test]
    fn unknown_dependency() {
        let p = problems(parse_task_plan(
            r#"{"status":"continue","tasks":[{"id":"t1","title":"a","depends_on":["t9"]}]}"#,
        ));
        assert_eq!(p.len(), 1);
        assert!(
            p[0].contains("task \"t1\": \"depends_on\" names \"t9\""),
            "{p:?}"
        );
        assert!(p[0].contains("ids: t1"));
    }

    #[test]
    fn dependency_on_invalid_id_reports_only_the_id() {
        let p = problems(parse_task_plan(
            r#"{"status":"continue","tasks":[{"id":"???","title":"a"},{"id":"t2","title":"b","depends_on":["???"]}]}"#,
        ));
        assert_eq!(p.len(), 1, "{p:?}");
    }

    #[test]
    fn dependencies_dedupe_and_resolve_by_slug() {
        let t = tasks(
            r#"{"status":"continue","tasks":[{"id":"t0","title":"a"},{"id":"t1","title":"b","depends_on":["t0","T0"," t0 "]}]}"#,
        );
        assert_eq!(t[1].depends_on, vec!["t0"]);
    }

    #[test]
    fn cycles_are_named() {
        let p = problems(parse_task_plan(
            r#"{"status":"continue","tasks":[
                {"id":"a","title":"a"},
                {"id":"b","title":"b","depends_on":["c"]},
                {"id":"c","title":"c","depends_on":["d","a"]},
                {"id":"d","title":"d","depends_on":["b"]}]}"#,
        ));
        assert_eq!(p, vec!["\"depends_on\" has a cycle: b -> c -> d -> b"]);
        let p = problems(parse_task_plan(
            r#"{"status":"continue","tasks":[{"id":"a","title":"a","depends_on":["a"]}]}"#,
        ));
        assert_eq!(p, vec!["\"depends_on\" has a cycle: a -> a"]);
    }

    #[test]
    fn diamond_is_not_a_cycle() {
        let t = tasks(
            r#"{"status":"continue","tasks":[{"id":"a","title":"a"},{"id":"b","title":"b","depends_on":["a"]},
            {"id":"c","title":"c","depends_on":["a"]},{"id":"d","title":"d","depends_on":["b","c"]}]}"#,
        );
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn long_dependency_chain_is_fine() {
        let many: Vec<String> = (0..200)
            .map(|i| {
                if i == 0 {
                    r#"{"id":"t0","title":"x"}"#.to_string()
                } else {
                    format!(r#"{{"id":"t{i}","title":"x","depends_on":["t{}"]}}"#, i - 1)
                }
            })
            .collect();
        assert_eq!(
            tasks(&format!(
                r#"{{"status":"continue","tasks":[{}]}}"#,
                many.join(",")
            ))
            .len(),
            200
        );
    }

    #[test]
    fn unsafe_files_dropped_with_warnings() {
        let p = parse_task_plan(
            r#"{"status":"continue","tasks":[{"id":"t1","title":"a","files":["src/a.rs","./src/b.rs","/etc/passwd","../x","a/../../y",".git/config","sub/.GIT/hooks/x","C:\\win","~/x","","src\\c.rs","src/a.rs"]}]}"#,
        )
        .unwrap();
        let TaskPlan::Continue { tasks } = p.value else {
            panic!()
        };
        assert_eq!(tasks[0].files, vec!["src/a.rs", "src/b.rs", "src/c.rs"]);
        assert_eq!(p.warnings.len(), 8, "{:?}", p.warnings);
        assert!(p
            .warnings
            .iter()
            .any(|w| w.contains("/etc/passwd") && w.contains("absolute")));
        assert!(p
            .warnings
            .iter()
            .any(|w| w.contains(".git/config") && w.contains(".git")));
    }

    #[test]
    fn sanitize_path_cases() {
        assert_eq!(sanitize_path("a//b/./c"), Ok("a/b/c".into()));
        assert_eq!(sanitize_path(".gitignore"), Ok(".gitignore".into()));
        assert!(sanitize_path("./").is_err());
        assert!(sanitize_path("a\0b").is_err());
    }

    #[test]
    fn slugify_cases() {
        assert_eq!(slugify("Hello World"), "hello-world");
        assert_eq!(slugify("--a--b--"), "a-b");
        assert_eq!(slugify("ÄÖÜ"), "");
        assert_eq!(slugify("t1"), "t1");
    }

    // ---- review ----

    #[test]
    fn review_paths() {
        assert_eq!(
            parse_review(r#"{"decision":"approve"}"#).unwrap().value,
            ReviewDecision::Approve {
                notes: String::new()
            }
        );
        assert_eq!(
            parse_review(
                "LGTM.\n```json\n{\"decision\": \"approved\", \"notes\": \" nice \"}\n```"
            )
            .unwrap()
            .value,
            ReviewDecision::Approve {
                notes: "nice".into()
            }
        );
        assert_eq!(
            parse_review(r#"{"decision":"revise","feedback":"add tests"}"#)
                .unwrap()
                .value,
            ReviewDecision::Revise {
                feedback: "add tests".into()
            }
        );
        let e = parse_review(r#"{"decision":"revise"}"#).unwrap_err();
        assert!(
            matches!(e, PlanError::Validation { ref problems, .. } if problems[0].contains("\"feedback\" is empty"))
        );
        assert!(matches!(
            parse_review(r#"{"decision":"maybe"}"#).unwrap_err(),
            PlanError::Schema { .. }
        ));
    }

    // ---- repair prompt ----

    #[test]
    fn repair_prompts_quote_error_and_schema() {
        let cases = [
            parse_task_plan("no idea").unwrap_err(),
            parse_task_plan(r#"{"status":"continue","tasks":[,]}"#).unwrap_err(),
            parse_director_plan(r#"{"status":"later"}"#).unwrap_err(),
            parse_task_plan(
                r#"{"status":"continue","tasks":[{"id":"a","title":"a","depends_on":["zz"]}]}"#,
            )
            .unwrap_err(),
            parse_review(r#"{"decision":"revise"}"#).unwrap_err(),
        ];
        for e in cases {
            let p = e.repair_prompt();
            assert!(p.starts_with("[cco:repair]\n[cco-ref:repair/"), "{p}");
            match &e {
                PlanError::Validation { problems, .. } => {
                    assert!(
                        problems.iter().all(|x| p.contains(&format!("\n- {x}"))),
                        "{p}"
                    )
                }
                other => assert!(p.contains(&other.to_string()), "{p}"),
            }
            assert!(p.contains(e.kind().schema()), "{p}");
            assert!(p.contains("ONLY one JSON object"));
            assert!(!p.contains("{{"), "{p}");
        }
        let p = parse_task_plan(
            r#"{"status":"continue","tasks":[{"id":"a","title":"a","depends_on":["zz"]}]}"#,
        )
        .unwrap_err()
        .repair_prompt();
        assert!(
            p.contains("\n- task \"a\": \"depends_on\" names \"zz\""),
            "{p}"
        );
        assert!(p.contains("[cco-ref:repair/task-plan]"));
    }

    // ---- robustness ----

    #[test]
    fn never_panics_on_adversarial_input() {
        let deep_open = "{".repeat(100_000);
        let deep_balanced = format!("{}{}", "{\"a\":".repeat(5_000), "}".repeat(5_000));
        let deep_array = format!(
            "{{\"status\":\"continue\",\"tasks\":{}{}}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let many_small = "{}".repeat(50_000);
        let quotes = "\"{".repeat(20_000);
        let backslashes = format!("{{\"status\":\"{}", "\\".repeat(10_001));
        let big_valid_with_error = format!(
            r#"{{"status":"continue","tasks":[{{"id":"t1","title":"{}"}}],}}"#,
            "x".repeat(1_000_000)
        );
        let inputs: Vec<String> = vec![
            String::new(),
            " ".into(),
            "{".into(),
            "}".into(),
            "}{".into(),
            "{{}}".into(),
            "{\"".into(),
            "{\"\\".into(),
            "\"".into(),
            "\\".into(),
            "`".into(),
            "```".into(),
            "````json\n{\n````".into(),
            "```json".into(),
            "``` {\"status\":\"complete\"".into(),
            "null".into(),
            "[]".into(),
            "[{\"status\":\"complete\"}]".into(),
            "\"just a string\"".into(),
            "\"{\\\"status\\\":\\\"nope\\\"}\"".into(),
            "{\"status\":null}".into(),
            "{\"status\":\"continue\",\"tasks\":[null]}".into(),
            "{\"status\":\"continue\",\"tasks\":[1,2]}".into(),
            "{\"status\":\"continue\",\"teams\":[{\"name\":[],\"goal\":{}}]}".into(),
            "{\"status\":\"continue\",\"tasks\":[{\"id\":\"é\u{0}\u{200b}🦀\",\"title\":\"🦀\"}]}".into(),
            "{\"decision\":\"\u{feff}approve\"}".into(),
            "日本語 {\"status\":\"complete\",\"reason\":\"完了\"} 🦀".into(),
            "\u{feff}{\"status\":\"complete\"}".into(),
            "{\"status\":\"continue\",\"tasks\":[{\"id\":\"a\",\"title\":\"a\",\"files\":[\"\u{0}\",\"\\\\\\\\server\\\\x\",\"..\"]}]}".into(),
            "{\"a\":1e999999}".into(),
            "{\"status\":\"complete\",\"reason\":\"\\ud800\"}".into(),
            deep_open,
            deep_balanced,
            deep_array,
            many_small,
            quotes,
            backslashes,
            big_valid_with_error,
            "{\"status\":\"complete\"}".repeat(10_000),
        ];
        let start = std::time::Instant::now();
        for input in &inputs {
            for cut in [input.len(), input.len() / 2, input.len() / 3] {
                let mut cut = cut;
                while !input.is_char_boundary(cut) {
                    cut -= 1;
                }
                let s = &input[..cut];
                let results = [
                    parse_director_plan(s).map(|_| ()),
                    parse_task_plan(s).map(|_| ()),
                    parse_review(s).map(|_| ()),
                ];
                for r in results {
                    if let Err(e) = r {
                        let _ = e.repair_prompt();
                    }
                }
            }
        }
        assert!(
            start.elapsed().as_secs() < 60,
            "too slow: {:?}",
            start.elapsed()
        );
        // Spot checks.
        assert!(parse_task_plan("{\"status\":\"complete\"}").is_ok());
        assert!(parse_task_plan("[{\"status\":\"complete\"}]").is_ok());
        assert!(parse_task_plan("\u{feff}{\"status\":\"complete\"}").is_ok());
        assert!(
            parse_director_plan("日本語 {\"status\":\"complete\",\"reason\":\"完了\"} 🦀").is_ok()
        );
    }
}
