//! Helpers shared by the fake-claude black-box tests: a sandbox (work dir, config dir,
//! script), running and watching the binary, and reading the real CLI's fixtures.
#![allow(dead_code)]

use cco_testkit::{fixtures_dir, wait_until};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_fake-claude");
pub const STREAM: &[&str] = &[
    "--output-format",
    "stream-json",
    "--verbose",
    "--dangerously-skip-permissions",
];
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A temp dir with a working dir (`work/`) and a config dir (`cfg/`).
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub script: Option<PathBuf>,
}

pub struct Run {
    pub code: i32,
    pub events: Vec<Value>,
    pub stderr: String,
}

impl Sandbox {
    pub fn new(script: Option<Value>) -> Sandbox {
        let dir = cco_testkit::temp_dir();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        let script = script.map(|s| cco_testkit::write_script(dir.path(), &s));
        Sandbox { dir, script }
    }

    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .current_dir(self.work())
            .env("CLAUDE_CONFIG_DIR", self.dir.path().join("cfg"))
            .env("IS_SANDBOX", "1")
            .env_remove("CLAUDECODE")
            .env_remove("FAKE_CLAUDE_STATE_DIR")
            .stdin(Stdio::null());
        match &self.script {
            Some(p) => c.env("FAKE_CLAUDE_SCRIPT", p),
            None => c.env_remove("FAKE_CLAUDE_SCRIPT"),
        };
        c
    }

    /// `-p prompt` + stream-json flags + `extra`, run to completion.
    pub fn run(&self, prompt: &str, extra: &[&str]) -> Run {
        let mut args = vec!["-p", prompt];
        args.extend_from_slice(STREAM);
        args.extend_from_slice(extra);
        finish(self.cmd(&args).output().unwrap())
    }

    /// Starts a stream-json run whose stdout lines are collected in the background.
    pub fn spawn(&self, prompt: &str) -> Live {
        let mut args = vec!["-p", prompt];
        args.extend_from_slice(STREAM);
        Live::start(self.cmd(&args))
    }
}

impl Live {
    /// Starts `cmd` with its stdout lines collected in the background.
    pub fn start(mut cmd: Command) -> Live {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Live {
            child,
            lines,
            reader,
        }
    }
}

pub fn finish(out: std::process::Output) -> Run {
    let stdout = String::from_utf8(out.stdout).unwrap();
    let events = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    Run {
        code: out.status.code().unwrap_or(-1),
        events,
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

pub struct Live {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
    pub reader: std::thread::JoinHandle<()>,
}

impl Live {
    pub fn wait_for_line(&self, needle: &str) {
        wait_until(DEADLINE, needle, || {
            self.lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
        });
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Waits for exit; returns (code, all lines as JSON).
    pub fn exit(mut self) -> (i32, Vec<Value>) {
        let mut status = None;
        wait_until(DEADLINE, "fake-claude exits", || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        // The reader sees EOF once the process is gone (nothing else holds its stdout).
        self.reader.join().unwrap();
        let mut events = Vec::new();
        for l in self.lines.lock().unwrap().iter() {
            events.push(serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")));
        }
        (status.unwrap().code().unwrap_or(-1), events)
    }
}

pub fn fixture(name: &str) -> Vec<Value> {
    std::fs::read_to_string(fixtures_dir().join(name))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

pub fn result_of(events: &[Value]) -> &Value {
    let last = events.last().expect("no events");
    assert_eq!(
        last["type"], "result",
        "last event is not the result: {last}"
    );
    last
}

pub fn has_result(events: &[Value]) -> bool {
    events.iter().any(|e| e["type"] == "result")
}

/// (type, subtype or first content block type) of each event: the transcript's shape.
pub fn shape(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let t = e["type"].as_str().unwrap_or("?");
            let sub = e["subtype"]
                .as_str()
                .or_else(|| e["message"]["content"][0]["type"].as_str())
                .unwrap_or("");
            format!("{t}/{sub}")
        })
        .collect()
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    cco_testkit::git(dir, args).trim().to_string()
}
