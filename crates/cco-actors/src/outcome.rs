//! How a run ended, as a type: [`RunOutcome`].
//!
//! The Director decides why the run stops ([`EndCause`]); once every agent has stopped and the
//! totals are final, [`RunOutcome::classify`] turns that into the outcome the summary, the
//! final journal and the finished phase carry. Applications map it to what they need (the
//! binary maps it to its exit codes); nothing has to read the reason text.

use serde::{Deserialize, Serialize};

use crate::board::Totals;

/// A run limit that stopped the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "limit", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunLimit {
    /// `maxBudgetUsd`.
    Budget { spent_usd: f64, budget_usd: f64 },
    /// `maxRunDurationMinutes`.
    Duration { minutes: u64 },
    /// `maxTotalToolUses`.
    ToolUses { used: u64, cap: u64 },
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunOutcome {
    /// The planners declared the direction met, and every task landed.
    Completed,
    /// The planners declared the direction met before any task ran. `after_planning_failure`:
    /// a planner had failed to plan before (its team got no task); the work was not done.
    CompletedWithoutTasks { after_planning_failure: bool },
    /// The planners declared the direction met; `failed` of `failed + done` tasks failed.
    CompletedWithFailures { done: u32, failed: u32 },
    /// The planners declared the direction met, but every task failed.
    AllTasksFailed { failed: u32 },
    /// No usable plan: the first plan never came, or never parsed after the repairs.
    PlanningFailed,
    /// A run limit stopped the run.
    LimitReached { limit: RunLimit },
    /// Stopped on request: `OrchestratorHandle::shutdown`, or a signal the application passed
    /// on with `request_stop_for_signal` (`signal`: its number).
    Stopped { signal: Option<i32>, forced: bool },
    /// The run stopped because a shared branch no longer held what cco wrote there and
    /// could not be put back (or kept being moved). The summary's reason names the branch;
    /// `cco resume` continues once it is sorted out.
    IntegrityStop,
    /// The run paused on an environmental error (disk full, read-only, quota, git missing,
    /// the same git error on several tasks in a row); the reason says what and where.
    /// `cco resume` continues it once that is fixed: every task keeps its phase.
    EnvironmentPaused,
    /// The run could not go on (its supervision tree failed); the summary's reason says why.
    Failed,
}

impl RunOutcome {
    /// True when the planners declared the direction met (whatever became of the tasks).
    pub fn is_complete(&self) -> bool {
        matches!(
            self,
            RunOutcome::Completed
                | RunOutcome::CompletedWithoutTasks { .. }
                | RunOutcome::CompletedWithFailures { .. }
                | RunOutcome::AllTasksFailed { .. }
        )
    }

    /// A few words for people: the first part of a finished run's phase.
    pub fn label(&self) -> String {
        match self {
            RunOutcome::Completed => "complete".into(),
            RunOutcome::CompletedWithoutTasks { .. } => "complete without any task".into(),
            RunOutcome::CompletedWithFailures { done, failed } => {
                format!("complete, {failed} of {} tasks failed", done + failed)
            }
            RunOutcome::AllTasksFailed { .. } => "complete, but every task failed".into(),
            RunOutcome::PlanningFailed => "planning failed".into(),
            RunOutcome::LimitReached { .. } => "limit reached".into(),
            RunOutcome::Stopped { .. } => "stopped".into(),
            RunOutcome::IntegrityStop => "integrity stop".into(),
            RunOutcome::EnvironmentPaused => "paused".into(),
            RunOutcome::Failed => "failed".into(),
        }
    }

    /// A run that ended so is continued by `cco resume` (its journal is not finished).
    pub fn is_resumable(&self) -> bool {
        matches!(
            self,
            RunOutcome::IntegrityStop | RunOutcome::EnvironmentPaused
        )
    }

    /// The outcome of a run that ended for `cause`, with these final totals.
    pub(crate) fn classify(cause: &EndCause, totals: &Totals) -> RunOutcome {
        match cause {
            EndCause::Complete {
                planning_failure, ..
            } => match (totals.tasks_done, totals.tasks_failed) {
                (0, 0) => RunOutcome::CompletedWithoutTasks {
                    after_planning_failure: planning_failure.is_some(),
                },
                (_, 0) => RunOutcome::Completed,
                (0, failed) => RunOutcome::AllTasksFailed { failed },
                (done, failed) => RunOutcome::CompletedWithFailures { done, failed },
            },
            EndCause::PlanningFailed => RunOutcome::PlanningFailed,
            EndCause::Limit(limit) => RunOutcome::LimitReached {
                limit: limit.clone(),
            },
            EndCause::Stopped { signal, forced } => RunOutcome::Stopped {
                signal: *signal,
                forced: *forced,
            },
            EndCause::Failed => RunOutcome::Failed,
            EndCause::Integrity => RunOutcome::IntegrityStop,
            EndCause::Environment => RunOutcome::EnvironmentPaused,
        }
    }
}

/// Why the Director stops the run (before the totals are final).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EndCause {
    /// A planner answered `complete` (`reason`: its words). `planning_failure`: the first
    /// planning failure before it (a team that could not plan, a first plan that never parsed).
    Complete {
        reason: String,
        planning_failure: Option<String>,
    },
    PlanningFailed,
    Limit(RunLimit),
    Stopped {
        signal: Option<i32>,
        forced: bool,
    },
    Failed,
    /// A shared branch could not be put back (see [`RunOutcome::IntegrityStop`]).
    Integrity,
    /// The machine failed (see [`RunOutcome::EnvironmentPaused`]).
    Environment,
}

impl EndCause {
    /// What follows "finished: <label>" in the finished phase: the planner's words for a
    /// completion, the reason otherwise.
    pub(crate) fn detail<'a>(&'a self, reason: &'a str) -> &'a str {
        match self {
            EndCause::Complete { reason: words, .. } => words,
            _ => reason,
        }
    }
}

/// The run's reason in words once its outcome is known: a completion says what became of the
/// tasks (`complete, 2 of 16 tasks failed: flat/t3, flat/t9 (direction met)`) or why nothing
/// ran (`complete without any task: <the planning failure>`); other ends keep `reason`.
/// `failed`: the keys of the failed tasks.
pub(crate) fn final_reason(
    outcome: &RunOutcome,
    cause: &EndCause,
    reason: &str,
    failed: &[String],
) -> String {
    let EndCause::Complete {
        reason: words,
        planning_failure,
    } = cause
    else {
        return reason.to_string();
    };
    let failed_list = || {
        const SHOWN: usize = 5;
        let mut list = failed
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if failed.len() > SHOWN {
            list.push_str(&format!(" and {} more", failed.len() - SHOWN));
        }
        list
    };
    match outcome {
        RunOutcome::CompletedWithoutTasks { .. } => match planning_failure {
            Some(failure) => format!("{}: {failure} (then: {words})", outcome.label()),
            None => format!("{}: {words}", outcome.label()),
        },
        RunOutcome::CompletedWithFailures { .. } | RunOutcome::AllTasksFailed { .. } => {
            format!("{}: {} ({words})", outcome.label(), failed_list())
        }
        _ => format!("{}: {words}", outcome.label()),
    }
}

/// The phase a finished run shows: `finished: complete (direction met)`.
pub(crate) fn finished_phase(outcome: &RunOutcome, detail: &str) -> String {
    format!("finished: {} ({detail})", outcome.label())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(done: u32, failed: u32) -> Totals {
        Totals {
            tasks_done: done,
            tasks_failed: failed,
            ..Totals::default()
        }
    }

    fn complete(planning_failures: u32) -> EndCause {
        EndCause::Complete {
            reason: "direction met".into(),
            planning_failure: (planning_failures > 0).then(|| "no valid task plan".to_string()),
        }
    }

    #[test]
    fn a_completion_is_told_apart_by_what_became_of_the_tasks() {
        assert_eq!(
            RunOutcome::classify(&complete(0), &totals(3, 0)),
            RunOutcome::Completed
        );
        assert_eq!(
            RunOutcome::classify(&complete(0), &totals(0, 0)),
            RunOutcome::CompletedWithoutTasks {
                after_planning_failure: false
            }
        );
        assert_eq!(
            RunOutcome::classify(&complete(1), &totals(0, 0)),
            RunOutcome::CompletedWithoutTasks {
                after_planning_failure: true
            }
        );
        assert_eq!(
            RunOutcome::classify(&complete(0), &totals(14, 2)),
            RunOutcome::CompletedWithFailures {
                done: 14,
                failed: 2
            }
        );
        assert_eq!(
            RunOutcome::classify(&complete(0), &totals(0, 4)),
            RunOutcome::AllTasksFailed { failed: 4 }
        );
        for outcome in [
            RunOutcome::Completed,
            RunOutcome::AllTasksFailed { failed: 1 },
        ] {
            assert!(outcome.is_complete());
        }
    }

    #[test]
    fn other_ends_keep_their_cause_whatever_the_totals() {
        let limit = RunLimit::Duration { minutes: 5 };
        let cases = [
            (EndCause::PlanningFailed, RunOutcome::PlanningFailed),
            (
                EndCause::Limit(limit.clone()),
                RunOutcome::LimitReached { limit },
            ),
            (
                EndCause::Stopped {
                    signal: Some(15),
                    forced: false,
                },
                RunOutcome::Stopped {
                    signal: Some(15),
                    forced: false,
                },
            ),
            (EndCause::Failed, RunOutcome::Failed),
        ];
        for (cause, outcome) in cases {
            let classified = RunOutcome::classify(&cause, &totals(3, 1));
            assert!(!classified.is_complete());
            assert_eq!(classified, outcome);
        }
    }

    #[test]
    fn a_completion_says_what_became_of_the_tasks_in_its_reason() {
        let failed: Vec<String> = (1..=7).map(|n| format!("flat/t{n}")).collect();
        let outcome = RunOutcome::classify(&complete(0), &totals(9, 7));
        assert_eq!(
            final_reason(&outcome, &complete(0), "complete: direction met", &failed),
            "complete, 7 of 16 tasks failed: flat/t1, flat/t2, flat/t3, flat/t4, flat/t5 and 2 more (direction met)"
        );
        let outcome = RunOutcome::classify(&complete(1), &totals(0, 0));
        assert_eq!(
            final_reason(&outcome, &complete(1), "complete: direction met", &[]),
            "complete without any task: no valid task plan (then: direction met)"
        );
        let outcome = RunOutcome::classify(&complete(0), &totals(2, 0));
        assert_eq!(
            final_reason(&outcome, &complete(0), "x", &[]),
            "complete: direction met"
        );
        let stopped = EndCause::Stopped {
            signal: None,
            forced: false,
        };
        assert_eq!(
            final_reason(&RunOutcome::Failed, &stopped, "shutdown requested", &[]),
            "shutdown requested"
        );
    }

    #[test]
    fn the_finished_phase_names_the_outcome_then_the_detail() {
        let cause = complete(0);
        let outcome = RunOutcome::classify(&cause, &totals(2, 0));
        assert_eq!(
            finished_phase(&outcome, cause.detail("complete: direction met")),
            "finished: complete (direction met)"
        );
        let stopped = RunOutcome::Stopped {
            signal: None,
            forced: false,
        };
        assert_eq!(
            finished_phase(&stopped, "shutdown requested"),
            "finished: stopped (shutdown requested)"
        );
        let json =
            serde_json::to_value(RunOutcome::CompletedWithFailures { done: 1, failed: 2 }).unwrap();
        assert_eq!(json["kind"], "completed_with_failures");
    }
}
