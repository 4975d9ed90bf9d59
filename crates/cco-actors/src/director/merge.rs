//! Team merges: a team that finished its goal is merged into the base branch (verify gate);
//! a conflict or a red gate goes back to the team as a task, a merge brings the base back
//! into the team branch so its next goal starts there.

use cco_git::{GitError, MergeOutcome, MergeRequest};
use ractor::ActorRef;
use tracing::{info, warn};

use super::{DirectorMsg, DirectorState, DIRECTOR_ID};
use crate::events::RunEvent;
use crate::lead::{Halt, Input, LeadMsg};
use crate::lifecycle::TaskPhase;

impl DirectorState {
    pub(super) async fn merge_team(&mut self, myself: &ActorRef<DirectorMsg>, team: &str) {
        let Some(slot) = self.teams.slot_of(team) else {
            return;
        };
        let done = self.ctx.board.tasks_of_team(team);
        let ok = done
            .iter()
            .filter(|t| matches!(t.phase, TaskPhase::Done { .. }))
            .count();
        let (branch, goal) = {
            let t = &self.teams.teams[slot];
            (t.branch.clone(), t.goal.as_ref().map(|g| g.name.clone()))
        };
        if ok == 0 {
            // Nothing landed on the team branch: nothing to merge.
            self.teams.history.push(format!(
                "team {team}: no task succeeded for goal {}",
                goal.as_deref().unwrap_or("(none)")
            ));
            self.teams.free(team);
            self.dispatch(myself).await;
            return;
        }
        self.ctx
            .board
            .set_agent_state(DIRECTOR_ID, format!("merging {branch}"));
        let strategy = crate::gitmap::strategy(self.ctx.config.config.merge_strategy);
        let mut request = MergeRequest::new(branch.clone(), self.ctx.base_branch.clone(), strategy);
        request.message = Some(format!(
            "Merge {branch} ({})",
            goal.as_deref().unwrap_or("team work")
        ));
        request.verify = true;
        let git = self.ctx.git.clone();
        let me = myself.clone();
        let name = team.to_string();
        let merging = tokio::spawn(async move {
            let outcome = git.merge(request).await;
            let merged = match &outcome {
                Ok(MergeOutcome::Merged { commit, .. }) => Some(commit.clone()),
                _ => None,
            };
            let _ = me.send_message(DirectorMsg::TeamMerged {
                team: name,
                outcome,
            });
            merged
        });
        self.team_merges.insert(team.to_string(), merging);
    }

    /// The run stops: team merges still in flight complete (the GitActor finishes its op in
    /// flight), and one that lands is counted, as its message is no longer handled.
    pub(super) async fn finish_team_merges(&mut self) {
        for (team, merging) in std::mem::take(&mut self.team_merges) {
            if let Ok(Some(commit)) = merging.await {
                info!(%team, %commit, "team merged while the run stopped");
                self.ctx.board.count(|t| t.merges += 1);
                self.teams
                    .history
                    .push(format!("merged team {team} while the run stopped"));
            }
        }
    }

    pub(super) async fn on_team_merged(
        &mut self,
        myself: &ActorRef<DirectorMsg>,
        team: &str,
        outcome: Result<MergeOutcome, GitError>,
    ) {
        // Handled here: no longer in flight.
        self.team_merges.remove(team);
        let Some(slot) = self.teams.slot_of(team) else {
            return;
        };
        let branch = self.teams.teams[slot].branch.clone();
        let goal = self.teams.teams[slot]
            .goal
            .as_ref()
            .map(|g| g.name.clone())
            .unwrap_or_default();
        let base = self.ctx.base_branch.clone();
        let board = &self.ctx.board;
        let lead = self.leads.get(slot);
        match outcome {
            Ok(outcome @ (MergeOutcome::Merged { .. } | MergeOutcome::UpToDate { .. })) => {
                match outcome {
                    MergeOutcome::Merged { commit, .. } => {
                        board.count(|t| t.merges += 1);
                        board.events().emit(RunEvent::Merged {
                            source: branch.clone(),
                            target: base.clone(),
                            commit,
                        });
                    }
                    // Merged before a restart (or nothing new): counted and told then.
                    _ => info!(%branch, "team branch already in the base branch"),
                }
                self.teams
                    .history
                    .push(format!("merged {branch} (goal {goal}) into {base}"));
                // Bring the team branch up to the new base so its next goal starts there.
                let strategy = crate::gitmap::strategy(self.ctx.config.config.merge_strategy);
                let mut request = MergeRequest::new(base, branch, strategy);
                request.verify = false;
                let git = self.ctx.git.clone();
                let me = myself.clone();
                let team = team.to_string();
                tokio::spawn(async move {
                    if let Err(error) = git.merge(request).await {
                        warn!(%error, "could not fast-forward the team branch");
                    }
                    let _ = me.send_message(DirectorMsg::TeamSynced { team });
                });
            }
            Ok(MergeOutcome::Conflict { files }) => {
                board.count(|t| t.conflicts += 1);
                board.events().emit(RunEvent::Conflict {
                    source: branch.clone(),
                    target: base,
                    files: files.clone(),
                });
                let limit = self.ctx.config.config.max_auto_resolve_conflicts;
                if !board.take_conflict_resolution(limit) {
                    // `maxAutoResolveConflicts` used up: the strategy is `fail` now.
                    let limit = limit.unwrap_or(0);
                    if board.note_auto_resolve_exhausted() {
                        let message = format!(
                            "maxAutoResolveConflicts ({limit}) reached: conflicts are no longer given to agents; the merge strategy is \"fail\" for the rest of the run"
                        );
                        warn!("{message}");
                        board.events().emit(RunEvent::Warning { message });
                    }
                    self.teams.history.push(format!(
                        "{branch} left unmerged: conflicts in {} (maxAutoResolveConflicts {limit} reached)",
                        files.join(", ")
                    ));
                    self.teams.free(team);
                    self.dispatch(myself).await;
                } else if let Some(actor) = lead {
                    let _ = actor.send_message(LeadMsg::input(Input::ResolveWithBase { files }));
                }
            }
            Ok(MergeOutcome::VerifyFailed {
                status,
                output_tail,
            }) => {
                self.teams
                    .history
                    .push(format!("{branch} failed verification ({status})"));
                if let Some(actor) = lead {
                    let output = format!("{status}\n{output_tail}");
                    let _ = actor.send_message(LeadMsg::input(Input::FixVerification { output }));
                }
            }
            Ok(MergeOutcome::Skipped { files }) => {
                board.count(|t| t.conflicts += 1);
                self.teams.history.push(format!(
                    "{branch} left unmerged: conflicts in {}",
                    files.join(", ")
                ));
                self.teams.free(team);
                self.dispatch(myself).await;
            }
            Err(error) => self.team_merge_failed(myself, team, &branch, error).await,
        }
    }

    /// A team merge failed: a moved base branch (put back) is logged and the merge retried;
    /// one that could not be put back, or the machine failing, stops the run; anything else
    /// (refused commits included: they never reach the base) goes into the history.
    async fn team_merge_failed(
        &mut self,
        myself: &ActorRef<DirectorMsg>,
        team: &str,
        branch: &str,
        error: GitError,
    ) {
        if error.is_integrity_failure() {
            let reason = format!("integrity stop: {error}; inspect the branch and run cco resume");
            let _ = myself.send_message(DirectorMsg::Halt {
                cause: Halt::Integrity,
                reason,
            });
            return;
        }
        if let Some(reason) = crate::lead::environment_pause(&error) {
            let _ = myself.send_message(DirectorMsg::Halt {
                cause: Halt::Environment,
                reason,
            });
            return;
        }
        if let GitError::BranchMoved {
            branch: moved,
            commits,
            kept_in,
            restored: true,
            ..
        } = &error
        {
            let tries = self.moved_retries.entry(team.to_string()).or_default();
            *tries += 1;
            if *tries <= crate::lead::MAX_MOVED_RETRIES {
                let message =
                    crate::lead::moved_message(moved, commits, kept_in.as_deref(), branch);
                tracing::error!(branch = %moved, ?commits, "{message}");
                self.ctx.board.events().emit(RunEvent::Warning { message });
                self.merge_team(myself, team).await;
                return;
            }
            let reason =
                format!("integrity stop: {moved} keeps being moved behind cco's back ({error})");
            let _ = myself.send_message(DirectorMsg::Halt {
                cause: Halt::Integrity,
                reason,
            });
            return;
        }
        warn!(%branch, %error, "team merge failed");
        self.ctx.board.events().emit(RunEvent::Warning {
            message: format!("merging {branch} failed: {error}"),
        });
        self.teams
            .history
            .push(format!("merging {branch} failed: {error}"));
        self.teams.free(team);
        self.dispatch(myself).await;
    }
}
