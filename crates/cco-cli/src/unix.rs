//! Signals of the `cco` binary: SIGINT, SIGTERM, SIGHUP (the terminal went away) and SIGQUIT
//! stop the run (the first gracefully, any later one by force; the run's outcome names the
//! signal, so cco exits with 128 + its number), SIGUSR1 dumps the supervision tree to stderr
//! and into the run folder.

use cco::{OrchestratorHandle, ShutdownMode};
use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};

/// Handles signals for `handle` until the run ends (the task is aborted by the caller).
pub async fn handle_signals(handle: OrchestratorHandle) -> std::io::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut user1 = signal(SignalKind::user_defined1())?;
    loop {
        let stop = tokio::select! {
            _ = interrupt.recv() => Signal::SIGINT,
            _ = terminate.recv() => Signal::SIGTERM,
            _ = hangup.recv() => Signal::SIGHUP,
            _ = quit.recv() => Signal::SIGQUIT,
            _ = user1.recv() => {
                match handle.dump_status() {
                    Ok((text, path)) => eprintln!("{text}(status written to {})", path.display()),
                    Err(error) => eprintln!("cco: cannot write the status dump: {error}"),
                }
                continue;
            }
        };
        let name = stop.as_str();
        match handle.request_stop_for_signal(stop as i32) {
            ShutdownMode::Graceful => {
                eprintln!("cco: {name}: stopping gracefully (signal again to force)");
            }
            ShutdownMode::Force => eprintln!("cco: {name}: forcing shutdown"),
        }
    }
}
