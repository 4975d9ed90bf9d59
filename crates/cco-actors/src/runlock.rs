//! One cco per run: an exclusive `flock` on `<workspace>/cco.lock`, held from before a run
//! touches anything until it has ended.
//!
//! The lock file holds who holds it (pid and start time) so a refused cco can say which cco
//! runs the config. `flock` locks belong to the open file: the kernel releases them when the
//! holder dies, however it dies (`kill -9` included), so a lock left by a dead cco is simply
//! taken over; its stale contents are overwritten. The file is opened close-on-exec: no
//! child process (claude, git) inherits the lock and outlives cco holding it.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// The lock file, in the run's workspace directory.
pub const LOCK_FILE: &str = "cco.lock";

/// Who holds a run's lock (as its lock file says).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    pub started_at: DateTime<Utc>,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {}, started {}",
            self.pid,
            self.started_at
                .with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
        )
    }
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another cco holds it (`holder`: what its lock file says, when readable).
    #[error("a cco ({}) is running this config", .holder.as_ref().map_or_else(|| "pid unknown".to_string(), ToString::to_string))]
    Held {
        path: PathBuf,
        holder: Option<LockHolder>,
    },
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub(crate) struct RunLock {
    _file: Flock<File>,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of the run working in `workspace` (created if needed) or says who
    /// holds it. Never waits.
    pub(crate) fn acquire(workspace: &Path) -> Result<RunLock, LockError> {
        let path = workspace.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(workspace).map_err(io)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                return Err(LockError::Held {
                    holder: read_holder(&mut file),
                    path,
                })
            }
            Err((_, errno)) => return Err(io(std::io::Error::from(errno))),
        };
        let holder = LockHolder {
            pid: std::process::id(),
            started_at: Utc::now(),
        };
        let text = serde_json::to_string(&holder).map_err(|e| io(std::io::Error::other(e)))?;
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(RunLock { _file: file, path })
    }

    /// Fails as [`RunLock::acquire`] would when another cco holds the lock of `workspace` now
    /// (a probe: the lock is released at once).
    /// Creates nothing: without a lock file nobody holds the lock.
    pub(crate) fn probe(workspace: &Path) -> Result<(), LockError> {
        if !workspace.join(LOCK_FILE).is_file() {
            return Ok(());
        }
        RunLock::acquire(workspace).map(drop)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

fn read_holder(file: &mut File) -> Option<LockHolder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_a_released_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        match RunLock::acquire(dir.path()) {
            Err(LockError::Held {
                holder: Some(holder),
                ..
            }) => {
                assert_eq!(holder.pid, std::process::id());
                let text = LockError::Held {
                    path: first.path().to_path_buf(),
                    holder: Some(holder.clone()),
                }
                .to_string();
                assert!(
                    text.starts_with(&format!("a cco (pid {}, started ", holder.pid))
                        && text.ends_with(") is running this config"),
                    "{text}"
                );
            }
            other => panic!("expected the lock to be held: {other:?}"),
        }
        assert!(matches!(
            RunLock::probe(dir.path()),
            Err(LockError::Held { .. })
        ));
        drop(first);
        // The file of the released lock is still there: taken over, rewritten.
        RunLock::probe(dir.path()).unwrap();
        let again = RunLock::acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(again.path()).unwrap();
        assert!(text.contains(&format!("\"pid\":{}", std::process::id())));
    }
}
