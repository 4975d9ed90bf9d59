//! Board: every task in its column (queued, running, review, revise, merging, done, failed),
//! with team, worker, rounds and how long it has been there; failed tasks say why.

use cco::{TaskPhase, TaskRecord, Turn};
use maud::{html, Markup};

use super::{agent_link, first_line, since, task_link, Ctx};

/// The board's columns, in the order a task moves through them.
pub(crate) const COLUMNS: [&str; 7] = [
    "queued", "running", "review", "revise", "merging", "done", "failed",
];

/// The column of a task's phase.
pub(crate) fn column(phase: &TaskPhase) -> &'static str {
    match phase {
        TaskPhase::Running { .. } => "running",
        TaskPhase::Finished { .. } | TaskPhase::Captured | TaskPhase::Reviewing { .. } => "review",
        TaskPhase::Pinned {
            turn: Turn::Revise { .. } | Turn::ResolveConflict { .. } | Turn::Fix { .. },
            ..
        } => "revise",
        TaskPhase::Merging { .. } => "merging",
        TaskPhase::Done { .. } => "done",
        TaskPhase::Failed { .. } => "failed",
        _ => "queued",
    }
}

/// What the task is doing in its column, in a few words.
fn doing(phase: &TaskPhase) -> String {
    match phase {
        TaskPhase::Queued => "waiting for a worker".into(),
        TaskPhase::Pinned { worker, turn } => format!("{} on {worker}", turn.name()),
        TaskPhase::Running { turn, .. } => turn.name().to_string(),
        TaskPhase::Finished { .. } => "capturing the work".into(),
        TaskPhase::Captured => "diffing for the review".into(),
        TaskPhase::Reviewing { round } => format!("review round {}", round + 1),
        TaskPhase::Merging { cause } => format!("merging ({})", cause_words(*cause)),
        TaskPhase::Done { commit } => format!("merged {}", super::short(commit)),
        TaskPhase::Failed { .. } => "failed".into(),
        _ => phase.name().to_string(),
    }
}

pub(crate) fn cause_words(cause: cco::MergeCause) -> &'static str {
    match cause {
        cco::MergeCause::Approved => "approved",
        cco::MergeCause::RoundsUsed => "review rounds used up",
        cco::MergeCause::NoDecision => "no review decision",
        cco::MergeCause::ConflictResolved => "conflict resolved",
        cco::MergeCause::AlreadyMerged => "already in its target",
        _ => "merge",
    }
}

pub(super) fn render(ctx: &Ctx<'_>) -> Markup {
    let Some(snapshot) = ctx.run.snapshot() else {
        return html! { h1 { "Board" } p.empty { "The run has no journal yet." } };
    };
    let (created, since_phase) = ctx.run.history(|h, _| {
        let created: std::collections::HashMap<String, _> = h
            .tasks
            .iter()
            .filter_map(|(k, t)| Some((k.clone(), t.created?)))
            .collect();
        let phase: std::collections::HashMap<String, _> = h
            .tasks
            .iter()
            .filter_map(|(k, t)| Some((k.clone(), t.phase_since?)))
            .collect();
        (created, phase)
    });
    let mut columns: Vec<(&str, Vec<&TaskRecord>)> =
        COLUMNS.iter().map(|c| (*c, Vec::new())).collect();
    for task in &snapshot.tasks {
        let col = column(&task.phase);
        if let Some((_, list)) = columns.iter_mut().find(|(c, _)| *c == col) {
            list.push(task);
        }
    }
    html! {
        h1 { "Board" }
        div.board {
            @for (name, tasks) in &columns {
                section.column data-column=(name) {
                    h2 { (name) " " span.count { (tasks.len()) } }
                    @for task in tasks {
                        article data-task=(task.key) class=(format!("card {name}")) {
                            div.card-title {
                                (task_link(&task.key))
                                " " span.title { (ctx.clean(&task.title)) }
                            }
                            div.card-meta {
                                span.team { (task.team) }
                                @if let Some(worker) = &task.worker { " · " (agent_link(worker)) }
                                @if task.rounds() > 0 {
                                    " · " span.rounds title="review rounds / conflict rounds" {
                                        "r" (task.review_rounds) " c" (task.conflict_rounds)
                                    }
                                }
                            }
                            div.card-doing { (ctx.clean(&doing(&task.phase))) }
                            div.card-age {
                                @if let Some(at) = since_phase.get(&task.key) { "for " (since(*at, ctx.now)) }
                                @if let Some(at) = created.get(&task.key) { " · age " (since(*at, ctx.now)) }
                            }
                            @if let Some(reason) = &task.failure {
                                div.card-failure { (ctx.clean(&first_line(reason, 240))) }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_sent_back_to_its_session_is_in_the_revise_column() {
        let pinned = |turn: Turn| TaskPhase::Pinned {
            worker: "worker-1".into(),
            turn,
        };
        let fix = Turn::Fix {
            problem: "a secret".into(),
            session_id: None,
            resolving: None,
        };
        assert_eq!(column(&pinned(fix)), "revise");
        let conflict = Turn::ResolveConflict {
            against: "main".into(),
            session_id: None,
        };
        assert_eq!(column(&pinned(conflict)), "revise");
        assert_eq!(
            column(&pinned(Turn::Fresh)),
            "queued",
            "waits for its worker"
        );
        assert_eq!(column(&TaskPhase::Captured), "review");
    }
}
