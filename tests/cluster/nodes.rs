//! Nodes alone: authentication (the cookie), refusals with clear messages.

use std::time::Duration;

use serde_json::json;

use crate::cluster::*;

#[test]
fn a_node_with_another_cookie_is_refused_with_a_clear_message() {
    let port = free_port();
    let (project, _cookie) = cluster_project(
        json!({"workerCount": 1}),
        simple_script(&["t1"], None),
        &[port],
        json!({"placementWaitMs": 60000}),
    );
    let other = cookie_file(
        project.dir.path(),
        "other-cookie",
        "another-cookie-987654321",
    );
    let _node = NodeProc::start(
        project.dir.path(),
        "n1",
        port,
        2,
        &other,
        &claude_of(&project),
    );
    let mut child = project.cco(&["start", "--plain"]).spawn().unwrap();
    let mut log = String::new();
    cco_testkit::wait_until(Duration::from_secs(60), "the refusal in the log", || {
        assert!(child.try_wait().unwrap().is_none(), "{}", project.stderr());
        let run = cco::Orchestrator::latest_run(&project.logs_dir());
        log = run
            .and_then(|r| std::fs::read_to_string(r.join("combined.log")).ok())
            .unwrap_or_default();
        log.contains("refused")
    });
    assert!(
        log.contains(&format!("node 127.0.0.1:{port} refused")) && log.contains("cookie"),
        "{log}"
    );
    // `cco status` shows the node refused (the journal follows the board shortly).
    cco_testkit::wait_until(Duration::from_secs(30), "status shows the refusal", || {
        let status = project.cco(&["status", "--json"]).output().unwrap();
        let snapshot: serde_json::Value =
            serde_json::from_slice(&status.stdout).unwrap_or_default();
        snapshot["nodes"][0]["state"] == "refused"
            && snapshot["nodes"][0]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("cookie"))
    });
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let out = wait_output(child, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("finished: stopped"), "{stdout}");
}

/// `cco node` on `listen` with `cookie` mode `mode`, expected to refuse to start: its stderr.
fn node_refusal(listen: &str, mode: u32) -> String {
    let sandbox = cco_testkit::temp_dir();
    let cookie = cookie_file(sandbox.path(), "cookie", COOKIE);
    std::fs::set_permissions(&cookie, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cco"))
        .args(["node", "--listen", listen, "--claude", "/bin/true", "--dir"])
        .arg(sandbox.path())
        .arg("--cookie-file")
        .arg(&cookie)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    err
}

#[test]
fn a_cookie_file_others_can_read_is_refused() {
    let err = node_refusal("127.0.0.1:1", 0o644);
    assert!(
        err.contains("mode 644") && err.contains("chmod 600"),
        "{err}"
    );
}

#[test]
fn a_node_refuses_plain_tcp_on_a_non_loopback_address() {
    let err = node_refusal("0.0.0.0:1", 0o600);
    assert!(
        err.contains("--tls-cert") && err.contains("--insecure-transport"),
        "{err}"
    );
}

#[test]
fn the_head_refuses_a_cookie_file_others_can_read_and_check_says_why() {
    let port = free_port();
    let (project, cookie) = cluster_project(
        json!({"workerCount": 1}),
        simple_script(&["t1"], None),
        &[port],
        json!({"localSlots": 1}),
    );
    let check = project.cco(&["check"]).output().unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("cluster"))
        .unwrap_or_else(|| panic!("no cluster row:\n{text}"));
    assert!(
        row.contains(&format!("1 node(s): 127.0.0.1:{port}"))
            && row.contains("1 local slot(s)")
            && row.contains("plain TCP on loopback")
            && !row.contains("PROBLEM"),
        "{row}"
    );
    std::fs::set_permissions(&cookie, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    let check = project.cco(&["check"]).output().unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        text.contains("PROBLEM") && text.contains("mode 640") && text.contains("chmod 600"),
        "{text}"
    );
    let out = project.cco(&["start", "--plain"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", project.stderr());
    let err = project.stderr();
    assert!(
        err.contains("cluster") && err.contains("mode 640") && err.contains("chmod 600"),
        "{err}"
    );
    // Refused before anything ran: no run folder.
    assert!(cco::Orchestrator::latest_run(&project.logs_dir()).is_none());
}

#[test]
fn a_node_with_stop_with_stdin_stops_when_its_stdin_closes_and_not_before() {
    let dir = cco_testkit::temp_dir();
    let cookie = cookie_file(dir.path(), "cookie", COOKIE);
    let node_dir = dir.path().join("node");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cco"))
        .args(["node", "--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--cookie-file")
        .arg(&cookie)
        .arg("--dir")
        .arg(&node_dir)
        .args(["--claude", "/bin/true", "--stop-with-stdin"])
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut ready).unwrap();
    assert!(ready.contains("listening on"), "{ready}");
    // Ready and holding on while the pipe is open: what the node read so far was no end.
    assert!(child.try_wait().unwrap().is_none());
    drop(stdin);
    let mut status = None;
    cco_testkit::wait_until(Duration::from_secs(30), "the node to exit", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.unwrap().success(), "{stderr}");
    assert!(
        stderr.contains("stdin closed") && stderr.contains("stopping"),
        "{stderr}"
    );
}
