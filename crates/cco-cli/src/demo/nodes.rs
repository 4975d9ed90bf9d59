//! `cco demo --nodes N`: the demo's workers on N `cco node` processes of this machine
//! (127.0.0.1, a fresh cookie), started here and stopped when the demo ends.

use std::path::Path;
use std::process::Command;

use cco::cluster::{ClusterConfig, LocalNodes};
use cco::RunSummary;

/// Starts `count` nodes for `workers` workers; returns them with the cluster config naming
/// them.
pub fn start(
    dir: &Path,
    count: u32,
    workers: usize,
) -> Result<(LocalNodes, ClusterConfig), String> {
    let cookie = dir.join("cluster-cookie");
    cco::cluster::write_cookie(&cookie, &format!("demo-{}", random_hex()))?;
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the cco executable: {e}"))?;
    let slots = workers.div_ceil(count as usize).max(1);
    let claude = dir.join(super::project::WRAPPER);
    let nodes = LocalNodes::start(&dir.join("nodes"), count as usize, |n, port, node_dir| {
        let mut cmd = Command::new(&exe);
        cmd.args(["node", "--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--name",
                &format!("node-{n}"),
                "--slots",
                &slots.to_string(),
            ])
            .arg("--cookie-file")
            .arg(&cookie)
            .arg("--dir")
            .arg(node_dir)
            .arg("--claude")
            .arg(&claude)
            .arg("--stop-with-stdin");
        cmd
    })?;
    for line in &nodes.ready {
        println!("  {line}");
    }
    let mut cluster = nodes.config(&cookie);
    cluster.heartbeat_ms = 500;
    cluster.node_timeout_ms = 5000;
    Ok((nodes, cluster))
}

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// "which worker ran where", and what crossed the link.
pub fn recap(out: &mut impl std::io::Write, summary: &RunSummary) {
    let _ = writeln!(out);
    let _ = writeln!(out, "where the workers ran:");
    let mut workers: Vec<(&str, &str)> = summary
        .agents
        .iter()
        .filter(|a| a.role == cco::Role::Worker)
        .map(|a| (a.id.as_str(), a.node.as_deref().unwrap_or("this machine")))
        .collect();
    workers.sort();
    for (worker, node) in workers {
        let _ = writeln!(out, "  {worker:<10} on {node}");
    }
    for node in &summary.nodes {
        let _ = writeln!(
            out,
            "  {} ({}): {} slots, joined {} time(s), bundles {} B sent / {} B received, session files {} B",
            node.name,
            node.address,
            node.slots,
            node.joins,
            node.bundle_bytes_sent,
            node.bundle_bytes_received,
            node.session_bytes_received
        );
    }
}
