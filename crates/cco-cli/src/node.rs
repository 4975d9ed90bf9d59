//! `cco node`: a node of a cluster (see docs/cluster.md). Prints one line when it is ready
//! (`cco node <name> listening on <addr> (<n> slots)`), runs until SIGINT, SIGTERM or SIGHUP
//! (or, with `--stop-with-stdin`, the end of its stdin), then stops its claude processes
//! (SIGTERM, grace, SIGKILL) and exits.

use std::process::ExitCode;
use std::time::Duration;

use cco::cluster::{start_node, NodeOptions};

use crate::cli::NodeArgs;
use crate::commands::{EXIT_CONFIG, EXIT_FAILED};

pub async fn run(args: NodeArgs) -> ExitCode {
    let output = crate::cli::OutputArgs {
        verbose: args.verbose,
        ..Default::default()
    };
    crate::commands::init_tracing(&output);
    let fail = |message: String, code: u8| {
        eprintln!("cco node: {message}");
        ExitCode::from(code)
    };
    let cookie = match cco::cluster::read_cookie(&args.cookie_file) {
        Ok(cookie) => cookie,
        Err(error) => return fail(error.to_string(), EXIT_CONFIG),
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => match cco::cluster::acceptor(cert, key) {
            Ok(acceptor) => Some(acceptor),
            Err(error) => return fail(error.to_string(), EXIT_CONFIG),
        },
        _ => None,
    };
    if tls.is_none() && !args.listen.ip().is_loopback() && !args.insecure_transport {
        return fail(
            format!(
                "{} is not a loopback address: API keys arrive with each turn, so give \
                 --tls-cert and --tls-key (or --insecure-transport to accept plain TCP)",
                args.listen
            ),
            EXIT_CONFIG,
        );
    }
    let claude = match &args.claude {
        Some(path) => path.clone(),
        None => match which::which("claude") {
            Ok(path) => path,
            Err(_) => {
                return fail(
                    "no `claude` on PATH: install Claude Code or pass --claude".into(),
                    EXIT_CONFIG,
                )
            }
        },
    };
    let dir = std::path::absolute(&args.dir).unwrap_or(args.dir.clone());
    let name = args.name.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "node".into());
        format!("{host}-{}", args.listen.port())
    });
    let options = NodeOptions {
        listen: args.listen,
        name,
        slots: args.slots,
        dir,
        claude,
        git_timeout: Duration::from_secs(300),
        // A killed node leaves no claude running.
        guard: std::env::current_exe()
            .ok()
            .map(|exe| cco_claude::GuardSpec::cco(exe, cco_claude::OrphanPolicy::Stop)),
    };
    let node = match start_node(options, cookie, tls).await {
        Ok(node) => node,
        Err(error) => return fail(error.to_string(), EXIT_FAILED),
    };
    println!(
        "cco node {} listening on {} ({} slots)",
        node.name(),
        args.listen,
        args.slots
    );
    if args.stop_with_stdin {
        tokio::select! {
            _ = wait_for_stop() => {}
            _ = cco::cluster::stdin_closed() => eprintln!("cco node: stdin closed"),
        }
    } else {
        wait_for_stop().await;
    }
    eprintln!("cco node: stopping");
    node.stop().await;
    ExitCode::SUCCESS
}

async fn wait_for_stop() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        // Without signal handlers, run until killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = hup.recv() => {}
    }
}
