//! The run's shared state: tasks, agents, totals, the Director's plan.
//!
//! Supervisors keep the task queue *outside* their child actors (as ractor's factory does):
//! a Worker that dies loses nothing, because the task it held lives here and goes back to the
//! queue. The tasks are a [`TaskTable`], the only writer of task phases
//! ([`Board::advance`]). The board is also the source of [`StatusSnapshot`]s (SIGUSR1,
//! `status()`), of the journal and of the final summary. Every method takes the lock briefly
//! and never awaits while holding it; every change wakes the journal writer.

mod records;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use cco_protocol::{TaskSpec, TeamGoal};

use crate::events::{EventBus, RunEvent};
use crate::lifecycle::{LifecycleError, TaskPhase, TaskTable};

pub use records::{
    AgentRecord, CredentialState, CredentialStatus, PauseCause, Role, RunPause, StatusSnapshot,
    TaskRecord, TaskState, Totals,
};

#[derive(Debug, Default)]
struct BoardInner {
    tasks: TaskTable,
    agents: BTreeMap<String, AgentRecord>,
    totals: Totals,
    phase: String,
    /// Task specs by task key (what a restarted lead or a resumed run needs to re-assign).
    specs: BTreeMap<String, TaskSpec>,
    plan: PlanState,
    nodes: Vec<crate::cluster::NodeRecord>,
    credentials: Vec<CredentialStatus>,
    /// New processes are held back now.
    pause: Option<RunPause>,
    /// Every pause of the run, in order (for the summary).
    pauses: Vec<RunPause>,
    /// `maxAutoResolveConflicts` was used up (logged once).
    auto_resolve_exhausted: bool,
    /// Every claude process alive now, by pid.
    processes: BTreeMap<u32, ProcessRecord>,
}

/// A claude process of the run (a worker's turn, a planner, a review fork...), journaled so a
/// later cco (`cco resume`, `cco start --fresh`) ends it and its process group when this cco
/// died without doing so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcessRecord {
    pub(crate) agent: String,
    pub(crate) pid: u32,
    /// Its process group (claude runs in a group of its own, with everything it started).
    pub(crate) pgid: u32,
    pub(crate) task: Option<String>,
    pub(crate) started_at: DateTime<Utc>,
}

/// The Director's planning state, kept here so a resumed run continues it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct PlanState {
    /// Goals planned but not yet handed to a team.
    pub(crate) pending_goals: Vec<TeamGoal>,
    /// Goal each team is working on.
    pub(crate) team_goals: BTreeMap<String, TeamGoal>,
    /// What happened so far (for re-planning).
    pub(crate) history: Vec<String>,
    /// The name of each team slot (hierarchy mode; `""`: not named yet). A team is named
    /// after its first goal.
    #[serde(default)]
    pub(crate) team_names: Vec<String>,
}

/// Shared run state; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Board {
    inner: Arc<Mutex<BoardInner>>,
    /// Bumped on every change; the journal writer waits on it.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    /// The change count the journal on disk reflects (set by the journal writer).
    journaled: Arc<tokio::sync::watch::Sender<u64>>,
    events: EventBus,
    run_id: Arc<str>,
    started_at: DateTime<Utc>,
    /// Active time of the run's earlier cco processes (a resumed run), in ms.
    active_before_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl Board {
    pub(crate) fn new(run_id: &str, events: EventBus) -> Self {
        Self {
            inner: Arc::new(Mutex::new(BoardInner {
                phase: "starting".into(),
                ..Default::default()
            })),
            changes: Arc::new(tokio::sync::watch::channel(0).0),
            journaled: Arc::new(tokio::sync::watch::channel(0).0),
            events,
            run_id: run_id.into(),
            started_at: Utc::now(),
            active_before_ms: Default::default(),
        }
    }

    /// A resumed run: the time its earlier cco processes were active (see
    /// `journal::RunClock`), so snapshots tell the run's whole active time.
    pub(crate) fn set_active_before(&self, before: std::time::Duration) {
        self.active_before_ms.store(
            u64::try_from(before.as_millis()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn lock(&self) -> MutexGuard<'_, BoardInner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks the board changed (wakes the journal writer).
    fn touch(&self) {
        self.changes.send_modify(|v| *v += 1);
    }

    /// Receives a new value after every change.
    pub(crate) fn watch_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The count of changes so far (see `journal::Barrier`).
    pub(crate) fn version(&self) -> u64 {
        *self.changes.borrow()
    }

    /// The journal writer wrote a journal holding every change up to `version`.
    pub(crate) fn mark_journaled(&self, version: u64) {
        self.journaled.send_if_modified(|v| {
            let newer = version > *v;
            if newer {
                *v = version;
            }
            newer
        });
    }

    /// Tells which change count the journal on disk holds (see `journal::Barrier`).
    pub(crate) fn watch_journaled(&self) -> tokio::sync::watch::Receiver<u64> {
        self.journaled.subscribe()
    }

    pub(crate) fn set_spec(&self, key: &str, spec: TaskSpec) {
        self.lock().specs.insert(key.to_string(), spec);
        self.touch();
    }

    pub(crate) fn spec(&self, key: &str) -> Option<TaskSpec> {
        self.lock().specs.get(key).cloned()
    }

    pub(crate) fn specs(&self) -> BTreeMap<String, TaskSpec> {
        self.lock().specs.clone()
    }

    pub(crate) fn plan(&self) -> PlanState {
        self.lock().plan.clone()
    }

    pub(crate) fn update_plan(&self, change: impl FnOnce(&mut PlanState)) {
        change(&mut self.lock().plan);
        self.touch();
    }

    /// Restores a journaled run (resume): tasks, agents, totals, specs, plan.
    pub(crate) fn restore(
        &self,
        snapshot: &StatusSnapshot,
        specs: BTreeMap<String, TaskSpec>,
        plan: PlanState,
    ) {
        {
            let mut inner = self.lock();
            inner.tasks = TaskTable::from_records(snapshot.tasks.iter().cloned());
            inner.agents = snapshot
                .agents
                .iter()
                .map(|a| (a.id.clone(), a.clone()))
                .collect();
            inner.totals = snapshot.totals.clone();
            inner.specs = specs;
            inner.plan = plan;
        }
        self.touch();
    }

    pub(crate) fn events(&self) -> &EventBus {
        &self.events
    }

    pub(crate) fn run_id(&self) -> &str {
        &self.run_id
    }

    pub(crate) fn set_phase(&self, phase: impl Into<String>) {
        let phase = phase.into();
        self.lock().phase = phase.clone();
        self.touch();
        self.events.emit(RunEvent::Phase { phase });
    }

    pub(crate) fn register_agent(
        &self,
        id: &str,
        role: Role,
        team: Option<&str>,
        parent: Option<&str>,
        model: Option<&str>,
    ) {
        let mut inner = self.lock();
        let mut agent = AgentRecord::new(id, role);
        if let Some(old) = inner.agents.get(id) {
            agent.restarts = old.restarts;
            agent.cost_usd = old.cost_usd;
            agent.credential = old.credential.clone();
        }
        agent.team = team.map(str::to_string);
        agent.parent = parent.map(str::to_string);
        agent.model = model.map(str::to_string);
        inner.agents.insert(id.to_string(), agent);
        drop(inner);
        self.touch();
    }

    /// Forgets an agent (a journaled agent that this run does not have).
    pub(crate) fn remove_agent(&self, id: &str) {
        let removed = self.lock().agents.remove(id).is_some();
        if removed {
            self.touch();
        }
    }

    /// Applies `change` to an agent record (no-op for unknown ids).
    pub(crate) fn update_agent(&self, id: &str, change: impl FnOnce(&mut AgentRecord)) {
        if let Some(agent) = self.lock().agents.get_mut(id) {
            change(agent);
        }
        self.touch();
    }

    pub(crate) fn set_agent_state(&self, id: &str, state: impl Into<String>) {
        let state = state.into();
        let changed = {
            let mut inner = self.lock();
            match inner.agents.get_mut(id) {
                Some(agent) if agent.state != state => {
                    agent.state = state.clone();
                    agent.state_since = Some(Instant::now());
                    true
                }
                _ => false,
            }
        };
        if changed {
            self.touch();
            self.events.emit(RunEvent::AgentState {
                agent: id.to_string(),
                state,
            });
        }
    }

    pub(crate) fn agent(&self, id: &str) -> Option<AgentRecord> {
        self.lock().agents.get(id).cloned()
    }

    /// Adds the cost of one finished claude run to the agent, its task and the total.
    pub(crate) fn add_cost(&self, agent: &str, task_key: Option<&str>, cost_usd: f64) -> f64 {
        if !(cost_usd.is_finite() && cost_usd > 0.0) {
            return self.lock().totals.cost_usd;
        }
        let total = {
            let mut inner = self.lock();
            if let Some(a) = inner.agents.get_mut(agent) {
                a.cost_usd += cost_usd;
            }
            if let Some(key) = task_key {
                inner.tasks.add_cost(key, cost_usd);
            }
            inner.totals.cost_usd += cost_usd;
            inner.totals.cost_usd
        };
        self.touch();
        self.events.emit(RunEvent::Cost {
            agent: agent.to_string(),
            total_usd: total,
        });
        total
    }

    pub(crate) fn total_cost(&self) -> f64 {
        self.lock().totals.cost_usd
    }

    /// Adds a new task (queued, unless the record says otherwise).
    pub(crate) fn add_task(&self, record: TaskRecord) {
        let moved = RunEvent::TaskMoved {
            task: record.key.clone(),
            phase: Box::new(record.phase.clone()),
            cost_usd: record.cost_usd,
        };
        self.lock().tasks.insert(record);
        self.touch();
        self.events.emit(moved);
    }

    /// Moves a task to its next phase (see [`TaskTable::advance`]); an illegal transition is
    /// logged and refused. Returns the record as it is now.
    pub(crate) fn advance(&self, key: &str, to: TaskPhase) -> Result<TaskRecord, LifecycleError> {
        let result = self.lock().tasks.advance(key, to).cloned();
        match &result {
            Ok(record) => {
                self.touch();
                self.events.emit(RunEvent::TaskMoved {
                    task: record.key.clone(),
                    phase: Box::new(record.phase.clone()),
                    cost_usd: record.cost_usd,
                });
            }
            Err(error) => tracing::warn!(%error, "task transition refused"),
        }
        result
    }

    /// The session a turn of task `key` runs in (known before its first event).
    pub(crate) fn note_session(&self, key: &str, session_id: &str) {
        self.lock().tasks.note_session(key, session_id);
        self.touch();
    }

    /// The session id a worker reported for a finished turn of `key`, if any.
    pub(crate) fn keep_session(&self, key: &str, session_id: Option<String>) {
        self.lock().tasks.keep_session(key, session_id);
        self.touch();
    }

    /// A review of task `key` gave no usable decision; returns how many did so far.
    pub(crate) fn note_undecided_review(&self, key: &str) -> u32 {
        let n = self.lock().tasks.note_undecided_review(key);
        self.touch();
        n
    }

    /// One more claude process ran for task `key`.
    pub(crate) fn note_attempt(&self, key: &str) {
        self.lock().tasks.note_attempt(key);
        self.touch();
    }

    pub(crate) fn task(&self, key: &str) -> Option<TaskRecord> {
        self.lock().tasks.get(key).cloned()
    }

    /// Reads the task table under the lock, without copying it (keep `read` short).
    pub(crate) fn with_tasks<R>(&self, read: impl FnOnce(&TaskTable) -> R) -> R {
        read(&self.lock().tasks)
    }

    pub(crate) fn tasks_of_team(&self, team: &str) -> Vec<TaskRecord> {
        self.lock()
            .tasks
            .records()
            .filter(|t| t.team == team)
            .cloned()
            .collect()
    }

    /// A claude process started (journaled until [`process_ended`](Self::process_ended)).
    pub(crate) fn process_started(&self, record: ProcessRecord) {
        self.lock().processes.insert(record.pid, record);
        self.touch();
    }

    /// The claude process `pid` is gone.
    pub(crate) fn process_ended(&self, pid: u32) {
        let removed = self.lock().processes.remove(&pid).is_some();
        if removed {
            self.touch();
        }
    }

    /// The claude processes alive now.
    pub(crate) fn processes(&self) -> Vec<ProcessRecord> {
        self.lock().processes.values().cloned().collect()
    }

    pub(crate) fn count(&self, change: impl FnOnce(&mut Totals)) {
        change(&mut self.lock().totals);
        self.touch();
    }

    /// Every credential's state (written by whoever changed the pool).
    pub(crate) fn set_credentials(&self, credentials: Vec<CredentialStatus>) {
        let changed = {
            let mut inner = self.lock();
            let changed = inner.credentials != credentials;
            inner.credentials = credentials;
            changed
        };
        if changed {
            self.touch();
        }
    }

    /// New processes are held back until `until` for `cause` (a turn waits at admission).
    /// Returns whether this starts a new pause (or moves its end).
    pub(crate) fn set_pause(&self, cause: PauseCause, until: DateTime<Utc>) -> bool {
        let changed = {
            let mut inner = self.lock();
            match &mut inner.pause {
                Some(pause) if pause.cause == cause && pause.until >= until => false,
                Some(pause) if pause.cause == cause => {
                    pause.until = until;
                    if let Some(last) = inner.pauses.last_mut() {
                        last.until = until;
                    }
                    true
                }
                _ => {
                    let pause = RunPause {
                        cause,
                        since: Utc::now(),
                        until,
                    };
                    inner.pauses.push(pause.clone());
                    inner.pause = Some(pause);
                    true
                }
            }
        };
        if changed {
            self.touch();
        }
        changed
    }

    /// A process was admitted: a pause that is over ends.
    pub(crate) fn end_pause(&self, now: DateTime<Utc>) {
        let ended = {
            let mut inner = self.lock();
            match &inner.pause {
                Some(pause) if pause.until <= now => {
                    inner.pause = None;
                    true
                }
                _ => false,
            }
        };
        if ended {
            self.touch();
        }
    }

    /// The run's totals now.
    pub(crate) fn snapshot_totals(&self) -> Totals {
        self.lock().totals.clone()
    }

    /// Marks `maxAutoResolveConflicts` used up; true the first time (to log it once).
    pub(crate) fn note_auto_resolve_exhausted(&self) -> bool {
        let mut inner = self.lock();
        !std::mem::replace(&mut inner.auto_resolve_exhausted, true)
    }

    /// Every pause of the run so far.
    pub(crate) fn pauses(&self) -> Vec<RunPause> {
        self.lock().pauses.clone()
    }

    /// Counts `n` tool uses; returns the run's total.
    pub(crate) fn add_tool_uses(&self, n: u64) -> u64 {
        let total = {
            let mut inner = self.lock();
            inner.totals.tool_uses += n;
            inner.totals.tool_uses
        };
        self.touch();
        total
    }

    /// One more conflict handed to an agent, if `limit` (`maxAutoResolveConflicts`) allows:
    /// false once the run has used them up.
    pub(crate) fn take_conflict_resolution(&self, limit: Option<u32>) -> bool {
        let taken = {
            let mut inner = self.lock();
            let used = inner.totals.conflicts_resolving;
            let allowed = limit.is_none_or(|limit| used < limit);
            if allowed {
                inner.totals.conflicts_resolving += 1;
            }
            allowed
        };
        self.touch();
        taken
    }

    pub(crate) fn snapshot(&self) -> StatusSnapshot {
        let inner = self.lock();
        StatusSnapshot {
            run_id: self.run_id.to_string(),
            taken_at: Utc::now(),
            started_at: self.started_at,
            active_before_secs: self
                .active_before_ms
                .load(std::sync::atomic::Ordering::Relaxed) as f64
                / 1000.0,
            phase: inner.phase.clone(),
            agents: inner.agents.values().cloned().collect(),
            tasks: inner.tasks.records().cloned().collect(),
            totals: inner.totals.clone(),
            nodes: inner.nodes.clone(),
            credentials: inner.credentials.clone(),
            // A pause whose time is over is not shown (the next start ends it).
            pause: inner.pause.clone().filter(|p| p.until > Utc::now()),
        }
    }

    /// The cluster's nodes as they are now.
    pub(crate) fn set_nodes(&self, nodes: Vec<crate::cluster::NodeRecord>) {
        self.lock().nodes = nodes;
        self.touch();
    }
}
