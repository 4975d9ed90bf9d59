//! The run's shared state: tasks, agents and totals.
//!
//! Supervisors keep the task queue *outside* their child actors (as ractor's factory does):
//! a Worker that dies loses nothing, because the task it held lives here and goes back to the
//! queue. The board is also the source of [`StatusSnapshot`]s (SIGUSR1, `status()`) and of the
//! final summary. All methods take the lock briefly and never await while holding it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use cco_protocol::{TaskSpec, TeamGoal};

use crate::events::{EventBus, RunEvent};

/// Role of an agent in the supervision tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Director,
    Coordinator,
    Em,
    Worker,
    Git,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Director => "director",
            Role::Coordinator => "coordinator",
            Role::Em => "em",
            Role::Worker => "worker",
            Role::Git => "git",
        }
    }
}

/// Life cycle of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Pending,
    Running,
    Review,
    Merging,
    Done,
    Failed,
}

/// One task as the run knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRecord {
    /// `<team>/<task id>`: unique in the run.
    pub key: String,
    pub team: String,
    pub id: String,
    pub title: String,
    pub state: TaskState,
    pub worker: Option<String>,
    pub session_id: Option<String>,
    /// Claude process starts for this task (first start plus restarts/resumes).
    pub attempts: u32,
    pub review_rounds: u32,
    pub failure: Option<String>,
    pub merged_commit: Option<String>,
    pub cost_usd: f64,
    /// `review_rounds` when the task's work was last frozen in its task ref
    /// (`cco_git::task_ref`): equal to `review_rounds` means the ref holds the latest round,
    /// so a resumed run reviews or merges it without the worker.
    #[serde(default)]
    pub captured_round: Option<u32>,
    /// Which of its worker's two worktrees the task's session lives in (0: the worker's own,
    /// 1: its spare): revisions and resumes run there, where `--resume` finds the session.
    #[serde(default)]
    pub lane: Option<usize>,
}

/// One agent (actor) as the run knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentRecord {
    pub id: String,
    pub role: Role,
    pub team: Option<String>,
    /// Parent in the supervision tree (`None` for the Director).
    pub parent: Option<String>,
    pub state: String,
    pub pid: Option<u32>,
    pub session_id: Option<String>,
    pub current_task: Option<String>,
    pub last_tool: Option<String>,
    pub restarts: u32,
    pub cost_usd: f64,
    pub model: Option<String>,
    #[serde(skip)]
    pub state_since: Option<Instant>,
}

/// Totals of the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    pub tasks_done: u32,
    pub tasks_failed: u32,
    pub commits: u32,
    pub merges: u32,
    pub conflicts: u32,
    pub cost_usd: f64,
}

#[derive(Debug, Default)]
struct BoardInner {
    tasks: BTreeMap<String, TaskRecord>,
    agents: BTreeMap<String, AgentRecord>,
    totals: Totals,
    phase: String,
    /// Task specs by task key (what a restarted lead or a resumed run needs to re-assign).
    specs: BTreeMap<String, TaskSpec>,
    plan: PlanState,
}

/// The Director's planning state, kept here so a resumed run continues it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlanState {
    /// Goals planned but not yet handed to a team.
    pub pending_goals: Vec<TeamGoal>,
    /// Goal each team is working on.
    pub team_goals: BTreeMap<String, TeamGoal>,
    /// What happened so far (for re-planning).
    pub history: Vec<String>,
}

/// Shared run state; cheap to clone.
#[derive(Debug, Clone)]
pub struct Board {
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

/// A point-in-time copy of the whole tree, for SIGUSR1 dumps and `status()`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusSnapshot {
    pub run_id: String,
    pub taken_at: DateTime<Utc>,
    /// When this cco process started the run (or resumed it).
    pub started_at: DateTime<Utc>,
    /// How long earlier cco processes had the run active before a resume (0 otherwise).
    #[serde(default)]
    pub active_before_secs: f64,
    pub phase: String,
    pub agents: Vec<AgentRecord>,
    pub tasks: Vec<TaskRecord>,
    pub totals: Totals,
}

impl Board {
    pub fn new(run_id: &str, events: EventBus) -> Self {
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
    pub fn set_active_before(&self, before: std::time::Duration) {
        self.active_before_ms.store(
            before.as_millis() as u64,
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
    pub fn watch_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The count of changes so far (see [`Board::journaled`]).
    pub fn version(&self) -> u64 {
        *self.changes.borrow()
    }

    /// The journal writer wrote a journal holding every change up to `version`.
    pub fn mark_journaled(&self, version: u64) {
        self.journaled.send_if_modified(|v| {
            let newer = version > *v;
            if newer {
                *v = version;
            }
            newer
        });
    }

    /// Waits until the journal on disk holds every change up to `version`, at most `within`
    /// (the journal may be unwritable). Returns whether it does.
    pub async fn journaled(&self, version: u64, within: std::time::Duration) -> bool {
        let mut written = self.journaled.subscribe();
        tokio::time::timeout(within, written.wait_for(|v| *v >= version))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn set_spec(&self, key: &str, spec: TaskSpec) {
        self.lock().specs.insert(key.to_string(), spec);
        self.touch();
    }

    pub fn spec(&self, key: &str) -> Option<TaskSpec> {
        self.lock().specs.get(key).cloned()
    }

    pub fn specs(&self) -> BTreeMap<String, TaskSpec> {
        self.lock().specs.clone()
    }

    pub fn plan(&self) -> PlanState {
        self.lock().plan.clone()
    }

    pub fn update_plan(&self, change: impl FnOnce(&mut PlanState)) {
        change(&mut self.lock().plan);
        self.touch();
    }

    /// Restores a journaled run (resume): tasks, agents, totals, specs, plan.
    pub fn restore(
        &self,
        snapshot: &StatusSnapshot,
        specs: BTreeMap<String, TaskSpec>,
        plan: PlanState,
    ) {
        {
            let mut inner = self.lock();
            inner.tasks = snapshot
                .tasks
                .iter()
                .map(|t| (t.key.clone(), t.clone()))
                .collect();
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

    pub fn events(&self) -> &EventBus {
        &self.events
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn set_phase(&self, phase: impl Into<String>) {
        let phase = phase.into();
        self.lock().phase = phase.clone();
        self.touch();
        self.events.emit(RunEvent::Phase { phase });
    }

    pub fn register_agent(
        &self,
        id: &str,
        role: Role,
        team: Option<&str>,
        parent: Option<&str>,
        model: Option<&str>,
    ) {
        let mut inner = self.lock();
        let restarts = inner.agents.get(id).map(|a| a.restarts).unwrap_or(0);
        let cost = inner.agents.get(id).map(|a| a.cost_usd).unwrap_or(0.0);
        inner.agents.insert(
            id.to_string(),
            AgentRecord {
                id: id.to_string(),
                role,
                team: team.map(str::to_string),
                parent: parent.map(str::to_string),
                state: "starting".into(),
                pid: None,
                session_id: None,
                current_task: None,
                last_tool: None,
                restarts,
                cost_usd: cost,
                model: model.map(str::to_string),
                state_since: Some(Instant::now()),
            },
        );
        drop(inner);
        self.touch();
    }

    /// Applies `change` to an agent record (no-op for unknown ids).
    pub fn update_agent(&self, id: &str, change: impl FnOnce(&mut AgentRecord)) {
        if let Some(agent) = self.lock().agents.get_mut(id) {
            change(agent);
        }
        self.touch();
    }

    pub fn set_agent_state(&self, id: &str, state: impl Into<String>) {
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

    pub fn agent(&self, id: &str) -> Option<AgentRecord> {
        self.lock().agents.get(id).cloned()
    }

    /// Adds the cost of one finished claude run to the agent, its task and the total.
    pub fn add_cost(&self, agent: &str, task_key: Option<&str>, cost_usd: f64) -> f64 {
        if !(cost_usd.is_finite() && cost_usd > 0.0) {
            return self.lock().totals.cost_usd;
        }
        let total = {
            let mut inner = self.lock();
            if let Some(a) = inner.agents.get_mut(agent) {
                a.cost_usd += cost_usd;
            }
            if let Some(t) = task_key.and_then(|k| inner.tasks.get_mut(k)) {
                t.cost_usd += cost_usd;
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

    pub fn total_cost(&self) -> f64 {
        self.lock().totals.cost_usd
    }

    pub fn add_task(&self, record: TaskRecord) {
        self.lock().tasks.insert(record.key.clone(), record);
        self.touch();
    }

    pub fn update_task(&self, key: &str, change: impl FnOnce(&mut TaskRecord)) {
        if let Some(task) = self.lock().tasks.get_mut(key) {
            change(task);
        }
        self.touch();
    }

    pub fn task(&self, key: &str) -> Option<TaskRecord> {
        self.lock().tasks.get(key).cloned()
    }

    pub fn tasks_of_team(&self, team: &str) -> Vec<TaskRecord> {
        self.lock()
            .tasks
            .values()
            .filter(|t| t.team == team)
            .cloned()
            .collect()
    }

    pub fn count(&self, change: impl FnOnce(&mut Totals)) {
        change(&mut self.lock().totals);
        self.touch();
    }

    pub fn snapshot(&self) -> StatusSnapshot {
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
            tasks: inner.tasks.values().cloned().collect(),
            totals: inner.totals.clone(),
        }
    }
}

impl StatusSnapshot {
    /// How long the run has been active when the snapshot was taken, over every cco process
    /// that ran it.
    pub fn active_elapsed(&self) -> std::time::Duration {
        (self.taken_at - self.started_at)
            .to_std()
            .unwrap_or_default()
            + std::time::Duration::from_secs_f64(self.active_before_secs.max(0.0))
    }

    /// The supervision tree as indented text, one line per agent.
    pub fn render_tree(&self) -> String {
        let mut out = format!(
            "cco run {} — phase: {} — tasks done {} failed {} — merges {} conflicts {} — cost ${:.4}\n",
            self.run_id,
            self.phase,
            self.totals.tasks_done,
            self.totals.tasks_failed,
            self.totals.merges,
            self.totals.conflicts,
            self.totals.cost_usd
        );
        let roots: Vec<&AgentRecord> = self.agents.iter().filter(|a| a.parent.is_none()).collect();
        for root in roots {
            self.render_node(root, 0, &mut out);
        }
        out
    }

    fn render_node(&self, agent: &AgentRecord, depth: usize, out: &mut String) {
        let dash = "-".to_string();
        out.push_str(&format!(
            "{indent}{role} {id} [{state}] pid={pid} session={session} task={task} restarts={restarts} cost=${cost:.4}\n",
            indent = "  ".repeat(depth + 1),
            role = agent.role.as_str(),
            id = agent.id,
            state = agent.state,
            pid = agent.pid.map(|p| p.to_string()).unwrap_or_else(|| dash.clone()),
            session = agent.session_id.clone().unwrap_or_else(|| dash.clone()),
            task = agent.current_task.clone().unwrap_or_else(|| dash.clone()),
            restarts = agent.restarts,
            cost = agent.cost_usd,
        ));
        for child in self
            .agents
            .iter()
            .filter(|a| a.parent.as_deref() == Some(agent.id.as_str()))
        {
            self.render_node(child, depth + 1, out);
        }
    }
}
