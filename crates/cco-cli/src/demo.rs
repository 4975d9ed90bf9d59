//! `cco demo`: the offline demo (to be written: see issue 8).

use std::process::ExitCode;

use crate::cli::DemoArgs;

pub async fn run(args: DemoArgs) -> ExitCode {
    let _ = args;
    eprintln!("cco demo: not implemented yet");
    ExitCode::from(1)
}
