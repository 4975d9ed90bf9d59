//! Team merges: a team that finished its goal is merged into the base branch (verify gate);
//! a conflict or a red gate goes back to the team as a task, a merge brings the base back
//! into the team branch so its next goal starts there.

use cco_git::{GitError, MergeOutcome, MergeRequest};
use ractor::ActorRef;
use tracing::warn;

use super::{DirectorMsg, DirectorState, DIRECTOR_ID};
use crate::events::RunEvent;
use crate::lead::{Input, LeadMsg};
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
        let team = team.to_string();
        tokio::spawn(async move {
            let outcome = git.merge(request).await;
            let _ = me.send_message(DirectorMsg::TeamMerged { team, outcome });
        });
    }

    pub(super) async fn on_team_merged(
        &mut self,
        myself: &ActorRef<DirectorMsg>,
        team: &str,
        outcome: Result<MergeOutcome, GitError>,
    ) {
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
            Ok(MergeOutcome::Merged { commit, .. }) | Ok(MergeOutcome::UpToDate { commit }) => {
                board.count(|t| t.merges += 1);
                board.events().emit(RunEvent::Merged {
                    source: branch.clone(),
                    target: base.clone(),
                    commit,
                });
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
            Err(error) => {
                self.teams
                    .history
                    .push(format!("merging {branch} failed: {error}"));
                self.teams.free(team);
                self.dispatch(myself).await;
            }
        }
    }
}
