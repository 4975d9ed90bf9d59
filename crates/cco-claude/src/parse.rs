//! Line reading with a length cap, and classification of each stdout line.
//!
//! [`BoundedLines`] reads `\n`-terminated lines from an [`AsyncBufRead`] using only
//! `fill_buf`/`consume`: a line longer than the cap is skipped chunk by chunk as it arrives
//! (reported as [`Line::TooLong`] with its length and a short prefix), so memory stays at
//! about `max_line_bytes` plus the reader's buffer even for a 50 MB line.
//!
//! [`classify`] turns a complete line into an event or a malformed-line report.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::events::{parse_line, StreamEvent};

/// How many bytes of a bad line are kept for reports.
pub const EXCERPT_CHARS: usize = 200;

/// One line read by [`BoundedLines`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A whole line without its `\n` (and without a trailing `\r`).
    Complete(Vec<u8>),
    /// A line longer than the cap: skipped; `len` is its full length in bytes, `prefix` its
    /// first bytes (at most [`EXCERPT_CHARS`]).
    TooLong { len: u64, prefix: Vec<u8> },
}

/// A bounded line reader over any [`AsyncBufRead`].
///
/// [`BoundedLines::next_line`] is cancel safe: all partial state lives in the struct and is
/// updated only between awaits, so it can be used in `tokio::select!`.
#[derive(Debug)]
pub struct BoundedLines<R> {
    reader: R,
    max: usize,
    buf: Vec<u8>,
    /// Set while skipping an over-long line: (bytes seen so far, prefix).
    skipping: Option<(u64, Vec<u8>)>,
}

impl<R> BoundedLines<R> {
    /// Bytes currently reserved for the line being assembled (diagnostics and tests).
    pub fn buffered_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The wrapped reader.
    pub fn into_inner(self) -> R {
        self.reader
    }
}

impl<R: AsyncBufRead + Unpin> BoundedLines<R> {
    /// `max_line_bytes` is the longest line (without `\n`) returned whole; at least 1.
    pub fn new(reader: R, max_line_bytes: usize) -> Self {
        BoundedLines {
            reader,
            max: max_line_bytes.max(1),
            buf: Vec::new(),
            skipping: None,
        }
    }

    /// The next line, or `None` at end of input. A final line without `\n` is returned too.
    pub async fn next_line(&mut self) -> io::Result<Option<Line>> {
        loop {
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                if let Some((len, prefix)) = self.skipping.take() {
                    return Ok(Some(Line::TooLong { len, prefix }));
                }
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(self.take_complete()));
            }
            let newline = available.iter().position(|&b| b == b'\n');
            let chunk_len = newline.unwrap_or(available.len());
            let chunk = &available[..chunk_len];
            if let Some((len, _)) = self.skipping.as_mut() {
                *len += chunk_len as u64;
            } else if self.buf.len() + chunk_len > self.max {
                let mut prefix = std::mem::take(&mut self.buf);
                let len = (prefix.len() + chunk_len) as u64;
                let keep = EXCERPT_CHARS.saturating_sub(prefix.len()).min(chunk_len);
                prefix.extend_from_slice(&chunk[..keep]);
                prefix.truncate(EXCERPT_CHARS);
                prefix.shrink_to_fit();
                self.buf = Vec::new(); // give the memory back
                self.skipping = Some((len, prefix));
            } else {
                self.buf.extend_from_slice(chunk);
            }
            let consumed = chunk_len + usize::from(newline.is_some());
            self.reader.consume(consumed);
            if newline.is_some() {
                if let Some((len, prefix)) = self.skipping.take() {
                    return Ok(Some(Line::TooLong { len, prefix }));
                }
                return Ok(Some(self.take_complete()));
            }
        }
    }

    fn take_complete(&mut self) -> Line {
        let mut line = std::mem::take(&mut self.buf);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        // Keep a modest buffer around for the next line, not the biggest one ever seen.
        if self.buf.capacity() == 0 && line.capacity() <= 64 * 1024 {
            self.buf = Vec::with_capacity(line.capacity());
        }
        Line::Complete(line)
    }
}

/// What one stdout line turned out to be.
#[derive(Debug)]
pub enum Classified {
    /// Empty or whitespace-only: ignored.
    Blank,
    Event(Box<StreamEvent>),
    Malformed {
        /// One line for people, e.g. `line of 52428800 bytes (50.0 MiB) is longer than the
        /// limit of 8388608 bytes (8.0 MiB): skipped`.
        error: String,
        excerpt: String,
        reason: MalformedReason,
    },
}

/// Why a stdout line was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MalformedReason {
    /// Longer than the line limit: skipped without being buffered.
    TooLong {
        len: u64,
        limit: usize,
    },
    InvalidUtf8,
    /// Not JSON, or JSON that is not an event.
    NotAnEvent,
}

/// `52428800 bytes (50.0 MiB)`.
pub fn human_bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let f = n as f64;
    if f >= KIB * KIB * KIB {
        format!("{n} bytes ({:.1} GiB)", f / (KIB * KIB * KIB))
    } else if f >= KIB * KIB {
        format!("{n} bytes ({:.1} MiB)", f / (KIB * KIB))
    } else if f >= KIB {
        format!("{n} bytes ({:.1} KiB)", f / KIB)
    } else {
        format!("{n} bytes")
    }
}

/// Parses a line read by [`BoundedLines`]; never fails.
pub fn classify(line: &Line, max_line_bytes: usize) -> Classified {
    match line {
        Line::TooLong { len, prefix } => Classified::Malformed {
            error: format!(
                "line of {} is longer than the limit of {}: skipped",
                human_bytes(*len),
                human_bytes(max_line_bytes as u64)
            ),
            excerpt: excerpt(&String::from_utf8_lossy(prefix)),
            reason: MalformedReason::TooLong {
                len: *len,
                limit: max_line_bytes,
            },
        },
        Line::Complete(bytes) => match std::str::from_utf8(bytes) {
            Err(e) => Classified::Malformed {
                error: format!("invalid UTF-8: {e}"),
                excerpt: excerpt(&String::from_utf8_lossy(bytes)),
                reason: MalformedReason::InvalidUtf8,
            },
            Ok(text) if text.trim().is_empty() => Classified::Blank,
            Ok(text) => match parse_line(text) {
                Ok(event) => Classified::Event(Box::new(event)),
                Err(e) => Classified::Malformed {
                    error: e.to_string(),
                    excerpt: excerpt(text),
                    reason: MalformedReason::NotAnEvent,
                },
            },
        },
    }
}

/// At most [`EXCERPT_CHARS`] characters of `s`.
pub fn excerpt(s: &str) -> String {
    match s.char_indices().nth(EXCERPT_CHARS) {
        Some((i, _)) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}
