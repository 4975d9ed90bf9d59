//! Costs and limits: spend per model and per agent, budget and time left, the state of every
//! credential (active, benched until T, limited until T), pauses and their reasons.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use maud::{html, Markup};

use super::{agent_link, clock, duration, money, Ctx};
use crate::history::Limit;

/// A bench longer than this is a usage limit (hours or days), not a short rate limit.
const LIMITED_AFTER: chrono::Duration = chrono::Duration::hours(1);

/// A credential's state now.
pub(crate) fn credential_state(
    name: &str,
    benched: &[Limit],
    now: DateTime<Utc>,
) -> (String, &'static str) {
    match benched.iter().rev().find(|b| b.who == name) {
        Some(b) if b.until > now && b.until - b.at > LIMITED_AFTER => (
            format!("limited until {}", b.until.format("%Y-%m-%d %H:%M UTC")),
            "bad",
        ),
        Some(b) if b.until > now => (format!("benched until {} UTC", clock(b.until)), "warn"),
        _ => ("active".into(), "ok"),
    }
}

pub(super) fn render(ctx: &Ctx<'_>) -> Markup {
    let Some(snapshot) = ctx.run.snapshot() else {
        return html! { h1 { "Costs and limits" } p.empty { "The run has no journal yet." } };
    };
    let info = &ctx.run.info;
    let total = snapshot.totals.cost_usd;
    let active = ctx.run.active_secs(&snapshot);
    let limit = info.max_duration.as_secs_f64();
    let mut by_model: BTreeMap<String, f64> = BTreeMap::new();
    for agent in &snapshot.agents {
        *by_model
            .entry(agent.model.clone().unwrap_or_else(|| "none".into()))
            .or_default() += agent.cost_usd;
    }
    let mut agents: Vec<_> = snapshot.agents.iter().collect();
    agents.sort_by(|a, b| b.cost_usd.total_cmp(&a.cost_usd));
    let live = ctx.run.ended().is_none();
    let (benched, pauses, rate_limits) = ctx.run.history(|h, _| {
        let counts: BTreeMap<String, usize> = h.benched.iter().fold(BTreeMap::new(), |mut m, b| {
            *m.entry(b.who.clone()).or_default() += 1;
            m
        });
        (h.benched.clone(), h.pauses.clone(), counts)
    });
    let mut credentials = info.credentials.clone();
    for b in &benched {
        if !credentials.contains(&b.who) {
            credentials.push(b.who.clone());
        }
    }
    html! {
        h1 { "Costs and limits" }
        section.limits {
            div.gauge {
                h2 { "Spend" }
                p.big { (money(total)) }
                @match info.max_budget_usd {
                    Some(budget) if budget > 0.0 => {
                        progress max=(budget) value=(total.min(budget)) {}
                        p { "budget " (money(budget)) " · left " b { (money((budget - total).max(0.0))) } }
                    },
                    _ => p.note { "no budget set (maxBudgetUsd)" },
                }
            }
            div.gauge {
                h2 { "Time" }
                p.big { (duration(active)) }
                progress max=(limit.max(1.0)) value=(active.min(limit)) {}
                p {
                    "limit " (duration(limit))
                    @if live { " · left " b { (duration((limit - active).max(0.0))) } }
                }
            }
        }
        section {
            h2 { "Cost per model" }
            table {
                thead { tr { th { "model" } th.num { "cost" } th.num { "share" } } }
                tbody {
                    @for (model, cost) in &by_model {
                        tr {
                            td { (model) }
                            td.num { (money(*cost)) }
                            td.num { (format!("{:.0} %", if total > 0.0 { 100.0 * cost / total } else { 0.0 })) }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Cost per agent" }
            table {
                thead { tr { th { "agent" } th { "role" } th { "model" } th.num { "cost" } } }
                tbody {
                    @for agent in &agents {
                        tr {
                            td { (agent_link(&agent.id)) }
                            td { (agent.role.as_str()) }
                            td { (agent.model.as_deref().unwrap_or("—")) }
                            td.num { (money(agent.cost_usd)) }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Credentials" }
            table.credentials {
                thead { tr { th { "credential" } th { "state" } th.num { "rate limits" } } }
                tbody {
                    @for name in &credentials {
                        @let (state, class) = credential_state(name, &benched, ctx.now);
                        tr data-credential=(name) {
                            td { (ctx.clean(name)) }
                            td { span class=(format!("state {class}")) { (state) } }
                            td.num { (rate_limits.get(name).copied().unwrap_or(0)) }
                        }
                    }
                }
            }
            p.note { "benched: a rate limit, the credential rests until its reset; limited: a usage limit that resets in more than an hour." }
        }
        section {
            h2 { "Pauses" }
            @if pauses.is_empty() {
                p.empty { "No agent had to pause." }
            } @else {
                table {
                    thead { tr { th { "agent" } th { "paused at" } th { "until" } th { "why" } } }
                    tbody {
                        @for p in pauses.iter().rev().take(200) {
                            tr {
                                td { (agent_link(&p.who)) }
                                td.mono { (clock(p.at)) }
                                td.mono { (clock(p.until)) }
                                td { "every credential was rate limited" }
                            }
                        }
                    }
                }
            }
        }
    }
}
