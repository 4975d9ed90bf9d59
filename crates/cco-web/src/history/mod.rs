//! A run told again from its record, `<run dir>/events.jsonl`: every turn of every task (who
//! ran it, when, its tools, its last words, its cost, what became of it), the reviews and
//! their decisions, the merges and their outcomes, planning, pauses and rate limits.
//!
//! [`History::apply`] folds one recorded event in; it is pure (the time is the event's own),
//! so the same record gives the same history live, after the run, and in tests.
//! [`HistoryFile`] reads the record incrementally as it grows.

mod file;

pub(crate) use file::HistoryFile;

use std::collections::{BTreeMap, HashMap};

use cco::{MergeCause, RunEvent, TaskPhase, Turn};
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// Warnings and restarts kept for the pages (the newest ones).
const MAX_NOTES: usize = 200;

/// One line of `events.jsonl`.
#[derive(Deserialize)]
struct Line {
    at: DateTime<Utc>,
    #[serde(default)]
    missed: Option<u64>,
    #[serde(flatten)]
    event: Option<RunEvent>,
}

/// How a turn's claude work ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TurnEnd {
    Running,
    Finished,
    Failed(String),
    /// The worker was lost, or cco stopped or restarted, while it ran.
    Interrupted,
}

/// What became of a turn's work.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fate {
    /// Not decided yet (running, or waiting for its capture, review or merge).
    Open,
    Merged,
    /// Changes were asked (`review`, `verify`, `conflict`, `nothing committed`, `refused`).
    SentBack(&'static str),
    Failed,
}

/// One turn a worker ran for a task.
#[derive(Debug, Clone)]
pub(crate) struct TurnRec {
    pub(crate) task: String,
    pub(crate) worker: String,
    /// `task`, `revision`, `conflict resolution`, `resume`, `fix` ([`Turn::name`]).
    pub(crate) kind: &'static str,
    /// The feedback of a revision, the branch a conflict resolution merges, what a fix is
    /// to fix.
    pub(crate) detail: Option<String>,
    pub(crate) start: DateTime<Utc>,
    pub(crate) end: Option<DateTime<Utc>>,
    pub(crate) outcome: TurnEnd,
    pub(crate) fate: Fate,
    /// Tool calls by name, in order of first use.
    pub(crate) tools: Vec<(String, u32)>,
    /// The agent's last text in the turn (what claude reports as its result).
    pub(crate) text: Option<String>,
    pub(crate) processes: u32,
    pub(crate) cost_start: f64,
    pub(crate) cost_end: Option<f64>,
}

impl TurnRec {
    pub(crate) fn cost(&self) -> Option<f64> {
        self.cost_end.map(|end| (end - self.cost_start).max(0.0))
    }
}

/// A review's decision.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    Approved,
    Revise(String),
    /// Changes asked after the last round: merged as it is.
    RoundsUsed,
    /// No usable answer after the re-asks: the committed work is merged.
    Unanswered,
    /// Lost with a restart of cco (reviewed again).
    Lost,
    Failed(String),
}

/// One review of a task's work (in a fork of its lead's session).
#[derive(Debug, Clone)]
pub(crate) struct ReviewRec {
    pub(crate) task: String,
    pub(crate) round: u32,
    pub(crate) start: DateTime<Utc>,
    pub(crate) end: Option<DateTime<Utc>>,
    pub(crate) decision: Option<Decision>,
}

/// How a merge of a task's work into its target went.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MergeEnd {
    Open,
    Merged(String),
    Conflict(Vec<String>),
    /// The verify command failed on the merged result (its command, status and output).
    VerifyFailed(String),
    /// cco refused to merge the work (why: a secret, conflict markers, ...): sent back.
    Refused(String),
    Failed(String),
}

#[derive(Debug, Clone)]
pub(crate) struct MergeRec {
    pub(crate) cause: MergeCause,
    pub(crate) start: DateTime<Utc>,
    pub(crate) end: Option<DateTime<Utc>>,
    pub(crate) outcome: MergeEnd,
}

/// Every `Merged` and `Conflict` of the run (task refs and team branches).
#[derive(Debug, Clone)]
pub(crate) struct MergeMark {
    pub(crate) at: DateTime<Utc>,
    pub(crate) source: String,
    pub(crate) target: String,
    pub(crate) ok: bool,
    /// The task whose ref was merged (`None`: a team branch).
    pub(crate) task: Option<String>,
}

/// A span of time an agent spent on something (`planning`, a claude process).
#[derive(Debug, Clone)]
pub(crate) struct Span {
    pub(crate) agent: String,
    pub(crate) start: DateTime<Utc>,
    pub(crate) end: Option<DateTime<Utc>>,
    pub(crate) label: String,
}

/// A point in time on an agent's row (`planned 4 item(s)`).
#[derive(Debug, Clone)]
pub(crate) struct Mark {
    pub(crate) agent: String,
    pub(crate) at: DateTime<Utc>,
    pub(crate) label: String,
}

/// A task as the record tells it.
#[derive(Debug, Clone, Default)]
pub(crate) struct TaskHist {
    pub(crate) created: Option<DateTime<Utc>>,
    pub(crate) phase_since: Option<DateTime<Utc>>,
    phase: Option<TaskPhase>,
    pub(crate) turns: Vec<usize>,
    pub(crate) reviews: Vec<usize>,
    pub(crate) merges: Vec<MergeRec>,
}

/// A credential benched by a rate limit.
#[derive(Debug, Clone)]
pub(crate) struct Limit {
    pub(crate) who: String,
    pub(crate) at: DateTime<Utc>,
    pub(crate) until: DateTime<Utc>,
}

/// New claude processes held back: one agent's (every credential was rate limited), or every
/// agent's (the circuit breaker: the API was overloaded).
#[derive(Debug, Clone)]
pub(crate) struct Pause {
    /// `None`: every new process of the run.
    pub(crate) agent: Option<String>,
    pub(crate) at: DateTime<Utc>,
    pub(crate) until: DateTime<Utc>,
    pub(crate) why: String,
}

#[derive(Debug, Default)]
pub(crate) struct History {
    pub(crate) first_at: Option<DateTime<Utc>>,
    pub(crate) last_at: Option<DateTime<Utc>>,
    pub(crate) finished: Option<(DateTime<Utc>, String)>,
    pub(crate) turns: Vec<TurnRec>,
    pub(crate) reviews: Vec<ReviewRec>,
    pub(crate) tasks: BTreeMap<String, TaskHist>,
    pub(crate) merges: Vec<MergeMark>,
    pub(crate) planning: Vec<Span>,
    pub(crate) processes: Vec<Span>,
    pub(crate) plans: Vec<Mark>,
    pub(crate) benched: Vec<Limit>,
    pub(crate) pauses: Vec<Pause>,
    /// `(at, agent, restarts)`.
    pub(crate) restarts: Vec<(DateTime<Utc>, String, u32)>,
    pub(crate) warnings: Vec<(DateTime<Utc>, String)>,
    /// Events the record's writer fell behind on, and lines that did not read.
    pub(crate) missed: u64,
    pub(crate) unreadable: u64,
    /// Open things, by task or agent.
    open_turn: HashMap<String, usize>,
    agent_turn: HashMap<String, usize>,
    open_review: HashMap<String, usize>,
    open_process: HashMap<String, usize>,
    open_planning: HashMap<String, usize>,
    conflict_files: HashMap<String, Vec<String>>,
}

/// `refs/cco/tasks/<run>/<team>/<id>` → `<team>/<id>`.
pub(crate) fn task_of_ref(source: &str) -> Option<String> {
    let rest = source.strip_prefix("refs/cco/tasks/")?;
    let mut parts = rest.rsplitn(3, '/');
    let id = parts.next()?;
    let team = parts.next()?;
    parts.next()?;
    Some(format!("{team}/{id}"))
}

impl History {
    /// Folds one line of `events.jsonl` in (a line that does not read is counted).
    pub(crate) fn apply_line(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        match serde_json::from_str::<Line>(line) {
            Ok(Line {
                missed: Some(n), ..
            }) => self.missed += n,
            Ok(Line {
                at,
                event: Some(event),
                ..
            }) => self.apply(at, &event),
            // An event of a newer cco, or a damaged line.
            _ => self.unreadable += 1,
        }
    }

    pub(crate) fn apply(&mut self, at: DateTime<Utc>, event: &RunEvent) {
        self.first_at.get_or_insert(at);
        self.last_at = Some(at);
        match event {
            RunEvent::RunStarted { .. } => {
                // A resumed run: what was open when cco stopped was interrupted.
                self.close_everything(at);
                self.finished = None;
            }
            RunEvent::RunFinished { reason } => {
                self.close_everything(at);
                self.finished = Some((at, reason.clone()));
            }
            RunEvent::TaskMoved {
                task,
                phase,
                cost_usd,
            } => self.task_moved(at, task, phase, *cost_usd),
            RunEvent::ToolUsed { agent, tool } => {
                if let Some(turn) = self.current_turn(agent) {
                    match turn.tools.iter_mut().find(|(name, _)| name == tool) {
                        Some((_, n)) => *n += 1,
                        None => turn.tools.push((tool.clone(), 1)),
                    }
                }
            }
            RunEvent::AgentOutput { agent, text } => {
                if let Some(turn) = self.current_turn(agent) {
                    turn.text = Some(text.clone());
                }
            }
            RunEvent::ProcessStarted { agent, .. } => {
                if let Some(turn) = self.current_turn(agent) {
                    turn.processes += 1;
                }
                self.end_process(agent, at, "ended unreported");
                // The library's words: `claude started, pid 42 on k1 (resumed session)`.
                let label = event.text().lines.join(" ");
                self.open_process
                    .insert(agent.clone(), self.processes.len());
                self.processes.push(Span {
                    agent: agent.clone(),
                    start: at,
                    end: None,
                    label,
                });
            }
            RunEvent::ProcessExited { agent, outcome } => self.end_process(agent, at, outcome),
            RunEvent::AgentState { agent, state } => {
                if let Some(i) = self.open_planning.remove(agent) {
                    self.planning[i].end = Some(at);
                }
                if state == "planning" {
                    self.open_planning
                        .insert(agent.clone(), self.planning.len());
                    self.planning.push(Span {
                        agent: agent.clone(),
                        start: at,
                        end: None,
                        label: "planning".into(),
                    });
                }
            }
            RunEvent::Planned { agent, items } => self.plans.push(Mark {
                agent: agent.clone(),
                at,
                label: format!("planned {items} item(s)"),
            }),
            RunEvent::Merged { source, target, .. } => self.merges.push(MergeMark {
                at,
                source: source.clone(),
                target: target.clone(),
                ok: true,
                task: task_of_ref(source),
            }),
            RunEvent::Conflict {
                source,
                target,
                files,
            } => {
                let task = task_of_ref(source);
                if let Some(task) = &task {
                    self.conflict_files.insert(task.clone(), files.clone());
                }
                self.merges.push(MergeMark {
                    at,
                    source: source.clone(),
                    target: target.clone(),
                    ok: false,
                    task,
                });
            }
            RunEvent::KeyBenched { key, until } => self.benched.push(Limit {
                who: key.clone(),
                at,
                until: *until,
            }),
            RunEvent::Paused { agent, until } => push_capped(
                &mut self.pauses,
                Pause {
                    agent: Some(agent.clone()),
                    at,
                    until: *until,
                    why: "every credential was rate limited".into(),
                },
            ),
            RunEvent::ActorRestarted { agent, restarts } => {
                push_capped(&mut self.restarts, (at, agent.clone(), *restarts))
            }
            RunEvent::ApiOverloaded { agents, until } => push_capped(
                &mut self.pauses,
                Pause {
                    agent: None,
                    at,
                    until: *until,
                    why: format!("the API was overloaded ({agents} agents saw it unavailable)"),
                },
            ),
            RunEvent::Warning { message } => push_capped(&mut self.warnings, (at, message.clone())),
            RunEvent::AgentWarning { agent, message } => {
                push_capped(&mut self.warnings, (at, format!("{agent}: {message}")))
            }
            _ => {}
        }
    }

    fn current_turn(&mut self, agent: &str) -> Option<&mut TurnRec> {
        let i = *self.agent_turn.get(agent)?;
        self.turns.get_mut(i)
    }

    fn end_process(&mut self, agent: &str, at: DateTime<Utc>, outcome: &str) {
        if let Some(i) = self.open_process.remove(agent) {
            let span = &mut self.processes[i];
            span.end = Some(at);
            span.label = format!("{}: {outcome}", span.label);
        }
    }

    fn close_everything(&mut self, at: DateTime<Utc>) {
        for (_, i) in self.open_turn.drain() {
            let turn = &mut self.turns[i];
            turn.end = Some(at);
            turn.outcome = TurnEnd::Interrupted;
        }
        self.agent_turn.clear();
        for (_, i) in self.open_review.drain() {
            self.reviews[i].end = Some(at);
        }
        let agents: Vec<String> = self.open_process.keys().cloned().collect();
        for agent in agents {
            self.end_process(&agent, at, "stopped");
        }
        for (_, i) in self.open_planning.drain() {
            self.planning[i].end = Some(at);
        }
    }

    fn close_turn(&mut self, task: &str, at: DateTime<Utc>, outcome: TurnEnd, cost: f64) {
        if let Some(i) = self.open_turn.remove(task) {
            let turn = &mut self.turns[i];
            turn.end = Some(at);
            turn.outcome = outcome;
            turn.cost_end = Some(cost);
            if self.agent_turn.get(&turn.worker) == Some(&i) {
                self.agent_turn.remove(&turn.worker);
            }
        }
    }

    /// Decides the fate of the task's turns that were still open.
    fn settle_turns(&mut self, task: &str, fate: Fate) {
        let Some(hist) = self.tasks.get(task) else {
            return;
        };
        for &i in &hist.turns {
            let turn = &mut self.turns[i];
            if turn.fate == Fate::Open && turn.outcome != TurnEnd::Running {
                turn.fate = match (&fate, &turn.outcome) {
                    (_, TurnEnd::Failed(_)) => Fate::Failed,
                    _ => fate.clone(),
                };
            }
        }
    }

    fn end_review(&mut self, task: &str, at: DateTime<Utc>, decision: Decision) {
        if let Some(i) = self.open_review.remove(task) {
            self.reviews[i].end = Some(at);
            self.reviews[i].decision = Some(decision);
        }
    }

    fn end_merge(&mut self, task: &str, at: DateTime<Utc>, outcome: MergeEnd) {
        if let Some(merge) = self
            .tasks
            .get_mut(task)
            .and_then(|t| t.merges.last_mut())
            .filter(|m| m.end.is_none())
        {
            merge.end = Some(at);
            merge.outcome = outcome;
        }
    }

    fn task_moved(&mut self, at: DateTime<Utc>, task: &str, phase: &TaskPhase, cost: f64) {
        let hist = self.tasks.entry(task.to_string()).or_default();
        hist.created.get_or_insert(at);
        hist.phase_since = Some(at);
        let previous = hist.phase.replace(phase.clone());
        let from = previous.as_ref().map(TaskPhase::name).unwrap_or("");
        match phase {
            TaskPhase::Running { worker, turn, .. } => {
                self.close_turn(task, at, TurnEnd::Interrupted, cost);
                let detail = match turn {
                    Turn::Revise { feedback, .. } => Some(feedback.clone()),
                    Turn::ResolveConflict { against, .. } => Some(against.clone()),
                    Turn::Fix { problem, .. } => Some(problem.clone()),
                    _ => None,
                };
                let i = self.turns.len();
                self.turns.push(TurnRec {
                    task: task.to_string(),
                    worker: worker.clone(),
                    kind: turn.name(),
                    detail,
                    start: at,
                    end: None,
                    outcome: TurnEnd::Running,
                    fate: Fate::Open,
                    tools: Vec::new(),
                    text: None,
                    processes: 0,
                    cost_start: cost,
                    cost_end: None,
                });
                self.open_turn.insert(task.to_string(), i);
                self.agent_turn.insert(worker.clone(), i);
                if let Some(hist) = self.tasks.get_mut(task) {
                    hist.turns.push(i);
                }
            }
            TaskPhase::Finished { failure, .. } => {
                let outcome = match failure {
                    Some(reason) => TurnEnd::Failed(reason.clone()),
                    None => TurnEnd::Finished,
                };
                self.close_turn(task, at, outcome, cost);
            }
            TaskPhase::Queued => self.close_turn(task, at, TurnEnd::Interrupted, cost),
            TaskPhase::Pinned { turn, .. } => {
                self.close_turn(task, at, TurnEnd::Interrupted, cost);
                match (from, turn) {
                    ("reviewing", Turn::Revise { feedback, .. }) => {
                        self.end_review(task, at, Decision::Revise(feedback.clone()));
                        self.settle_turns(task, Fate::SentBack("review"));
                    }
                    (
                        "merging",
                        Turn::Revise {
                            gate: Some(gate), ..
                        },
                    ) => {
                        let output =
                            format!("{} ({}):\n{}", gate.command, gate.status, gate.output);
                        self.end_merge(task, at, MergeEnd::VerifyFailed(output));
                        self.settle_turns(task, Fate::SentBack("verify"));
                    }
                    // cco refused the merge of the work (a secret, conflict markers, ...).
                    ("merging", Turn::Revise { feedback, .. }) => {
                        self.end_merge(task, at, MergeEnd::Refused(feedback.clone()));
                        self.settle_turns(task, Fate::SentBack("refused"));
                    }
                    ("merging", Turn::ResolveConflict { .. }) => {
                        let files = self.conflict_files.remove(task).unwrap_or_default();
                        self.end_merge(task, at, MergeEnd::Conflict(files));
                        self.settle_turns(task, Fate::SentBack("conflict"));
                    }
                    ("finished" | "captured", Turn::Revise { .. }) => {
                        self.settle_turns(task, Fate::SentBack("nothing committed"))
                    }
                    // cco refused what the turn left in its worktree: fixed in place.
                    ("finished", Turn::Fix { .. }) => {
                        self.settle_turns(task, Fate::SentBack("refused"))
                    }
                    _ => {}
                }
            }
            TaskPhase::Captured if from == "reviewing" => self.end_review(task, at, Decision::Lost),
            TaskPhase::Reviewing { round } => {
                self.end_review(task, at, Decision::Lost);
                self.open_review
                    .insert(task.to_string(), self.reviews.len());
                self.reviews.push(ReviewRec {
                    task: task.to_string(),
                    round: *round,
                    start: at,
                    end: None,
                    decision: None,
                });
                if let Some(hist) = self.tasks.get_mut(task) {
                    hist.reviews.push(self.reviews.len() - 1);
                }
            }
            TaskPhase::Merging { cause } => {
                let decision = match cause {
                    MergeCause::Approved => Some(Decision::Approved),
                    MergeCause::RoundsUsed => Some(Decision::RoundsUsed),
                    MergeCause::NoDecision => Some(Decision::Unanswered),
                    _ => None,
                };
                if let (Some(decision), "reviewing") = (decision, from) {
                    self.end_review(task, at, decision);
                }
                if let Some(hist) = self.tasks.get_mut(task) {
                    hist.merges.push(MergeRec {
                        cause: *cause,
                        start: at,
                        end: None,
                        outcome: MergeEnd::Open,
                    });
                }
            }
            TaskPhase::Done { commit } => {
                self.end_merge(task, at, MergeEnd::Merged(commit.clone()));
                self.settle_turns(task, Fate::Merged);
            }
            TaskPhase::Failed { reason } => {
                self.close_turn(task, at, TurnEnd::Failed(reason.clone()), cost);
                self.end_review(task, at, Decision::Failed(reason.clone()));
                self.end_merge(task, at, MergeEnd::Failed(reason.clone()));
                self.settle_turns(task, Fate::Failed);
            }
            _ => {}
        }
    }
}

fn push_capped<T>(list: &mut Vec<T>, item: T) {
    if list.len() >= MAX_NOTES {
        list.remove(0);
    }
    list.push(item);
}

#[cfg(test)]
mod tests;
