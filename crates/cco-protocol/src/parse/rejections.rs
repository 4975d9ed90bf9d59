//! The repair loop's memory: every rejected answer of one planning or review turn, and the
//! reason worth reporting when the loop gives up.
//!
//! An answer rejected for a reason (a duplicate id, a cycle, too many tasks) is often followed
//! by a repair answer that is worse (prose, no JSON at all). Reporting only the last error
//! would hide the reason; [`Rejections::failure`] names it.

use std::fmt;

use super::PlanError;
use crate::schema::PlanKind;

/// Every rejected answer of one turn, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejections {
    errors: Vec<PlanError>,
}

impl Rejections {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a rejected answer.
    pub fn record(&mut self, error: PlanError) {
        self.errors.push(error);
    }

    /// How many answers were rejected.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn errors(&self) -> &[PlanError] {
        &self.errors
    }

    /// The error worth reporting: the latest of the most telling kind — a broken rule, then a
    /// wrong shape, then broken JSON, then no JSON at all.
    pub fn reason(&self) -> Option<&PlanError> {
        self.errors
            .iter()
            .enumerate()
            .max_by_key(|(i, e)| (rank(e), *i))
            .map(|(_, e)| e)
    }

    /// The failure to report once the loop gives up (`None` if nothing was rejected).
    pub fn failure(&self) -> Option<PlanFailure> {
        let reason = self.reason()?.clone();
        let last = self.errors.last()?.clone();
        Some(PlanFailure {
            kind: reason.kind(),
            attempts: self.errors.len(),
            reason,
            last,
        })
    }
}

fn rank(e: &PlanError) -> u8 {
    match e {
        PlanError::Validation { .. } => 3,
        PlanError::Schema { .. } => 2,
        PlanError::InvalidJson { .. } => 1,
        PlanError::NoJson { .. } => 0,
    }
}

/// A planning or review turn that never produced a usable answer. Its `Display` names the
/// reason (e.g. `duplicate task id: "t1"`) and, when the last answer failed differently, that
/// too: `no valid task plan after 3 answers: the task plan breaks the rules: duplicate task
/// id: "t1" (last answer: no JSON object found in the answer)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFailure {
    pub kind: PlanKind,
    /// Rejected answers in all.
    pub attempts: usize,
    /// The most telling rejection (see [`Rejections::reason`]).
    pub reason: PlanError,
    /// The last rejection.
    pub last: PlanError,
}

impl fmt::Display for PlanFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let answers = if self.attempts == 1 {
            "answer"
        } else {
            "answers"
        };
        write!(
            f,
            "no valid {} after {} {answers}: {}",
            self.kind, self.attempts, self.reason
        )?;
        if self.last != self.reason {
            write!(f, " (last answer: {})", self.last)?;
        }
        Ok(())
    }
}

impl std::error::Error for PlanFailure {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_task_plan;

    #[test]
    fn the_reason_survives_a_worse_repair() {
        let mut r = Rejections::new();
        assert!(r.failure().is_none());
        r.record(
            parse_task_plan(r#"{"status":"continue","tasks":[{"id":"t1","title":"a"},{"id":"t1","title":"b"}]}"#)
                .unwrap_err(),
        );
        r.record(parse_task_plan("Sorry, I committed the plan instead.").unwrap_err());
        let failure = r.failure().unwrap();
        let text = failure.to_string();
        assert!(
            text.starts_with("no valid task plan after 2 answers: "),
            "{text}"
        );
        assert!(text.contains("duplicate task id: \"t1\""), "{text}");
        assert!(
            text.contains("(last answer: no JSON object found"),
            "{text}"
        );
        assert_eq!(failure.kind, PlanKind::Task);
        assert!(!text.contains("Validation {"), "no Debug text: {text}");
    }

    #[test]
    fn the_latest_of_the_same_rank_wins_and_one_answer_reads_well() {
        let mut r = Rejections::new();
        r.record(
            parse_task_plan(
                r#"{"status":"continue","tasks":[{"id":"a","title":"a","depends_on":["a"]}]}"#,
            )
            .unwrap_err(),
        );
        let many: Vec<String> = (0..201)
            .map(|i| format!(r#"{{"id":"t{i}","title":"x"}}"#))
            .collect();
        r.record(
            parse_task_plan(&format!(
                r#"{{"status":"continue","tasks":[{}]}}"#,
                many.join(",")
            ))
            .unwrap_err(),
        );
        let text = r.failure().unwrap().to_string();
        assert!(text.contains("too many tasks: 201"), "{text}");
        assert!(!text.contains("last answer"), "{text}");

        let mut one = Rejections::new();
        one.record(parse_task_plan("nothing").unwrap_err());
        assert!(one
            .failure()
            .unwrap()
            .to_string()
            .contains("after 1 answer:"));
    }
}
