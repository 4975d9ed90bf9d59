//! What every actor of one run shares: configuration, board, credentials, git, paths.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cco_claude::SessionSpec;
use cco_config::{LoadedConfig, Redactor};

use crate::board::{Board, Role};
use crate::error::AgentSetupError;
use crate::keys::{Credential, KeyPool};
use crate::session::{AgentIdentity, TurnRequest};

/// Shared, read-mostly state of one run.
pub(crate) struct RunContext {
    pub(crate) config: Arc<LoadedConfig>,
    pub(crate) board: Board,
    pub(crate) keys: KeyPool,
    /// Holds new claude processes while the API is overloaded (run-wide).
    pub(crate) breaker: crate::breaker::Breaker,
    pub(crate) redactor: Arc<Redactor>,
    pub(crate) git: cco_git::GitHandle,
    /// `<logDirectory>/run-<timestamp>`.
    pub(crate) run_dir: PathBuf,
    /// `<workspaceDirectory>`: repo clone, worktrees, agent config dirs.
    pub(crate) workspace: PathBuf,
    /// Branch the Director merges into (the configured branch or the run branch).
    pub(crate) base_branch: String,
    /// This run continues a journaled run (`cco resume`).
    pub(crate) resumed: bool,
    /// Set once shutdown starts: nobody takes new work.
    pub(crate) stopping: AtomicBool,
    /// Set by a forced shutdown: running processes get SIGKILL without a grace period. A
    /// level, not an edge: a turn that looks after the force was set still sees it
    /// ([`RunContext::forced`]), so a force can never be lost between two polls.
    pub(crate) forced: tokio::sync::watch::Sender<bool>,
    /// Where workers' turns run when they do not run here (issue 15); `None`: all here.
    pub(crate) cluster: Option<Arc<dyn crate::cluster::Cluster>>,
    /// How planners and reviewers answer: through the CLI's `StructuredOutput` tool (a CLI
    /// with `--json-schema`, decided once per run) or as text.
    pub(crate) answer: cco_protocol::AnswerFormat,
    /// Every claude process runs under this guard (agents stop when cco dies), if set.
    pub(crate) guard: Option<cco_claude::GuardSpec>,
    /// Actor cells by agent id (fault injection and diagnostics; never used for routing).
    pub(crate) cells: std::sync::Mutex<std::collections::HashMap<String, ractor::ActorCell>>,
}

impl RunContext {
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub(crate) fn begin_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Escalates a shutdown: every turn that is still waiting for its process SIGKILLs it.
    pub(crate) fn force_stop(&self) {
        self.begin_stop();
        self.forced.send_replace(true);
    }

    /// Completes once the shutdown is forced (at once when it already is).
    pub(crate) async fn forced(&self) {
        let mut forced = self.forced.subscribe();
        if forced.wait_for(|forced| *forced).await.is_err() {
            // The sender lives as long as `self`: cannot happen; never complete.
            std::future::pending::<()>().await;
        }
    }

    pub(crate) fn register_cell(&self, agent: &str, cell: ractor::ActorCell) {
        self.cells
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agent.to_string(), cell);
    }

    pub(crate) fn cell(&self, agent: &str) -> Option<ractor::ActorCell> {
        self.cells
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(agent)
            .cloned()
    }

    /// How planners and reviewers hand over their JSON document in this run.
    pub(crate) fn answer_format(&self) -> cco_protocol::AnswerFormat {
        self.answer
    }

    pub(crate) fn is_forced(&self) -> bool {
        *self.forced.borrow()
    }

    pub(crate) fn model_for(&self, role: Role) -> String {
        let models = &self.config.config.models;
        match role {
            Role::Director | Role::Coordinator => models.director.clone(),
            Role::Em => models.em.clone(),
            Role::Worker => models.worker.clone(),
        }
    }

    /// The agent's own `CLAUDE_CONFIG_DIR` (kept outside every worktree).
    pub(crate) fn agent_config_dir(&self, agent_id: &str) -> PathBuf {
        self.workspace
            .join("agents")
            .join(agent_id)
            .join("claude-config")
    }

    /// Who agent `id` is: its role, team, worktree `cwd` holding `branch`, and the `target`
    /// its work merges into.
    pub(crate) fn identity(
        &self,
        id: &str,
        role: Role,
        team: Option<&str>,
        cwd: &Path,
        (branch, target): (&str, &str),
    ) -> AgentIdentity {
        AgentIdentity {
            id: id.to_string(),
            role,
            team: team.map(str::to_string),
            model: self.model_for(role),
            cwd: cwd.to_path_buf(),
            config_dir: self.agent_config_dir(id),
            branch: branch.to_string(),
            target: target.to_string(),
        }
    }

    /// Gives an agent its worktree (created, or re-attached after a restart or resume) on a
    /// branch from `from`, and its own `CLAUDE_CONFIG_DIR`; returns who it is and its branch.
    pub(crate) async fn prepare_agent(
        &self,
        id: &str,
        role: Role,
        team: &str,
        from: &str,
    ) -> Result<(AgentIdentity, cco_git::WorktreeInfo), AgentSetupError> {
        let worktree = self
            .git
            .create_worktree(team, id, from)
            .await
            .map_err(|source| AgentSetupError::Worktree {
                agent: id.to_string(),
                source,
            })?;
        let config_dir = self.agent_config_dir(id);
        std::fs::create_dir_all(&config_dir).map_err(|source| AgentSetupError::ConfigDir {
            agent: id.to_string(),
            path: config_dir.clone(),
            source,
        })?;
        crate::auth::prepare_config_dir(self, &config_dir);
        // The Director belongs to no team; its worktree's "team" is only a folder name.
        let team = (role != Role::Director).then_some(team);
        // A worker works on its own branch for `from`; a planner reads `from` (its worktree is
        // brought to it before each planning turn) and its work lands in the base branch.
        let branches = match role {
            Role::Worker => (worktree.branch.as_str(), from),
            _ => (from, self.base_branch.as_str()),
        };
        let who = self.identity(id, role, team, &worktree.path, branches);
        Ok((who, worktree))
    }

    /// The claude command for one process of a turn.
    pub(crate) fn session_spec(
        &self,
        who: &AgentIdentity,
        request: &TurnRequest,
        prompt: &str,
        resume: Option<&str>,
        new_session: Option<&str>,
        credential: &Credential,
    ) -> SessionSpec {
        let config = &self.config.config;
        // Every prompt passes through the logs' redactor: text agents wrote (commit messages,
        // results, plans) never carries a secret into another agent's session.
        let prompt = self.redactor.redact(prompt).into_owned();
        let mut spec = SessionSpec::new(
            &self.config.claude_binary,
            &prompt,
            &who.cwd,
            &who.config_dir,
        );
        spec.label = who.id.clone();
        spec.model = Some(who.model.clone());
        spec.resume_session_id = resume.map(str::to_string);
        spec.new_session_id = new_session.map(str::to_string);
        // Both: continue `resume`'s history in the new session (`--fork-session`).
        spec.fork_session = resume.is_some() && new_session.is_some();
        spec.permission_mode = Some(config.permission_mode.as_str().to_string());
        spec.max_turns = config.max_turns;
        spec.wall_timeout = request.wall_timeout;
        spec.idle_timeout = Some(config.idle_timeout());
        spec.kill_grace = config.kill_grace();
        spec.guard = self.guard.clone();
        if self.answer == cco_protocol::AnswerFormat::StructuredOutput {
            spec.json_schema = request
                .document
                .map(cco_protocol::PlanKind::json_schema_arg);
        }
        let mut env = vec![
            ("CCO_AGENT_ROLE".to_string(), who.role.as_str().to_string()),
            ("CCO_AGENT_ID".to_string(), who.id.clone()),
            // With the agent id, it tells this run's processes from any other's (see `unix`).
            (
                crate::unix::RUN_ID_VAR.to_string(),
                self.board.run_id().to_string(),
            ),
            (
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".to_string(),
                "1".to_string(),
            ),
            ("DISABLE_AUTOUPDATER".to_string(), "1".to_string()),
        ];
        if std::env::var_os("CLAUDE_CODE_MAX_RETRIES").is_none() {
            // The CLI's default (10 retries, ~3 min) delays key rotation: fail fast, rotate.
            env.push(("CLAUDE_CODE_MAX_RETRIES".to_string(), "3".to_string()));
        }
        if let Some(task) = &request.task_key {
            env.push(("CCO_TASK_ID".to_string(), task.clone()));
        }
        if let Credential::Key(_) = credential {
            // The key decides: an inherited login token must not compete with it.
            spec.env_remove.push("ANTHROPIC_AUTH_TOKEN".to_string());
        }
        // orchestrator.json's `env` (cco's own names were refused when it was loaded).
        env.extend(
            config
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string())),
        );
        env.extend(credential.env());
        spec.env = env;
        let session_for_log = new_session.or(resume).unwrap_or("unknown");
        spec.transcript = Some(
            self.run_dir
                .join("sessions")
                .join(format!("{}-{}.jsonl", who.id, session_for_log)),
        );
        let redactor = Arc::clone(&self.redactor);
        spec.redact = Some(Arc::new(move |line: &str| {
            redactor.redact(line).into_owned()
        }));
        spec
    }

    /// Shows every credential's state on the board (after the pool changed).
    pub(crate) fn show_credentials(&self) {
        self.board
            .set_credentials(self.keys.statuses(chrono::Utc::now()));
    }

    /// `maxTotalToolUses` is reached: no new turn starts (the Director ends the run).
    pub(crate) fn tool_uses_exhausted(&self) -> bool {
        self.config
            .config
            .max_total_tool_uses
            .is_some_and(|cap| self.board.snapshot_totals().tool_uses >= cap)
    }

    pub(crate) fn task_timeout(&self) -> Duration {
        self.config.config.task_timeout()
    }
}
