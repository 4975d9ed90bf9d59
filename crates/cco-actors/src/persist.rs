//! Crash-safe file writes: write a temporary file, fsync it, rename it over the target,
//! fsync the folder. A reader sees the old or the new content, never a mix.
//!
//! Each write has a temporary file of its own (process id and a counter), so two writers of
//! one file (the journal's periodic writer and the final write) never share one.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_keeping(path, bytes, None)
}

/// [`write_atomic`], moving the old content of `path` to `previous` first (when there is
/// one). The new content is written and synced before anything is moved, so a crash at any
/// moment leaves the old content at `path`, or (for the instant between the two renames) at
/// `previous` only, or the new content at `path`.
pub(crate) fn write_atomic_keeping(
    path: &Path,
    bytes: &[u8],
    previous: Option<&Path>,
) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let n = NEXT_TMP.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{file_name}.tmp-{}-{n}", std::process::id()));
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    if let Some(previous) = previous.filter(|_| path.exists()) {
        if let Err(error) = std::fs::rename(path, previous) {
            let _ = std::fs::remove_file(&tmp);
            return Err(error);
        }
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_content_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        super::write_atomic(&path, b"one").unwrap();
        super::write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
