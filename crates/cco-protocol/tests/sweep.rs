//! Planners' and reviewers' answers are an agent's text: every parser takes any of it
//! without a panic, and what it accepts keeps the protocol's promises. A deterministic sweep
//! of generated answers made of the pieces the parsers look at (JSON punctuation, the
//! protocol's keys and values, code fences, escapes, multi-byte and control characters).

use cco_protocol::parse::{sanitize_path, slugify};
use cco_protocol::{
    parse_director_plan, parse_review, parse_task_plan, DirectorPlan, TaskPlan, MAX_ID_LEN,
};
use cco_testkit::Sweep;

/// Up to `max` pieces.
fn text(g: &mut Sweep, max: usize) -> String {
    g.text(PIECES, max)
}

const PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\\",
    "\\\"",
    "\\u",
    "\\ud800",
    "\\u00e9",
    " ",
    "\n",
    "\t",
    "\r",
    "\0",
    "\u{1b}",
    "\u{feff}",
    "é",
    "🦀",
    "日本",
    "```",
    "```json\n",
    "\n```",
    "\"status\"",
    "\"continue\"",
    "\"complete\"",
    "\"reason\"",
    "\"tasks\"",
    "\"teams\"",
    "\"name\"",
    "\"goal\"",
    "\"id\"",
    "\"title\"",
    "\"description\"",
    "\"files\"",
    "\"depends_on\"",
    "\"dependsOn\"",
    "\"acceptance\"",
    "\"decision\"",
    "\"approve\"",
    "\"revise\"",
    "\"feedback\"",
    "\"t1\"",
    "\"t2\"",
    "\"../x\"",
    "\".git/config\"",
    "null",
    "true",
    "1",
    "-1",
    "1e999",
    "0.5",
    "x",
    "Plan:",
    "<",
    ">",
];

/// A relative path that stays inside the repository and out of `.git`.
fn safe_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.starts_with('~')
        && !path.contains('\\')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.eq_ignore_ascii_case(".git"))
}

#[test]
fn any_answer_is_parsed_or_refused_with_a_reason_never_a_panic() {
    let mut g = Sweep::new(0x517c_c1b7_2722_0a95);
    for _ in 0..20_000 {
        let answer = text(&mut g, 50);
        match parse_director_plan(&answer) {
            Ok(parsed) => {
                if let DirectorPlan::Continue { teams, .. } = &parsed.value {
                    for t in teams {
                        assert!(
                            !t.name.is_empty() && !t.goal.trim().is_empty(),
                            "{answer:?}"
                        );
                    }
                }
            }
            Err(e) => assert!(!e.repair_prompt().is_empty()),
        }
        match parse_task_plan(&answer) {
            Ok(parsed) => {
                if let TaskPlan::Continue { tasks } = &parsed.value {
                    for t in tasks {
                        assert!(
                            !t.id.is_empty()
                                && t.id.len() <= MAX_ID_LEN
                                && t.id.bytes().all(|b| b.is_ascii_graphic()),
                            "{answer:?}: id {:?}",
                            t.id
                        );
                        for f in &t.files {
                            assert!(
                                sanitize_path(f).is_ok() && safe_path(f),
                                "{answer:?}: file {f:?}"
                            );
                        }
                    }
                }
            }
            Err(e) => assert!(!e.repair_prompt().is_empty()),
        }
        match parse_review(&answer) {
            Ok(review) => {
                let _ = format!("{review:?}");
            }
            Err(e) => assert!(!e.repair_prompt().is_empty()),
        }
    }
}

#[test]
fn paths_and_names_in_answers_come_out_safe_or_refused() {
    let mut g = Sweep::new(0x2545_f491_4f6c_dd1d);
    for _ in 0..20_000 {
        let raw = text(&mut g, 20);
        if let Ok(path) = sanitize_path(&raw) {
            assert!(safe_path(&path), "{raw:?} -> {path:?}");
        }
        let slug = slugify(&raw);
        assert!(
            slug.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{raw:?} -> {slug:?}"
        );
    }
}

/// Well-formed plans whose values are generated: what validation accepts has ids the rest of
/// cco can put in refs and paths, files that are safe relative paths, dependencies on tasks
/// of the plan.
#[test]
fn plans_with_generated_values_are_accepted_only_with_safe_ids_files_and_dependencies() {
    let mut g = Sweep::new(0x3c6e_f372_fe94_f82b);
    let mut accepted = 0;
    for _ in 0..20_000 {
        let n = 1 + g.below(3);
        let tasks: Vec<serde_json::Value> = (0..n)
            .map(|i| {
                // Mostly ordinary ids, titles and dependencies (so plans get accepted and the
                // values that matter are checked), sometimes generated ones.
                let id = if g.below(4) == 0 {
                    text(&mut g, 4)
                } else {
                    format!("t{i}")
                };
                let depends_on: Vec<String> = match g.below(4) {
                    0 if i > 0 => vec![format!("t{}", g.below(i))],
                    1 => vec![text(&mut g, 3)],
                    _ => vec![],
                };
                serde_json::json!({
                    "id": id,
                    "title": format!("Task {}", text(&mut g, 3)),
                    "files": [text(&mut g, 4), text(&mut g, 4)],
                    "depends_on": depends_on,
                })
            })
            .collect();
        let answer = serde_json::json!({"status": "continue", "tasks": tasks}).to_string();
        let Ok(parsed) = parse_task_plan(&answer) else {
            continue;
        };
        let TaskPlan::Continue { tasks } = &parsed.value else {
            panic!("{answer}: not a plan of tasks");
        };
        accepted += 1;
        let ids: Vec<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
        for t in tasks {
            assert!(
                !t.id.is_empty()
                    && t.id.len() <= MAX_ID_LEN
                    && t.id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'),
                "{answer}: id {:?}",
                t.id
            );
            for f in &t.files {
                assert!(
                    sanitize_path(f).is_ok() && safe_path(f),
                    "{answer}: file {f:?}"
                );
            }
            for d in &t.depends_on {
                assert!(
                    ids.contains(&d.as_str()) && d != &t.id,
                    "{answer}: depends on {d:?}"
                );
            }
        }
    }
    assert!(
        accepted > 100,
        "only {accepted} generated plans were accepted"
    );
}
