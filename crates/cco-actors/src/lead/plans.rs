//! The lead's own planning turns: one at a time, in order (a first plan, an EM's goal, the
//! Coordinator's next round, repairs), the repair loop's memory, and what a `complete` means.

use cco_protocol::{Rejections, TaskPlan};
use tracing::{info, warn};

use super::core::{Effect, LeadCore, PlanPrompt, Report};
use crate::board::Role;
use crate::events::RunEvent;
use crate::lifecycle::TaskKind;
use crate::planning::{plan_step, PlanStep};
use crate::session::{FailCause, TurnEnd};

impl LeadCore {
    pub(super) fn enqueue_plan(&mut self, prompt: PlanPrompt) {
        self.rejections = Rejections::new();
        self.plans.pending.push_back((0, prompt));
        self.start_next_plan();
    }

    pub(super) fn start_next_plan(&mut self) {
        if self.plans.running.is_some() || self.stopping {
            return;
        }
        let Some((attempt, prompt)) = self.plans.pending.pop_front() else {
            return;
        };
        self.board.set_agent_state(&self.cfg.id, "planning");
        self.plans.running = Some((attempt, prompt.clone()));
        self.effects.push(Effect::Plan {
            prompt,
            resume: self.session_id.clone(),
        });
    }

    pub(super) fn on_plan_end(&mut self, end: TurnEnd) {
        let Some((attempt, running)) = self.plans.running.take() else {
            return;
        };
        self.board.update_agent(&self.cfg.id, |a| {
            a.pid = None;
            a.current_task = None;
        });
        let asking = self.asking(attempt);
        match plan_step(
            end,
            asking,
            &mut self.session_id,
            &mut self.rejections,
            cco_protocol::parse_task_answer,
        ) {
            PlanStep::Cancelled => return,
            PlanStep::Plan(parsed) => {
                for warning in parsed.warnings {
                    self.board.events().emit(RunEvent::Warning {
                        message: format!("{}: {warning}", self.cfg.id),
                    });
                }
                match parsed.value {
                    TaskPlan::Continue { tasks } => {
                        self.board.events().emit(RunEvent::Planned {
                            agent: self.cfg.id.clone(),
                            items: tasks.len(),
                        });
                        for task in tasks {
                            self.add_task(task, TaskKind::Planned);
                        }
                        self.board.set_agent_state(&self.cfg.id, "leading");
                        self.schedule();
                    }
                    TaskPlan::Complete { reason } => self.on_complete(reason),
                }
            }
            PlanStep::Repair { attempt, prompt } => {
                warn!(lead = %self.cfg.id, attempt, "invalid plan: asking again");
                self.plans
                    .pending
                    .push_front((attempt, PlanPrompt::Repair(prompt)));
            }
            PlanStep::Invalid(failure) => self.planning_failed(failure.to_string()),
            PlanStep::SessionFailed {
                cause: FailCause::ApiUnavailable,
                reason,
            } => {
                // The API, not the plan: ask the same again (the run's limits bound this).
                warn!(lead = %self.cfg.id, %reason, "planning turn ended on an unavailable API: asking again");
                self.plans.pending.push_front((attempt, running));
            }
            PlanStep::SessionFailed { reason, .. } => {
                self.planning_failed(format!("planning session failed: {reason}"))
            }
        }
        self.start_next_plan();
        self.check_idle();
    }

    /// The planner answered `complete`. After rejected answers with no task ever planned in
    /// the run, the first plan never parsed: that is a planning failure, not a completion.
    fn on_complete(&mut self, reason: String) {
        info!(lead = %self.cfg.id, %reason, "lead reports its work complete");
        let never_planned = self.board.with_tasks(|t| t.records().next().is_none());
        let planning_failure = match self.rejections.failure() {
            Some(failure) if never_planned => Some(failure.to_string()),
            _ => None,
        };
        // No more planning from this lead until it gets new work.
        self.reported_idle = true;
        if self.cfg.role == Role::Coordinator {
            self.board.set_agent_state(&self.cfg.id, "complete");
            self.effects.push(Effect::Report(Report::RunComplete {
                reason,
                planning_failure,
            }));
        } else if let Some(failure) = planning_failure {
            self.planning_failed(format!(
                "answered complete after its plan was rejected ({failure}): {reason}"
            ));
        } else {
            self.board.set_agent_state(&self.cfg.id, "idle: goal done");
            self.effects.push(Effect::Report(Report::TeamIdle));
        }
    }

    fn planning_failed(&mut self, reason: String) {
        warn!(lead = %self.cfg.id, %reason, "planning failed");
        self.board
            .set_agent_state(&self.cfg.id, format!("planning failed: {reason}"));
        self.effects
            .push(Effect::Report(Report::TeamFailed { reason }));
    }
}
