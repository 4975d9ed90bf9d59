//! The end of a run: the limits, a completion, and the ordered stop that decides the run's
//! [`RunOutcome`].

use std::time::Duration;

use ractor::ActorRef;
use tracing::info;

use super::{DirectorMsg, DirectorState, RunEnd, DIRECTOR_ID};
use crate::board::TaskState;
use crate::events::RunEvent;
use crate::lead::{Halt, LeadMsg};
use crate::outcome::{final_reason, finished_phase, EndCause, RunLimit, RunOutcome};
use crate::supervise::shutdown_all;

impl DirectorState {
    /// `maxBudgetUsd`, `maxTotalToolUses` and `maxRunDurationMinutes` (checked every
    /// `pollIntervalMs`; a turn does not start once the tool uses are spent).
    pub(super) async fn check_limits(&mut self, myself: &ActorRef<DirectorMsg>) {
        let config = &self.ctx.config.config;
        if let Some(budget) = config.max_budget_usd {
            let spent = self.ctx.board.total_cost();
            if spent >= budget {
                let reason = format!("budget reached: ${spent:.4} of ${budget:.4}");
                let limit = RunLimit::Budget {
                    spent_usd: spent,
                    budget_usd: budget,
                };
                self.stop(myself, reason, EndCause::Limit(limit), false)
                    .await;
                return;
            }
        }
        if let Some(cap) = config.max_total_tool_uses {
            let used = self.ctx.board.snapshot_totals().tool_uses;
            if used >= cap {
                let reason = format!("tool-use limit reached: {used} of {cap} tool uses");
                let limit = RunLimit::ToolUses { used, cap };
                self.stop(myself, reason, EndCause::Limit(limit), false)
                    .await;
                return;
            }
        }
        if self.clock.elapsed() >= config.max_run_duration() {
            let minutes = config.max_run_duration_minutes;
            let reason = format!("maximum run duration of {minutes} minutes reached");
            let limit = RunLimit::Duration { minutes };
            self.stop(myself, reason, EndCause::Limit(limit), false)
                .await;
        }
    }

    /// The run cannot go on safely (a lead's or a team merge's finding): stop, with the
    /// outcome that says so. Tasks keep their phases: `cco resume` continues them.
    pub(super) async fn halt(
        &mut self,
        myself: &ActorRef<DirectorMsg>,
        cause: Halt,
        reason: String,
    ) {
        let cause = match cause {
            Halt::Integrity => EndCause::Integrity,
            Halt::Environment => EndCause::Environment,
        };
        self.stop(myself, reason, cause, false).await
    }

    /// A planner answered `complete`.
    pub(super) async fn complete(&mut self, myself: &ActorRef<DirectorMsg>, reason: String) {
        let cause = EndCause::Complete {
            reason: reason.clone(),
            planning_failure: self.planning_failure.clone(),
        };
        self.stop(myself, format!("complete: {reason}"), cause, false)
            .await
    }

    /// Ordered shutdown: no new work, leads (and through them workers and their processes)
    /// first, then the Director's own session, then the Director itself. Once everything has
    /// stopped the totals are final: the outcome is decided, shown as the finished phase, and
    /// handed to the orchestrator.
    pub(super) async fn stop(
        &mut self,
        myself: &ActorRef<DirectorMsg>,
        reason: String,
        cause: EndCause,
        force: bool,
    ) {
        if force {
            self.ctx.force_stop();
        }
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.ctx.begin_stop();
        info!(%reason, force, "stopping the run");
        let ctx = std::sync::Arc::clone(&self.ctx);
        let board = &ctx.board;
        board.set_phase(format!("stopping: {reason}"));
        board.set_agent_state(DIRECTOR_ID, "stopping");
        let grace = self.ctx.config.config.kill_grace() + Duration::from_secs(30);
        // All teams at once: each lead stops its workers' processes in parallel.
        shutdown_all(self.leads.take_all(), LeadMsg::Shutdown, grace).await;
        if let Some((_, guard)) = self.turn.take() {
            guard.shutdown().await;
        }
        // A team merge in flight (its verify command running) lands or not: either way the
        // totals say what git holds.
        self.finish_team_merges().await;
        board.update_agent(DIRECTOR_ID, |a| a.pid = None);
        board.set_agent_state(DIRECTOR_ID, "stopped");
        // A graceful stop may have been forced while it waited for the processes.
        let cause = match cause {
            EndCause::Stopped { signal, .. } => EndCause::Stopped {
                signal,
                forced: self.ctx.is_forced(),
            },
            cause => cause,
        };
        let snapshot = board.snapshot();
        let outcome = RunOutcome::classify(&cause, &snapshot.totals);
        let failed: Vec<String> = snapshot
            .tasks
            .iter()
            .filter(|t| t.state == TaskState::Failed)
            .map(|t| t.key.clone())
            .collect();
        let reason = final_reason(&outcome, &cause, &reason, &failed);
        board.set_phase(finished_phase(&outcome, cause.detail(&reason)));
        board.events().emit(RunEvent::RunFinished {
            reason: reason.clone(),
        });
        let _ = self.ended.send(Some(RunEnd {
            reason: reason.clone(),
            outcome,
        }));
        myself.stop(Some(reason));
    }
}
