//! Planning with its repair loop, shared by the Director and the leads.
//!
//! A planner's turn ends; [`plan_step`] decides what it means: a valid plan, a re-ask in the
//! same session with the parser's repair prompt (up to `maxPlanRetries` times), or a failure.
//! Pure: the callers perform the step (a new turn, tasks or goals, a report).

use cco_protocol::{Parsed, PlanError};

use crate::session::TurnEnd;

/// What a planner's ended turn leads to.
#[derive(Debug)]
pub(crate) enum PlanStep<P> {
    /// A valid plan, with what the parser normalised (to show as warnings).
    Plan(Parsed<P>),
    /// The answer was unusable: ask again, in the same session, with `prompt` (this is
    /// attempt `attempt`, counting from 0).
    Repair { attempt: u32, prompt: String },
    /// No valid plan after `attempts` answers; `error` is the last one's problem.
    Invalid { attempts: u32, error: PlanError },
    /// The planning session itself failed (crashes beyond the restart limit, a timeout).
    SessionFailed(String),
    /// The turn was cancelled (the run is stopping).
    Cancelled,
}

/// Judges the end of planning turn `attempt` (0 for the first ask). `session` is updated to
/// the session the turn ran in, so the next ask resumes it.
pub(crate) fn plan_step<P>(
    end: TurnEnd,
    attempt: u32,
    max_retries: u32,
    session: &mut Option<String>,
    parse: impl FnOnce(&str) -> Result<Parsed<P>, PlanError>,
) -> PlanStep<P> {
    let text = match end {
        TurnEnd::Cancelled => return PlanStep::Cancelled,
        TurnEnd::Done {
            result_text,
            session_id,
            ..
        } => {
            if session_id.is_some() {
                *session = session_id;
            }
            result_text
        }
        TurnEnd::Failed {
            reason, session_id, ..
        } => {
            if session_id.is_some() {
                *session = session_id;
            }
            return PlanStep::SessionFailed(reason);
        }
    };
    match parse(&text) {
        Ok(parsed) => PlanStep::Plan(parsed),
        Err(error) if attempt < max_retries => PlanStep::Repair {
            attempt: attempt + 1,
            prompt: error.repair_prompt(),
        },
        Err(error) => PlanStep::Invalid {
            attempts: attempt + 1,
            error,
        },
    }
}

#[cfg(test)]
mod tests {
    use cco_protocol::{parse_task_plan, TaskPlan};

    use super::*;

    fn done(text: &str, session: Option<&str>) -> TurnEnd {
        TurnEnd::Done {
            result_text: text.into(),
            session_id: session.map(str::to_string),
        }
    }

    const PLAN: &str = r#"{"status":"continue","tasks":[{"id":"t1","title":"One"}]}"#;

    #[test]
    fn a_valid_answer_is_a_plan_and_the_session_is_kept() {
        let mut session = None;
        let step = plan_step(done(PLAN, Some("s1")), 0, 2, &mut session, parse_task_plan);
        let PlanStep::Plan(parsed) = step else {
            panic!("{step:?}")
        };
        assert!(matches!(parsed.value, TaskPlan::Continue { ref tasks } if tasks.len() == 1));
        assert_eq!(session.as_deref(), Some("s1"));
    }

    #[test]
    fn an_invalid_answer_is_asked_again_until_the_retries_are_used() {
        let mut session = Some("s1".to_string());
        let step = plan_step(
            done("no json here", None),
            0,
            2,
            &mut session,
            parse_task_plan,
        );
        let PlanStep::Repair { attempt, prompt } = step else {
            panic!("{step:?}")
        };
        assert_eq!(attempt, 1);
        assert!(prompt.contains("[cco:repair]"), "{prompt}");
        // The session of the first ask stays (the repair resumes it).
        assert_eq!(session.as_deref(), Some("s1"));
        let step = plan_step(
            done("still none", None),
            2,
            2,
            &mut session,
            parse_task_plan,
        );
        assert!(
            matches!(step, PlanStep::Invalid { attempts: 3, .. }),
            "{step:?}"
        );
    }

    #[test]
    fn a_failed_or_cancelled_session_is_no_plan() {
        let mut session = None;
        let failed = TurnEnd::Failed {
            reason: "timed out".into(),
            session_id: Some("s2".into()),
        };
        let step = plan_step(failed, 0, 2, &mut session, parse_task_plan);
        assert!(matches!(step, PlanStep::SessionFailed(ref r) if r == "timed out"));
        assert_eq!(session.as_deref(), Some("s2"));
        let step = plan_step(TurnEnd::Cancelled, 0, 2, &mut session, parse_task_plan);
        assert!(matches!(step, PlanStep::Cancelled));
    }
}
