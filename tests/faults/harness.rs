//! Helpers for the fault-injection tests: a fake-claude project on disk, the `cco` binary,
//! the process table (/proc) and the run's result on main.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub struct FaultProject {
    pub dir: tempfile::TempDir,
    pub source: PathBuf,
    pub config_dir: PathBuf,
    stderr_path: PathBuf,
}

/// Worker steps: write `out/<task key>.txt` (the key is `flat/<id>` in flat mode) and commit.
pub fn write_and_commit() -> Vec<Value> {
    vec![
        json!({"write": {"path": "out/{{task_id}}.txt", "content": "{{task_id}}\n"}}),
        json!({"commit": "work on {{task_id}}"}),
    ]
}

/// The expected file of task `id` on main.
pub fn task_file(id: &str) -> String {
    format!("out/flat/{id}.txt")
}

/// Coordinator plan of one task per id, approve every review, complete on re-plan; then
/// `worker_rules` (first match wins), then a catch-all worker rule (any worker prompt:
/// fresh, resumed or after a timeout) that writes and commits the task's file.
pub fn script(ids: &[&str], worker_rules: Vec<Value>) -> Value {
    let tasks: Vec<Value> = ids.iter().map(|id| json!({"id": id, "title": format!("Write {id}"), "files": [format!("out/{id}.txt")]})).collect();
    let mut rules = vec![
        json!({"match": {"prompt_contains": "[cco:coordinator-plan]"}, "result": json!({"status":"continue","tasks": tasks}).to_string()}),
        json!({"match": {"prompt_contains": "[cco:replan]"}, "result": "{\"status\":\"complete\",\"reason\":\"done\"}"}),
        json!({"match": {"prompt_contains": "[cco:review"}, "result": "{\"decision\":\"approve\"}"}),
    ];
    rules.extend(worker_rules);
    rules.push(json!({"match": {"role": "worker"}, "steps": write_and_commit(), "result": "done"}));
    json!({"rules": rules})
}

impl FaultProject {
    pub fn new(config: Value, script: Value) -> FaultProject {
        let dir = cco_testkit::temp_dir();
        let defaults = json!({
            "workerCount": 2,
            "projectDirection": "Write the files.",
            "pollIntervalMs": 50,
            "restartBackoffMs": 20,
            "killGraceMs": 300,
            "idleTimeoutMs": 20000,
            "taskTimeoutMs": 30000,
            "maxRunDurationMinutes": 2,
            "structuredOutput": "off"
        });
        let (source, config_dir) =
            cco_testkit::scripted_project(dir.path(), defaults, &config, &script);
        let stderr_path = dir.path().join("cco.stderr");
        FaultProject {
            dir,
            source,
            config_dir,
            stderr_path,
        }
    }

    pub fn write_config(&self, config: &Value) {
        std::fs::write(
            self.config_dir.join("orchestrator.json"),
            serde_json::to_vec_pretty(config).unwrap(),
        )
        .unwrap();
    }

    /// `cco <args> --config <dir>`; stderr goes to a file the test can read while it runs.
    pub fn cco(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cco"));
        cmd.args(args).arg("--config").arg(&self.config_dir);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        cmd.stderr(std::fs::File::create(&self.stderr_path).unwrap());
        cmd.env_remove("RUST_LOG");
        cmd
    }

    pub fn start(&self) -> Child {
        self.cco(&["start", "--plain"]).spawn().expect("spawn cco")
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn workspace_repo(&self) -> PathBuf {
        self.config_dir.join("workspace").join("repo")
    }

    pub fn files_on_main(&self) -> Vec<String> {
        cco_testkit::git(
            &self.workspace_repo(),
            &["ls-tree", "-r", "--name-only", "main"],
        )
        .lines()
        .map(str::to_string)
        .collect()
    }

    /// Every live process that belongs to this project: its environment or working directory
    /// mentions the project's temp dir (fake-claude via its wrapper's variables, its
    /// grandchildren, git processes in the workspace). The test process itself is excluded.
    pub fn leftover_processes(&self) -> Vec<(u32, String)> {
        let marker = self.dir.path().as_os_str().as_encoded_bytes().to_vec();
        let me = std::process::id();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
            .filter(|&pid| pid != me && cco_testkit::pid_alive(pid))
            .filter(|pid| {
                let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
                env.windows(marker.len()).any(|w| w == marker.as_slice())
                    || cwd.as_os_str().as_encoded_bytes().starts_with(&marker)
            })
            .map(|pid| {
                (
                    pid,
                    std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                        .unwrap_or_default()
                        .replace('\0', " "),
                )
            })
            .collect()
    }

    /// No process of this project is left (waits a little for reaping by init).
    pub fn assert_no_leftovers(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let left = loop {
            let left = self.leftover_processes();
            if left.is_empty() || Instant::now() > deadline {
                break left;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(left.is_empty(), "processes left behind: {left:?}");
    }
}

/// Direct children of `parent` whose environment has `CCO_AGENT_ROLE=<role>`.
pub fn agent_processes(parent: u32, role: &str) -> Vec<u32> {
    let wanted = format!("CCO_AGENT_ROLE={role}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            let (state, ppid) = (
                fields.first().copied(),
                fields.get(1).and_then(|p| p.parse::<u32>().ok()),
            );
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            ppid == Some(parent)
                && state != Some("Z")
                && env.split(|b| *b == 0).any(|v| v == wanted.as_bytes())
        })
        .collect()
}

pub fn worker_processes(parent: u32) -> Vec<u32> {
    agent_processes(parent, "worker")
}

/// Peak resident set size (`VmHWM`) of `pid` in bytes, while it is alive.
pub fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

pub fn kill9(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Waits for the child with a deadline (SIGKILL and panic after it); `on_poll` runs every
/// 20 ms while it is alive.
pub fn wait_output_polling(
    mut child: Child,
    timeout: Duration,
    mut on_poll: impl FnMut(u32),
) -> Output {
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("cco did not exit within {timeout:?}");
        }
        on_poll(child.id());
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn wait_output(child: Child, timeout: Duration) -> Output {
    wait_output_polling(child, timeout, |_| {})
}

pub fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A clear error: no panic, no Rust backtrace, one `cco:` line naming the problem.
pub fn assert_clear_failure(out: &Output, stderr: &str, must_name: &str) {
    assert!(
        !out.status.success(),
        "expected a failure; stderr:\n{stderr}"
    );
    assert!(
        out.status.code().is_some(),
        "killed by a signal? {:?}; stderr:\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "cco panicked:\n{stderr}");
    assert!(
        stderr.contains(must_name),
        "the error should name {must_name:?}:\n{stderr}"
    );
}

/// Sets the modification time of `path` to `age` ago.
pub fn make_old(path: &Path, age: Duration) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_modified(std::time::SystemTime::now() - age)
        .unwrap();
}
