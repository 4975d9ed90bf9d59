//! Signals of the `cco` binary: SIGINT/SIGTERM stop the run (first gracefully, then by
//! force), SIGUSR1 dumps the supervision tree to stderr and into the run folder.

use cco::{OrchestratorHandle, ShutdownMode};
use tokio::signal::unix::{signal, SignalKind};

/// Handles signals for `handle` until the run ends (the task is aborted by the caller).
pub async fn handle_signals(handle: OrchestratorHandle) -> std::io::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut user1 = signal(SignalKind::user_defined1())?;
    loop {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
            _ = user1.recv() => {
                match handle.dump_status() {
                    Ok((text, path)) => eprintln!("{text}(status written to {})", path.display()),
                    Err(error) => eprintln!("cco: cannot write the status dump: {error}"),
                }
                continue;
            }
        };
        match handle.request_stop() {
            ShutdownMode::Graceful => {
                eprintln!("cco: {name}: stopping gracefully (signal again to force)");
            }
            ShutdownMode::Force => eprintln!("cco: {name}: forcing shutdown"),
        }
    }
}
