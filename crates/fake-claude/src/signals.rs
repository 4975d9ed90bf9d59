//! SIGTERM / SIGINT handling without async-signal-unsafe handlers: both signals are blocked in
//! every thread (before any thread exists) and one thread takes them with `sigwait`.
//!
//! - SIGTERM: kill the running Bash tool's process tree, exit 143, no result (unless
//!   `ignore_sigterm` was played). Processes from `spawn_grandchild` are left alone on purpose:
//!   they are there to check that the orchestrator kills the whole process group.
//! - SIGINT: kill the Bash tool, print the aborted `result`, exit 0.
//!
//! Children get the signals unblocked again (`pre_exec`), or a group-wide SIGTERM from the
//! orchestrator would not reach them.

use crate::events::{self, Ctx, Ending};
use crate::out;
use nix::sys::signal::{kill, pthread_sigmask, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The turn in progress, for SIGINT's result.
struct Turn {
    ctx: Ctx,
    start: Instant,
    num_turns: u32,
    cost: f64,
}

static TURN: Mutex<Option<Turn>> = Mutex::new(None);
/// Pid of the running Bash tool child.
static CHILD: Mutex<Option<u32>> = Mutex::new(None);
static IGNORE_TERM: AtomicBool = AtomicBool::new(false);

fn lock<T>(m: &'static Mutex<T>) -> MutexGuard<'static, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn set() -> SigSet {
    let mut s = SigSet::empty();
    s.add(Signal::SIGTERM);
    s.add(Signal::SIGINT);
    s
}

/// Blocks SIGTERM/SIGINT in the calling thread; threads spawned later inherit the mask.
/// Must run first in `main`.
pub fn block() {
    if let Err(e) = set().thread_block() {
        eprintln!("fake-claude: cannot block signals: {e}");
    }
}

/// Starts the thread that receives SIGTERM/SIGINT.
pub fn start() {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(|| loop {
            match set().wait() {
                Ok(Signal::SIGTERM) if IGNORE_TERM.load(Ordering::SeqCst) => {}
                Ok(Signal::SIGTERM) => on_sigterm(),
                Ok(Signal::SIGINT) => on_sigint(),
                _ => {}
            }
        })
        .expect("spawn signal thread");
}

pub fn ignore_sigterm(on: bool) {
    IGNORE_TERM.store(on, Ordering::SeqCst);
}

fn on_sigterm() -> ! {
    // Hold the output lock so no line is cut in half, then stop the tool and leave.
    let _out = out::lock_with_patience(Duration::from_secs(1));
    kill_child();
    crate::hard_exit(143)
}

fn on_sigint() -> ! {
    let out = out::lock_with_patience(Duration::from_secs(1));
    kill_child();
    if let (Some(mut out), Some(t)) = (out, lock(&TURN).take()) {
        out.event(events::user_text(&t.ctx, "[Request interrupted by user]"));
        let ending = Ending::Aborted;
        let ms = t.start.elapsed().as_millis() as u64;
        out.result(
            events::result(&t.ctx, &ending, t.num_turns + 1, t.cost, ms),
            &ending.text(),
        );
    }
    crate::hard_exit(0)
}

/// Records the turn in progress (SIGINT reports it).
pub fn begin_turn(ctx: &Ctx, start: Instant, cost: f64) {
    *lock(&TURN) = Some(Turn {
        ctx: ctx.clone(),
        start,
        num_turns: 0,
        cost,
    });
}

pub fn set_num_turns(n: u32) {
    if let Some(t) = lock(&TURN).as_mut() {
        t.num_turns = n;
    }
}

/// Call while holding the output lock, right after writing the result, so a SIGINT can't
/// print a second one.
pub fn end_turn() {
    *lock(&TURN) = None;
}

/// Makes `cmd`'s child start with SIGTERM/SIGINT unblocked.
pub fn unblock_in_child(cmd: &mut Command) -> &mut Command {
    // SAFETY: pthread_sigmask is async-signal-safe; the SigSet is built before fork.
    let s = set();
    unsafe {
        cmd.pre_exec(move || {
            pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&s), None).map_err(std::io::Error::from)
        })
    }
}

/// Spawns the Bash tool child and registers it so a signal can kill it. The registration is
/// done under the same lock the signal thread takes, so no child escapes unnoticed.
pub fn spawn_tool(cmd: &mut Command) -> std::io::Result<Child> {
    let mut slot = lock(&CHILD);
    let child = unblock_in_child(cmd).spawn()?;
    *slot = Some(child.id());
    Ok(child)
}

pub fn tool_done() {
    *lock(&CHILD) = None;
}

/// SIGKILLs the Bash tool child and all its descendants (like the real CLI, whose killed tool
/// reports exit code 137).
fn kill_child() {
    let Some(pid) = lock(&CHILD).take() else {
        return;
    };
    let mut victims = descendants(pid as i32);
    victims.push(pid as i32);
    for p in victims {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
}

/// All descendants of `root`, from `/proc/*/stat` parent links.
fn descendants(root: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let links: Vec<(i32, i32)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 2..];
            let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            links
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}
