//! Scheduling efficiency: `tasks × T / workers` (ideal) over the measured time from the first
//! `TaskAssigned` to the last `TaskFinished` event, with fake-claude workers whose every task
//! sleeps T. Planning before the first assignment and the merges after the last finish are
//! reported separately. The orchestration runs in this process (see `overhead`).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cco::{Orchestrator, RunEvent, ShutdownMode};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::overhead::{Meter, Usage};
use crate::project::Project;

#[derive(Debug, Clone)]
pub struct SchedCase {
    pub workers: usize,
    pub group_size: usize,
    pub tasks_per_worker: usize,
    pub task_ms: u64,
    /// Every agent commits its file itself (`git add` + `git commit` as its last step, as
    /// claude does when told to); otherwise it leaves it and cco's capture commits it.
    pub agent_commits: bool,
    /// Serve the dashboard, with one client following the board (see `ui`).
    pub ui: bool,
    /// Write the run's timeline chart (`timeline.svg`) into this folder.
    pub timeline_dir: Option<std::path::PathBuf>,
    /// Workers run on this many local node processes (0: local claude processes).
    pub nodes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SchedResult {
    pub label: String,
    pub workers: usize,
    pub mode: String,
    pub teams: usize,
    pub tasks: usize,
    pub task_ms: u64,
    pub agent_commits: bool,
    pub completed: bool,
    pub tasks_done: usize,
    /// tasks × T / workers.
    pub ideal_ms: f64,
    /// First TaskAssigned → last TaskFinished.
    pub measured_ms: f64,
    pub efficiency: f64,
    /// start() → first TaskAssigned (clone, worktrees, planning turns).
    pub planning_ms: f64,
    /// Last TaskFinished → run summary (last reviews, merges, re-plans, shutdown).
    pub tail_ms: f64,
    pub total_ms: f64,
    pub events: u64,
    pub lagged_events: u64,
    /// Files the tasks wrote that are on the base branch at the end (expected: tasks).
    pub files_on_main: usize,
    /// A worker's TaskFinished → its next TaskAssigned (review, merge, worktree sync): mean
    /// and max over all re-assignments.
    pub reassign_gap_mean_ms: f64,
    pub reassign_gap_max_ms: f64,
    /// First TaskAssigned of the run → the last worker's first TaskAssigned: how long the
    /// last worker waited for its first task once work had started (planning of the other
    /// teams, worktrees still being created).
    pub start_spread_ms: f64,
    /// A task's TaskAssigned → its TaskFinished: T plus starting the agent, its own commit
    /// and exit, on a machine shared with every other agent and git. Mean and max.
    pub turn_mean_ms: f64,
    pub turn_max_ms: f64,
    /// What the GitActor ran during the whole run (`RunSummary::git`): every git operation
    /// of the run, one at a time.
    pub git_ops: std::collections::BTreeMap<String, cco_git::OpStats>,
    pub git_busy_ms: f64,
    #[serde(skip)]
    pub usage: Usage,
    pub reason: String,
    /// The dashboard was served and watched; the board updates its client received.
    pub ui: bool,
    pub ui_updates: u64,
    /// CPU ms of one board page, measured after the run (see `ui::Watched::board_cpu_ms`).
    pub ui_board_cpu_ms: f64,
    /// Node processes the workers ran on (0: local).
    pub nodes: usize,
    /// Git bundles head → nodes and nodes → head, per task, in bytes.
    pub bundle_bytes_sent_per_task: f64,
    pub bundle_bytes_received_per_task: f64,
    /// Session files copied to the head, per task, in bytes.
    pub session_bytes_per_task: f64,
}

#[derive(Default)]
struct Timeline {
    /// Worker → when its last task finished (cleared when it gets the next one).
    finished_at: std::collections::HashMap<String, Instant>,
    gaps: Vec<Duration>,
    first_assigned: Option<Instant>,
    /// Task → when it was assigned; a turn is assignment → TaskFinished.
    assigned_at: std::collections::HashMap<String, Instant>,
    turns: Vec<Duration>,
    /// Workers that got a task so far, and when the last new one got its first.
    started: std::collections::HashSet<String>,
    last_first_assigned: Option<Instant>,
    last_finished: Option<Instant>,
    events: u64,
    lagged: u64,
}

fn script(case: &SchedCase, flat: bool, teams: usize) -> Value {
    let mut steps = vec![
        json!({"sleep_ms": case.task_ms}),
        json!({"write": {"path": "bench/{{session_id}}.txt", "content": "{{task_id}}\n"}}),
    ];
    if case.agent_commits {
        steps.push(json!({"commit": "bench {{task_id}}"}));
    }
    let worker = json!({
        "name": "bench worker",
        "match": {"role": "worker", "prompt_contains": "[cco:worker-task]"},
        "steps": steps,
        "result": "done",
        "cost_usd": 0.001
    });
    let tasks_for = |workers: usize| -> Value {
        let tasks: Vec<Value> = (1..=workers * case.tasks_per_worker)
            .map(|n| json!({"id": format!("t{n}"), "title": format!("Task {n}"), "description": "Sleep, write a file, commit.", "files": [format!("bench/t{n}.txt")]}))
            .collect();
        json!({"status": "continue", "tasks": tasks})
    };
    let mut rules = vec![
        json!({"match": {"prompt_contains": "[cco:review"}, "result": "{\"decision\":\"approve\"}"}),
        json!({"match": {"prompt_contains": "[cco:replan]"}, "result": "{\"status\":\"complete\",\"reason\":\"done\"}"}),
        worker,
    ];
    if flat {
        rules.push(json!({"match": {"prompt_contains": "[cco:coordinator-plan]"}, "result": tasks_for(case.workers).to_string()}));
    } else {
        let goals: Vec<Value> = (1..=teams)
            .map(|n| json!({"name": format!("g{n}"), "goal": format!("Goal {n}")}))
            .collect();
        rules.push(json!({"match": {"prompt_contains": "[cco:director-plan]"}, "result": json!({"status": "continue", "teams": goals}).to_string()}));
        rules.push(json!({"match": {"prompt_contains": "[cco:em-plan]"}, "result": tasks_for(case.group_size).to_string()}));
    }
    json!({"rules": rules})
}

pub async fn run(fake_claude: &Path, case: &SchedCase) -> Result<SchedResult, String> {
    let flat = case.workers <= case.group_size;
    let teams = if flat {
        1
    } else {
        case.workers.div_ceil(case.group_size)
    };
    if !flat && case.workers % case.group_size != 0 {
        return Err(format!(
            "{} workers are not a multiple of the group size {}",
            case.workers, case.group_size
        ));
    }
    // workerCount is validated to at most 100: write a valid file, then raise it in memory.
    let config = json!({
        "workerCount": case.workers.min(100),
        "engineerManagerGroupSize": case.group_size,
        "pollIntervalMs": 1000,
        "maxTaskRestarts": 3
    });
    let project =
        Project::new(fake_claude, config, &script(case, flat, teams)).map_err(|e| e.to_string())?;
    let mut loaded = project.load()?;
    loaded.config.worker_count = case.workers;
    // `--nodes`: the workers' claude processes run on node processes.
    let mut cluster_nodes = None;
    let mut head = None;
    if case.nodes > 0 {
        let dir = project.dir().join("nodes");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let slots = case.workers.div_ceil(case.nodes);
        let (nodes, cluster) =
            crate::nodes::start(&dir, case.nodes, slots, &project.config_dir.join("claude"))?;
        let cluster_head = cco::cluster::ClusterHead::new(&cluster).map_err(|e| e.to_string())?;
        cluster_nodes = Some(nodes);
        head = Some(std::sync::Arc::new(cluster_head));
    }
    let tasks = case.workers * case.tasks_per_worker;
    let label = format!(
        "{} workers ({}), T {} s",
        case.workers,
        if flat {
            "flat".to_string()
        } else {
            format!("{teams} teams")
        },
        case.task_ms as f64 / 1000.0
    ) + if case.agent_commits {
        ""
    } else {
        ", cco commits"
    } + if case.ui { ", dashboard" } else { "" }
        + &if case.nodes > 0 {
            format!(", {} nodes", case.nodes)
        } else {
            String::new()
        };
    let ui_config = case.ui.then(|| loaded.clone());

    let meter = Meter::start();
    let t0 = Instant::now();
    let mut builder = Orchestrator::builder(loaded).event_capacity(1 << 16);
    if let Some(head) = head.clone() {
        builder = builder.cluster(head);
    }
    let handle = builder.start().await.map_err(|e| e.to_string())?;
    let watched = match &ui_config {
        Some(config) => Some(crate::ui::Watched::start(&handle, config).await?),
        None => None,
    };
    let timeline = Arc::new(Mutex::new(Timeline::default()));
    let mut rx = handle.subscribe();
    let collector = {
        let timeline = Arc::clone(&timeline);
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(event) => {
                        let now = Instant::now();
                        let mut t = timeline.lock().unwrap();
                        t.events += 1;
                        match event {
                            RunEvent::TaskAssigned { worker, task } => {
                                t.assigned_at.insert(task, now);
                                t.first_assigned.get_or_insert(now);
                                if t.started.insert(worker.clone()) {
                                    t.last_first_assigned = Some(now);
                                }
                                if let Some(done) = t.finished_at.remove(&worker) {
                                    t.gaps.push(now - done);
                                }
                            }
                            RunEvent::TaskFinished { worker, task } => {
                                if let Some(at) = t.assigned_at.remove(&task) {
                                    t.turns.push(now - at);
                                }
                                t.last_finished = Some(now);
                                t.finished_at.insert(worker, now);
                            }
                            RunEvent::RunFinished { .. } => break,
                            _ => {}
                        }
                    }
                    Err(RecvError::Lagged(n)) => timeline.lock().unwrap().lagged += n,
                    Err(RecvError::Closed) => break,
                }
            }
        })
    };
    let limit = Duration::from_millis(case.task_ms * case.tasks_per_worker as u64 * 3)
        + Duration::from_secs(600);
    let summary = match tokio::time::timeout(limit, handle.wait()).await {
        Ok(summary) => summary,
        Err(_) => {
            handle.shutdown(ShutdownMode::Force);
            handle.wait().await;
            return Err(format!("{label}: run did not finish within {limit:?}"));
        }
    };
    let end = Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(2), collector).await;
    let usage = meter.stop();
    let (ui_updates, ui_board_cpu_ms) = match watched {
        Some(watched) => {
            let each = watched.board_cpu_ms(20).await;
            (watched.stop().await, each)
        }
        None => (0, 0.0),
    };
    if let Some(dir) = &case.timeline_dir {
        write_chart(handle.run_dir(), dir, &label)?;
    }
    drop(cluster_nodes);
    let per_task = |f: fn(&cco::cluster::NodeRecord) -> u64| {
        summary.nodes.iter().map(f).sum::<u64>() as f64 / tasks.max(1) as f64
    };
    let files_on_main = std::process::Command::new("git")
        .current_dir(project.workspace_repo())
        .args([
            "ls-tree",
            "-r",
            "--name-only",
            &summary.base_branch,
            "bench",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
        .unwrap_or(0);
    let t = timeline.lock().unwrap();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (first, last) = (
        t.first_assigned.unwrap_or(t0),
        t.last_finished.unwrap_or(end),
    );
    let measured_ms = ms(last.saturating_duration_since(first));
    let ideal_ms = (tasks as u64 * case.task_ms) as f64 / case.workers as f64;
    Ok(SchedResult {
        label,
        workers: case.workers,
        mode: if flat {
            "flat".into()
        } else {
            "hierarchy".into()
        },
        teams,
        tasks,
        task_ms: case.task_ms,
        agent_commits: case.agent_commits,
        completed: summary.completed,
        tasks_done: summary.totals.tasks_done as usize,
        ideal_ms,
        measured_ms,
        efficiency: if measured_ms > 0.0 {
            ideal_ms / measured_ms
        } else {
            0.0
        },
        planning_ms: ms(first.saturating_duration_since(t0)),
        tail_ms: ms(end.saturating_duration_since(last)),
        total_ms: ms(end - t0),
        events: t.events,
        lagged_events: t.lagged,
        files_on_main,
        reassign_gap_mean_ms: if t.gaps.is_empty() {
            0.0
        } else {
            t.gaps.iter().map(|g| ms(*g)).sum::<f64>() / t.gaps.len() as f64
        },
        reassign_gap_max_ms: t.gaps.iter().map(|g| ms(*g)).fold(0.0, f64::max),
        git_ops: summary
            .git
            .as_ref()
            .map(|g| g.by_op.clone())
            .unwrap_or_default(),
        git_busy_ms: summary.git.as_ref().map(|g| g.busy_ms()).unwrap_or(0.0),
        turn_mean_ms: if t.turns.is_empty() {
            0.0
        } else {
            t.turns.iter().map(|d| ms(*d)).sum::<f64>() / t.turns.len() as f64
        },
        turn_max_ms: t.turns.iter().map(|d| ms(*d)).fold(0.0, f64::max),
        start_spread_ms: ms(t
            .last_first_assigned
            .unwrap_or(first)
            .saturating_duration_since(first)),
        usage,
        nodes: case.nodes,
        bundle_bytes_sent_per_task: per_task(|n| n.bundle_bytes_sent),
        bundle_bytes_received_per_task: per_task(|n| n.bundle_bytes_received),
        session_bytes_per_task: per_task(|n| n.session_bytes_received),
        reason: summary.reason,
        ui: case.ui,
        ui_updates,
        ui_board_cpu_ms,
    })
}

/// Writes the run's `timeline.svg` and copies it to `<dir>/<label as a file name>.svg`.
fn write_chart(run_dir: &Path, dir: &Path, label: &str) -> Result<(), String> {
    let chart = cco_web::write_timeline(run_dir).map_err(|e| format!("timeline: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let name: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let target = dir.join(format!("{}.svg", name.trim_matches('-')));
    std::fs::copy(&chart, &target).map_err(|e| format!("{}: {e}", target.display()))?;
    eprintln!("cco-bench: timeline of {label}: {}", target.display());
    Ok(())
}
