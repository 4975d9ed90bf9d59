//! API signals and structured output: typed from the real transcripts, live from fake-claude
//! (the first 429 is seen while the CLI still waits), and `--json-schema` end to end.

mod common;

use std::time::Duration;

use cco_claude::{
    parse_line, probe_cli, ApiErrorClass, ApiSignal, ExitInfo, OutcomeBuilder, OutcomeKind,
    RateLimitState, SessionUpdate, StreamEvent, StructuredOutput,
};
use cco_testkit::fake_claude;
use common::*;
use serde_json::json;

fn fixture(name: &str) -> Vec<StreamEvent> {
    std::fs::read_to_string(cco_testkit::fixtures_dir().join(name))
        .unwrap()
        .lines()
        .map(|l| parse_line(l).unwrap())
        .collect()
}

#[test]
fn fixtures_give_typed_signals_and_classes() {
    let events = fixture("rate_limit_429_maxretries2.jsonl");
    let signals: Vec<ApiSignal> = events.iter().filter_map(StreamEvent::api_signal).collect();
    assert_eq!(signals.len(), 2);
    assert!(signals.iter().all(ApiSignal::is_rate_limit_hit));
    let ApiSignal::Retry(first) = &signals[0] else {
        panic!()
    };
    assert_eq!(first.retry_delay, Some(Duration::from_millis(1227)));
    assert_eq!((first.attempt, first.max_retries), (Some(1), Some(2)));

    let mut b = OutcomeBuilder::new();
    events.iter().for_each(|e| b.observe(e));
    let out = b.finish(ExitInfo::code(1), Duration::ZERO);
    assert_eq!(out.kind.api_error_class(), Some(ApiErrorClass::RateLimited));
    assert_eq!(out.api_retries, 2);
    assert_eq!(out.last_api_retry.as_ref().unwrap().attempt, Some(2));
    assert_eq!(out.kind.to_string(), "API error 429 (rate limited)");

    let events = fixture("overloaded_529_maxretries2.jsonl");
    let signals: Vec<ApiSignal> = events.iter().filter_map(StreamEvent::api_signal).collect();
    assert!(signals
        .iter()
        .all(|s| s.is_api_unavailable() && !s.is_rate_limit_hit()));
    let mut b = OutcomeBuilder::new();
    events.iter().for_each(|e| b.observe(e));
    let out = b.finish(ExitInfo::code(1), Duration::ZERO);
    assert!(out.kind.is_api_unavailable());
    let text = out.kind.to_string();
    assert!(
        text.starts_with("API error 529 (overloaded): API Error: 529 Overloaded"),
        "{text}"
    );
    assert!(!text.contains("Some("), "{text}");

    let events = fixture("rate_limit_event_oauth_warning_then_rejected.jsonl");
    let states: Vec<RateLimitState> = events
        .iter()
        .filter_map(StreamEvent::api_signal)
        .map(|s| match s {
            ApiSignal::RateLimit(r) => r.state,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        states,
        [RateLimitState::AllowedWarning, RateLimitState::Rejected]
    );
    let mut b = OutcomeBuilder::new();
    events.iter().for_each(|e| b.observe(e));
    let out = b.finish(ExitInfo::code(1), Duration::ZERO);
    let last = out.last_rate_limit.unwrap();
    assert_eq!(last.state, RateLimitState::Rejected);
    assert_eq!(last.resets_at.unwrap().timestamp(), 1796088453);
    assert!(matches!(
        out.kind,
        OutcomeKind::RateLimited { resets_at: Some(_) }
    ));

    let events = fixture("json_schema_structured_output.jsonl");
    let mut b = OutcomeBuilder::new();
    events.iter().for_each(|e| b.observe(e));
    let out = b.finish(ExitInfo::code(0), Duration::ZERO);
    assert_eq!(
        out.structured_output,
        Some(json!({"status": "continue", "tasks": [{"id": "t1", "title": "x"}]}))
    );
}

/// The first 429 `api_retry` arrives while the CLI still waits out its 30 s retry delay: the
/// caller stops the process right there instead of after all retries.
#[tokio::test]
async fn the_first_429_is_seen_while_the_cli_waits() {
    let env = Env::new();
    let spec = env.spec(
        rule(json!({"steps": [
            {"text": "working"},
            {"rate_limit": {"retries": 3, "retry_delay_ms": 30000, "wait": true}}
        ]})),
        "x",
    );
    let (handle, mut rx) = cco_claude::ClaudeSession::spawn(spec).unwrap();
    let signal = tokio::time::timeout(RUN_LIMIT, async {
        loop {
            match rx.recv().await {
                Some(update) => {
                    if let Some(signal) = update.api_signal() {
                        break signal;
                    }
                }
                None => panic!("ended without a signal"),
            }
        }
    })
    .await
    .expect("a signal before the CLI gives up");
    assert!(signal.is_rate_limit_hit());
    let now = chrono::Utc::now();
    let until = signal.not_before(now).unwrap();
    assert_eq!((until - now).num_seconds(), 30);
    handle.terminate();
    let mut updates = Vec::new();
    while let Some(update) = tokio::time::timeout(RUN_LIMIT, rx.recv()).await.unwrap() {
        updates.push(update);
    }
    let Some(SessionUpdate::Finished(out)) = updates.last().cloned() else {
        panic!("no outcome")
    };
    assert!(
        matches!(out.kind, OutcomeKind::Killed { .. }),
        "{}",
        out.kind
    );
    assert_eq!(out.api_retries, 1);
    assert!(!updates
        .iter()
        .any(|u| matches!(u, SessionUpdate::Event(e) if matches!(**e, StreamEvent::Result(_)))));
}

#[tokio::test]
async fn json_schema_answers_arrive_as_structured_output() {
    let env = Env::new();
    let mut spec = env.spec(
        rule(json!({"steps": [
            {"structured_output": {"status": "maybe"}},
            {"structured_output": {"decision": "approve", "notes": "fine"}}
        ]})),
        "[cco:review]",
    );
    spec.json_schema = Some(cco_protocol::PlanKind::Review.json_schema_arg());
    let (_, _, out) = run(spec).await;
    assert_eq!(out.kind, OutcomeKind::Success, "{}", out.kind);
    let structured = out.structured_output.clone().unwrap();
    assert_eq!(structured, json!({"decision": "approve", "notes": "fine"}));
    let parsed = cco_protocol::parse_review_answer(cco_protocol::Answer {
        structured: out.structured_output.as_ref(),
        text: out.result_text.as_deref(),
    })
    .unwrap();
    assert_eq!(
        parsed.value,
        cco_protocol::ReviewDecision::Approve {
            notes: "fine".into()
        }
    );
}

#[tokio::test]
async fn probe_detects_json_schema_support() {
    let features = probe_cli(fake_claude(), RUN_LIMIT).await.unwrap();
    assert_eq!(features.structured_output, StructuredOutput::Supported);

    // An older CLI: a wrapper that plays fake-claude without --json-schema.
    let env = Env::new();
    let wrapper = env.dir.path().join("old-claude");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nFAKE_CLAUDE_NO_JSON_SCHEMA=1 exec '{}' \"$@\"\n",
            fake_claude().display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let features = probe_cli(&wrapper, RUN_LIMIT).await.unwrap();
    assert_eq!(features.structured_output, StructuredOutput::Unsupported);

    let missing = env.dir.path().join("no-such-claude");
    let e = probe_cli(&missing, RUN_LIMIT).await.unwrap_err();
    assert!(e.to_string().starts_with("cannot run "), "{e}");
}
