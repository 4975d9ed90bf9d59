//! `--nodes N`: the scheduling runs with their workers on N local node processes. Each node
//! is this binary re-executed as `cco-bench __node ...` (the `cco node` daemon of the `cco`
//! library), so its CPU and memory stay out of the head's measurements (RUSAGE_SELF, VmHWM).

use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cco::cluster::{ClusterConfig, NodeAddress};

/// The first argument of the node mode.
pub const NODE_ARG: &str = "__node";

/// `cco-bench __node <listen> <cookie file> <slots> <dir> <claude>`: runs a node until
/// SIGTERM. Returns the exit code, or `None` when this is not the node mode.
pub fn node_entry() -> Option<std::process::ExitCode> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(NODE_ARG) {
        return None;
    }
    let [listen, cookie, slots, dir, claude, name] = match &args[2..] {
        [a, b, c, d, e, f] => [a, b, c, d, e, f],
        _ => {
            eprintln!("usage: cco-bench {NODE_ARG} LISTEN COOKIE SLOTS DIR CLAUDE NAME");
            return Some(std::process::ExitCode::FAILURE);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .ok()?;
    let code = runtime.block_on(async {
        let cookie = match cco::cluster::read_cookie(Path::new(cookie)) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("node: {e}");
                return 2;
            }
        };
        let options = cco::cluster::NodeOptions {
            listen: match listen.parse() {
                Ok(a) => a,
                Err(_) => return 2,
            },
            name: name.clone(),
            slots: slots.parse().unwrap_or(1),
            dir: dir.into(),
            claude: claude.into(),
            git_timeout: Duration::from_secs(300),
            guard: None,
        };
        let node = match cco::cluster::start_node(options, cookie, None).await {
            Ok(node) => node,
            Err(e) => {
                eprintln!("node: {e}");
                return 1;
            }
        };
        println!("ready");
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            term.recv().await;
        }
        node.stop().await;
        0
    });
    Some(std::process::ExitCode::from(code))
}

/// Node processes, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Nodes {
    children: Vec<Child>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &self.children {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        for child in &mut self.children {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while std::time::Instant::now() < deadline && child.try_wait().ok().flatten().is_none()
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `count` nodes with `slots` each under `dir`, running `claude`.
pub fn start(
    dir: &Path,
    count: usize,
    slots: usize,
    claude: &Path,
) -> Result<(Nodes, ClusterConfig), String> {
    let cookie = dir.join("cookie");
    std::fs::write(&cookie, "cco-bench-cluster-cookie\n").map_err(|e| e.to_string())?;
    std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut nodes = Nodes {
        children: Vec::new(),
    };
    let mut addresses = Vec::new();
    for i in 1..=count {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let node_dir = dir.join(format!("node-{i}"));
        std::fs::create_dir_all(&node_dir).map_err(|e| e.to_string())?;
        let log =
            std::fs::File::create(node_dir.with_extension("log")).map_err(|e| e.to_string())?;
        let mut child = Command::new(&exe)
            .arg(NODE_ARG)
            .arg(format!("127.0.0.1:{port}"))
            .arg(&cookie)
            .arg(slots.to_string())
            .arg(&node_dir)
            .arg(claude)
            .arg(format!("node-{i}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.take();
        nodes.children.push(child);
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
        rx.recv_timeout(Duration::from_secs(60))
            .map_err(|_| format!("node {i} did not start"))?;
        addresses.push(NodeAddress {
            address: format!("127.0.0.1:{port}"),
            slots: None,
            server_name: None,
        });
    }
    Ok((
        nodes,
        ClusterConfig {
            cookie_file: cookie,
            nodes: addresses,
            local_slots: 0,
            tls: None,
            insecure_transport: false,
            heartbeat_ms: 1000,
            node_timeout_ms: 10_000,
            placement_wait_ms: 300_000,
        },
    ))
}
