//! Starting the teams' leads (EMs, or the Coordinator in flat mode): their branches and
//! actors side by side, what each lead starts with, and what a lead that failed to start
//! means (a scheduled restart, or the end of the run when no lead is left).

use std::sync::Arc;
use std::time::Instant;

use futures_util::future::join_all;
use ractor::{Actor, ActorRef, SpawnErr};
use tracing::warn;

use super::{DirectorMsg, DirectorState, DIRECTOR_ID};
use crate::board::Role;
use crate::error::DirectorError;
use crate::lead::{LeadActor, LeadArgs, LeadMsg};
use crate::outcome::EndCause;
use crate::supervise::{record_exit, Exit};

impl DirectorState {
    /// Starts the teams of named slots side by side: their branches (`cco/<team>/team`),
    /// their EMs and, through each EM, its workers. Every team's setup (a branch, an EM's
    /// repository, then ten workers' repositories) is queued at once, so the GitActor works on
    /// all teams together and the last team is ready about when the first is, instead of
    /// each team waiting for the ones named before it. Returns each slot's outcome.
    pub(super) async fn start_teams(
        &mut self,
        myself: &ActorRef<DirectorMsg>,
        slots: &[usize],
    ) -> Vec<(usize, Result<(), DirectorError>)> {
        let base = self.ctx.base_branch.clone();
        let branches = join_all(slots.iter().map(|&slot| {
            let (git, base) = (self.ctx.git.clone(), base.clone());
            let name = self.teams.teams[slot].name.clone();
            async move {
                let branch = git.ensure_team_branch(&name, Some(&base)).await;
                (
                    slot,
                    branch.map_err(|source| DirectorError::TeamBranch { team: name, source }),
                )
            }
        }))
        .await;
        let mut outcomes = Vec::new();
        let mut spawning = Vec::new();
        for (slot, branch) in branches {
            match branch {
                Ok(branch) => {
                    self.teams.teams[slot].branch = branch;
                    self.leads.set_id(slot, self.teams.teams[slot].lead.clone());
                    spawning.push((slot, self.lead_args(myself, slot)));
                    outcomes.push((slot, Ok(())));
                }
                Err(error) => outcomes.push((slot, Err(error))),
            }
        }
        let spawned = join_all(spawning.into_iter().map(|(slot, args)| {
            let cell = myself.get_cell();
            async move {
                let id = args.id.clone();
                (
                    slot,
                    id,
                    LeadActor::spawn_linked(None, LeadActor, args, cell).await,
                )
            }
        }))
        .await;
        for (slot, id, result) in spawned {
            self.on_lead_spawned(myself, slot, id, result.map(|(actor, _)| actor))
                .await;
            if let Some(actor) = self.leads.get(slot) {
                let _ = actor.send_message(LeadMsg::Start);
            }
        }
        outcomes
    }

    pub(super) async fn spawn_lead(&mut self, myself: &ActorRef<DirectorMsg>, slot: usize) {
        let args = self.lead_args(myself, slot);
        let id = args.id.clone();
        let result = LeadActor::spawn_linked(None, LeadActor, args, myself.get_cell()).await;
        self.on_lead_spawned(myself, slot, id, result.map(|(actor, _)| actor))
            .await;
    }

    /// What the lead of `slot` starts with (it is registered on the board here).
    fn lead_args(&self, myself: &ActorRef<DirectorMsg>, slot: usize) -> LeadArgs {
        let team = &self.teams.teams[slot];
        let (role, parent) = if self.flat {
            (Role::Coordinator, None)
        } else {
            (Role::Em, Some(DIRECTOR_ID))
        };
        self.ctx.board.register_agent(
            &team.lead,
            role,
            Some(&team.name),
            parent,
            Some(&self.ctx.model_for(role)),
        );
        let restarts = self.leads.restarts(slot);
        self.ctx
            .board
            .update_agent(&team.lead, |a| a.restarts = restarts);
        LeadArgs {
            ctx: Arc::clone(&self.ctx),
            id: team.lead.clone(),
            role,
            team: team.name.clone(),
            target_branch: team.branch.clone(),
            worker_ids: team.worker_ids.clone(),
            director: myself.clone(),
        }
    }

    async fn on_lead_spawned(
        &mut self,
        myself: &ActorRef<DirectorMsg>,
        slot: usize,
        lead_id: String,
        result: Result<ActorRef<LeadMsg>, SpawnErr>,
    ) {
        match result {
            Ok(actor) => {
                self.ctx.register_cell(&lead_id, actor.get_cell());
                self.leads.fill(slot, actor);
            }
            Err(error) => {
                warn!(lead = %lead_id, %error, "lead failed to start");
                let exit = self.leads.on_exit(slot, Instant::now());
                let why = format!("failed to start: {error}");
                record_exit(&self.ctx.board, &lead_id, exit, Some(&why));
                match exit {
                    Exit::RestartAfter { delay, .. } => {
                        myself.send_after(delay, move || DirectorMsg::RespawnLead { slot });
                    }
                    Exit::GaveUp { all_dead: true } => {
                        let reason = format!("{lead_id} {why}");
                        self.stop(myself, reason, EndCause::Failed, false).await;
                    }
                    Exit::GaveUp { all_dead: false } => {}
                }
            }
        }
    }
}
