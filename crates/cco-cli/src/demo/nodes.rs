//! `cco demo --nodes N`: the demo's workers on N `cco node` processes of this machine
//! (127.0.0.1, a fresh cookie), started here and stopped when the demo ends.

use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cco::cluster::{ClusterConfig, NodeAddress};
use cco::RunSummary;

/// The demo's nodes; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct DemoNodes {
    children: Vec<(String, Child)>,
}

impl Drop for DemoNodes {
    fn drop(&mut self) {
        for (_, child) in &self.children {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        for (_, child) in &mut self.children {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `count` nodes for `workers` workers and returns them with the cluster config
/// naming them.
pub fn start(dir: &Path, count: u32, workers: usize) -> Result<(DemoNodes, ClusterConfig), String> {
    let cookie = dir.join("cluster-cookie");
    let secret = format!("demo-{}", uuid_hex());
    std::fs::write(&cookie, format!("{secret}\n"))
        .and_then(|()| std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o600)))
        .map_err(|e| format!("{}: {e}", cookie.display()))?;
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the cco executable: {e}"))?;
    let slots = workers.div_ceil(count as usize).max(1) as u32;
    let mut nodes = DemoNodes {
        children: Vec::new(),
    };
    let mut addresses = Vec::new();
    for i in 1..=count {
        let name = format!("node-{i}");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let node_dir = dir.join("nodes").join(&name);
        std::fs::create_dir_all(&node_dir).map_err(|e| format!("{}: {e}", node_dir.display()))?;
        let log = std::fs::File::create(node_dir.with_extension("log"))
            .map_err(|e| format!("{}: {e}", node_dir.display()))?;
        let mut child = Command::new(&exe)
            .args([
                "node",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--name",
                &name,
            ])
            .args(["--slots", &slots.to_string()])
            .arg("--cookie-file")
            .arg(&cookie)
            .arg("--dir")
            .arg(&node_dir)
            .arg("--claude")
            .arg(dir.join(super::project::WRAPPER))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start a node: {e}"))?;
        let stdout = child.stdout.take();
        nodes.children.push((name.clone(), child));
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(stdout) = stdout {
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                {
                    let _ = tx.send(line);
                }
            });
        }
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => println!("  {line}"),
            Err(_) => {
                return Err(format!(
                    "{name} did not start (see {}.log)",
                    node_dir.display()
                ))
            }
        }
        addresses.push(NodeAddress {
            address: format!("127.0.0.1:{port}"),
            slots: None,
            server_name: None,
        });
    }
    let cluster = ClusterConfig {
        cookie_file: cookie,
        nodes: addresses,
        local_slots: 0,
        tls: None,
        insecure_transport: false,
        heartbeat_ms: 500,
        node_timeout_ms: 5000,
        placement_wait_ms: 120_000,
    };
    Ok((nodes, cluster))
}

fn uuid_hex() -> String {
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
