//! The Worker actor: one git worktree at a time, at most one claude process.
//!
//! A Worker takes a [`Job`] (a [`Turn`] of a task) from its lead, runs it as a turn (see
//! [`crate::session`]) and reports the result back with [`LeadMsg::WorkerReport`]. It keeps no
//! task state that matters beyond its current job: the lead owns the queue and the task
//! lifecycle, so when a Worker actor dies the lead re-queues its task and respawns the slot.
//!
//! A worker has two worktrees (its own, created here, and a spare the lead creates): each job
//! names the one it runs in, so a new task can start in one while the previous turn in the
//! other is still being captured. Before a job's turn the worker puts that worktree where the
//! lead says ([`Start`]): as it is (parked at the target tip by the capture of its previous
//! turn), synced to the target, or switched to the task ref of a task it revises. A conflict
//! resolution first merges the other branch into the worktree and, after the turn, concludes
//! the merge. The lead captures the turn afterwards.
//!
//! Handlers stay short: claude runs and git calls happen in spawned tasks that message the
//! actor back, with typed errors.

use std::path::PathBuf;
use std::sync::Arc;

use cco_git::GitError;
use cco_protocol::{Duty, ResumeCause, Role, TaskSpec};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tracing::{info, warn};

use crate::context::RunContext;
use crate::error::JobFailure;
use crate::lead::{Input, LeadMsg};
use crate::lifecycle::{Interruption, Turn};
use crate::prompts;
use crate::session::{
    apply_turn_update, spawn_turn_at, AgentIdentity, FailCause, TurnEnd, TurnGuard, TurnRequest,
    TurnUpdate,
};

/// Work a lead gives to a worker: one turn of a task.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) key: String,
    pub(crate) spec: TaskSpec,
    pub(crate) turn: Turn,
}

/// Where the worktree must be before a job's turn starts (one urgent GitActor op, or none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Start {
    /// As it is: parked at the target tip after the previous capture, or holding the
    /// interrupted work a resumed session continues.
    InPlace,
    /// At the tip of this branch (snapshotting anything the worktree holds that is not in it).
    Sync(String),
    /// At the task's frozen work (a revision or a conflict resolution): `kept_in` is the
    /// target, which already holds the parked HEAD, so no snapshot is needed for it.
    TaskRef { task_ref: String, kept_in: String },
}

/// One of a worker's worktrees and the branch checked out there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Workplace {
    pub(crate) path: PathBuf,
    pub(crate) branch: String,
}

/// What a worker tells its lead.
#[derive(Debug)]
pub(crate) enum WorkerReport {
    Finished {
        key: String,
        result_text: String,
        session_id: Option<String>,
    },
    Failed {
        key: String,
        failure: JobFailure,
        session_id: Option<String>,
    },
}

pub(crate) enum WorkerMsg {
    /// A job, where its worktree must be first, and which worktree it runs in.
    Assign(Box<Job>, Start, Workplace),
    /// The worktree is where the job needs it (or could not be put there).
    Prepared(Result<(), GitError>),
    Turn(TurnUpdate),
    TurnEnded(TurnEnd),
    /// The other branch was merged into the worktree: `None` = clean, `Some(files)` =
    /// conflicts for the turn to resolve.
    ConflictPrepared(Result<Option<Vec<String>>, GitError>),
    ConflictConcluded(Result<(), GitError>),
    /// Stop the current process (SIGTERM, grace, SIGKILL) and reply when it is gone.
    Shutdown(RpcReplyPort<()>),
}

// Local only (ractor's `cluster` feature needs every message type to implement `Message`).
impl ractor::Message for WorkerMsg {}

/// Start-up arguments of a worker slot.
pub(crate) struct WorkerArgs {
    pub(crate) ctx: Arc<RunContext>,
    pub(crate) id: String,
    pub(crate) team: String,
    pub(crate) lead: ActorRef<LeadMsg>,
    pub(crate) slot: usize,
    /// Branch the worker's branch starts from and merges into.
    pub(crate) target_branch: String,
    /// Who reviews its work (its lead's role): named in the feedback prompt.
    pub(crate) reviewer: Role,
}

pub(crate) struct WorkerState {
    ctx: Arc<RunContext>,
    who: AgentIdentity,
    lead: ActorRef<LeadMsg>,
    slot: usize,
    reviewer: Role,
    worktree: PathBuf,
    branch: String,
    /// Its own worktree was created just now at the target tip.
    fresh: bool,
    job: Option<Job>,
    turn: Option<TurnGuard>,
    session_id: Option<String>,
    shutting_down: bool,
}

pub(crate) struct WorkerActor;

impl Actor for WorkerActor {
    type Msg = WorkerMsg;
    type State = WorkerState;
    type Arguments = WorkerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<WorkerMsg>,
        args: WorkerArgs,
    ) -> Result<WorkerState, ActorProcessingErr> {
        let WorkerArgs {
            ctx,
            id,
            team,
            lead,
            slot,
            target_branch,
            reviewer,
        } = args;
        let (who, worktree) = ctx
            .prepare_agent(&id, Role::Worker, &team, &target_branch)
            .await?;
        let branch = worktree.branch;
        let fresh = worktree.at_start_point;
        ctx.board.set_agent_state(&id, "idle");
        info!(worker = %id, worktree = %who.cwd.display(), %branch, "worker ready");
        Ok(WorkerState {
            ctx,
            worktree: who.cwd.clone(),
            who,
            lead,
            slot,
            reviewer,
            branch,
            fresh,
            job: None,
            turn: None,
            session_id: None,
            shutting_down: false,
        })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<WorkerMsg>,
        state: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        let _ = state.lead.send_message(LeadMsg::input(Input::WorkerReady {
            slot: state.slot,
            worktree: state.worktree.clone(),
            branch: state.branch.clone(),
            fresh: state.fresh,
        }));
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        state: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerMsg::Assign(job, start, place) => state.start_job(&myself, *job, start, place),
            WorkerMsg::Prepared(result) => state.on_prepared(&myself, result),
            WorkerMsg::Turn(update) => state.on_turn_update(update),
            WorkerMsg::TurnEnded(end) => state.on_turn_end(&myself, end),
            WorkerMsg::ConflictPrepared(result) => state.on_conflict_prepared(&myself, result),
            WorkerMsg::ConflictConcluded(result) => {
                let key = state
                    .job
                    .as_ref()
                    .map(|j| j.key.clone())
                    .unwrap_or_default();
                let session_id = state.session_id.clone();
                state.report(match result {
                    Ok(()) => WorkerReport::Finished {
                        key,
                        result_text: "conflict resolved".into(),
                        session_id,
                    },
                    Err(error) => WorkerReport::Failed {
                        key,
                        failure: JobFailure::Conclude(error),
                        session_id,
                    },
                });
            }
            WorkerMsg::Shutdown(reply) => {
                state.shutting_down = true;
                state.ctx.board.set_agent_state(&state.who.id, "stopping");
                if let Some(turn) = state.turn.take() {
                    turn.shutdown().await;
                }
                state.ctx.board.set_agent_state(&state.who.id, "stopped");
                state
                    .ctx
                    .board
                    .update_agent(&state.who.id, |a| a.pid = None);
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

impl WorkerState {
    fn start_job(
        &mut self,
        myself: &ActorRef<WorkerMsg>,
        job: Job,
        start: Start,
        place: Workplace,
    ) {
        if self.shutting_down || self.job.is_some() {
            // The lead only assigns to idle workers; refuse rather than lose the running job.
            warn!(worker = %self.who.id, job = %job.key, "busy or stopping: job refused");
            let _ = self.lead.send_message(LeadMsg::input(Input::WorkerReport {
                slot: self.slot,
                report: WorkerReport::Failed {
                    key: job.key,
                    failure: JobFailure::Busy,
                    session_id: None,
                },
            }));
            return;
        }
        let key = job.key.clone();
        self.ctx
            .board
            .update_agent(&self.who.id, |a| a.current_task = Some(key));
        self.job = Some(job.clone());
        // The claude process, its session and the job's git steps all use this worktree.
        self.worktree = place.path.clone();
        self.who.cwd = place.path;
        self.who.branch = place.branch.clone();
        self.branch = place.branch;
        let (to, kept_in) = match start {
            Start::InPlace => return self.run_job(myself, job),
            Start::Sync(branch) => (branch, None),
            Start::TaskRef { task_ref, kept_in } => (task_ref, Some(kept_in)),
        };
        self.ctx.board.set_agent_state(&self.who.id, "syncing");
        let git = self.ctx.git.clone();
        let worktree = self.worktree.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let result = git
                .switch_worktree(&worktree, &to, kept_in.as_deref())
                .await
                .map(|_| ());
            let _ = me.send_message(WorkerMsg::Prepared(result));
        });
    }

    fn on_prepared(&mut self, myself: &ActorRef<WorkerMsg>, result: Result<(), GitError>) {
        if self.shutting_down || self.turn.is_some() {
            return;
        }
        let Some(job) = self.job.clone() else { return };
        match result {
            Ok(()) => self.run_job(myself, job),
            Err(error) => self.report(WorkerReport::Failed {
                key: job.key,
                failure: JobFailure::Prepare(error),
                session_id: self.session_id.clone(),
            }),
        }
    }

    fn task_prompt(&self, spec: &TaskSpec) -> String {
        prompts::worker_task(&self.who, spec)
    }

    /// A turn on work sent back (`prompt`), in its session; without a session to resume, a
    /// new one starts with the task and then the prompt.
    fn run_sent_back(
        &mut self,
        myself: &ActorRef<WorkerMsg>,
        key: &str,
        spec: &TaskSpec,
        prompt: String,
        session_id: Option<String>,
    ) {
        self.session_id = session_id.clone();
        let prompt = if session_id.is_some() {
            prompt
        } else {
            format!("{}\n\n{prompt}", self.task_prompt(spec))
        };
        let mut request = self.request(key, spec, prompt, Duty::Implement);
        request.resume = session_id;
        self.run_turn(myself, request);
    }

    /// Starts the job's turn (or, for a conflict, the merge that precedes it).
    fn run_job(&mut self, myself: &ActorRef<WorkerMsg>, job: Job) {
        let Job { key, spec, turn } = job;
        match turn {
            Turn::Fresh => {
                self.session_id = None;
                let prompt = self.task_prompt(&spec);
                let request = self.request(&key, &spec, prompt, Duty::Implement);
                self.run_turn(myself, request);
            }
            Turn::Resume {
                session_id,
                resolving,
                why,
            } => {
                self.session_id = Some(session_id.clone());
                let duty = match resolving {
                    Some(_) => Duty::ResolveConflict,
                    None => Duty::Implement,
                };
                // The fresh start's prompt, should the session be gone.
                let prompt = self.task_prompt(&spec);
                let mut request = self.request(&key, &spec, prompt, duty);
                request.resume = Some(session_id);
                request.interrupted = Some(match why {
                    Interruption::ApiUnavailable => ResumeCause::ApiUnavailable,
                    _ => ResumeCause::CcoRestarted,
                });
                self.run_turn(myself, request);
            }
            // Work sent back to its session: the reviewer's feedback, the verify gate's
            // failure, or work cco refused (a secret, a path inside .git, committed markers...)
            // fixed where it is (a conflict turn's fix is concluded after).
            Turn::Revise {
                feedback,
                session_id,
                gate,
            } => {
                let prompt = match &gate {
                    Some(gate) => prompts::verify_failed(&self.who, &spec, gate),
                    None => prompts::feedback(&self.who, &spec, self.reviewer, &feedback),
                };
                self.run_sent_back(myself, &key, &spec, prompt, session_id);
            }
            Turn::Fix {
                problem,
                session_id,
                ..
            } => {
                let prompt = prompts::refused(&self.who, &spec, &problem);
                self.run_sent_back(myself, &key, &spec, prompt, session_id);
            }
            Turn::ResolveConflict {
                against,
                session_id,
            } => {
                self.session_id = session_id;
                self.ctx.board.set_agent_state(&self.who.id, "merging");
                let git = self.ctx.git.clone();
                let worktree = self.worktree.clone();
                let me = myself.clone();
                tokio::spawn(async move {
                    let result = git
                        .merge_into_worktree(&worktree, &against)
                        .await
                        .map(|merge| match merge {
                            cco_git::WorktreeMerge::Conflicted { files } => Some(files),
                            cco_git::WorktreeMerge::UpToDate
                            | cco_git::WorktreeMerge::Clean { .. } => None,
                        });
                    let _ = me.send_message(WorkerMsg::ConflictPrepared(result));
                });
            }
        }
    }

    /// A turn of task `key` running `prompt` for `duty`, under the task timeout.
    fn request(&self, key: &str, spec: &TaskSpec, prompt: String, duty: Duty) -> TurnRequest {
        TurnRequest {
            task_key: Some(key.to_string()),
            wall_timeout: Some(self.ctx.task_timeout()),
            task: Some(spec.clone()),
            ..TurnRequest::new(prompt, duty)
        }
    }

    fn run_turn(&mut self, myself: &ActorRef<WorkerMsg>, request: TurnRequest) {
        self.ctx.board.set_agent_state(&self.who.id, "working");
        let notify_ref = myself.clone();
        let finish_ref = myself.clone();
        // With a cluster, the turn's processes may run on a node (see `crate::cluster`).
        let place = self.ctx.cluster.as_ref().map(|cluster| {
            cluster.turn(crate::cluster::TurnSite {
                agent: self.who.id.clone(),
                team: self.who.team.clone(),
                worktree: self.worktree.clone(),
                task: request.task_key.clone(),
            })
        });
        self.turn = Some(spawn_turn_at(
            Arc::clone(&self.ctx),
            self.who.clone(),
            request,
            place,
            move |update| {
                let _ = notify_ref.send_message(WorkerMsg::Turn(update));
            },
            move |end| {
                let _ = finish_ref.send_message(WorkerMsg::TurnEnded(end));
            },
        ));
    }

    /// The agent's bookkeeping (shared with the planners), plus the task's: its session
    /// (journaled at once) and its process starts.
    fn on_turn_update(&mut self, update: TurnUpdate) {
        let board = &self.ctx.board;
        let key = self.job.as_ref().map(|job| job.key.as_str());
        match (&update, key) {
            (TurnUpdate::Started { .. }, _) => board.set_agent_state(&self.who.id, "working"),
            (TurnUpdate::Session(session), Some(key)) => board.note_session(key, session),
            (TurnUpdate::Exited, Some(key)) => board.note_attempt(key),
            _ => {}
        }
        apply_turn_update(&self.ctx, &self.who.id, update, &mut self.session_id);
    }

    fn on_turn_end(&mut self, myself: &ActorRef<WorkerMsg>, end: TurnEnd) {
        self.turn = None;
        let Some(job) = self.job.clone() else { return };
        match end {
            TurnEnd::Cancelled => {
                self.job = None;
            }
            TurnEnd::Failed {
                reason,
                cause,
                session_id,
            } => {
                if session_id.is_some() {
                    self.session_id = session_id;
                }
                let failure = match cause {
                    FailCause::ApiUnavailable => JobFailure::ApiUnavailable(reason),
                    FailCause::Agent | FailCause::Spawn => JobFailure::Turn(reason),
                };
                self.report(WorkerReport::Failed {
                    key: job.key,
                    failure,
                    session_id: self.session_id.clone(),
                });
            }
            TurnEnd::Done {
                result_text,
                session_id,
                ..
            } => {
                if session_id.is_some() {
                    self.session_id = session_id;
                }
                if job.turn.resolving().is_some() {
                    // The turn resolved a conflict: the merge must be concluded, with no
                    // marker left, before the work is captured and merged.
                    let git = self.ctx.git.clone();
                    let worktree = self.worktree.clone();
                    let me = myself.clone();
                    tokio::spawn(async move {
                        let result = git.conclude_worktree_merge(&worktree).await.map(|_| ());
                        let _ = me.send_message(WorkerMsg::ConflictConcluded(result));
                    });
                } else {
                    self.report(WorkerReport::Finished {
                        key: job.key,
                        result_text,
                        session_id: self.session_id.clone(),
                    });
                }
            }
        }
    }

    fn on_conflict_prepared(
        &mut self,
        myself: &ActorRef<WorkerMsg>,
        result: Result<Option<Vec<String>>, GitError>,
    ) {
        let Some(Job {
            key,
            spec,
            turn: Turn::ResolveConflict { against, .. },
        }) = self.job.clone()
        else {
            return;
        };
        match result {
            Err(error) => self.report(WorkerReport::Failed {
                key,
                failure: JobFailure::MergeTarget(error),
                session_id: self.session_id.clone(),
            }),
            Ok(None) => self.report(WorkerReport::Finished {
                key,
                result_text: "merged cleanly".into(),
                session_id: self.session_id.clone(),
            }),
            Ok(Some(files)) => {
                let prompt = prompts::conflict(&self.who, &spec, &against, &files);
                let mut request = self.request(&key, &spec, prompt, Duty::ResolveConflict);
                request.resume = self.session_id.clone();
                self.run_turn(myself, request);
            }
        }
    }

    fn report(&mut self, report: WorkerReport) {
        self.job = None;
        self.ctx.board.update_agent(&self.who.id, |a| {
            a.current_task = None;
            a.pid = None;
        });
        self.ctx.board.set_agent_state(&self.who.id, "idle");
        let _ = self.lead.send_message(LeadMsg::input(Input::WorkerReport {
            slot: self.slot,
            report,
        }));
    }
}
