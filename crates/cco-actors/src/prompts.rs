//! Every prompt an agent gets, built with cco-protocol's typed builders from the run's facts:
//! who the agent is ([`AgentIdentity`]: role, team, the branch and worktree it works in), what
//! the turn is for, and how a planner or reviewer answers ([`AnswerFormat`]). No prompt text is
//! written here: the words live in cco-protocol's templates.

use cco_protocol::{
    AnswerFormat, CommandStatus, ConflictPrompt, CoordinatorPlanPrompt, DirectorPlanPrompt, Duty,
    EmPlanPrompt, FeedbackPrompt, PlanError, RefusedPrompt, RepairPrompt, ReplanPrompt,
    ResumeCause, ResumePrompt, ReviewPrompt, Role, RoundReport, TaskSpec, TeamGoal, TimeoutPrompt,
    VerifyFailedPrompt, WorkerTaskPrompt,
};

use crate::board::{TaskRecord, TaskState};
use crate::context::RunContext;
use crate::events::RunEvent;
use crate::lifecycle::GateFailure;
use crate::session::AgentIdentity;

/// Upper bounds asked of planners: enough work for every worker, not a flood.
fn max_tasks(ctx: &RunContext) -> usize {
    (ctx.config.config.worker_count * 3).clamp(3, cco_protocol::MAX_TASKS)
}

fn max_teams(ctx: &RunContext) -> usize {
    (ctx.config.config.team_count() * 2).clamp(1, cco_protocol::MAX_TEAMS)
}

/// `projectDirection` from the config, else `PROJECT_DIRECTION.md` in the agent's worktree;
/// `None` (with a warning): the builders' fallback ([`cco_protocol::NO_DIRECTION`]).
fn direction(ctx: &RunContext, who: &AgentIdentity) -> Option<String> {
    if let Some(text) = &ctx.config.config.project_direction {
        return Some(text.clone());
    }
    match std::fs::read_to_string(who.cwd.join("PROJECT_DIRECTION.md")) {
        Ok(text) if !text.trim().is_empty() => Some(text),
        _ => {
            let message =
                "no PROJECT_DIRECTION.md in the repository and no projectDirection in the config: \
                 the planner is asked to improve the project as it sees fit"
                    .to_string();
            ctx.board.events().emit(RunEvent::Warning { message });
            None
        }
    }
}

pub(crate) fn director_plan(ctx: &RunContext, who: &AgentIdentity) -> String {
    let direction = direction(ctx, who);
    DirectorPlanPrompt {
        who: &who.prompt_identity(),
        direction: direction.as_deref(),
        max_teams: max_teams(ctx),
        answer: ctx.answer_format(),
    }
    .render()
}

pub(crate) fn coordinator_plan(ctx: &RunContext, who: &AgentIdentity) -> String {
    let direction = direction(ctx, who);
    CoordinatorPlanPrompt {
        who: &who.prompt_identity(),
        direction: direction.as_deref(),
        max_tasks: max_tasks(ctx),
        answer: ctx.answer_format(),
    }
    .render()
}

pub(crate) fn em_plan(ctx: &RunContext, who: &AgentIdentity, goal: &TeamGoal) -> String {
    EmPlanPrompt {
        who: &who.prompt_identity(),
        goal,
        max_tasks: max_tasks(ctx),
        answer: ctx.answer_format(),
    }
    .render()
}

/// The next planning round of the Coordinator or the Director (`history`: the Director's
/// notes on the teams so far).
pub(crate) fn replan(
    ctx: &RunContext,
    who: &AgentIdentity,
    tasks: &[TaskRecord],
    history: &[String],
) -> String {
    let max_items = match who.role {
        Role::Director => max_teams(ctx),
        _ => max_tasks(ctx),
    };
    ReplanPrompt {
        who: &who.prompt_identity(),
        report: &round_report(tasks, history),
        max_items,
        answer: ctx.answer_format(),
    }
    .render()
}

fn round_report(tasks: &[TaskRecord], history: &[String]) -> RoundReport {
    let mut report = RoundReport {
        notes: history.join("\n"),
        ..RoundReport::default()
    };
    for task in tasks {
        match task.state {
            TaskState::Done => report.task_merged(&task.key, &task.title),
            TaskState::Failed => report.task_failed(
                &task.key,
                &task.title,
                task.failure.as_deref().unwrap_or("failed"),
            ),
            _ => {}
        }
    }
    report
}

pub(crate) fn worker_task(who: &AgentIdentity, task: &TaskSpec) -> String {
    WorkerTaskPrompt {
        who: &who.prompt_identity(),
        task,
    }
    .render()
}

/// A reviewer's revise feedback (`reviewer`: the lead's role).
pub(crate) fn feedback(
    who: &AgentIdentity,
    task: &TaskSpec,
    reviewer: Role,
    feedback: &str,
) -> String {
    FeedbackPrompt {
        who: &who.prompt_identity(),
        task,
        reviewer,
        feedback,
    }
    .render()
}

/// cco's checks refused the work the worker's last turn left (`problem`: why).
pub(crate) fn refused(who: &AgentIdentity, task: &TaskSpec, problem: &str) -> String {
    RefusedPrompt {
        who: &who.prompt_identity(),
        task,
        problem,
    }
    .render()
}

/// The verify gate failed on the merge of the task's work into `who.target`.
pub(crate) fn verify_failed(who: &AgentIdentity, task: &TaskSpec, gate: &GateFailure) -> String {
    VerifyFailedPrompt {
        who: &who.prompt_identity(),
        task,
        command: &gate.command,
        source: &gate.source,
        target: &who.target,
        status: gate.status.clone(),
        output_tail: &gate.output,
    }
    .render()
}

/// Merging `merging` into the worker's branch stopped with conflicts in `files`.
pub(crate) fn conflict(
    who: &AgentIdentity,
    task: &TaskSpec,
    merging: &str,
    files: &[String],
) -> String {
    ConflictPrompt {
        who: &who.prompt_identity(),
        task: Some(task),
        merging,
        files,
    }
    .render()
}

/// What a review turn is about.
pub(crate) struct ReviewFacts<'a> {
    pub(crate) task: &'a TaskSpec,
    /// Who did the work.
    pub(crate) worker: &'a str,
    /// The ref holding it.
    pub(crate) task_ref: &'a str,
    /// The commits of the task ref and of the target.
    pub(crate) revs: Option<(&'a str, &'a str)>,
    pub(crate) result: &'a str,
    pub(crate) diff: &'a cco_git::DiffSummary,
}

/// The review of a finished task: the task ref against the lead's target, with a summary.
pub(crate) fn review(ctx: &RunContext, who: &AgentIdentity, facts: ReviewFacts<'_>) -> String {
    let diff = facts.diff;
    let commits: Vec<String> = diff
        .commits
        .iter()
        .map(|(sha, subject)| format!("{} {subject}", sha.get(..10).unwrap_or(sha)))
        .collect();
    let diff_text = format!(
        "commits:\n{}\nfiles changed: {} (+{} -{})\n{}",
        commits.join("\n"),
        diff.files.len(),
        diff.insertions,
        diff.deletions,
        diff.stat
    );
    ReviewPrompt {
        who: &who.prompt_identity(),
        task: facts.task,
        worker: facts.worker,
        task_ref: facts.task_ref,
        // A lead's branch is the target its workers' tasks merge into.
        target: &who.branch,
        revs: facts.revs,
        result: facts.result,
        diff: &diff_text,
        answer: ctx.answer_format(),
    }
    .render()
}

/// The first prompt of a resumed session, fit for what it was doing and why it stopped.
pub(crate) fn resume(
    who: &AgentIdentity,
    duty: Duty,
    cause: ResumeCause,
    task: Option<&TaskSpec>,
    answer: AnswerFormat,
) -> String {
    ResumePrompt {
        who: &who.prompt_identity(),
        duty,
        cause,
        task,
        answer,
    }
    .render()
}

/// A conflict resolution under review (see [`review_resolution`]).
pub(crate) struct Resolved<'a> {
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
pub(crate) fn review_resolution(
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
    let identity = who.prompt_identity();
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
        answer: ctx.answer_format(),
    }
    .render()
}

/// The one resume after a wall-clock timeout (or the tool-use cap).
pub(crate) fn timeout(
    who: &AgentIdentity,
    duty: Duty,
    task: Option<&TaskSpec>,
    answer: AnswerFormat,
) -> String {
    TimeoutPrompt {
        who: &who.prompt_identity(),
        duty,
        task,
        answer,
    }
    .render()
}

/// A planner's or reviewer's unusable answer, asked again in the same session.
pub(crate) fn repair(error: &PlanError, role: Role, answer: AnswerFormat) -> String {
    RepairPrompt {
        error,
        role: Some(role),
        answer,
    }
    .render()
}

/// How a verify command ended, for the gate's prompt.
pub(crate) fn command_status(status: &cco_git::VerifyStatus) -> CommandStatus {
    match status {
        cco_git::VerifyStatus::Exited(code) => CommandStatus::Exited(*code),
        cco_git::VerifyStatus::Signaled(signal) => CommandStatus::Signaled(*signal),
        cco_git::VerifyStatus::TimedOut(d) => CommandStatus::TimedOut(*d),
    }
}
