//! Builds each role's prompt from the templates in `cco-protocol` and the run's facts.

use cco_protocol::{AgentContext, Planner, RoundReport, TaskSpec, TeamGoal};

use crate::board::{TaskRecord, TaskState};
use crate::context::RunContext;
use crate::events::RunEvent;
use crate::session::AgentIdentity;

/// Upper bounds asked of planners: enough work for every worker, not a flood.
fn max_tasks(ctx: &RunContext) -> usize {
    (ctx.config.config.worker_count * 3).clamp(3, cco_protocol::MAX_TASKS)
}

fn max_teams(ctx: &RunContext) -> usize {
    (ctx.config.config.team_count() * 2).clamp(1, cco_protocol::MAX_TEAMS)
}

fn agent(who: &AgentIdentity, branch: &str, base: &str) -> AgentContext {
    AgentContext {
        agent_id: who.id.clone(),
        team: who.team.clone().filter(|t| t != "flat").unwrap_or_default(),
        branch: branch.to_string(),
        base_branch: base.to_string(),
        worktree: who.cwd.display().to_string(),
    }
}

/// `projectDirection` from the config, else `PROJECT_DIRECTION.md` in the agent's worktree.
pub fn direction(ctx: &RunContext, who: &AgentIdentity) -> String {
    if let Some(text) = &ctx.config.config.project_direction {
        return text.clone();
    }
    match std::fs::read_to_string(who.cwd.join("PROJECT_DIRECTION.md")) {
        Ok(text) if !text.trim().is_empty() => text,
        _ => {
            let message =
                "no PROJECT_DIRECTION.md in the repository and no projectDirection in the config: \
                           the planner is asked to improve the project as it sees fit"
                    .to_string();
            ctx.board.events().emit(RunEvent::Warning { message });
            "No written direction was given. Read the code and its README, then plan the most \
             valuable improvements: fix bugs, complete unfinished features, add missing tests."
                .to_string()
        }
    }
}

pub fn director_plan(ctx: &RunContext, who: &AgentIdentity) -> String {
    let agent = agent(who, &ctx.base_branch, &ctx.base_branch);
    cco_protocol::director_prompt(&agent, &direction(ctx, who), max_teams(ctx))
}

pub fn coordinator_plan(ctx: &RunContext, who: &AgentIdentity, target: &str) -> String {
    let agent = agent(who, target, &ctx.base_branch);
    cco_protocol::coordinator_prompt(&agent, &direction(ctx, who), max_tasks(ctx))
}

pub fn em_plan(
    ctx: &RunContext,
    who: &AgentIdentity,
    team_branch: &str,
    goal: &TeamGoal,
) -> String {
    let agent = agent(who, team_branch, &ctx.base_branch);
    let goal_text = format!("{}: {}", goal.name, goal.goal);
    cco_protocol::em_plan_prompt(&agent, &goal_text, max_tasks(ctx))
}

pub fn worker_task(
    ctx: &RunContext,
    who: &AgentIdentity,
    branch: &str,
    target: &str,
    task: &TaskSpec,
) -> String {
    let _ = ctx;
    cco_protocol::task_prompt(task, &agent(who, branch, target))
}

pub fn feedback(ctx: &RunContext, who: &AgentIdentity, task: &TaskSpec, feedback: &str) -> String {
    cco_protocol::feedback_prompt(&agent(who, "", &ctx.base_branch), task, feedback)
}

pub fn timeout(ctx: &RunContext, who: &AgentIdentity) -> String {
    cco_protocol::timeout_prompt(&agent(who, "", &ctx.base_branch))
}

pub fn conflict(
    ctx: &RunContext,
    who: &AgentIdentity,
    task: &TaskSpec,
    target: &str,
    files: &[String],
) -> String {
    let _ = task;
    cco_protocol::conflict_prompt(&agent(who, "", &ctx.base_branch), target, files)
}

pub fn review(
    ctx: &RunContext,
    who: &AgentIdentity,
    task: &TaskSpec,
    result: &str,
    diff: &cco_git::DiffSummary,
) -> String {
    let commits: Vec<String> = diff
        .commits
        .iter()
        .map(|(sha, subject)| format!("{} {subject}", &sha[..sha.len().min(10)]))
        .collect();
    let diff_text = format!(
        "commits:\n{}\nfiles changed: {} (+{} -{})\n{}",
        commits.join("\n"),
        diff.files.len(),
        diff.insertions,
        diff.deletions,
        diff.stat
    );
    let agent = agent(who, "", &ctx.base_branch);
    cco_protocol::review_prompt(&agent, task, "", result, &diff_text)
}

/// A conflict resolution under review (see [`review_resolution`]).
pub struct Resolved<'a> {
    /// Who resolved it.
    pub worker: &'a str,
    /// The branch merged into the task's work.
    pub against: &'a str,
    /// Where the work goes once approved.
    pub target: &'a str,
    /// The worker's final answer.
    pub result: &'a str,
    pub diff: &'a cco_git::ResolutionDiff,
}

/// `[cco:review-resolution]`: the merge commit of a conflict resolution against each of its
/// parents, so a side whose change was dropped shows.
pub fn review_resolution(
    ctx: &RunContext,
    who: &AgentIdentity,
    task: &TaskSpec,
    resolved: &Resolved<'_>,
) -> String {
    let diff = resolved.diff;
    let short = |sha: &str| sha[..sha.len().min(12)].to_string();
    // The resolved work: the merge commit, or the commit that fixed it on top.
    let merge = short(&diff.head);
    let [first, second] = &diff.parents;
    let side = |parent: &cco_git::ParentDiff, label: String| cco_protocol::MergeParent {
        rev: short(&parent.commit),
        label,
        diff: parent.diff.clone(),
    };
    let identity = agent(who, "", &ctx.base_branch).with_role(match who.role {
        crate::board::Role::Coordinator => cco_protocol::Role::Coordinator,
        crate::board::Role::Director => cco_protocol::Role::Director,
        _ => cco_protocol::Role::Em,
    });
    cco_protocol::ResolutionReviewPrompt {
        who: &identity,
        task,
        worker: resolved.worker,
        merge_commit: &merge,
        merged: resolved.against,
        into: "the task's work",
        parents: [
            side(first, "the task's work".to_string()),
            side(second, resolved.against.to_string()),
        ],
        target: resolved.target,
        files: &diff.files,
        result: resolved.result,
        answer: cco_protocol::AnswerFormat::Text,
    }
    .render()
}

fn round_report(tasks: &[TaskRecord], history: &[String]) -> RoundReport {
    let merged = tasks
        .iter()
        .filter(|t| t.state == TaskState::Done)
        .map(|t| format!("{} \"{}\": merged", t.key, t.title))
        .collect();
    let failed = tasks
        .iter()
        .filter(|t| t.state == TaskState::Failed)
        .map(|t| {
            format!(
                "{} \"{}\": {}",
                t.key,
                t.title,
                t.failure.clone().unwrap_or_default()
            )
        })
        .collect();
    RoundReport {
        merged,
        failed,
        notes: history.join("\n"),
    }
}

pub fn replan(ctx: &RunContext, who: &AgentIdentity, tasks: &[TaskRecord]) -> String {
    let agent = agent(who, &ctx.base_branch, &ctx.base_branch);
    cco_protocol::replan_prompt(
        &agent,
        Planner::Coordinator,
        &round_report(tasks, &[]),
        max_tasks(ctx),
    )
}

pub fn director_replan(
    ctx: &RunContext,
    who: &AgentIdentity,
    history: &[String],
    tasks: &[TaskRecord],
) -> String {
    let agent = agent(who, &ctx.base_branch, &ctx.base_branch);
    cco_protocol::replan_prompt(
        &agent,
        Planner::Director,
        &round_report(tasks, history),
        max_teams(ctx),
    )
}
