//! Worker prompts: the task, the reviewer's feedback, a failed verify gate, a merge conflict.

use std::fmt;
use std::time::Duration;

use super::{bullets, one_line, or_none, render, task_line, Identity, Prompt, Role};
use crate::schema::TaskSpec;

/// `[cco:worker-task]`: a worker's task. Contains `Task ID: <id>` and `Title: <title>`.
#[derive(Debug, Clone)]
pub struct WorkerTaskPrompt<'a> {
    pub who: &'a Identity,
    pub task: &'a TaskSpec,
}

impl WorkerTaskPrompt<'_> {
    pub fn render(&self) -> String {
        let task = self.task;
        let vars = self
            .who
            .vars()
            .with("task_id", or_none(&task.id))
            .with("title", one_line(&task.title))
            .with("description", or_none(task.description.trim()))
            .with("files", bullets(&task.files, "(none given)"))
            .with("acceptance", or_none(task.acceptance.trim()))
            .with(
                "depends_on",
                if task.depends_on.is_empty() {
                    "(none)".to_string()
                } else {
                    task.depends_on.join(", ")
                },
            );
        render(Prompt::Worker, &vars)
    }
}

/// `[cco:feedback]`: a reviewer's revise feedback, resumed into the worker's session.
#[derive(Debug, Clone)]
pub struct FeedbackPrompt<'a> {
    /// The worker.
    pub who: &'a Identity,
    pub task: &'a TaskSpec,
    /// Who reviewed: an EM (`Your Engineering Manager ...`) or the Coordinator.
    pub reviewer: Role,
    pub feedback: &'a str,
}

impl FeedbackPrompt<'_> {
    pub fn render(&self) -> String {
        let vars = self
            .who
            .task_vars(self.task)
            .with("reviewer", self.reviewer.as_reviewer())
            .with("feedback", or_none(self.feedback.trim()));
        render(Prompt::Feedback, &vars)
    }
}

/// How a command (the verify command) ended, as people read it: `exit 1`,
/// `killed by signal 9 (SIGKILL)`, `timed out after 10 min`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "status", content = "value", rename_all = "snake_case")]
pub enum CommandStatus {
    Exited(i32),
    Signaled(i32),
    TimedOut(Duration),
    /// It could not run at all (the reason, e.g. `sh: not found`).
    NotRun(String),
}

impl CommandStatus {
    /// From the parts of an exit status (`code` from `ExitStatus::code`, `signal` from
    /// `ExitStatusExt::signal`).
    pub fn from_parts(code: Option<i32>, signal: Option<i32>) -> CommandStatus {
        match (code, signal) {
            (Some(c), _) => CommandStatus::Exited(c),
            (None, Some(s)) => CommandStatus::Signaled(s),
            (None, None) => CommandStatus::NotRun("no exit status".into()),
        }
    }
}

impl fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandStatus::Exited(c) => write!(f, "exit {c}"),
            CommandStatus::Signaled(s) => match signal_name(*s) {
                Some(name) => write!(f, "killed by signal {s} ({name})"),
                None => write!(f, "killed by signal {s}"),
            },
            CommandStatus::TimedOut(d) => write!(f, "timed out after {}", human_duration(*d)),
            CommandStatus::NotRun(why) => write!(f, "could not run: {why}"),
        }
    }
}

/// The usual names of the signals a command dies of (the numbers are the same on Linux and
/// the BSDs for these).
pub(crate) fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return None,
    })
}

/// `90 s`, `10 min`, `1 h 5 min`, `250 ms`.
pub(crate) fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{} ms", d.as_millis());
    }
    match (secs / 3600, (secs % 3600) / 60, secs % 60) {
        (0, 0, s) => format!("{s} s"),
        (0, m, 0) => format!("{m} min"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, 0, _) => format!("{h} h"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

/// `[cco:verify-failed]`: the verify command failed on the merge of the worker's work; the
/// worker's session is resumed to fix it. Contains `Task ID: <id>`.
#[derive(Debug, Clone)]
pub struct VerifyFailedPrompt<'a> {
    /// The worker.
    pub who: &'a Identity,
    pub task: &'a TaskSpec,
    /// The verify command as configured.
    pub command: &'a str,
    /// The ref the work was merged from (the task ref or the worker's branch).
    pub source: &'a str,
    /// The branch it was to be merged into (left unchanged).
    pub target: &'a str,
    pub status: CommandStatus,
    /// The end of the command's output (stdout and stderr).
    pub output_tail: &'a str,
}

impl VerifyFailedPrompt<'_> {
    pub fn render(&self) -> String {
        let merge = format!(
            "the merge of {} into {}",
            or_none(self.source),
            or_none(self.target)
        );
        let vars = self
            .who
            .task_vars(self.task)
            .with("command", one_line(self.command))
            .with("merge", merge)
            .with("target", or_none(self.target))
            .with("status", self.status.to_string())
            .with("output", or_none(self.output_tail.trim_end()));
        render(Prompt::VerifyFailed, &vars)
    }
}

/// `[cco:refused]`: cco's checks (secrets, paths inside `.git`, symlinks leaving the
/// repository, committed conflict markers, an unconcluded merge) refused the commits the
/// worker's last turn left; its session fixes them where they are. Contains `Task ID: <id>`.
#[derive(Debug, Clone)]
pub struct RefusedPrompt<'a> {
    /// The worker.
    pub who: &'a Identity,
    pub task: &'a TaskSpec,
    /// Why, with file and line (never a secret's value).
    pub problem: &'a str,
}

impl RefusedPrompt<'_> {
    pub fn render(&self) -> String {
        let vars = self
            .who
            .task_vars(self.task)
            .with("problem", or_none(self.problem.trim()));
        render(Prompt::Refused, &vars)
    }
}

/// `[cco:conflict]`: merging `merging` into the worker's branch (`who.branch`, checked out in
/// `who.worktree`) stopped with conflicts; the worker resolves them and commits the merge.
#[derive(Debug, Clone)]
pub struct ConflictPrompt<'a> {
    /// The worker.
    pub who: &'a Identity,
    /// The task whose branch is being merged (named on a `Task:` line and in the ref line).
    pub task: Option<&'a TaskSpec>,
    /// What is merged into the worker's branch (usually the target branch).
    pub merging: &'a str,
    pub files: &'a [String],
}

impl ConflictPrompt<'_> {
    pub fn render(&self) -> String {
        let reference = match self.task {
            Some(t) if !t.id.trim().is_empty() => t.id.clone(),
            _ => or_none(&self.who.agent_id),
        };
        let vars = self
            .who
            .vars()
            .with("reference", reference)
            .with(
                "task",
                self.task.map(task_line).unwrap_or_else(|| "(none)".into()),
            )
            .with("merging", or_none(self.merging))
            .with("files", bullets(self.files, "(see `git status`)"));
        render(Prompt::Conflict, &vars)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn task() -> TaskSpec {
        let mut t = TaskSpec::new("t1", "Add\nlexer");
        t.description = "Write src/lexer.rs".into();
        t.files = vec!["src/lexer.rs".into(), "src/lib.rs".into()];
        t.acceptance = "cargo test passes".into();
        t.depends_on = vec!["t0".into()];
        t
    }

    #[test]
    fn worker_task_contents() {
        let who = worker();
        let text = WorkerTaskPrompt {
            who: &who,
            task: &task(),
        }
        .render();
        check_common(Prompt::Worker, &text);
        assert!(text.starts_with("[cco:worker-task]\n[cco-ref:worker-task/t1]\n"));
        assert!(text.contains("\nTask ID: t1\n"));
        assert!(text.contains("\nTitle: Add lexer\n"));
        assert!(text.contains("Task t1"));
        assert!(text.contains("- src/lexer.rs\n- src/lib.rs"));
        assert!(text.contains("cargo test passes"));
        assert!(text.contains("COMMIT"));
        assert!(text.contains("committed by cco"));
        assert!(
            !text.to_lowercase().contains("uncommitted work is lost"),
            "{text}"
        );
        assert!(text.contains("Worktree: /tmp/run/wt/worker-2"));
        assert!(text.contains("on branch cco/parser/worker-2"));
        assert!(text.contains("t0"));
    }

    #[test]
    fn feedback_names_the_reviewer_and_the_real_branch() {
        let who = worker();
        let t = task();
        let em_text = FeedbackPrompt {
            who: &who,
            task: &t,
            reviewer: Role::Em,
            feedback: "add tests",
        }
        .render();
        check_common(Prompt::Feedback, &em_text);
        assert!(em_text.contains("Your Engineering Manager reviewed"));
        assert!(em_text.contains("<feedback>\nadd tests\n</feedback>"));
        assert!(em_text.contains("your branch cco/parser/worker-2"));
        assert!(em_text.contains("(/tmp/run/wt/worker-2)"));
        assert!(em_text.contains("\nTask ID: t1\n"));
        let flat = FeedbackPrompt {
            who: &who,
            task: &t,
            reviewer: Role::Coordinator,
            feedback: "add tests",
        }
        .render();
        assert!(flat.contains("The Coordinator reviewed"));
        assert!(!flat.contains("Engineering Manager"));
    }

    #[test]
    fn refused_work_has_its_own_prompt_naming_the_problem() {
        let who = worker();
        let t = task();
        let text = RefusedPrompt {
            who: &who,
            task: &t,
            problem: "cco refused your commits: they add the secret file .env.",
        }
        .render();
        check_common(Prompt::Refused, &text);
        assert!(text.starts_with("[cco:refused]\n[cco-ref:refused/t1]\n"));
        assert!(text.contains(
            "<refusal>\ncco refused your commits: they add the secret file .env.\n</refusal>"
        ));
        assert!(text.contains("your branch cco/parser/worker-2"));
        assert!(text.contains("\nTask ID: t1\n"));
        assert!(
            !text.contains("reviewed"),
            "cco refused it, not a reviewer: {text}"
        );
    }

    #[test]
    fn verify_failed_has_its_own_prompt() {
        let who = worker();
        let t = task();
        let text = VerifyFailedPrompt {
            who: &who,
            task: &t,
            command: "make test",
            source: "refs/cco/tasks/t1",
            target: "main",
            status: CommandStatus::Exited(1),
            output_tail: "FAIL: test_add\n",
        }
        .render();
        check_common(Prompt::VerifyFailed, &text);
        assert!(text.starts_with("[cco:verify-failed]\n[cco-ref:verify-failed/t1]\n"));
        assert!(text.contains("- Command: `make test`"));
        assert!(text.contains("- On: the merge of refs/cco/tasks/t1 into main"));
        assert!(text.contains("- Result: exit 1\n"));
        assert!(text.contains("<verify-output>\nFAIL: test_add\n</verify-output>"));
        assert!(text.contains("main is unchanged"));
        assert!(text.contains("your branch cco/parser/worker-2"));
        assert!(!text.contains("Engineering Manager"));
        assert!(!text.contains("asks for changes"));
        assert!(!text.contains("[cco:feedback]"));
    }

    #[test]
    fn command_status_reads_like_a_person_wrote_it() {
        assert_eq!(CommandStatus::Exited(1).to_string(), "exit 1");
        assert_eq!(
            CommandStatus::Signaled(9).to_string(),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(
            CommandStatus::Signaled(64).to_string(),
            "killed by signal 64"
        );
        assert_eq!(
            CommandStatus::TimedOut(Duration::from_secs(600)).to_string(),
            "timed out after 10 min"
        );
        assert_eq!(
            CommandStatus::from_parts(None, Some(15)).to_string(),
            "killed by signal 15 (SIGTERM)"
        );
        assert_eq!(
            CommandStatus::from_parts(Some(2), None),
            CommandStatus::Exited(2)
        );
        assert_eq!(human_duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(human_duration(Duration::from_secs(90)), "1 min 30 s");
        assert_eq!(human_duration(Duration::from_secs(3900)), "1 h 5 min");
    }

    #[test]
    fn conflict_names_the_real_branch_and_worktree() {
        let who = worker();
        let t = task();
        let files = vec!["src/a.rs".to_string()];
        let text = ConflictPrompt {
            who: &who,
            task: Some(&t),
            merging: "cco/parser",
            files: &files,
        }
        .render();
        check_common(Prompt::Conflict, &text);
        assert!(text.starts_with("[cco:conflict]\n[cco-ref:conflict/t1]\n"));
        assert!(text.contains(
            "Merging cco/parser into your branch cco/parser/worker-2 stopped with conflicts"
        ));
        assert!(text.contains("your worktree /tmp/run/wt/worker-2"));
        assert!(text.contains("Task: t1 \"Add lexer\""));
        assert!(text.contains("- src/a.rs"));
        assert!(text.contains("git diff --check"));
        assert!(!text.contains("(none)"), "{text}");
        // Scripts match worker tasks on `Task ID: t1`: a conflict turn must not look like one.
        assert!(!text.contains("Task ID:"));
    }
}
