//! End-to-end: planners and reviewers answer through the CLI's structured output
//! (`--json-schema`, the `StructuredOutput` tool) when the CLI has it, and as text (the lenient
//! parser and the repair loop) when it does not: `structuredOutput: "auto"` asks once per run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure with a message

mod harness;

use std::path::Path;
use std::time::Duration;

use cco_actors::RunOutcome;
use harness::*;
use serde_json::{json, Value};

const RUN_TIMEOUT: Duration = Duration::from_secs(90);

fn record_prompt(file: &Path) -> Value {
    json!({"append": {"path": path_str(file), "content": "PROMPT\n{{prompt}}\n=====\n"}})
}

/// A flat project whose planner and reviewer record their prompts in `records` and answer
/// with structured output or text, whichever the run uses.
fn flat_project(records: &Path, config: Value) -> Project {
    let planner = records.join("planner.txt");
    let mut plan = plan_rule(
        "[cco:coordinator-plan]",
        json!({"status":"continue","tasks":[task("t1","t1.txt")]}),
    );
    plan["steps"]
        .as_array_mut()
        .unwrap()
        .insert(0, record_prompt(&planner));
    let script = json!({"rules": [
        plan,
        complete_rule("[cco:replan]"),
        approve_rule(),
        worker_rule("t1", "t1.txt", "t1\n"),
    ]});
    Project::new(config, script)
}

fn transcripts_text(handle: &cco_actors::OrchestratorHandle, agent: &str) -> String {
    transcripts_of(handle, agent)
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cli_with_json_schema_gets_the_schema_and_answers_through_structured_output() {
    let records = cco_testkit::temp_dir();
    let project = flat_project(
        records.path(),
        json!({"workerCount": 1, "structuredOutput": "auto"}),
    );
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert_eq!(summary.outcome, RunOutcome::Completed, "{}", summary.reason);
    let prompt = std::fs::read_to_string(records.path().join("planner.txt")).unwrap();
    assert!(
        prompt.contains("calling the StructuredOutput tool"),
        "{prompt}"
    );
    assert!(!prompt.contains("Output only the JSON object"), "{prompt}");
    // The CLI was given the schema: the planning and review sessions called the tool, and the
    // results carry `structured_output`.
    let transcripts = transcripts_text(&handle, "coordinator");
    assert!(
        transcripts.contains("\"name\":\"StructuredOutput\""),
        "{transcripts}"
    );
    assert!(
        transcripts.contains("\"structured_output\":{"),
        "{transcripts}"
    );
    assert!(
        !transcripts.contains("No such tool available"),
        "{transcripts}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_older_cli_without_json_schema_gets_text_prompts_and_its_text_is_parsed() {
    let records = cco_testkit::temp_dir();
    let project = flat_project(
        records.path(),
        json!({"workerCount": 1, "structuredOutput": "auto"}),
    );
    // The same fake, as a CLI from before `--json-schema` (its `--help` does not list it and
    // it refuses the flag).
    let wrapper = project.config_dir.join("claude");
    let inner = project.config_dir.join("claude-new");
    std::fs::rename(&wrapper, &inner).unwrap();
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nFAKE_CLAUDE_NO_JSON_SCHEMA=1 exec '{}' \"$@\"\n",
            inner.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert_eq!(summary.outcome, RunOutcome::Completed, "{}", summary.reason);
    let prompt = std::fs::read_to_string(records.path().join("planner.txt")).unwrap();
    assert!(prompt.contains("Output only the JSON object"), "{prompt}");
    assert!(!prompt.contains("StructuredOutput"), "{prompt}");
    // The answers came as text: the tool call was refused and the result text was parsed.
    let transcripts = transcripts_text(&handle, "coordinator");
    assert!(
        transcripts.contains("No such tool available"),
        "{transcripts}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hierarchy_plans_and_reviews_through_structured_output() {
    let script = json!({"rules": [
        cco_testkit::answer_rule(
            json!({"role": "director", "prompt_contains": "[cco:director-plan]"}),
            json!({"status":"continue","teams":[{"name":"alpha","goal":"alpha files"}]}),
        ),
        complete_rule("[cco:replan]"),
        plan_rule("Goal: alpha", json!({"status":"continue","tasks":[task("a1","a1.txt")]})),
        approve_rule(),
        worker_rule("a1", "a1.txt", "a1\n"),
    ]});
    let project = Project::new(
        json!({"workerCount": 2, "engineerManagerGroupSize": 1, "structuredOutput": "on"}),
        script,
    );
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert_eq!(summary.outcome, RunOutcome::Completed, "{}", summary.reason);
    for agent in ["director", "em-alpha"] {
        let text = transcripts_text(&handle, agent);
        assert!(text.contains("\"structured_output\":{"), "{agent}: {text}");
    }
    assert!(project.files_on("main").contains(&"a1.txt".to_string()));
}
