//! The pipeline every finished turn goes through: capture → diff → review → merge.
//!
//! A worker reports; the task becomes `Finished` and the worker is free at once (for a job in
//! its other lane). The capture freezes the turn's work in the task ref, after the journal
//! shows the turn finished (see `journal::Barrier`). Then the work is summarised and reviewed
//! in a fork of the lead's session (a conflict resolution as one: the merge against each of
//! its parents). Work cco refuses goes back to its session first (`gates.rs`). A review approves
//! (merge), asks for changes (a pinned revision, at most [`MAX_REVIEW_ROUNDS`]), or gives no
//! usable answer (a fresh review, then the task fails: never merged unreviewed). A merge lands
//! (done), conflicts (a pinned conflict turn,
//! at most [`MAX_CONFLICT_ROUNDS`]), or fails the verify gate (a revision). Nothing committed
//! is sent back, then fails.

use cco_git::{CaptureOutcome, DiffSummary, GitError, ResolutionDiff};
use cco_protocol::{Rejections, ReviewDecision};
use tracing::{info, warn};

use super::core::{CaptureOrder, Effect, Halt, LeadCore, ReviewPrompt};
use super::gates;
use super::slots::Parked;
use crate::error::JobFailure;
use crate::events::RunEvent;
use crate::lifecycle::{GateFailure, Interruption, MergeCause, TaskPhase, Turn};
use crate::planning::{plan_step, PlanStep};
use crate::session::{FailCause, TurnEnd};
use crate::worker::WorkerReport;

/// Review rounds (changes asked of the worker) before a task is merged as is or failed.
pub(crate) const MAX_REVIEW_ROUNDS: u32 = 2;
/// Reviews without a usable decision (each after its re-asks) before a task fails.
pub(crate) const MAX_UNDECIDED_REVIEWS: u32 = 2;
/// Conflict resolutions a task gets before it fails.
pub(crate) const MAX_CONFLICT_ROUNDS: u32 = 5;
/// The result text of a turn that finished before cco was restarted (it is not journaled).
pub(crate) const RESTORED: &str = "(restored after a restart)";

const NOTHING_COMMITTED: &str =
    "No changes were committed on your branch. Implement the task and commit your work with git.";

impl LeadCore {
    pub(crate) fn on_worker_report(&mut self, slot: usize, report: WorkerReport) {
        if let WorkerReport::Failed { key, failure, .. } = &report {
            if let Some(pause) = failure.git_error().and_then(gates::environment) {
                // The machine, not the task: the turn goes back as it was (resumed later).
                if let Some(s) = self.slots.get_mut(slot) {
                    if let Some((_, lane)) = s.job.take_if(|(k, _)| k == key) {
                        s.lanes[lane].busy = None;
                        s.lanes[lane].parked = None;
                    }
                }
                self.requeue(key);
                self.halt(Halt::Environment, pause);
                return;
            }
        }
        let (key, session_id, turn) = match report {
            WorkerReport::Failed {
                key,
                failure: JobFailure::Busy,
                ..
            } => {
                // Refused (the worker had a job): back to the queue.
                if let Some(s) = self.slots.get_mut(slot) {
                    if let Some((_, lane)) = s.job.take_if(|(k, _)| *k == key) {
                        s.lanes[lane].busy = None;
                    }
                }
                self.requeue(&key);
                self.schedule();
                return;
            }
            WorkerReport::Failed {
                key,
                failure: JobFailure::ApiUnavailable(reason),
                session_id,
            } => {
                self.back_after_outage(slot, &key, session_id, &reason);
                self.schedule();
                return;
            }
            WorkerReport::Failed {
                key,
                failure,
                session_id,
            } => (key, session_id, Err(failure)),
            WorkerReport::Finished {
                key,
                result_text,
                session_id,
            } => {
                let worker = self
                    .slots
                    .get(slot)
                    .map(|s| s.id.clone())
                    .unwrap_or_default();
                info!(task = %key, %worker, "task finished by worker");
                self.board.events().emit(RunEvent::TaskFinished {
                    task: key.clone(),
                    worker,
                });
                (key, session_id, Ok(result_text))
            }
        };
        self.board.keep_session(&key, session_id);
        // The worker is free at once (for a job in its other lane); this lane stays busy
        // until the turn is captured.
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        let Some((_, lane)) = s.job.take_if(|(k, _)| *k == key) else {
            return;
        };
        let worker = s.id.clone();
        let Some(TaskPhase::Running { turn: ran, .. }) = self.board.task(&key).map(|t| t.phase)
        else {
            return;
        };
        let finished = TaskPhase::Finished {
            worker,
            lane,
            turn: ran,
            failure: turn.as_ref().err().map(ToString::to_string),
        };
        let _ = self.board.advance(&key, finished);
        // A conflict turn whose resolution cco did not accept (markers left, files not
        // resolved): the session fixes it where it is, before anything is captured.
        if let Err(JobFailure::Conclude(error)) = &turn {
            if let Some(problem) = gates::refusal(error) {
                let l = &mut self.slots[slot].lanes[lane];
                l.busy = None;
                l.parked = None;
                self.fix_in_place(&key, problem);
                self.settled();
                return;
            }
        }
        self.schedule();
        self.capture((slot, lane), key, turn);
    }

    /// The API stayed unavailable longer than the turn's budget: not the task's fault. The
    /// task goes back, with its work where it is: its session resumes in the same worktree
    /// (told the API was unavailable), or, without a session yet, it is queued again.
    fn back_after_outage(
        &mut self,
        slot: usize,
        key: &str,
        session_id: Option<String>,
        reason: &str,
    ) {
        self.board.keep_session(key, session_id);
        if let Some(s) = self.slots.get_mut(slot) {
            if let Some((_, lane)) = s.job.take_if(|(k, _)| *k == key) {
                // The work in progress stays in the worktree: it is not parked.
                s.lanes[lane].busy = None;
                s.lanes[lane].parked = None;
            }
        }
        let Some(task) = self.board.task(key) else {
            return;
        };
        let TaskPhase::Running { worker, turn, .. } = task.phase else {
            return;
        };
        let back = match task.session_id {
            Some(session) => TaskPhase::Pinned {
                worker,
                turn: turn.interrupted(session, Interruption::ApiUnavailable),
            },
            None => TaskPhase::Queued,
        };
        warn!(
            task = key,
            reason, "the API was unavailable too long: the task goes back to the queue"
        );
        if self.board.advance(key, back).is_ok() {
            self.board.events().emit(RunEvent::Warning {
                message: format!("{key}: back to the queue, the API was unavailable ({reason})"),
            });
        }
    }

    /// Orders the capture of the turn that ran in `lane` (whatever it left, even when it
    /// failed: nothing is lost); the lane stays busy until `Captured`.
    pub(crate) fn capture(
        &mut self,
        (slot, lane): (usize, usize),
        key: String,
        turn: Result<String, JobFailure>,
    ) {
        let Some(worktree) = self.slots[slot].lanes[lane].path.clone() else {
            return;
        };
        let title = self
            .specs
            .get(&key)
            .map(|s| s.title.clone())
            .unwrap_or_default();
        let order = CaptureOrder {
            slot,
            lane,
            epoch: self.target_epoch,
            worktree,
            task_ref: self.task_ref(&key),
            message: format!("{key}: {title}"),
            key,
            turn,
        };
        self.emit(Effect::Capture(order));
    }

    /// Captures the restored turns whose worktree is known by now.
    pub(crate) fn start_recaptures(&mut self) {
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.recaptures)
            .into_iter()
            .partition(|(slot, lane, _)| self.slots[*slot].lanes[*lane].path.is_some());
        self.recaptures = waiting;
        for (slot, lane, key) in ready {
            info!(task = %key, "capturing the work of a turn that finished before the restart");
            let turn = match self.board.task(&key).map(|t| t.phase) {
                Some(TaskPhase::Finished {
                    failure: Some(reason),
                    ..
                }) => Err(JobFailure::Turn(reason)),
                _ => Ok(RESTORED.to_string()),
            };
            self.capture((slot, lane), key, turn);
        }
    }

    pub(crate) fn on_captured(
        &mut self,
        (slot, lane): (usize, usize),
        key: String,
        epoch: u64,
        outcome: Result<CaptureOutcome, GitError>,
        turn: Result<String, JobFailure>,
    ) {
        let now = self.now;
        match self.slots.get_mut(slot).and_then(|s| s.lanes.get_mut(lane)) {
            Some(l) if l.busy.as_deref() == Some(key.as_str()) => {
                l.busy = None;
                l.parked = outcome.as_ref().ok().map(|_| Parked { epoch, at: now });
            }
            // The worktree was handed to something else meanwhile: that decides.
            _ => return,
        }
        let frozen = outcome
            .as_ref()
            .ok()
            .is_some_and(|o| o.task_commit.is_some());
        match (turn, outcome) {
            (_, Err(error)) if gates::environment(&error).is_some() => {
                // The task stays finished: `cco resume` captures it.
                self.git_failed(&key, &error, "");
            }
            (Err(failure), _) => self.fail_task(&key, &failure.to_string()),
            (Ok(_), Err(error)) => match gates::refusal(&error) {
                // Nothing reached a ref: the work is still in the worktree, fixed there.
                Some(problem) => self.fix_in_place(&key, problem),
                None => {
                    let reason = format!("could not commit the work: {error}");
                    self.git_failed(&key, &error, &reason);
                }
            },
            (Ok(result_text), Ok(_)) if frozen => {
                self.git_ok();
                if self.board.advance(&key, TaskPhase::Captured).is_ok() {
                    self.start_diff(key, result_text);
                }
            }
            // Nothing was ever committed for this task: decided before the worker goes on, so
            // a journal never shows the task in review on a worker that has moved on.
            (Ok(_), Ok(_)) => self.nothing_committed(&key),
        }
        self.settled();
    }

    fn nothing_committed(&mut self, key: &str) {
        let rounds = self.board.task(key).map(|t| t.review_rounds).unwrap_or(0);
        if rounds < MAX_REVIEW_ROUNDS {
            self.send_back(key, NOTHING_COMMITTED, None);
        } else {
            self.fail_task(key, "the worker committed nothing");
        }
    }

    /// Orders the summary of the task ref for the review.
    pub(crate) fn start_diff(&mut self, key: String, result_text: String) {
        let task_ref = self.task_ref(&key);
        let resolution = self
            .board
            .task(&key)
            .is_some_and(|t| t.resolution.is_some());
        self.emit(Effect::Diff {
            key,
            task_ref,
            result_text,
            resolution,
        });
    }

    pub(crate) fn on_diffed(
        &mut self,
        key: String,
        diff: Result<DiffSummary, GitError>,
        revs: Option<(String, String)>,
        result_text: String,
        resolution: Option<Box<ResolutionDiff>>,
    ) {
        let diff = match diff {
            Ok(diff) => diff,
            Err(error) => {
                let reason = format!("could not diff the work: {error}");
                self.git_failed(&key, &error, &reason);
                self.settled();
                return;
            }
        };
        self.commits_in_review
            .insert(key.clone(), diff.commits.len());
        if diff.commits.is_empty() {
            // Everything in the task ref is already in the target. Work that was frozen there
            // got in only by its merge (one a restart redid the review of, the journal not
            // having recorded it yet): merged again, which records it once with the commit
            // that merged it. Otherwise nothing was ever committed.
            let frozen = self
                .board
                .task(&key)
                .is_some_and(|t| t.captured_round.is_some());
            if frozen {
                self.start_merge(&key, MergeCause::AlreadyMerged);
            } else {
                self.nothing_committed(&key);
            }
            self.settled();
            return;
        }
        let Some(spec) = self.specs.get(&key).cloned() else {
            return;
        };
        let round = self.board.task(&key).map(|t| t.review_rounds).unwrap_or(0);
        if self
            .board
            .advance(&key, TaskPhase::Reviewing { round })
            .is_err()
        {
            return;
        }
        let task = self.board.task(&key);
        let against = task.as_ref().and_then(|t| t.resolution.clone());
        let worker = task.and_then(|t| t.worker).unwrap_or_default();
        self.review_results.insert(key.clone(), result_text.clone());
        let prompt = match (resolution, against) {
            // A conflict resolution: the reviewer sees the merge against each parent.
            (Some(diff), Some(against)) => ReviewPrompt::Resolution {
                spec: Box::new(spec),
                result_text,
                worker,
                against,
                diff,
            },
            _ => ReviewPrompt::First {
                spec: Box::new(spec),
                worker,
                task_ref: self.task_ref(&key),
                revs,
                result_text,
                diff: Box::new(diff),
            },
        };
        self.start_review(key, prompt, 0, None);
    }

    /// A review turn, in a fork of the lead's session (its planning context) so reviews of
    /// several workers run at once; a re-ask resumes the review's own fork.
    fn start_review(
        &mut self,
        key: String,
        prompt: ReviewPrompt,
        attempt: u32,
        review_session: Option<String>,
    ) {
        let (resume, fork) = match review_session {
            Some(session) => (Some(session), false),
            None => (self.session_id.clone(), self.session_id.is_some()),
        };
        self.reviews.insert(key.clone());
        self.emit(Effect::Review {
            key,
            prompt,
            attempt,
            resume,
            fork,
        });
        self.show_activity();
    }

    pub(crate) fn on_review_end(&mut self, key: String, attempt: u32, end: TurnEnd) {
        self.reviews.remove(&key);
        self.show_activity();
        let result_text = self.review_results.remove(&key).unwrap_or_default();
        let mut review_session = None;
        let asking = self.asking(attempt);
        match plan_step(
            end,
            asking,
            &mut review_session,
            &mut Rejections::new(),
            cco_protocol::parse_review_answer,
        ) {
            PlanStep::Cancelled => return,
            PlanStep::Plan(parsed) => match parsed.value {
                ReviewDecision::Approve { .. } => self.start_merge(&key, MergeCause::Approved),
                ReviewDecision::Revise { feedback } => {
                    let rounds = self.board.task(&key).map(|t| t.review_rounds).unwrap_or(0);
                    if rounds < MAX_REVIEW_ROUNDS {
                        self.send_back(&key, &feedback, None);
                    } else {
                        // Enough rounds: the work is committed and reviewed; merge what is there.
                        self.start_merge(&key, MergeCause::RoundsUsed);
                    }
                }
            },
            PlanStep::Repair { attempt, prompt } => {
                self.review_results.insert(key.clone(), result_text);
                self.start_review(key, ReviewPrompt::Repair(prompt), attempt, review_session);
            }
            // The API, not the review: review again from the task ref.
            PlanStep::SessionFailed {
                cause: FailCause::ApiUnavailable,
                reason,
            } => {
                warn!(task = %key, %reason, "review ended on an unavailable API: reviewing again");
                self.review_afresh(key, result_text);
            }
            // No decision after the re-asks: a fresh review once, then the task fails. Work no
            // review approved (or sent back) never reaches its target.
            PlanStep::Invalid(_) | PlanStep::SessionFailed { .. } => {
                let undecided = self.board.note_undecided_review(&key);
                if undecided < MAX_UNDECIDED_REVIEWS {
                    warn!(task = %key, "review gave no usable decision: a fresh review");
                    self.review_afresh(key, result_text);
                } else {
                    let reason = format!(
                        "no review gave a usable decision ({undecided} reviews): not merged; the \
                         work is kept in {}",
                        self.task_ref(&key)
                    );
                    self.fail_task(&key, &reason);
                }
            }
        }
        self.check_idle();
    }

    /// The task's work is reviewed again from its task ref, in a new review.
    fn review_afresh(&mut self, key: String, result_text: String) {
        if self.board.advance(&key, TaskPhase::Captured).is_ok() {
            self.start_diff(key, result_text);
        }
    }

    /// Revise: the task's session gets `feedback` (a turn pinned to its worker); `gate`: the
    /// verify gate failed (the worker gets the gate's own prompt).
    pub(crate) fn send_back(&mut self, key: &str, feedback: &str, gate: Option<GateFailure>) {
        let Some(task) = self.board.task(key) else {
            return;
        };
        let revise = TaskPhase::Pinned {
            worker: task.worker.unwrap_or_default(),
            turn: Turn::Revise {
                feedback: feedback.to_string(),
                session_id: task.session_id,
                gate,
            },
        };
        if self.board.advance(key, revise).is_err() {
            return;
        }
        self.board.events().emit(RunEvent::TaskRevised {
            task: key.to_string(),
            feedback: feedback.to_string(),
        });
        self.schedule();
    }

    /// Gives a task up (counted once: a task already done or failed stays as it is).
    pub(crate) fn fail_task(&mut self, key: &str, reason: &str) {
        let failed = TaskPhase::Failed {
            reason: reason.to_string(),
        };
        if self.board.advance(key, failed).is_err() {
            return;
        }
        warn!(task = key, reason, "task failed");
        self.board.count(|t| t.tasks_failed += 1);
        self.board.events().emit(RunEvent::TaskFailed {
            task: key.to_string(),
            reason: reason.to_string(),
        });
    }
}
