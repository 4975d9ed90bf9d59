//! stdout sink. Every line is written whole under one lock and flushed, so the signal thread
//! (which takes the same lock before exiting) never leaves half a line behind.
//!
//! The output format decides what reaches stdout: stream-json prints every event, json prints
//! the result object only (with `--verbose`: a JSON array of all events), text prints the
//! result text.

use crate::cli::OutputFormat;
use std::io::Write;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub struct Out {
    format: OutputFormat,
    verbose: bool,
    /// Events kept for `--output-format json --verbose`.
    buffered: Vec<String>,
}

static OUT: Mutex<Out> = Mutex::new(Out {
    format: OutputFormat::StreamJson,
    verbose: true,
    buffered: Vec::new(),
});

pub fn init(format: OutputFormat, verbose: bool) {
    let mut o = lock();
    o.format = format;
    o.verbose = verbose;
}

pub fn lock() -> MutexGuard<'static, Out> {
    OUT.lock().unwrap_or_else(|e| e.into_inner())
}

/// For the signal thread: waits for a line in progress to finish, but gives up after
/// `patience` (a writer stuck on a full pipe must not stop SIGTERM from working).
pub fn lock_with_patience(patience: Duration) -> Option<MutexGuard<'static, Out>> {
    let deadline = Instant::now() + patience;
    loop {
        match OUT.try_lock() {
            Ok(g) => return Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => return Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => {
                if Instant::now() >= deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

/// Writes pieces + '\n' and flushes. A closed stdout means the reader is gone: exit 1.
fn write_parts(parts: &[&[u8]]) {
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    let ok = parts.iter().all(|p| w.write_all(p).is_ok())
        && w.write_all(b"\n").is_ok()
        && w.flush().is_ok();
    if !ok {
        crate::hard_exit(1);
    }
}

impl Out {
    pub fn stream(&self) -> bool {
        self.format == OutputFormat::StreamJson
    }

    /// A non-result event.
    pub fn event(&mut self, line: String) {
        match self.format {
            OutputFormat::StreamJson => write_parts(&[line.as_bytes()]),
            OutputFormat::Json if self.verbose => self.buffered.push(line),
            _ => {}
        }
    }

    /// The `result` event; `text` is what `--output-format text` prints.
    pub fn result(&mut self, line: String, text: &str) {
        match self.format {
            OutputFormat::StreamJson => write_parts(&[line.as_bytes()]),
            OutputFormat::Json if self.verbose => {
                self.buffered.push(line);
                let all = format!("[{}]", self.buffered.join(","));
                self.buffered.clear();
                write_parts(&[all.as_bytes()]);
            }
            OutputFormat::Json => write_parts(&[line.as_bytes()]),
            OutputFormat::Text => write_parts(&[text.as_bytes()]),
        }
    }

    /// A line written as is (stream-json only: it exists to feed parsers garbage).
    pub fn raw(&mut self, line: &str) {
        if self.stream() {
            write_parts(&[line.as_bytes()]);
        }
    }

    /// `prefix + filler + suffix` as one line, filler written in chunks (no huge String).
    pub fn big_line(&mut self, prefix: &str, filler_len: usize, suffix: &str) {
        if !self.stream() {
            return;
        }
        let stdout = std::io::stdout();
        let mut w = stdout.lock();
        let chunk = [b'x'; 64 * 1024];
        let mut ok = w.write_all(prefix.as_bytes()).is_ok();
        let mut left = filler_len;
        while ok && left > 0 {
            let n = left.min(chunk.len());
            ok = w.write_all(&chunk[..n]).is_ok();
            left -= n;
        }
        ok = ok
            && w.write_all(suffix.as_bytes()).is_ok()
            && w.write_all(b"\n").is_ok()
            && w.flush().is_ok();
        if !ok {
            crate::hard_exit(1);
        }
    }
}
