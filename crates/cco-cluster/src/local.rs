//! Nodes on this machine as child processes (`cco demo --nodes`, `cco-bench --nodes`):
//! started on free loopback ports, waited for (each prints one line when ready), stopped
//! (SIGTERM, then SIGKILL) when dropped. Each node's stdin is a pipe this process holds, and
//! the node stops when it closes ([`stdin_closed`]): so the nodes also go when this process
//! dies without dropping them (SIGKILL, a panic that aborts), as the kernel closes the pipe.

use std::io::BufRead;
use std::io::Read;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use cco_config::{ClusterConfig, NodeAddress};

/// How long a node may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node may take to stop after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// Running node processes.
pub struct LocalNodes {
    children: Vec<Child>,
    /// The write ends of the nodes' stdin: never written, closed when this process ends.
    stdins: Vec<ChildStdin>,
    /// Each node's ready line.
    pub ready: Vec<String>,
    pub addresses: Vec<NodeAddress>,
}

impl LocalNodes {
    /// Starts `count` nodes: `command(n, port, dir)` is node `n`'s command line (1-based,
    /// listening on 127.0.0.1:`port`, working in `dir`, stopping when its stdin closes, as
    /// `cco node --stop-with-stdin` does); its stderr goes to `<dir>.log`.
    pub fn start(
        dir: &Path,
        count: usize,
        mut command: impl FnMut(usize, u16, &Path) -> Command,
    ) -> Result<LocalNodes, String> {
        let mut nodes = LocalNodes {
            children: Vec::new(),
            stdins: Vec::new(),
            ready: Vec::new(),
            addresses: Vec::new(),
        };
        for n in 1..=count {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free port: {e}"))?
                .port();
            let node_dir = dir.join(format!("node-{n}"));
            std::fs::create_dir_all(&node_dir)
                .map_err(|e| format!("{}: {e}", node_dir.display()))?;
            let log_path = node_dir.with_extension("log");
            let log = std::fs::File::create(&log_path)
                .map_err(|e| format!("{}: {e}", log_path.display()))?;
            let mut child = command(n, port, &node_dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(log)
                .spawn()
                .map_err(|e| format!("cannot start node {n}: {e}"))?;
            let stdout = child.stdout.take();
            nodes.stdins.extend(child.stdin.take());
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
            let line = rx
                .recv_timeout(READY_TIMEOUT)
                .map_err(|_| format!("node {n} did not start (see {})", log_path.display()))?;
            nodes.ready.push(line);
            nodes.addresses.push(NodeAddress {
                address: format!("127.0.0.1:{port}"),
                slots: None,
                server_name: None,
            });
        }
        Ok(nodes)
    }

    /// A cluster config naming these nodes (loopback, no TLS), with the cookie in
    /// `cookie_file`.
    pub fn config(&self, cookie_file: &Path) -> ClusterConfig {
        ClusterConfig {
            cookie_file: cookie_file.to_path_buf(),
            nodes: self.addresses.clone(),
            local_slots: 0,
            tls: None,
            insecure_transport: false,
            heartbeat_ms: 1000,
            node_timeout_ms: 10_000,
            placement_wait_ms: 300_000,
        }
    }
}

impl Drop for LocalNodes {
    fn drop(&mut self) {
        for child in &self.children {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        for child in &mut self.children {
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Resolves when this process's stdin reaches its end or cannot be read. For a node that
/// [`LocalNodes`] started, stdin is a pipe whose other end only the starting process holds:
/// it closes when that process exits, however it exits. Read on a thread of its own, not
/// tokio's blocking pool (a runtime waits for those threads when it shuts down, and this
/// read may never end).
pub async fn stdin_closed() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("stdin-watch".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut sink = [0u8; 256];
            loop {
                match stdin.read(&mut sink) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = tx.send(());
        });
    match spawned {
        // Resolves on the end of stdin (or if the thread died: treated the same).
        Ok(_) => {
            let _ = rx.await;
        }
        // No thread, no watch: never resolves.
        Err(_) => std::future::pending::<()>().await,
    }
}

/// Writes a cookie file readable by its owner only.
pub fn write_cookie(path: &Path, cookie: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("{cookie}\n"))
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)))
        .map_err(|e| format!("{}: {e}", path.display()))
}
