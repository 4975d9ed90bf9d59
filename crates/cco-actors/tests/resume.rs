//! Resuming runs (`OrchestratorBuilder::resume`) from the journal of an interrupted one.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure with a message

mod harness;

use std::time::Duration;

use cco_actors::{Orchestrator, ShutdownMode, TaskKind, TaskState};
use harness::*;
use serde_json::json;

const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// A `merge-<base>` task of an EM (its team branch conflicts with the base) that was queued when
/// the run stopped comes back from the journal as what it is: a merge of the base into the
/// team's work, resolved by the worker's session and merged without a review. (It used to come
/// back as a plain task: the worker was asked to "implement" it, committed nothing, the task
/// failed and a second `merge-main-2` task did the job.)
///
/// Causal steps: alpha lands on main first (beta's review waits for the test); beta's only
/// worker is taken down (it restarts only after a minute) before beta's review is released, so
/// the `merge-main` task the Director's conflicting team merge creates stays queued; the run is
/// stopped there and resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queued_base_merge_task_resumes_as_a_base_merge() {
    let marker_dir = cco_testkit::temp_dir();
    let release = path_str(&marker_dir.path().join("release-b1-review"));
    let conflict_turns = marker_dir.path().join("conflict-turns");
    let mut rules = two_teams_on_one_line();
    let more = json!([
        {"match": {"role": "em", "prompt_contains": "Task ID: b1"}, "times": 1, "steps": [
            wait_for_file_step(&release)
        ], "result": "{\"decision\":\"approve\"}"},
        approve_rule(),
        // The conflict turn notes who ran it, for which task.
        keep_both_lines_rule(vec![json!({"bash": format!(
            "echo \"$CCO_AGENT_ID $CCO_TASK_ID\" >> '{}'",
            conflict_turns.display()
        )})]),
        shared_line_rule("a1", "alpha"),
        shared_line_rule("b1", "beta"),
    ]);
    rules.extend(more.as_array().unwrap().iter().cloned());
    let script = json!({ "rules": rules });
    let project = Project::new(
        json!({"workerCount": 2, "engineerManagerGroupSize": 1, "restartBackoffMs": 60000}),
        script,
    );
    let handle = project.start().await;
    let run_dir = handle.run_dir().to_path_buf();
    let task_state = |id: &str| {
        handle
            .status()
            .tasks
            .into_iter()
            .find(|t| t.id == id)
            .map(|t| t.state)
    };
    cco_testkit::wait_until_async(
        Duration::from_secs(60),
        "alpha on main and b1 in review",
        || {
            assert!(!handle.is_finished(), "the run ended early");
            let alpha_landed = project
                .git(&["log", "--format=%s", "main"])
                .contains("Merge cco/alpha/team");
            std::future::ready(alpha_landed && task_state("b1") == Some(TaskState::Review))
        },
    )
    .await;
    // beta's only worker goes down (and stays down): the base merge will have to wait.
    assert!(handle.kill_agent_actor("worker-2"));
    std::fs::write(&release, "").unwrap();
    cco_testkit::wait_until_async(Duration::from_secs(60), "a queued merge-main task", || {
        assert!(!handle.is_finished(), "the run ended early");
        std::future::ready(task_state("merge-main") == Some(TaskState::Pending))
    })
    .await;
    handle.shutdown(ShutdownMode::Force);
    finish(&handle, RUN_TIMEOUT).await;
    let queued = Orchestrator::read_run(&run_dir).unwrap();
    let merge_main = queued
        .snapshot
        .tasks
        .iter()
        .find(|t| t.id == "merge-main")
        .expect("journaled");
    assert_eq!(merge_main.state, TaskState::Pending);
    assert_eq!(
        merge_main.kind,
        TaskKind::BaseMerge {
            base: "main".into()
        }
    );

    let resumed = Orchestrator::builder(project.load())
        .resume(&run_dir)
        .start()
        .await
        .expect("the run resumes");
    let summary = finish(&resumed, RUN_TIMEOUT).await;
    assert!(summary.completed, "{}", summary.reason);
    assert_eq!(summary.totals.tasks_failed, 0, "{summary:#?}");
    let ids: Vec<&str> = summary.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(
        ids.iter().filter(|id| id.starts_with("merge-")).count(),
        1,
        "{ids:?}"
    );
    let merge_main = summary.tasks.iter().find(|t| t.id == "merge-main").unwrap();
    assert_eq!(merge_main.state, TaskState::Done, "{merge_main:?}");
    assert_eq!(project.file_on("main", "shared.txt"), "alpha\nbeta\n");
    // Resolved by one conflict turn of beta's worker, not "implemented" by a fresh session.
    assert_eq!(
        std::fs::read_to_string(&conflict_turns).unwrap(),
        "worker-2 beta/merge-main\n"
    );
}
