//! Helpers for the binary's tests: a project on disk, the `cco` command, signals.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

pub struct CliProject {
    pub dir: tempfile::TempDir,
    pub source: PathBuf,
    pub config_dir: PathBuf,
    stderr_path: PathBuf,
}

/// A coordinator plan of one task per id; workers write `<id>.txt` and commit, or run
/// `worker_steps` instead when given.
pub fn simple_script(ids: &[&str], worker_steps: Option<Value>) -> Value {
    let tasks: Vec<Value> = ids.iter().map(|id| json!({"id": id, "title": format!("Write {id}.txt"), "files": [format!("{id}.txt")]})).collect();
    // Planner and reviewer answers work with structured output and without.
    let mut rules = vec![
        cco_testkit::answer_rule(
            json!({"prompt_contains": "[cco:coordinator-plan]"}),
            json!({"status":"continue","tasks": tasks}),
        ),
        cco_testkit::answer_rule(
            json!({"prompt_contains": "[cco:replan]"}),
            json!({"status":"complete","reason":"done"}),
        ),
        cco_testkit::answer_rule(
            json!({"prompt_contains": "[cco:review"}),
            json!({"decision":"approve"}),
        ),
    ];
    for id in ids {
        let steps = worker_steps.clone().unwrap_or_else(|| {
            json!([
                {"write": {"path": format!("{id}.txt"), "content": format!("{id}\n")}},
                {"commit": format!("Add {id}")}
            ])
        });
        rules.push(json!({"match": {"role": "worker", "prompt_contains": format!("Task ID: {id}")}, "steps": steps, "cost_usd": 0.01}));
    }
    json!({"rules": rules})
}

impl CliProject {
    pub fn new(config: Value, script: Value) -> CliProject {
        let dir = cco_testkit::temp_dir();
        let defaults = json!({
            "workerCount": 2,
            "projectDirection": "Write the files.",
            "pollIntervalMs": 50,
            "restartBackoffMs": 20,
            "killGraceMs": 500,
            // Scripts of inline rules answer with result texts; `simple_script` works either way.
            "structuredOutput": "off"
        });
        let (source, config_dir) =
            cco_testkit::scripted_project(dir.path(), defaults, &config, &script);
        let stderr_path = dir.path().join("cco.stderr");
        CliProject {
            dir,
            source,
            config_dir,
            stderr_path,
        }
    }

    /// `cco <args> --config <dir>`; stderr goes to a file the test can poll.
    pub fn cco(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cco"));
        cmd.args(args).arg("--config").arg(&self.config_dir);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        cmd.stderr(std::fs::File::create(&self.stderr_path).unwrap());
        cmd.env_remove("RUST_LOG");
        cmd
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn stderr_contains(&self, text: &str) -> bool {
        self.stderr().contains(text)
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.config_dir.join("logs")
    }

    pub fn wait_for_run_dir(&self) -> PathBuf {
        let mut found = None;
        cco_testkit::wait_until(Duration::from_secs(30), "the run folder", || {
            found = std::fs::read_dir(self.logs_dir())
                .ok()
                .and_then(|mut d| d.find_map(|e| e.ok().map(|e| e.path())));
            found.is_some()
        });
        found.unwrap()
    }

    /// Pids of worker claude processes, read from the live process table: children of the
    /// cco process whose environment says they are workers.
    pub fn wait_for_worker_pids(&self, child: &mut Child, count: usize) -> Vec<u32> {
        let mut pids = Vec::new();
        cco_testkit::wait_until(Duration::from_secs(30), "worker claude processes", || {
            assert!(
                child.try_wait().unwrap().is_none(),
                "cco exited early: {}",
                self.stderr()
            );
            pids = worker_processes(child.id());
            pids.len() >= count
        });
        pids
    }

    /// The claude processes the live journal lists (pids), once there are at least `count`;
    /// cco must keep running meanwhile.
    pub fn wait_for_journaled_processes(&self, child: &mut Child, count: usize) -> Vec<u32> {
        let mut pids = Vec::new();
        cco_testkit::wait_until(
            Duration::from_secs(30),
            "journaled claude processes",
            || {
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "cco exited early: {}",
                    self.stderr()
                );
                pids = self.journaled_processes();
                pids.len() >= count
            },
        );
        pids
    }

    /// The claude processes the newest run's journal lists as alive (pids).
    pub fn journaled_processes(&self) -> Vec<u32> {
        let Some(run_dir) = cco::Orchestrator::latest_run(&self.logs_dir()) else {
            return Vec::new();
        };
        let journal: serde_json::Value = std::fs::read(run_dir.join("journal.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        journal["processes"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|p| p["pid"].as_u64().map(|p| p as u32))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn files_on_main(&self) -> Vec<String> {
        let repo = self.config_dir.join("workspace").join("repo");
        cco_testkit::git(&repo, &["ls-tree", "-r", "--name-only", "main"])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// Direct children of `parent` with `CCO_AGENT_ROLE=worker` in their environment.
fn worker_processes(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            ppid == Some(parent)
                && env
                    .split(|b| *b == 0)
                    .any(|v| v == b"CCO_AGENT_ROLE=worker")
        })
        .collect()
}

pub fn signal(child: &Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
}

/// Waits for the child with a deadline (SIGKILL and panic after it).
pub fn wait_output(mut child: Child, timeout: Duration) -> Output {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("cco did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A machine of its own for commands that look around (`cco init`, `cco check`): a `HOME`
/// without a claude login, a `bin/` holding a `claude` (fake-claude playing `script`) first on
/// `PATH`, and no colour or key variables from the test's environment.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new(script: &Value) -> Sandbox {
        let dir = cco_testkit::temp_dir();
        for sub in ["home", "bin", "state"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let script = cco_testkit::write_script(&dir.path().join("state"), script);
        cco_testkit::fake_claude_wrapper(
            &dir.path().join("bin"),
            cco_testkit::fake_claude(),
            &script,
            &dir.path().join("state"),
        )
        .unwrap();
        Sandbox { dir }
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// `cco <args>` run in `cwd`, stdin and stdout detached from any terminal.
    pub fn cco(&self, cwd: &std::path::Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cco"));
        cmd.args(args).current_dir(cwd);
        self.env(&mut cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// The sandbox's environment on `cmd`.
    pub fn env(&self, cmd: &mut Command) {
        let path = format!(
            "{}:{}",
            self.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("HOME", self.path().join("home"))
            .env("PATH", path)
            .env_remove("CLAUDE_CONFIG_DIR")
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .env_remove("CLICOLOR");
    }

    /// A git repository at `name` with one commit, an `origin` when given, and `files`.
    pub fn repo(&self, name: &str, origin: Option<&str>, files: &[(&str, &str)]) -> PathBuf {
        let repo = cco_testkit::init_repo(&self.path().join(name));
        for (file, text) in files {
            std::fs::write(repo.join(file), text).unwrap();
        }
        if !files.is_empty() {
            cco_testkit::git(&repo, &["add", "-A"]);
            cco_testkit::git(&repo, &["commit", "-q", "-m", "files"]);
        }
        if let Some(url) = origin {
            cco_testkit::git(&repo, &["remote", "add", "origin", url]);
        }
        repo
    }
}

/// (stdout, stderr) of a finished command.
pub fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Panics with both streams unless the command succeeded.
pub fn assert_success(out: &Output) -> (String, String) {
    let (stdout, stderr) = texts(out);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status.code()
    );
    (stdout, stderr)
}
