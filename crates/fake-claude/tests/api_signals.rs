//! API trouble as the real CLI shows it: retries of 429 / 529 / 5xx / connection errors (with
//! real waits), recoveries, `rate_limit_event`s (OAuth fixtures), and per-key behaviour.

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn retries_really_wait_their_delay() {
    let sb = Sandbox::new(Some(json!({"default": {"steps": [
        {"rate_limit": {"retries": 2, "retry_delay_ms": 400, "wait": true}}
    ]}})));
    let started = Instant::now();
    let run = sb.run("x", &[]);
    // Two retries announced with 400 ms each, and waited for: a lower bound, not a timing test.
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert_eq!(run.code, 1);
    let retries: Vec<_> = run
        .events
        .iter()
        .filter(|e| e["subtype"] == "api_retry")
        .collect();
    assert_eq!(retries.len(), 2);
    assert!(retries
        .iter()
        .all(|r| r["retry_delay_ms"] == 400 && r["error_status"] == 429));
    assert_eq!(retries[1]["attempt"], 2);
    assert_eq!(retries[1]["max_retries"], 2);
    assert_eq!(result_of(&run.events)["api_error_status"], 429);
}

#[test]
fn a_recovered_api_lets_the_turn_finish() {
    let sb = Sandbox::new(Some(json!({"default": {"steps": [
        {"overloaded": {"retries": 3, "retry_delay_ms": 1, "wait": true, "recover": true}},
        {"text": "back"}
    ], "result": "done"}})));
    let run = sb.run("x", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        shape(&run.events),
        [
            "system/init",
            "system/api_retry",
            "system/api_retry",
            "system/api_retry",
            "assistant/text",
            "assistant/text",
            "result/success"
        ]
    );
    let fx = fixture("overloaded_529_maxretries2.jsonl");
    assert_eq!(keys(&run.events[1]), keys(&fx[1]));
    assert_eq!(run.events[1]["error"], "overloaded");
    assert_eq!(result_of(&run.events)["result"], "done");
}

#[test]
fn server_and_connection_errors() {
    let sb = Sandbox::new(Some(json!({"default": {"steps": [
        {"api_error": {"status": 503, "retries": 1, "retry_delay_ms": 1}}
    ]}})));
    let run = sb.run("x", &[]);
    assert_eq!(run.code, 1);
    assert_eq!(run.events[1]["error_status"], 503);
    let res = result_of(&run.events);
    let fx = fixture("overloaded_529_maxretries2.jsonl");
    assert_eq!(keys(res), keys(fx.last().unwrap()));
    assert_eq!(res["api_error_status"], 503);
    assert_eq!(res["terminal_reason"], "api_error");

    let sb = Sandbox::new(Some(json!({"default": {"steps": [
        {"api_error": {"status": null, "retries": 2, "retry_delay_ms": 1}}
    ]}})));
    let run = sb.run("x", &[]);
    assert_eq!(run.code, 1);
    assert!(run.events[1]["error_status"].is_null());
    let res = result_of(&run.events);
    assert!(res["api_error_status"].is_null());
    assert_eq!(res["is_error"], true);
    assert!(res["result"].as_str().unwrap().contains("Connection error"));
}

#[test]
fn rate_limit_events_look_like_the_oauth_fixtures() {
    let sb = Sandbox::new(Some(json!({"default": {"steps": [
        {"rate_limit_event": {"status": "allowed", "utilization": 0.5}},
        {"text": "Working."},
        {"rate_limit_event": {"status": "allowed_warning", "utilization": 0.97,
                              "surpassed_threshold": 0.95, "seven_day_utilization": 0.52}},
        {"rate_limit_event": {"status": "rejected", "resets_in_secs": 600}},
        {"text": "never printed"}
    ]}})));
    let before = chrono::Utc::now().timestamp() as u64;
    let run = sb.run("x", &[]);
    assert_eq!(run.code, 1);
    let fx = fixture("rate_limit_event_oauth_warning_then_rejected.jsonl");
    let fx_warning = &fx[3]["rate_limit_info"];
    let fx_rejected = &fx[5]["rate_limit_info"];
    let events: Vec<_> = run
        .events
        .iter()
        .filter(|e| e["type"] == "rate_limit_event")
        .collect();
    assert_eq!(events.len(), 3);
    assert_eq!(keys(events[1]), keys(&fx[3]));
    assert_eq!(keys(&events[1]["rate_limit_info"]), keys(fx_warning));
    assert_eq!(keys(&events[2]["rate_limit_info"]), keys(fx_rejected));
    assert_eq!(events[1]["rate_limit_info"]["utilization"], 0.97);
    assert_eq!(
        events[1]["rate_limit_info"]["unifiedWindows"]["seven_day"]["utilization"],
        0.52
    );
    let resets = events[2]["rate_limit_info"]["resetsAt"].as_u64().unwrap();
    assert!((before + 600..=before + 660).contains(&resets));
    // Rejected: no retries, the usage-limit message and result of the fixture.
    assert!(!run.events.iter().any(|e| e["subtype"] == "api_retry"));
    let msg = &run.events[run.events.len() - 2];
    assert_eq!(keys(msg), keys(&fx[6]));
    assert!(msg["message"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with("You've hit your 5-hour limit · resets "));
    let res = result_of(&run.events);
    assert_eq!(keys(res), keys(fx.last().unwrap()));
    assert_eq!(res["api_error_status"], 429);
    assert!(!run
        .events
        .iter()
        .any(|e| e["message"]["content"][0]["text"] == "never printed"));
}

#[test]
fn keys_behave_differently() {
    let sb = Sandbox::new(Some(json!({"rules": [
        {"match": {"api_key": "sk-limited"}, "steps": [
            {"rate_limit": {"retries": 3, "retry_delay_ms": 30000, "wait": true}}]},
        {"match": {"api_key": "sk-good"}, "result": "fine"}
    ]})));
    // The limited key: its first retry announces 30 s; stop it there (as cco does).
    let mut args = vec!["-p", "x"];
    args.extend_from_slice(STREAM);
    let limited = {
        let mut c = sb.cmd(&args);
        c.env("ANTHROPIC_API_KEY", "sk-limited");
        Live::start(c)
    };
    limited.wait_for_line("\"retry_delay_ms\":30000");
    limited.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, events) = limited.exit();
    assert_eq!(code, 143);
    assert_eq!(
        events
            .iter()
            .filter(|e| e["subtype"] == "api_retry")
            .count(),
        1
    );

    let mut c = sb.cmd(&args);
    c.env("ANTHROPIC_API_KEY", "sk-good");
    let good = finish(c.output().unwrap());
    assert_eq!(good.code, 0);
    assert_eq!(result_of(&good.events)["result"], "fine");
}
