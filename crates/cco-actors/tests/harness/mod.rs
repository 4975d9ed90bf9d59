//! Test harness: a throwaway project (source repo + config dir) driven by fake-claude.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use cco_actors::{Orchestrator, OrchestratorHandle, RunSummary};
use serde_json::{json, Value};

pub struct Project {
    pub dir: tempfile::TempDir,
    pub source: PathBuf,
    pub config_dir: PathBuf,
}

impl Project {
    /// A source repo with PROJECT_DIRECTION.md and a config dir whose claude binary is
    /// fake-claude playing `script`.
    pub fn new(config: Value, script: Value) -> Project {
        Project::in_dir(cco_testkit::temp_dir(), config, script)
    }

    /// [`Project::new`] in `dir` (a script may then name paths of the project: the config
    /// is `<dir>/config`, the run's clone `<dir>/config/workspace/repo`).
    pub fn in_dir(dir: tempfile::TempDir, config: Value, script: Value) -> Project {
        let defaults = json!({
            "workerCount": 2,
            "pollIntervalMs": 50,
            "restartBackoffMs": 20,
            "killGraceMs": 500,
            "taskTimeoutMs": 60000,
            "idleTimeoutMs": 30000,
            "maxRunDurationMinutes": 5,
            // Scripts answer with result texts; tests of structured output say "auto".
            "structuredOutput": "off"
        });
        let (source, config_dir) =
            cco_testkit::scripted_project(dir.path(), defaults, &config, &script);
        std::fs::write(
            source.join("PROJECT_DIRECTION.md"),
            "Build a tiny calculator.\n",
        )
        .unwrap();
        cco_testkit::git(&source, &["add", "-A"]);
        cco_testkit::git(&source, &["commit", "-q", "-m", "direction"]);
        Project {
            dir,
            source,
            config_dir,
        }
    }

    pub fn load(&self) -> cco_config::LoadedConfig {
        cco_config::load(&self.config_dir).expect("valid test config")
    }

    pub async fn start(&self) -> OrchestratorHandle {
        Orchestrator::builder(self.load())
            .start()
            .await
            .expect("run starts")
    }

    /// The clone the run worked in.
    pub fn workspace_repo(&self) -> PathBuf {
        self.config_dir.join("workspace").join("repo")
    }

    pub fn git(&self, args: &[&str]) -> String {
        cco_testkit::git(&self.workspace_repo(), args)
    }

    /// Files present at the tip of `branch` in the run's clone.
    pub fn files_on(&self, branch: &str) -> Vec<String> {
        self.git(&["ls-tree", "-r", "--name-only", branch])
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn file_on(&self, branch: &str, path: &str) -> String {
        self.git(&["show", &format!("{branch}:{path}")])
    }
}

/// Waits for the run to end, with a deadline.
pub async fn finish(handle: &OrchestratorHandle, timeout: Duration) -> RunSummary {
    match tokio::time::timeout(timeout, handle.wait()).await {
        Ok(summary) => summary,
        Err(_) => {
            let status = handle.status().render_tree();
            handle.shutdown(cco_actors::ShutdownMode::Force);
            panic!("run did not finish within {timeout:?}; status:\n{status}");
        }
    }
}

/// A worker rule: writes `file` with `content` and commits, when the prompt names the task.
pub fn worker_rule(task_id: &str, file: &str, content: &str) -> Value {
    json!({
        "name": format!("worker {task_id}"),
        "match": {"role": "worker", "prompt_contains": format!("Task ID: {task_id}")},
        "steps": [
            {"write": {"path": file, "content": content}},
            {"commit": format!("Implement {task_id}")}
        ],
        "result": format!("Implemented {task_id}"),
        "cost_usd": 0.01
    })
}

/// A planner's answer `plan` when its prompt contains `marker` (as structured output or as
/// text, whichever the run uses).
pub fn plan_rule(marker: &str, plan: Value) -> Value {
    let mut rule = cco_testkit::answer_rule(json!({"prompt_contains": marker}), plan);
    rule["cost_usd"] = json!(0.02);
    rule
}

pub fn approve_rule() -> Value {
    let mut rule = cco_testkit::answer_rule(
        json!({"prompt_contains": "[cco:review"}),
        json!({"decision": "approve"}),
    );
    rule["cost_usd"] = json!(0.005);
    rule
}

pub fn complete_rule(marker: &str) -> Value {
    cco_testkit::answer_rule(
        json!({"prompt_contains": marker}),
        json!({"status": "complete", "reason": "direction met"}),
    )
}

/// The rules of a flat run of tasks `t1..=tn` (each writing `t<k>.txt`): the Coordinator's
/// plan, `complete` on the re-plan, approving reviews. Add the workers' rules.
pub fn flat_plan_rules(n: usize) -> Vec<Value> {
    let tasks: Vec<Value> = (1..=n)
        .map(|k| task(&format!("t{k}"), &format!("t{k}.txt")))
        .collect();
    base_rules(json!(tasks))
}

/// The Coordinator's plan of `tasks`, `complete` on the re-plan, approving reviews.
pub fn base_rules(tasks: Value) -> Vec<Value> {
    vec![
        plan_rule(
            "[cco:coordinator-plan]",
            json!({"status":"continue","tasks": tasks}),
        ),
        complete_rule("[cco:replan]"),
        approve_rule(),
    ]
}

/// A worker rule: task `id` writes `line from <id>` (alone) to `shared.txt` and commits, so
/// that tasks of this kind conflict with each other.
pub fn line_from_rule(id: &str) -> Value {
    json!({"match": {"role": "worker", "prompt_contains": format!("Task ID: {id}")}, "steps": [
        {"write": {"path": "shared.txt", "content": format!("line from {id}\n")}},
        {"commit": format!("{id} edits shared.txt")}
    ], "result": format!("{id} done")})
}

pub fn task(id: &str, file: &str) -> Value {
    json!({"id": id, "title": format!("Write {file}"), "description": format!("Create {file}"), "files": [file]})
}

pub fn pids_of(handle: &OrchestratorHandle) -> Vec<u32> {
    handle
        .status()
        .agents
        .iter()
        .filter_map(|a| a.pid)
        .collect()
}

pub fn assert_no_live_processes(pids: &[u32]) {
    for pid in pids {
        assert!(
            !cco_testkit::process_group_alive(*pid),
            "process group {pid} still alive"
        );
    }
}

/// The session transcripts of a run (`<run dir>/sessions/<agent>-<session id>.jsonl`) whose
/// agent is `agent`.
pub fn transcripts_of(handle: &OrchestratorHandle, agent: &str) -> Vec<PathBuf> {
    let prefix = format!("{agent}-");
    let mut found: Vec<_> = std::fs::read_dir(handle.run_dir().join("sessions"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// A fake-claude step that waits (at most 30 s) until `marker` exists: it orders one agent's
/// turn after another's without a fixed sleep.
pub fn wait_for_file_step(marker: &str) -> Value {
    json!({"bash": format!("i=0; while [ ! -e '{marker}' ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done")})
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Collects every event of a run (for assertions after it ended).
pub fn record(
    handle: &cco_actors::OrchestratorHandle,
) -> tokio::task::JoinHandle<Vec<cco_actors::RunEvent>> {
    let mut events = handle.subscribe();
    tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            match events.recv().await {
                Ok(event) => {
                    let last = matches!(event, cco_actors::RunEvent::RunFinished { .. });
                    seen.push(event);
                    if last {
                        return seen;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return seen,
            }
        }
    })
}

pub async fn recorded(
    recorder: tokio::task::JoinHandle<Vec<cco_actors::RunEvent>>,
    handle: cco_actors::OrchestratorHandle,
) -> Vec<cco_actors::RunEvent> {
    drop(handle);
    // The recorder ends at RunFinished; the run has ended, so a deadline only guards bugs.
    match tokio::time::timeout(Duration::from_secs(5), recorder).await {
        Ok(events) => events.unwrap(),
        Err(_) => panic!("event recorder did not finish"),
    }
}

/// The planning rules of a hierarchy run with two teams, alpha (task a1) and beta (task b1),
/// whose tasks write different lines to the same file (`shared_line_rule`): the second team
/// branch to reach main conflicts with it.
pub fn two_teams_on_one_line() -> Vec<Value> {
    vec![
        json!({"match": {"role": "director", "prompt_contains": "[cco:director-plan]"}, "result": json!({"status":"continue","teams":[
            {"name":"alpha","goal":"alpha line"}, {"name":"beta","goal":"beta line"}]}).to_string()}),
        json!({"match": {"role": "director", "prompt_contains": "[cco:replan]"}, "result": "{\"status\":\"complete\",\"reason\":\"done\"}"}),
        plan_rule(
            "Goal: alpha",
            json!({"status":"continue","tasks":[task("a1","shared.txt")]}),
        ),
        plan_rule(
            "Goal: beta",
            json!({"status":"continue","tasks":[task("b1","shared.txt")]}),
        ),
    ]
}

/// A worker rule: task `id` writes `line` (alone) to `shared.txt` and commits.
pub fn shared_line_rule(id: &str, line: &str) -> Value {
    json!({"match": {"role": "worker", "prompt_contains": format!("Task ID: {id}")}, "steps": [
        {"write": {"path": "shared.txt", "content": format!("{line}\n")}},
        {"commit": format!("{id} edits shared.txt")}
    ], "result": format!("{id} done")})
}

/// The team-vs-main conflict turn of [`two_teams_on_one_line`]: keep both lines (after
/// `first`, extra steps of the caller).
pub fn keep_both_lines_rule(first: Vec<Value>) -> Value {
    let mut steps = first;
    steps.push(json!({"write": {"path": "shared.txt", "content": "alpha\nbeta\n"}}));
    steps.push(json!({"commit": "Merge main, keeping both lines"}));
    json!({"match": {"role": "worker", "prompt_contains": "[cco:conflict]"}, "steps": steps, "result": "resolved"})
}
