//! A real browser on the dashboard: `cco demo --ui` runs the demo and keeps its dashboard
//! open; headless Chromium renders the board and the timeline (screenshots under the test's
//! temp dir) and its DOM must show the run's tasks and workers.
//!
//! Chromium is needed: `.ci/run` installs Debian's `chromium`. On a machine without it the
//! test fails and says so, unless `CCO_SKIP_BROWSER_TESTS=1` asks to skip it.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ui::url_after;

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
fn headless_chromium_shows_the_demo_runs_board_and_timeline() {
    let Some(chromium) = chromium() else {
        return;
    };
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
    let base = format!("http://{}", addr.unwrap());
    let summary: serde_json::Value = {
        let logs = demo.join("logs");
        let run = std::fs::read_dir(&logs)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap()
    };
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

    let shots = dir.path().join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for (page, name) in [("/board", "board.png"), ("/timeline", "timeline.png")] {
        let path = shots.join(name);
        chromium_run(
            &chromium,
            dir.path(),
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
        &chromium,
        dir.path(),
        &format!("{base}/board"),
        &["--dump-dom".into()],
    );
    let done = crate::browser::between(&board, "data-column=\"done\"", "data-column=\"failed\"");
    for task in &tasks {
        assert!(
            done.contains(&format!("data-task=\"{task}\"")),
            "{task} done on the board:\n{board}"
        );
    }
    for worker in &workers {
        assert!(
            board.contains(&format!("href=\"/agent/{worker}\"")),
            "{worker} on the board"
        );
    }
    let timeline = chromium_run(
        &chromium,
        dir.path(),
        &format!("{base}/timeline"),
        &["--dump-dom".into()],
    );
    for worker in &workers {
        assert!(
            timeline.contains(&format!("data-row=\"{worker}\"")),
            "a row for {worker}:\n{timeline}"
        );
    }
    for task in &tasks {
        assert!(
            timeline.contains(&format!("data-task=\"{task}\"")),
            "a bar for {task}"
        );
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
