//! Driver behaviour that fake-claude cannot show, with tiny `sh` scripts as the binary.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cco_claude::{ClaudeSession, KillReason, OutcomeKind, SessionSpec, SessionUpdate};
use cco_testkit::{pid_alive, process_group_alive, wait_until, wait_until_async};

fn script(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("claude.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn spec(dir: &Path, body: &str) -> SessionSpec {
    let mut spec = SessionSpec::new(script(dir, body), "x", dir, dir.join("cfg"));
    spec.kill_grace = Duration::from_millis(300);
    spec.wall_timeout = Some(Duration::from_secs(20));
    spec
}

const INIT: &str = r#"{"type":"system","subtype":"init","session_id":"sess-1"}"#;

#[tokio::test]
async fn lingering_after_the_result_is_terminated_and_keeps_the_verdict() {
    let dir = cco_testkit::temp_dir();
    let mut spec = spec(
        dir.path(),
        &format!("echo '{INIT}'\necho '{{\"type\":\"result\",\"is_error\":false,\"result\":\"done\"}}'\nexec sleep 30"),
    );
    spec.linger_after_result = Some(Duration::from_millis(300));
    let (handle, _rx) = ClaudeSession::spawn(spec).unwrap();
    let pid = handle.pid();
    let out = handle.wait().await;
    assert_eq!(out.kind, OutcomeKind::Success, "{out:?}");
    assert_eq!(out.result_text.as_deref(), Some("done"));
    assert!(out.duration < Duration::from_secs(5));
    assert!(!process_group_alive(pid));
}

#[tokio::test]
async fn a_result_caused_by_our_sigterm_is_still_killed() {
    let dir = cco_testkit::temp_dir();
    let body = format!(
        "trap 'echo \"{{\\\"type\\\":\\\"result\\\",\\\"subtype\\\":\\\"error_during_execution\\\",\\\"is_error\\\":true}}\"; exit 143' TERM\n\
         echo '{INIT}'\nwhile :; do sleep 0.05; done"
    );
    let mut spec = spec(dir.path(), &body);
    spec.idle_timeout = Some(Duration::from_millis(400));
    let (handle, mut rx) = ClaudeSession::spawn(spec).unwrap();
    let out = handle.wait().await;
    assert_eq!(
        out.kind,
        OutcomeKind::Killed {
            reason: KillReason::IdleTimeout
        },
        "{out:?}"
    );
    assert_eq!(out.session_id.as_deref(), Some("sess-1"));
    let mut saw_result = false;
    while let Some(u) = rx.recv().await {
        if let SessionUpdate::Event(e) = u {
            saw_result |= matches!(*e, cco_claude::StreamEvent::Result(_));
        }
    }
    assert!(saw_result, "the script did print its result after SIGTERM");
}

#[tokio::test]
async fn exit_zero_without_result_is_a_crash_and_stderr_is_kept() {
    let dir = cco_testkit::temp_dir();
    let (handle, _rx) = ClaudeSession::spawn(spec(
        dir.path(),
        &format!("echo '{INIT}'\necho 'boom: something broke' >&2\nexit 0"),
    ))
    .unwrap();
    let out = handle.wait().await;
    let OutcomeKind::Crashed { message } = &out.kind else {
        panic!("{out:?}")
    };
    assert!(
        message.contains("exit code 0") && message.contains("boom"),
        "{message}"
    );
    assert_eq!(out.stderr_tail, "boom: something broke\n");
}

#[tokio::test]
async fn env_reaches_the_child() {
    let dir = cco_testkit::temp_dir();
    let mut spec = spec(
        dir.path(),
        "echo \"{\\\"type\\\":\\\"result\\\",\\\"is_error\\\":false,\\\"result\\\":\\\"$MY_VAR|${CLAUDECODE-unset}|$CLAUDE_CONFIG_DIR\\\"}\"",
    );
    spec.env.push(("MY_VAR".into(), "hello".into()));
    // The removal is checked on the built command in the unit tests; here the variable is
    // not in our environment, so this only shows that the child sees what we set.
    let cfg = spec.config_dir.clone();
    let out = ClaudeSession::spawn(spec).unwrap().0.wait().await;
    assert_eq!(
        out.result_text,
        Some(format!("hello|unset|{}", cfg.display()))
    );
}

/// The owner task dropped with its runtime (no chance to run): the guard SIGKILLs the group.
#[test]
fn runtime_shutdown_kills_the_group() {
    let dir = cco_testkit::temp_dir();
    let pid_file = dir.path().join("gc.pid");
    let body = format!(
        "echo '{INIT}'\nsleep 3600 &\necho $! > {}\nwait",
        pid_file.display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (handle, pid) = rt.block_on(async {
        let (handle, mut rx) = ClaudeSession::spawn(spec(dir.path(), &body)).unwrap();
        // Running: first event seen.
        while let Some(u) = rx.recv().await {
            if matches!(u, SessionUpdate::Event(_)) {
                break;
            }
        }
        let pid = handle.pid();
        (handle, pid)
    });
    wait_until(Duration::from_secs(5), "pid file", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
    });
    let gc: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_alive(gc));
    drop(rt); // drops the owner task
    wait_until(Duration::from_secs(5), "group gone", || {
        !process_group_alive(pid)
    });
    assert!(!pid_alive(gc));
    drop(handle);
}

#[tokio::test]
async fn many_sessions_in_parallel() {
    let dir = cco_testkit::temp_dir();
    let body = format!(
        "echo '{INIT}'\necho '{{\"type\":\"result\",\"is_error\":false,\"total_cost_usd\":0.5}}'"
    );
    let mut handles = Vec::new();
    for i in 0..20 {
        let sub = dir.path().join(format!("s{i}"));
        std::fs::create_dir_all(&sub).unwrap();
        handles.push(ClaudeSession::spawn(spec(&sub, &body)).unwrap().0);
    }
    let pids: Vec<u32> = handles.iter().map(|h| h.pid()).collect();
    for h in handles {
        let out = h.wait().await;
        assert_eq!(out.kind, OutcomeKind::Success);
        assert!((out.total_cost_usd - 0.5).abs() < 1e-9);
    }
    for pid in pids {
        wait_until_async(Duration::from_secs(5), "group gone", || async move {
            !process_group_alive(pid)
        })
        .await;
    }
}
