//! End-to-end: what each agent is told, against fake-claude. Each scripted turn records the
//! prompt it got (an `append` step with `{{prompt}}` to a file outside the repository), and
//! the tests read the prompts back: the real branch and worktree in every follow-up, the
//! reviewer's refs, the verify gate's own prompt, resume prompts that fit the role.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure with a message

mod harness;

use std::path::Path;
use std::time::Duration;

use cco_actors::{RunOutcome, TaskState};
use harness::*;
use serde_json::{json, Value};

const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// A step that appends the prompt of the turn to `file`, between marker lines (a template
/// that starts with `{` would be JSON-escaped).
fn record_prompt(file: &Path) -> Value {
    json!({"append": {"path": path_str(file), "content": "PROMPT\n{{prompt}}\n=====\n"}})
}

/// The prompts recorded in `file`.
fn prompts(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .split("\n=====\n")
        .filter_map(|p| p.strip_prefix("PROMPT\n"))
        .map(str::to_string)
        .collect()
}

/// Every follow-up names the branch and worktree the agent really works in (only the team
/// of flat mode's agents is `(none)`), and no Rust `Debug` text.
fn assert_no_placeholder(prompt: &str) {
    for line in ["Branch: (none)", "Base branch: (none)", "Worktree: (none)"] {
        assert!(!prompt.contains(line), "{prompt}");
    }
    assert!(!prompt.contains("branch (none)"), "{prompt}");
    assert!(!prompt.contains("Some("), "{prompt}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_verify_gate_has_its_own_prompt_and_the_reviewer_is_told_the_refs() {
    let records = cco_testkit::temp_dir();
    let gate_prompts = records.path().join("gate.txt");
    let review_prompts = records.path().join("review.txt");
    let script = json!({"rules": [
        plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[task("t1","t1.txt")]})),
        complete_rule("[cco:replan]"),
        {"match": {"prompt_contains": "[cco:review]"}, "steps": [record_prompt(&review_prompts)],
         "result": "{\"decision\":\"approve\"}"},
        {"match": {"role": "worker", "prompt_contains": "[cco:verify-failed]"}, "steps": [
            record_prompt(&gate_prompts),
            {"bash": "git rm -q bad.txt"},
            {"commit": "Remove bad.txt"}
        ], "result": "fixed"},
        {"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "steps": [
            {"write": {"path": "t1.txt", "content": "t1\n"}},
            {"write": {"path": "bad.txt", "content": "no\n"}},
            {"commit": "Implement t1"}
        ], "result": "done"},
    ]});
    let project = Project::new(
        json!({"workerCount": 1, "verifyCommand": "test ! -f bad.txt || { echo 'bad.txt must go'; exit 7; }"}),
        script,
    );
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert_eq!(summary.outcome, RunOutcome::Completed, "{}", summary.reason);
    assert!(!project.files_on("main").contains(&"bad.txt".to_string()));

    let gate = prompts(&gate_prompts);
    assert_eq!(gate.len(), 1, "{gate:?}");
    let gate = &gate[0];
    assert!(
        gate.starts_with("[cco:verify-failed]\n[cco-ref:verify-failed/t1]"),
        "{gate}"
    );
    assert!(gate.contains("- Result: exit 7\n"), "{gate}");
    assert!(gate.contains("bad.txt must go"), "{gate}");
    assert!(gate.contains("refs/cco/tasks/"), "{gate}");
    assert!(gate.contains("into main"), "{gate}");
    assert!(gate.contains("your branch cco/flat/worker-1"), "{gate}");
    assert!(!gate.contains("Engineering Manager"), "{gate}");
    assert!(!gate.contains("[cco:feedback]"), "{gate}");
    assert_no_placeholder(gate);

    let reviews = prompts(&review_prompts);
    assert!(!reviews.is_empty());
    for review in &reviews {
        // Named by ref, inspected by commit (the coordinator's repository shares cco's
        // objects, not its refs).
        assert!(
            review.contains("The work is at `refs/cco/tasks/"),
            "{review}"
        );
        assert!(
            review.contains("would be merged into `main` (now at "),
            "{review}"
        );
        let diff_line = review
            .lines()
            .find(|l| l.starts_with("- `git diff "))
            .unwrap();
        let range = diff_line
            .trim_start_matches("- `git diff ")
            .split('`')
            .next()
            .unwrap();
        let (tip, task) = range.split_once("...").unwrap();
        assert!(tip.len() == 40 && task.len() == 40, "{diff_line}");
        assert!(review.contains("The worker worker-1 finished"), "{review}");
        assert_no_placeholder(review);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conflict_and_a_revision_name_the_real_branch_and_worktree() {
    let records = cco_testkit::temp_dir();
    let conflict_prompts = records.path().join("conflict.txt");
    let feedback_prompts = records.path().join("feedback.txt");
    let script = json!({"rules": [
        plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[task("t1","shared.txt"), task("t2","shared.txt")]})),
        complete_rule("[cco:replan]"),
        {"match": {"prompt_contains": "[cco:review]\n[cco-ref:review/t2]"}, "times": 1,
         "result": "{\"decision\":\"revise\",\"feedback\":\"Say which task wrote the line\"}"},
        approve_rule(),
        {"match": {"role": "worker", "prompt_contains": "[cco:feedback]"}, "steps": [
            record_prompt(&feedback_prompts),
            {"write": {"path": "shared.txt", "content": "line from t2 (task t2)\n"}},
            {"commit": "Name the task"}
        ], "result": "revised"},
        {"match": {"role": "worker", "prompt_contains": "[cco:conflict]"}, "steps": [
            record_prompt(&conflict_prompts),
            {"write": {"path": "shared.txt", "content": "line from t1\nline from t2 (task t2)\n"}},
            {"commit": "Resolve conflict in shared.txt"}
        ], "result": "resolved"},
        line_from_rule("t1"),
        line_from_rule("t2"),
    ]});
    let project = Project::new(json!({"workerCount": 2}), script);
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "{}", summary.reason);
    assert!(summary.tasks.iter().all(|t| t.state == TaskState::Done));

    let feedback = prompts(&feedback_prompts);
    assert_eq!(feedback.len(), 1);
    assert!(
        feedback[0].contains("The Coordinator reviewed"),
        "{}",
        feedback[0]
    );
    assert!(
        !feedback[0].contains("Engineering Manager"),
        "{}",
        feedback[0]
    );
    assert!(
        feedback[0].contains("your branch cco/flat/worker-"),
        "{}",
        feedback[0]
    );
    assert_no_placeholder(&feedback[0]);
    let conflicts = prompts(&conflict_prompts);
    assert!(!conflicts.is_empty());
    for conflict in &conflicts {
        assert!(
            conflict.contains("Merging main into your branch cco/flat/worker-"),
            "{conflict}"
        );
        assert!(conflict.contains("- shared.txt"), "{conflict}");
        assert!(conflict.contains("your worktree /"), "{conflict}");
        assert_no_placeholder(conflict);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resumed_planner_owes_its_plan_and_a_resumed_worker_hears_about_the_capture() {
    let records = cco_testkit::temp_dir();
    let planner_resumes = records.path().join("planner.txt");
    let worker_resumes = records.path().join("worker.txt");
    let plan = json!({"status":"continue","tasks":[task("t1","t1.txt")]});
    let script = json!({"rules": [
        // The first planning process and the first worker process crash.
        {"match": {"prompt_contains": "[cco:coordinator-plan]"}, "times": 1, "steps": [{"crash": {"exit_code": 1}}]},
        {"match": {"role": "coordinator", "prompt_contains": "[cco:resume]"}, "steps": [record_prompt(&planner_resumes)],
         "result": plan.to_string()},
        complete_rule("[cco:replan]"),
        approve_rule(),
        {"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "times": 1, "steps": [
            {"write": {"path": "t1.txt", "content": "t1\n"}},
            {"crash": {"exit_code": 1}}
        ]},
        {"match": {"role": "worker", "prompt_contains": "[cco:resume]"}, "steps": [
            record_prompt(&worker_resumes),
            {"commit": "Implement t1"}
        ], "result": "done"},
    ]});
    let project = Project::new(json!({"workerCount": 1}), script);
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert_eq!(summary.outcome, RunOutcome::Completed, "{}", summary.reason);

    let planner = prompts(&planner_resumes);
    assert_eq!(planner.len(), 1);
    let planner = &planner[0];
    assert!(planner.contains("crashed or was killed"), "{planner}");
    assert!(planner.contains("answer with your task plan"), "{planner}");
    assert!(planner.contains("You only read and plan"), "{planner}");
    assert!(!planner.contains("Commit your work"), "{planner}");
    assert!(!planner.contains("git commit"), "{planner}");
    assert_no_placeholder(planner);

    let worker = prompts(&worker_resumes);
    assert_eq!(worker.len(), 1);
    let worker = &worker[0];
    assert!(
        worker.starts_with("[cco:resume]\n[cco-ref:resume/t1]"),
        "{worker}"
    );
    assert!(worker.contains("Commit your work with git"), "{worker}");
    assert!(worker.contains("committed by cco"), "{worker}");
    assert!(
        worker.contains("on your branch cco/flat/worker-1"),
        "{worker}"
    );
    assert_no_placeholder(worker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn teams_are_named_by_the_director_and_a_taken_name_gets_a_number() {
    let script = json!({"rules": [
        {"match": {"role": "director", "prompt_contains": "[cco:director-plan]"}, "result": json!({"status":"continue","teams":[
            {"name":"Parser","goal":"parse"}]}).to_string()},
        // The second round: the parser team takes the docs goal; the other slot's first goal
        // is called "parser" too, so that team gets its slot's number.
        {"match": {"role": "director", "prompt_contains": "[cco:replan]"}, "times": 1, "result": json!({"status":"continue","teams":[
            {"name":"docs","goal":"write docs"}, {"name":"parser","goal":"parse more"}]}).to_string()},
        complete_rule("[cco:replan]"),
        // The EMs' prompts carry their team's name.
        plan_rule("Goal: docs: write docs", json!({"status":"continue","tasks":[task("d1","d1.txt")]})),
        plan_rule("[cco-ref:em-plan/parser]\n", json!({"status":"continue","tasks":[task("p1","p1.txt")]})),
        plan_rule("[cco-ref:em-plan/team-2]\n", json!({"status":"continue","tasks":[task("p2","p2.txt")]})),
        approve_rule(),
        worker_rule("p1", "p1.txt", "p1\n"),
        worker_rule("d1", "d1.txt", "d1\n"),
        worker_rule("p2", "p2.txt", "p2\n"),
    ]});
    let project = Project::new(
        json!({"workerCount": 2, "engineerManagerGroupSize": 1}),
        script,
    );
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert_eq!(summary.outcome, RunOutcome::Completed, "{}", summary.reason);
    let mut ems: Vec<(&str, Option<&str>)> = summary
        .agents
        .iter()
        .filter(|a| a.role == cco_actors::Role::Em)
        .map(|a| (a.id.as_str(), a.team.as_deref()))
        .collect();
    ems.sort();
    assert_eq!(
        ems,
        [("em-parser", Some("parser")), ("em-team-2", Some("team-2"))]
    );
    let log = project.git(&["log", "--format=%s", "main"]);
    assert!(log.contains("Merge cco/parser/team"), "{log}");
    assert!(log.contains("Merge cco/team-2/team"), "{log}");
    let mut keys: Vec<&str> = summary.tasks.iter().map(|t| t.key.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["parser/d1", "parser/p1", "team-2/p2"]);
}
