//! [`RunSummary`]: the end of a run, also written to `<run dir>/summary.json`; and the end of
//! the run itself (summary, final journal, GitActor stop).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::board::{AgentRecord, CredentialStatus, RunPause, StatusSnapshot, TaskRecord, Totals};
use crate::context::RunContext;
use crate::director::RunEnd;
use crate::journal::{Ending, Journal, RunClock};
use crate::outcome::RunOutcome;

/// The end of a run, also written to `<run dir>/summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunSummary {
    pub run_id: String,
    /// Why the run ended, in words.
    pub reason: String,
    /// How the run ended, as a type (what exit codes and reports are made from).
    pub outcome: RunOutcome,
    /// The planners declared the direction met (`outcome.is_complete()`).
    pub completed: bool,
    pub base_branch: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// How long the run was active, over every cco process that ran it (a resumed run
    /// counts the time before the resume, not the time no cco was running).
    pub duration_secs: f64,
    pub totals: Totals,
    /// Spend per model (`models` of the config: opus for the Director, sonnet for the rest…).
    pub cost_by_model: BTreeMap<String, f64>,
    pub cost_by_agent: BTreeMap<String, f64>,
    pub tasks: Vec<TaskRecord>,
    pub agents: Vec<AgentRecord>,
    /// What the GitActor did: ops by kind, how many and how long (`None`: it did not answer).
    #[serde(default)]
    pub git: Option<cco_git::GitStatus>,
    /// The cluster's nodes at the end (each one's slots, workers, state, bundle bytes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<crate::cluster::NodeRecord>,
    /// Every credential as the run ended (the login, each key: ready, warning, limited).
    #[serde(default)]
    pub credentials: Vec<CredentialStatus>,
    /// Every time new claude processes were held back: every credential rate limited (until
    /// the earliest reset), or the API overloaded (the circuit breaker).
    #[serde(default)]
    pub pauses: Vec<RunPause>,
}

impl RunSummary {
    pub(crate) fn new(
        snapshot: StatusSnapshot,
        reason: String,
        outcome: RunOutcome,
        base_branch: String,
        started_at: DateTime<Utc>,
    ) -> Self {
        let finished_at = Utc::now();
        let mut cost_by_model = BTreeMap::new();
        let mut cost_by_agent = BTreeMap::new();
        for agent in &snapshot.agents {
            let model = agent.model.clone().unwrap_or_else(|| "none".into());
            *cost_by_model.entry(model).or_insert(0.0) += agent.cost_usd;
            cost_by_agent.insert(agent.id.clone(), agent.cost_usd);
        }
        RunSummary {
            run_id: snapshot.run_id,
            reason,
            completed: outcome.is_complete(),
            outcome,
            base_branch,
            started_at,
            finished_at,
            duration_secs: (finished_at - started_at).num_milliseconds() as f64 / 1000.0,
            totals: snapshot.totals,
            cost_by_model,
            cost_by_agent,
            tasks: snapshot.tasks,
            agents: snapshot.agents,
            git: None,
            nodes: snapshot.nodes,
            credentials: snapshot.credentials,
            pauses: Vec::new(),
        }
    }
}

/// Makes the board agree with git about merges the leads did not hear the end of: a task
/// still merging (its lead stopped while the merge ran, e.g. a signal during the verify
/// command) whose work the target holds now is done, with the commit that merged it, and
/// counted. Queued behind the merge in flight on the target (one op at a time on shared
/// refs), so it sees what that merge did. Call once every lead has stopped.
pub(crate) async fn reconcile_merges(ctx: &RunContext) {
    let flat = ctx.config.config.is_flat();
    let run_name = super::run_name(&ctx.run_dir);
    let merging: Vec<TaskRecord> = ctx
        .board
        .snapshot()
        .tasks
        .into_iter()
        .filter(|t| matches!(t.phase, crate::lifecycle::TaskPhase::Merging { .. }))
        .collect();
    for task in merging {
        let target = super::merge_target(flat, &ctx.base_branch, &task.team);
        let task_ref = cco_git::task_ref(&run_name, &task.team, &task.id);
        match ctx.git.merged_by(&target, &task_ref).await {
            Ok(Some(commit)) => {
                let done = crate::lifecycle::TaskPhase::Done {
                    commit: commit.clone(),
                };
                if ctx.board.advance(&task.key, done).is_ok() {
                    info!(task = %task.key, %commit, "merged while the run stopped: recorded");
                    ctx.board.count(|t| {
                        t.tasks_done += 1;
                        t.merges += 1;
                    });
                }
            }
            Ok(None) => {}
            Err(error) => {
                warn!(task = %task.key, %error, "could not tell whether a merging task merged")
            }
        }
    }
}

/// Writes the summary and the final journal, stops the GitActor (after its operation in
/// flight). The journal writer has stopped: nothing overwrites the final journal.
pub(crate) async fn finish_run(
    ctx: &RunContext,
    end: RunEnd,
    started_at: DateTime<Utc>,
    clock: &RunClock,
) -> RunSummary {
    ctx.show_credentials();
    let snapshot = ctx.board.snapshot();
    let git = ctx.git.status().await.ok();
    if let Err(error) = ctx.git.stop().await {
        warn!(%error, "git actor did not stop cleanly");
    }
    let mut summary = RunSummary::new(
        snapshot,
        end.reason,
        end.outcome,
        ctx.base_branch.clone(),
        started_at,
    );
    summary.git = git;
    summary.pauses = ctx.board.pauses();
    // Active time over every cco process of the run (a resumed run counts the earlier ones).
    summary.duration_secs = clock.elapsed().as_secs_f64();
    // A run stopped by the user or a limit is finished too: `cco resume` is for crashes.
    let ending = Ending {
        reason: &summary.reason,
        outcome: &summary.outcome,
    };
    let journal = Journal::capture(&ctx.board, &ctx.keys, &ctx.base_branch, clock, Some(ending))
        .with_tips(Some(&ctx.git));
    let run_dir = ctx.run_dir.clone();
    let redactor = std::sync::Arc::clone(&ctx.redactor);
    let summary_bytes = crate::journal::redacted_json(&summary, &redactor);
    // fsync blocks: not on the async threads.
    let written = tokio::task::spawn_blocking(move || {
        if let Err(error) = journal.write_redacted(&run_dir, &redactor) {
            warn!(%error, "could not write the final journal");
        }
        match summary_bytes {
            Ok(bytes) => {
                if let Err(error) =
                    crate::persist::write_atomic(&run_dir.join("summary.json"), &bytes)
                {
                    warn!(%error, "could not write summary.json");
                }
            }
            Err(error) => warn!(%error, "could not serialise the summary"),
        }
    })
    .await;
    if let Err(error) = written {
        warn!(%error, "the final write did not finish");
    }
    info!(reason = %summary.reason, done = summary.totals.tasks_done, failed = summary.totals.tasks_failed, "run finished");
    summary
}
