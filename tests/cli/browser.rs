//! `cco demo --ui` runs the demo, writes its timeline.svg and keeps its dashboard open until
//! SIGINT, printing the URL; a real browser on it: headless Chromium renders the board and the
//! timeline (screenshots under the test's temp dir) and its DOM must show the run's tasks and
//! workers.
//!
//! Chromium is needed: `.ci/run` installs Debian's `chromium`. On a machine without it the
//! test fails and says so, unless `CCO_SKIP_BROWSER_TESTS=1` asks to skip the browser part
//! (the demo, its dashboard over HTTP and the stop on SIGINT are checked either way).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ui::{http_get, url_after};

/// Chromium's binary, or why there is none (`None` + skip when asked to).
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| which::which(name).ok());
    match found {
        Some(path) => Some(path),
        None if std::env::var("CCO_SKIP_BROWSER_TESTS").is_ok_and(|v| v == "1") => {
            eprintln!("browser test skipped: no chromium and CCO_SKIP_BROWSER_TESTS=1");
            None
        }
        None => panic!(
            "the browser test needs Chromium: install it (`apt-get install -y chromium`; .ci/run \
             does) or set CCO_SKIP_BROWSER_TESTS=1 to skip this test"
        ),
    }
}

/// A child in its own process group, killed with the group when dropped.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// Runs headless Chromium on `url` with `args` (a new profile each time); its stdout.
fn chromium_run(chromium: &Path, profile_root: &Path, url: &str, args: &[String]) -> String {
    let profile = tempfile::tempdir_in(profile_root).unwrap();
    let out_file = tempfile::NamedTempFile::new_in(profile_root).unwrap();
    let out_path = out_file.path().to_path_buf();
    let out = out_file.reopen().unwrap();
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(out)
    .stderr(Stdio::null())
    .process_group(0);
    let mut child = Group(cmd.spawn().expect("start chromium"));
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "chromium did not finish on {url}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(child);
    std::fs::read_to_string(&out_path).unwrap_or_default()
}

fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.len() > 5000 && b.starts_with(b"\x89PNG\r\n\x1a\n"))
}

#[test]
fn demo_with_ui_stays_open_until_sigint_and_headless_chromium_shows_its_board_and_timeline() {
    let dir = cco_testkit::temp_dir();
    let demo = dir.path().join("demo");
    let stdout_path = dir.path().join("demo.out");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cco"));
    cmd.args(["demo", "--plain", "--ui", "--dir"])
        .arg(&demo)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(dir.path().join("demo.err")).unwrap());
    let mut child = cmd.spawn().unwrap();
    let mut addr = None;
    cco_testkit::wait_until(
        Duration::from_secs(180),
        "the demo's dashboard to stay open",
        || {
            let out = std::fs::read_to_string(&stdout_path).unwrap_or_default();
            assert!(child.try_wait().unwrap().is_none(), "the demo ended: {out}");
            addr = url_after(&out, "stays open at");
            addr.is_some()
        },
    );
    let addr = addr.unwrap();
    assert!(addr.starts_with("127.0.0.1:"), "loopback: {addr}");
    let base = format!("http://{addr}");
    let run = {
        let logs = demo.join("logs");
        std::fs::read_dir(&logs)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
    };
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    let tasks: Vec<String> = summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap().to_string())
        .collect();
    let workers: Vec<String> = summary["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["role"] == "worker")
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        tasks.len() >= 6 && workers.len() == 6,
        "{tasks:?} {workers:?}"
    );
    let svg = std::fs::read_to_string(run.join(cco_web::TIMELINE_FILE_NAME))
        .expect("the demo's timeline.svg");
    for task in &tasks {
        assert!(
            svg.contains(&format!("data-task=\"{task}\"")),
            "{task} in the svg"
        );
    }

    // The dashboard still answers after the demo, for every page.
    let (status, board) = http_get(&addr, "/board");
    assert_eq!(status, 200, "{board}");
    for task in &tasks {
        assert!(
            between(&board, "data-column=\"done\"", "data-column=\"failed\"")
                .contains(&format!("data-task=\"{task}\"")),
            "{task} done on the board"
        );
    }
    for page in ["/", "/timeline", "/costs", &format!("/task/{}", tasks[0])] {
        let (status, body) = http_get(&addr, page);
        assert_eq!(status, 200, "{page}: {body}");
    }

    if let Some(chromium) = chromium() {
        in_chromium(&chromium, dir.path(), &base, &tasks, &workers);
    }

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the demo did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "the dashboard is gone with the demo"
    );
}

/// The board and the timeline in headless Chromium: a screenshot of each (under `dir`), and
/// the rendered DOM shows every task and worker.
fn in_chromium(chromium: &Path, dir: &Path, base: &str, tasks: &[String], workers: &[String]) {
    let shots = dir.join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for (page, name) in [("/board", "board.png"), ("/timeline", "timeline.png")] {
        let path = shots.join(name);
        chromium_run(
            chromium,
            dir,
            &format!("{base}{page}"),
            &[format!("--screenshot={}", path.display())],
        );
        assert!(
            is_png(&path),
            "a screenshot of {page} at {}",
            path.display()
        );
    }

    let board = chromium_run(
        chromium,
        dir,
        &format!("{base}/board"),
        &["--dump-dom".into()],
    );
    let done = between(&board, "data-column=\"done\"", "data-column=\"failed\"");
    for task in tasks {
        assert!(
            done.contains(&format!("data-task=\"{task}\"")),
            "{task} done on the board:\n{board}"
        );
    }
    for worker in workers {
        assert!(
            board.contains(&format!("href=\"/agent/{worker}\"")),
            "{worker} on the board"
        );
    }
    let timeline = chromium_run(
        chromium,
        dir,
        &format!("{base}/timeline"),
        &["--dump-dom".into()],
    );
    for worker in workers {
        assert!(
            timeline.contains(&format!("data-row=\"{worker}\"")),
            "a row for {worker}:\n{timeline}"
        );
    }
    for task in tasks {
        assert!(
            timeline.contains(&format!("data-task=\"{task}\"")),
            "a bar for {task}"
        );
    }
}

/// The part of `text` between `from` and `to`.
pub fn between<'a>(text: &'a str, from: &str, to: &str) -> &'a str {
    let Some(start) = text.find(from) else {
        return "";
    };
    let rest = &text[start..];
    match rest.find(to) {
        Some(end) => &rest[..end],
        None => rest,
    }
}
