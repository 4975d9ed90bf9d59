//! Step 3: validation and normalisation of a deserialised plan (see the parent module).

use std::collections::{HashMap, HashSet};

use super::{head, quote, Parsed, PlanError, MAX_ID_LEN, MAX_TASKS, MAX_TEAMS};
use crate::schema::{DirectorPlan, PlanKind, TaskPlan, TaskSpec, TeamGoal};

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
            "{what} {} {} {}",
            id_field(what),
            quote(trimmed),
            if trimmed.chars().any(char::is_alphanumeric) {
                "has no ASCII letters or digits: use only the ASCII letters a-z, the digits 0-9 \
                 and '-' (other letters are dropped)"
            } else {
                "has no letters or digits (use lowercase ASCII letters, digits and '-')"
            }
        ));
        return None;
    }
    if slug.chars().count() > MAX_ID_LEN {
        problems.push(format!(
            "{what} {} {} is longer than {MAX_ID_LEN} characters",
            id_field(what),
            quote(&head(trimmed, 80))
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
                problems.push(format!(
                    "duplicate {what} {}: {}",
                    id_field(what),
                    quote(orig)
                ));
            } else {
                problems.push(format!(
                    "{what} {}s {} and {} are the same after normalisation to {}; rename one",
                    id_field(what),
                    quote(prev),
                    quote(orig),
                    quote(slug)
                ));
            }
        }
    }
}

pub(super) fn validate_director(plan: DirectorPlan) -> Result<Parsed<DirectorPlan>, PlanError> {
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
                warnings.push(format!(
                    "team name {} normalised to {}",
                    quote(&orig),
                    quote(&slug)
                ));
            }
            if goal.is_empty() {
                problems.push(format!("team {} has an empty \"goal\"", quote(&orig)));
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

pub(super) fn validate_tasks(plan: TaskPlan) -> Result<Parsed<TaskPlan>, PlanError> {
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
                problems.push(format!("task {} has an empty \"title\"", quote(&orig)));
            } else {
                title = head(description.lines().next().unwrap_or(""), 80);
                warnings.push(format!(
                    "task {} had no title; using the start of its description",
                    quote(&orig)
                ));
            }
        }
        if description.is_empty() {
            description = title.clone();
        }
        if slug != orig {
            warnings.push(format!(
                "task id {} normalised to {}",
                quote(&orig),
                quote(&slug)
            ));
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
                    "task {}: dropped file {} ({why})",
                    quote(&slug),
                    quote(&head(f, 120))
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
                    "task {}: \"depends_on\" names {}, which is not a task id in this plan (ids: {})",
                    quote(&t.id),
                    quote(&head(d, 80)),
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
