//! `--json-schema` (structured output) against the real CLI's transcripts
//! `json_schema_structured_output.jsonl` and `json_schema_invalid_then_valid.jsonl`, the
//! enforce message, the older-CLI mode and cco's own schemas.

mod common;

use cco_protocol::PlanKind;
use common::*;
use serde_json::{json, Value};

fn task_schema() -> String {
    PlanKind::Task.json_schema_arg()
}

/// Same shape and, event by event, the same keys as the fixture.
fn assert_like_fixture(events: &[Value], fixture_name: &str) {
    let fx = fixture(fixture_name);
    assert_eq!(
        shape(events),
        shape(&fx),
        "event sequence of {fixture_name}"
    );
    let mut fx_init = keys(&fx[0]);
    fx_init.remove("messaging_socket_path");
    assert_eq!(keys(&events[0]), fx_init);
    for (i, (ours, theirs)) in events.iter().zip(&fx).enumerate().skip(1) {
        assert_eq!(
            keys(ours),
            keys(theirs),
            "keys of event {i} ({})",
            shape(&fx)[i]
        );
        if ours["type"] == "user" || ours["type"] == "assistant" {
            assert_eq!(
                keys(&ours["message"]["content"][0]),
                keys(&theirs["message"]["content"][0]),
                "content keys of event {i}"
            );
        }
    }
}

#[test]
fn a_valid_call_is_the_result_like_the_fixture() {
    let sb = Sandbox::new(Some(json!({"default": {"steps": [
        {"text": "Here is the plan."},
        {"structured_output": {"status": "continue", "tasks": [{"id": "t1", "title": "x"}]}}
    ]}})));
    let schema = task_schema();
    let run = sb.run("plan", &["--json-schema", &schema]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_like_fixture(&run.events, "json_schema_structured_output.jsonl");
    let tools = run.events[0]["tools"].as_array().unwrap();
    let fx = fixture("json_schema_structured_output.jsonl");
    assert_eq!(
        tools,
        fx[0]["tools"].as_array().unwrap(),
        "StructuredOutput after Skill"
    );
    assert_eq!(
        run.events[2]["message"]["content"][0]["name"],
        "StructuredOutput"
    );
    let ok = &run.events[3]["message"]["content"][0];
    assert_eq!(ok["content"], "Structured output provided successfully");
    assert!(ok.get("is_error").is_none());
    let res = result_of(&run.events);
    let doc = json!({"status": "continue", "tasks": [{"id": "t1", "title": "x"}]});
    assert_eq!(res["structured_output"], doc);
    assert_eq!(
        serde_json::from_str::<Value>(res["result"].as_str().unwrap()).unwrap(),
        doc
    );
    assert_eq!(res["num_turns"], 2);
    assert_eq!(res["stop_reason"], "tool_use");
    assert_eq!(res["is_error"], false);
}

#[test]
fn an_invalid_call_is_answered_in_the_same_turn_like_the_fixture() {
    let sb = Sandbox::new(Some(json!({"default": {"steps": [
        {"structured_output": {"status": "maybe"}},
        {"structured_output": {"status": "complete"}}
    ]}})));
    let schema = task_schema();
    let run = sb.run("plan", &["--json-schema", &schema]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_like_fixture(&run.events, "json_schema_invalid_then_valid.jsonl");
    let fx = fixture("json_schema_invalid_then_valid.jsonl");
    let err = &run.events[2]["message"]["content"][0];
    // The real CLI's message for the same mistake (its schema had the same enum).
    assert_eq!(err["content"], fx[2]["message"]["content"][0]["content"]);
    assert_eq!(err["is_error"], true);
    assert_eq!(run.events[2]["tool_use_result"], fx[2]["tool_use_result"]);
    let res = result_of(&run.events);
    assert_eq!(res["structured_output"], json!({"status": "complete"}));
    assert_eq!(res["num_turns"], 3);
}

#[test]
fn ending_with_text_gets_the_enforce_message() {
    let sb = Sandbox::new(Some(json!({"default": {
        "result": "{\"status\":\"complete\"}",
        "enforce_steps": [{"structured_output": {"status": "complete", "reason": "done"}}]
    }})));
    let schema = task_schema();
    let run = sb.run("plan", &["--json-schema", &schema]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let enforce = run
        .events
        .iter()
        .find(|e| e["type"] == "user" && e["message"]["content"][0]["type"] == "text")
        .expect("an enforce message");
    assert_eq!(
        enforce["message"]["content"][0]["text"],
        "[structured-output-enforce] You MUST call the StructuredOutput tool to complete this request."
    );
    assert_eq!(
        result_of(&run.events)["structured_output"],
        json!({"status": "complete", "reason": "done"})
    );

    // Still no valid call: the CLI gives up with an error result.
    let sb = Sandbox::new(Some(json!({"default": {"result": "prose"}})));
    let run = sb.run("plan", &["--json-schema", &schema]);
    assert_eq!(run.code, 1);
    let res = result_of(&run.events);
    assert_eq!(res["subtype"], "error_max_structured_output_retries");
    assert_eq!(res["is_error"], true);
    assert!(res.get("structured_output").is_none());
}

#[test]
fn cco_schemas_accept_good_documents_and_explain_bad_ones() {
    let cases = [
        (
            PlanKind::Task,
            json!({"status": "continue", "tasks": []}),
            Some("/tasks: must NOT have fewer than 1 items"),
        ),
        (
            PlanKind::Task,
            json!({"status": "continue"}),
            Some("must have required property 'tasks'"),
        ),
        (
            PlanKind::Task,
            json!({"status": "continue", "tasks": [{"id": "t1"}]}),
            Some("/tasks/0: must have required property 'title'"),
        ),
        (PlanKind::Task, json!({"status": "complete"}), None),
        (
            PlanKind::Director,
            json!({"status": "continue", "teams": [{"name": "p", "goal": "g"}]}),
            None,
        ),
        (
            PlanKind::Director,
            json!({"status": "continue", "teams": [{"name": "p"}]}),
            Some("/teams/0: must have required property 'goal'"),
        ),
        (
            PlanKind::Review,
            json!({"decision": "revise"}),
            Some("must have required property 'feedback'"),
        ),
        (
            PlanKind::Review,
            json!({"decision": "revise", "feedback": ""}),
            Some("/feedback: must NOT have fewer than 1 characters"),
        ),
        (PlanKind::Review, json!({"decision": "approve"}), None),
    ];
    for (kind, doc, expected) in cases {
        let schema = kind.json_schema();
        fake_claude::schema_check::check_supported(&schema).unwrap();
        let error = fake_claude::schema_check::first_error(&schema, &doc);
        assert_eq!(error.as_deref(), expected, "{kind}: {doc}");
    }
}

#[test]
fn without_the_flag_the_tool_does_not_exist() {
    let sb = Sandbox::new(Some(json!({"default": {"steps": [
        {"structured_output": {"status": "complete"}}
    ], "result": "ok"}})));
    let run = sb.run("plan", &[]);
    assert_eq!(run.code, 0);
    assert!(!run.events[0]["tools"]
        .as_array()
        .unwrap()
        .contains(&json!("StructuredOutput")));
    let tr = run.events.iter().find(|e| e["type"] == "user").unwrap();
    assert_eq!(tr["message"]["content"][0]["is_error"], true);
    assert!(result_of(&run.events).get("structured_output").is_none());
}

#[test]
fn an_older_cli_has_no_json_schema() {
    let sb = Sandbox::new(None);
    let help = sb.cmd(&["--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--json-schema <schema>"));
    let old = sb
        .cmd(&["--help"])
        .env(fake_claude::NO_JSON_SCHEMA_ENV, "1")
        .output()
        .unwrap();
    assert_eq!(old.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&old.stdout).contains("--json-schema"));
    let schema = task_schema();
    let mut args = vec!["-p", "x", "--json-schema", &schema];
    args.extend_from_slice(STREAM);
    let refused = sb
        .cmd(&args)
        .env(fake_claude::NO_JSON_SCHEMA_ENV, "1")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr).trim(),
        "error: unknown option '--json-schema'"
    );
    assert!(refused.stdout.is_empty());
}

#[test]
fn a_schema_the_check_cannot_do_is_refused() {
    let sb = Sandbox::new(None);
    let run = sb.run(
        "x",
        &[
            "--json-schema",
            r#"{"type":"object","properties":{"a":{"pattern":"^x"}}}"#,
        ],
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("\"pattern\""), "{}", run.stderr);
    let run = sb.run("x", &["--json-schema", "{not json"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("Invalid JSON schema"), "{}", run.stderr);
}
