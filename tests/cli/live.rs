//! The live console, `combined.log` and `cco logs`.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::harness::*;

fn combined_log(project: &CliProject) -> String {
    let run_dir = project.wait_for_run_dir();
    std::fs::read_to_string(run_dir.join("combined.log")).unwrap_or_default()
}

#[test]
fn combined_log_holds_every_agent_and_cco_logs_selects_one() {
    let project = CliProject::new(
        json!({"workerCount": 2}),
        simple_script(&["t1", "t2"], None),
    );
    let out = project.cco(&["start", "--plain"]).output().unwrap();
    assert!(out.status.success(), "stderr:\n{}", project.stderr());
    // The writer flushes event by event; the run's last line is there once cco has exited,
    // but poll with a deadline rather than assume it.
    cco_testkit::wait_until(
        Duration::from_secs(10),
        "the run's last line in combined.log",
        || combined_log(&project).contains("cco run finished: complete"),
    );
    let log = combined_log(&project);
    // Flat mode: no agent is called director.
    assert!(
        !log.lines().any(|l| l.split(' ').nth(1) == Some("director")),
        "{log}"
    );
    for agent in ["coordinator", "worker-1", "worker-2"] {
        assert!(
            log.lines().any(|l| l.split(' ').nth(1) == Some(agent)),
            "{agent} missing:\n{log}"
        );
    }
    for needle in [
        "cco merged ",
        "worker-1 tool: ",
        "worker-1 assigned task ",
        "coordinator state: ",
    ] {
        assert!(log.contains(needle), "{needle:?} missing:\n{log}");
    }

    let logs = project.cco(&["logs", "worker-1"]).output().unwrap();
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(logs.status.success(), "stderr:\n{}", project.stderr());
    assert!(text.lines().count() >= 3, "{text}");
    for line in text.lines() {
        assert_eq!(
            line.split(' ').nth(1),
            Some("worker-1"),
            "a line of another agent: {line}\n{text}"
        );
    }
    assert!(text.contains("tool: "), "{text}");

    let nobody = project.cco(&["logs", "nobody"]).output().unwrap();
    let stderr = project.stderr();
    assert_eq!(nobody.status.code(), Some(1), "{stderr}");
    assert!(nobody.stdout.is_empty());
    assert!(
        stderr.contains("nobody") && stderr.contains("agents seen") && stderr.contains("worker-2"),
        "{stderr}"
    );
}

/// `cco logs -f` follows a running run (whole lines only) and ends with it.
#[test]
fn cco_logs_follow_prints_lines_added_later_and_ends_with_the_run() {
    let project = CliProject::new(
        json!({"workerCount": 1}),
        simple_script(
            &["h1"],
            Some(json!([{"text": "started h1"}, {"hang": true}])),
        ),
    );
    let mut run = project.cco(&["start", "--plain"]).spawn().unwrap();
    let run_dir = project.wait_for_run_dir();
    project.wait_for_worker_pids(&mut run, 1);
    cco_testkit::wait_until(Duration::from_secs(30), "worker-1 in combined.log", || {
        std::fs::read_to_string(run_dir.join("combined.log"))
            .is_ok_and(|log| log.contains(" worker-1 "))
    });
    let mut child = project.cco(&["logs", "worker-1", "-f"]).spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
        })
    };
    // Appended in two writes: a half line must not be printed before it is complete.
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(run_dir.join("combined.log"))
        .unwrap();
    file.write_all(b"2099-01-01T00:00:00.000Z worker-2 not this one\n2099-01-01T00:00:00.000Z worker-1 appended ").unwrap();
    file.flush().unwrap();
    file.write_all(b"later\n").unwrap();
    cco_testkit::wait_until(Duration::from_secs(20), "the appended line", || {
        seen.lock().unwrap().contains("worker-1 appended later")
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "-f keeps following a running run"
    );
    // The run ends: `cco logs -f` ends too, by itself.
    signal(&run, nix::sys::signal::Signal::SIGTERM);
    assert_eq!(
        wait_output(run, Duration::from_secs(30)).status.code(),
        Some(143),
        "stopped by SIGTERM"
    );
    let out = wait_output(child, Duration::from_secs(30));
    assert!(out.status.success());
    reader.join().unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(seen.contains("started h1"), "{seen}");
    assert!(!seen.contains("not this one"), "{seen}");
}

/// On a finished run, `cco logs -f` prints the log and exits.
#[test]
fn cco_logs_follow_on_a_finished_run_prints_and_exits() {
    let project = CliProject::new(json!({"workerCount": 1}), simple_script(&["t1"], None));
    let out = project.cco(&["start", "--plain"]).output().unwrap();
    assert!(out.status.success(), "stderr:\n{}", project.stderr());
    let child = project.cco(&["logs", "worker-1", "-f"]).spawn().unwrap();
    let out = wait_output(child, Duration::from_secs(30));
    let (stdout, _) = texts(&out);
    assert!(out.status.success(), "{}", project.stderr());
    assert!(
        stdout.lines().count() > 1 && stdout.lines().all(|l| l.contains(" worker-1 ")),
        "{stdout}"
    );
}

/// `cco start` on a terminal draws the live block and gives the cursor back at the end.
#[test]
fn on_a_terminal_start_draws_the_live_view_and_restores_the_cursor() {
    let project = CliProject::new(
        json!({"workerCount": 2}),
        simple_script(&["t1", "t2"], None),
    );
    let pty = nix::pty::openpty(
        Some(&nix::pty::Winsize {
            ws_row: 40,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }),
        None,
    )
    .unwrap();
    let slave: OwnedFd = pty.slave;
    let mut cmd = project.cco(&["start"]);
    // stderr on the terminal too: while the block is drawn it goes through a pipe, above it.
    cmd.stderr(Stdio::from(slave.try_clone().unwrap()));
    cmd.stdout(Stdio::from(slave));
    cmd.env("TERM", "xterm-256color");
    let child = cmd.spawn().unwrap();
    drop(cmd); // closes our copy of the slave side, so reads end when cco exits
    let mut master = std::fs::File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break, // EIO once the slave side is closed
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    });
    let status = wait_output(child, Duration::from_secs(60)).status;
    let screen = reader.join().unwrap();
    assert!(status.success(), "screen:\n{screen}");
    assert!(
        screen.contains("\x1b[?25l"),
        "the cursor is hidden while drawing"
    );
    assert!(
        screen.contains("\x1b[?25h"),
        "the cursor is shown again at the end:\n{screen:?}"
    );
    let shown = screen.rfind("\x1b[?25h").unwrap();
    assert!(screen.rfind("\x1b[?25l").unwrap() < shown);
    for needle in [
        "logs in",
        "worker-1",
        "worker-2",
        "coordinator",
        "last tool",
        "tasks done 2 failed 0",
        "merged",
        "run finished: complete",
    ] {
        assert!(screen.contains(needle), "{needle:?} missing:\n{screen}");
    }
    // Redrawn in place: cursor moves up over the previous block.
    assert!(
        screen.contains("\x1b[") && screen.contains('F'),
        "no cursor movement:\n{screen:?}"
    );
}
