//! Cluster test helpers: `cco node` processes on 127.0.0.1 (killed by their drop guard), a
//! cookie file, and a project whose config has a `cluster` section naming them.

#![allow(dead_code)]

use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

pub use crate::harness::*;

/// A port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes a cookie file (mode 0600) and returns its path.
pub fn cookie_file(dir: &Path, name: &str, cookie: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{cookie}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

pub const COOKIE: &str = "cluster-test-cookie-0123456789";

/// A `cco node` process; killed (SIGKILL) and reaped when dropped.
pub struct NodeProc {
    pub child: Option<Child>,
    pub name: String,
    pub port: u16,
    pub dir: PathBuf,
    pub stderr: PathBuf,
}

impl NodeProc {
    /// Starts `cco node` and waits for its ready line (30 s at most).
    pub fn start(
        base: &Path,
        name: &str,
        port: u16,
        slots: u32,
        cookie: &Path,
        claude: &Path,
    ) -> NodeProc {
        let dir = base.join(format!("node-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let stderr = dir.with_extension("stderr");
        let mut child = Command::new(env!("CARGO_BIN_EXE_cco"))
            .args(["node", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--cookie-file")
            .arg(cookie)
            .args(["--slots", &slots.to_string(), "--name", name])
            .arg("--dir")
            .arg(&dir)
            .arg("--claude")
            .arg(claude)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let mut node = NodeProc {
            child: Some(child),
            name: name.to_string(),
            port,
            dir,
            stderr,
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => assert!(line.contains("listening on"), "{line}"),
            Err(_) => {
                let err = node.stderr_text();
                node.kill();
                panic!("node {name} did not start: {err}");
            }
        }
        node
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// `kill -9` and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A project (see `CliProject`) whose config names nodes on `ports`, with its cookie file.
pub fn cluster_project(
    config: Value,
    script: Value,
    ports: &[u16],
    cluster: Value,
) -> (CliProject, PathBuf) {
    let project = CliProject::new(config, script);
    let cookie = cookie_file(project.dir.path(), "cookie", COOKIE);
    let nodes: Vec<Value> = ports
        .iter()
        .map(|p| json!({"address": format!("127.0.0.1:{p}")}))
        .collect();
    let mut section = json!({
        "cookieFile": cookie.display().to_string(),
        "nodes": nodes,
        "heartbeatMs": 200,
        "nodeTimeoutMs": 5000,
    });
    if let Some(extra) = cluster.as_object() {
        for (k, v) in extra {
            section[k] = v.clone();
        }
    }
    let path = project.config_dir.join("orchestrator.json");
    let mut text: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    text["cluster"] = section;
    std::fs::write(&path, serde_json::to_vec_pretty(&text).unwrap()).unwrap();
    (project, cookie)
}

/// The stdout of a finished cco run of `project`, checked: exit 0 and `run finished: complete`.
pub fn completed(project: &CliProject, out: std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", project.stderr());
    assert!(stdout.contains("run finished: complete"), "{stdout}");
    stdout
}

/// The fake claude of a project (its wrapper script).
pub fn claude_of(project: &CliProject) -> PathBuf {
    project.config_dir.join("claude")
}

/// The run's summary.json.
pub fn summary(project: &CliProject) -> Value {
    let run = cco::Orchestrator::latest_run(&project.logs_dir()).expect("a run folder");
    serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap()
}

/// The live journal, if readable.
pub fn journal(project: &CliProject) -> Option<Value> {
    let run = cco::Orchestrator::latest_run(&project.logs_dir())?;
    serde_json::from_slice(&std::fs::read(run.join("journal.json")).ok()?).ok()
}

/// How many commits on main add `file`.
pub fn commits_adding(project: &CliProject, file: &str) -> usize {
    let repo = project.config_dir.join("workspace").join("repo");
    cco_testkit::git(
        &repo,
        &["log", "--oneline", "--diff-filter=A", "main", "--", file],
    )
    .lines()
    .count()
}

/// A hierarchy plan: two teams, two tasks each, every task writes its own file.
pub fn two_team_script(worker_rules: Vec<Value>) -> Value {
    let task = |id: &str| json!({"id": id, "title": format!("Write {id}.txt"), "description": format!("Create {id}.txt"), "files": [format!("{id}.txt")]});
    let mut rules = vec![
        json!({"match": {"role": "director", "prompt_contains": "[cco:director-plan]"}, "result": json!({"status":"continue","teams":[
            {"name":"alpha","goal":"alpha files"}, {"name":"beta","goal":"beta files"}]}).to_string()}),
        json!({"match": {"role": "director", "prompt_contains": "[cco:replan]"}, "result": "{\"status\":\"complete\",\"reason\":\"done\"}"}),
        json!({"match": {"prompt_contains": "Goal: alpha"}, "result": json!({"status":"continue","tasks":[task("a1"), task("a2")]}).to_string()}),
        json!({"match": {"prompt_contains": "Goal: beta"}, "result": json!({"status":"continue","tasks":[task("b1"), task("b2")]}).to_string()}),
        json!({"match": {"prompt_contains": "[cco:review]"}, "result": "{\"decision\":\"approve\"}"}),
    ];
    rules.extend(worker_rules);
    for id in ["a1", "a2", "b1", "b2"] {
        rules.push(json!({"match": {"role": "worker", "prompt_contains": format!("Task ID: {id}")}, "steps": [
            {"write": {"path": format!("{id}.txt"), "content": format!("{id}\n")}},
            {"commit": format!("Add {id}")}
        ], "result": format!("{id} done")}));
    }
    json!({"rules": rules})
}

/// Config of a hierarchy run: 4 workers in teams of 2.
pub fn hierarchy_config() -> Value {
    json!({"workerCount": 4, "engineerManagerGroupSize": 2})
}

/// Waits (90 s at most) until the live journal satisfies `ready`; the head must keep running.
pub fn wait_for_journal(
    project: &CliProject,
    child: &mut std::process::Child,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let mut found = Value::Null;
    cco_testkit::wait_until(Duration::from_secs(90), what, || {
        assert!(
            child.try_wait().unwrap().is_none(),
            "cco exited early: {}",
            project.stderr()
        );
        match journal(project) {
            Some(j) if ready(&j) => {
                found = j;
                true
            }
            _ => false,
        }
    });
    found
}

/// The journal's record of agent `id`.
pub fn agent(journal: &Value, id: &str) -> Value {
    journal["snapshot"]["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == id).cloned())
        .unwrap_or_default()
}

/// The journal's record of the agent working on task key `key` (e.g. `flat/t1`).
pub fn agent_on(journal: &Value, key: &str) -> Value {
    journal["snapshot"]["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["current_task"] == key).cloned())
        .unwrap_or_default()
}

/// The journal's record of task `id`.
pub fn task(journal: &Value, id: &str) -> Value {
    journal["snapshot"]["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["id"] == id).cloned())
        .unwrap_or_default()
}

/// The head's copy of a worker's session file.
pub fn session_copy(project: &CliProject, agent: &str, session: &str) -> PathBuf {
    let run = cco::Orchestrator::latest_run(&project.logs_dir()).expect("a run folder");
    run.join("cluster")
        .join("sessions")
        .join(agent)
        .join(format!("{session}.jsonl"))
}

/// Worker rules: `hanging` hangs in its first process (after writing a line) and, resumed,
/// writes its file and commits; the others write theirs at once.
pub fn hang_once_script(ids: &[&str], hanging: &str) -> Value {
    let mut script = simple_script(ids, None);
    let write_and_commit = json!([
        {"write": {"path": format!("{hanging}.txt"), "content": format!("{hanging}\n")}},
        {"commit": format!("Add {hanging}")}
    ]);
    let rules = script["rules"].as_array_mut().unwrap();
    // Before the generic rule of the task (rules match in order).
    rules.insert(0, json!({"match": {"role": "worker", "prompt_contains": format!("[cco-ref:resume/{hanging}]")}, "steps": write_and_commit, "result": format!("{hanging} finished after the move")}));
    rules.insert(0, json!({"match": {"role": "worker", "prompt_contains": format!("Task ID: {hanging}")}, "times": 1, "steps": [{"text": format!("working on {hanging}")}, {"hang": true}]}));
    script
}
