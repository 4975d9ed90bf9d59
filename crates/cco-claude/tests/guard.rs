//! The guard (`cco_claude::guard`): claude stops within seconds when the process that spawned
//! it dies (however it died), exit codes and signals pass through unchanged, the driver's own
//! stop still works, and spawning from a thread that ends changes nothing.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use cco_claude::{GuardSpec, KillReason, OrphanPolicy, OutcomeKind, SessionSpec};
use cco_testkit::{fake_claude, pid_alive, wait_until, wait_until_async};
use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

const GUARD: &str = env!("CARGO_BIN_EXE_cco-claude-guard");

fn guarded(mut spec: SessionSpec, policy: OrphanPolicy) -> SessionSpec {
    spec.guard = Some(GuardSpec {
        program: GUARD.into(),
        args: vec![],
        policy,
    });
    spec
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[tokio::test]
async fn exit_codes_and_signals_pass_through() {
    let env = Env::new();
    let spec = guarded(
        env.spec(rule(json!({"steps": [{"crash": {"exit_code": 3}}]})), "x"),
        OrphanPolicy::Stop,
    );
    let (_, _, out) = run(spec).await;
    assert_eq!((out.exit_code, out.signal), (Some(3), None));
    assert!(
        matches!(out.kind, OutcomeKind::Crashed { .. }),
        "{}",
        out.kind
    );

    let spec = guarded(
        env.spec(rule(json!({"result": "fine"})), "x"),
        OrphanPolicy::Stop,
    );
    let (_, _, out) = run(spec).await;
    assert_eq!(out.kind, OutcomeKind::Success);
    assert_eq!(out.result_text.as_deref(), Some("fine"));
    assert_eq!(out.exit_code, Some(0));

    // Claude killed by a signal: the driver sees that signal, as without a guard.
    let spec = guarded(
        env.spec(
            rule(json!({"steps": [{"bash": "kill -USR1 $PPID; sleep 5"}]})),
            "x",
        ),
        OrphanPolicy::Stop,
    );
    let (_, _, out) = run(spec).await;
    assert_eq!(
        (out.exit_code, out.signal),
        (None, Some(10)),
        "{}",
        out.kind
    );
    assert!(
        out.kind
            .to_string()
            .contains("killed by signal 10 (SIGUSR1)"),
        "{}",
        out.kind
    );
}

#[tokio::test]
async fn the_drivers_own_stop_still_works() {
    let env = Env::new();
    let spec = guarded(
        env.spec(
            rule(json!({"steps": [{"text": "ready"}, {"hang": true}]})),
            "x",
        ),
        OrphanPolicy::Stop,
    );
    let (handle, mut rx) = cco_claude::ClaudeSession::spawn(spec).unwrap();
    let pgid = handle.pid();
    while let Some(u) = rx.recv().await {
        if matches!(&u, cco_claude::SessionUpdate::Event(e) if matches!(**e, cco_claude::StreamEvent::Assistant(_)))
        {
            break;
        }
    }
    handle.terminate();
    let mut last = None;
    while let Some(u) = rx.recv().await {
        last = Some(u);
    }
    let Some(cco_claude::SessionUpdate::Finished(out)) = last else {
        panic!()
    };
    assert_eq!(
        out.kind,
        OutcomeKind::Killed {
            reason: KillReason::Requested
        }
    );
    // fake-claude exits 143 on SIGTERM; the guard passes it on.
    assert_eq!(out.exit_code, Some(143));
    assert_group_gone(pgid).await;
}

#[tokio::test]
async fn a_missing_claude_still_fails_at_spawn() {
    let env = Env::new();
    let mut spec = guarded(env.spec(rule(json!({})), "x"), OrphanPolicy::Stop);
    spec.binary = env.dir.path().join("no-such-claude");
    let err = cco_claude::ClaudeSession::spawn(spec).unwrap_err();
    assert!(
        matches!(err, cco_claude::DriverError::Spawn { .. }),
        "{err}"
    );
}

/// Spawning from a thread that then ends (tokio may spawn from any thread) must not stop
/// claude: the guard watches the pipe, not the spawning thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawning_from_a_short_lived_thread_changes_nothing() {
    let env = Env::new();
    let spec = guarded(
        env.spec(
            rule(json!({"steps": [{"bash": "touch started; while [ ! -e go ]; do sleep 0.05; done"}], "result": "survived"})),
            "x",
        ),
        OrphanPolicy::Stop,
    );
    let runtime = tokio::runtime::Handle::current();
    let (handle, rx) = std::thread::spawn(move || {
        let _enter = runtime.enter();
        cco_claude::ClaudeSession::spawn(spec).unwrap()
    })
    .join()
    .unwrap();
    let cwd = env.cwd();
    wait_until_async(RUN_LIMIT, "claude started its tool", || {
        let f = cwd.join("started");
        async move { f.exists() }
    })
    .await;
    std::fs::write(env.cwd().join("go"), "").unwrap();
    let (_, out) = collect(rx).await;
    drop(handle);
    assert_eq!(out.kind, OutcomeKind::Success, "{}", out.kind);
    assert_eq!(out.result_text.as_deref(), Some("survived"));
}

/// A stand-in for cco: `sh` holds the only write end of the guard's pipe and runs the guard in
/// the background. Returns (the shell, the work dir).
fn start_parent(env: &Env, policy: &str) -> std::process::Child {
    let script = cco_testkit::write_script(
        env.dir.path(),
        &rule(json!({"steps": [
            {"spawn_grandchild": {"pid_file": "grandchild.pid"}},
            {"bash": "echo $PPID > claude.pid.tmp && mv claude.pid.tmp claude.pid; sleep 600"}
        ]})),
    );
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let (r, w) = (read.as_raw_fd(), write.as_raw_fd());
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(
            r#""$GUARD" --policy "$POLICY" --grace-ms 500 --parent-fd 3 -- "$CLAUDE" -p x --output-format stream-json --verbose 4>&- >out.jsonl 2>err.txt &
echo $! > guard.pid
exec 3<&-
wait"#,
        )
        .current_dir(env.cwd())
        .env("GUARD", GUARD)
        .env("POLICY", policy)
        .env("CLAUDE", fake_claude())
        .env("CLAUDE_CONFIG_DIR", env.config_dir())
        .env("FAKE_CLAUDE_SCRIPT", &script)
        .env_remove("CLAUDECODE")
        .stdin(Stdio::null());
    // SAFETY: fcntl and dup2 are async-signal-safe; the fds are open in the forked child.
    // Through close-on-exec copies above 10 first, so `r`/`w` being 3 or 4 cannot clobber.
    unsafe {
        sh.pre_exec(move || {
            use nix::libc::{dup2, fcntl, F_DUPFD_CLOEXEC};
            let (r2, w2) = (fcntl(r, F_DUPFD_CLOEXEC, 10), fcntl(w, F_DUPFD_CLOEXEC, 10));
            if r2 == -1 || w2 == -1 || dup2(r2, 3) == -1 || dup2(w2, 4) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = sh.spawn().unwrap();
    drop((read, write));
    child
}

#[test]
fn killing_the_parent_stops_claude_and_its_group() {
    let env = Env::new();
    let mut parent = start_parent(&env, "stop");
    let (claude_pid, grandchild_pid) = (
        env.cwd().join("claude.pid"),
        env.cwd().join("grandchild.pid"),
    );
    wait_until(RUN_LIMIT, "claude and its grandchild run", || {
        read_pid(&claude_pid).is_some() && read_pid(&grandchild_pid).is_some()
    });
    let claude = read_pid(&claude_pid).unwrap();
    let grandchild = read_pid(&grandchild_pid).unwrap();
    let guard = read_pid(&env.cwd().join("guard.pid")).unwrap();
    assert!(pid_alive(claude) && pid_alive(guard));

    parent.kill().unwrap(); // SIGKILL: no chance to clean up
    parent.wait().unwrap();
    wait_until(
        Duration::from_secs(5),
        "claude stops after its parent died",
        || !pid_alive(claude),
    );
    wait_until(Duration::from_secs(5), "the whole group is gone", || {
        !pid_alive(grandchild) && !pid_alive(guard)
    });
}

#[test]
fn policy_continue_lets_claude_run_on() {
    let env = Env::new();
    let mut parent = start_parent(&env, "continue");
    let claude_pid = env.cwd().join("claude.pid");
    wait_until(RUN_LIMIT, "claude runs", || {
        let err = std::fs::read_to_string(env.cwd().join("err.txt")).unwrap_or_default();
        assert!(err.is_empty(), "stderr: {err}");
        read_pid(&claude_pid).is_some()
    });
    let claude = read_pid(&claude_pid).unwrap();
    let grandchild = read_pid(&env.cwd().join("grandchild.pid"));
    parent.kill().unwrap();
    parent.wait().unwrap();
    // Give a stop every chance to happen: the guard's grace is 500 ms.
    let guard = read_pid(&env.cwd().join("guard.pid")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        assert!(
            pid_alive(claude),
            "claude was stopped under policy continue"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Clean up: the guard's group (guard, claude, grandchild).
    let _ = nix::sys::signal::killpg(Pid::from_raw(guard as i32), Signal::SIGKILL);
    let _ = kill(Pid::from_raw(claude as i32), Signal::SIGKILL);
    if let Some(g) = grandchild {
        let _ = kill(Pid::from_raw(g as i32), Signal::SIGKILL);
    }
    wait_until(Duration::from_secs(5), "cleaned up", || !pid_alive(claude));
}
