//! Tests of the messages parsing gives people and agents, and of the structured-output path.

use super::*;
use crate::schema::{DirectorPlan, ReviewDecision, TaskPlan};

fn problems(r: Result<Parsed<TaskPlan>, PlanError>) -> Vec<String> {
    match r {
        Err(PlanError::Validation { problems, .. }) => problems,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

// ---- messages for people ----

#[test]
fn non_ascii_ids_are_told_to_use_ascii() {
    let p = problems(parse_task_plan(
        r#"{"status":"continue","tasks":[{"id":"задача","title":"a"},{"id":"ÄÖÜ","title":"b"},{"id":"t1","title":"c"}]}"#,
    ));
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].contains("task id \"задача\" has no ASCII letters or digits"),
        "{p:?}"
    );
    assert!(
        p[1].contains("\"ÄÖÜ\" has no ASCII letters or digits"),
        "{p:?}"
    );
    let e = parse_director_plan(r#"{"status":"continue","teams":[{"name":"日本","goal":"g"}]}"#)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("team name \"日本\" has no ASCII letters or digits"),
        "{e}"
    );
}

#[test]
fn messages_quote_values_as_json_not_debug() {
    let p = problems(parse_task_plan(
        r#"{"status":"continue","tasks":[{"id":"a\"b","title":"x"},{"id":"a\"b","title":"y"}]}"#,
    ));
    assert!(
        p.iter().any(|m| m.contains(r#"duplicate task id: "a\"b""#)),
        "{p:?}"
    );
}

// ---- structured output ----

#[test]
fn structured_output_comes_first() {
    let structured =
        serde_json::json!({"status": "continue", "tasks": [{"id": "T 1", "title": "x"}]});
    let parsed = parse_task_answer(Answer {
        structured: Some(&structured),
        text: Some("not even JSON"),
    })
    .unwrap();
    let TaskPlan::Continue { tasks } = parsed.value else {
        panic!()
    };
    assert_eq!(tasks[0].id, "t-1");
    assert_eq!(parsed.warnings.len(), 1, "{:?}", parsed.warnings);

    // Its validation errors are the answer's errors.
    let dup = serde_json::json!({"status": "continue", "tasks": [{"id": "a", "title": "x"}, {"id": "a", "title": "y"}]});
    let e = parse_task_answer(Answer {
        structured: Some(&dup),
        text: Some(r#"{"status":"complete"}"#),
    })
    .unwrap_err();
    assert!(matches!(e, PlanError::Validation { .. }), "{e}");

    let review = serde_json::json!({"decision": " Approved ", "notes": " ok "});
    assert_eq!(
        parse_review_answer(Answer {
            structured: Some(&review),
            text: None
        })
        .unwrap()
        .value,
        ReviewDecision::Approve { notes: "ok".into() }
    );
    let plan = serde_json::json!({"status": "complete", "reason": "done"});
    assert!(matches!(
        parse_director_answer(Answer {
            structured: Some(&plan),
            text: None
        })
        .unwrap()
        .value,
        DirectorPlan::Complete { .. }
    ));
}

#[test]
fn result_text_is_the_fallback() {
    // An older CLI: no structured output at all.
    let parsed = parse_task_answer(Answer::text(r#"{"status":"complete","reason":"r"}"#)).unwrap();
    assert!(parsed.warnings.is_empty());
    // A structured output of the wrong shape: the text is used, with a warning.
    let wrong = serde_json::json!({"status": "maybe"});
    let parsed = parse_task_answer(Answer {
        structured: Some(&wrong),
        text: Some("```json\n{\"status\":\"complete\"}\n```"),
    })
    .unwrap();
    assert!(
        parsed.warnings[0].contains("did not match the task plan schema"),
        "{:?}",
        parsed.warnings
    );
    let not_object = serde_json::json!([1, 2]);
    let parsed = parse_task_answer(Answer {
        structured: Some(&not_object),
        text: Some(r#"{"status":"complete"}"#),
    })
    .unwrap();
    assert!(parsed.warnings[0].contains("a list, not an object"));
    // Neither: no JSON.
    assert!(matches!(
        parse_review_answer(Answer::default()).unwrap_err(),
        PlanError::NoJson { .. }
    ));
}
