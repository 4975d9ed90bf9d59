//! Task: what it was planned to be, every turn (prompt, tools, result, cost), every review
//! and merge, and the patch of its task ref against its target.

use cco::{TaskPhase, TaskRecord};
use maud::{html, Markup};

use super::board::cause_words;
use super::{agent_link, clock, duration, first_line, money, short, Ctx, Extra};
use crate::history::{Decision, Fate, History, MergeEnd, TurnEnd, TurnRec};

/// The revisions a task's patch is made of: what its ref adds over its target (over the
/// target as it was before the merge, once merged).
pub(crate) fn patch_revs(run_name: &str, base_branch: &str, task: &TaskRecord) -> (String, String) {
    let head = cco_git::task_ref(run_name, &task.team, &task.id);
    let target = if task.team == "flat" {
        base_branch.to_string()
    } else {
        cco_git::team_branch(&task.team)
    };
    let base = match (&task.phase, &task.merged_commit) {
        (TaskPhase::Done { .. }, Some(commit)) => format!("{commit}^1"),
        _ => target,
    };
    (base, head)
}

/// What changes a task's patch: a new capture, another round, the merge.
pub(crate) fn patch_fingerprint(task: &TaskRecord) -> String {
    format!(
        "{}:{:?}:{}:{}",
        task.phase.name(),
        task.captured_round,
        task.rounds(),
        task.merged_commit.as_deref().unwrap_or("")
    )
}

pub(super) fn render(ctx: &Ctx<'_>, key: &str, extra: &Extra) -> Option<Markup> {
    let snapshot = ctx.run.snapshot()?;
    let task = snapshot.tasks.iter().find(|t| t.key == key)?;
    let spec = ctx.run.journal().and_then(|j| j.specs.get(key).cloned());
    let body = ctx.run.history(|history, present| {
        html! {
            (turns(ctx, history, key, present))
            (reviews(ctx, history, key))
            (merges(ctx, history, key, task))
        }
    });
    Some(html! {
        h1 { "Task " (key) " " span.title { (ctx.clean(&task.title)) } }
        dl.facts {
            dt { "phase" } dd { span class=(format!("phase {}", super::board::column(&task.phase))) { (task.phase.name()) } }
            dt { "kind" } dd { (kind_words(&task.kind)) }
            dt { "team" } dd { (task.team) }
            dt { "worker" } dd { @if let Some(w) = &task.worker { (agent_link(w)) } @else { "—" } }
            dt { "session" } dd.mono {
                @match (&task.session_id, &task.worker) {
                    (Some(session), Some(worker)) => a href=(format!("/agent/{worker}/session/{session}")) title=(session) { (short(session)) },
                    _ => "—",
                }
            }
            dt { "rounds" } dd { (task.review_rounds) " review · " (task.conflict_rounds) " conflict" }
            dt { "processes" } dd { (task.attempts) }
            dt { "cost" } dd { (money(task.cost_usd)) }
            @if let Some(reason) = &task.failure {
                dt { "failure" } dd.failure { (ctx.clean(reason)) }
            }
        }
        @if let Some(spec) = &spec {
            section.spec {
                h2 { "Planned" }
                p.pre { (ctx.clean(&spec.description)) }
                @if !spec.acceptance.trim().is_empty() {
                    h3 { "Acceptance" }
                    p.pre { (ctx.clean(&spec.acceptance)) }
                }
                @if !spec.files.is_empty() {
                    h3 { "Files" }
                    ul.files { @for f in &spec.files { li.mono { (ctx.clean(f)) } } }
                }
                @if !spec.depends_on.is_empty() {
                    h3 { "Depends on" }
                    ul { @for d in &spec.depends_on { li { (super::task_link(&format!("{}/{}", task.team, d))) } } }
                }
            }
        }
        (body)
        (super::diff::render(ctx, extra.patch.as_deref()))
    })
}

fn kind_words(kind: &cco::TaskKind) -> String {
    match kind {
        cco::TaskKind::Planned => "planned".into(),
        cco::TaskKind::BaseMerge { base } => format!("merge {base} into the team's work"),
        cco::TaskKind::FixVerify => "fix the verify command".into(),
        _ => "other".into(),
    }
}

/// What the worker was asked in a turn, in a few words.
fn prompt_summary(ctx: &Ctx<'_>, turn: &TurnRec) -> String {
    match (turn.kind, &turn.detail) {
        ("revision", Some(feedback)) => format!("changes asked: {}", ctx.clean(feedback)),
        ("conflict resolution", Some(against)) => {
            format!("merge {against} into the work and resolve the conflict")
        }
        ("resume", _) => "continue the turn cco was restarted in".into(),
        _ => "implement the task as planned, test it and commit".into(),
    }
}

pub(crate) fn outcome_words(turn: &TurnRec) -> (String, &'static str) {
    let ended = match &turn.outcome {
        TurnEnd::Running => return ("running".into(), "running"),
        TurnEnd::Finished => "finished".to_string(),
        TurnEnd::Failed(reason) => format!("failed: {}", first_line(reason, 120)),
        TurnEnd::Interrupted => "interrupted".into(),
    };
    match &turn.fate {
        Fate::Open => (ended, "open"),
        Fate::Merged => (format!("{ended} → merged"), "merged"),
        Fate::SentBack(why) => (format!("{ended} → sent back ({why})"), "sent-back"),
        Fate::Failed => (format!("{ended} → task failed"), "failed"),
    }
}

fn turns(ctx: &Ctx<'_>, history: &History, key: &str, present: bool) -> Markup {
    let list: Vec<&TurnRec> = history
        .tasks
        .get(key)
        .map(|t| {
            t.turns
                .iter()
                .filter_map(|i| history.turns.get(*i))
                .collect()
        })
        .unwrap_or_default();
    html! {
        section.turns {
            h2 { "Turns" }
            @if !present {
                p.empty { "This run has no events.jsonl (written by newer versions of cco): turns cannot be told." }
            } @else if list.is_empty() {
                p.empty { "No turn yet." }
            } @else {
                table {
                    thead { tr {
                        th { "#" } th { "turn" } th { "worker" } th { "started" } th { "took" }
                        th.num { "processes" } th { "tools" } th { "outcome" } th.num { "cost" }
                    } }
                    tbody {
                        @for (n, turn) in list.iter().enumerate() {
                            @let (words, class) = outcome_words(turn);
                            tr class=(format!("turn {class}")) {
                                td { (n + 1) }
                                td { (turn.kind) }
                                td { (agent_link(&turn.worker)) }
                                td.mono { (clock(turn.start)) }
                                td { @match turn.end {
                                    Some(end) => (duration((end - turn.start).num_milliseconds() as f64 / 1000.0)),
                                    None => (super::since(turn.start, ctx.now)),
                                } }
                                td.num { (turn.processes) }
                                td.tools {
                                    @for (tool, count) in &turn.tools {
                                        span.tool { (ctx.clean(tool)) @if *count > 1 { "×" (count) } } " "
                                    }
                                }
                                td { span class=(format!("outcome {class}")) { (ctx.clean(&words)) } }
                                td.num { @if let Some(cost) = turn.cost() { (money(cost)) } @else { "—" } }
                            }
                            tr.turn-detail {
                                td {}
                                td colspan="8" {
                                    div.prompt { b { "asked: " } (prompt_summary(ctx, turn)) }
                                    @if let Some(text) = &turn.text {
                                        details.result {
                                            summary { b { "result: " } (ctx.clean(&first_line(text, 160))) }
                                            p.pre { (ctx.clean(text)) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn reviews(ctx: &Ctx<'_>, history: &History, key: &str) -> Markup {
    let list: Vec<_> = history
        .tasks
        .get(key)
        .map(|t| {
            t.reviews
                .iter()
                .filter_map(|i| history.reviews.get(*i))
                .collect()
        })
        .unwrap_or_default();
    if list.is_empty() {
        return html! {};
    }
    html! {
        section.reviews {
            h2 { "Reviews" }
            table {
                thead { tr { th { "round" } th { "started" } th { "took" } th { "decision" } } }
                tbody {
                    @for review in &list {
                        @let (words, feedback) = decision_words(review.decision.as_ref());
                        tr {
                            td { (review.round + 1) }
                            td.mono { (clock(review.start)) }
                            td { @if let Some(end) = review.end { (duration((end - review.start).num_milliseconds() as f64 / 1000.0)) } @else { "reviewing" } }
                            td {
                                span class=(format!("decision {}", words.split(' ').next().unwrap_or(""))) { (words) }
                                @if let Some(feedback) = feedback { p.pre.feedback { (ctx.clean(feedback)) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn decision_words(decision: Option<&Decision>) -> (&'static str, Option<&str>) {
    match decision {
        None => ("pending", None),
        Some(Decision::Approved) => ("approved", None),
        Some(Decision::Revise(feedback)) => ("changes asked", Some(feedback)),
        Some(Decision::RoundsUsed) => ("changes asked after the last round: merged as it is", None),
        Some(Decision::Unanswered) => (
            "no usable answer: merged as committed (a run of an older cco)",
            None,
        ),
        Some(Decision::Lost) => ("lost with a restart of cco", None),
        Some(Decision::Failed(reason)) => ("task failed", Some(reason)),
    }
}

fn merges(ctx: &Ctx<'_>, history: &History, key: &str, task: &TaskRecord) -> Markup {
    let list = history
        .tasks
        .get(key)
        .map(|t| t.merges.as_slice())
        .unwrap_or(&[]);
    if list.is_empty() {
        return html! {};
    }
    let verified = task.team == "flat" && ctx.run.info.verify;
    html! {
        section.merges {
            h2 { "Merges" }
            table {
                thead { tr { th { "started" } th { "why" } th { "outcome" } } }
                tbody {
                    @for merge in list {
                        tr {
                            td.mono { (clock(merge.start)) }
                            td { (cause_words(merge.cause)) }
                            td { @match &merge.outcome {
                                MergeEnd::Open => "merging",
                                MergeEnd::Merged(commit) => span.decision.approved {
                                    "merged as " span.mono { (short(commit)) }
                                    @if verified { " · verify command passed" }
                                },
                                MergeEnd::Conflict(files) => span.decision.changes {
                                    "conflict in " (ctx.clean(&files.join(", "))) ": sent to the worker's session"
                                },
                                MergeEnd::VerifyFailed(output) => div {
                                    span.decision.changes { "verify command failed: sent back" }
                                    pre.output { (ctx.clean(output)) }
                                },
                                MergeEnd::Refused(why) => span.decision.changes {
                                    "refused by cco: " (ctx.clean(why)) " — sent back"
                                },
                                MergeEnd::Failed(reason) => span.decision.task { (ctx.clean(reason)) },
                            } }
                        }
                    }
                }
            }
        }
    }
}
