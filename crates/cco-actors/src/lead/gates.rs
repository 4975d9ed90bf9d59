//! What the lead does with a git failure, by kind, so no path to the target is taken on a
//! failure it did not understand:
//!
//! - **refused** work (a secret, a `.git` path, a symlink leaving the repository, committed
//!   conflict markers, an unconcluded resolution) goes back to the session that made it, with
//!   the reason (file and line, never a secret's value). Refused at capture or at the end of
//!   a conflict turn, the work is still in the worktree and nothing of it reached a ref cco
//!   owns: a [`Turn::Fix`] in place, at most [`MAX_FIX_ROUNDS`] times. Refused at the merge
//!   (commits captured before cco knew the secret), the task is revised from its task ref.
//!   Refused work is never merged: out of rounds, the task fails.
//! - a shared branch **moved** behind cco's back and put back: logged (branch, foreign
//!   commits, where they are kept) and the merge is retried; not put back, or moved again and
//!   again: the run stops with an integrity stop.
//! - the **environment** (disk full, read-only, quota, git missing, or the same git error on
//!   [`STREAK`] tasks in a row): the run pauses; the task keeps its phase, so `cco resume`
//!   continues it once the operator fixed the machine.
//! - anything else fails the task.

use cco_git::{EnvFailure, GitError};
use tracing::{error, warn};

use super::core::{Effect, LeadCore, Report};
use crate::error::JobFailure;
use crate::events::RunEvent;
use crate::lifecycle::{TaskPhase, Turn};

/// Why a lead stops the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Halt {
    /// A shared branch no longer held what cco wrote there and could not be put back.
    Integrity,
    /// The machine, not a task: disk full, read-only, quota, git missing, or the same git
    /// error on several tasks in a row. `cco resume` continues once it is fixed.
    Environment,
}

/// Times a task's refused work is sent back to be fixed before the task fails.
pub(crate) const MAX_FIX_ROUNDS: u32 = 3;
/// Tasks in a row failing on the same git error that pause the run.
pub(crate) const STREAK: usize = 3;
/// Merges of one task retried after its target was moved behind cco's back.
pub(crate) const MAX_MOVED_RETRIES: u32 = 3;

/// Why cco refused work, for the agent that made it; `None` for other failures.
pub(crate) fn refusal(error: &GitError) -> Option<String> {
    Some(match error {
        GitError::Refused(refusal) => format!("cco refused your commits: {refusal}."),
        GitError::SecretFile { path, .. } => format!(
            "cco refused your commits: they add the secret file {path}; remove it from the \
             commits (amend or rewrite them) and never commit credentials."
        ),
        GitError::ConflictMarkers { markers, .. } => format!(
            "Your conflict resolution still holds conflict markers (<<<<<<< ... >>>>>>>) at {}: \
             resolve each conflict, remove every marker, and commit.",
            markers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        GitError::UnresolvedConflicts { files, .. } => format!(
            "The merge is not concluded: conflicts are left unresolved in {}. Resolve every \
             conflict, remove the markers, `git add` the files and commit.",
            files.join(", ")
        ),
        _ => return None,
    })
}

/// The pause message of an environmental failure (`disk full in <path>; free space and run
/// cco resume`); `None` for other failures.
pub(crate) fn environment(error: &GitError) -> Option<String> {
    let kind = error.environment()?;
    let path = match error {
        GitError::Environment { path, .. }
        | GitError::Io { path, .. }
        | GitError::Spawn { path, .. } => path.display().to_string(),
        _ => "the workspace".to_string(),
    };
    Some(match kind {
        EnvFailure::DiskFull => format!("disk full in {path}; free space and run cco resume"),
        EnvFailure::ReadOnly => {
            format!("read-only file system in {path}; make it writable and run cco resume")
        }
        EnvFailure::QuotaExceeded => {
            format!(
                "disk quota exceeded in {path}; free space or raise the quota and run cco resume"
            )
        }
        EnvFailure::GitMissing => {
            format!("git could not be run (needed in {path}); install git and run cco resume")
        }
    })
}

/// What a shared branch moved behind cco's back (and put back) is logged as: the branch, the
/// foreign commits and where they are kept; `merging` is merged again.
pub(crate) fn moved_message(
    branch: &str,
    commits: &[String],
    kept_in: Option<&str>,
    merging: &str,
) -> String {
    let short: Vec<&str> = commits.iter().map(|c| &c[..c.len().min(10)]).collect();
    format!(
        "{branch} was moved behind cco's back by {} foreign commit(s) ({}); they are kept in {} and the branch was put back; merging {merging} again",
        commits.len(),
        short.join(", "),
        kept_in.unwrap_or("(no snapshot ref)"),
    )
}

impl JobFailure {
    /// The git error behind a worker's failed job, if any.
    pub(crate) fn git_error(&self) -> Option<&GitError> {
        match self {
            JobFailure::Prepare(e) | JobFailure::MergeTarget(e) | JobFailure::Conclude(e) => {
                Some(e)
            }
            JobFailure::Turn(_) | JobFailure::Busy | JobFailure::ApiUnavailable(_) => None,
        }
    }
}

/// Consecutive tasks that failed on the same git error (an error that is the machine's but
/// that git did not name: a broken repository, a full inode table...).
#[derive(Debug, Default)]
pub(crate) struct GitStreak {
    signature: String,
    tasks: Vec<String>,
}

impl GitStreak {
    /// Task `key` failed on `error`; `Some(tasks)` once [`STREAK`] different tasks in a row did.
    fn failed(&mut self, key: &str, error: &GitError) -> Option<Vec<String>> {
        let signature = signature(error);
        if signature != self.signature {
            self.signature = signature;
            self.tasks.clear();
        }
        if !self.tasks.iter().any(|t| t == key) {
            self.tasks.push(key.to_string());
        }
        (self.tasks.len() >= STREAK).then(|| self.tasks.clone())
    }

    fn succeeded(&mut self) {
        self.tasks.clear();
    }
}

/// What makes two git errors "the same": the error without what names a task (refs, paths,
/// commit ids).
fn signature(error: &GitError) -> String {
    let text = match error {
        GitError::Command {
            op,
            code,
            stderr_tail,
            ..
        } => format!("{op} {code:?} {stderr_tail}"),
        other => other.to_string(),
    };
    text.split_whitespace()
        .map(|w| {
            let hexy = w.len() >= 7 && w.chars().filter(char::is_ascii_hexdigit).count() >= 7;
            if w.contains('/') || hexy {
                "*"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl LeadCore {
    /// Stops the run (once): nothing new starts here, the Director stops every team.
    pub(crate) fn halt(&mut self, cause: Halt, reason: String) {
        if self.halted {
            return;
        }
        self.halted = true;
        error!(lead = %self.cfg.id, ?cause, %reason, "stopping the run");
        self.board.events().emit(RunEvent::Warning {
            message: reason.clone(),
        });
        self.emit(Effect::Report(Report::Halt { cause, reason }));
    }

    /// A git op for task `key` succeeded: the streak of failures is broken.
    pub(crate) fn git_ok(&mut self) {
        self.git_streak.succeeded();
    }

    /// A git op for task `key` failed with `error`, in a way no gate above handles: pauses the
    /// run when it is the machine's; else the task fails with `reason`.
    pub(crate) fn git_failed(&mut self, key: &str, error: &GitError, reason: &str) {
        if let Some(pause) = environment(error) {
            self.halt(Halt::Environment, pause);
            return;
        }
        if let Some(tasks) = self.git_streak.failed(key, error) {
            let pause = format!(
                "the same git error on {} tasks in a row ({}): {error}; fix the repository or \
                 the machine and run cco resume",
                tasks.len(),
                tasks.join(", ")
            );
            self.halt(Halt::Environment, pause);
            return;
        }
        self.fail_task(key, reason);
    }

    /// The work a turn left in its worktree was refused (`problem`): the same session fixes
    /// it in place, in the same worktree (see the module docs).
    pub(crate) fn fix_in_place(&mut self, key: &str, problem: String) {
        let Some(task) = self.board.task(key) else {
            return;
        };
        let TaskPhase::Finished { worker, turn, .. } = &task.phase else {
            return;
        };
        if task.fix_rounds >= MAX_FIX_ROUNDS {
            self.fail_task(
                key,
                &format!(
                    "cco refused the work {} times; last: {problem}",
                    task.fix_rounds + 1
                ),
            );
            return;
        }
        warn!(task = %key, %problem, "work refused: back to its session");
        let fix = TaskPhase::Pinned {
            worker: worker.clone(),
            turn: Turn::Fix {
                problem: problem.clone(),
                session_id: task.session_id.clone(),
                resolving: turn.resolving().map(str::to_string),
            },
        };
        if self.board.advance(key, fix).is_ok() {
            self.board.events().emit(RunEvent::TaskRevised {
                task: key.to_string(),
                feedback: problem,
            });
        }
    }

    /// The merge of task `key` failed with `error`: refused, moved, integrity, environment,
    /// or a failure (see the module docs).
    pub(crate) fn merge_failed(&mut self, key: &str, error: GitError) {
        if let Some(problem) = refusal(&error) {
            let rounds = self.board.task(key).map_or(0, |t| t.review_rounds);
            if rounds < super::pipeline::MAX_REVIEW_ROUNDS {
                self.send_back(key, &problem, None);
            } else {
                self.fail_task(key, &problem);
            }
            return;
        }
        if error.is_integrity_failure() {
            self.halt(
                Halt::Integrity,
                format!("integrity stop: {error}; inspect the branch and run cco resume"),
            );
            return;
        }
        if let GitError::BranchMoved {
            branch,
            commits,
            kept_in,
            ..
        } = &error
        {
            let tries = self.moved_retries.entry(key.to_string()).or_default();
            *tries += 1;
            if *tries > MAX_MOVED_RETRIES {
                self.halt(
                    Halt::Integrity,
                    format!(
                        "integrity stop: {branch} keeps being moved behind cco's back ({error})"
                    ),
                );
                return;
            }
            let message = moved_message(branch, commits, kept_in.as_deref(), key);
            error!(%branch, commits = ?commits, "{message}");
            self.board.events().emit(RunEvent::Warning { message });
            self.order_merge(key);
            return;
        }
        let reason = format!("merge failed: {error}");
        self.git_failed(key, &error, &reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(stderr: &str) -> GitError {
        GitError::Command {
            op: "capture_task".into(),
            args: "fetch".into(),
            path: "/w/worktrees/worker-1".into(),
            code: Some(128),
            stderr_tail: stderr.into(),
        }
    }

    #[test]
    fn three_tasks_in_a_row_on_the_same_error_make_a_streak_and_a_success_breaks_it() {
        let mut streak = GitStreak::default();
        let e = |task: &str| {
            command(&format!(
                "fatal: bad object refs/cco/tasks/r/flat/{task} 0123456789abcdef"
            ))
        };
        assert!(streak.failed("flat/t1", &e("t1")).is_none());
        // The same task again does not count twice.
        assert!(streak.failed("flat/t1", &e("t1")).is_none());
        assert!(streak.failed("flat/t2", &e("t2")).is_none());
        streak.succeeded();
        assert!(streak.failed("flat/t3", &e("t3")).is_none());
        assert!(streak.failed("flat/t4", &e("t4")).is_none());
        // Another error starts over.
        assert!(streak.failed("flat/t5", &command("fatal: other")).is_none());
        assert!(streak.failed("flat/t6", &e("t6")).is_none());
        assert!(streak.failed("flat/t7", &e("t7")).is_none());
        assert_eq!(
            streak.failed("flat/t8", &e("t8")),
            Some(vec!["flat/t6".into(), "flat/t7".into(), "flat/t8".into()])
        );
    }

    #[test]
    fn the_pause_message_names_the_problem_the_place_and_what_to_do() {
        let full = GitError::Environment {
            kind: EnvFailure::DiskFull,
            path: "/w/repo".into(),
            detail: "No space left on device".into(),
        };
        assert_eq!(
            environment(&full).unwrap(),
            "disk full in /w/repo; free space and run cco resume"
        );
        assert!(environment(&command("fatal: x")).is_none());
        let refused = GitError::Refused(cco_git::Refusal::ConflictMarkers {
            at: vec![cco_git::FileLine::new("a.txt", 3)],
        });
        let text = refusal(&refused).unwrap();
        assert!(text.contains("a.txt:3"), "{text}");
    }
}
