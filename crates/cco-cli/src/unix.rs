//! Signals of the `cco` binary: SIGINT, SIGTERM, SIGHUP and SIGQUIT stop the run (first
//! gracefully, then by force; the run's outcome names the signal, so cco exits with 128 + its
//! number), SIGUSR1 dumps the supervision tree to stderr and into the run folder.

use cco::{OrchestratorHandle, ShutdownMode};
use tokio::signal::unix::{signal, SignalKind};

/// Handles signals for `handle` until the run ends (the task is aborted by the caller).
pub async fn handle_signals(handle: OrchestratorHandle) -> std::io::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut user1 = signal(SignalKind::user_defined1())?;
    loop {
        let (name, number) = tokio::select! {
            _ = interrupt.recv() => ("SIGINT", nix::libc::SIGINT),
            _ = terminate.recv() => ("SIGTERM", nix::libc::SIGTERM),
            _ = hangup.recv() => ("SIGHUP", nix::libc::SIGHUP),
            _ = quit.recv() => ("SIGQUIT", nix::libc::SIGQUIT),
            _ = user1.recv() => {
                match handle.dump_status() {
                    Ok((text, path)) => eprintln!("{text}(status written to {})", path.display()),
                    Err(error) => eprintln!("cco: cannot write the status dump: {error}"),
                }
                continue;
            }
        };
        match handle.request_stop_for_signal(number) {
            ShutdownMode::Graceful => {
                eprintln!("cco: {name}: stopping gracefully (signal again to force)");
            }
            ShutdownMode::Force => eprintln!("cco: {name}: forcing shutdown"),
        }
    }
}
