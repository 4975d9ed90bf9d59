//! Recovery time: a worker's claude process gets SIGKILL; measured from the kill to the
//! resumed process's start (`ProcessStarted { resume: true }`) and to its session's first
//! output (`AgentOutput`: fake-claude's resume turn begins with a text step).

use std::path::Path;
use std::time::{Duration, Instant};

use cco::{Orchestrator, RunEvent, ShutdownMode};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;
use serde_json::json;
use tokio::sync::broadcast::{error::RecvError, Receiver};

use crate::project::Project;

#[derive(Debug, Clone, Serialize)]
pub struct RecoveryResult {
    pub samples: usize,
    pub restart_backoff_ms: u64,
    /// Kill → `ProcessStarted { resume: true }`, ms per sample.
    pub to_respawn_ms: Vec<f64>,
    /// Kill → first `AgentOutput` of the resumed session, ms per sample.
    pub to_first_event_ms: Vec<f64>,
    pub median_to_respawn_ms: f64,
    pub median_to_first_event_ms: f64,
    pub max_to_first_event_ms: f64,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        0.0
    } else {
        s[s.len() / 2]
    }
}

/// Next event of `agent` that `pick` accepts, within `limit`.
async fn next_of<T>(
    rx: &mut Receiver<RunEvent>,
    limit: Duration,
    mut pick: impl FnMut(&RunEvent) -> Option<T>,
) -> Result<T, String> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => return Err(format!("no expected event within {limit:?}")),
            Ok(Err(RecvError::Lagged(_))) => continue,
            Ok(Err(RecvError::Closed)) => return Err("the run ended".into()),
            Ok(Ok(event)) => {
                if let Some(v) = pick(&event) {
                    return Ok(v);
                }
            }
        }
    }
}

pub async fn run(fake_claude: &Path, samples: usize) -> Result<RecoveryResult, String> {
    let samples = samples.clamp(1, 20);
    let backoff = 0;
    let script = json!({"rules": [
        {"match": {"prompt_contains": "[cco:coordinator-plan]"}, "result": json!({"status":"continue","tasks":[{"id":"t1","title":"Long task","files":["a.txt"]}]}).to_string()},
        {"match": {"prompt_contains": "[cco:replan]"}, "result": "{\"status\":\"complete\",\"reason\":\"done\"}"},
        {"match": {"prompt_contains": "[cco:review"}, "result": "{\"decision\":\"approve\"}"},
        {"match": {"role": "worker", "prompt_contains": "[cco:resume]"}, "steps": [{"text": "resumed"}, {"hang": true}]},
        {"match": {"role": "worker"}, "steps": [{"text": "started"}, {"hang": true}]}
    ]});
    let config = json!({"workerCount": 1, "restartBackoffMs": backoff, "maxTaskRestarts": 20, "killGraceMs": 200});
    let project = Project::new(fake_claude, config, &script).map_err(|e| e.to_string())?;
    let handle = Orchestrator::builder(project.load()?)
        .start()
        .await
        .map_err(|e| e.to_string())?;
    let mut rx = handle.subscribe();
    let limit = Duration::from_secs(60);
    let result = async {
        let is_worker = |agent: &str| agent.starts_with("worker-");
        // The first process of the task, and its first output.
        let mut pid = next_of(&mut rx, limit, |e| match e {
            RunEvent::ProcessStarted { agent, pid, .. } if is_worker(agent) => Some(*pid),
            _ => None,
        })
        .await?;
        next_of(&mut rx, limit, |e| {
            matches!(e, RunEvent::AgentOutput { agent, .. } if is_worker(agent)).then_some(())
        })
        .await?;
        let (mut respawn, mut first) = (Vec::new(), Vec::new());
        for _ in 0..samples {
            let killed_at = Instant::now();
            kill(Pid::from_raw(pid as i32), Signal::SIGKILL)
                .map_err(|e| format!("kill {pid}: {e}"))?;
            pid = next_of(&mut rx, limit, |e| match e {
                RunEvent::ProcessStarted {
                    agent,
                    pid,
                    resume: true,
                    ..
                } if is_worker(agent) => Some(*pid),
                _ => None,
            })
            .await?;
            respawn.push(killed_at.elapsed().as_secs_f64() * 1000.0);
            next_of(&mut rx, limit, |e| {
                matches!(e, RunEvent::AgentOutput { agent, .. } if is_worker(agent)).then_some(())
            })
            .await?;
            first.push(killed_at.elapsed().as_secs_f64() * 1000.0);
        }
        Ok::<_, String>((respawn, first))
    }
    .await;
    handle.shutdown(ShutdownMode::Force);
    let _ = tokio::time::timeout(Duration::from_secs(30), handle.wait()).await;
    let (respawn, first) = result?;
    Ok(RecoveryResult {
        samples,
        restart_backoff_ms: backoff,
        median_to_respawn_ms: median(&respawn),
        median_to_first_event_ms: median(&first),
        max_to_first_event_ms: first.iter().cloned().fold(0.0, f64::max),
        to_respawn_ms: respawn,
        to_first_event_ms: first,
    })
}
