//! Unit tests of the lead's core: every scheduling and pipeline rule, with no git, process or
//! actor (each test runs in microseconds). This file holds the test harness ([`Lead`]: a core
//! fed with inputs at a given time).

mod gates;
mod pipeline;
mod restore;
mod scheduling;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cco_git::{CaptureOutcome, DiffSummary, MergeOutcome, PushStatus, WorktreeInfo};
use serde_json::json;

use super::core::{Effect, Input, LeadConfig, LeadCore, PlanPrompt, Report, ReviewPrompt};
use super::pipeline::{MAX_CONFLICT_ROUNDS, MAX_REVIEW_ROUNDS};
use super::slots::FRESH_FOR;
use crate::board::{Board, Role, TaskRecord, TaskState};
use crate::error::JobFailure;
use crate::events::{EventBus, RunEvent};
use crate::lifecycle::{MergeCause, TaskKind, TaskPhase, Turn};
use crate::session::TurnEnd;
use crate::worker::{Start, WorkerReport};

/// A lead and the clock its inputs carry.
struct Lead {
    core: LeadCore,
    now: Instant,
}

fn config(role: Role) -> LeadConfig {
    let (id, team, target) = match role {
        Role::Coordinator => ("coordinator", "flat", "main"),
        _ => ("em-1", "team-1", "cco/team-1/team"),
    };
    LeadConfig {
        id: id.into(),
        role,
        team: team.into(),
        target_branch: target.into(),
        base_branch: "main".into(),
        run_name: "run-1".into(),
        max_plan_retries: 1,
        merge_strategy: cco_git::MergeStrategy::Agent,
        answer: cco_protocol::AnswerFormat::Text,
        verify_command: Some("make test".into()),
        max_auto_resolve: None,
    }
}

fn lead_on(board: Board, role: Role, workers: usize) -> Lead {
    let cfg = config(role);
    board.register_agent(&cfg.id, role, Some(&cfg.team), None, None);
    let ids = (1..=workers).map(|n| format!("worker-{n}")).collect();
    Lead {
        core: LeadCore::new(cfg, board, ids),
        now: Instant::now(),
    }
}

fn board() -> Board {
    Board::new("run-1", EventBus::new(1024))
}

fn lead(workers: usize) -> Lead {
    lead_on(board(), Role::Coordinator, workers)
}

fn worktree(slot: usize, lane: usize) -> PathBuf {
    let spare = if lane == 1 { "-b" } else { "" };
    PathBuf::from(format!("/ws/worktrees/worker-{}{spare}", slot + 1))
}

impl Lead {
    fn input(&mut self, input: Input) -> Vec<Effect> {
        self.core.handle(input, self.now, false)
    }

    /// Worker `slot` is up with both worktrees, parked at the target tip.
    fn worker_ready(&mut self, slot: usize) -> Vec<Effect> {
        let mut effects = self.input(Input::WorkerUp { slot });
        effects.extend(self.input(Input::WorkerReady {
            slot,
            worktree: worktree(slot, 0),
            branch: format!("cco/flat/worker-{}", slot + 1),
            fresh: true,
        }));
        effects.extend(self.input(Input::LaneReady {
            slot,
            epoch: 0,
            result: Ok(WorktreeInfo {
                path: worktree(slot, 1),
                branch: format!("cco/flat/worker-{}-b", slot + 1),
                head: "h".into(),
                reused: false,
                at_start_point: true,
            }),
        }));
        effects
    }

    /// Starts the lead and answers its first planning turn with `tasks`.
    fn plan(&mut self, tasks: serde_json::Value) -> Vec<Effect> {
        let effects = self.input(Input::Start { resumed: false });
        assert!(
            matches!(
                effects[..],
                [Effect::Plan {
                    prompt: PlanPrompt::Coordinator,
                    ..
                }]
            ),
            "{effects:?}"
        );
        self.plan_answer(&json!({"status": "continue", "tasks": tasks}).to_string())
    }

    fn plan_answer(&mut self, text: &str) -> Vec<Effect> {
        self.input(Input::PlanEnded(TurnEnd::Done {
            result_text: text.into(),
            structured: None,
            session_id: Some("lead-session".into()),
        }))
    }

    fn phase(&self, id: &str) -> TaskPhase {
        self.task(id).phase
    }

    fn task(&self, id: &str) -> TaskRecord {
        let key = format!("{}/{id}", self.core.cfg.team);
        self.core.board.task(&key).expect("task exists")
    }

    fn finish(&mut self, slot: usize, id: &str) -> Vec<Effect> {
        self.input(Input::WorkerReport {
            slot,
            report: WorkerReport::Finished {
                key: self.key(id),
                result_text: format!("{id} done"),
                session_id: Some(format!("session-{id}")),
            },
        })
    }

    fn captured(&mut self, slot: usize, lane: usize, id: &str, committed: bool) -> Vec<Effect> {
        self.captured_turn(slot, lane, id, committed, Ok(format!("{id} done")))
    }

    fn captured_turn(
        &mut self,
        slot: usize,
        lane: usize,
        id: &str,
        committed: bool,
        turn: Result<String, JobFailure>,
    ) -> Vec<Effect> {
        self.input(Input::Captured {
            slot,
            lane,
            key: self.key(id),
            epoch: self.core.target_epoch,
            outcome: Ok(CaptureOutcome {
                committed: None,
                task_commit: committed.then(|| "c0ffee".to_string()),
                moved: committed,
            }),
            turn,
        })
    }

    fn diffed(&mut self, id: &str, commits: usize) -> Vec<Effect> {
        self.input(Input::Diffed {
            key: self.key(id),
            diff: Ok(diff(commits)),
            revs: Some(("task-commit".into(), "target-tip".into())),
            result_text: format!("{id} done"),
            resolution: None,
        })
    }

    /// The summary of a conflict resolution: the task's work against each merge parent.
    fn diffed_resolution(&mut self, id: &str) -> Vec<Effect> {
        let side = |commit: &str, diff: &str| cco_git::ParentDiff {
            commit: commit.into(),
            diff: diff.into(),
        };
        self.input(Input::Diffed {
            key: self.key(id),
            diff: Ok(diff(2)),
            revs: None,
            result_text: "resolved".into(),
            resolution: Some(Box::new(cco_git::ResolutionDiff {
                merge_commit: "m3rge".into(),
                head: "m3rge".into(),
                parents: [
                    side("w0rk", "+main's line"),
                    side("ma1n", "+the task's line"),
                ],
                files: vec!["shared.txt".into()],
            })),
        })
    }

    fn reviewed(&mut self, id: &str, attempt: u32, answer: &str) -> Vec<Effect> {
        self.input(Input::ReviewEnded {
            key: self.key(id),
            attempt,
            end: TurnEnd::Done {
                result_text: answer.into(),
                structured: None,
                session_id: Some(format!("review-{id}")),
            },
        })
    }

    fn merged(&mut self, id: &str, outcome: MergeOutcome) -> Vec<Effect> {
        self.input(Input::Merged {
            key: self.key(id),
            outcome: Ok(outcome),
        })
    }

    /// Runs task `id` (assigned to `slot` in `lane`) from its finished turn to done.
    fn land(&mut self, slot: usize, lane: usize, id: &str) {
        self.finish(slot, id);
        self.captured(slot, lane, id, true);
        self.diffed(id, 1);
        self.reviewed(id, 0, APPROVE);
        self.merged(id, merged());
        assert!(matches!(self.phase(id), TaskPhase::Done { .. }));
    }

    fn key(&self, id: &str) -> String {
        format!("{}/{id}", self.core.cfg.team)
    }
}

const APPROVE: &str = r#"{"decision":"approve"}"#;

fn revise_answer(feedback: &str) -> String {
    json!({"decision": "revise", "feedback": feedback}).to_string()
}

fn task(id: &str) -> serde_json::Value {
    json!({"id": id, "title": format!("Write {id}")})
}

fn diff(commits: usize) -> DiffSummary {
    DiffSummary {
        commits: (0..commits)
            .map(|n| (format!("sha{n}"), format!("commit {n}")))
            .collect(),
        files: vec!["f.txt".into()],
        insertions: 1,
        deletions: 0,
        stat: String::new(),
    }
}

fn merged() -> MergeOutcome {
    MergeOutcome::Merged {
        commit: "m1".into(),
        previous: "p0".into(),
        pushed: PushStatus::NotPushed,
    }
}

/// The assignments among `effects`: (slot, task id, turn, start, worktree).
fn assigns(effects: &[Effect]) -> Vec<(usize, String, Turn, Start, PathBuf)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Assign {
                slot,
                job,
                start,
                place,
            } => Some((
                *slot,
                job.spec.id.clone(),
                job.turn.clone(),
                start.clone(),
                place.path.clone(),
            )),
            _ => None,
        })
        .collect()
}

fn assigned_ids(effects: &[Effect]) -> Vec<(usize, String)> {
    assigns(effects)
        .into_iter()
        .map(|(slot, id, ..)| (slot, id))
        .collect()
}

fn reports(effects: &[Effect]) -> Vec<Report> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Report(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}
