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
    let out = wait_output(
        project.cco(&["start", "--plain"]).spawn().unwrap(),
        Duration::from_secs(180),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", project.stderr());
    assert!(stdout.contains("run finished: complete"), "{stdout}");
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
