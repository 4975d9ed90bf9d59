//! The older prompt interface (`*_prompt` functions over an [`AgentContext`] without a role),
//! kept so callers can move to the builders one by one. Each renders through a builder with
//! the role the function implies and the text answer format.

use super::{
    AnswerFormat, ConflictPrompt, CoordinatorPlanPrompt, DirectorPlanPrompt, Duty, FeedbackPrompt,
    Identity, ReplanPrompt, ReviewPrompt, Role, RoundReport, TimeoutPrompt, WorkerTaskPrompt,
};
use crate::schema::{PlanKind, TaskSpec};

/// Who an agent is, without its role (see [`Identity`], which has one).
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
    /// This agent as an [`Identity`] with `role`.
    pub fn with_role(&self, role: Role) -> Identity {
        Identity {
            role,
            agent_id: self.agent_id.clone(),
            team: self.team.clone(),
            branch: self.branch.clone(),
            base_branch: self.base_branch.clone(),
            worktree: self.worktree.clone(),
        }
    }

    /// The identity variables (as a worker's).
    pub fn vars(&self) -> super::PromptVars {
        self.with_role(Role::Worker).vars()
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

    fn role(self) -> Role {
        match self {
            Planner::Director => Role::Director,
            Planner::Coordinator => Role::Coordinator,
        }
    }
}

/// [`DirectorPlanPrompt`] with the text answer format.
pub fn director_prompt(ctx: &AgentContext, direction: &str, max_teams: usize) -> String {
    DirectorPlanPrompt {
        who: &ctx.with_role(Role::Director),
        direction: Some(direction),
        max_teams,
        answer: AnswerFormat::Text,
    }
    .render()
}

/// [`CoordinatorPlanPrompt`] with the text answer format.
pub fn coordinator_prompt(ctx: &AgentContext, direction: &str, max_tasks: usize) -> String {
    CoordinatorPlanPrompt {
        who: &ctx.with_role(Role::Coordinator),
        direction: Some(direction),
        max_tasks,
        answer: AnswerFormat::Text,
    }
    .render()
}

/// [`super::EmPlanPrompt`] for a goal given as one text (`<team>: <goal>`).
pub fn em_plan_prompt(ctx: &AgentContext, goal: &str, max_tasks: usize) -> String {
    super::plan::render_em(
        &ctx.with_role(Role::Em),
        goal,
        max_tasks,
        AnswerFormat::Text,
    )
}

/// [`WorkerTaskPrompt`].
pub fn task_prompt(task: &TaskSpec, ctx: &AgentContext) -> String {
    WorkerTaskPrompt {
        who: &ctx.with_role(Role::Worker),
        task,
    }
    .render()
}

/// [`ReviewPrompt`] by an EM of `worker_branch` against `ctx.branch`.
pub fn review_prompt(
    ctx: &AgentContext,
    task: &TaskSpec,
    worker_branch: &str,
    result: &str,
    diff: &str,
) -> String {
    let target = if ctx.branch.trim().is_empty() {
        &ctx.base_branch
    } else {
        &ctx.branch
    };
    ReviewPrompt {
        who: &ctx.with_role(Role::Em),
        task,
        worker: "",
        task_ref: worker_branch,
        target,
        revs: None,
        result,
        diff,
        answer: AnswerFormat::Text,
    }
    .render()
}

/// [`ReplanPrompt`] for `planner`.
pub fn replan_prompt(
    ctx: &AgentContext,
    planner: Planner,
    report: &RoundReport,
    max_items: usize,
) -> String {
    ReplanPrompt {
        who: &ctx.with_role(planner.role()),
        report,
        max_items,
        answer: AnswerFormat::Text,
    }
    .render()
}

/// [`TimeoutPrompt`] for a worker implementing a task.
pub fn timeout_prompt(ctx: &AgentContext) -> String {
    TimeoutPrompt {
        who: &ctx.with_role(Role::Worker),
        duty: Duty::Implement,
        task: None,
        answer: AnswerFormat::Text,
    }
    .render()
}

/// [`ConflictPrompt`] without a task.
pub fn conflict_prompt(ctx: &AgentContext, merging: &str, files: &[String]) -> String {
    ConflictPrompt {
        who: &ctx.with_role(Role::Worker),
        task: None,
        merging,
        files,
    }
    .render()
}

/// [`FeedbackPrompt`] from an EM.
pub fn feedback_prompt(ctx: &AgentContext, task: &TaskSpec, feedback: &str) -> String {
    FeedbackPrompt {
        who: &ctx.with_role(Role::Worker),
        task,
        reviewer: Role::Em,
        feedback,
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::super::{test_support::check_common, Prompt};
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
    fn every_old_helper_still_renders_its_marker() {
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
            (
                Prompt::Em,
                em_plan_prompt(&c, "parser: Parse everything", 10),
            ),
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
            check_common(p, &text);
            assert!(text.contains("Agent ID: w-parser-1"), "{p:?}");
            assert!(text.contains("Branch: cco/parser/t1"), "{p:?}");
            assert!(text.contains("Base branch: cco/parser"), "{p:?}");
            assert!(text.contains("Team: parser"), "{p:?}");
        }
    }

    #[test]
    fn em_goal_text_keeps_the_team_prefix() {
        let text = em_plan_prompt(&ctx(), "helpers: add helpers", 5);
        assert!(text.contains("\nGoal: helpers: add helpers\n"));
        assert!(text.contains("\"status\":\"continue\",\"tasks\""));
    }
}
