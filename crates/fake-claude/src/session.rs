//! Session files: `$CLAUDE_CONFIG_DIR/projects/<cwd with non-alphanumerics as '-'>/<id>.jsonl`,
//! one JSON line per user prompt and per assistant result. Only the line count matters to the
//! fake (`{{history_len}}`), but the lines are real JSON so humans can read them.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `$CLAUDE_CONFIG_DIR`, else `$HOME/.claude`.
pub fn config_dir() -> PathBuf {
    match std::env::var_os("CLAUDE_CONFIG_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/".into())).join(".claude"),
    }
}

/// `/home/u/my.repo` -> `-home-u-my-repo`, as the real CLI names project dirs.
pub fn project_dir(config: &Path, cwd: &str) -> PathBuf {
    let name: String = cwd
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    config.join("projects").join(name)
}

#[derive(Debug)]
pub struct Session {
    pub id: String,
    pub path: PathBuf,
    /// Lines currently in the file.
    pub lines: usize,
}

fn count_lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.split(|c| *c == b'\n').filter(|l| !l.is_empty()).count())
        .unwrap_or(0)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && !id.contains('/') && id != "." && id != ".."
}

impl Session {
    /// A new session (or an existing file reused by `--session-id`: it keeps its lines).
    pub fn open(dir: &Path, id: &str) -> Session {
        let path = dir.join(format!("{id}.jsonl"));
        Session {
            id: id.to_string(),
            lines: count_lines(&path),
            path,
        }
    }

    /// `--resume <id>`: the file must exist for this cwd and config dir.
    pub fn resume(dir: &Path, id: &str) -> Option<Session> {
        let path = dir.join(format!("{id}.jsonl"));
        (valid_id(id) && path.is_file()).then(|| Session::open(dir, id))
    }

    /// `--continue`: the most recently written session of this cwd.
    pub fn latest(dir: &Path) -> Option<Session> {
        let newest = std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
            .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())?;
        let id = newest.path().file_stem()?.to_str()?.to_string();
        Some(Session::open(dir, &id))
    }

    /// `--fork-session`: a new id whose file starts with a copy of this history.
    pub fn fork(&self, dir: &Path, new_id: &str) -> std::io::Result<Session> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{new_id}.jsonl"));
        std::fs::copy(&self.path, &path)?;
        Ok(Session {
            id: new_id.to_string(),
            path,
            lines: self.lines,
        })
    }

    /// Appends one line. Failing to record history is reported but not fatal.
    pub fn append(&mut self, v: &Value) {
        let res = (|| {
            if let Some(parent) = self.path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            f.write_all(format!("{v}\n").as_bytes())
        })();
        match res {
            Ok(()) => self.lines += 1,
            Err(e) => eprintln!(
                "fake-claude: cannot write session {}: {e}",
                self.path.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_dir_sanitizes_cwd() {
        assert_eq!(
            project_dir(Path::new("/c"), "/home/u/my.repo_x"),
            PathBuf::from("/c/projects/-home-u-my-repo-x")
        );
    }
}
