//! Losing hosts: a node killed mid-turn (its task finishes elsewhere, in the same session), a
//! node that restarts (it rejoins and gets work), the head killed mid-turn (`cco resume`
//! finishes the run).

use std::time::Duration;

use serde_json::{json, Value};

use crate::cluster::*;

/// Waits until task `id` runs on a node in a process whose session the head has a copy of;
/// returns (worker, node, session id, node-side pid).
fn running_on_a_node(
    project: &CliProject,
    child: &mut std::process::Child,
    id: &str,
) -> (String, String, String, u32) {
    let key = format!("flat/{id}");
    let j = wait_for_journal(
        project,
        child,
        "the task running on a node, its session copied",
        |j| {
            let a = agent_on(j, &key);
            let session = a["session_id"].as_str().unwrap_or_default();
            task(j, id)["state"] == "running"
                && a["pid"].is_u64()
                && a["node"].is_string()
                && !session.is_empty()
                && a["id"]
                    .as_str()
                    .is_some_and(|w| session_copy(project, w, session).is_file())
        },
    );
    let a = agent_on(&j, &key);
    (
        a["id"].as_str().unwrap().to_string(),
        a["node"].as_str().unwrap().to_string(),
        a["session_id"].as_str().unwrap().to_string(),
        a["pid"].as_u64().unwrap() as u32,
    )
}

fn files_land_once(project: &CliProject, ids: &[&str], stdout: &str) {
    for id in ids {
        assert_eq!(
            commits_adding(project, &format!("{id}.txt")),
            1,
            "{id}\n{stdout}"
        );
    }
}

/// The tasks of the node-loss runs: t1 hangs in its first process, t2 and t3 finish at once.
const IDS: [&str; 3] = ["t1", "t2", "t3"];

/// Two workers, two nodes (`n1`, `n2`, two slots each) and the [`IDS`] tasks, with `cluster`
/// keys added to the config's cluster section.
fn two_nodes_t1_hangs_once(cluster: Value) -> (CliProject, [NodeProc; 2]) {
    let ports = [free_port(), free_port()];
    let (project, cookie) = cluster_project(
        json!({"workerCount": 2, "maxTaskRestarts": 5}),
        hang_once_script(&IDS, "t1"),
        &ports,
        cluster,
    );
    let claude = claude_of(&project);
    let nodes = [
        NodeProc::start(project.dir.path(), "n1", ports[0], 2, &cookie, &claude),
        NodeProc::start(project.dir.path(), "n2", ports[1], 2, &cookie, &claude),
    ];
    (project, nodes)
}

#[test]
fn a_node_killed_mid_turn_its_task_finishes_on_another_in_the_same_session() {
    let (project, mut nodes) = two_nodes_t1_hangs_once(json!({}));
    let mut child = project.cco(&["start", "--plain"]).spawn().unwrap();
    let (worker, node, session, pid) = running_on_a_node(&project, &mut child, "t1");
    // Visible while it runs: the SIGUSR1 dump and `cco status` name the worker's node and
    // show each node's state, slots and bytes moved.
    let run_dir = project.wait_for_run_dir();
    signal(&child, nix::sys::signal::Signal::SIGUSR1);
    let dump = wait_for_dump(&run_dir);
    let status = project.cco(&["status"]).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    for text in [&dump, status.as_ref()] {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("worker {worker} ")))
            .unwrap_or_else(|| panic!("no line of {worker}:\n{text}"));
        assert!(line.ends_with(&format!(" node={node}")), "{line}");
        for name in ["n1", "n2"] {
            let line = text
                .lines()
                .find(|l| {
                    l.trim_start()
                        .starts_with(&format!("node {name} (127.0.0.1:"))
                })
                .unwrap_or_else(|| panic!("no line of node {name}:\n{text}"));
            assert!(
                line.contains("[joined]") && line.contains("/2 bundles sent "),
                "{line}"
            );
        }
    }
    let victim = nodes.iter_mut().find(|n| n.name == node).unwrap();
    victim.kill();
    let stdout = completed(&project, wait_output(child, Duration::from_secs(180)));
    assert!(stdout.contains(&format!("node {node} lost")), "{stdout}");
    files_land_once(&project, &IDS, &stdout);
    // The killed node's claude did not outlive it (its guard stopped it).
    cco_testkit::wait_until(
        Duration::from_secs(10),
        "the killed node's claude gone",
        || !cco_testkit::process_group_alive(pid),
    );
    let summary = summary(&project);
    let t1 = summary_task(&summary, "t1");
    // The same session, resumed on the other node from its migrated file.
    assert_eq!(t1["session_id"], Value::String(session.clone()), "{t1}");
    assert_eq!(t1["state"], "done", "{t1}");
    let other = if node == "n1" { "n2" } else { "n1" };
    let moved = summary["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == worker.as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(moved["node"], other, "{moved}");
    assert!(
        stdout.contains(&format!("{worker}: runs on node {other}")),
        "{stdout}"
    );
    // The summary keeps each node's state and what moved: the killed one lost.
    let state = |name: &str| {
        summary["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .map(|n| n["state"].clone())
            .unwrap_or_default()
    };
    assert_eq!(state(&node), "lost", "{}", summary["nodes"]);
    assert_eq!(state(other), "joined", "{}", summary["nodes"]);
    let session_bytes: u64 = summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["session_bytes_received"].as_u64().unwrap_or(0))
        .sum();
    assert!(session_bytes > 0, "{}", summary["nodes"]);
}

/// Task `id` in a summary.
fn summary_task(summary: &Value, id: &str) -> Value {
    summary["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["id"] == id).cloned())
        .unwrap_or_default()
}

/// The first `status-*` dump SIGUSR1 wrote into the run folder.
fn wait_for_dump(run_dir: &std::path::Path) -> String {
    let mut dump = String::new();
    cco_testkit::wait_until(Duration::from_secs(30), "a status dump", || {
        let found = std::fs::read_dir(run_dir)
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_string_lossy().starts_with("status-"));
        if let Some(entry) = found {
            dump = std::fs::read_to_string(entry.path()).unwrap_or_default();
        }
        // Written at once: complete when it ends with its last newline.
        dump.ends_with('\n')
    });
    dump
}

#[test]
fn a_node_that_stops_answering_is_lost_and_its_task_finishes_on_another() {
    // ractor_cluster never notices a hung peer: cco's heartbeats do.
    let (project, nodes) =
        two_nodes_t1_hangs_once(json!({"heartbeatMs": 200, "nodeTimeoutMs": 3000}));
    let mut child = project.cco(&["start", "--plain"]).spawn().unwrap();
    let (_, node, session, _) = running_on_a_node(&project, &mut child, "t1");
    let hung = nodes.iter().find(|n| n.name == node).unwrap();
    // SIGSTOP: the connection stays open, nothing answers. Its drop guard kills it later.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(hung.pid() as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    let out = wait_output(child, Duration::from_secs(180));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", project.stderr());
    assert!(
        stdout.contains(&format!("node {node} lost: no heartbeat answer")),
        "{stdout}"
    );
    files_land_once(&project, &IDS, &stdout);
    let summary = summary(&project);
    let t1 = summary_task(&summary, "t1");
    assert_eq!(t1["session_id"], Value::String(session), "{t1}");
    assert_eq!(t1["state"], "done", "{t1}");
}

#[test]
fn a_node_that_restarts_rejoins_and_gets_work() {
    let port = free_port();
    let ids = ["t1", "t2"];
    let (project, cookie) = cluster_project(
        json!({"workerCount": 1, "maxTaskRestarts": 5}),
        hang_once_script(&ids, "t1"),
        &[port],
        json!({}),
    );
    let claude = claude_of(&project);
    let mut node = NodeProc::start(project.dir.path(), "n1", port, 1, &cookie, &claude);
    let mut child = project.cco(&["start", "--plain"]).spawn().unwrap();
    let (_, name, session, _) = running_on_a_node(&project, &mut child, "t1");
    assert_eq!(name, "n1");
    node.kill();
    wait_for_journal(&project, &mut child, "the node lost", |j| {
        j["snapshot"]["nodes"][0]["state"] == "lost"
    });
    let _node = NodeProc::start(project.dir.path(), "n1", port, 1, &cookie, &claude);
    let stdout = completed(&project, wait_output(child, Duration::from_secs(180)));
    assert!(stdout.contains("node n1 (127.0.0.1"), "{stdout}");
    assert!(stdout.contains("rejoined with 1 slots"), "{stdout}");
    files_land_once(&project, &ids, &stdout);
    let summary = summary(&project);
    assert_eq!(summary["nodes"][0]["joins"], 2, "{summary}");
    assert_eq!(summary["nodes"][0]["state"], "rejoined", "{summary}");
    let t1 = summary_task(&summary, "t1");
    assert_eq!(t1["session_id"], Value::String(session), "{t1}");
}

#[test]
fn kill_9_of_the_head_then_resume_finishes_the_run() {
    let ports = [free_port(), free_port()];
    let (project, cookie) = cluster_project(
        json!({"workerCount": 2}),
        hang_once_script(&IDS, "t1"),
        &ports,
        json!({}),
    );
    let claude = claude_of(&project);
    let _nodes = [
        NodeProc::start(project.dir.path(), "n1", ports[0], 2, &cookie, &claude),
        NodeProc::start(project.dir.path(), "n2", ports[1], 2, &cookie, &claude),
    ];
    let mut child = project.cco(&["start", "--plain"]).spawn().unwrap();
    let (_, _, session, pid) = running_on_a_node(&project, &mut child, "t1");
    signal(&child, nix::sys::signal::Signal::SIGKILL);
    child.wait().unwrap();
    // The node ends the dead head's turn by itself.
    cco_testkit::wait_until(
        Duration::from_secs(30),
        "the node ends the dead head's claude",
        || !cco_testkit::process_group_alive(pid),
    );
    let stdout = completed(
        &project,
        project.cco(&["resume", "--plain"]).output().unwrap(),
    );
    files_land_once(&project, &IDS, &stdout);
    let summary = summary(&project);
    let t1 = summary_task(&summary, "t1");
    assert_eq!(t1["session_id"], Value::String(session), "{t1}");
}
