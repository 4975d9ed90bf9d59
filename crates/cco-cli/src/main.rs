//! `cco`: run a team of Claude Code agents on one repository.
//!
//! Layout: [`cli`] (clap definitions), [`commands`] (dispatch, start, status, config
//! loading), [`check`] (the config summary), [`init`] (the interactive setup), [`logs`],
//! [`demo`], [`node`] (`cco node`), [`output`] and [`live`] (how run events are shown), [`term`]
//! (colour, log level, terminal detection), [`ui`] (the web dashboard: `--ui`, `cco ui`), `unix`
//! (signal handling: the binary, not the library, owns signals).
//! `main` maps every outcome to an [`ExitCode`]; nothing calls `process::exit`.

mod check;
mod cli;
mod commands;
mod demo;
mod init;
mod live;
mod logs;
mod node;
mod output;
mod term;
mod ui;
mod unix;

use std::process::ExitCode;

use clap::Parser;

/// Caps glibc's malloc arenas at two. cco's tasks move between threads (tokio's workers, its
/// blocking pool) and glibc gives each allocating thread an arena of its own, never handed
/// back: at 100 workers that held about 30 MiB more than the live heap (peak RSS 70 MiB
/// against 40 MiB with two arenas, at the same CPU). A process-wide setting, so the binary
/// makes it, not the library. mimalloc was tried and held far more (about 300 MiB).
fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before any other thread
    // exists.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
    }
}

fn main() -> ExitCode {
    cap_malloc_arenas();
    // `cco __guard ... -- claude ...`: the single-threaded guard that stops a claude process
    // when cco dies (`cco_claude::guard`). First, before any thread exists.
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(cco_claude::guard::GUARD_ARG))
    {
        return ExitCode::from(cco_claude::guard::main(std::env::args_os().skip(2)));
    }
    // `cco __fake-claude ...`: the demo's offline stand-in for claude (see `demo`). Checked
    // before anything else, while the process has a single thread.
    if let Some(code) = demo::fake_claude_entry() {
        return code;
    }
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cco: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(commands::run(cli))
}
