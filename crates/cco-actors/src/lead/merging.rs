//! The merge step of the pipeline (see `pipeline.rs`): a reviewed task's ref merged into its
//! target, and what each outcome means: landed (done), already there, a conflict (a pinned
//! conflict turn, at most [`MAX_CONFLICT_ROUNDS`], or conflicts cco resolved itself while
//! rounds were left), or a verify failure (a revision).

use cco_git::{GitError, MergeOutcome, MergeRequest};
use tracing::{info, warn};

use super::core::{Effect, LeadCore};
use super::pipeline::{MAX_CONFLICT_ROUNDS, MAX_REVIEW_ROUNDS};
use crate::events::RunEvent;
use crate::lifecycle::{GateFailure, MergeCause, TaskPhase, Turn};

impl LeadCore {
    pub(crate) fn start_merge(&mut self, key: &str, cause: MergeCause) {
        if self
            .board
            .advance(key, TaskPhase::Merging { cause })
            .is_ok()
        {
            self.order_merge(key);
        }
    }

    /// Orders the merge of the task ref into the target (the verify gate guards the base
    /// branch only).
    pub(crate) fn order_merge(&mut self, key: &str) {
        let mut request = MergeRequest::new(
            self.task_ref(key),
            self.cfg.target_branch.clone(),
            self.cfg.merge_strategy,
        );
        request.message = Some(format!("Merge {key}"));
        request.verify = self.cfg.target_branch == self.cfg.base_branch;
        self.emit(Effect::Merge {
            key: key.to_string(),
            request,
        });
    }

    pub(crate) fn on_merged(&mut self, key: String, outcome: Result<MergeOutcome, GitError>) {
        let source = self.task_ref(&key);
        let target = self.cfg.target_branch.clone();
        if outcome.is_ok() {
            self.git_ok();
        }
        match outcome {
            Ok(MergeOutcome::UpToDate { commit }) => self.already_merged(&key, commit),
            Ok(MergeOutcome::Merged { commit, .. }) => {
                let done = TaskPhase::Done {
                    commit: commit.clone(),
                };
                if self.board.advance(&key, done).is_ok() {
                    self.target_epoch += 1;
                    self.merged_epoch.insert(key.clone(), self.target_epoch);
                    let commits = self.commits_in_review.remove(&key).unwrap_or(0);
                    let commits = u32::try_from(commits).unwrap_or(u32::MAX);
                    self.board.count(|t| {
                        t.tasks_done += 1;
                        t.merges += 1;
                        t.commits += commits;
                    });
                    self.board.events().emit(RunEvent::Merged {
                        source,
                        target,
                        commit,
                    });
                }
            }
            Ok(MergeOutcome::Conflict { files }) => {
                self.board.count(|t| t.conflicts += 1);
                self.board.events().emit(RunEvent::Conflict {
                    source,
                    target: target.clone(),
                    files: files.clone(),
                });
                let task = self.board.task(&key);
                let rounds = task.as_ref().map_or(0, |t| t.conflict_rounds);
                if rounds < MAX_CONFLICT_ROUNDS
                    && !self
                        .board
                        .take_conflict_resolution(self.cfg.max_auto_resolve)
                {
                    self.auto_resolve_used_up(&key, &files);
                    self.settled();
                    return;
                }
                match task {
                    Some(task) if rounds < MAX_CONFLICT_ROUNDS => {
                        let resolve = TaskPhase::Pinned {
                            worker: task.worker.unwrap_or_default(),
                            turn: Turn::ResolveConflict {
                                against: target,
                                session_id: task.session_id,
                            },
                        };
                        let _ = self.board.advance(&key, resolve);
                    }
                    _ => self.fail_task(
                        &key,
                        &format!(
                            "merge conflicts could not be resolved: {}",
                            files.join(", ")
                        ),
                    ),
                }
            }
            Ok(MergeOutcome::Skipped { files }) => {
                self.board.count(|t| t.conflicts += 1);
                self.fail_task(
                    &key,
                    &format!("merge skipped (conflicts in {})", files.join(", ")),
                );
            }
            Ok(MergeOutcome::VerifyFailed {
                status,
                output_tail,
            }) => {
                let rounds = self.board.task(&key).map(|t| t.review_rounds).unwrap_or(0);
                if rounds < MAX_REVIEW_ROUNDS {
                    let feedback = format!("the verify command failed on the merge ({status})");
                    let gate = GateFailure {
                        command: self.cfg.verify_command.clone().unwrap_or_default(),
                        source: source.clone(),
                        status: crate::prompts::command_status(&status),
                        output: output_tail,
                    };
                    self.send_back(&key, &feedback, Some(gate));
                } else {
                    self.fail_task(&key, &format!("the verify command kept failing ({status})"));
                }
            }
            Err(error) => self.merge_failed(&key, error),
        }
        self.settled();
    }

    /// `maxAutoResolveConflicts` is used up: the strategy is `fail` from now on (logged once
    /// per run, by whoever meets it first).
    fn auto_resolve_used_up(&mut self, key: &str, files: &[String]) {
        let limit = self.cfg.max_auto_resolve.unwrap_or(0);
        if self.board.note_auto_resolve_exhausted() {
            let message = format!(
                "maxAutoResolveConflicts ({limit}) reached: conflicts are no longer given to agents; the merge strategy is \"fail\" for the rest of the run"
            );
            warn!("{message}");
            self.board.events().emit(RunEvent::Warning { message });
        }
        self.fail_task(
            key,
            &format!(
                "merge conflict in {} (maxAutoResolveConflicts {limit} reached: strategy fail)",
                files.join(", ")
            ),
        );
    }

    /// The target already holds the task's work: merged by `commit` (the first commit of the
    /// target's first-parent chain holding it), typically by this run's cco before a restart
    /// whose journal did not record it yet. Recorded once: done with that commit, counted
    /// (the journal that did not record the merge did not count it either), and no second
    /// `Merged` event.
    fn already_merged(&mut self, key: &str, commit: String) {
        let done = TaskPhase::Done {
            commit: commit.clone(),
        };
        if self.board.advance(key, done).is_err() {
            return;
        }
        info!(task = %key, %commit, "already merged (before a restart): recorded once");
        self.target_epoch += 1;
        self.merged_epoch.insert(key.to_string(), self.target_epoch);
        let commits = self.commits_in_review.remove(key).unwrap_or(0);
        let commits = u32::try_from(commits).unwrap_or(u32::MAX);
        self.board.count(|t| {
            t.tasks_done += 1;
            t.merges += 1;
            t.commits += commits;
        });
    }
}
