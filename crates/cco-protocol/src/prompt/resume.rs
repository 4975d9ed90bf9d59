//! Follow-ups to an interrupted or unusable turn: resume, timeout and repair. Their texts
//! depend on the agent's [`Duty`] in that turn (and for resumes on the [`ResumeCause`]):
//! planners and reviewers are never told to commit and are always reminded of the JSON
//! document they owe; workers are told that cco commits what they leave uncommitted.

use super::{or_none, render, task_line, AnswerFormat, Identity, Prompt, PromptVars, Role};
use crate::parse::{slugify, PlanError};
use crate::schema::{PlanKind, TaskSpec};

/// What the agent was doing in the turn a follow-up is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Duty {
    /// Planning (first plan or a replan): answers a [`crate::DirectorPlan`] (Director) or a
    /// [`crate::TaskPlan`] (Coordinator, EM).
    Plan,
    /// Reviewing a task or a conflict resolution: answers a [`crate::ReviewDecision`].
    Review,
    /// Implementing a task (its first turn, feedback, a failed verify gate): commits.
    Implement,
    /// Resolving a merge conflict in its worktree: commits the merge.
    ResolveConflict,
}

impl Duty {
    /// The document owed at the end of the turn (`None`: the work is what gets committed).
    pub fn document(self, role: Role) -> Option<PlanKind> {
        match self {
            Duty::Plan => Some(role.plan_kind().unwrap_or(PlanKind::Task)),
            Duty::Review => Some(PlanKind::Review),
            Duty::Implement | Duty::ResolveConflict => None,
        }
    }
}

/// Why a session is resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResumeCause {
    /// The process ended without a result (it crashed or was killed).
    Crashed,
    /// cco stopped it because it produced no output for too long.
    Stalled,
    /// Its API key hit a rate limit; it continues on another key or after the reset.
    RateLimited,
    /// The API was overloaded or failing (529, 5xx, connection errors) and the CLI gave up.
    ApiUnavailable,
    /// cco itself was stopped (or killed) and restarted (`cco resume`).
    CcoRestarted,
}

impl ResumeCause {
    fn text(self) -> &'static str {
        match self {
            ResumeCause::Crashed => {
                "Your previous process ended before it finished this turn (it crashed or was \
                 killed). Your session is resumed with everything it had done."
            }
            ResumeCause::Stalled => {
                "Your previous process produced no output for too long, so cco stopped it. \
                 Your session is resumed with everything it had done."
            }
            ResumeCause::RateLimited => {
                "Your previous process was stopped because the API key it used hit its rate \
                 limit. It continues now on another key or after the limit reset; nothing is lost."
            }
            ResumeCause::ApiUnavailable => {
                "The API was unavailable for a while (overloaded or failing), so your previous \
                 process gave up before it finished. The API answers again now; nothing is lost."
            }
            ResumeCause::CcoRestarted => {
                "cco, the program that runs this team, was stopped and has restarted. Your \
                 session continues where it was."
            }
        }
    }
}

/// The document a planning or reviewing duty owes.
fn owed(duty: Duty, role: Role) -> PlanKind {
    duty.document(role).unwrap_or(PlanKind::Review)
}

/// The "read only" rule of a planner's or reviewer's follow-up.
fn read_only_rule(duty: Duty) -> &'static str {
    match duty {
        Duty::Review => "You only review: do not edit files, commit, push or switch branches.",
        _ => "You only read and plan: do not edit files, commit, push or switch branches.",
    }
}

fn answer_section(answer: AnswerFormat, kind: PlanKind) -> String {
    format!("## Answer\n{}", answer.instructions(kind))
}

fn task_part(task: Option<&TaskSpec>) -> String {
    task.map(|t| format!(" ({})", task_line(t)))
        .unwrap_or_default()
}

fn reference(who: &Identity, task: Option<&TaskSpec>) -> String {
    match task {
        Some(t) if !t.id.trim().is_empty() => t.id.clone(),
        _ => or_none(&who.agent_id),
    }
}

const LEFTOVERS: &str = "Changes you leave uncommitted are committed by cco when your turn \
    ends, so nothing is lost, but commit yourself with a message that says what you did.";

/// `[cco:resume]`: the first prompt of a resumed session. The reference line names the task
/// (or, without one, the agent).
#[derive(Debug, Clone)]
pub struct ResumePrompt<'a> {
    pub who: &'a Identity,
    pub duty: Duty,
    pub cause: ResumeCause,
    /// The task the turn was about (worker tasks, conflicts, reviews).
    pub task: Option<&'a TaskSpec>,
    /// How a planner or reviewer hands over its document.
    pub answer: AnswerFormat,
}

impl ResumePrompt<'_> {
    pub fn render(&self) -> String {
        let who = self.who;
        let instructions = match self.duty {
            Duty::Implement => format!(
                "Continue the same task{} from where you left off: `git status` and `git log` \
                 show where you are. Work only in your worktree ({}) on your branch {}. Commit \
                 your work with git before you finish. {LEFTOVERS} Finish with a short summary \
                 of what you changed.",
                task_part(self.task),
                or_none(&who.worktree),
                or_none(&who.branch)
            ),
            Duty::ResolveConflict => format!(
                "Continue resolving the merge conflict{} in your worktree ({}) on your branch \
                 {}: `git status` shows what is left. Remove every conflict marker (`git diff \
                 --check` must report none), run the tests, then `git add` the files and `git \
                 commit --no-edit` to conclude the merge. Do not abort the merge, reset or \
                 switch branches.",
                task_part(self.task),
                or_none(&who.worktree),
                or_none(&who.branch)
            ),
            duty => {
                let kind = owed(duty, who.role);
                let what = if duty == Duty::Review {
                    format!("review{}", task_part(self.task))
                } else {
                    "planning turn".to_string()
                };
                format!(
                    "Continue your {what} where you left off. {} When you are done, answer with \
                     your {kind}.\n\n{}",
                    read_only_rule(duty),
                    answer_section(self.answer, kind)
                )
            }
        };
        let vars = who
            .vars()
            .with("reference", reference(who, self.task))
            .with("cause", self.cause.text())
            .with("instructions", instructions);
        render(Prompt::Resume, &vars)
    }
}

/// `[cco:timeout]`: the agent's time is up; its session is resumed once with this.
#[derive(Debug, Clone)]
pub struct TimeoutPrompt<'a> {
    pub who: &'a Identity,
    pub duty: Duty,
    pub task: Option<&'a TaskSpec>,
    pub answer: AnswerFormat,
}

impl TimeoutPrompt<'_> {
    pub fn render(&self) -> String {
        let (situation, instructions) = match self.duty {
            Duty::Implement => (
                "You ran out of time. Stop exploring now: commit what works (`git add` your \
                 changes, then `git commit -m \"<what is done>\"`), make sure the build is not \
                 broken by what you commit, and finish with a short summary of what is done and \
                 what is left."
                    .to_string(),
                format!("Do not start new work, do not push, do not switch branches. {LEFTOVERS}"),
            ),
            Duty::ResolveConflict => (
                "You ran out of time. Conclude the merge now: if no conflict marker is left and \
                 it builds, `git add` the files and `git commit --no-edit`; otherwise say in your \
                 final answer which files are still unresolved."
                    .to_string(),
                "Do not abort the merge, do not reset, do not switch branches, do not push."
                    .to_string(),
            ),
            duty => {
                let kind = owed(duty, self.who.role);
                let situation = if duty == Duty::Review {
                    "You ran out of time for this review. Decide now with what you have seen."
                } else {
                    "You ran out of time for this planning turn. Stop exploring and answer now \
                     with the best plan you have."
                };
                (
                    situation.to_string(),
                    format!(
                        "{}\n\n{}",
                        read_only_rule(duty),
                        answer_section(self.answer, kind)
                    ),
                )
            }
        };
        let vars = self
            .who
            .vars()
            .with("reference", reference(self.who, self.task))
            .with("situation", situation)
            .with("instructions", instructions);
        render(Prompt::Timeout, &vars)
    }
}

/// `[cco:repair]`: a planner's or reviewer's answer was unusable; the same session is asked
/// to restate it. Quotes the error, the offending excerpt and the expected form.
#[derive(Debug, Clone)]
pub struct RepairPrompt<'a> {
    pub error: &'a PlanError,
    /// Who answered (its rules are restated); `None`: only the document's own rules.
    pub role: Option<Role>,
    pub answer: AnswerFormat,
}

impl RepairPrompt<'_> {
    pub fn render(&self) -> String {
        let error = self.error;
        let kind = error.kind();
        let details = match error {
            PlanError::NoJson { excerpt, .. } => {
                format!("Your answer contained no JSON object. It began:\n<answer>\n{excerpt}\n</answer>")
            }
            PlanError::InvalidJson { error, excerpt, .. } => {
                format!("The JSON could not be parsed: {error}\nNear:\n<json>\n{excerpt}\n</json>")
            }
            PlanError::Schema { error, .. } => format!("The JSON has the wrong shape: {error}"),
            PlanError::Validation { problems, .. } => {
                let mut s = format!("Your {kind} breaks these rules:");
                for p in problems {
                    s.push_str("\n- ");
                    s.push_str(p);
                }
                s
            }
        };
        let problem = match error {
            PlanError::Validation { problems, .. } => {
                format!(
                    "the {kind} breaks {} rule(s), listed below.",
                    problems.len()
                )
            }
            other => other.to_string(),
        };
        let duty = if kind == PlanKind::Review {
            Duty::Review
        } else {
            Duty::Plan
        };
        let rules = match self.role {
            Some(role) if role != Role::Worker => {
                format!("As the {role}: {} ", read_only_rule(duty))
            }
            _ => String::new(),
        };
        let restate = match self.answer {
            AnswerFormat::Text => "Answer again with ONLY one JSON object, in the form below.",
            AnswerFormat::StructuredOutput => {
                "Answer again by calling the StructuredOutput tool with a corrected document."
            }
        };
        let vars = PromptVars::new()
            .with("kind", kind.name())
            .with("kind_slug", slugify(kind.name()))
            .with("problem", problem)
            .with("details", details)
            .with("restate", restate)
            .with("rules", rules)
            .with("answer", self.answer.instructions(kind));
        render(Prompt::Repair, &vars)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn resume(who: &Identity, duty: Duty, cause: ResumeCause, task: Option<&TaskSpec>) -> String {
        let text = ResumePrompt {
            who,
            duty,
            cause,
            task,
            answer: AnswerFormat::Text,
        }
        .render();
        check_common(Prompt::Resume, &text);
        text
    }

    #[test]
    fn planner_resumed_after_a_rate_limit_is_not_told_to_commit() {
        for who in [coordinator(), director(), em()] {
            let text = resume(&who, Duty::Plan, ResumeCause::RateLimited, None);
            assert!(text.contains("rate limit"), "{text}");
            assert!(!text.contains("Commit your work"), "{text}");
            assert!(!text.contains("git commit"), "{text}");
            assert!(text.contains("do not edit files, commit"), "{text}");
            let kind = who.role.plan_kind().unwrap();
            assert!(text.contains(kind.schema()), "{text}");
            assert!(text.contains(&format!("answer with your {kind}")), "{text}");
            assert!(text.contains(&format!("[cco-ref:resume/{}]", who.agent_id)));
        }
    }

    #[test]
    fn reviewer_resumed_after_an_api_outage_owes_a_review() {
        let who = em();
        let task = TaskSpec::new("t4", "Eval");
        let text = resume(&who, Duty::Review, ResumeCause::ApiUnavailable, Some(&task));
        assert!(text.contains("The API was unavailable"));
        assert!(!text.contains("crashed"));
        assert!(!text.contains("Commit your work"));
        assert!(text.contains("You only review"));
        assert!(text.contains("Continue your review (t4 \"Eval\")"));
        assert!(text.contains(PlanKind::Review.schema()));
        let so = ResumePrompt {
            who: &who,
            duty: Duty::Review,
            cause: ResumeCause::ApiUnavailable,
            task: Some(&task),
            answer: AnswerFormat::StructuredOutput,
        }
        .render();
        assert!(so.contains("StructuredOutput tool"));
    }

    #[test]
    fn worker_resumed_after_a_crash_hears_about_the_capture() {
        let who = worker();
        let task = TaskSpec::new("t3", "Parser");
        let text = resume(&who, Duty::Implement, ResumeCause::Crashed, Some(&task));
        assert!(text.starts_with("[cco:resume]\n[cco-ref:resume/t3]\n"));
        assert!(text.contains("crashed or was killed"));
        assert!(text.contains("Commit your work with git"));
        assert!(text.contains("committed by cco"));
        assert!(
            !text.to_lowercase().contains("uncommitted work is lost"),
            "{text}"
        );
        assert!(text.contains("on your branch cco/parser/worker-2"));
        assert!(text.contains("(/tmp/run/wt/worker-2)"));
        assert!(
            !text.contains("Task ID:"),
            "resumes must not match worker-task rules"
        );
        assert!(!text.contains("```"));
    }

    #[test]
    fn causes_are_told_apart() {
        let who = worker();
        let texts: Vec<String> = [
            ResumeCause::Crashed,
            ResumeCause::Stalled,
            ResumeCause::RateLimited,
            ResumeCause::ApiUnavailable,
            ResumeCause::CcoRestarted,
        ]
        .into_iter()
        .map(|c| resume(&who, Duty::Implement, c, None))
        .collect();
        let unique: std::collections::HashSet<_> = texts.iter().collect();
        assert_eq!(unique.len(), texts.len());
        assert!(texts[3].contains("API was unavailable") && !texts[3].contains("crash"));
        assert!(texts[4].contains("cco, the program that runs this team"));
        // Without a task the reference is the agent.
        assert!(texts[0].contains("[cco-ref:resume/worker-2]"));
    }

    #[test]
    fn conflict_resume_concludes_the_merge() {
        let who = worker();
        let text = resume(&who, Duty::ResolveConflict, ResumeCause::Crashed, None);
        assert!(text.contains("git commit --no-edit"));
        assert!(text.contains("conflict marker"));
    }

    #[test]
    fn timeouts_fit_the_duty() {
        let w = worker();
        let text = TimeoutPrompt {
            who: &w,
            duty: Duty::Implement,
            task: None,
            answer: AnswerFormat::Text,
        }
        .render();
        check_common(Prompt::Timeout, &text);
        assert!(text.contains("You ran out of time"));
        assert!(text.contains("git commit -m"));
        assert!(text.contains("committed by cco"));

        let c = coordinator();
        let text = TimeoutPrompt {
            who: &c,
            duty: Duty::Plan,
            task: None,
            answer: AnswerFormat::Text,
        }
        .render();
        check_common(Prompt::Timeout, &text);
        assert!(text.contains("answer now with the best plan"));
        assert!(!text.contains("git commit"));
        assert!(text.contains(PlanKind::Task.schema()));

        let text = TimeoutPrompt {
            who: &c,
            duty: Duty::Review,
            task: Some(&TaskSpec::new("t9", "X")),
            answer: AnswerFormat::Text,
        }
        .render();
        assert!(text.contains("[cco-ref:timeout/t9]"));
        assert!(text.contains("Decide now"));
        assert!(text.contains(PlanKind::Review.schema()));

        let text = TimeoutPrompt {
            who: &w,
            duty: Duty::ResolveConflict,
            task: None,
            answer: AnswerFormat::Text,
        }
        .render();
        assert!(text.contains("Conclude the merge now"));
    }

    #[test]
    fn repair_restates_the_role_and_the_format() {
        let e = crate::parse_task_plan("no idea").unwrap_err();
        let text = RepairPrompt {
            error: &e,
            role: Some(Role::Em),
            answer: AnswerFormat::Text,
        }
        .render();
        check_common(Prompt::Repair, &text);
        assert!(text.contains("As the em: You only read and plan"));
        assert!(text.contains("ONLY one JSON object"));
        let e = crate::parse_review(r#"{"decision":"revise"}"#).unwrap_err();
        let text = RepairPrompt {
            error: &e,
            role: Some(Role::Coordinator),
            answer: AnswerFormat::StructuredOutput,
        }
        .render();
        assert!(text.contains("You only review"));
        assert!(text.contains("calling the StructuredOutput tool"));
        assert!(text.contains("[cco-ref:repair/review-decision]"));
    }
}
