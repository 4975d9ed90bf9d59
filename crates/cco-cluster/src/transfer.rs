//! Files in parts: bundles and session files travel as a series of casts of at most
//! [`CHUNK`](crate::wire::CHUNK) bytes (a transfer id, a sequence number, a last flag), written
//! to a file as they arrive. The message that uses a transfer names its id; a part out of
//! sequence fails the transfer.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

use crate::error::ClusterError;
use crate::wire::CHUNK;

/// Sends the file at `path` as transfer `id`: `send(seq, last, bytes)` casts one part.
/// Returns the bytes sent.
pub async fn send_file(
    path: &Path,
    mut send: impl FnMut(u32, bool, &[u8]) -> Result<(), String>,
) -> Result<u64, ClusterError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| ClusterError::io("transfer", path, e))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| ClusterError::io("transfer", path, e))?
        .len();
    let mut sent = 0u64;
    let mut seq = 0u32;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let mut filled = 0;
        while filled < CHUNK {
            let n = file
                .read(&mut buf[filled..])
                .await
                .map_err(|e| ClusterError::io("transfer", path, e))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        sent += filled as u64;
        let last = sent >= len || filled < CHUNK;
        send(seq, last, &buf[..filled]).map_err(|why| ClusterError::Node {
            node: "peer".into(),
            reason: format!("sending a transfer: {why}"),
        })?;
        if last {
            return Ok(sent);
        }
        seq += 1;
    }
}

struct Incoming {
    path: PathBuf,
    file: std::fs::File,
    next: u32,
    bytes: u64,
}

/// Transfers arriving at this process, written under `dir`.
pub struct Inbox {
    dir: PathBuf,
    /// Only ids announced with [`Inbox::expect`] are accepted (a head); else any (a node).
    expected_only: bool,
    state: Mutex<InboxState>,
}

/// A complete transfer: its file and size, or why it failed.
pub type Arrival = Result<(PathBuf, u64), String>;

#[derive(Default)]
struct InboxState {
    open: HashMap<u64, Incoming>,
    done: HashMap<u64, (PathBuf, u64)>,
    waiters: HashMap<u64, oneshot::Sender<Arrival>>,
}

impl Inbox {
    pub fn new(dir: PathBuf, expected_only: bool) -> Inbox {
        Inbox {
            dir,
            expected_only,
            state: Mutex::new(InboxState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Announces transfer `id`; the receiver gets its file once the last part arrived.
    pub fn expect(&self, id: u64) -> oneshot::Receiver<Arrival> {
        let (tx, rx) = oneshot::channel();
        self.lock().waiters.insert(id, tx);
        rx
    }

    /// Stops waiting for transfer `id` and removes what arrived of it.
    pub fn forget(&self, id: u64) {
        let mut state = self.lock();
        state.waiters.remove(&id);
        if let Some(incoming) = state.open.remove(&id) {
            let _ = std::fs::remove_file(incoming.path);
        }
        if let Some((path, _)) = state.done.remove(&id) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// The file of a complete transfer (the caller owns it from now on).
    pub fn take(&self, id: u64) -> Option<(PathBuf, u64)> {
        self.lock().done.remove(&id)
    }

    /// One part arrived.
    pub fn part(&self, id: u64, seq: u32, last: bool, bytes: &[u8]) {
        let mut state = self.lock();
        if self.expected_only && !state.waiters.contains_key(&id) {
            tracing::debug!(transfer = id, "a part of an unexpected transfer dropped");
            return;
        }
        let result = (|| -> Result<Option<(PathBuf, u64)>, String> {
            if seq == 0 {
                if let Some(old) = state.open.remove(&id) {
                    let _ = std::fs::remove_file(old.path);
                }
                std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
                let path = self.dir.join(format!("{id:016x}.part"));
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .open(&path)
                    .map_err(|e| e.to_string())?;
                state.open.insert(
                    id,
                    Incoming {
                        path,
                        file,
                        next: 0,
                        bytes: 0,
                    },
                );
            }
            let incoming = state
                .open
                .get_mut(&id)
                .ok_or_else(|| format!("part {seq} of a transfer that did not start"))?;
            if incoming.next != seq {
                return Err(format!("part {seq} where part {} was due", incoming.next));
            }
            incoming.file.write_all(bytes).map_err(|e| e.to_string())?;
            incoming.next += 1;
            incoming.bytes += bytes.len() as u64;
            if !last {
                return Ok(None);
            }
            let done = state.open.remove(&id).map(|i| (i.path, i.bytes));
            Ok(done)
        })();
        match result {
            Ok(None) => {}
            Ok(Some(done)) => match state.waiters.remove(&id) {
                Some(waiter) => {
                    if let Err(Ok((path, _))) = waiter.send(Ok(done)) {
                        let _ = std::fs::remove_file(path);
                    }
                }
                None => {
                    state.done.insert(id, done);
                }
            },
            Err(why) => {
                tracing::warn!(transfer = id, %why, "transfer failed");
                if let Some(incoming) = state.open.remove(&id) {
                    let _ = std::fs::remove_file(incoming.path);
                }
                if let Some(waiter) = state.waiters.remove(&id) {
                    let _ = waiter.send(Err(why));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_goes_in_parts_and_comes_out_whole() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let data: Vec<u8> = (0..(CHUNK * 2 + 10)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        let inbox = Inbox::new(dir.path().join("in"), true);
        let done = inbox.expect(7);
        // A part of an unannounced transfer is dropped.
        inbox.part(8, 0, true, b"x");
        let mut parts = 0;
        let sent = send_file(&src, |seq, last, bytes| {
            parts += 1;
            inbox.part(7, seq, last, bytes);
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(sent, data.len() as u64);
        assert_eq!(parts, 3);
        let (path, bytes) = done.await.unwrap().unwrap();
        assert_eq!(bytes, data.len() as u64);
        assert_eq!(std::fs::read(path).unwrap(), data);
        assert!(inbox.take(8).is_none());
    }

    #[test]
    fn a_part_out_of_sequence_fails_the_transfer() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::new(dir.path().to_path_buf(), false);
        inbox.part(1, 0, false, b"a");
        inbox.part(1, 2, true, b"c");
        assert!(inbox.take(1).is_none());
        inbox.part(2, 0, true, b"");
        assert_eq!(inbox.take(2).unwrap().1, 0);
    }
}
