//! `--nodes N`: the scheduling runs with their workers on N local node processes. Each node
//! is this binary re-executed as `cco-bench __node ...` (the `cco node` daemon of the `cco`
//! library), so its CPU and memory stay out of the head's measurements (RUSAGE_SELF, VmHWM).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cco::cluster::{ClusterConfig, LocalNodes};

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
        // Until SIGTERM, or the end of stdin: the benchmark holds the pipe, so a benchmark
        // killed without stopping its nodes takes them along.
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = cco::cluster::stdin_closed() => {}
                }
            }
            Err(_) => cco::cluster::stdin_closed().await,
        }
        node.stop().await;
        0
    });
    Some(std::process::ExitCode::from(code))
}

/// Starts `count` nodes with `slots` each under `dir`, running `claude`.
pub fn start(
    dir: &Path,
    count: usize,
    slots: usize,
    claude: &Path,
) -> Result<(LocalNodes, ClusterConfig), String> {
    let cookie = dir.join("cookie");
    cco::cluster::write_cookie(&cookie, "cco-bench-cluster-cookie")?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let nodes = LocalNodes::start(dir, count, |n, port, node_dir| {
        let mut cmd = Command::new(&exe);
        cmd.arg(NODE_ARG)
            .arg(format!("127.0.0.1:{port}"))
            .arg(&cookie)
            .arg(slots.to_string())
            .arg(node_dir)
            .arg(claude)
            .arg(format!("node-{n}"));
        cmd
    })?;
    let cluster = nodes.config(&cookie);
    Ok((nodes, cluster))
}
