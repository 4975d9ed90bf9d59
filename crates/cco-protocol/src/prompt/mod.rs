//! Every prompt cco sends to an agent, and their rendering.
//!
//! Every prompt is a Markdown template in `prompts/`, compiled in with `include_str!`. Its
//! first line is a stable marker (`[cco:worker-task]`, ...) and its second a reference line
//! (`[cco-ref:worker-task/t1]`) so scripted test doubles can match prompts by substring.
//!
//! # Builders
//!
//! Each prompt has a small context struct whose `render()` gives the text; the fields say
//! what the prompt needs (who the agent is, which task, which branches and refs, why it is
//! resumed...). Everything an agent is told comes from here, never from ad-hoc strings.
//!
//! | builder | marker | for |
//! |---|---|---|
//! | [`DirectorPlanPrompt`] | `[cco:director-plan]` | the Director's first plan |
//! | [`CoordinatorPlanPrompt`] | `[cco:coordinator-plan]` | the flat Coordinator's first plan |
//! | [`EmPlanPrompt`] | `[cco:em-plan]` | an EM's plan for its team goal |
//! | [`ReplanPrompt`] | `[cco:replan]` | a planner's next round |
//! | [`WorkerTaskPrompt`] | `[cco:worker-task]` | a worker's task |
//! | [`ReviewPrompt`] | `[cco:review]` | the review of a finished task |
//! | [`ResolutionReviewPrompt`] | `[cco:review-resolution]` | the review of a conflict resolution |
//! | [`FeedbackPrompt`] | `[cco:feedback]` | a reviewer's revise feedback to the worker |
//! | [`VerifyFailedPrompt`] | `[cco:verify-failed]` | the verify gate failed on the worker's merge |
//! | [`RefusedPrompt`] | `[cco:refused]` | cco's checks refused the commits a worker's turn left |
//! | [`ConflictPrompt`] | `[cco:conflict]` | a merge into the worker's branch stopped with conflicts |
//! | [`TimeoutPrompt`] | `[cco:timeout]` | the agent's time is up |
//! | [`ResumePrompt`] | `[cco:resume]` | an interrupted session is resumed |
//! | [`RepairPrompt`] | `[cco:repair]` | a planner's or reviewer's answer was unusable |
//!
//! Texts depend on the agent's [`Role`] and, for resumes, timeouts and repairs, on its
//! [`Duty`] in the interrupted turn: a planner or reviewer is never told to commit and is
//! always reminded of the JSON document it owes; a worker is told that cco commits what it
//! leaves uncommitted. [`AnswerFormat`] says whether that document is given as plain text or
//! through the CLI's `StructuredOutput` tool (`--json-schema`).
//!
//! The `*_prompt` functions and [`AgentContext`] are the older interface (module `compat`);
//! they render through the builders.
//!
//! # Rendering
//!
//! [`render`] substitutes `{{name}}` placeholders in one pass: a value is inserted verbatim and
//! never scanned again, so text that came from an agent (a result, feedback, a title) cannot
//! inject placeholders. Unknown placeholders are left as they are.

mod compat;
mod plan;
mod resume;
mod review;
mod work;

use std::collections::BTreeMap;
use std::fmt;

use crate::schema::PlanKind;

pub use compat::{
    conflict_prompt, coordinator_prompt, director_prompt, em_plan_prompt, feedback_prompt,
    replan_prompt, review_prompt, task_prompt, timeout_prompt, AgentContext, Planner,
};
pub use plan::{
    CoordinatorPlanPrompt, DirectorPlanPrompt, EmPlanPrompt, ReplanPrompt, RoundReport,
    NO_DIRECTION,
};
pub use resume::{Duty, RepairPrompt, ResumeCause, ResumePrompt, TimeoutPrompt};
pub use review::{MergeParent, ResolutionReviewPrompt, ReviewPrompt};
pub use work::{
    CommandStatus, ConflictPrompt, FeedbackPrompt, RefusedPrompt, VerifyFailedPrompt,
    WorkerTaskPrompt,
};

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
    /// EM / Coordinator / Director: review a conflict resolution (`[cco:review-resolution]`).
    ReviewResolution,
    /// Director / Coordinator: plan the next round (`[cco:replan]`).
    Replan,
    /// Any agent: out of time (`[cco:timeout]`).
    Timeout,
    /// Worker: resolve a merge conflict (`[cco:conflict]`).
    Conflict,
    /// Worker: the reviewer's revise feedback (`[cco:feedback]`).
    Feedback,
    /// Worker: the verify command failed on the merge of its work (`[cco:verify-failed]`).
    VerifyFailed,
    /// Worker: cco's checks refused the commits its turn left (`[cco:refused]`).
    Refused,
    /// Any agent: its interrupted session continues (`[cco:resume]`).
    Resume,
    /// Any planner or reviewer: the answer was unusable, answer again (`[cco:repair]`); see
    /// [`crate::PlanError::repair_prompt`].
    Repair,
}

impl Prompt {
    /// Every prompt, in declaration order.
    pub const ALL: [Prompt; 14] = [
        Prompt::Director,
        Prompt::Coordinator,
        Prompt::Em,
        Prompt::Worker,
        Prompt::Review,
        Prompt::ReviewResolution,
        Prompt::Replan,
        Prompt::Timeout,
        Prompt::Conflict,
        Prompt::Feedback,
        Prompt::VerifyFailed,
        Prompt::Refused,
        Prompt::Resume,
        Prompt::Repair,
    ];

    /// The raw template text.
    pub fn template(self) -> &'static str {
        match self {
            Prompt::Director => include_str!("../../prompts/director.md"),
            Prompt::Coordinator => include_str!("../../prompts/coordinator.md"),
            Prompt::Em => include_str!("../../prompts/em.md"),
            Prompt::Worker => include_str!("../../prompts/worker.md"),
            Prompt::Review => include_str!("../../prompts/review.md"),
            Prompt::ReviewResolution => include_str!("../../prompts/review_resolution.md"),
            Prompt::Replan => include_str!("../../prompts/replan.md"),
            Prompt::Timeout => include_str!("../../prompts/timeout.md"),
            Prompt::Conflict => include_str!("../../prompts/conflict.md"),
            Prompt::Feedback => include_str!("../../prompts/feedback.md"),
            Prompt::VerifyFailed => include_str!("../../prompts/verify_failed.md"),
            Prompt::Refused => include_str!("../../prompts/refused.md"),
            Prompt::Resume => include_str!("../../prompts/resume.md"),
            Prompt::Repair => include_str!("../../prompts/repair.md"),
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
            Prompt::ReviewResolution => "review-resolution",
            Prompt::Replan => "replan",
            Prompt::Timeout => "timeout",
            Prompt::Conflict => "conflict",
            Prompt::Feedback => "feedback",
            Prompt::VerifyFailed => "verify-failed",
            Prompt::Refused => "refused",
            Prompt::Resume => "resume",
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

/// The four kinds of agent (the one role type of cco: the supervision tree, the journal, the
/// status and every prompt use it; serialised as `director`, `coordinator`, `em`, `worker`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Hierarchy mode: plans team goals, merges team branches into the base branch.
    Director,
    /// Flat mode: plans tasks, reviews and merges them into the base branch.
    Coordinator,
    /// Hierarchy mode: plans its team's tasks, reviews and merges them into the team branch.
    Em,
    /// Implements tasks in its own worktree.
    Worker,
}

impl Role {
    /// `director`, `coordinator`, `em`, `worker` (as in `Role:` lines and `CCO_AGENT_ROLE`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Director => "director",
            Role::Coordinator => "coordinator",
            Role::Em => "em",
            Role::Worker => "worker",
        }
    }

    /// How a worker refers to this role when it reviews its work: `Your Engineering Manager`,
    /// `The Coordinator`, `The Director`.
    pub fn as_reviewer(self) -> &'static str {
        match self {
            Role::Director => "The Director",
            Role::Coordinator => "The Coordinator",
            Role::Em => "Your Engineering Manager",
            Role::Worker => "A reviewer",
        }
    }

    /// The document this role answers a planning turn with (`None` for workers).
    pub fn plan_kind(self) -> Option<PlanKind> {
        match self {
            Role::Director => Some(PlanKind::Director),
            Role::Coordinator | Role::Em => Some(PlanKind::Task),
            Role::Worker => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who an agent is and where it works: the identity block of every prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub role: Role,
    /// cco's id for the agent (also `CCO_AGENT_ID`), e.g. `worker-3`, `em-parser`.
    pub agent_id: String,
    /// The team name; empty for the Director and the flat Coordinator (shown as `(none)`).
    pub team: String,
    /// The branch checked out in the agent's worktree (the task branch for a worker, the
    /// team branch for an EM, the base branch for the Director and the Coordinator).
    pub branch: String,
    /// The branch its work is merged into.
    pub base_branch: String,
    /// The agent's working directory (its git worktree).
    pub worktree: String,
}

impl Identity {
    /// An identity with the given role and id and everything else empty (fill the fields).
    pub fn new(role: Role, agent_id: impl Into<String>) -> Identity {
        Identity {
            role,
            agent_id: agent_id.into(),
            team: String::new(),
            branch: String::new(),
            base_branch: String::new(),
            worktree: String::new(),
        }
    }

    /// The identity variables: `agent_id`, `role`, `team`, `branch`, `base_branch`, `worktree`.
    pub fn vars(&self) -> PromptVars {
        PromptVars::new()
            .with("agent_id", or_none(&self.agent_id))
            .with("role", self.role.as_str())
            .with("team", or_none(&self.team))
            .with("branch", or_none(&self.branch))
            .with("base_branch", or_none(&self.base_branch))
            .with("worktree", or_none(&self.worktree))
    }

    /// [`Identity::vars`] with the task's `task_id` and `title` (one line): what every prompt
    /// about one task starts from.
    pub(crate) fn task_vars(&self, task: &crate::TaskSpec) -> PromptVars {
        self.vars()
            .with("task_id", or_none(&task.id))
            .with("title", one_line(&task.title))
    }
}

/// How a planner or reviewer hands over its JSON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AnswerFormat {
    /// As the final answer's text (parsed leniently; the repair loop catches mistakes).
    #[default]
    Text,
    /// Through the `StructuredOutput` tool of a CLI run with `--json-schema` (the CLI checks
    /// the document against the schema itself).
    StructuredOutput,
}

impl AnswerFormat {
    /// The "how to answer" paragraph for a document of `kind`, ending with its schema.
    pub fn instructions(self, kind: PlanKind) -> String {
        match self {
            AnswerFormat::Text => format!(
                "Output only the JSON object: no prose before or after it, no code fences.\n{}",
                kind.schema()
            ),
            AnswerFormat::StructuredOutput => format!(
                "Give your answer by calling the StructuredOutput tool exactly once, at the end, \
                 with the {kind} as its input (the tool checks it against the schema; if it \
                 reports an error, fix the document and call it again). Its form:\n{}",
                kind.schema()
            ),
        }
    }
}

/// `(none)` for an empty value, so a prompt never shows a blank field.
pub(crate) fn or_none(s: &str) -> String {
    if s.trim().is_empty() {
        "(none)".to_string()
    } else {
        s.to_string()
    }
}

/// Single-line fields (`Title:`, `Goal:`) must stay on their line so markers stay matchable.
pub(crate) fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    or_none(&joined)
}

pub(crate) fn bullets(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        return empty.to_string();
    }
    items
        .iter()
        .map(|i| format!("- {i}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `t1 "Add lexer"`: a task named on one line.
pub(crate) fn task_line(task: &crate::TaskSpec) -> String {
    let title = one_line(&task.title);
    format!("{} \"{title}\"", or_none(&task.id))
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub fn worker() -> Identity {
        Identity {
            role: Role::Worker,
            agent_id: "worker-2".into(),
            team: "parser".into(),
            branch: "cco/parser/worker-2".into(),
            base_branch: "cco/parser".into(),
            worktree: "/tmp/run/wt/worker-2".into(),
        }
    }

    pub fn em() -> Identity {
        Identity {
            role: Role::Em,
            agent_id: "em-parser".into(),
            team: "parser".into(),
            branch: "cco/parser".into(),
            base_branch: "main".into(),
            worktree: "/tmp/run/wt/em-parser".into(),
        }
    }

    pub fn coordinator() -> Identity {
        Identity {
            role: Role::Coordinator,
            agent_id: "coordinator".into(),
            team: String::new(),
            branch: "main".into(),
            base_branch: "main".into(),
            worktree: "/tmp/run/wt/coordinator".into(),
        }
    }

    pub fn director() -> Identity {
        Identity {
            role: Role::Director,
            agent_id: "director".into(),
            ..coordinator()
        }
    }

    /// Checks what every rendered prompt must satisfy.
    pub fn check_common(p: Prompt, text: &str) {
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(p.marker().as_str()), "{text}");
        assert!(
            lines
                .next()
                .is_some_and(|l| l.starts_with(&format!("[cco-ref:{}/", p.kind()))),
            "{text}"
        );
        assert!(!text.contains("{{"), "{p:?} left a placeholder:\n{text}");
        assert!(!text.contains("Some("), "{p:?} shows Debug text:\n{text}");
        assert!(!text.contains("None"), "{p:?} shows Debug text:\n{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn every_template_starts_with_its_marker_and_ref_line() {
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
        let kinds: std::collections::HashSet<_> = Prompt::ALL.iter().map(|p| p.kind()).collect();
        assert_eq!(kinds.len(), Prompt::ALL.len(), "kinds are unique");
    }

    #[test]
    fn answer_formats_differ() {
        let text = AnswerFormat::Text.instructions(PlanKind::Task);
        assert!(text.contains("Output only the JSON object"));
        assert!(text.contains(PlanKind::Task.schema()));
        let so = AnswerFormat::StructuredOutput.instructions(PlanKind::Review);
        assert!(so.contains("StructuredOutput tool"));
        assert!(so.contains(PlanKind::Review.schema()));
        assert!(!so.contains("Output only the JSON object"));
    }
}
