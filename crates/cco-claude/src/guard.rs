//! Agents stop when cco dies: a tiny single-threaded guard process between cco and each
//! `claude` process.
//!
//! # Why
//!
//! After `kill -9` of cco, nothing would stop its claude processes: they sit in their own
//! process groups and keep calling the API, unsupervised. `PR_SET_PDEATHSIG` alone does not
//! fit: it fires when the *thread* that forked the child exits, and tokio may spawn from any
//! worker or blocking thread.
//!
//! # How
//!
//! With [`SessionSpec::guard`](crate::SessionSpec::guard) set, [`crate::ClaudeSession::spawn`]
//! runs `<guard program> <guard args> --policy stop --grace-ms N --parent-fd FD -- <claude>
//! <claude args>` instead of claude (the program is the `cco` binary in its hidden mode, `cco
//! __guard`, which calls [`main`]). The driver keeps the write end of a pipe whose read end is
//! the guard's `FD`; nobody else holds the write end (it is close-on-exec), so end-of-file on
//! `FD` means the driver's process is gone, however it died. Then the guard sends SIGTERM to
//! its process group (claude saves its session and exits), waits the grace, and SIGKILLs the
//! group. Sessions stay resumable.
//!
//! Everything else is unchanged for the driver: the guard is the leader of the process group
//! the driver creates and claude runs in that group, so the driver's SIGTERM / grace / SIGKILL
//! of the group still reaches claude (the guard itself ignores SIGTERM, SIGINT, SIGHUP and
//! SIGQUIT: they are claude's to handle); claude's stdio is the driver's pipes; and the guard
//! exits with claude's exit code, or dies of the same signal, so the outcome is judged exactly
//! as without it. As a second line, claude gets `PR_SET_PDEATHSIG(SIGTERM)` towards the guard
//! (safe here: the guard is single-threaded).
//!
//! A guard started outside such a group (not a group leader) first makes its own group, so it
//! never signals processes it did not start. With policy `continue` the guard only passes
//! exit statuses through: claude outlives cco (the behaviour without a guard).

use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, killpg, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpgrp, getpid, setpgid, Pid};

/// The hidden first argument of `cco` that runs [`main`].
pub const GUARD_ARG: &str = "__guard";

/// Exit code of the guard when it cannot do its job (bad arguments, no process group).
pub const GUARD_FAILED: u8 = 125;
/// Exit code when claude cannot be started (as a shell's "not found").
pub const CLAUDE_NOT_STARTED: u8 = 127;

/// What happens to a claude process when cco dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OrphanPolicy {
    /// End it gracefully (SIGTERM, grace, SIGKILL of its group); its session can be resumed.
    #[default]
    Stop,
    /// Let it run to the end of its turn, unsupervised.
    Continue,
}

impl OrphanPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            OrphanPolicy::Stop => "stop",
            OrphanPolicy::Continue => "continue",
        }
    }
}

/// The guard program to run claude under (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardSpec {
    /// E.g. the path of the `cco` binary.
    pub program: PathBuf,
    /// Arguments before the guard's own, e.g. `["__guard"]` for `cco`.
    pub args: Vec<String>,
    pub policy: OrphanPolicy,
}

impl GuardSpec {
    /// `cco __guard` with `policy`: `program` is the running `cco` binary
    /// (`std::env::current_exe()`).
    pub fn cco(program: impl Into<PathBuf>, policy: OrphanPolicy) -> GuardSpec {
        GuardSpec {
            program: program.into(),
            args: vec![GUARD_ARG.to_owned()],
            policy,
        }
    }

    /// The guard's own arguments (before `--` and claude's command line).
    pub(crate) fn guard_args(&self, grace: Duration, parent_fd: Option<RawFd>) -> Vec<String> {
        let mut args = self.args.clone();
        args.extend([
            "--policy".to_owned(),
            self.policy.as_str().to_owned(),
            "--grace-ms".to_owned(),
            grace.as_millis().to_string(),
        ]);
        if let Some(fd) = parent_fd {
            args.extend(["--parent-fd".to_owned(), fd.to_string()]);
        }
        args.push("--".to_owned());
        args
    }
}

/// The pipe whose read end the guard watches; the driver keeps the write end.
pub(crate) fn parent_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

/// Lets `fd` survive the exec of the command (runs in the forked child: only
/// async-signal-safe calls).
pub(crate) fn keep_across_exec(cmd: &mut tokio::process::Command, fd: RawFd) {
    // SAFETY: fcntl is async-signal-safe and `fd` is open in the child (inherited by fork).
    unsafe {
        cmd.pre_exec(move || {
            if nix::libc::fcntl(fd, nix::libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

struct Args {
    policy: OrphanPolicy,
    grace: Duration,
    parent_fd: Option<RawFd>,
    program: OsString,
    program_args: Vec<OsString>,
}

fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args, String> {
    let mut it = args.into_iter();
    let mut policy = OrphanPolicy::Stop;
    let mut grace = Duration::from_secs(5);
    let mut parent_fd = None;
    loop {
        let Some(arg) = it.next() else {
            return Err("missing `-- <claude> <args>`".into());
        };
        let arg = arg.to_string_lossy().into_owned();
        let mut value = |name: &str| {
            it.next()
                .map(|v| v.to_string_lossy().into_owned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--" => break,
            "--policy" => {
                policy = match value("--policy")?.as_str() {
                    "stop" => OrphanPolicy::Stop,
                    "continue" => OrphanPolicy::Continue,
                    other => return Err(format!("unknown policy '{other}' (stop or continue)")),
                }
            }
            "--grace-ms" => {
                let v = value("--grace-ms")?;
                grace =
                    Duration::from_millis(v.parse().map_err(|_| format!("bad --grace-ms '{v}'"))?);
            }
            "--parent-fd" => {
                let v = value("--parent-fd")?;
                parent_fd = Some(v.parse().map_err(|_| format!("bad --parent-fd '{v}'"))?);
            }
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    let program = it.next().ok_or("missing the program to run after `--`")?;
    Ok(Args {
        policy,
        grace,
        parent_fd,
        program,
        program_args: it.collect(),
    })
}

/// Signals the guard takes through its signalfd instead of dying of them.
fn guard_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        set.add(s);
    }
    set
}

/// The guard process: `<args> -- <program> <program args>` (the arguments after the guard's
/// marker). Returns the exit code to exit with; when claude died of a signal it dies of the
/// same signal instead of returning. Must run in a single-threaded process.
pub fn main(args: impl IntoIterator<Item = OsString>) -> u8 {
    let args = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cco guard: {e}");
            return GUARD_FAILED;
        }
    };
    // The parent's pipe: ours only (claude must not inherit it).
    let parent = args
        .parent_fd
        .map(|fd| {
            // SAFETY: the driver passed us this open fd; nothing else in this process uses it.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            let cloexec = nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC);
            let _ = nix::fcntl::fcntl(owned.as_fd(), cloexec);
            owned
        })
        .filter(|_| args.policy == OrphanPolicy::Stop);
    if getpgrp() != getpid() {
        if let Err(e) = setpgid(Pid::from_raw(0), Pid::from_raw(0)) {
            eprintln!("cco guard: cannot make a process group: {e}");
            return GUARD_FAILED;
        }
    }
    let signals = guard_signals();
    let sigfd = match signals
        .thread_block()
        .and_then(|_| SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC))
    {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("cco guard: cannot take signals: {e}");
            return GUARD_FAILED;
        }
    };
    let guard_pid = getpid().as_raw();
    let stop = args.policy == OrphanPolicy::Stop;
    let mut cmd = Command::new(&args.program);
    cmd.args(&args.program_args);
    // SAFETY: only async-signal-safe calls (sigprocmask, prctl, getppid, kill) between fork
    // and exec.
    unsafe {
        cmd.pre_exec(move || {
            let empty = SigSet::empty();
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&empty), None)?;
            if stop {
                nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, nix::libc::SIGTERM);
                if nix::libc::getppid() != guard_pid {
                    // The guard died before prctl: behave as if it had just happened.
                    nix::libc::kill(nix::libc::getpid(), nix::libc::SIGTERM);
                }
            }
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(child) => Pid::from_raw(child.id() as i32),
        Err(e) => {
            eprintln!(
                "cco guard: cannot start {}: {e}",
                PathBuf::from(&args.program).display()
            );
            return CLAUDE_NOT_STARTED;
        }
    };
    supervise(child, &sigfd, parent, args.grace)
}

/// Waits for claude while watching the parent's pipe; see the module docs.
fn supervise(child: Pid, sigfd: &SignalFd, mut parent: Option<OwnedFd>, grace: Duration) -> u8 {
    let mut kill_at: Option<Instant> = None;
    loop {
        if let Some(code) = reap(child) {
            return code;
        }
        let timeout = match kill_at {
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // Grace is over: everything in the group, this guard included.
                    let _ = killpg(getpgrp(), Signal::SIGKILL);
                    return GUARD_FAILED;
                }
                PollTimeout::try_from(left.as_millis().max(1)).unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };
        let sig_borrow: BorrowedFd<'_> = sigfd.as_fd();
        let mut fds = vec![PollFd::new(sig_borrow, PollFlags::POLLIN)];
        if let Some(p) = &parent {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                eprintln!("cco guard: poll failed: {e}");
                return GUARD_FAILED;
            }
        }
        let parent_event = fds
            .get(1)
            .and_then(|f| f.revents())
            .is_some_and(|r| !r.is_empty());
        let signal_event = fds[0].revents().is_some_and(|r| !r.is_empty());
        drop(fds);
        if signal_event {
            // SIGCHLD is handled by `reap` above; the others are claude's business.
            let _ = sigfd.read_signal();
        }
        if parent_event && parent_gone(parent.as_ref()) {
            parent = None;
            // The parent is gone: claude first gets the chance to save its session.
            let _ = killpg(getpgrp(), Signal::SIGTERM);
            kill_at = Some(Instant::now() + grace);
        }
    }
}

/// True when the parent's pipe reports end-of-file (or an error): no writer left.
fn parent_gone(parent: Option<&OwnedFd>) -> bool {
    let Some(fd) = parent else {
        return false;
    };
    let mut buf = [0u8; 64];
    match nix::unistd::read(fd, &mut buf) {
        Ok(0) => true,
        Ok(_) | Err(Errno::EAGAIN) | Err(Errno::EINTR) => false,
        Err(_) => true,
    }
}

/// Claude's exit code once it has ended (dying of its signal first if it was killed).
fn reap(child: Pid) -> Option<u8> {
    match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Some(u8::try_from(code).unwrap_or(1)),
        Ok(WaitStatus::Signaled(_, signal, _)) => Some(die_of(signal)),
        Ok(_) => None,
        Err(Errno::ECHILD) => Some(GUARD_FAILED),
        Err(_) => None,
    }
}

/// Ends the guard with `signal`, so the driver sees what claude died of. Returns the shell's
/// `128 + signal` if the signal does not kill (it always does for the ones that end claude).
fn die_of(signal: Signal) -> u8 {
    // SAFETY: plain libc calls on this process; no other thread exists.
    unsafe {
        let no_core = nix::libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        nix::libc::setrlimit(nix::libc::RLIMIT_CORE, &no_core);
        nix::libc::signal(signal as i32, nix::libc::SIG_DFL);
    }
    let mut set = SigSet::empty();
    set.add(signal);
    let _ = set.thread_unblock();
    let _ = kill(getpid(), signal);
    128u8.wrapping_add(signal as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn arguments() {
        let a = parse(os(&[
            "--policy",
            "continue",
            "--grace-ms",
            "250",
            "--parent-fd",
            "7",
            "--",
            "claude",
            "-p",
            "x",
        ]))
        .unwrap();
        assert_eq!(a.policy, OrphanPolicy::Continue);
        assert_eq!(a.grace, Duration::from_millis(250));
        assert_eq!(a.parent_fd, Some(7));
        assert_eq!(a.program, "claude");
        assert_eq!(a.program_args, os(&["-p", "x"]));
        assert!(parse(os(&["--policy", "maybe", "--", "c"])).is_err());
        assert!(parse(os(&["--"])).is_err());
        assert!(parse(os(&["claude"])).is_err());
        let spec = GuardSpec::cco("/bin/cco", OrphanPolicy::Stop);
        assert_eq!(
            spec.guard_args(Duration::from_secs(5), Some(9)),
            [
                "__guard",
                "--policy",
                "stop",
                "--grace-ms",
                "5000",
                "--parent-fd",
                "9",
                "--"
            ]
        );
    }
}
