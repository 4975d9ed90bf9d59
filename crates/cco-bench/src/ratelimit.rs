//! A key that keeps answering 429 (issue 14's benchmark): a 4-task flat run on two API keys,
//! one of which answers every request with 429 and `retry-after: 30` (fake-claude announces
//! each retry with `api_retry` and really waits 30 s before the next, three retries, as the
//! real CLI does with `CLAUDE_CODE_MAX_RETRIES=3`), against the same run with no 429 at all.
//! cco reacts to the first 429: the process is stopped, the key benched, the session resumed
//! on the other key. Measured: the wall time from the start to the summary of each run.

use std::path::Path;
use std::time::Instant;

use cco::{Orchestrator, RunEvent};
use serde::Serialize;
use serde_json::{json, Value};

use crate::project::Project;

const LIMITED: &str = "sk-ant-bench-limited-0000";
const HEALTHY: &str = "sk-ant-bench-healthy-1111";

#[derive(Debug, Clone, Serialize)]
pub struct RateLimitResult {
    pub tasks: usize,
    pub task_ms: u64,
    /// Seconds per run without any 429.
    pub baseline_s: Vec<f64>,
    /// Seconds per run with one key answering 429.
    pub limited_s: Vec<f64>,
    /// Processes stopped at their first 429 (the key benched), per limited run.
    pub benched: Vec<usize>,
    pub median_baseline_s: f64,
    pub median_limited_s: f64,
    /// `median_limited_s - median_baseline_s` (the goal: under 40 s).
    pub extra_s: f64,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

fn script(limited: bool, tasks: usize, task_ms: u64) -> Value {
    let ids: Vec<String> = (1..=tasks).map(|n| format!("t{n}")).collect();
    let plan: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "title": format!("Write {id}.txt"), "files": [format!("{id}.txt")]}))
        .collect();
    let mut rules = Vec::new();
    if limited {
        // Every request on this key: 429 with retry-after 30 s, three retries, really waited.
        rules.push(json!({"match": {"api_key": LIMITED}, "steps": [
            {"rate_limit": {"retries": 3, "retry_delay_ms": 30000, "wait": true}}]}));
    }
    // The planner's and the reviewers' answers, also when their session is resumed on the
    // other key after a 429.
    let plan = json!({"status": "continue", "tasks": plan}).to_string();
    let complete = "{\"status\":\"complete\",\"reason\":\"done\"}";
    let approve = "{\"decision\":\"approve\"}";
    rules.extend([
        json!({"match": {"prompt_contains": "[cco:coordinator-plan]"}, "result": plan}),
        json!({"match": {"prompt_contains": "[cco:replan]"}, "result": complete}),
        json!({"match": {"prompt_contains": "[cco:review]"}, "result": approve}),
        json!({"match": {"role": "coordinator", "prompt_contains": "Continue your review"}, "result": approve}),
        // The first plan resumed; a re-plan resumed later is asked again (repair) and completes.
        json!({"match": {"role": "coordinator", "prompt_contains": "Continue your planning turn"}, "times": 1, "result": plan}),
        json!({"match": {"prompt_contains": "[cco:repair]"}, "result": complete}),
    ]);
    // A task: some work, then its file, committed; a resumed session does the same.
    let work = |id: &str| json!([{"sleep_ms": task_ms}, {"write": {"path": format!("{id}.txt"), "content": format!("{id}\n")}}, {"commit": format!("Add {id}")}]);
    for id in &ids {
        rules.push(json!({"match": {"role": "worker", "prompt_contains": format!("Task ID: {id}")}, "steps": work(id)}));
        rules.push(json!({"match": {"role": "worker", "prompt_contains": format!("[cco-ref:resume/{id}]")}, "steps": work(id)}));
    }
    json!({"rules": rules})
}

/// One run: its wall time in seconds, and how many times a key was benched.
async fn one(
    fake_claude: &Path,
    limited: bool,
    tasks: usize,
    task_ms: u64,
) -> Result<(f64, usize), String> {
    let config = json!({"workerCount": 2, "authMode": "api-keys-only"});
    let project = Project::new(fake_claude, config, &script(limited, tasks, task_ms))
        .map_err(|e| e.to_string())?;
    let keys =
        json!([{"name": "limited", "apiKey": LIMITED}, {"name": "healthy", "apiKey": HEALTHY}]);
    let path = project.config_dir.join("api-keys.json");
    std::fs::write(&path, keys.to_string()).map_err(|e| e.to_string())?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let builder = Orchestrator::builder(project.load()?);
    let mut events = builder.subscribe();
    let handle = builder.start().await.map_err(|e| e.to_string())?;
    let summary = handle.wait().await;
    let seconds = started.elapsed().as_secs_f64();
    let mut benched = 0;
    while let Ok(event) = events.try_recv() {
        if matches!(event, RunEvent::KeyBenched { .. }) {
            benched += 1;
        }
    }
    if summary.totals.tasks_done as usize != tasks {
        return Err(format!(
            "{} of {tasks} tasks done ({})",
            summary.totals.tasks_done, summary.reason
        ));
    }
    Ok((seconds, benched))
}

/// `samples` runs of each kind, alternating (so load changes hit both alike).
pub async fn run(fake_claude: &Path, samples: usize) -> Result<RateLimitResult, String> {
    let (tasks, task_ms) = (4, 2000);
    let (mut baseline, mut limited, mut benched) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..samples.clamp(1, 10) {
        eprintln!("cco-bench: rate-limited key, run {} ...", n + 1);
        baseline.push(one(fake_claude, false, tasks, task_ms).await?.0);
        let (seconds, times) = one(fake_claude, true, tasks, task_ms).await?;
        if times == 0 {
            return Err("the limited key was never benched: the case measured nothing".into());
        }
        limited.push(seconds);
        benched.push(times);
    }
    let (median_baseline_s, median_limited_s) = (median(&baseline), median(&limited));
    Ok(RateLimitResult {
        tasks,
        task_ms,
        baseline_s: baseline,
        limited_s: limited,
        benched,
        median_baseline_s,
        median_limited_s,
        extra_s: median_limited_s - median_baseline_s,
    })
}
