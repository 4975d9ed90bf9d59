//! End to end (fake claude, real git): conflict resolutions are checked and reviewed before
//! they reach a shared branch (issue 18 §1), in flat mode (a task's conflict with the base
//! branch) and in hierarchy mode (the `merge-<base>` task, then the Director's team merge).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure with a message

mod harness;

use std::path::Path;
use std::time::Duration;

use cco_actors::{Role, RunEvent};
use harness::*;
use serde_json::{json, Value};

const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The careless resolution: `git add -A && git commit --no-edit`, markers and all.
fn commit_markers_rule() -> Value {
    json!({"match": {"role": "worker", "prompt_contains": "[cco:conflict]"}, "times": 1,
        "steps": [{"bash": "git add -A && git commit -q --no-edit"}], "result": "resolved"})
}

/// Every prompt the fake claude of `agent` was given (its session files).
fn prompts_of(project: &Project, agent: &str) -> Vec<String> {
    let dir = project
        .config_dir
        .join("workspace/agents")
        .join(agent)
        .join("claude-config/projects");
    let mut prompts = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "jsonl") {
                for line in std::fs::read_to_string(&p).unwrap_or_default().lines() {
                    let v: Value = serde_json::from_str(line).unwrap_or_default();
                    if let Some(text) = v["message"]["content"].as_str() {
                        prompts.push(text.to_string());
                    }
                }
            }
        }
    }
    prompts
}

/// No ref of the run's clone (branches, task refs) ever held a committed conflict marker.
fn assert_no_marker_in_any_ref(repo: &Path) {
    let log = cco_testkit::git(repo, &["log", "--all", "-p", "--format=%H"]);
    assert!(
        !log.lines().any(|l| l.starts_with("+<<<<<<<")),
        "a ref holds committed conflict markers:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn committed_markers_go_back_to_the_same_session_and_the_resolution_is_reviewed_against_both_parents(
) {
    let dir = cco_testkit::temp_dir();
    let clone = dir.path().join("config/workspace/repo");
    // t2 starts from the tip t1 has not reached yet and commits once t1 is merged: its merge
    // conflicts with main.
    let line = |id: &str, text: &str, after: Option<&str>| {
        let mut steps = Vec::new();
        if let Some(other) = after {
            steps.push(json!({"bash": format!(
                "i=0; until git -C '{}' show main:shared.txt 2>/dev/null | grep -q {other} || [ $i -ge 1200 ]; do sleep 0.05; i=$((i+1)); done",
                clone.display()
            )}));
        }
        steps.push(json!({"write": {"path": "shared.txt", "content": format!("{text}\n")}}));
        steps.push(json!({"commit": format!("{id} edits shared.txt")}));
        json!({"match": {"role": "worker", "prompt_contains": format!("Task ID: {id}")}, "steps": steps, "result": format!("{id} done")})
    };
    let script = json!({"rules": [
        plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[task("t1","shared.txt"), task("t2","shared.txt")]})),
        complete_rule("[cco:replan]"),
        // The resolution review sees that main's line was dropped (the diff against the
        // second parent removes it) and asks for it back.
        {"match": {"prompt_contains": "\n-alpha-line"}, "times": 1,
            "result": "{\"decision\":\"revise\",\"feedback\":\"restore alpha-line: the resolution dropped main's change\"}"},
        approve_rule(),
        commit_markers_rule(),
        // Told about the markers (file and line), the same session resolves, keeping its own
        // line only.
        {"match": {"role": "worker", "resume": true, "prompt_contains": "still holds conflict markers"}, "steps": [
            {"write": {"path": "shared.txt", "content": "beta-line\n"}},
            {"commit": "Resolve the conflict"}
        ], "result": "kept beta-line"},
        {"match": {"role": "worker", "resume": true, "prompt_contains": "restore alpha-line"}, "steps": [
            {"write": {"path": "shared.txt", "content": "alpha-line\nbeta-line\n"}},
            {"commit": "Keep both lines"}
        ], "result": "both lines kept"},
        line("t1", "alpha-line", None),
        line("t2", "beta-line", Some("alpha-line")),
    ]});
    let project = Project::in_dir(dir, json!({"workerCount": 1}), script);
    let handle = project.start().await;
    let recorder = record(&handle);
    let summary = finish(&handle, RUN_TIMEOUT).await;
    let events = recorded(recorder, handle.clone()).await;
    assert!(summary.completed, "{}", summary.reason);
    assert_eq!(summary.totals.tasks_done, 2, "{summary:#?}");
    assert_eq!(summary.totals.tasks_failed, 0);
    assert_eq!(
        project.file_on("main", "shared.txt"),
        "alpha-line\nbeta-line\n"
    );
    assert_no_marker_in_any_ref(&project.workspace_repo());
    // The markers went back to the session, named by file and line.
    let fix = events
        .iter()
        .find_map(|e| match e {
            RunEvent::TaskRevised { feedback, .. } if feedback.contains("conflict markers") => {
                Some(feedback.clone())
            }
            _ => None,
        })
        .expect("the markers were sent back");
    assert!(fix.contains("shared.txt:"), "{fix}");
    // ... in the refusal's own prompt (cco refused it; no reviewer asked for changes).
    assert!(
        prompts_of(&project, "worker-1")
            .iter()
            .any(|p| p.starts_with("[cco:refused]") && p.contains("still holds conflict markers")),
        "the fix turn got the refusal prompt"
    );
    let t2 = summary.tasks.iter().find(|t| t.id == "t2").unwrap();
    assert_eq!(
        (t2.conflict_rounds, t2.fix_rounds, t2.review_rounds),
        (1, 1, 1),
        "{t2:?}"
    );
    assert_eq!(
        transcripts_of(&handle, "worker-1").len(),
        2,
        "one session per task: the conflict, the fix and the revision resumed t2's"
    );
    // The resolution was reviewed as one, against both parents: main's dropped line shows.
    let review = prompts_of(&project, "coordinator")
        .into_iter()
        .find(|p| p.starts_with("[cco:review-resolution]"))
        .expect("a resolution review");
    let second = review
        .split("<diff-second-parent>")
        .nth(1)
        .and_then(|s| s.split("</diff-second-parent>").next())
        .unwrap();
    assert!(second.contains("\n-alpha-line"), "{review}");
    assert!(review.contains("<diff-first-parent>"), "{review}");
    assert!(review.contains("- shared.txt"), "{review}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_base_merge_task_that_commits_markers_never_reaches_a_team_branch_or_main() {
    let mut rules = two_teams_on_one_line();
    rules.extend([
        json!({"match": {"prompt_contains": "[cco:review-resolution]"}, "result": "{\"decision\":\"approve\"}"}),
        approve_rule(),
        commit_markers_rule(),
        json!({"match": {"role": "worker", "resume": true, "prompt_contains": "still holds conflict markers"}, "steps": [
            {"write": {"path": "shared.txt", "content": "alpha\nbeta\n"}},
            {"commit": "Resolve the conflict, keeping both lines"}
        ], "result": "both lines kept"}),
        shared_line_rule("a1", "alpha"),
        shared_line_rule("b1", "beta"),
    ]);
    let project = Project::new(
        json!({"workerCount": 2, "engineerManagerGroupSize": 1}),
        json!({"rules": rules}),
    );
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "{}", summary.reason);
    assert_eq!(summary.totals.tasks_failed, 0, "{summary:#?}");
    let base_merge = summary
        .tasks
        .iter()
        .find(|t| t.id.starts_with("merge-"))
        .expect("a merge-main task");
    assert_eq!(base_merge.fix_rounds, 1, "{base_merge:?}");
    assert_eq!(project.file_on("main", "shared.txt"), "alpha\nbeta\n");
    assert_no_marker_in_any_ref(&project.workspace_repo());
    // Teams are named after their first goal: the EM is the one leading the merge task's team.
    let em = summary
        .agents
        .iter()
        .find(|a| a.role == Role::Em && a.team.as_deref() == Some(base_merge.team.as_str()))
        .map(|a| a.id.clone())
        .expect("the EM of the merge task's team");
    assert!(
        prompts_of(&project, &em)
            .iter()
            .any(|p| p.starts_with("[cco:review-resolution]")),
        "the team's resolution was reviewed"
    );
}
