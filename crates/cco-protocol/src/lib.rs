//! What cco and its agents say to each other.
//!
//! cco runs headless Claude Code agents on one git repository. Planners answer with JSON;
//! cco answers with prompts. This crate holds both directions and nothing else: no I/O, no
//! processes, no git.
//!
//! # Layout
//!
//! - [`schema`]: the three JSON documents as serde types.
//!   - [`DirectorPlan`]: the Director's teams ([`TeamGoal`]) or `complete` (hierarchy mode).
//!   - [`TaskPlan`]: an EM's (or the flat Coordinator's) [`TaskSpec`]s or `complete`.
//!   - [`ReviewDecision`]: `approve` or `revise` a finished task.
//! - `json_schema`: [`PlanKind::json_schema`], the JSON Schema of each document for the CLI's
//!   `--json-schema` (structured output), derived from the serde types with `schemars`.
//! - [`parse`]: [`parse_director_plan`], [`parse_task_plan`], [`parse_review`]: find the JSON
//!   in an agent's free-form answer, check it, normalise it. Failures are [`PlanError`]s whose
//!   [`PlanError::repair_prompt`] is the message to resume the same session with.
//! - [`prompt`]: every prompt cco sends, one Markdown template each in `prompts/` (compiled
//!   in), rendered by a typed builder per prompt ([`WorkerTaskPrompt`], [`ReviewPrompt`],
//!   [`ResumePrompt`], ...) whose text fits the agent's [`Role`] and [`Duty`].
//!
//! # Rules
//!
//! - **Agent text is untrusted.** Parsing never panics, whatever the input, and its cost is
//!   bounded. Ids and team names become slugs (`[a-z0-9-]{1,64}`); `files` entries that are
//!   absolute, contain `..` or point into `.git` are dropped (with a warning).
//! - **Errors are for the agent.** Every [`PlanError`] message can be quoted back verbatim;
//!   validation lists all problems at once so one repair round can fix them all.
//! - **Warnings are not errors.** Harmless fixes are reported in [`Parsed::warnings`].
//! - **Prompts are matchable.** The first line of every rendered prompt is `[cco:<kind>]`, the
//!   second `[cco-ref:<kind>/<id>]`; test scripts match them by substring. Rendering inserts
//!   values verbatim and never re-scans them, so agent text cannot inject placeholders.
//!
//! # The repair loop (used by the orchestrator)
//!
//! ```
//! use cco_protocol::{parse_task_plan, TaskPlan};
//!
//! let answer = "Here is the plan:\n```json\n{\"status\":\"continue\",\"tasks\":[{\"id\":\"t1\",\"title\":\"Add lexer\"}]}\n```";
//! match parse_task_plan(answer) {
//!     Ok(parsed) => {
//!         for w in &parsed.warnings { eprintln!("plan warning: {w}"); }
//!         assert!(matches!(parsed.value, TaskPlan::Continue { ref tasks } if tasks[0].id == "t1"));
//!     }
//!     // Resume the same session with this prompt; give up after a few rounds.
//!     Err(e) => { let _reprompt = e.repair_prompt(); }
//! }
//! ```
//!
//! The full protocol (schemas, parsing and validation rules, markers) is in `docs/protocol.md`.

mod extract;
mod json_schema;
pub mod parse;
pub mod prompt;
pub mod schema;

pub use parse::{
    parse_answer, parse_director_answer, parse_director_plan, parse_review, parse_review_answer,
    parse_task_answer, parse_task_plan, sanitize_path, slugify, Answer, Parsed, PlanError,
    PlanFailure, Rejections, MAX_ID_LEN, MAX_TASKS, MAX_TEAMS,
};
pub use prompt::{
    conflict_prompt, coordinator_prompt, director_prompt, em_plan_prompt, feedback_prompt, render,
    render_str, replan_prompt, review_prompt, task_prompt, timeout_prompt, AgentContext,
    AnswerFormat, CommandStatus, ConflictPrompt, CoordinatorPlanPrompt, DirectorPlanPrompt, Duty,
    EmPlanPrompt, FeedbackPrompt, Identity, MergeParent, Planner, Prompt, PromptVars,
    RefusedPrompt, RepairPrompt, ReplanPrompt, ResolutionReviewPrompt, ResumeCause, ResumePrompt,
    ReviewPrompt, Role, RoundReport, TimeoutPrompt, VerifyFailedPrompt, WorkerTaskPrompt,
    NO_DIRECTION,
};
pub use schema::{DirectorPlan, PlanKind, ReviewDecision, TaskPlan, TaskSpec, TeamGoal};
