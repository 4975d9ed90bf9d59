//! Costs and limits: spend per model and per agent, budget and time left, the state of every
//! credential (active, benched until T, limited until T), pauses and their reasons.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use maud::{html, Markup};

use cco::{CredentialState, CredentialStatus};

use super::{agent_link, clock, duration, money, Ctx};
use crate::history::Limit;

/// A bench longer than this is a usage limit (hours or days), not a short rate limit.
const LIMITED_AFTER: chrono::Duration = chrono::Duration::hours(1);

/// A credential's state now, and a CSS class: from the run's key pool as its snapshot
/// records it (ready, quota nearly used, rate limited until T), else told from the record's
/// benches (a run of a cco that did not record its credentials). A bench that has run out is
/// over even when the snapshot is older than its end.
pub(crate) fn credential_state(
    name: &str,
    pool: &[CredentialStatus],
    benched: &[Limit],
    now: DateTime<Utc>,
) -> (String, &'static str) {
    let limited = |since: Option<DateTime<Utc>>, until: DateTime<Utc>| match since {
        Some(since) if until - since > LIMITED_AFTER => (
            format!("limited until {}", until.format("%Y-%m-%d %H:%M UTC")),
            "bad",
        ),
        _ => (format!("benched until {} UTC", clock(until)), "warn"),
    };
    let last_bench = benched.iter().rev().find(|b| b.who == name);
    if let Some(status) = pool.iter().find(|c| c.name == name) {
        return match (status.state, status.until) {
            (CredentialState::Limited, Some(until)) if until > now => {
                limited(last_bench.map(|b| b.at), until)
            }
            (CredentialState::Warning, _) => {
                let used = status
                    .utilization
                    .map(|u| format!(" ({:.0} % used)", u * 100.0))
                    .unwrap_or_default();
                (format!("active · quota nearly used{used}"), "warn")
            }
            _ => ("active".into(), "ok"),
        };
    }
    match last_bench {
        Some(b) if b.until > now => limited(Some(b.at), b.until),
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
    for c in &snapshot.credentials {
        if !credentials.contains(&c.name) {
            credentials.push(c.name.clone());
        }
    }
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
                        @let (state, class) = credential_state(name, &snapshot.credentials, &benched, ctx.now);
                        @let fallback = snapshot.credentials.iter().any(|c| &c.name == name && c.fallback);
                        tr data-credential=(name) {
                            td {
                                (ctx.clean(name))
                                @if name == "oauth" { " " span.note { "(the CLI's login)" } }
                                @if fallback { " " span.note { "(fallback)" } }
                            }
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
            @if let Some(pause) = snapshot.pause.as_ref().filter(|p| live && p.until > ctx.now) {
                p.banner.warn data-paused-now="" { (pause.describe()) }
            }
            @if pauses.is_empty() {
                p.empty { "No new process had to wait." }
            } @else {
                table.pauses {
                    thead { tr { th { "who" } th { "paused at" } th { "until" } th { "why" } } }
                    tbody {
                        @for p in pauses.iter().rev() {
                            tr {
                                td { @match &p.agent { Some(agent) => (agent_link(agent)), None => "every new process" } }
                                td.mono { (clock(p.at)) }
                                td.mono { (clock(p.until)) }
                                td { (ctx.clean(&p.why)) }
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
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 31, 12, 0, 0).unwrap() + chrono::Duration::seconds(s)
    }

    /// A credential as the run's snapshot records it.
    fn status(name: &str, state: &str, until: Option<i64>, used: Option<f64>) -> CredentialStatus {
        serde_json::from_value(serde_json::json!({
            "name": name, "login": false, "fallback": false, "state": state,
            "until": until.map(t), "utilization": used,
        }))
        .unwrap()
    }

    fn bench(who: &str, at: i64, until: i64) -> Limit {
        Limit {
            who: who.into(),
            at: t(at),
            until: t(until),
        }
    }

    #[test]
    fn credential_states_come_from_the_pool_and_a_bench_that_ran_out_is_over() {
        let pool = [
            status("k1", "limited", Some(600), None),
            status("k2", "warning", None, Some(0.95)),
            status("k3", "ready", None, None),
            status("k4", "limited", Some(7 * 3600), None),
        ];
        let benched = [bench("k1", 0, 600), bench("k4", 0, 7 * 3600)];
        let state = |name: &str, now: i64| credential_state(name, &pool, &benched, t(now));
        assert_eq!(
            state("k1", 10),
            ("benched until 12:10:00 UTC".into(), "warn")
        );
        assert_eq!(
            state("k1", 601),
            ("active".into(), "ok"),
            "the bench ran out"
        );
        assert_eq!(
            state("k2", 10),
            ("active · quota nearly used (95 % used)".into(), "warn")
        );
        assert_eq!(state("k3", 10), ("active".into(), "ok"));
        assert_eq!(
            state("k4", 10),
            ("limited until 2025-01-31 19:00 UTC".into(), "bad"),
            "a usage limit: hours away"
        );
    }

    #[test]
    fn without_a_recorded_pool_the_benches_tell_the_state() {
        let benched = [bench("k1", 0, 600), bench("k1", 700, 800)];
        let state = |now: i64| credential_state("k1", &[], &benched, t(now));
        assert_eq!(
            state(750),
            ("benched until 12:13:20 UTC".into(), "warn"),
            "the last bench counts"
        );
        assert_eq!(state(900).0, "active");
        assert_eq!(credential_state("k9", &[], &benched, t(750)).0, "active");
    }
}
