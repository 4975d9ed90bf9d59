//! Turning an agent's final answer into a validated plan or review decision.
//!
//! Three steps, each with its own [`PlanError`] variant:
//!
//! 1. **Find** JSON objects in the text ([`crate::extract`]): bare, fenced, or inside prose.
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
const MAX_CANDIDATES: usize = 20_000;
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
    InvalidJson { kind: PlanKind, error: String, excerpt: String },
    /// Valid JSON of the wrong shape (missing or unknown tag, wrong field types).
    #[error("the JSON does not match the {kind} schema: {error}")]
    Schema { kind: PlanKind, error: String },
    /// The right shape, but the content breaks the rules (every problem listed).
    #[error("the {kind} breaks the rules: {}", problems.join("; "))]
    Validation { kind: PlanKind, problems: Vec<String> },
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
    /// excerpt and the expected schema.
    pub fn repair_prompt(&self) -> String {
        let kind = self.kind();
        let details = match self {
            PlanError::NoJson { excerpt, .. } => {
                format!("Your answer contained no JSON object. It began:\n<answer>\n{excerpt}\n</answer>")
            }
            PlanError::InvalidJson { error, excerpt, .. } => format!(
                "The JSON could not be parsed: {error}\nNear:\n<json>\n{excerpt}\n</json>"
            ),
            PlanError::Schema { error, .. } => format!("The JSON has the wrong shape: {error}"),
            PlanError::Validation { problems, .. } => {
                let mut s = String::from("The plan breaks these rules:");
                for p in problems {
                    s.push_str("\n- ");
                    s.push_str(p);
                }
                s
            }
        };
        let vars = crate::prompt::PromptVars::new()
            .with("kind", kind.name())
            .with("kind_slug", crate::parse::slugify(kind.name()))
            .with("problem", self.to_string())
            .with("details", details)
            .with("schema", kind.schema());
        crate::prompt::render(crate::prompt::Prompt::Repair, &vars)
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
                if invalid_tagged.is_none() && span.contains(&quoted_tag) {
                    invalid_tagged = Some((e.to_string(), excerpt_at(span, &e)));
                }
                pos = start + 1;
            }
        }
    }

    if let Some(error) = schema_err {
        return Err(PlanError::Schema { kind, error });
    }
    if let Some((error, excerpt)) = invalid_tagged {
        return Err(PlanError::InvalidJson { kind, error, excerpt });
    }
    // Truncated or unclosed JSON: an unclosed `{` followed by the tag field.
    if let Some(start) = first_unclosed_before_tag(text, &quoted_tag) {
        let tail = &text[start..];
        if let Err(e) = serde_json::from_str::<Value>(tail) {
            return Err(PlanError::InvalidJson { kind, error: e.to_string(), excerpt: excerpt_at(tail, &e) });
        }
    }
    if let Some(error) = untagged {
        return Err(PlanError::Schema { kind, error });
    }
    Err(PlanError::NoJson { kind, excerpt: head(text, EXCERPT_CHARS) })
}

/// Deserialises an object whose tag field is present, normalising the tag's spelling
/// (`" Continue "` -> `continue`, `changes-requested` -> `changes_requested`).
fn from_tagged<T: DeserializeOwned>(obj: &serde_json::Map<String, Value>, tag: &str) -> Result<T, String> {
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
    let line_start: usize = span.split_inclusive('\n').take(e.line().saturating_sub(1)).map(str::len).sum();
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
    if p.starts_with('/') || p.starts_with('~') || (bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic())
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
        problems.push(format!("{what} #{} has an empty {}", index + 1, id_field(what)));
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
            return Ok(Parsed { value: DirectorPlan::Complete { reason: reason.trim().to_string() }, warnings: vec![] })
        }
        DirectorPlan::Continue { summary, teams } => (summary, teams),
    };
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    if teams.is_empty() {
        problems.push("\"status\" is \"continue\" but \"teams\" is empty or missing; list at least one team, or answer \"complete\"".into());
    }
    if teams.len() > MAX_TEAMS {
        problems.push(format!("too many teams: {} (at most {MAX_TEAMS})", teams.len()));
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
        return Err(PlanError::Validation { kind: PlanKind::Director, problems });
    }
    Ok(Parsed { value: DirectorPlan::Continue { summary: summary.trim().to_string(), teams: out }, warnings })
}

fn validate_tasks(plan: TaskPlan) -> Result<Parsed<TaskPlan>, PlanError> {
    let tasks = match plan {
        TaskPlan::Complete { reason } => {
            return Ok(Parsed { value: TaskPlan::Complete { reason: reason.trim().to_string() }, warnings: vec![] })
        }
        TaskPlan::Continue { tasks } => tasks,
    };
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    if tasks.is_empty() {
        problems.push("\"status\" is \"continue\" but \"tasks\" is empty or missing; list at least one task, or answer \"complete\"".into());
    }
    if tasks.len() > MAX_TASKS {
        problems.push(format!("too many tasks: {} (at most {MAX_TASKS})", tasks.len()));
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
                warnings.push(format!("task {orig:?} had no title; using the start of its description"));
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
                Err(why) => warnings.push(format!("task {slug:?}: dropped file {:?} ({why})", head(f, 120))),
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
            problems.push(format!("\"depends_on\" has a cycle: {}", cycle.join(" -> ")));
        }
    }
    if !problems.is_empty() {
        return Err(PlanError::Validation { kind: PlanKind::Task, problems });
    }
    Ok(Parsed { value: TaskPlan::Continue { tasks: out }, warnings })
}

/// The first dependency cycle (as `a -> b -> a`), searching tasks in plan order.
fn find_cycle(tasks: &[TaskSpec]) -> Option<Vec<String>> {
    let index: HashMap<&str, usize> = tasks.iter().enumerate().map(|(i, t)| (t.id.as_str(), i)).collect();
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
                let Some(&d) = index.get(dep.as_str()) else { continue };
                match state[d] {
                    0 => {
                        state[d] = 1;
                        stack.push((d, 0));
                    }
                    1 => {
                        let from = stack.iter().position(|&(n, _)| n == d).unwrap_or(0);
                        let mut cycle: Vec<String> = stack[from..].iter().map(|&(n, _)| tasks[n].id.clone()).collect();
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
