//! The dashboard from the command line: `cco start --ui` prints where it is served and
//! `cco status` shows it while the run goes on; `cco ui` serves a finished run from its
//! folder until SIGINT, with a token on a non-loopback address; every run writes its
//! timeline.svg.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::harness::*;

/// `GET path` on `addr` (`host:port`): status and body.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the dashboard");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

/// The `host:port` of the first `http://…/` after `prefix` in `text`.
pub fn url_after(text: &str, prefix: &str) -> Option<String> {
    let rest = &text[text.find(prefix)? + prefix.len()..];
    let rest = rest.trim_start().strip_prefix("http://")?;
    Some(rest[..rest.find('/')?].to_string())
}

#[test]
fn start_with_ui_prints_the_dashboard_status_shows_it_and_the_run_leaves_its_timeline() {
    let dir = cco_testkit::temp_dir();
    let marker = dir.path().join("go");
    let project = CliProject::new(
        json!({"workerCount": 1}),
        simple_script(
            &["t1"],
            Some(json!([
                {"bash": format!("while [ ! -f '{}' ]; do sleep 0.05; done", marker.display())},
                {"write": {"path": "t1.txt", "content": "t1\n"}},
                {"commit": "Add t1"}
            ])),
        ),
    );
    let mut child = project.cco(&["start", "--plain", "--ui"]).spawn().unwrap();
    let mut addr = None;
    cco_testkit::wait_until(Duration::from_secs(30), "the dashboard's address", || {
        assert!(child.try_wait().unwrap().is_none(), "{}", project.stderr());
        addr = url_after(&project.stderr(), "cco: dashboard at");
        addr.is_some()
    });
    let addr = addr.unwrap();
    assert!(
        addr.starts_with("127.0.0.1:"),
        "loopback by default: {addr}"
    );
    cco_testkit::wait_until(Duration::from_secs(30), "t1 on the board", || {
        let (status, body) = http_get(&addr, "/board");
        assert_eq!(status, 200, "{body}");
        body.contains("data-task=\"flat/t1\"")
    });
    let status_out = project.cco(&["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&status_out.stdout);
    assert!(
        text.contains(&format!("dashboard: http://{addr}/")),
        "cco status shows the dashboard:\n{text}"
    );
    std::fs::write(&marker, "go").unwrap();
    let out = wait_output(child, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", project.stderr());
    let run_dir = project.wait_for_run_dir();
    assert!(
        !run_dir.join(cco_web::RECORD_FILE_NAME).exists(),
        "the record goes with the dashboard"
    );
    let svg = std::fs::read_to_string(run_dir.join(cco_web::TIMELINE_FILE_NAME)).unwrap();
    assert!(svg.contains("data-task=\"flat/t1\""), "{svg}");
    let text =
        String::from_utf8_lossy(&project.cco(&["status"]).output().unwrap().stdout).into_owned();
    assert!(
        !text.contains("dashboard:"),
        "no dashboard once the run is over:\n{text}"
    );
}

#[test]
fn cco_ui_serves_a_finished_run_until_sigint_and_needs_a_token_off_loopback() {
    let project = CliProject::new(json!({"workerCount": 1}), simple_script(&["t1"], None));
    let out = project.cco(&["start", "--plain"]).output().unwrap();
    assert!(out.status.success(), "{}", project.stderr());
    // A run that does not exist.
    let missing = project.cco(&["ui", "--run", "run-nope"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2), "{}", project.stderr());

    let mut child = project.cco(&["ui", "--addr", "0.0.0.0:0"]).spawn().unwrap();
    let mut addr = None;
    cco_testkit::wait_until(Duration::from_secs(30), "the dashboard's address", || {
        assert!(child.try_wait().unwrap().is_none(), "{}", project.stderr());
        addr = url_after(&project.stderr(), "cco: dashboard at");
        addr.is_some() && project.stderr_contains("access token")
    });
    let stderr = project.stderr();
    assert!(
        stderr.contains("not loopback"),
        "the banner says a token is needed: {stderr}"
    );
    let port = addr.unwrap().rsplit(':').next().unwrap().to_string();
    let local = format!("127.0.0.1:{port}");
    let (status, _) = http_get(&local, "/");
    assert_eq!(status, 401);
    let token = stderr
        .split("access token ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap()
        .to_string();
    let (status, _) = http_get(&local, &format!("/?token={token}"));
    assert_eq!(status, 303, "the token logs in");
    signal(&child, nix::sys::signal::Signal::SIGINT);
    let out = wait_output(child, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", project.stderr());
}
