//! The records a run is made of, as status snapshots, the journal and the summary show them:
//! agents ([`AgentRecord`]), tasks ([`TaskRecord`]), totals, and the whole tree at one instant
//! ([`StatusSnapshot`]). Plain data: the [`Board`](super::Board) keeps the live copies.

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::lifecycle::{TaskKind, TaskPhase};

/// Role of an agent in the supervision tree: cco-protocol's role, the one type for the tree,
/// the journal, the status and the prompts.
pub use cco_protocol::Role;

/// The coarse state of a task, derived from its [`TaskPhase`] (what status lines show).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaskState {
    /// Queued, or waiting for the worker whose session did it.
    Pending,
    Running,
    /// Its turn ended: captured, summarised, reviewed.
    Review,
    Merging,
    Done,
    Failed,
}

/// One task as the run knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskRecord {
    /// `<team>/<task id>`: unique in the run.
    pub key: String,
    pub team: String,
    pub id: String,
    pub title: String,
    /// Planned, a base merge, a verify fix. Absent in journals of older versions of cco.
    #[serde(default)]
    pub kind: TaskKind,
    /// Where the task is in its life (the source of `state`, `failure` and `merged_commit`).
    /// Absent in journals of older versions of cco (derived from `state` when they are read).
    #[serde(default)]
    pub phase: TaskPhase,
    /// The coarse state of `phase`.
    pub state: TaskState,
    /// The worker whose session did the task (the last to run a turn of it).
    pub worker: Option<String>,
    pub session_id: Option<String>,
    /// Claude process starts for this task (first start plus restarts/resumes).
    pub attempts: u32,
    /// Rounds of changes asked of the worker: review feedback, a red verify gate, no commit.
    pub review_rounds: u32,
    /// Merge conflicts the worker's session was asked to resolve. (Journals of older versions
    /// of cco counted these in `review_rounds`.)
    #[serde(default)]
    pub conflict_rounds: u32,
    pub failure: Option<String>,
    pub merged_commit: Option<String>,
    pub cost_usd: f64,
    /// [`rounds`](Self::rounds) when the task's work was last frozen in its task ref
    /// (`cco_git::task_ref`).
    #[serde(default)]
    pub captured_round: Option<u32>,
    /// Which of its worker's two worktrees the task's session lives in (0: the worker's own,
    /// 1: its spare): revisions and resumes run there, where `--resume` finds the session.
    #[serde(default)]
    pub lane: Option<usize>,
    /// Times cco refused the work of a turn and its session was asked to fix it in place.
    #[serde(default)]
    pub fix_rounds: u32,
    /// The work in the task ref resolves a conflict with this branch: it is reviewed as a
    /// resolution (the merge against each parent).
    #[serde(default)]
    pub resolution: Option<String>,
    /// Reviews of the task that gave no usable decision (after their re-asks): the first is
    /// followed by a fresh review, the second fails the task; the work is never merged
    /// unreviewed.
    #[serde(default)]
    pub undecided_reviews: u32,
}

impl TaskRecord {
    /// A new planned task `<team>/<id>`, queued.
    pub fn new(team: &str, id: &str, title: &str) -> TaskRecord {
        TaskRecord {
            key: format!("{team}/{id}"),
            team: team.to_string(),
            id: id.to_string(),
            title: title.to_string(),
            kind: TaskKind::Planned,
            phase: TaskPhase::Queued,
            state: TaskState::Pending,
            worker: None,
            session_id: None,
            attempts: 0,
            review_rounds: 0,
            conflict_rounds: 0,
            failure: None,
            merged_commit: None,
            cost_usd: 0.0,
            captured_round: None,
            lane: None,
            fix_rounds: 0,
            undecided_reviews: 0,
            resolution: None,
        }
    }

    /// The same task, of `kind`.
    pub fn with_kind(mut self, kind: TaskKind) -> TaskRecord {
        self.kind = kind;
        self
    }

    /// Every round of work asked of the task's session after its first turn.
    pub fn rounds(&self) -> u32 {
        self.review_rounds + self.conflict_rounds + self.fix_rounds
    }
}

/// One agent (actor) as the run knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AgentRecord {
    pub id: String,
    pub role: Role,
    pub team: Option<String>,
    /// Parent in the supervision tree (`None` for the root: the Director, or the Coordinator
    /// in flat mode).
    pub parent: Option<String>,
    pub state: String,
    pub pid: Option<u32>,
    pub session_id: Option<String>,
    pub current_task: Option<String>,
    pub last_tool: Option<String>,
    pub restarts: u32,
    pub cost_usd: f64,
    pub model: Option<String>,
    /// The cluster node a worker's turns run on (`None`: this machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The credential its claude process runs (or last ran) on: `oauth` (the CLI's login) or
    /// the name of an API key. Never the secret.
    #[serde(default)]
    pub credential: Option<String>,
    #[serde(skip)]
    pub state_since: Option<Instant>,
}

impl AgentRecord {
    /// An agent `id` of `role`, starting, at the root of the tree.
    pub fn new(id: &str, role: Role) -> AgentRecord {
        AgentRecord {
            id: id.to_string(),
            role,
            team: None,
            parent: None,
            state: "starting".into(),
            pid: None,
            session_id: None,
            current_task: None,
            last_tool: None,
            restarts: 0,
            cost_usd: 0.0,
            model: None,
            node: None,
            credential: None,
            state_since: Some(Instant::now()),
        }
    }
}

/// Whether a credential takes new processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CredentialState {
    /// Usable, with headroom.
    Ready,
    /// Usable, but its quota is nearly used (`allowed_warning`, or a utilization above
    /// `quotaWarningThreshold`): new processes prefer other credentials.
    Warning,
    /// Rate limited: benched until `until`.
    Limited,
}

/// One credential (the CLI login or an API key) as status lines show it; never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CredentialStatus {
    /// `oauth` for the CLI login, else the key's name from api-keys.json.
    pub name: String,
    /// The CLI login (not a key).
    pub login: bool,
    /// Used only while the preferred credentials are limited (`authMode`'s fallback).
    pub fallback: bool,
    pub state: CredentialState,
    /// Limited: until when; warning: when its quota window resets (if known).
    pub until: Option<DateTime<Utc>>,
    /// The latest reported utilization (0..=1), when the API reports one.
    pub utilization: Option<f64>,
}

impl CredentialStatus {
    /// `a ready`, `b limited until 12:03:04 UTC`, `oauth warning (95% used)`.
    pub fn describe(&self) -> String {
        let mut text = format!("{} {}", self.name, self.state.as_str());
        if let Some(u) = self
            .utilization
            .filter(|_| self.state != CredentialState::Ready)
        {
            text.push_str(&format!(" ({:.0}% used)", u * 100.0));
        }
        if let Some(until) = self
            .until
            .filter(|_| self.state == CredentialState::Limited)
        {
            text.push_str(&format!(" until {}", until.format("%H:%M:%S UTC")));
        }
        text
    }
}

impl CredentialState {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialState::Ready => "ready",
            CredentialState::Warning => "warning",
            CredentialState::Limited => "limited",
        }
    }
}

/// Why new claude processes are held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PauseCause {
    /// Every credential is rate limited: until the earliest reset.
    RateLimited,
    /// Several agents saw the API overloaded (529, 5xx): the circuit breaker holds new starts.
    ApiOverloaded,
}

/// A pause of new claude processes: why, from when, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunPause {
    pub cause: PauseCause,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

impl RunPause {
    /// `paused: every credential is rate limited until 12:03:04 UTC (the earliest reset)`.
    pub fn describe(&self) -> String {
        let until = self.until.format("%H:%M:%S UTC");
        match self.cause {
            PauseCause::RateLimited => format!(
                "paused: every credential is rate limited until {until} (the earliest reset)"
            ),
            PauseCause::ApiOverloaded => {
                format!("holding new starts: the API is overloaded, until {until}")
            }
        }
    }
}

/// Totals of the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Totals {
    pub tasks_done: u32,
    pub tasks_failed: u32,
    pub commits: u32,
    pub merges: u32,
    pub conflicts: u32,
    pub cost_usd: f64,
    /// Tool uses of every claude process of the run (`maxTotalToolUses` counts these).
    #[serde(default)]
    pub tool_uses: u64,
    /// Conflicts handed to agents to resolve (`maxAutoResolveConflicts` counts these).
    #[serde(default)]
    pub conflicts_resolving: u32,
}

/// A point-in-time copy of the whole tree, for SIGUSR1 dumps and `status()`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
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
    /// The cluster's nodes (empty without a cluster).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<crate::cluster::NodeRecord>,
    /// Every credential and whether it takes new processes.
    #[serde(default)]
    pub credentials: Vec<CredentialStatus>,
    /// New processes are held back now (every credential limited, or the API overloaded).
    #[serde(default)]
    pub pause: Option<RunPause>,
}

impl StatusSnapshot {
    /// An empty snapshot of run `run_id`, taken now, of a run started at `started_at`.
    pub fn new(run_id: &str, started_at: DateTime<Utc>) -> StatusSnapshot {
        StatusSnapshot {
            run_id: run_id.to_string(),
            taken_at: Utc::now(),
            started_at,
            active_before_secs: 0.0,
            phase: "starting".into(),
            agents: Vec::new(),
            tasks: Vec::new(),
            totals: Totals::default(),
            nodes: Vec::new(),
            credentials: Vec::new(),
            pause: None,
        }
    }

    /// How long the run has been active when the snapshot was taken, over every cco process
    /// that ran it.
    pub fn active_elapsed(&self) -> std::time::Duration {
        (self.taken_at - self.started_at)
            .to_std()
            .unwrap_or_default()
            + std::time::Duration::from_secs_f64(self.active_before_secs.max(0.0))
    }

    /// The supervision tree as indented text, one line per agent ([`printable`](crate::printable)).
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
        for node in &self.nodes {
            out.push_str(&format!(
                "  node {name} ({address}) [{state}] slots {used}/{slots} bundles sent {sent} B received {received} B sessions {sessions} B\n",
                name = node.name,
                address = node.address,
                state = node.state.as_str(),
                used = node.workers.len(),
                slots = node.slots,
                sent = node.bundle_bytes_sent,
                received = node.bundle_bytes_received,
                sessions = node.session_bytes_received,
            ));
        }
        if !self.credentials.is_empty() {
            let list: Vec<String> = self.credentials.iter().map(|c| c.describe()).collect();
            out.push_str(&format!("credentials: {}\n", list.join(" · ")));
        }
        if let Some(pause) = &self.pause {
            out.push_str(&format!("{}\n", pause.describe()));
        }
        // Task titles and states hold agents' words (a journal may come from an older cco).
        match crate::events::printable(&out) {
            std::borrow::Cow::Borrowed(_) => out,
            std::borrow::Cow::Owned(clean) => clean,
        }
    }

    fn render_node(&self, agent: &AgentRecord, depth: usize, out: &mut String) {
        let dash = "-".to_string();
        out.push_str(&format!(
            "{indent}{role} {id} [{state}] pid={pid} session={session} task={task} credential={credential} restarts={restarts} cost=${cost:.4}{node}\n",
            indent = "  ".repeat(depth + 1),
            role = agent.role.as_str(),
            id = agent.id,
            state = agent.state,
            pid = agent.pid.map(|p| p.to_string()).unwrap_or_else(|| dash.clone()),
            session = agent.session_id.clone().unwrap_or_else(|| dash.clone()),
            task = agent.current_task.clone().unwrap_or_else(|| dash.clone()),
            credential = agent.credential.clone().unwrap_or_else(|| dash.clone()),
            restarts = agent.restarts,
            cost = agent.cost_usd,
            // A worker whose turns run on a cluster node.
            node = agent
                .node
                .as_ref()
                .map(|node| format!(" node={node}"))
                .unwrap_or_default(),
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
