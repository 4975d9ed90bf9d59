//! The live console: a compact block redrawn in place about four times a second (one line per
//! agent, then totals), with important events printed above it as lines.
//!
//! The frame is a pure function of a [`StatusSnapshot`] (`frame::render_frame`). Drawing uses
//! crossterm (cursor up, clear to the end of the screen) and never switches the terminal to
//! raw mode or the alternate screen, so the only state to restore is the hidden cursor:
//! [`LiveGuard`] shows it again when the view ends, however it ends (run finished, task
//! aborted, panic). Ctrl-C is handled by `unix.rs`, which asks the run to stop; the view keeps
//! drawing until the run has ended and then restores the terminal.
//!
//! Anything written to stderr would scramble a block redrawn on stdout (the cursor moves up
//! by the block's height, not knowing a line was added), so while the view is active and
//! stderr is a terminal too, stderr goes through a pipe whose lines are printed above the
//! block ([`StderrCapture`]): `eprintln!`s (the signal handler's messages, the SIGUSR1 dump),
//! panics, and the binary's tracing lines ([`StderrWriter`] takes a shorter path).

mod frame;

use std::io::{IsTerminal, Read, Write};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use cco::{OrchestratorHandle, RunEvent};
use crossterm::{cursor, queue, style::Print, terminal};
use tokio::sync::{broadcast, watch};

pub use frame::format_duration;
use frame::{fit_height, render_frame, truncate};

/// Redraw period of the live block.
const REDRAW: Duration = Duration::from_millis(250);

/// Events that get a line above the live block.
pub fn is_important(event: &RunEvent) -> bool {
    matches!(
        event,
        RunEvent::RunStarted { .. }
            | RunEvent::Planned { .. }
            | RunEvent::TaskFailed { .. }
            | RunEvent::TaskRevised { .. }
            | RunEvent::Merged { .. }
            | RunEvent::Conflict { .. }
            | RunEvent::KeyBenched { .. }
            | RunEvent::Paused { .. }
            | RunEvent::ApiOverloaded { .. }
            | RunEvent::AgentWarning { .. }
            | RunEvent::ActorRestarted { .. }
            | RunEvent::Warning { .. }
            | RunEvent::RunFinished { .. }
    )
}

// ---------------------------------------------------------------------------------------------
// The terminal.

/// The block on screen. One per process (there is one stdout); the tracing writer reaches it
/// through [`CONSOLE`].
struct Console {
    active: bool,
    /// Whether stderr is the same kind of thing (a terminal) and must go above the block.
    stderr_terminal: bool,
    /// Lines of the block currently on screen, below which the cursor sits.
    drawn: usize,
    frame: Vec<String>,
    /// The terminal that was stderr before [`StderrCapture`] put a pipe in its place.
    real_stderr: Option<std::fs::File>,
}

static CONSOLE: Mutex<Console> = Mutex::new(Console {
    active: false,
    stderr_terminal: false,
    drawn: 0,
    frame: Vec::new(),
    real_stderr: None,
});

fn console() -> MutexGuard<'static, Console> {
    CONSOLE.lock().unwrap_or_else(|p| p.into_inner())
}

impl Console {
    fn clear(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if self.drawn > 0 {
            queue!(
                out,
                cursor::MoveToPreviousLine(self.drawn as u16),
                terminal::Clear(terminal::ClearType::FromCursorDown)
            )?;
            self.drawn = 0;
        }
        Ok(())
    }

    fn draw(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        for line in &self.frame {
            queue!(
                out,
                Print(line),
                terminal::Clear(terminal::ClearType::UntilNewLine),
                Print("\r\n")
            )?;
        }
        self.drawn = self.frame.len();
        Ok(())
    }

    fn redraw(&mut self, frame: Vec<String>) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        queue!(out, terminal::BeginSynchronizedUpdate)?;
        self.clear(&mut out)?;
        self.frame = frame;
        self.draw(&mut out)?;
        queue!(out, terminal::EndSynchronizedUpdate)?;
        out.flush()
    }

    /// Prints `text` (one or more lines) above the block, on stdout or stderr.
    fn print_above(&mut self, text: &[u8], to_stderr: bool) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        self.clear(&mut out)?;
        if to_stderr {
            out.flush()?;
            let mut err: Box<dyn Write> = match &self.real_stderr {
                Some(file) => Box::new(file),
                None => Box::new(std::io::stderr().lock()),
            };
            err.write_all(text)?;
            if !text.ends_with(b"\n") {
                err.write_all(b"\n")?;
            }
            err.flush()?;
        } else {
            out.write_all(text)?;
            if !text.ends_with(b"\n") {
                out.write_all(b"\n")?;
            }
        }
        self.draw(&mut out)?;
        out.flush()
    }
}

/// Active while the live view is on; restores the terminal (and stderr) when dropped.
pub struct LiveGuard {
    capture: Option<StderrCapture>,
}

impl LiveGuard {
    fn start() -> LiveGuard {
        let stderr_terminal = std::io::stderr().is_terminal();
        {
            let mut c = console();
            c.active = true;
            c.stderr_terminal = stderr_terminal;
            c.drawn = 0;
            c.frame.clear();
        }
        let capture = if stderr_terminal {
            StderrCapture::start()
        } else {
            None
        };
        let mut out = std::io::stdout().lock();
        let _ = queue!(out, cursor::Hide);
        let _ = out.flush();
        LiveGuard { capture }
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if let Some(capture) = self.capture.take() {
            capture.stop();
        }
        // The last frame stays on screen as the run's final picture; only the cursor comes back.
        let mut c = console();
        c.active = false;
        c.drawn = 0;
        c.real_stderr = None;
        let mut out = std::io::stdout().lock();
        let _ = queue!(out, cursor::Show, terminal::EndSynchronizedUpdate);
        let _ = out.flush();
    }
}

/// stderr replaced by a pipe while the live view is on; a thread prints its lines above the
/// block on the real stderr.
struct StderrCapture {
    saved: std::os::fd::OwnedFd,
    finished: std::sync::mpsc::Receiver<()>,
}

impl StderrCapture {
    fn start() -> Option<StderrCapture> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        use std::os::fd::{FromRawFd, OwnedFd};
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ok()?;
        // Copies of the terminal, not inherited by claude or git processes.
        let dup_cloexec = || -> Option<OwnedFd> {
            let fd = fcntl(std::io::stderr(), FcntlArg::F_DUPFD_CLOEXEC(3)).ok()?;
            // SAFETY: fcntl just returned this new descriptor; nothing else owns it.
            Some(unsafe { OwnedFd::from_raw_fd(fd) })
        };
        let saved = dup_cloexec()?;
        let for_console = std::fs::File::from(dup_cloexec()?);
        let mut for_thread = std::fs::File::from(dup_cloexec()?);
        console().real_stderr = Some(for_console);
        if nix::unistd::dup2_stderr(&write).is_err() {
            console().real_stderr = None;
            return None;
        }
        drop(write);
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("cco-stderr".into())
            .spawn(move || {
                let mut pipe = std::fs::File::from(read);
                let mut pending: Vec<u8> = Vec::new();
                let mut buf = [0u8; 8192];
                loop {
                    let n = match pipe.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    pending.extend_from_slice(&buf[..n]);
                    // Whole lines only: a message written in pieces stays one line.
                    if let Some(end) = pending.iter().rposition(|b| *b == b'\n') {
                        let lines: Vec<u8> = pending.drain(..=end).collect();
                        forward(&lines, &mut for_thread);
                    }
                }
                if !pending.is_empty() {
                    forward(&pending, &mut for_thread);
                }
                let _ = done.send(());
            })
            .ok()?;
        Some(StderrCapture { saved, finished })
    }

    /// Puts the terminal back as stderr and lets the thread print what is left in the pipe.
    fn stop(self) {
        let _ = nix::unistd::dup2_stderr(&self.saved);
        // A child process that inherited the pipe keeps it open: do not wait for it long.
        let _ = self.finished.recv_timeout(Duration::from_millis(500));
    }
}

fn forward(text: &[u8], real_stderr: &mut std::fs::File) {
    let mut c = console();
    if c.active {
        let _ = c.print_above(text, true);
    } else {
        let _ = real_stderr.write_all(text);
    }
}

/// The tracing writer of the binary: stderr, but above the live block while it is on screen.
#[derive(Clone, Copy, Default)]
pub struct StderrWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrWriter {
    type Writer = StderrWriter;
    fn make_writer(&'a self) -> Self::Writer {
        StderrWriter
    }
}

impl Write for StderrWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        {
            let mut c = console();
            if c.active && c.stderr_terminal {
                c.print_above(buf, true)?;
                return Ok(buf.len());
            }
        }
        std::io::stderr().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// True when the live view can draw: stdout is a terminal that understands cursor movement.
pub fn supported() -> bool {
    std::io::stdout().is_terminal() && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(true)
}

fn terminal_size() -> (usize, usize) {
    terminal::size()
        .map(|(w, h)| (w as usize, h as usize))
        .unwrap_or((100, 40))
}

/// Draws the live view until `done` turns true (the run has ended), then draws the last
/// frame and restores the terminal.
pub async fn run(
    handle: OrchestratorHandle,
    mut events: broadcast::Receiver<RunEvent>,
    mut done: watch::Receiver<bool>,
) {
    let _guard = LiveGuard::start();
    let mut tick = tokio::time::interval(REDRAW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => draw_frame(&handle),
            event = events.recv() => match event {
                Ok(event) => show_event(&event),
                Err(broadcast::error::RecvError::Lagged(missed)) => print_line(&format!("… {missed} events skipped")),
                Err(broadcast::error::RecvError::Closed) => break,
            },
            changed = done.changed() => {
                if changed.is_err() || *done.borrow() {
                    break;
                }
            }
        }
    }
    // What was sent before the end still gets its line.
    while let Ok(event) = events.try_recv() {
        show_event(&event);
    }
    draw_frame(&handle);
}

fn draw_frame(handle: &OrchestratorHandle) {
    let (width, height) = terminal_size();
    // One column short of the width: a line that fills it exactly wraps on some terminals.
    let width = width.saturating_sub(1).max(20);
    let frame = fit_height(
        render_frame(&handle.status(), width),
        height.saturating_sub(1),
    )
    .iter()
    .map(|line| truncate(line, width))
    .collect();
    let _ = console().redraw(frame);
}

fn show_event(event: &RunEvent) {
    if is_important(event) {
        if let Some(line) = crate::output::plain_line(event) {
            print_line(&line);
        }
    }
}

fn print_line(line: &str) {
    let text = format!("{} {line}", chrono::Local::now().format("%H:%M:%S"));
    let _ = console().print_above(text.as_bytes(), false);
}
