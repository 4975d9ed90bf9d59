//! End-to-end runs of the supervision tree against fake-claude.

mod harness;

use std::time::Duration;

use cco_actors::TaskState;
use harness::*;
use serde_json::json;

const RUN_TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flat_mode_completes_a_small_project_with_every_workers_files_on_main() {
    let script = json!({
        "rules": [
            plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[
                task("t1", "src/add.txt"), task("t2", "src/sub.txt"), task("t3", "src/mul.txt")
            ]})),
            complete_rule("[cco:replan]"),
            approve_rule(),
            worker_rule("t1", "src/add.txt", "add\n"),
            worker_rule("t2", "src/sub.txt", "sub\n"),
            worker_rule("t3", "src/mul.txt", "mul\n"),
        ]
    });
    let project = Project::new(json!({"workerCount": 2}), script);
    let handle = project.start().await;
    let mut events = handle.subscribe();
    let t0 = std::time::Instant::now();
    tokio::spawn(async move {
        while let Ok(e) = events.recv().await {
            eprintln!("{:>8.3} {e:?}", t0.elapsed().as_secs_f64());
        }
    });
    let summary = finish(&handle, RUN_TIMEOUT).await;
    eprintln!("{:>8.3} finished", t0.elapsed().as_secs_f64());
    assert!(summary.completed, "run should complete: {}", summary.reason);
    assert_eq!(summary.totals.tasks_done, 3, "{summary:#?}");
    let files = project.files_on("main");
    for f in ["src/add.txt", "src/sub.txt", "src/mul.txt", "README.md"] {
        assert!(files.contains(&f.to_string()), "{f} missing on main: {files:?}");
    }
    // Every task was done by a worker session and merged once.
    assert!(summary.tasks.iter().all(|t| t.state == TaskState::Done && t.session_id.is_some() && t.merged_commit.is_some()));
    assert!(summary.totals.cost_usd > 0.0);
    assert!(handle.run_dir().join("summary.json").is_file());
    assert_no_live_processes(&pids_of(&handle));
}
