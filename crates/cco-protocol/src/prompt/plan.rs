//! Planning prompts: the Director's, the flat Coordinator's and an EM's first plan, and every
//! planner's next round.

use super::{bullets, one_line, or_none, render, AnswerFormat, Identity, Prompt, Role};
use crate::schema::{PlanKind, TeamGoal};

/// Given to a planner when neither `projectDirection` nor `PROJECT_DIRECTION.md` exists.
pub const NO_DIRECTION: &str = "No written direction was given. Read the code and its README, \
    then plan the most valuable improvements: fix bugs, complete unfinished features, add \
    missing tests.";

fn direction_text(direction: Option<&str>) -> String {
    match direction.map(str::trim).filter(|d| !d.is_empty()) {
        Some(d) => d.to_string(),
        None => NO_DIRECTION.to_string(),
    }
}

/// `[cco:director-plan]`: the Director's first planning turn (hierarchy mode).
#[derive(Debug, Clone)]
pub struct DirectorPlanPrompt<'a> {
    pub who: &'a Identity,
    /// The text of PROJECT_DIRECTION.md (or `projectDirection`); `None`: [`NO_DIRECTION`].
    pub direction: Option<&'a str>,
    pub max_teams: usize,
    pub answer: AnswerFormat,
}

impl DirectorPlanPrompt<'_> {
    pub fn render(&self) -> String {
        let limit = ("max_teams", self.max_teams);
        let answer = (PlanKind::Director, self.answer);
        render_first_plan(Prompt::Director, self.who, self.direction, limit, answer)
    }
}

/// The Director's and the Coordinator's first plan: direction, a limit, the answer form.
fn render_first_plan(
    prompt: Prompt,
    who: &Identity,
    direction: Option<&str>,
    (limit_name, limit): (&str, usize),
    (kind, answer): (PlanKind, AnswerFormat),
) -> String {
    let vars = who
        .vars()
        .with("direction", direction_text(direction))
        .with(limit_name, limit.to_string())
        .with("answer", answer.instructions(kind));
    render(prompt, &vars)
}

/// `[cco:coordinator-plan]`: the flat Coordinator's first planning turn.
#[derive(Debug, Clone)]
pub struct CoordinatorPlanPrompt<'a> {
    pub who: &'a Identity,
    /// As [`DirectorPlanPrompt::direction`].
    pub direction: Option<&'a str>,
    pub max_tasks: usize,
    pub answer: AnswerFormat,
}

impl CoordinatorPlanPrompt<'_> {
    pub fn render(&self) -> String {
        let limit = ("max_tasks", self.max_tasks);
        let answer = (PlanKind::Task, self.answer);
        render_first_plan(Prompt::Coordinator, self.who, self.direction, limit, answer)
    }
}

/// `[cco:em-plan]`: an EM's planning turn for its team's goal. Contains `Team: <team>` (from
/// `who.team`) and `Goal: <team name>: <goal>` on one line.
#[derive(Debug, Clone)]
pub struct EmPlanPrompt<'a> {
    pub who: &'a Identity,
    pub goal: &'a TeamGoal,
    pub max_tasks: usize,
    pub answer: AnswerFormat,
}

impl EmPlanPrompt<'_> {
    pub fn render(&self) -> String {
        let goal = if self.goal.name.trim().is_empty() {
            self.goal.goal.clone()
        } else {
            format!("{}: {}", self.goal.name, self.goal.goal)
        };
        render_em(self.who, &goal, self.max_tasks, self.answer)
    }
}

pub(super) fn render_em(
    who: &Identity,
    goal: &str,
    max_tasks: usize,
    answer: AnswerFormat,
) -> String {
    let vars = who
        .vars()
        .with("goal", one_line(goal))
        .with("max_tasks", max_tasks.to_string())
        .with("answer", answer.instructions(PlanKind::Task));
    render(Prompt::Em, &vars)
}

/// What happened in the round a [`ReplanPrompt`] reports on. Each entry is one line, e.g.
/// `t1 "Add lexer": merged` or `parser: 2 of 3 tasks merged`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundReport {
    pub merged: Vec<String>,
    pub failed: Vec<String>,
    /// Free text (budget left, time left, earlier rounds); may be empty.
    pub notes: String,
}

impl RoundReport {
    /// Records a merged task as `t1 "Title": merged`.
    pub fn task_merged(&mut self, id: &str, title: &str) {
        self.merged
            .push(format!("{id} \"{}\": merged", one_line(title)));
    }

    /// Records a failed task as `t1 "Title": <reason>`.
    pub fn task_failed(&mut self, id: &str, title: &str, reason: &str) {
        let reason = one_line(reason);
        self.failed
            .push(format!("{id} \"{}\": {reason}", one_line(title)));
    }
}

/// `[cco:replan]`: a planner's follow-up turn. The expected document follows `who.role`: a
/// [`crate::DirectorPlan`] for the Director, a [`crate::TaskPlan`] otherwise.
#[derive(Debug, Clone)]
pub struct ReplanPrompt<'a> {
    pub who: &'a Identity,
    pub report: &'a RoundReport,
    pub max_items: usize,
    pub answer: AnswerFormat,
}

impl ReplanPrompt<'_> {
    pub fn render(&self) -> String {
        let kind = self.who.role.plan_kind().unwrap_or(PlanKind::Task);
        let (items, item_ids, target) = match (kind, self.who.role) {
            (PlanKind::Director, _) => ("teams", "team names", "direction"),
            (_, Role::Em) => ("tasks", "task ids", "team goal"),
            _ => ("tasks", "task ids", "direction"),
        };
        let vars = self
            .who
            .vars()
            .with("items", items)
            .with("item_ids", item_ids)
            .with("target", target)
            .with("max_items", self.max_items.to_string())
            .with("merged", bullets(&self.report.merged, "(nothing)"))
            .with("failed", bullets(&self.report.failed, "(nothing)"))
            .with("notes", or_none(self.report.notes.trim()))
            .with("answer", self.answer.instructions(kind));
        render(Prompt::Replan, &vars)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn director_plan() {
        let who = director();
        let text = DirectorPlanPrompt {
            who: &who,
            direction: Some("  Build a calculator.  "),
            max_teams: 3,
            answer: AnswerFormat::Text,
        }
        .render();
        check_common(Prompt::Director, &text);
        assert!(text.starts_with("[cco:director-plan]\n[cco-ref:director-plan/director]\n"));
        assert!(text.contains("Role: director"));
        assert!(text.contains("Team: (none)"));
        assert!(text.contains("<direction>\nBuild a calculator.\n</direction>"));
        assert!(text.contains("at most 3 teams"));
        assert!(text.contains("ASCII letters"));
        assert!(text.contains(PlanKind::Director.schema()));
        assert!(text.contains("Output only the JSON object"));
    }

    #[test]
    fn missing_direction_uses_the_fallback() {
        let who = coordinator();
        for direction in [None, Some("   ")] {
            let text = CoordinatorPlanPrompt {
                who: &who,
                direction,
                max_tasks: 9,
                answer: AnswerFormat::Text,
            }
            .render();
            check_common(Prompt::Coordinator, &text);
            assert!(text.contains(NO_DIRECTION), "{text}");
            assert!(text.contains("Role: coordinator"));
            assert!(text.contains("at most 9 worker tasks"));
        }
    }

    #[test]
    fn em_plan_names_team_and_goal_on_one_line() {
        let who = em();
        let goal = TeamGoal {
            name: "parser".into(),
            goal: "Make the parser\nhandle errors".into(),
        };
        let text = EmPlanPrompt {
            who: &who,
            goal: &goal,
            max_tasks: 8,
            answer: AnswerFormat::StructuredOutput,
        }
        .render();
        check_common(Prompt::Em, &text);
        assert!(text.starts_with("[cco:em-plan]\n[cco-ref:em-plan/parser]\n"));
        assert!(text.contains("\nTeam: parser\n"));
        assert!(text.contains("\nGoal: parser: Make the parser handle errors\n"));
        assert!(text.contains("merged into cco/parser"));
        assert!(text.contains("StructuredOutput tool"));
        assert!(!text.contains("Output only the JSON object"));
    }

    #[test]
    fn replan_follows_the_role() {
        let mut report = RoundReport::default();
        report.task_merged("t1", "Add\nlexer");
        report.task_failed("t2", "Parser", "gave up after 3 failed runs");
        let who = coordinator();
        let text = ReplanPrompt {
            who: &who,
            report: &report,
            max_items: 7,
            answer: AnswerFormat::Text,
        }
        .render();
        check_common(Prompt::Replan, &text);
        assert!(text.contains("- t1 \"Add lexer\": merged"));
        assert!(text.contains("- t2 \"Parser\": gave up after 3 failed runs"));
        assert!(text.contains("at most 7 tasks"));
        assert!(text.contains("Role: coordinator"));
        assert!(text.contains(PlanKind::Task.schema()));
        assert!(text.contains("Notes\n(none)"));

        let who = director();
        let text = ReplanPrompt {
            who: &who,
            report: &RoundReport::default(),
            max_items: 4,
            answer: AnswerFormat::Text,
        }
        .render();
        assert!(text.contains("at most 4 teams"));
        assert!(text.contains("New team names"));
        assert!(text.contains(PlanKind::Director.schema()));
        assert!(text.contains("## Merged\n(nothing)"));

        let who = em();
        let text = ReplanPrompt {
            who: &who,
            report: &RoundReport::default(),
            max_items: 4,
            answer: AnswerFormat::Text,
        }
        .render();
        assert!(text.contains("If the team goal is met"));
    }
}
