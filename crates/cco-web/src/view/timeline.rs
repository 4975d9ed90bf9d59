//! Timeline: the chart of [`crate::timeline`], live, with bars linking to their tasks.

use maud::{html, Markup};

use super::Ctx;

pub(super) fn render(ctx: &Ctx<'_>) -> Markup {
    let snapshot = ctx.run.snapshot();
    let (chart, present, turns, unreadable) = ctx.run.history(|h, present| {
        (
            crate::timeline::render(snapshot.as_ref(), h, ctx.now, true),
            present,
            h.turns.len(),
            h.unreadable + h.missed,
        )
    });
    html! {
        h1 { "Timeline" }
        @if !present {
            p.empty { "This run has no events.jsonl (written by newer versions of cco): there is no timeline to draw." }
        } @else {
            p.lead {
                (turns) " turns · one row per agent, one bar per turn over wall-clock time; "
                "hover a bar for its task, click it for the task's page. "
                a href="/timeline.svg" download="timeline.svg" { "Download the SVG" }
            }
            @if unreadable > 0 {
                p.note { (unreadable) " events could not be read (the record fell behind, or a newer cco wrote them)." }
            }
            div.chart { (chart) }
        }
    }
}
