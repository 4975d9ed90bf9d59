//! The timeline chart: one row per agent (leads first, each followed by its workers), one bar
//! per turn over wall-clock time, coloured by what became of it; planning, reviews, plans and
//! merges marked on the leads' rows. An SVG (made with maud, so every text is escaped), the
//! same on the dashboard's page and in `<run dir>/timeline.svg` ([`write_svg`]).

use std::path::{Path, PathBuf};

use cco::{AgentRecord, Role, StatusSnapshot};
use chrono::{DateTime, Utc};
use maud::{html, Markup};

use crate::history::{Fate, History, HistoryFile, TurnEnd, TurnRec};

/// File name of the chart in the run folder.
pub const FILE_NAME: &str = "timeline.svg";

const LABEL_W: f64 = 150.0;
const CHART_W: f64 = 1000.0;
const ROW_H: f64 = 20.0;
const TOP: f64 = 34.0;
const LEGEND_H: f64 = 60.0;

/// Colours of a turn, by what became of it (also the legend).
pub(crate) const LEGEND: [(&str, &str); 7] = [
    ("running", "#3b82f6"),
    ("merged", "#16a34a"),
    ("waiting for review or merge", "#14b8a6"),
    ("sent back (review, verify)", "#f59e0b"),
    ("sent back (conflict)", "#a855f7"),
    ("failed", "#dc2626"),
    ("interrupted", "#9ca3af"),
];
const PLANNING: &str = "#c4b5fd";
const REVIEW: &str = "#93c5fd";
const MERGE_OK: &str = "#15803d";
const MERGE_CONFLICT: &str = "#b91c1c";

fn colour(turn: &TurnRec) -> &'static str {
    let pick = |i: usize| LEGEND[i].1;
    match (&turn.outcome, &turn.fate) {
        (TurnEnd::Running, _) => pick(0),
        (_, Fate::Merged) => pick(1),
        (TurnEnd::Failed(_), _) | (_, Fate::Failed) => pick(5),
        (_, Fate::SentBack("conflict")) => pick(4),
        (_, Fate::SentBack(_)) => pick(3),
        (TurnEnd::Interrupted, _) => pick(6),
        _ => pick(2),
    }
}

/// A row of the chart.
struct Row {
    agent: String,
    lead: bool,
    team: Option<String>,
}

/// Rows in tree order: each lead followed by its workers; agents the tree no longer has (or
/// a run without a journal) after them.
fn rows(snapshot: Option<&StatusSnapshot>, history: &History) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let push = |rows: &mut Vec<Row>, agent: &AgentRecord| {
        if !rows.iter().any(|r| r.agent == agent.id) {
            rows.push(Row {
                agent: agent.id.clone(),
                lead: agent.role != Role::Worker,
                team: agent.team.clone(),
            });
        }
    };
    if let Some(snapshot) = snapshot {
        let by_role = |role: Role| snapshot.agents.iter().filter(move |a| a.role == role);
        for director in by_role(Role::Director) {
            push(&mut rows, director);
        }
        for lead in by_role(Role::Coordinator).chain(by_role(Role::Em)) {
            push(&mut rows, lead);
            let mut workers: Vec<&AgentRecord> = snapshot
                .agents
                .iter()
                .filter(|a| a.role == Role::Worker && a.parent.as_deref() == Some(&lead.id))
                .collect();
            workers.sort_by_key(|a| natural(&a.id));
            for worker in workers {
                push(&mut rows, worker);
            }
        }
        let mut rest: Vec<&AgentRecord> = snapshot.agents.iter().collect();
        rest.sort_by_key(|a| natural(&a.id));
        for agent in rest {
            push(&mut rows, agent);
        }
    }
    let mut workers: Vec<String> = history.turns.iter().map(|t| t.worker.clone()).collect();
    workers.sort_by_key(|w| natural(w));
    workers.dedup();
    for worker in workers {
        if !rows.iter().any(|r| r.agent == worker) {
            rows.push(Row {
                agent: worker,
                lead: false,
                team: None,
            });
        }
    }
    rows
}

/// `worker-10` after `worker-9`.
fn natural(id: &str) -> (String, u64) {
    let digits = id.len() - id.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (name, number) = id.split_at(id.len() - digits);
    (name.to_string(), number.parse().unwrap_or(0))
}

/// A tick step (seconds) that gives at most about ten ticks over `span` seconds.
fn tick_step(span: f64) -> f64 {
    const STEPS: [f64; 16] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        14400.0, 43200.0,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| span / s <= 10.0)
        .unwrap_or(86400.0)
}

fn tick_label(secs: f64) -> String {
    let s = secs as u64;
    match s {
        0 => "0".into(),
        s if s < 60 => format!("{s}s"),
        s if s < 3600 && s % 60 == 0 => format!("{}m", s / 60),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The chart. `now` ends what is still open; `links` makes bars link to their task's page
/// (on the dashboard; a file on its own has nowhere to link to).
pub(crate) fn render(
    snapshot: Option<&StatusSnapshot>,
    history: &History,
    now: DateTime<Utc>,
    links: bool,
) -> Markup {
    let rows = rows(snapshot, history);
    let start = history.first_at.unwrap_or(now);
    let end = history
        .finished
        .as_ref()
        .map(|(at, _)| *at)
        .or(if links { Some(now) } else { history.last_at })
        .unwrap_or(now)
        .max(start + chrono::Duration::seconds(1));
    let span = (end - start).num_milliseconds() as f64 / 1000.0;
    let x = |at: DateTime<Utc>| -> f64 {
        let secs = (at - start).num_milliseconds() as f64 / 1000.0;
        LABEL_W + (secs / span).clamp(0.0, 1.0) * CHART_W
    };
    let row_of = |agent: &str| rows.iter().position(|r| r.agent == agent);
    let y = |row: usize| TOP + row as f64 * ROW_H;
    let lead_of_team = |team: &str| {
        rows.iter()
            .position(|r| r.lead && r.team.as_deref() == Some(team))
            .or_else(|| rows.iter().position(|r| r.lead))
    };
    let director = rows.iter().position(|r| r.lead);
    let width = LABEL_W + CHART_W + 20.0;
    let height = TOP + rows.len().max(1) as f64 * ROW_H + LEGEND_H;
    let step = tick_step(span);
    let ticks: Vec<f64> = (0..)
        .map(|i| i as f64 * step)
        .take_while(|t| *t <= span)
        .collect();
    let bar_w = |a: f64, b: f64| (b - a).max(1.5);
    let end_of = |e: Option<DateTime<Utc>>| e.unwrap_or(end);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" class="timeline"
            width=[(!links).then_some(width)] height=[(!links).then_some(height)]
            viewBox=(format!("0 0 {width} {height}")) font-family="sans-serif" font-size="11" {
            rect x="0" y="0" width=(width) height=(height) fill="#ffffff" {}
            text x="4" y="14" font-weight="bold" {
                "start " (start.format("%Y-%m-%d %H:%M:%S UTC")) " · " (tick_label(span.round())) " shown"
            }
            @for t in &ticks {
                @let tx = LABEL_W + t / span * CHART_W;
                line x1=(tx) x2=(tx) y1=(TOP - 6.0) y2=(y(rows.len())) stroke="#e5e7eb" {}
                text x=(tx + 2.0) y=(TOP - 8.0) fill="#6b7280" { (tick_label(*t)) }
            }
            @for (i, row) in rows.iter().enumerate() {
                @if i % 2 == 1 {
                    rect x="0" y=(y(i)) width=(width) height=(ROW_H) fill="#f9fafb" {}
                }
                text x="4" y=(y(i) + 14.0) font-weight=(if row.lead { "bold" } else { "normal" }) data-row=(row.agent) {
                    (row.agent)
                }
            }
            // Planning (leads).
            @for span_ in &history.planning {
                @if let Some(r) = row_of(&span_.agent) {
                    rect x=(x(span_.start)) y=(y(r) + 3.0) width=(bar_w(x(span_.start), x(end_of(span_.end)))) height=(ROW_H - 6.0) fill=(PLANNING) {
                        title { (span_.agent) " planning" }
                    }
                }
            }
            // Reviews, on the row of the task's lead.
            @for review in &history.reviews {
                @if let Some(r) = review.task.split('/').next().and_then(&lead_of_team) {
                    rect x=(x(review.start)) y=(y(r) + ROW_H / 2.0) width=(bar_w(x(review.start), x(end_of(review.end)))) height=(ROW_H / 2.0 - 3.0) fill=(REVIEW) opacity="0.8" {
                        title { "review of " (review.task) " (round " (review.round + 1) ")" }
                    }
                }
            }
            // Turns (workers).
            @for turn in &history.turns {
                @if let Some(r) = row_of(&turn.worker) {
                    @let (x0, x1) = (x(turn.start), x(end_of(turn.end)));
                    @let title_text = turn_title(turn, end);
                    @if links {
                        a href=(format!("/task/{}", turn.task)) {
                            rect x=(x0) y=(y(r) + 3.0) width=(bar_w(x0, x1)) height=(ROW_H - 6.0) rx="2" fill=(colour(turn)) data-task=(turn.task) {
                                title { (title_text) }
                            }
                        }
                    } @else {
                        rect x=(x0) y=(y(r) + 3.0) width=(bar_w(x0, x1)) height=(ROW_H - 6.0) rx="2" fill=(colour(turn)) data-task=(turn.task) {
                            title { (title_text) }
                        }
                    }
                }
            }
            // Plans and merges.
            @for plan in &history.plans {
                @if let Some(r) = row_of(&plan.agent) {
                    @let (px, py) = (x(plan.at), y(r) + ROW_H / 2.0);
                    path d=(format!("M{px} {} L{} {py} L{px} {} L{} {py} Z", py - 6.0, px + 5.0, py + 6.0, px - 5.0)) fill="#7c3aed" {
                        title { (plan.agent) " " (plan.label) }
                    }
                }
            }
            @for merge in &history.merges {
                @let r = match &merge.task { Some(task) => task.split('/').next().and_then(&lead_of_team), None => director };
                @if let Some(r) = r {
                    line x1=(x(merge.at)) x2=(x(merge.at)) y1=(y(r) + 1.0) y2=(y(r) + ROW_H - 1.0)
                        stroke=(if merge.ok { MERGE_OK } else { MERGE_CONFLICT }) stroke-width="2" {
                        title { (if merge.ok { "merged " } else { "conflict merging " }) (merge.source) " into " (merge.target) }
                    }
                }
            }
            // Legend: the turn colours, then the marks of the leads' rows.
            @let ly = y(rows.len().max(1)) + 16.0;
            @for (i, item) in legend_items().iter().enumerate() {
                @let lx = 4.0 + (i % 4) as f64 * 260.0;
                @let row_y = ly + (i / 4) as f64 * 16.0;
                @match item {
                    Legend::Turn(label, fill) => {
                        rect x=(lx) y=(row_y - 9.0) width="12" height="10" rx="2" fill=(fill) {}
                        text x=(lx + 16.0) y=(row_y) { "turn: " (label) }
                    },
                    Legend::Span(label, fill) => {
                        rect x=(lx) y=(row_y - 6.0) width="12" height="7" fill=(fill) {}
                        text x=(lx + 16.0) y=(row_y) { (label) }
                    },
                    Legend::Tick(label, stroke) => {
                        line x1=(lx + 6.0) x2=(lx + 6.0) y1=(row_y - 10.0) y2=(row_y + 1.0) stroke=(stroke) stroke-width="2" {}
                        text x=(lx + 16.0) y=(row_y) { (label) }
                    },
                    Legend::Diamond(label) => {
                        path d=(format!("M{} {} L{} {} L{} {} L{} {} Z", lx + 6.0, row_y - 10.0, lx + 11.0, row_y - 4.0, lx + 6.0, row_y + 2.0, lx + 1.0, row_y - 4.0)) fill="#7c3aed" {}
                        text x=(lx + 16.0) y=(row_y) { (label) }
                    },
                }
            }
        }
    }
}

/// One entry of the legend.
enum Legend {
    Turn(&'static str, &'static str),
    Span(&'static str, &'static str),
    Tick(&'static str, &'static str),
    Diamond(&'static str),
}

fn legend_items() -> Vec<Legend> {
    let mut items: Vec<Legend> = LEGEND.iter().map(|(l, c)| Legend::Turn(l, c)).collect();
    items.extend([
        Legend::Span("lead: planning", PLANNING),
        Legend::Span("lead: reviewing a task", REVIEW),
        Legend::Diamond("lead: plan made"),
        Legend::Tick("merged", MERGE_OK),
        Legend::Tick("merge conflict", MERGE_CONFLICT),
    ]);
    items
}

fn turn_title(turn: &TurnRec, end: DateTime<Utc>) -> String {
    let took = (turn.end.unwrap_or(end) - turn.start).num_milliseconds() as f64 / 1000.0;
    let (words, _) = crate::view::outcome_words(turn);
    format!(
        "{} · {} · {} · {took:.1} s · {words}",
        turn.task, turn.kind, turn.worker
    )
}

/// Writes the chart of the run in `run_dir` to `<run_dir>/timeline.svg` (from its
/// `events.jsonl` and journal) and returns its path.
pub fn write_svg(run_dir: &Path) -> std::io::Result<PathBuf> {
    let mut file = HistoryFile::new(run_dir);
    file.refresh();
    if !file.present {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "{} has no {}",
                run_dir.display(),
                cco::log::EVENTS_FILE_NAME
            ),
        ));
    }
    let snapshot = cco::Orchestrator::read_run(run_dir)
        .ok()
        .map(|r| r.snapshot);
    let svg = render(snapshot.as_ref(), &file.history, Utc::now(), false);
    let path = run_dir.join(FILE_NAME);
    let text = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n",
        svg.into_string()
    );
    std::fs::write(&path, text)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_natural_order() {
        assert_eq!(tick_step(8.0), 1.0);
        assert_eq!(tick_step(95.0), 10.0);
        assert_eq!(tick_step(3000.0), 300.0);
        assert_eq!(tick_label(90.0), "1m30s");
        assert_eq!(tick_label(7200.0), "2h");
        let mut ids = vec!["worker-10", "worker-2", "em-1", "worker-1"];
        ids.sort_by_key(|id| natural(id));
        assert_eq!(ids, ["em-1", "worker-1", "worker-2", "worker-10"]);
    }
}
