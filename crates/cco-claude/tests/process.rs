//! The driver against the `fake-claude` test double (docs/fake-claude.md).
//! No fixed sleeps: every wait polls with a deadline.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cco_claude::{
    ClaudeSession, DriverError, KillReason, OutcomeKind, SessionSpec, SessionUpdate, StreamEvent,
};
use cco_testkit::{fake_claude, pid_alive, process_group_alive, wait_until_async};
use common::*;
use serde_json::json;

#[tokio::test]
async fn success_captures_session_cost_and_result() {
    let env = Env::new();
    let spec = env.spec(
        rule(
            json!({ "steps": [{"text": "working"}, {"write": {"path": "a.txt", "content": "hi"}}],
                     "result": "done in {{session_id}}", "cost_usd": 0.25 }),
        ),
        "hello",
    );
    let (handle, updates, out) = run(spec).await;
    assert_eq!(out.kind, OutcomeKind::Success, "{out:?}");
    let id = out.session_id.clone().expect("session id");
    assert_eq!(handle.session_id().as_deref(), Some(id.as_str()));
    assert_eq!(
        out.result_text.as_deref(),
        Some(format!("done in {id}").as_str())
    );
    assert!((out.total_cost_usd - 0.25).abs() < 1e-9);
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.malformed_lines, 0);
    assert_eq!(out.last_tool.as_deref(), Some("Write"));
    let events = updates
        .iter()
        .filter(|u| matches!(u, SessionUpdate::Event(_)))
        .count() as u64;
    assert_eq!(out.events, events);
    assert!(updates
        .iter()
        .any(|u| matches!(u, SessionUpdate::Event(e) if matches!(**e, StreamEvent::Result(_)))));
    assert_eq!(
        std::fs::read_to_string(env.cwd().join("a.txt")).unwrap(),
        "hi"
    );
    assert!(env.config_dir().is_dir(), "config dir created");
    assert_group_gone(handle.pid()).await;
    // wait() after the end still returns the outcome.
    assert_eq!(handle.wait().await, out);
}

#[tokio::test]
async fn resume_keeps_the_session_id() {
    let env = Env::new();
    let script = rule(json!({ "result": "history {{history_len}}" }));
    let (_, _, first) = run(env.spec(script.clone(), "first")).await;
    assert_eq!(first.kind, OutcomeKind::Success);
    let id = first.session_id.clone().unwrap();

    let mut spec = env.spec(script, "second");
    spec.resume_session_id = Some(id.clone());
    let (_, _, second) = run(spec).await;
    assert_eq!(second.kind, OutcomeKind::Success, "{second:?}");
    assert_eq!(second.session_id.as_deref(), Some(id.as_str()));
    assert_ne!(second.result_text.as_deref(), Some("history 0"));
}

#[tokio::test]
async fn new_session_id_is_used() {
    let env = Env::new();
    let mut spec = env.spec(rule(json!({})), "x");
    spec.new_session_id = Some("0f0f0f0f-1111-4222-8333-444444444444".into());
    let (_, _, out) = run(spec).await;
    assert_eq!(
        out.session_id.as_deref(),
        Some("0f0f0f0f-1111-4222-8333-444444444444")
    );
}

#[tokio::test]
async fn resume_of_unknown_id_is_resume_not_found() {
    let env = Env::new();
    let mut spec = env.spec(rule(json!({})), "again");
    spec.resume_session_id = Some("11111111-2222-4333-8444-555555555555".into());
    let (_, updates, out) = run(spec).await;
    assert_eq!(out.kind, OutcomeKind::ResumeNotFound, "{out:?}");
    assert_eq!(out.exit_code, Some(1));
    assert!(out.stderr_tail.contains("No conversation found"));
    assert!(updates
        .iter()
        .any(|u| matches!(u, SessionUpdate::Stderr(l) if l.contains("No conversation found"))));
}

#[tokio::test]
async fn rate_limit_gives_resets_at() {
    let env = Env::new();
    let before = chrono::Utc::now();
    let (_, _, out) = run(env.spec(
        rule(json!({ "steps": [{"rate_limit": {"resets_in_secs": 120, "retries": 1}}] })),
        "x",
    ))
    .await;
    let OutcomeKind::RateLimited {
        resets_at: Some(at),
    } = out.kind
    else {
        panic!("{out:?}")
    };
    let secs = (at - before).num_seconds();
    assert!((110..=130).contains(&secs), "resets in {secs} s");
    assert_eq!(out.exit_code, Some(1));
}

#[tokio::test]
async fn overloaded_is_api_error() {
    let env = Env::new();
    let (_, _, out) = run(env.spec(
        rule(json!({ "steps": [{"overloaded": {"retries": 1}}] })),
        "x",
    ))
    .await;
    assert!(
        matches!(
            out.kind,
            OutcomeKind::ApiError {
                status: Some(529),
                ..
            }
        ),
        "{out:?}"
    );
    assert!(out.kind.is_retryable());
}

#[tokio::test]
async fn max_turns_step() {
    let env = Env::new();
    let (_, _, out) = run(env.spec(
        rule(json!({ "steps": [{"text": "a"}, {"max_turns": true}] })),
        "x",
    ))
    .await;
    assert_eq!(out.kind, OutcomeKind::MaxTurns, "{out:?}");
}

#[tokio::test]
async fn crash_is_crashed_with_exit_code() {
    let env = Env::new();
    let (handle, _, out) = run(env.spec(
        rule(json!({ "steps": [{"text": "working"}, {"crash": {"exit_code": 3}}] })),
        "x",
    ))
    .await;
    let OutcomeKind::Crashed { message } = &out.kind else {
        panic!("{out:?}")
    };
    assert!(message.contains("exit code 3"), "{message}");
    assert_eq!(out.exit_code, Some(3));
    assert!(out.kind.is_retryable());
    assert!(out.session_id.is_some());
    assert_group_gone(handle.pid()).await;
}

#[tokio::test]
async fn wall_timeout_kills_the_group() {
    let env = Env::new();
    let mut spec = env.spec(
        rule(json!({ "steps": [{"text": "about to hang"}, {"hang": true}] })),
        "x",
    );
    spec.wall_timeout = Some(Duration::from_secs(1));
    let (handle, _, out) = run(spec).await;
    assert_eq!(
        out.kind,
        OutcomeKind::Killed {
            reason: KillReason::WallTimeout
        },
        "{out:?}"
    );
    assert!(
        out.duration >= Duration::from_secs(1) && out.duration < Duration::from_secs(5),
        "{:?}",
        out.duration
    );
    assert!(!process_group_alive(handle.pid()));
}

#[tokio::test]
async fn idle_timeout_kills_the_group() {
    let env = Env::new();
    let mut spec = env.spec(
        rule(json!({ "steps": [{"text": "a"}, {"sleep_ms": 100}, {"text": "b"}, {"hang": true}] })),
        "x",
    );
    spec.idle_timeout = Some(Duration::from_millis(600));
    let (handle, updates, out) = run(spec).await;
    assert_eq!(
        out.kind,
        OutcomeKind::Killed {
            reason: KillReason::IdleTimeout
        },
        "{out:?}"
    );
    assert!(
        updates
            .iter()
            .filter(|u| matches!(u, SessionUpdate::Event(_)))
            .count()
            >= 3
    );
    assert!(!process_group_alive(handle.pid()));
}

#[tokio::test]
async fn ignored_sigterm_gets_sigkill_after_grace() {
    let env = Env::new();
    let mut spec = env.spec(
        rule(json!({ "steps": [{"ignore_sigterm": true}, {"text": "stubborn"}, {"hang": true}] })),
        "x",
    );
    spec.wall_timeout = Some(Duration::from_millis(500));
    spec.kill_grace = Duration::from_millis(300);
    let (handle, _, out) = run(spec).await;
    assert_eq!(
        out.kind,
        OutcomeKind::Killed {
            reason: KillReason::WallTimeout
        },
        "{out:?}"
    );
    assert_eq!(out.signal, Some(9), "ended by SIGKILL: {out:?}");
    assert!(
        out.duration >= Duration::from_millis(800),
        "{:?}",
        out.duration
    );
    assert!(!process_group_alive(handle.pid()));
}

#[tokio::test]
async fn grandchild_does_not_survive() {
    let env = Env::new();
    let pid_file = env.dir.path().join("grandchild.pid");
    let spec = env.spec(
        rule(json!({ "steps": [{"spawn_grandchild": {"pid_file": pid_file.to_string_lossy()}}], "result": "bye" })),
        "x",
    );
    let (handle, _, out) = run(spec).await;
    assert_eq!(out.kind, OutcomeKind::Success, "{out:?}");
    let gc: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until_async(Duration::from_secs(5), "grandchild dead", || async move {
        !pid_alive(gc)
    })
    .await;
    assert!(!process_group_alive(handle.pid()));
}

#[tokio::test]
async fn dropping_the_handle_kills_the_group() {
    let env = Env::new();
    let (handle, mut rx) = ClaudeSession::spawn(env.spec(
        rule(json!({ "steps": [{"text": "hi"}, {"hang": true}] })),
        "x",
    ))
    .unwrap();
    let pid = handle.pid();
    // Wait until it is really running (first event seen).
    loop {
        match tokio::time::timeout(RUN_LIMIT, rx.recv()).await.unwrap() {
            Some(SessionUpdate::Event(_)) => break,
            Some(_) => {}
            None => panic!("ended early"),
        }
    }
    assert!(process_group_alive(pid));
    drop(handle);
    assert_group_gone(pid).await;
    let mut last = None;
    while let Some(u) = rx.recv().await {
        last = Some(u);
    }
    let Some(SessionUpdate::Finished(out)) = last else {
        panic!()
    };
    assert_eq!(
        out.kind,
        OutcomeKind::Killed {
            reason: KillReason::Requested
        }
    );
    assert!(!out.kind.is_retryable());
}

#[tokio::test]
async fn terminate_and_kill_requests() {
    let env = Env::new();
    let script = rule(json!({ "steps": [{"text": "hi"}, {"hang": true}] }));

    let (handle, rx) = ClaudeSession::spawn(env.spec(script.clone(), "x")).unwrap();
    wait_until_async(RUN_LIMIT, "session id", || {
        let ok = handle.session_id().is_some();
        async move { ok }
    })
    .await;
    handle.terminate();
    handle.terminate(); // idempotent
    let pid = handle.pid();
    let out = handle.wait().await;
    assert_eq!(
        out.kind,
        OutcomeKind::Killed {
            reason: KillReason::Requested
        }
    );
    assert_eq!(
        out.exit_code,
        Some(143),
        "fake-claude exits 143 on SIGTERM: {out:?}"
    );
    assert!(!process_group_alive(pid));
    let (_, finished) = collect(rx).await;
    assert_eq!(finished, out);

    let (handle, _rx) = ClaudeSession::spawn(env.spec(script, "x")).unwrap();
    handle.kill();
    let pid = handle.pid();
    let out = handle.wait().await;
    assert_eq!(
        out.kind,
        OutcomeKind::Killed {
            reason: KillReason::Requested
        }
    );
    assert_eq!(out.signal, Some(9));
    assert!(!process_group_alive(pid));
}

#[tokio::test]
async fn dropped_receiver_does_not_stop_the_owner() {
    let env = Env::new();
    let mut spec = env.spec(
        rule(json!({ "steps": [{"text": "a"}, {"hang": true}] })),
        "x",
    );
    spec.wall_timeout = Some(Duration::from_millis(500));
    let (handle, rx) = ClaudeSession::spawn(spec).unwrap();
    drop(rx);
    let pid = handle.pid();
    let out = handle.wait().await;
    assert_eq!(
        out.kind,
        OutcomeKind::Killed {
            reason: KillReason::WallTimeout
        }
    );
    assert!(!process_group_alive(pid));

    let (handle, rx) = ClaudeSession::spawn(env.spec(rule(json!({})), "x")).unwrap();
    drop(rx);
    assert_eq!(handle.wait().await.kind, OutcomeKind::Success);
}

#[tokio::test]
async fn malformed_lines_are_reported_and_skipped() {
    let env = Env::new();
    let mut spec = env.spec(
        rule(json!({ "steps": [
            {"raw": "this is not json"},
            {"text": "between"},
            {"raw": "{\"type\":\"assistant\",\"message\":"},
            {"raw": "{\"no_type\":true}"},
            {"big_line": 3_000_000},
            {"text": "after the big line"}
        ], "result": "fine" })),
        "x",
    );
    spec.max_line_bytes = 1024 * 1024;
    let (_, updates, out) = run(spec).await;
    assert_eq!(out.kind, OutcomeKind::Success, "{out:?}");
    assert_eq!(out.result_text.as_deref(), Some("fine"));
    assert_eq!(out.malformed_lines, 4, "{updates:#?}");
    let malformed: Vec<_> = updates
        .iter()
        .filter_map(|u| match u {
            SessionUpdate::Malformed {
                line_no,
                error,
                excerpt,
                ..
            } => Some((*line_no, error.clone(), excerpt.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(malformed.len(), 4);
    assert!(malformed.iter().all(|(_, _, ex)| ex.chars().count() <= 200));
    // The dropped big line leaves a warning saying how long it was.
    let big = updates
        .iter()
        .filter_map(SessionUpdate::warning)
        .nth(3)
        .unwrap();
    assert!(
        big.contains(
            "line of 3000000 bytes (2.9 MiB) is longer than the limit of 1048576 bytes (1.0 MiB)"
        ),
        "{big}"
    );
    assert!(
        big.starts_with(&format!("stream line {} skipped: ", malformed[3].0)),
        "{big}"
    );
    assert!(
        malformed.windows(2).all(|w| w[0].0 < w[1].0),
        "line numbers increase"
    );
    assert!(updates.iter().any(|u| matches!(u, SessionUpdate::Event(e)
        if matches!(&**e, StreamEvent::Assistant(a) if a.message.content.iter().any(|b| matches!(b, cco_claude::ContentBlock::Text { text } if text == "after the big line"))))));
}

#[tokio::test]
async fn transcript_is_written_redacted() {
    let env = Env::new();
    let transcript = env.dir.path().join("logs").join("t.jsonl");
    std::fs::create_dir_all(transcript.parent().unwrap()).unwrap();
    let mut spec = env.spec(
        rule(json!({ "steps": [{"text": "the key is sk-SECRET"}], "result": "ok" })),
        "x",
    );
    spec.transcript = Some(transcript.clone());
    spec.redact = Some(Arc::new(|l: &str| l.replace("sk-SECRET", "[REDACTED]")));
    let (_, _, out) = run(spec).await;
    assert_eq!(out.kind, OutcomeKind::Success);
    let text = std::fs::read_to_string(&transcript).unwrap();
    assert!(!text.contains("sk-SECRET"));
    assert!(text.contains("[REDACTED]"));
    assert_eq!(text.lines().count() as u64, out.events);
    assert!(text.lines().all(|l| cco_claude::parse_line(l).is_ok()));
}

#[tokio::test]
async fn spawn_errors_name_the_problem() {
    let env = Env::new();
    let mut spec = SessionSpec::new(
        "/nonexistent/claude-binary",
        "x",
        env.cwd(),
        env.config_dir(),
    );
    spec.label = "t".into();
    let err = ClaudeSession::spawn(spec.clone()).unwrap_err();
    assert!(
        matches!(&err, DriverError::Spawn { binary, .. } if binary == std::path::Path::new("/nonexistent/claude-binary"))
    );
    assert!(
        err.to_string().contains("/nonexistent/claude-binary"),
        "{err}"
    );

    let mut bad_cwd = spec.clone();
    bad_cwd.binary = fake_claude().to_path_buf();
    bad_cwd.cwd = env.dir.path().join("missing");
    assert!(matches!(
        ClaudeSession::spawn(bad_cwd).unwrap_err(),
        DriverError::Cwd { .. }
    ));

    let file = env.dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let mut bad_cfg = spec;
    bad_cfg.binary = fake_claude().to_path_buf();
    bad_cfg.config_dir = file.join("sub");
    assert!(matches!(
        ClaudeSession::spawn(bad_cfg).unwrap_err(),
        DriverError::ConfigDir { .. }
    ));
}

#[test]
fn spawn_outside_a_runtime_is_an_error() {
    let env = Env::new();
    let spec = SessionSpec::new(fake_claude(), "x", env.cwd(), env.config_dir());
    assert!(matches!(
        ClaudeSession::spawn(spec),
        Err(DriverError::NoRuntime)
    ));
}

#[tokio::test]
async fn bypass_permissions_runs_as_root_too() {
    // As root the driver must add IS_SANDBOX=1, else the CLI (and fake-claude) exits 1.
    let env = Env::new();
    let mut spec = env.spec(rule(json!({})), "x");
    spec.permission_mode = Some("bypassPermissions".into());
    let (_, _, out) = run(spec).await;
    assert_eq!(out.kind, OutcomeKind::Success, "{out:?}");
}

/// A prompt longer than the kernel takes in one argument (128 KiB on Linux: a long
/// PROJECT_DIRECTION.md in a planner's prompt) goes to the CLI's stdin, whole, and the turn
/// runs; a short one stays on the command line with stdin closed.
#[tokio::test]
async fn a_prompt_too_long_for_the_command_line_goes_to_stdin() {
    let env = Env::new();
    let long = format!(
        "{}\nEND-OF-A-LONG-PROMPT",
        "direction line\n".repeat(20_000)
    );
    assert!(long.len() > 250 * 1024);
    let script = json!({
        "rules": [{"match": {"prompt_contains": "END-OF-A-LONG-PROMPT"}, "result": "read it all"}],
        "default": {"result": "the end was not there"}
    });
    let spec = env.spec(script.clone(), &long);
    assert!(spec.prompt_on_stdin());
    assert_eq!(spec.command_args()[0], "-p");
    assert!(spec.command_args().iter().all(|a| a.len() < 1024));
    let (_, _, out) = run(spec).await;
    assert_eq!(out.kind, OutcomeKind::Success, "{out:?}");
    assert_eq!(out.result_text.as_deref(), Some("read it all"));

    let short = env.spec(script, "short END-OF-A-LONG-PROMPT");
    assert!(!short.prompt_on_stdin());
    assert_eq!(short.command_args()[1], "short END-OF-A-LONG-PROMPT");
    let (_, _, out) = run(short).await;
    assert_eq!(out.result_text.as_deref(), Some("read it all"));
}
