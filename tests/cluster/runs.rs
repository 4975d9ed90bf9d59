//! Runs with workers on nodes.

use std::time::Duration;

use serde_json::json;

use crate::cluster::*;

#[test]
fn a_hierarchy_run_completes_with_workers_on_both_nodes() {
    let ports = [free_port(), free_port()];
    let (project, cookie) = cluster_project(
        hierarchy_config(),
        two_team_script(vec![]),
        &ports,
        json!({}),
    );
    let claude = claude_of(&project);
    let _n1 = NodeProc::start(project.dir.path(), "n1", ports[0], 2, &cookie, &claude);
    let _n2 = NodeProc::start(project.dir.path(), "n2", ports[1], 2, &cookie, &claude);
    let stdout = completed(
        &project,
        wait_output(
            project.cco(&["start", "--plain"]).spawn().unwrap(),
            Duration::from_secs(180),
        ),
    );
    for id in ["a1", "a2", "b1", "b2"] {
        assert_eq!(
            commits_adding(&project, &format!("{id}.txt")),
            1,
            "{id}\n{stdout}"
        );
    }
    let summary = summary(&project);
    let nodes: Vec<String> = summary["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["node"].as_str().map(str::to_string))
        .collect();
    assert!(
        nodes.contains(&"n1".to_string()) && nodes.contains(&"n2".to_string()),
        "{nodes:?}\n{stdout}"
    );
    let records = summary["nodes"].as_array().cloned().unwrap_or_default();
    assert_eq!(records.len(), 2, "{summary}");
    for node in &records {
        assert!(node["bundle_bytes_sent"].as_u64().unwrap() > 0, "{node}");
        assert!(
            node["bundle_bytes_received"].as_u64().unwrap() > 0,
            "{node}"
        );
    }
    assert!(
        stdout.contains("runs on node n1") && stdout.contains("runs on node n2"),
        "{stdout}"
    );
}

#[test]
fn the_demo_runs_its_workers_on_two_local_nodes_and_says_where() {
    let dir = cco_testkit::temp_dir();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cco"))
        .args(["demo", "--plain", "--nodes", "2", "--dir"])
        .arg(dir.path().join("demo"))
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("where the workers ran:"), "{stdout}");
    for node in ["node-1", "node-2"] {
        assert!(stdout.contains(&format!("on {node}")), "{stdout}");
        assert!(
            stdout.contains(&format!("cco node {node} listening on 127.0.0.1:")),
            "{stdout}"
        );
    }
    assert!(stdout.contains("6 tasks done by 2 teams"), "{stdout}");
}

/// The pids of `cco node` processes whose command line names `dir`.
fn nodes_under(dir: &std::path::Path) -> Vec<u32> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(" node --listen ") && cmd.contains(&dir)
        })
        .collect()
}

#[test]
fn the_demos_nodes_go_when_the_demo_is_killed_with_sigkill() {
    let dir = cco_testkit::temp_dir();
    let demo = dir.path().join("demo");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cco"))
        .args(["demo", "--plain", "--nodes", "2", "--dir"])
        .arg(&demo)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Both nodes printed their ready line (the demo prints them once all are ready).
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while seen < 2 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the demo's nodes did not start");
        if line.contains("cco node node-") && line.contains("listening on") {
            seen += 1;
        }
    }
    let nodes = nodes_under(&demo);
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    child.kill().unwrap(); // SIGKILL: the demo cannot stop its nodes itself
    child.wait().unwrap();
    cco_testkit::wait_until(Duration::from_secs(60), "the nodes to exit", || {
        nodes_under(&demo).is_empty()
    });
}

/// Workers that start together on one node send it the start commit once: the first turn
/// sends the history, the others wait for that bundle and then send nothing (before, each
/// sent the node the whole history).
#[test]
fn workers_starting_together_on_a_node_send_it_the_history_once() {
    let ids = ["t1", "t2", "t3", "t4"];
    let ports = [free_port()];
    let (project, cookie) = cluster_project(
        json!({"workerCount": 4}),
        crate::harness::simple_script(&ids, None),
        &ports,
        json!({}),
    );
    // What the history the workers start from weighs as a bundle.
    let full = project.dir.path().join("full.bundle");
    cco_testkit::git(
        &project.source,
        &["bundle", "create", full.to_str().unwrap(), "main"],
    );
    let full = std::fs::metadata(&full).unwrap().len();
    let claude = claude_of(&project);
    let _n1 = NodeProc::start(project.dir.path(), "n1", ports[0], 4, &cookie, &claude);
    completed(
        &project,
        wait_output(
            project.cco(&["start", "--plain"]).spawn().unwrap(),
            Duration::from_secs(180),
        ),
    );
    for id in ids {
        assert_eq!(commits_adding(&project, &format!("{id}.txt")), 1, "{id}");
    }
    let summary = summary(&project);
    let on_node = summary["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["node"].as_str() == Some("n1"))
        .count();
    assert_eq!(on_node, 4, "every worker ran on the node\n{summary:#}");
    let sent = summary["nodes"][0]["bundle_bytes_sent"].as_u64().unwrap();
    assert!(sent > 0, "{summary:#}");
    assert!(
        sent < full * 2,
        "{sent} bytes of bundles for 4 first turns from one commit whose history weighs {full}"
    );
}
