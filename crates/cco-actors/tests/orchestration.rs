//! End-to-end runs of the supervision tree against fake-claude.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure with a message

mod harness;

use std::time::Duration;

use cco_actors::{RunEvent, RunLimit, RunOutcome, TaskState};
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
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "run should complete: {}", summary.reason);
    assert_eq!(summary.outcome, RunOutcome::Completed);
    assert_eq!(summary.totals.tasks_done, 3, "{summary:#?}");
    let files = project.files_on("main");
    for f in ["src/add.txt", "src/sub.txt", "src/mul.txt", "README.md"] {
        assert!(
            files.contains(&f.to_string()),
            "{f} missing on main: {files:?}"
        );
    }
    // Every task was done by a worker session and merged once.
    assert!(summary.tasks.iter().all(|t| t.state == TaskState::Done
        && t.session_id.is_some()
        && t.merged_commit.is_some()));
    assert!(summary.totals.cost_usd > 0.0);
    // Spend is broken down per model (coordinator: opus, workers: sonnet) and per agent.
    let by_model: f64 = summary.cost_by_model.values().sum();
    assert!(
        (by_model - summary.totals.cost_usd).abs() < 1e-9,
        "{:?}",
        summary.cost_by_model
    );
    assert!(summary.cost_by_model["sonnet"] > 0.0 && summary.cost_by_model["opus"] > 0.0);
    assert!(summary.cost_by_agent["worker-1"] > 0.0);
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(handle.run_dir().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(written["totals"]["tasks_done"], 3);
    // What git did: one capture and one merge per task, with their run time.
    let git = summary.git.as_ref().expect("git stats in the summary");
    assert_eq!(git.by_op["capture_task"].count, 3, "{git:?}");
    assert_eq!(git.by_op["merge"].count, 3, "{git:?}");
    assert_eq!(written["git"]["by_op"]["merge"]["count"], 3);
    assert_no_live_processes(&pids_of(&handle));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hierarchy_mode_runs_two_teams_and_merges_both_into_main() {
    let script = json!({
        "rules": [
            {"match": {"role": "director", "prompt_contains": "[cco:director-plan]"}, "result": json!({"status":"continue","summary":"two teams","teams":[
                {"name":"alpha","goal":"alpha files"}, {"name":"beta","goal":"beta files"}]}).to_string(), "cost_usd": 0.05},
            {"match": {"role": "director", "prompt_contains": "[cco:replan]"}, "result": "{\"status\":\"complete\",\"reason\":\"both teams merged\"}"},
            plan_rule("Goal: alpha", json!({"status":"continue","tasks":[task("a1","alpha/1.txt"), task("a2","alpha/2.txt")]})),
            plan_rule("Goal: beta", json!({"status":"continue","tasks":[task("b1","beta/1.txt"), task("b2","beta/2.txt")]})),
            approve_rule(),
            worker_rule("a1", "alpha/1.txt", "a1\n"),
            worker_rule("a2", "alpha/2.txt", "a2\n"),
            worker_rule("b1", "beta/1.txt", "b1\n"),
            worker_rule("b2", "beta/2.txt", "b2\n"),
        ]
    });
    let project = Project::new(
        json!({"workerCount": 4, "engineerManagerGroupSize": 2}),
        script,
    );
    let handle = project.start().await;
    let recorder = record(&handle);
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "{}", summary.reason);
    assert!(summary.reason.contains("both teams merged"));
    assert_eq!(summary.totals.tasks_done, 4, "{summary:#?}");
    let files = project.files_on("main");
    for f in ["alpha/1.txt", "alpha/2.txt", "beta/1.txt", "beta/2.txt"] {
        assert!(files.contains(&f.to_string()), "{f} missing: {files:?}");
    }
    let roles: Vec<_> = summary
        .agents
        .iter()
        .map(|a| (a.id.as_str(), a.role, a.parent.clone()))
        .collect();
    assert!(
        roles.contains(&("em-alpha", cco_actors::Role::Em, Some("director".into()))),
        "{roles:?}"
    );
    assert!(
        roles.contains(&("worker-3", cco_actors::Role::Worker, Some("em-beta".into()))),
        "{roles:?}"
    );
    let events = recorded(recorder, handle).await;
    let team_merges = events
        .iter()
        .filter(|e| matches!(e, RunEvent::Merged { target, source, .. } if target == "main" && source.ends_with("/team")))
        .count();
    assert_eq!(team_merges, 2, "each team branch merged into main once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_complete_plan_ends_the_run_cleanly() {
    let script = json!({"rules": [
        {"match": {"prompt_contains": "[cco:director-plan]"}, "result": "Nothing left to do.\n```json\n{\"status\":\"complete\",\"reason\":\"already done\"}\n```"}
    ]});
    let project = Project::new(
        json!({"workerCount": 6, "engineerManagerGroupSize": 3}),
        script,
    );
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed);
    assert_eq!(summary.reason, "complete without any task: already done");
    assert_eq!(
        summary.outcome,
        RunOutcome::CompletedWithoutTasks {
            after_planning_failure: false
        }
    );
    assert_eq!(
        handle.status().phase,
        "finished: complete without any task (already done)"
    );
    assert!(summary.tasks.is_empty());
    assert_no_live_processes(&pids_of(&handle));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_plan_json_is_asked_again_in_the_same_session_and_recovers() {
    let script = json!({"rules": [
        {"match": {"prompt_contains": "[cco:coordinator-plan]"}, "result": "Here is my plan: {\"status\": \"continue\", \"tasks\": [ {\"id\": "},
        {"match": {"prompt_contains": "[cco:repair]"}, "times": 1, "result": "{\"status\":\"continue\",\"tasks\":[]}"},
        {"match": {"prompt_contains": "[cco:repair]"}, "result": json!({"status":"continue","tasks":[task("t1","t1.txt")]}).to_string()},
        complete_rule("[cco:replan]"),
        approve_rule(),
        worker_rule("t1", "t1.txt", "t1\n"),
    ]});
    let project = Project::new(json!({"workerCount": 1}), script);
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "{}", summary.reason);
    assert_eq!(summary.totals.tasks_done, 1);
    // Both re-asks resumed the coordinator's planning session: its one transcript holds the
    // three planning results (reviews run in forks of it, with transcripts of their own).
    let planning_results = transcripts_of(&handle, "coordinator")
        .into_iter()
        .map(|path| {
            std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .filter(|l| l.contains("\"type\":\"result\""))
                .count()
        })
        .max();
    assert!(planning_results >= Some(3), "{planning_results:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plan_that_stays_invalid_stops_the_run_with_a_clear_reason() {
    let script =
        json!({"rules": [{"match": {"prompt_contains": "[cco:"}, "result": "no json here"}]});
    let project = Project::new(json!({"workerCount": 1, "maxPlanRetries": 1}), script);
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(!summary.completed);
    assert!(
        summary
            .reason
            .contains("no valid task plan after 2 answers: no JSON object found"),
        "{}",
        summary.reason
    );
    assert_eq!(summary.outcome, RunOutcome::PlanningFailed);
}

/// A planner that commits and answers prose, then says `complete` when asked to repair: the
/// first plan never parsed and nothing ran, which is not a completion of the work.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn complete_after_a_rejected_first_plan_is_reported_as_such() {
    let script = json!({"rules": [
        {"match": {"prompt_contains": "[cco:coordinator-plan]"}, "result": "I wrote PLAN.md and committed it."},
        {"match": {"prompt_contains": "[cco:repair]"}, "result": "{\"status\":\"complete\",\"reason\":\"the plan is committed\"}"}
    ]});
    let project = Project::new(json!({"workerCount": 1}), script);
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert_eq!(
        summary.outcome,
        RunOutcome::CompletedWithoutTasks {
            after_planning_failure: true
        }
    );
    assert!(
        summary.reason.starts_with(
            "complete without any task: no valid task plan after 1 answer: no JSON object found"
        ),
        "{}",
        summary.reason
    );
    assert!(summary.reason.ends_with("(then: the plan is committed)"));
}

/// The Director's plan never parses: the run failed to plan (it used to end with a reason an
/// exit code could not be told from).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_director_plan_that_stays_invalid_is_a_planning_failure() {
    let script = json!({"rules": [{"match": {"prompt_contains": "[cco:"}, "result": "no json"}]});
    let project = Project::new(
        json!({"workerCount": 4, "engineerManagerGroupSize": 2, "maxPlanRetries": 0}),
        script,
    );
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert_eq!(summary.outcome, RunOutcome::PlanningFailed);
    assert!(
        summary
            .reason
            .starts_with("the director gave no valid plan: no valid director plan after 1 answer"),
        "{}",
        summary.reason
    );
    assert!(handle
        .status()
        .phase
        .starts_with("finished: planning failed ("));
}

fn write_keys(project: &Project) {
    std::fs::write(
        project.config_dir.join("api-keys.json"),
        json!([{"name": "k1", "apiKey": "sk-ant-test-key-one-111"}, {"name": "k2", "apiKey": "sk-ant-test-key-two-222"}]).to_string(),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        project.config_dir.join("api-keys.json"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

/// Worker rules that note which key resumed the task, outside the repository.
fn key_marking_rules(marks: &std::path::Path) -> Vec<serde_json::Value> {
    [("k1", "sk-ant-test-key-one-111"), ("k2", "sk-ant-test-key-two-222")]
        .iter()
        .map(|(name, key)| {
            json!({"match": {"role": "worker", "prompt_contains": "[cco:resume]", "api_key": key}, "steps": [
                {"bash": format!("echo {name} >> '{}'", marks.display())},
                {"write": {"path": "t1.txt", "content": "t1\n"}}, {"commit": "t1"}
            ], "result": "resumed and done"})
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_limited_key_is_benched_and_the_same_session_resumes_on_the_next_key() {
    let marks_dir = cco_testkit::temp_dir();
    let marks = marks_dir.path().join("keys-used");
    let mut rules = vec![
        plan_rule(
            "[cco:coordinator-plan]",
            json!({"status":"continue","tasks":[task("t1","t1.txt")]}),
        ),
        complete_rule("[cco:replan]"),
        approve_rule(),
        json!({"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "times": 1,
               "steps": [{"text": "working"}, {"rate_limit": {"resets_in_secs": 600, "retries": 1}}]}),
    ];
    rules.extend(key_marking_rules(&marks));
    let project = Project::new(
        json!({"workerCount": 1, "authMode": "api-keys-only"}),
        json!({"rules": rules}),
    );
    write_keys(&project);
    let handle = project.start().await;
    let recorder = record(&handle);
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "{}", summary.reason);
    let events = recorded(recorder, handle.clone()).await;
    let benched: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::KeyBenched { key, .. } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(benched.len(), 1, "{benched:?}");
    let used = std::fs::read_to_string(&marks).unwrap();
    assert_eq!(used.lines().count(), 1);
    assert_ne!(
        used.trim(),
        benched[0],
        "the session resumed on the other key"
    );
    // Same session: one worker transcript, and the task's session id is its name.
    let task = &summary.tasks[0];
    let transcripts: Vec<String> = transcripts_of(&handle, "worker-1")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        transcripts,
        vec![format!(
            "worker-1-{}.jsonl",
            task.session_id.clone().unwrap()
        )]
    );
    // Keys never reach logs.
    for entry in std::fs::read_dir(handle.run_dir().join("sessions"))
        .unwrap()
        .filter_map(Result::ok)
    {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        assert!(
            !text.contains("sk-ant-test-key"),
            "a key leaked into {}",
            entry.path().display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_every_key_is_rate_limited_the_work_pauses_and_resumes_by_itself() {
    let marks_dir = cco_testkit::temp_dir();
    let marks = marks_dir.path().join("keys-used");
    let mut rules = vec![
        plan_rule(
            "[cco:coordinator-plan]",
            json!({"status":"continue","tasks":[task("t1","t1.txt")]}),
        ),
        complete_rule("[cco:replan]"),
        approve_rule(),
        json!({"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "times": 1, "steps": [{"rate_limit": {"resets_in_secs": 2, "retries": 0}}]}),
        json!({"match": {"role": "worker", "prompt_contains": "[cco:resume]"}, "times": 1, "steps": [{"rate_limit": {"resets_in_secs": 2, "retries": 0}}]}),
    ];
    rules.extend(key_marking_rules(&marks));
    let project = Project::new(
        json!({"workerCount": 1, "authMode": "api-keys-only", "minKeyBenchMs": 200}),
        json!({"rules": rules}),
    );
    write_keys(&project);
    let handle = project.start().await;
    let recorder = record(&handle);
    let mut saw_paused_state = false;
    cco_testkit::wait_until_async(Duration::from_secs(30), "the worker pauses", || {
        saw_paused_state |= handle
            .status()
            .agents
            .iter()
            .any(|a| a.state.starts_with("paused: rate limited until"));
        std::future::ready(saw_paused_state || handle.is_finished())
    })
    .await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(saw_paused_state, "the paused state was never visible");
    assert!(summary.completed, "{}", summary.reason);
    assert_eq!(summary.totals.tasks_done, 1);
    let events = recorded(recorder, handle).await;
    assert!(events.iter().any(|e| matches!(e, RunEvent::Paused { .. })));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, RunEvent::KeyBenched { .. }))
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reaching_the_budget_stops_the_run_cleanly() {
    let mut rules = flat_plan_rules(6);
    for n in 1..=6 {
        let mut rule = worker_rule(&format!("t{n}"), &format!("t{n}.txt"), "x\n");
        rule["cost_usd"] = json!(0.5);
        rules.push(rule);
    }
    let project = Project::new(
        json!({"workerCount": 1, "maxBudgetUsd": 1.0}),
        json!({"rules": rules}),
    );
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(!summary.completed);
    assert!(
        summary.reason.starts_with("budget reached"),
        "{}",
        summary.reason
    );
    assert!(matches!(
        summary.outcome,
        RunOutcome::LimitReached {
            limit: RunLimit::Budget { budget_usd, .. }
        } if budget_usd == 1.0
    ));
    assert!(summary.totals.cost_usd >= 1.0);
    assert!(
        summary.totals.tasks_done < 6,
        "the run stopped before doing everything"
    );
    assert_no_live_processes(&pids_of(&handle));
    // What was merged before the stop is on main, exactly once.
    let log = project.git(&["log", "--format=%s", "main"]);
    for task in summary.tasks.iter().filter(|t| t.state == TaskState::Done) {
        assert_eq!(
            log.lines()
                .filter(|l| *l == format!("Merge {}", task.key))
                .count(),
            1,
            "{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_out_of_time_is_resumed_once_to_commit_what_works() {
    let script = json!({"rules": [
        plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[task("t1","t1.txt"), task("t2","t2.txt")]})),
        complete_rule("[cco:replan]"),
        approve_rule(),
        // t1 hangs, then commits when told it ran out of time; t2 never finishes at all.
        {"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "steps": [{"write": {"path": "t1.txt", "content": "partial\n"}}, {"hang": true}]},
        {"match": {"role": "worker", "prompt_contains": "[cco:timeout]"}, "times": 1, "steps": [{"commit": "What works"}], "result": "committed"},
        {"match": {"role": "worker"}, "steps": [{"hang": true}]},
    ]});
    let project = Project::new(json!({"workerCount": 1, "taskTimeoutMs": 1000}), script);
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "{}", summary.reason);
    let t1 = summary.tasks.iter().find(|t| t.id == "t1").unwrap();
    let t2 = summary.tasks.iter().find(|t| t.id == "t2").unwrap();
    assert_eq!(t1.state, TaskState::Done, "{t1:?}");
    assert_eq!(project.file_on("main", "t1.txt"), "partial\n");
    assert_eq!(t2.state, TaskState::Failed);
    assert_eq!(t2.failure.as_deref(), Some("timed out"));
    assert_eq!(
        t2.attempts, 2,
        "killed, resumed once with the timeout prompt, killed again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_process_is_killed_by_the_idle_timeout_and_resumed() {
    let script = json!({"rules": [
        plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[task("t1","t1.txt")]})),
        complete_rule("[cco:replan]"),
        approve_rule(),
        {"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "times": 1, "steps": [{"ignore_sigterm": true}, {"hang": true}]},
        {"match": {"role": "worker", "prompt_contains": "[cco:resume]"}, "steps": [{"write": {"path": "t1.txt", "content": "t1\n"}}, {"commit": "t1"}]},
    ]});
    let project = Project::new(
        json!({"workerCount": 1, "idleTimeoutMs": 1000, "killGraceMs": 200}),
        script,
    );
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "{}", summary.reason);
    assert_eq!(summary.tasks[0].state, TaskState::Done);
    assert_eq!(summary.tasks[0].attempts, 2);
}

/// Resumes a run from the journal of a cco that crashed after running it for its whole minute,
/// in the format today's main writes (version 1): the clock goes on from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resumed_run_counts_the_time_its_earlier_processes_ran() {
    // Planning never ends: only the time limit can stop this run.
    let script =
        json!({"rules": [{"match": {"prompt_contains": "[cco:"}, "steps": [{"hang": true}]}]});
    let project = Project::new(
        json!({"workerCount": 1, "maxRunDurationMinutes": 1}),
        script,
    );
    let config = project.load();
    let run_dir = config.config.log_directory.join("run-crashed");
    std::fs::create_dir_all(run_dir.join("sessions")).unwrap();
    let now = chrono::Utc::now();
    let journal = json!({
        "version": 1, "run_id": "run-crashed", "base_branch": "main", "finished": false,
        "end_reason": null, "written_at": now,
        "snapshot": {
            "run_id": "run-crashed", "taken_at": now, "started_at": now,
            "phase": "planning", "agents": [], "tasks": [],
            "totals": {"tasks_done": 0, "tasks_failed": 0, "commits": 0, "merges": 0,
                       "conflicts": 0, "cost_usd": 0.0}
        },
        "specs": {}, "plan": {"pending_goals": [], "team_goals": {}, "history": []},
        "benched_keys": [], "active_ms": 60_000
    });
    std::fs::write(run_dir.join("journal.json"), journal.to_string()).unwrap();

    let handle = cco_actors::Orchestrator::builder(config)
        .resume(&run_dir)
        .start()
        .await
        .expect("the run resumes");
    // Promptly: a clock restarted at zero would run for another minute.
    let summary = finish(&handle, Duration::from_secs(30)).await;
    assert!(!summary.completed);
    assert_eq!(summary.reason, "maximum run duration of 1 minutes reached");
    assert!(matches!(
        summary.outcome,
        RunOutcome::LimitReached {
            limit: RunLimit::Duration { minutes: 1 }
        }
    ));
    // The summary and the status both count the earlier minute.
    assert!(summary.duration_secs >= 60.0, "{}", summary.duration_secs);
    assert!(handle.status().active_elapsed() >= Duration::from_secs(60));
    let saved = cco_actors::Orchestrator::read_run(&run_dir).unwrap();
    assert!(saved.finished);
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("journal.json")).unwrap()).unwrap();
    assert!(
        written["active_ms"].as_u64().unwrap() >= 60_000,
        "{written}"
    );
}
