//! `cco logs <agent>`: an agent's log of the running or last run (to be written: issue 6).

use std::process::ExitCode;

use crate::cli::LogsArgs;

pub async fn run(args: LogsArgs) -> ExitCode {
    let _ = args;
    eprintln!("cco logs: not implemented yet");
    ExitCode::from(1)
}
