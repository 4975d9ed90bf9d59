//! The role prompts and their rendering.
//!
//! Every prompt is a Markdown file in `prompts/`, compiled in with `include_str!`. Its first
//! line is a stable marker (`[cco:worker-task]`, ...) and its second a reference line
//! (`[cco-ref:worker-task/t1]`) so scripted test doubles can match prompts by substring.
//!
//! [`render`] substitutes `{{name}}` placeholders in one pass: a value is inserted verbatim and
//! never scanned again, so text that came from an agent (a result, feedback, a title) cannot
//! inject placeholders. Unknown placeholders are left as they are.
//!
//! The `*_prompt` helpers fill the variables each template needs from an [`AgentContext`] and
//! the task at hand; use them rather than [`render`] directly.

use std::collections::BTreeMap;

use crate::schema::{PlanKind, TaskSpec};

/// One prompt template per role or turn kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prompt {
    /// Director: plan teams (`[cco:director-plan]`).
    Director,
    /// Flat Coordinator: plan tasks directly (`[cco:coordinator-plan]`).
    Coordinator,
    /// EM: split the team goal into tasks (`[cco:em-plan]`).
    Em,
    /// Worker: implement one task (`[cco:worker-task]`).
    Worker,
    /// EM / Coordinator: review a finished task (`[cco:review]`).
    Review,
    /// Director / Coordinator: plan the next round (`[cco:replan]`).
    Replan,
    /// Any agent: out of time, commit and finish (`[cco:timeout]`).
    Timeout,
    /// Worker: resolve a merge conflict (`[cco:conflict]`).
    Conflict,
    /// Worker: the EM's revise feedback (`[cco:feedback]`).
    Feedback,
    /// Any planner: the answer was unusable, answer again (`[cco:repair]`); see
    /// [`crate::PlanError::repair_prompt`].
    Repair,
}

impl Prompt {
    /// Every prompt, in declaration order.
    pub const ALL: [Prompt; 10] = [
        Prompt::Director,
        Prompt::Coordinator,
        Prompt::Em,
        Prompt::Worker,
        Prompt::Review,
        Prompt::Replan,
        Prompt::Timeout,
        Prompt::Conflict,
        Prompt::Feedback,
        Prompt::Repair,
    ];

    /// The raw template text.
    pub fn template(self) -> &'static str {
        match self {
            Prompt::Director => include_str!("../prompts/director.md"),
            Prompt::Coordinator => include_str!("../prompts/coordinator.md"),
            Prompt::Em => include_str!("../prompts/em.md"),
            Prompt::Worker => include_str!("../prompts/worker.md"),
            Prompt::Review => include_str!("../prompts/review.md"),
            Prompt::Replan => include_str!("../prompts/replan.md"),
            Prompt::Timeout => include_str!("../prompts/timeout.md"),
            Prompt::Conflict => include_str!("../prompts/conflict.md"),
            Prompt::Feedback => include_str!("../prompts/feedback.md"),
            Prompt::Repair => include_str!("../prompts/repair.md"),
        }
    }

    /// The kind named in the marker: `director-plan`, `worker-task`, ...
    pub fn kind(self) -> &'static str {
        match self {
            Prompt::Director => "director-plan",
            Prompt::Coordinator => "coordinator-plan",
            Prompt::Em => "em-plan",
            Prompt::Worker => "worker-task",
            Prompt::Review => "review",
            Prompt::Replan => "replan",
            Prompt::Timeout => "timeout",
            Prompt::Conflict => "conflict",
            Prompt::Feedback => "feedback",
            Prompt::Repair => "repair",
        }
    }

    /// The first line of every rendering: `[cco:<kind>]`.
    pub fn marker(self) -> String {
        format!("[cco:{}]", self.kind())
    }
}

/// Values for the `{{name}}` placeholders of a template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromptVars {
    vars: BTreeMap<String, String>,
}

impl PromptVars {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` (builder style).
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set(name, value);
        self
    }

    /// Sets `name`, replacing an earlier value.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

/// Renders a built-in template. See [`render_str`].
pub fn render(template: Prompt, vars: &PromptVars) -> String {
    render_str(template.template(), vars)
}

/// Replaces each `{{name}}` (name: ASCII letters, digits, `_`) with its value, in one pass.
/// Unknown names and malformed braces are copied as they are; inserted values are never
/// re-scanned.
pub fn render_str(template: &str, vars: &PromptVars) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let name_len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        let name = &after[..name_len];
        match (after[name_len..].starts_with("}}"), vars.get(name)) {
            (true, Some(value)) if !name.is_empty() => {
                out.push_str(value);
                rest = &after[name_len + 2..];
            }
            _ => {
                // Not a placeholder here; the second `{` may start one (`{{{a}}}`).
                out.push('{');
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Who an agent is: filled into the identity block of every prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentContext {
    /// cco's id for the agent (also `CCO_AGENT_ID`), e.g. `w-parser-1`.
    pub agent_id: String,
    /// The team name; empty for the Director and the flat Coordinator (shown as `(none)`).
    pub team: String,
    /// The agent's own branch (the team branch for an EM, the task branch for a worker).
    pub branch: String,
    /// The branch its work is based on and merged into.
    pub base_branch: String,
    /// The agent's working directory (its git worktree).
    pub worktree: String,
}

impl AgentContext {
    /// The identity variables: `agent_id`, `team`, `branch`, `base_branch`, `worktree`.
    pub fn vars(&self) -> PromptVars {
        PromptVars::new()
            .with("agent_id", or_none(&self.agent_id))
            .with("team", or_none(&self.team))
            .with("branch", or_none(&self.branch))
            .with("base_branch", or_none(&self.base_branch))
            .with("worktree", or_none(&self.worktree))
    }
}

/// Which planner a [`replan_prompt`] goes to (it decides the expected schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Planner {
    /// Hierarchy mode: answers a [`crate::DirectorPlan`].
    Director,
    /// Flat mode: answers a [`crate::TaskPlan`].
    Coordinator,
}

impl Planner {
    /// The document this planner answers with.
    pub fn plan_kind(self) -> PlanKind {
        match self {
            Planner::Director => PlanKind::Director,
            Planner::Coordinator => PlanKind::Task,
        }
    }
}

/// What happened in the round a [`replan_prompt`] reports on. Each entry is one line, e.g.
/// `t1 "Add lexer": merged` or `parser: 2 of 3 tasks merged`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundReport {
    pub merged: Vec<String>,
    pub failed: Vec<String>,
    /// Free text (budget left, time left, warnings); may be empty.
    pub notes: String,
}

/// `[cco:director-plan]`: the Director's first planning turn. `direction` is the text of
/// PROJECT_DIRECTION.md.
pub fn director_prompt(ctx: &AgentContext, direction: &str, max_teams: usize) -> String {
    let vars = ctx
        .vars()
        .with("direction", direction.trim())
        .with("max_teams", max_teams.to_string())
        .with("schema", PlanKind::Director.schema());
    render(Prompt::Director, &vars)
}

/// `[cco:coordinator-plan]`: the flat Coordinator's first planning turn.
pub fn coordinator_prompt(ctx: &AgentContext, direction: &str, max_tasks: usize) -> String {
    let vars = ctx
        .vars()
        .with("direction", direction.trim())
        .with("max_tasks", max_tasks.to_string())
        .with("schema", PlanKind::Task.schema());
    render(Prompt::Coordinator, &vars)
}

/// `[cco:em-plan]`: an EM's planning turn for its team's goal (the team is `ctx.team`).
/// Contains `Team: <team>` and `Goal: <goal>`.
pub fn em_plan_prompt(ctx: &AgentContext, goal: &str, max_tasks: usize) -> String {
    let vars = ctx
        .vars()
        .with("goal", one_line(goal))
        .with("max_tasks", max_tasks.to_string())
        .with("schema", PlanKind::Task.schema());
    render(Prompt::Em, &vars)
}

/// `[cco:worker-task]`: a worker's task. Contains `Task ID: <id>` and `Title: <title>`.
pub fn task_prompt(task: &TaskSpec, ctx: &AgentContext) -> String {
    let vars = task_vars(ctx, task)
        .with("description", or_none(task.description.trim()))
        .with("files", bullets(&task.files, "(none given)"))
        .with("acceptance", or_none(task.acceptance.trim()))
        .with(
            "depends_on",
            if task.depends_on.is_empty() {
                "(none)".to_string()
            } else {
                task.depends_on.join(", ")
            },
        );
    render(Prompt::Worker, &vars)
}

/// `[cco:review]`: the EM's (or flat Coordinator's) review of a finished task. `result` is the
/// worker's final answer, `diff` a diff summary (e.g. `git diff --stat` plus excerpts) of
/// `worker_branch` against `ctx.branch`.
pub fn review_prompt(
    ctx: &AgentContext,
    task: &TaskSpec,
    worker_branch: &str,
    result: &str,
    diff: &str,
) -> String {
    let vars = task_vars(ctx, task)
        .with("description", or_none(task.description.trim()))
        .with("acceptance", or_none(task.acceptance.trim()))
        .with("worker_branch", or_none(worker_branch))
        .with("result", or_none(result.trim()))
        .with("diff", or_none(diff.trim()))
        .with("schema", PlanKind::Review.schema());
    render(Prompt::Review, &vars)
}

/// `[cco:replan]`: the Director's or Coordinator's follow-up planning turn.
pub fn replan_prompt(
    ctx: &AgentContext,
    planner: Planner,
    report: &RoundReport,
    max_items: usize,
) -> String {
    let (role, items) = match planner {
        Planner::Director => ("director", "teams"),
        Planner::Coordinator => ("coordinator", "tasks"),
    };
    let vars = ctx
        .vars()
        .with("role", role)
        .with("items", items)
        .with("max_items", max_items.to_string())
        .with("merged", bullets(&report.merged, "(nothing)"))
        .with("failed", bullets(&report.failed, "(nothing)"))
        .with("notes", or_none(report.notes.trim()))
        .with("schema", planner.plan_kind().schema());
    render(Prompt::Replan, &vars)
}

/// `[cco:timeout]`: sent (resumed) to an agent whose time is up.
pub fn timeout_prompt(ctx: &AgentContext) -> String {
    render(Prompt::Timeout, &ctx.vars())
}

/// `[cco:conflict]`: resolve the conflicts left by merging `merging` into `ctx.branch`.
pub fn conflict_prompt(ctx: &AgentContext, merging: &str, files: &[String]) -> String {
    let vars = ctx
        .vars()
        .with("merging", or_none(merging))
        .with("files", bullets(files, "(see `git status`)"));
    render(Prompt::Conflict, &vars)
}

/// `[cco:feedback]`: the EM's revise feedback, resumed into the worker's session.
pub fn feedback_prompt(ctx: &AgentContext, task: &TaskSpec, feedback: &str) -> String {
    let vars = task_vars(ctx, task).with("feedback", or_none(feedback.trim()));
    render(Prompt::Feedback, &vars)
}

fn task_vars(ctx: &AgentContext, task: &TaskSpec) -> PromptVars {
    ctx.vars()
        .with("task_id", or_none(&task.id))
        .with("title", one_line(&task.title))
}

fn or_none(s: &str) -> String {
    if s.trim().is_empty() {
        "(none)".to_string()
    } else {
        s.to_string()
    }
}

/// Single-line fields (`Title:`, `Goal:`) must stay on their line so markers stay matchable.
fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    or_none(&joined)
}

fn bullets(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        return empty.to_string();
    }
    items
        .iter()
        .map(|i| format!("- {i}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> AgentContext {
        AgentContext {
            agent_id: "w-parser-1".into(),
            team: "parser".into(),
            branch: "cco/parser/t1".into(),
            base_branch: "cco/parser".into(),
            worktree: "/tmp/wt/t1".into(),
        }
    }

    #[test]
    fn render_substitutes_known_and_keeps_unknown() {
        let v = PromptVars::new().with("a", "1").with("b_2", "two");
        assert_eq!(render_str("x{{a}}y{{b_2}}z{{c}}", &v), "x1ytwoz{{c}}");
        assert_eq!(render_str("{{", &v), "{{");
        assert_eq!(render_str("{{a", &v), "{{a");
        assert_eq!(render_str("{{{a}}}", &v), "{1}");
        assert_eq!(render_str("{{ a }}", &v), "{{ a }}");
        assert_eq!(render_str("{{}}", &v), "{{}}");
        assert_eq!(render_str("é{{a}}ü", &v), "é1ü");
    }

    #[test]
    fn values_are_not_rescanned() {
        let v = PromptVars::new().with("a", "{{b}}").with("b", "SECRET");
        assert_eq!(render_str("{{a}}", &v), "{{b}}");
        let v = PromptVars::new().with("a", "{{").with("b", "B");
        assert_eq!(render_str("{{a}}b}}", &v), "{{b}}");
    }

    #[test]
    fn every_template_starts_with_its_marker_and_renders() {
        for p in Prompt::ALL {
            let text = p.template();
            assert_eq!(text.lines().next().unwrap(), p.marker(), "{p:?}");
            assert!(
                text.lines()
                    .nth(1)
                    .unwrap()
                    .starts_with(&format!("[cco-ref:{}/", p.kind())),
                "{p:?}"
            );
        }
        let c = ctx();
        let task = TaskSpec::new("t1", "Add lexer");
        let rendered = [
            (
                Prompt::Director,
                director_prompt(&c, "Build a calculator", 4),
            ),
            (
                Prompt::Coordinator,
                coordinator_prompt(&c, "Build a calculator", 10),
            ),
            (Prompt::Em, em_plan_prompt(&c, "Parse everything", 10)),
            (Prompt::Worker, task_prompt(&task, &c)),
            (
                Prompt::Review,
                review_prompt(&c, &task, "cco/parser/t1", "done", "1 file changed"),
            ),
            (
                Prompt::Replan,
                replan_prompt(&c, Planner::Director, &RoundReport::default(), 4),
            ),
            (Prompt::Timeout, timeout_prompt(&c)),
            (
                Prompt::Conflict,
                conflict_prompt(&c, "cco/parser", &["src/a.rs".into()]),
            ),
            (Prompt::Feedback, feedback_prompt(&c, &task, "add tests")),
        ];
        for (p, text) in rendered {
            assert_eq!(text.lines().next().unwrap(), p.marker());
            assert!(!text.contains("{{"), "{p:?} left a placeholder:\n{text}");
            assert!(text.contains("Agent ID: w-parser-1"), "{p:?}");
            assert!(text.contains("Branch: cco/parser/t1"), "{p:?}");
            assert!(text.contains("Base branch: cco/parser"), "{p:?}");
            assert!(text.contains("Team: parser"), "{p:?}");
        }
    }

    #[test]
    fn worker_prompt_contents() {
        let mut task = TaskSpec::new("t1", "Add\nlexer");
        task.description = "Write src/lexer.rs".into();
        task.files = vec!["src/lexer.rs".into(), "src/lib.rs".into()];
        task.acceptance = "cargo test passes".into();
        task.depends_on = vec!["t0".into()];
        let text = task_prompt(&task, &ctx());
        assert!(text.starts_with("[cco:worker-task]\n[cco-ref:worker-task/t1]\n"));
        assert!(text.contains("\nTask ID: t1\n"));
        assert!(text.contains("\nTitle: Add lexer\n"));
        assert!(text.contains("Task t1"));
        assert!(text.contains("- src/lexer.rs\n- src/lib.rs"));
        assert!(text.contains("cargo test passes"));
        assert!(text.contains("COMMIT"));
        assert!(text.contains("t0"));
    }

    #[test]
    fn em_prompt_has_team_and_goal() {
        let text = em_plan_prompt(&ctx(), "Make the parser\nhandle errors", 8);
        assert!(text.starts_with("[cco:em-plan]\n[cco-ref:em-plan/parser]\n"));
        assert!(text.contains("\nTeam: parser\n"));
        assert!(text.contains("\nGoal: Make the parser handle errors\n"));
        assert!(text.contains("\"status\":\"continue\",\"tasks\""));
    }

    #[test]
    fn agent_text_cannot_inject_placeholders() {
        let task = TaskSpec::new("t1", "{{agent_id}}");
        let text = review_prompt(
            &ctx(),
            &task,
            "b",
            "I did {{schema}} and {{diff}}",
            "{{result}}",
        );
        assert!(text.contains("Title: {{agent_id}}"));
        assert!(text.contains("I did {{schema}} and {{diff}}"));
        assert!(text.contains("<diff>\n{{result}}\n</diff>"));
    }

    #[test]
    fn director_and_coordinator_have_no_team() {
        let c = AgentContext {
            agent_id: "director".into(),
            base_branch: "main".into(),
            ..Default::default()
        };
        let text = director_prompt(&c, "  Do X.  ", 3);
        assert!(text.contains("Team: (none)"));
        assert!(text.contains("<direction>\nDo X.\n</direction>"));
        assert!(text.contains("at most 3 teams"));
        assert!(text.contains("\"status\":\"complete\""));
        let text = replan_prompt(
            &c,
            Planner::Coordinator,
            &RoundReport {
                merged: vec!["t1: merged".into()],
                failed: vec![],
                notes: String::new(),
            },
            7,
        );
        assert!(text.contains("- t1: merged"));
        assert!(text.contains("at most 7 tasks"));
        assert!(text.contains("\"tasks\":["));
    }
}
