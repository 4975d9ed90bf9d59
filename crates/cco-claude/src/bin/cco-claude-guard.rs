//! The guard that stops a claude process when its parent dies (see `cco_claude::guard`), as a
//! standalone program: `cco-claude-guard --policy stop --grace-ms N --parent-fd FD -- claude ...`.
//! `cco __guard` runs the same code.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(cco_claude::guard::main(std::env::args_os().skip(1)))
}
