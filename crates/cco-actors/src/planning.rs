//! Planning with its repair loop, shared by the Director and the leads (and by reviews).
//!
//! A planner's turn ends; [`plan_step`] decides what it means: a valid plan, a re-ask in the
//! same session with the role's repair prompt (up to `maxPlanRetries` times), or a failure
//! that names the most telling rejection ([`Rejections`]: a duplicate id is reported, not the
//! worse answer that followed it). The answer is read from the CLI's `structured_output`
//! first, its result text second. Pure: the callers perform the step (a new turn, tasks or
//! goals, a report).

use cco_protocol::{Answer, AnswerFormat, Parsed, PlanError, PlanFailure, Rejections, Role};

use crate::session::{FailCause, TurnEnd};

/// What a planner's ended turn leads to.
#[derive(Debug)]
pub(crate) enum PlanStep<P> {
    /// A valid plan, with what the parser normalised (to show as warnings).
    Plan(Parsed<P>),
    /// The answer was unusable: ask again, in the same session, with `prompt` (this is
    /// attempt `attempt`, counting from 0).
    Repair { attempt: u32, prompt: String },
    /// No valid plan after the repairs: the rejections, the most telling one first.
    Invalid(PlanFailure),
    /// The planning session itself failed (crashes beyond the restart limit, a timeout, an
    /// API that stayed unavailable: `cause`).
    SessionFailed { reason: String, cause: FailCause },
    /// The turn was cancelled (the run is stopping).
    Cancelled,
}

/// Who asked, and how often it may ask again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asking {
    /// This turn's attempt (0 for the first ask).
    pub(crate) attempt: u32,
    pub(crate) max_retries: u32,
    /// The planner's (or reviewer's) role: its rules are restated in the repair prompt.
    pub(crate) role: Role,
    pub(crate) answer: AnswerFormat,
}

/// Judges the end of a planning turn. `session` is updated to the session the turn ran in, so
/// the next ask resumes it; `rejections` keeps every rejected answer of this planning round.
pub(crate) fn plan_step<P>(
    end: TurnEnd,
    asking: Asking,
    session: &mut Option<String>,
    rejections: &mut Rejections,
    parse: impl FnOnce(Answer<'_>) -> Result<Parsed<P>, PlanError>,
) -> PlanStep<P> {
    let (text, structured) = match end {
        TurnEnd::Cancelled => return PlanStep::Cancelled,
        TurnEnd::Done {
            result_text,
            structured,
            session_id,
        } => {
            if session_id.is_some() {
                *session = session_id;
            }
            (result_text, structured)
        }
        TurnEnd::Failed {
            reason,
            cause,
            session_id,
        } => {
            if session_id.is_some() {
                *session = session_id;
            }
            return PlanStep::SessionFailed { reason, cause };
        }
    };
    let answer = Answer {
        structured: structured.as_ref(),
        text: Some(&text),
    };
    match parse(answer) {
        Ok(parsed) => PlanStep::Plan(parsed),
        Err(error) => {
            let step = if asking.attempt < asking.max_retries {
                Some(PlanStep::Repair {
                    attempt: asking.attempt + 1,
                    prompt: crate::prompts::repair(&error, asking.role, asking.answer),
                })
            } else {
                None
            };
            rejections.record(error);
            match (step, rejections.failure()) {
                (Some(step), _) => step,
                (None, Some(failure)) => PlanStep::Invalid(failure),
                // Unreachable: an error was just recorded.
                (None, None) => PlanStep::SessionFailed {
                    reason: "no valid answer".into(),
                    cause: FailCause::Agent,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cco_protocol::{parse_task_answer, TaskPlan};

    use super::*;

    fn done(text: &str, session: Option<&str>) -> TurnEnd {
        TurnEnd::Done {
            result_text: text.into(),
            structured: None,
            session_id: session.map(str::to_string),
        }
    }

    fn asking(attempt: u32) -> Asking {
        Asking {
            attempt,
            max_retries: 2,
            role: Role::Coordinator,
            answer: AnswerFormat::Text,
        }
    }

    const PLAN: &str = r#"{"status":"continue","tasks":[{"id":"t1","title":"One"}]}"#;

    #[test]
    fn a_valid_answer_is_a_plan_and_the_session_is_kept() {
        let mut session = None;
        let mut rejections = Rejections::new();
        let step = plan_step(
            done(PLAN, Some("s1")),
            asking(0),
            &mut session,
            &mut rejections,
            parse_task_answer,
        );
        let PlanStep::Plan(parsed) = step else {
            panic!("{step:?}")
        };
        assert!(matches!(parsed.value, TaskPlan::Continue { ref tasks } if tasks.len() == 1));
        assert_eq!(session.as_deref(), Some("s1"));
        assert!(rejections.is_empty());
    }

    #[test]
    fn structured_output_is_read_first() {
        let mut session = None;
        let end = TurnEnd::Done {
            result_text: "prose, no JSON".into(),
            structured: serde_json::from_str(PLAN).ok(),
            session_id: None,
        };
        let step = plan_step(
            end,
            asking(0),
            &mut session,
            &mut Rejections::new(),
            parse_task_answer,
        );
        assert!(matches!(step, PlanStep::Plan(_)), "{step:?}");
    }

    #[test]
    fn an_invalid_answer_is_asked_again_with_the_role_then_fails_with_the_real_reason() {
        let mut session = Some("s1".to_string());
        let mut rejections = Rejections::new();
        let duplicate =
            r#"{"status":"continue","tasks":[{"id":"t1","title":"a"},{"id":"t1","title":"b"}]}"#;
        let step = plan_step(
            done(duplicate, None),
            asking(0),
            &mut session,
            &mut rejections,
            parse_task_answer,
        );
        let PlanStep::Repair { attempt, prompt } = step else {
            panic!("{step:?}")
        };
        assert_eq!(attempt, 1);
        assert!(prompt.starts_with("[cco:repair]"), "{prompt}");
        assert!(prompt.contains("As the coordinator"), "{prompt}");
        // The session of the first ask stays (the repair resumes it).
        assert_eq!(session.as_deref(), Some("s1"));
        let step = plan_step(
            done("I committed it instead.", None),
            asking(2),
            &mut session,
            &mut rejections,
            parse_task_answer,
        );
        let PlanStep::Invalid(failure) = step else {
            panic!("{step:?}")
        };
        let text = failure.to_string();
        assert!(text.contains("duplicate task id"), "{text}");
        assert!(text.contains("after 2 answers"), "{text}");
    }

    #[test]
    fn a_failed_or_cancelled_session_is_no_plan() {
        let mut session = None;
        let failed = TurnEnd::Failed {
            reason: "timed out".into(),
            cause: FailCause::Agent,
            session_id: Some("s2".into()),
        };
        let step = plan_step(
            failed,
            asking(0),
            &mut session,
            &mut Rejections::new(),
            parse_task_answer,
        );
        assert!(
            matches!(step, PlanStep::SessionFailed { ref reason, .. } if reason == "timed out")
        );
        assert_eq!(session.as_deref(), Some("s2"));
        let step = plan_step(
            TurnEnd::Cancelled,
            asking(0),
            &mut session,
            &mut Rejections::new(),
            parse_task_answer,
        );
        assert!(matches!(step, PlanStep::Cancelled));
    }
}
