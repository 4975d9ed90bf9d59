//! The demo's content: the sample repository (a tiny POSIX sh calculator), the fake claude
//! script that makes the scripted "team" behave like a real one, and the config.
//!
//! The story the script plays (hierarchy mode: 6 workers in 2 teams of 3):
//! - the Director plans two team goals, `arithmetic` and `helpers`;
//! - each EM splits its goal into three tasks (one function each: code, tests, README line);
//! - workers write the code and tests, run `sh test.sh`, and commit;
//! - `sub` and `mul` both add their line at the same place of README.md: whichever merges
//!   second conflicts, and that worker's own session (prompt `[cco:conflict]`) writes the
//!   resolved README and commits;
//! - the first process on `pow` crashes after writing `lib/pow.sh` (`"times": 1`); cco resumes
//!   the same session (`[cco:resume]`), which adds the tests and commits;
//! - every EM review approves; team branches merge into `main` behind `verifyCommand`
//!   (`sh test.sh`); the Director's re-plan declares the direction met.

use serde_json::{json, Value};

/// `config-examples/demo/orchestrator.json`: the demo's config (one file for both `cco demo`
/// and the checked-in example).
pub const CONFIG: &str = include_str!("../../../../config-examples/demo/orchestrator.json");

/// Names of the generated entries in a demo folder.
pub const REPO_DIR: &str = "demo-repo";
pub const SCRIPT_FILE: &str = "fake-claude-script.json";
pub const STATE_DIR: &str = "fake-claude-state";
pub const WRAPPER: &str = "claude";
/// Marks a folder `cco demo` created, so a re-run may clean it.
pub const MARKER: &str = ".cco-demo";
/// What a re-run removes before it writes everything again (the old run's clone and logs
/// belong to a sample repository that no longer exists).
pub const GENERATED: &[&str] = &[
    REPO_DIR,
    SCRIPT_FILE,
    STATE_DIR,
    WRAPPER,
    "workspace",
    "logs",
    // `--nodes N`: the nodes' folders and logs, and the cluster's cookie.
    "nodes",
    "cluster-cookie",
];

/// The sample repository's initial files.
pub const REPO_FILES: &[(&str, &str)] = &[
    (
        "README.md",
        include_str!("../../assets/demo/repo/README.md"),
    ),
    (
        "PROJECT_DIRECTION.md",
        include_str!("../../assets/demo/repo/PROJECT_DIRECTION.md"),
    ),
    ("calc.sh", include_str!("../../assets/demo/repo/calc.sh")),
    ("test.sh", include_str!("../../assets/demo/repo/test.sh")),
    (
        "lib/add.sh",
        include_str!("../../assets/demo/repo/lib/add.sh"),
    ),
    (
        "tests/add.sh",
        include_str!("../../assets/demo/repo/tests/add.sh"),
    ),
];

const README: &str = include_str!("../../assets/demo/repo/README.md");
const ADD_LINE: &str = "- `add A B`: A plus B\n";

/// One function of the calculator: one task.
pub struct Function {
    pub id: &'static str,
    pub title: &'static str,
    pub lib: &'static str,
    pub test: &'static str,
    /// The README line the task adds (only `sub` and `mul`: they conflict on purpose).
    pub readme_line: Option<&'static str>,
}

pub const ARITHMETIC: &[Function] = &[
    Function {
        id: "sub",
        title: "Add sub (subtraction)",
        lib: include_str!("../../assets/demo/work/lib/sub.sh"),
        test: include_str!("../../assets/demo/work/tests/sub.sh"),
        readme_line: Some("- `sub A B`: A minus B\n"),
    },
    Function {
        id: "mul",
        title: "Add mul (multiplication)",
        lib: include_str!("../../assets/demo/work/lib/mul.sh"),
        test: include_str!("../../assets/demo/work/tests/mul.sh"),
        readme_line: Some("- `mul A B`: A times B\n"),
    },
    Function {
        id: "div",
        title: "Add div (integer division, error on zero)",
        lib: include_str!("../../assets/demo/work/lib/div.sh"),
        test: include_str!("../../assets/demo/work/tests/div.sh"),
        readme_line: None,
    },
];

pub const HELPERS: &[Function] = &[
    Function {
        id: "pow",
        title: "Add pow (integer power)",
        lib: include_str!("../../assets/demo/work/lib/pow.sh"),
        test: include_str!("../../assets/demo/work/tests/pow.sh"),
        readme_line: None,
    },
    Function {
        id: "mod",
        title: "Add mod (remainder, error on zero)",
        lib: include_str!("../../assets/demo/work/lib/mod.sh"),
        test: include_str!("../../assets/demo/work/tests/mod.sh"),
        readme_line: None,
    },
    Function {
        id: "max",
        title: "Add max (larger of two)",
        lib: include_str!("../../assets/demo/work/lib/max.sh"),
        test: include_str!("../../assets/demo/work/tests/max.sh"),
        readme_line: None,
    },
];

/// The task that crashes once and is resumed.
pub const CRASHING_TASK: &str = "pow";

/// Every function the team adds (for checks: each has `lib/<id>.sh` and `tests/<id>.sh`).
pub fn all_functions() -> impl Iterator<Item = &'static Function> {
    ARITHMETIC.iter().chain(HELPERS.iter())
}

/// README.md with `lines` added after the `add` line.
fn readme_with(lines: &[&str]) -> String {
    let mut added = String::from(ADD_LINE);
    for line in lines {
        added.push_str(line);
    }
    README.replacen(ADD_LINE, &added, 1)
}

fn task_json(f: &Function) -> Value {
    let mut files = vec![format!("lib/{}.sh", f.id), format!("tests/{}.sh", f.id)];
    if f.readme_line.is_some() {
        files.push("README.md".into());
    }
    json!({
        "id": f.id,
        "title": f.title,
        "description": format!(
            "Implement `{id}` in lib/{id}.sh (POSIX sh, one function named {id}), add checks in \
             tests/{id}.sh (see tests/add.sh), and keep `sh test.sh` green.{readme}",
            id = f.id,
            readme = if f.readme_line.is_some() { " List the function in the README's Functions section." } else { "" }
        ),
        "files": files,
        "acceptance": format!("sh test.sh passes and covers {}", f.id),
    })
}

fn worker_rule(f: &Function) -> Value {
    let mut steps = vec![
        json!({"text": format!("Implementing {} in lib/{}.sh, then its tests.", f.id, f.id)}),
        json!({"write": {"path": format!("lib/{}.sh", f.id), "content": f.lib}}),
        json!({"write": {"path": format!("tests/{}.sh", f.id), "content": f.test}}),
    ];
    if let Some(line) = f.readme_line {
        steps.push(json!({"write": {"path": "README.md", "content": readme_with(&[line])}}));
    }
    steps.push(json!({"bash": "sh test.sh"}));
    steps.push(json!({"commit": f.title}));
    json!({
        "name": format!("worker: task {}", f.id),
        "match": {"role": "worker", "prompt_contains": format!("Task ID: {}\n", f.id)},
        "steps": steps,
        "result": format!("Added {id} in lib/{id}.sh with checks in tests/{id}.sh; sh test.sh passes.", id = f.id),
        "cost_usd": 0.034
    })
}

/// The fake claude script of the demo.
pub fn script() -> Value {
    let plan = |functions: &[Function]| json!({"status": "continue", "tasks": functions.iter().map(task_json).collect::<Vec<_>>()});
    let crashing = HELPERS
        .iter()
        .find(|f| f.id == CRASHING_TASK)
        .expect("the crashing task is a helper");
    // Planners and reviewers answer through the CLI's structured output (`--json-schema`),
    // or as text when the run does not use it.
    let teams = json!({"status": "continue", "summary": "calc needs six functions; they split into two independent teams.", "teams": [
        {"name": "arithmetic", "goal": "Add sub, mul and div to calc, each with tests and a README entry."},
        {"name": "helpers", "goal": "Add pow, mod and max to calc, each with tests."}
    ]});
    let done = json!({"status": "complete", "reason": "All six functions are on main with tests; sh test.sh passes."});
    let approve = json!({"decision": "approve", "notes": "Function, tests and docs match the task; test.sh passes."});
    let resolution_approved = json!({"decision": "approve", "notes": "Both sides' README entries are kept; no conflict marker is left."});
    let mut rules = vec![
        json!({
            "name": "director: team goals",
            "match": {"role": "director", "prompt_contains": "[cco:director-plan]"},
            "steps": [
                {"text": "Reading PROJECT_DIRECTION.md and the code: two independent areas, one team each."},
                {"structured_output": teams.clone()}
            ],
            "result": teams.to_string(),
            "cost_usd": 0.12
        }),
        json!({
            "name": "director: re-plan after both teams merged",
            "match": {"role": "director", "prompt_contains": "[cco:replan]"},
            "steps": [{"structured_output": done.clone()}],
            "result": done.to_string(),
            "cost_usd": 0.05
        }),
        json!({
            "name": "em: split the arithmetic goal",
            "match": {"role": "em", "prompt_contains": "Goal: arithmetic:"},
            "steps": [{"structured_output": plan(ARITHMETIC)}],
            "result": plan(ARITHMETIC).to_string(),
            "cost_usd": 0.04
        }),
        json!({
            "name": "em: split the helpers goal",
            "match": {"role": "em", "prompt_contains": "Goal: helpers:"},
            "steps": [{"structured_output": plan(HELPERS)}],
            "result": plan(HELPERS).to_string(),
            "cost_usd": 0.04
        }),
        json!({
            "name": "em: review the README conflict's resolution",
            "match": {"prompt_contains": "[cco:review-resolution]"},
            "steps": [{"structured_output": resolution_approved.clone()}],
            "result": resolution_approved.to_string(),
            "cost_usd": 0.009
        }),
        json!({
            "name": "em: review",
            "match": {"prompt_contains": "[cco:review]"},
            "steps": [{"structured_output": approve.clone()}],
            "result": approve.to_string(),
            "cost_usd": 0.011
        }),
        json!({
            "name": "worker: the README conflict between sub and mul",
            "match": {"role": "worker", "prompt_contains": "[cco:conflict]"},
            "steps": [
                {"text": "README.md conflicts: both sides added a line to the Functions list. Keeping both."},
                {"write": {"path": "README.md", "content": readme_with(&[
                    ARITHMETIC[0].readme_line.unwrap_or_default(),
                    ARITHMETIC[1].readme_line.unwrap_or_default(),
                ])}},
                {"bash": "sh test.sh"},
                {"commit": "Merge the team branch: keep both README entries"}
            ],
            "result": "Resolved README.md by keeping both function entries; sh test.sh passes.",
            "cost_usd": 0.015
        }),
        json!({
            "name": "worker: pow crashes once, mid-task",
            "match": {"role": "worker", "prompt_contains": format!("Task ID: {}\n", crashing.id)},
            "times": 1,
            "steps": [
                {"text": "Implementing pow in lib/pow.sh."},
                {"write": {"path": "lib/pow.sh", "content": crashing.lib}},
                {"crash": {"exit_code": 1}}
            ]
        }),
        json!({
            "name": "worker: the resumed pow session finishes the task",
            "match": {"role": "worker", "prompt_contains": "[cco:resume]"},
            "steps": [
                {"text": "Resuming: lib/pow.sh is written; adding its tests and committing."},
                {"write": {"path": "tests/pow.sh", "content": crashing.test}},
                {"bash": "sh test.sh"},
                {"commit": crashing.title}
            ],
            "result": "Added pow in lib/pow.sh with checks in tests/pow.sh; sh test.sh passes.",
            "cost_usd": 0.021
        }),
    ];
    rules.extend(all_functions().map(worker_rule));
    json!({"rules": rules, "default": {"result": "ok"}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_parses_and_is_a_hierarchy() {
        let config = cco_config::Config::from_json_str(
            CONFIG,
            std::path::Path::new("/demo/orchestrator.json"),
        )
        .unwrap();
        assert!(!config.is_flat());
        assert_eq!(config.team_count(), 2);
        assert_eq!(config.verify_command.as_deref(), Some("sh test.sh"));
    }

    #[test]
    fn the_conflicting_readmes_differ_on_the_same_line() {
        let sub = readme_with(&[ARITHMETIC[0].readme_line.unwrap()]);
        let mul = readme_with(&[ARITHMETIC[1].readme_line.unwrap()]);
        assert_ne!(sub, mul);
        assert_eq!(sub.lines().count(), mul.lines().count());
        assert!(readme_with(&[]) == README);
    }
}
