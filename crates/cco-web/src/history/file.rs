//! `events.jsonl` read incrementally as the run appends to it.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::History;

/// `events.jsonl` read as it grows: each refresh reads what was appended since the last one.
#[derive(Debug)]
pub(crate) struct HistoryFile {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    pub(crate) history: History,
    /// The file exists (a run of an older cco has none).
    pub(crate) present: bool,
}

impl HistoryFile {
    pub(crate) fn new(run_dir: &Path) -> HistoryFile {
        HistoryFile {
            path: run_dir.join(cco::log::EVENTS_FILE_NAME),
            offset: 0,
            partial: Vec::new(),
            history: History::default(),
            present: false,
        }
    }

    /// Reads the lines appended since the last refresh (a file that shrank is read anew), a
    /// few MiB at a time.
    pub(crate) fn refresh(&mut self) {
        const CHUNK: u64 = 4 << 20;
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return;
        };
        self.present = true;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            *self = HistoryFile::new(self.path.parent().unwrap_or(Path::new(".")));
            self.present = true;
        }
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        while self.offset < len {
            let mut bytes = Vec::new();
            match file.by_ref().take(CHUNK).read_to_end(&mut bytes) {
                Ok(0) | Err(_) => return,
                Ok(n) => self.offset += n as u64,
            }
            self.partial.extend_from_slice(&bytes);
            // Only whole lines: the writer may be half-way through one.
            let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
                continue;
            };
            let whole: Vec<u8> = self.partial.drain(..=end).collect();
            for line in String::from_utf8_lossy(&whole).lines() {
                self.history.apply_line(line);
            }
        }
    }
}
