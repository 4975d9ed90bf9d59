//! Running git (and the verify command) as child processes in their own process group, with
//! a timeout that kills the whole group — hooks and their children included.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::tail;
use crate::GitError;

/// Output of a finished process (whatever its exit status), with what ran where (for errors).
#[derive(Debug)]
pub(crate) struct Output {
    pub code: Option<i32>,
    /// The signal that ended it, when it did not exit.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    op: String,
    args: String,
    dir: PathBuf,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// `self` when the process exited 0, else [`GitError::Command`].
    pub fn check(self) -> Result<Output, GitError> {
        if self.success() {
            Ok(self)
        } else {
            Err(self.error())
        }
    }

    /// The [`GitError::Command`] (or a more precise environmental variant) describing this
    /// output as a failure.
    pub fn error(self) -> GitError {
        let msg = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let stderr_tail = tail(msg, 1500);
        if let Some(kind) = crate::error::EnvFailure::from_git_stderr(&stderr_tail) {
            return GitError::Environment {
                kind,
                path: self.dir,
                detail: stderr_tail,
            };
        }
        GitError::Command {
            op: self.op,
            args: self.args,
            path: self.dir,
            code: self.code,
            stderr_tail,
        }
    }
}

/// Kills the process group on drop unless disarmed: an op future dropped mid-command (op
/// budget exceeded, actor stopped) must not leave git or a hook running.
struct GroupGuard {
    pgid: Option<i32>,
}

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // ESRCH (already gone) is fine.
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) struct Spec<'a> {
    pub op: &'a str,
    pub program: &'a str,
    pub args: Vec<String>,
    pub dir: &'a Path,
    pub envs: Vec<(String, String)>,
    pub timeout: Duration,
    /// Written to the process's stdin (then closed); `None` = `/dev/null`.
    pub stdin: Option<Vec<u8>>,
    /// Files the process reads its stdin from / writes its stdout to (binary data such as a
    /// pack, which `Output`'s text would mangle); they win over `stdin` and the captured
    /// stdout.
    pub files: Files,
    /// The most stdout read: a process printing more is killed (with its group) and the
    /// run is [`GitError::OutputTooLarge`]. `None`: no limit.
    pub max_stdout: Option<u64>,
    /// Variables taken out of the inherited environment.
    pub env_remove: Vec<String>,
    /// Keep only the last this many bytes of stdout (at most twice that in memory while
    /// reading): for output that is read for its end, such as a verify command's.
    pub stdout_tail: Option<usize>,
}

/// See [`Spec::files`].
#[derive(Debug, Default)]
pub(crate) struct Files {
    pub stdin: Option<std::fs::File>,
    pub stdout: Option<std::fs::File>,
}

/// Runs one process to completion or timeout. Only spawn failures and timeouts are errors.
pub(crate) async fn run(spec: Spec<'_>) -> Result<Output, GitError> {
    let mut cmd = tokio::process::Command::new(spec.program);
    let stdin = match (spec.files.stdin, &spec.stdin) {
        (Some(file), _) => Stdio::from(file),
        (None, Some(_)) => Stdio::piped(),
        (None, None) => Stdio::null(),
    };
    let stdout = match spec.files.stdout {
        Some(file) => Stdio::from(file),
        None => Stdio::piped(),
    };
    cmd.args(&spec.args)
        .current_dir(spec.dir)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        // A git started from inside a hook must not inherit that hook's repository.
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_COMMON_DIR")
        .env_remove("GIT_OBJECT_DIRECTORY")
        .env_remove("GIT_ALTERNATE_OBJECT_DIRECTORIES")
        .env_remove("GIT_NAMESPACE")
        .env_remove("GIT_CONFIG")
        .env_remove("GIT_CONFIG_PARAMETERS")
        .env_remove("GIT_CONFIG_COUNT")
        .env_remove("GIT_EXTERNAL_DIFF")
        .env_remove("GIT_DIFF_OPTS")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_EDITOR", "true")
        .env("GIT_MERGE_AUTOEDIT", "no")
        .env("LC_ALL", "C")
        .process_group(0);
    for k in &spec.env_remove {
        cmd.env_remove(k);
    }
    for (k, v) in &spec.envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .map_err(|source| GitError::spawn(spec.op, spec.program, spec.dir, source))?;
    let pgid = child.id().map(|p| p as i32);
    let mut guard = GroupGuard { pgid };
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let mut in_pipe = child.stdin.take();
    let input = spec.stdin.unwrap_or_default();
    let work = async {
        // Written concurrently with reading the output (no pipe-buffer deadlock); dropping
        // the pipe closes the child's stdin.
        let write_in = async {
            if let Some(mut p) = in_pipe.take() {
                let _ = p.write_all(&input).await;
            }
        };
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut overflowed = false;
        let read_out = async {
            if let Some(p) = out_pipe.as_mut() {
                match (spec.max_stdout, spec.stdout_tail) {
                    (None, Some(keep)) => {
                        let mut chunk = vec![0u8; 64 * 1024];
                        while let Ok(n) = p.read(&mut chunk).await {
                            if n == 0 {
                                break;
                            }
                            out.extend_from_slice(&chunk[..n]);
                            if out.len() > keep.saturating_mul(2).max(chunk.len()) {
                                out.drain(..out.len() - keep);
                            }
                        }
                        if out.len() > keep {
                            out.drain(..out.len() - keep);
                        }
                    }
                    (None, None) => {
                        let _ = p.read_to_end(&mut out).await;
                    }
                    (Some(limit), _) => {
                        let _ = p.take(limit.saturating_add(1)).read_to_end(&mut out).await;
                        if out.len() as u64 > limit {
                            // Stop it now: blocked on a full pipe it would never exit.
                            overflowed = true;
                            if let Some(pgid) = pgid {
                                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                            }
                        }
                    }
                }
            }
        };
        let read_err = async {
            if let Some(p) = err_pipe.as_mut() {
                let _ = p.read_to_end(&mut err).await;
            }
        };
        let (_, _, _, status) = tokio::join!(write_in, read_out, read_err, child.wait());
        (out, err, status, overflowed)
    };
    match tokio::time::timeout(spec.timeout, work).await {
        Ok((out, err, status, overflowed)) => {
            // The group leader has been reaped; do not signal a possibly reused pgid.
            guard.pgid = None;
            if overflowed {
                return Err(GitError::OutputTooLarge {
                    op: spec.op.to_string(),
                    path: spec.dir.to_path_buf(),
                    limit: spec.max_stdout.unwrap_or_default(),
                });
            }
            let status = status.map_err(|e| GitError::io(spec.op, spec.dir, e))?;
            Ok(Output {
                code: status.code(),
                signal: std::os::unix::process::ExitStatusExt::signal(&status),
                stdout: String::from_utf8_lossy(&out).into_owned(),
                stderr: String::from_utf8_lossy(&err).into_owned(),
                op: spec.op.to_string(),
                args: spec.args.join(" "),
                dir: spec.dir.to_path_buf(),
            })
        }
        Err(_) => {
            tracing::warn!(op = spec.op, program = spec.program, args = ?spec.args, timeout = ?spec.timeout,
                "process timed out; killing its process group");
            guard.kill();
            let _ = child.wait().await;
            Err(GitError::Timeout {
                op: spec.op.to_string(),
                args: spec.args.join(" "),
                path: spec.dir.to_path_buf(),
                timeout: spec.timeout,
            })
        }
    }
}

/// The lock file named in git's "Unable to create '<path>.lock': File exists." message.
pub(crate) fn lock_in_stderr(stderr: &str) -> Option<PathBuf> {
    let idx = stderr.find(".lock': File exists")?;
    let start = stderr[..idx].rfind('\'')? + 1;
    Some(PathBuf::from(&stderr[start..idx + ".lock".len()]))
}

/// Removes `lock` when it is older than `min_age` and no live git process runs in the
/// repository/worktree it belongs to. Returns true when removed.
pub(crate) fn remove_stale_lock(lock: &Path, work_dirs: &[&Path], min_age: Duration) -> bool {
    let Ok(meta) = std::fs::metadata(lock) else {
        return false;
    };
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    if age < min_age {
        return false;
    }
    if let Some(pid) = git_process_in(work_dirs) {
        tracing::info!(lock = %lock.display(), pid, "lock held by a live git process; left alone");
        return false;
    }
    match std::fs::remove_file(lock) {
        Ok(()) => {
            tracing::warn!(lock = %lock.display(), ?age, "removed stale git lock (no git process using the repo)");
            true
        }
        Err(e) => {
            tracing::warn!(lock = %lock.display(), error = %e, "could not remove stale git lock");
            false
        }
    }
}

/// A live `git` process whose cwd lies in one of `dirs`.
fn git_process_in(dirs: &[&Path]) -> Option<i32> {
    let dirs: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| std::fs::canonicalize(d).ok())
        .collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if !comm.trim().starts_with("git") {
            continue;
        }
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = state
            .rfind(')')
            .and_then(|i| state[i + 1..].trim_start().chars().next())
            == Some('Z');
        if zombie {
            continue;
        }
        if let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) {
            if dirs.iter().any(|d| cwd.starts_with(d)) {
                return Some(pid);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, tail: Option<usize>, max: Option<u64>) -> Spec<'static> {
        Spec {
            op: "test",
            program: "sh",
            args: vec!["-c".into(), script.into()],
            dir: Path::new("/"),
            envs: vec![],
            timeout: Duration::from_secs(60),
            stdin: None,
            files: Default::default(),
            max_stdout: max,
            env_remove: vec![],
            stdout_tail: tail,
        }
    }

    #[tokio::test]
    async fn output_read_for_its_end_keeps_only_the_end() {
        // 8 MiB of output, then a last line.
        let script = "head -c 8388608 /dev/zero | tr '\\0' x; echo; echo the end";
        let out = run(sh(script, Some(1000), None)).await.unwrap();
        assert!(out.success());
        assert_eq!(out.stdout.len(), 1000);
        assert!(
            out.stdout.ends_with("x\nthe end\n"),
            "{}",
            &out.stdout[900..]
        );
        // Without a tail, everything.
        let out = run(sh(script, None, None)).await.unwrap();
        assert_eq!(out.stdout.len(), 8 * 1024 * 1024 + 9);
    }

    #[tokio::test]
    async fn output_over_its_limit_stops_the_process() {
        // Prints forever: ends only because it is stopped.
        let err = run(sh("yes", None, Some(100_000))).await.unwrap_err();
        assert!(
            matches!(err, GitError::OutputTooLarge { limit: 100_000, .. }),
            "{err}"
        );
    }

    #[test]
    fn parses_lock_path() {
        let e = "fatal: Unable to create '/tmp/x y/.git/index.lock': File exists.\n\nAnother git process...";
        assert_eq!(
            lock_in_stderr(e),
            Some(PathBuf::from("/tmp/x y/.git/index.lock"))
        );
        assert_eq!(lock_in_stderr("fatal: nope"), None);
    }
}
