//! [`ClaudeSession::spawn`]: one `claude` process in its own process group, driven by one
//! owner task.
//!
//! The owner task owns the `Child`. It reads stdout (bounded lines, see [`crate::parse`]) and
//! stderr, forwards [`SessionUpdate`]s, enforces the wall-clock, idle and after-result timers,
//! obeys the control channel of the [`SessionHandle`] and, when that channel closes (handle
//! dropped), terminates the group. Termination is SIGTERM to the group, `kill_grace`, then
//! SIGKILL. When the main process has exited, the rest of its group gets SIGKILL (no
//! grandchild survives) and the child is reaped (no zombie). If the owner task itself is
//! dropped (runtime shutdown, panic), a guard SIGKILLs the group.
//!
//! The receiver of updates may be dropped at any time: the owner keeps running and still
//! kills and reaps. [`SessionUpdate::Finished`] is always the last update.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::fs::File;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::process::{Child, ChildStderr, ChildStdout};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Instant};
use tracing::Instrument;

use std::os::fd::AsRawFd;

use crate::error::DriverError;
use crate::events::{StreamEvent, SystemEvent};
use crate::guard::OrphanPolicy;
use crate::outcome::{ExitInfo, KillReason, OutcomeBuilder, SessionOutcome};
use crate::parse::{classify, excerpt, BoundedLines, Classified, Line, MalformedReason};
use crate::spec::{Redactor, SessionSpec};
use crate::unix;

/// Longest stderr line kept whole (longer ones are reported shortened).
const MAX_STDERR_LINE: usize = 64 * 1024;
/// After the main process exited (and its group got SIGKILL), how long to keep reading
/// pipes that something outside the group may still hold open.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(3);

/// What the owner task reports, in order. `Finished` is always last.
#[derive(Debug, Clone)]
// `Finished` is sent once per process; boxing it would change the type every caller matches.
#[allow(clippy::large_enum_variant)]
pub enum SessionUpdate {
    Started {
        pid: u32,
    },
    Event(Box<StreamEvent>),
    /// A stdout line that is not an event (skipped). `error` is one line for people (for an
    /// over-long line it says how long it was); `excerpt` has at most 200 chars. See
    /// [`SessionUpdate::warning`] for the text an agent's log should record.
    Malformed {
        line_no: u64,
        error: String,
        excerpt: String,
        reason: MalformedReason,
    },
    /// One stderr line.
    Stderr(String),
    Finished(SessionOutcome),
}

impl SessionUpdate {
    /// The warning this update deserves in the agent's log, if any: a skipped stdout line,
    /// e.g. `stream line 12 skipped: line of 52428800 bytes (50.0 MiB) is longer than the limit
    /// of 8388608 bytes (8.0 MiB): skipped`.
    pub fn warning(&self) -> Option<String> {
        match self {
            SessionUpdate::Malformed { line_no, error, .. } => {
                Some(format!("stream line {line_no} skipped: {error}"))
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Control {
    Terminate,
    Kill,
}

#[derive(Debug, Default)]
struct Shared {
    session_id: OnceLock<String>,
}

/// Runs `claude` processes.
pub struct ClaudeSession;

impl ClaudeSession {
    /// Spawns the process in its own process group (`process_group(0)`) and its owner task.
    /// Must be called inside a tokio runtime. The first update is `Started`.
    pub fn spawn(
        spec: SessionSpec,
    ) -> Result<(SessionHandle, mpsc::UnboundedReceiver<SessionUpdate>), DriverError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| DriverError::NoRuntime)?;
        std::fs::create_dir_all(&spec.config_dir).map_err(|source| DriverError::ConfigDir {
            path: spec.config_dir.clone(),
            source,
        })?;
        match std::fs::metadata(&spec.cwd) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(DriverError::Cwd {
                    path: spec.cwd.clone(),
                    source: std::io::Error::other("not a directory"),
                })
            }
            Err(source) => {
                return Err(DriverError::Cwd {
                    path: spec.cwd.clone(),
                    source,
                })
            }
        }
        // A transcript is a log: losing it (disk full, folder gone) must not stop the agent.
        let transcript = match &spec.transcript {
            None => None,
            Some(path) => match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(file) => Some(BufWriter::new(File::from_std(file))),
                Err(source) => {
                    let error = DriverError::Transcript {
                        path: path.clone(),
                        source,
                    };
                    tracing::warn!(%error, "running without a transcript");
                    None
                }
            },
        };

        let (mut cmd, parent_pipe) = match &spec.guard {
            None => (spec.build_command(), None),
            Some(guard) => {
                // Without the guard a missing claude fails here; keep it that way.
                which::which(&spec.binary).map_err(|e| DriverError::Spawn {
                    binary: spec.binary.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, e.to_string()),
                })?;
                if guard.policy == OrphanPolicy::Stop {
                    let (read, write) =
                        crate::guard::parent_pipe().map_err(|source| DriverError::Spawn {
                            binary: guard.program.clone(),
                            source,
                        })?;
                    let mut cmd = spec.command(Some(read.as_raw_fd()));
                    crate::guard::keep_across_exec(&mut cmd, read.as_raw_fd());
                    // `read` lives until after the spawn below; `write` stays with the owner.
                    (cmd, Some((read, write)))
                } else {
                    (spec.command(None), None)
                }
            }
        };
        let spawned = cmd.spawn();
        // The guard has its copy of the read end now; ours would keep the pipe half open.
        let parent_pipe = parent_pipe.map(|(_read, write)| write);
        let mut child = spawned.map_err(|source| DriverError::Spawn {
            binary: spec
                .guard
                .as_ref()
                .map_or_else(|| spec.binary.clone(), |g| g.program.clone()),
            source,
        })?;
        let Some(pid) = child.id() else {
            // Cannot happen for a just-spawned child; reap it in the background if it does.
            drop(child);
            return Err(DriverError::NoPid);
        };
        // A prompt too long for the command line: written to the CLI's stdin, then closed.
        if let Some(mut stdin) = child.stdin.take() {
            let prompt = spec.prompt.clone().into_bytes();
            runtime.spawn(async move {
                use tokio::io::AsyncWriteExt;
                // A CLI that exits before reading it all fails its turn by itself.
                let _ = stdin.write_all(&prompt).await;
                let _ = stdin.shutdown().await;
            });
        }
        // Piped in build_command; take() cannot fail. Fall back to an empty stream anyway.
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();

        let span = tracing::info_span!(
            "claude",
            label = %spec.label,
            pid,
            session_id = tracing::field::Empty,
        );
        span.in_scope(|| {
            tracing::info!(binary = %spec.binary.display(), cwd = %spec.cwd.display(),
                resume = spec.resume_session_id.is_some(), "claude process started")
        });

        let (updates_tx, updates_rx) = mpsc::unbounded_channel();
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = oneshot::channel();
        let shared = Arc::new(Shared::default());
        let _ = updates_tx.send(SessionUpdate::Started { pid });

        let owner = Owner {
            pid,
            started: Instant::now(),
            idle_timeout: spec.idle_timeout,
            wall_at: spec.wall_timeout.map(|d| Instant::now() + d),
            kill_grace: spec.kill_grace,
            linger_after_result: spec.linger_after_result,
            max_line_bytes: spec.max_line_bytes,
            redact: spec.redact.clone(),
            on_line: spec.on_line.clone(),
            transcript,
            updates: updates_tx,
            shared: Arc::clone(&shared),
            span: span.clone(),
            builder: OutcomeBuilder::new(),
            line_no: 0,
            exit: None,
            sigkill_at: None,
            sigkilled: false,
            idle_at: None,
            linger_at: None,
            drain_until: None,
            _parent_pipe: parent_pipe,
        };
        runtime.spawn(
            owner
                .run(child, stdout, stderr, ctl_rx, done_tx)
                .instrument(span),
        );

        let handle = SessionHandle {
            pid,
            label: spec.label,
            ctl: ctl_tx,
            shared,
            done: done_rx,
        };
        Ok((handle, updates_rx))
    }
}

/// Control of one running session. Dropping it terminates the process group
/// (SIGTERM, grace, SIGKILL) and reaps it.
#[derive(Debug)]
pub struct SessionHandle {
    pid: u32,
    label: String,
    ctl: mpsc::UnboundedSender<Control>,
    shared: Arc<Shared>,
    done: oneshot::Receiver<SessionOutcome>,
}

impl SessionHandle {
    /// The process id, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Graceful stop: SIGTERM to the group, `kill_grace`, then SIGKILL. Idempotent,
    /// non-blocking; a no-op once the process has ended.
    pub fn terminate(&self) {
        let _ = self.ctl.send(Control::Terminate);
    }

    /// SIGKILL to the group now (via the owner task, which alone may signal it, so a
    /// recycled pid is never hit). Non-blocking.
    pub fn kill(&self) {
        let _ = self.ctl.send(Control::Kill);
    }

    /// The session id from `system/init`, once seen.
    pub fn session_id(&self) -> Option<String> {
        self.shared.session_id.get().cloned()
    }

    /// Waits for the end of the run (the update receiver still gets `Finished` too).
    /// The process keeps running while this waits: it is not terminated by the call.
    pub async fn wait(self) -> SessionOutcome {
        let SessionHandle { pid, ctl, done, .. } = self;
        let outcome = done.await;
        drop(ctl);
        outcome.unwrap_or_else(|_| {
            SessionOutcome::without_result(format!(
                "driver task of pid {pid} ended without an outcome"
            ))
        })
    }
}

/// SIGKILLs the group if the owner task ends (or is dropped) before it disarms this.
struct GroupGuard {
    pgid: u32,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            unix::kill_group(self.pgid);
        }
    }
}

struct Owner {
    pid: u32,
    started: Instant,
    idle_timeout: Option<Duration>,
    wall_at: Option<Instant>,
    kill_grace: Duration,
    linger_after_result: Option<Duration>,
    max_line_bytes: usize,
    redact: Option<Redactor>,
    on_line: Option<crate::spec::LineTap>,
    transcript: Option<BufWriter<File>>,
    updates: mpsc::UnboundedSender<SessionUpdate>,
    shared: Arc<Shared>,
    span: tracing::Span,
    builder: OutcomeBuilder,
    line_no: u64,
    exit: Option<ExitInfo>,
    /// Set once termination started: when SIGKILL follows.
    sigkill_at: Option<Instant>,
    sigkilled: bool,
    idle_at: Option<Instant>,
    linger_at: Option<Instant>,
    drain_until: Option<Instant>,
    /// The write end of the guard's pipe (see [`crate::guard`]): closed when the owner task
    /// ends or this process dies, which tells the guard to stop claude.
    _parent_pipe: Option<std::os::fd::OwnedFd>,
}

/// A far-away instant for disabled timer branches (select! builds every branch's future).
fn or_never(at: Option<Instant>) -> Instant {
    at.unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600))
}

impl Owner {
    async fn run(
        mut self,
        mut child: Child,
        stdout: Option<ChildStdout>,
        stderr: Option<ChildStderr>,
        mut ctl: mpsc::UnboundedReceiver<Control>,
        done: oneshot::Sender<SessionOutcome>,
    ) {
        let mut guard = GroupGuard {
            pgid: self.pid,
            armed: true,
        };
        let mut out = stdout.map(|s| {
            BoundedLines::new(BufReader::with_capacity(64 * 1024, s), self.max_line_bytes)
        });
        let mut err = stderr.map(|s| BoundedLines::new(BufReader::new(s), MAX_STDERR_LINE));
        let mut ctl_open = true;
        self.idle_at = self.idle_timeout.map(|d| Instant::now() + d);

        loop {
            if self.exit.is_some() && out.is_none() && err.is_none() {
                break;
            }
            let running = self.exit.is_none();
            let stopping = self.sigkill_at.is_some();
            tokio::select! {
                line = async { out.as_mut()?.next_line().await.ok()? }, if out.is_some() => {
                    match line {
                        Some(line) => self.on_stdout(line).await,
                        None => out = None,
                    }
                }
                line = async { err.as_mut()?.next_line().await.ok()? }, if err.is_some() => {
                    match line {
                        Some(line) => self.on_stderr(line),
                        None => err = None,
                    }
                }
                status = child.wait(), if running => {
                    let exit = match status {
                        Ok(status) => ExitInfo::from_status(status),
                        Err(e) => {
                            tracing::warn!(error = %e, "waiting for claude failed");
                            ExitInfo::default()
                        }
                    };
                    tracing::debug!(%exit, "claude process exited");
                    self.exit = Some(exit);
                    // Whatever is left of the group (grandchildren) must not survive it.
                    unix::kill_group(self.pid);
                    self.drain_until = Some(Instant::now() + DRAIN_AFTER_EXIT);
                }
                msg = ctl.recv(), if ctl_open => match msg {
                    Some(Control::Terminate) => self.terminate(Some(KillReason::Requested), "terminate requested"),
                    Some(Control::Kill) => self.kill_now(),
                    None => {
                        ctl_open = false;
                        self.terminate(Some(KillReason::Requested), "session handle dropped");
                    }
                },
                _ = sleep_until(or_never(self.wall_at)), if running && !stopping && self.wall_at.is_some() => {
                    self.terminate(Some(KillReason::WallTimeout), "wall-clock timeout");
                }
                _ = sleep_until(or_never(self.idle_at)), if running && !stopping && self.idle_at.is_some() => {
                    self.terminate(Some(KillReason::IdleTimeout), "idle timeout: no output");
                }
                _ = sleep_until(or_never(self.linger_at)), if running && !stopping && self.linger_at.is_some() => {
                    // The result is in: the outcome stays the result's.
                    self.terminate(None, "still running after its result");
                }
                _ = sleep_until(or_never(self.sigkill_at)), if running && stopping && !self.sigkilled => {
                    tracing::warn!(grace_ms = self.kill_grace.as_millis() as u64, "no exit after SIGTERM: SIGKILL");
                    unix::kill_group(self.pid);
                    self.sigkilled = true;
                }
                _ = sleep_until(or_never(self.drain_until)), if !running && self.drain_until.is_some() => {
                    tracing::warn!("output pipes still open after the process group ended: giving up on them");
                    out = None;
                    err = None;
                }
            }
        }

        // The child is reaped; SIGKILL anything of its group that is left.
        unix::kill_group(self.pid);
        guard.armed = false;
        if let Some(t) = self.transcript.as_mut() {
            if let Err(e) = t.flush().await {
                tracing::warn!(error = %e, "flushing the transcript failed");
            }
        }
        let exit = self.exit.unwrap_or_default();
        let outcome = self.builder.finish(exit, self.started.elapsed());
        tracing::info!(
            kind = %outcome.kind,
            %exit,
            cost_usd = outcome.total_cost_usd,
            events = outcome.events,
            malformed = outcome.malformed_lines,
            duration_ms = outcome.duration.as_millis() as u64,
            "claude session finished"
        );
        let _ = self.updates.send(SessionUpdate::Finished(outcome.clone()));
        let _ = done.send(outcome);
    }

    /// Starts SIGTERM → grace → SIGKILL (once). `reason`: recorded as our kill.
    fn terminate(&mut self, reason: Option<KillReason>, why: &str) {
        if self.exit.is_some() || self.sigkill_at.is_some() {
            return;
        }
        if let Some(reason) = reason {
            self.builder.mark_killed(reason);
        }
        tracing::info!(
            why,
            grace_ms = self.kill_grace.as_millis() as u64,
            "terminating claude process group"
        );
        unix::term_group(self.pid);
        self.sigkill_at = Some(Instant::now() + self.kill_grace);
    }

    fn kill_now(&mut self) {
        if self.exit.is_some() || self.sigkilled {
            return;
        }
        self.builder.mark_killed(KillReason::Requested);
        tracing::info!("killing claude process group");
        unix::kill_group(self.pid);
        self.sigkilled = true;
        self.sigkill_at.get_or_insert_with(Instant::now);
    }

    async fn on_stdout(&mut self, line: Line) {
        self.line_no += 1;
        self.idle_at = self.idle_timeout.map(|d| Instant::now() + d);
        if let Line::Complete(bytes) = &line {
            if let Some(tap) = &self.on_line {
                tap(bytes);
            }
            self.write_transcript(bytes).await;
        }
        match classify(&line, self.max_line_bytes) {
            Classified::Blank => {}
            Classified::Event(event) => {
                self.builder.observe(&event);
                if let StreamEvent::System(SystemEvent::Init(init)) = &*event {
                    if let Some(id) = &init.session_id {
                        if self.shared.session_id.set(id.clone()).is_ok() {
                            self.span.record("session_id", id.as_str());
                            tracing::info!(session_id = %id, "session started");
                        }
                    }
                }
                if let StreamEvent::Result(r) = &*event {
                    tracing::debug!(
                        is_error = r.is_error,
                        subtype = r.subtype.as_deref().unwrap_or(""),
                        "result event"
                    );
                    if self.linger_at.is_none() {
                        self.linger_at = self.linger_after_result.map(|d| Instant::now() + d);
                    }
                }
                let _ = self.updates.send(SessionUpdate::Event(event));
            }
            Classified::Malformed {
                error,
                excerpt,
                reason,
            } => {
                self.builder.observe_malformed();
                tracing::warn!(line_no = self.line_no, %error, "malformed stdout line skipped");
                let _ = self.updates.send(SessionUpdate::Malformed {
                    line_no: self.line_no,
                    error,
                    excerpt,
                    reason,
                });
            }
        }
    }

    fn on_stderr(&mut self, line: Line) {
        let text = match line {
            Line::Complete(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Line::TooLong { len, prefix } => {
                format!(
                    "{}… [stderr line of {len} bytes shortened]",
                    excerpt(&String::from_utf8_lossy(&prefix))
                )
            }
        };
        self.builder.observe_stderr(&text);
        let _ = self.updates.send(SessionUpdate::Stderr(text));
    }

    async fn write_transcript(&mut self, bytes: &[u8]) {
        let Some(t) = self.transcript.as_mut() else {
            return;
        };
        let text = String::from_utf8_lossy(bytes);
        let mut text = match &self.redact {
            Some(redact) => redact(&text),
            None => text.into_owned(),
        };
        text.push('\n');
        let res = async {
            t.write_all(text.as_bytes()).await?;
            t.flush().await
        }
        .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "writing the transcript failed: transcript disabled");
            self.transcript = None;
        }
    }
}
