//! Review prompts: a finished task, and a merge-conflict resolution.

use super::{bullets, one_line, or_none, render, AnswerFormat, Identity, Prompt};
use crate::schema::{PlanKind, TaskSpec};

/// `[cco:review]`: the EM's (or flat Coordinator's) review of a finished task. Names the task
/// ref and the target branch so the reviewer can run `git diff <target>...<task ref>` itself,
/// and gives a diff summary. Contains `Task ID: <id>`.
#[derive(Debug, Clone)]
pub struct ReviewPrompt<'a> {
    /// The reviewer.
    pub who: &'a Identity,
    pub task: &'a TaskSpec,
    /// Who did the work (an agent id, e.g. `worker-2`).
    pub worker: &'a str,
    /// The ref holding the work (cco's task ref or the worker's branch).
    pub task_ref: &'a str,
    /// The branch it would be merged into.
    pub target: &'a str,
    /// The commits `task_ref` and `target` point at, for the git commands of the prompt when
    /// the reviewer's repository does not have those refs (cco's agents work in repositories
    /// of their own that share its objects, not its refs). `None`: the names are used.
    pub revs: Option<(&'a str, &'a str)>,
    /// The worker's final answer.
    pub result: &'a str,
    /// A diff summary of `task_ref` against `target` (`--stat`, commits...).
    pub diff: &'a str,
    pub answer: AnswerFormat,
}

impl ReviewPrompt<'_> {
    pub fn render(&self) -> String {
        let worker = if self.worker.trim().is_empty() {
            "A worker".to_string()
        } else {
            format!("The worker {}", self.worker.trim())
        };
        let (task_ref, target) = (or_none(self.task_ref), or_none(self.target));
        let (task_rev, target_rev, task_at, target_at) = match self.revs {
            Some((task, tip)) => (
                task.to_string(),
                tip.to_string(),
                format!(" (commit {task})"),
                format!(" (now at {tip})"),
            ),
            None => (
                task_ref.clone(),
                target.clone(),
                String::new(),
                String::new(),
            ),
        };
        let vars = self
            .who
            .task_vars(self.task)
            .with("description", or_none(self.task.description.trim()))
            .with("acceptance", or_none(self.task.acceptance.trim()))
            .with("worker", worker)
            .with("task_ref", task_ref)
            .with("target", target)
            .with("task_rev", task_rev)
            .with("target_rev", target_rev)
            .with("task_at", task_at)
            .with("target_at", target_at)
            .with("result", or_none(self.result.trim()))
            .with("diff", or_none(self.diff.trim()))
            .with("answer", self.answer.instructions(PlanKind::Review));
        render(Prompt::Review, &vars)
    }
}

/// One parent of a merge commit under review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeParent {
    /// The parent's commit (or a rev that names it, e.g. `<merge>^1`).
    pub rev: String,
    /// What that side is, e.g. `cco/parser/worker-2, the task's work`.
    pub label: String,
    /// A summary of the diff from this parent to the merge commit.
    pub diff: String,
}

/// `[cco:review-resolution]`: the review of a conflict resolution before it merges. The
/// reviewer sees the merge commit's diff against each parent. Contains `Task ID: <id>`.
#[derive(Debug, Clone)]
pub struct ResolutionReviewPrompt<'a> {
    /// The reviewer.
    pub who: &'a Identity,
    pub task: &'a TaskSpec,
    /// Who resolved it (an agent id).
    pub worker: &'a str,
    /// The merge commit that concludes the resolution.
    pub merge_commit: &'a str,
    /// What was merged (e.g. the target branch) ...
    pub merged: &'a str,
    /// ... into which branch (the worker's).
    pub into: &'a str,
    /// Its first parent (the branch merged into) and second parent (what was merged).
    pub parents: [MergeParent; 2],
    /// Where the work goes after approval.
    pub target: &'a str,
    /// The files that conflicted.
    pub files: &'a [String],
    /// The worker's final answer (how it resolved each file).
    pub result: &'a str,
    pub answer: AnswerFormat,
}

impl ResolutionReviewPrompt<'_> {
    pub fn render(&self) -> String {
        let [first, second] = &self.parents;
        let worker = if self.worker.trim().is_empty() {
            "the worker".to_string()
        } else {
            self.worker.trim().to_string()
        };
        let vars = self
            .who
            .task_vars(self.task)
            .with("worker", worker)
            .with("merge_commit", or_none(self.merge_commit))
            .with("merged", or_none(self.merged))
            .with("into", or_none(self.into))
            .with("target", or_none(self.target))
            .with("first_rev", or_none(&first.rev))
            .with("first_label", one_line(&first.label))
            .with("first_diff", or_none(first.diff.trim()))
            .with("second_rev", or_none(&second.rev))
            .with("second_label", one_line(&second.label))
            .with("second_diff", or_none(second.diff.trim()))
            .with("files", bullets(self.files, "(not known)"))
            .with("result", or_none(self.result.trim()))
            .with("answer", self.answer.instructions(PlanKind::Review));
        render(Prompt::ReviewResolution, &vars)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn review_names_task_ref_and_target() {
        let who = em();
        let mut task = TaskSpec::new("t1", "Add lexer");
        task.acceptance = "cargo test".into();
        let text = ReviewPrompt {
            who: &who,
            task: &task,
            worker: "worker-2",
            task_ref: "refs/cco/tasks/t1",
            target: "cco/parser",
            revs: None,
            result: "done",
            diff: "1 file changed",
            answer: AnswerFormat::Text,
        }
        .render();
        check_common(Prompt::Review, &text);
        assert!(text.starts_with("[cco:review]\n[cco-ref:review/t1]\n"));
        assert!(text.contains("`git diff cco/parser...refs/cco/tasks/t1`"));
        assert!(text.contains("## Diff summary (refs/cco/tasks/t1 against cco/parser)"));
        assert!(text.contains("<diff>\n1 file changed\n</diff>"));
        assert!(text.contains("The worker worker-2 finished"));
        assert!(text.contains("Role: em"));
        assert!(text.contains(PlanKind::Review.schema()));
        assert!(!text.contains("(none)"), "{text}");
        // With the commits given (the reviewer's repository has the objects, not the refs),
        // the commands use them and the prompt still names the refs.
        let text = ReviewPrompt {
            who: &who,
            task: &task,
            worker: "worker-2",
            task_ref: "refs/cco/tasks/t1",
            target: "cco/parser",
            revs: Some(("1111111", "2222222")),
            result: "done",
            diff: "1 file changed",
            answer: AnswerFormat::Text,
        }
        .render();
        assert!(text.contains("`git diff 2222222...1111111`"), "{text}");
        assert!(text.contains("`git show 1111111:<path>`"), "{text}");
        assert!(text.contains(
            "The work is at `refs/cco/tasks/t1` (commit 1111111) and would be merged into `cco/parser` (now at 2222222)"
        ));
    }

    #[test]
    fn agent_text_cannot_inject_placeholders() {
        let who = em();
        let task = TaskSpec::new("t1", "{{agent_id}}");
        let text = ReviewPrompt {
            who: &who,
            task: &task,
            worker: "w",
            task_ref: "b",
            target: "main",
            revs: None,
            result: "I did {{answer}} and {{diff}}",
            diff: "{{result}}",
            answer: AnswerFormat::Text,
        }
        .render();
        assert!(text.contains("Title: {{agent_id}}"));
        assert!(text.contains("I did {{answer}} and {{diff}}"));
        assert!(text.contains("<diff>\n{{result}}\n</diff>"));
    }

    #[test]
    fn resolution_review_shows_both_parents() {
        let who = coordinator();
        let task = TaskSpec::new("t3", "Parser");
        let files = vec!["src/parser.rs".to_string()];
        let text = ResolutionReviewPrompt {
            who: &who,
            task: &task,
            worker: "worker-1",
            merge_commit: "abc1234",
            merged: "main",
            into: "cco/worker-1/t3",
            parents: [
                MergeParent {
                    rev: "abc1234^1".into(),
                    label: "cco/worker-1/t3, the task's work".into(),
                    diff: "src/parser.rs | 3 ++-".into(),
                },
                MergeParent {
                    rev: "abc1234^2".into(),
                    label: "main".into(),
                    diff: "src/parser.rs | 9 +++++----".into(),
                },
            ],
            target: "main",
            files: &files,
            result: "kept both",
            answer: AnswerFormat::StructuredOutput,
        }
        .render();
        check_common(Prompt::ReviewResolution, &text);
        assert!(text.starts_with("[cco:review-resolution]\n[cco-ref:review-resolution/t3]\n"));
        // Not mistaken for an ordinary review by scripts matching `[cco:review]`.
        assert!(!text.contains("[cco:review]"));
        assert!(text.contains("merge commit abc1234"));
        assert!(text.contains("`git diff abc1234^1 abc1234`"));
        assert!(text.contains("`git diff abc1234^2 abc1234`"));
        assert!(text.contains("<diff-first-parent>\nsrc/parser.rs | 3 ++-\n</diff-first-parent>"));
        assert!(text
            .contains("<diff-second-parent>\nsrc/parser.rs | 9 +++++----\n</diff-second-parent>"));
        assert!(text.contains("- src/parser.rs"));
        assert!(text.contains("Merging main into cco/worker-1/t3"));
        assert!(text.contains("StructuredOutput tool"));
        assert!(text.contains("\nTask ID: t3\n"));
    }
}
