//! Team: the supervision tree, one row per agent (state, task, session, pid, restarts, cost,
//! model, credential, node), and the GitActor.

use cco::{AgentRecord, StatusSnapshot};
use maud::{html, Markup};

use super::{agent_link, money, short, task_link, Ctx, Extra};

pub(super) fn render(ctx: &Ctx<'_>, extra: &Extra) -> Markup {
    let Some(snapshot) = ctx.run.snapshot() else {
        return html! {
            h1 { "Team" }
            p.empty { "The run has no journal yet." }
        };
    };
    let mut rows = Vec::new();
    for root in snapshot.agents.iter().filter(|a| a.parent.is_none()) {
        tree_rows(&snapshot, root, 0, &mut rows);
    }
    // Agents whose parent is not (or no longer) in the tree.
    for agent in &snapshot.agents {
        if !rows
            .iter()
            .any(|(_, a): &(usize, &AgentRecord)| a.id == agent.id)
        {
            rows.push((0, agent));
        }
    }
    html! {
        h1 { "Team" }
        p.lead {
            (snapshot.agents.len()) " agents · "
            (snapshot.tasks.len()) " tasks · phase "
            b { (ctx.clean(&snapshot.phase)) }
        }
        table.tree {
            thead { tr {
                th { "agent" } th { "role" } th { "state" } th { "task" } th { "session" }
                th { "pid" } th { "restarts" } th.num { "cost" } th { "model" } th { "credential" } th { "node" }
            } }
            tbody {
                @for (depth, agent) in &rows {
                    tr class=(format!("role-{}", agent.role.as_str())) {
                        td class=(format!("depth-{}", depth.min(&3))) {
                            (agent_link(&agent.id))
                            @if let Some(team) = &agent.team { " " span.team { (team) } }
                        }
                        td { (agent.role.as_str()) }
                        td { span class=(state_class(&agent.state)) { (ctx.clean(&agent.state)) } }
                        td { @if let Some(task) = &agent.current_task { (task_link(task)) } @else { "—" } }
                        td.mono {
                            @if let Some(session) = &agent.session_id {
                                a href=(format!("/agent/{}/session/{}", agent.id, session)) title=(session) { (short(session)) }
                            } @else { "—" }
                        }
                        td.mono { @if let Some(pid) = agent.pid { (pid) } @else { "—" } }
                        td.num { (agent.restarts) }
                        td.num { (money(agent.cost_usd)) }
                        td { (agent.model.as_deref().unwrap_or("—")) }
                        td { (ctx.clean(agent.credential.as_deref().unwrap_or("—"))) }
                        td { (ctx.clean(agent.node.as_deref().unwrap_or("local"))) }
                    }
                }
                tr.role-git {
                    td.depth-0 { "git" }
                    td { "git" }
                    td { (git_state(ctx, extra)) }
                    td { "every shared ref" }
                    td { "—" } td { "—" } td.num { "0" } td.num { "—" } td { "—" } td { "—" } td { "local" }
                }
            }
        }
        p.note { "The node column names the cluster node a worker's turns run on; \"local\": this machine (every agent without a cluster, and the Director, leads and git always)." }
        @if !snapshot.nodes.is_empty() {
            h2 { "Nodes" }
            table {
                thead { tr {
                    th { "node" } th { "address" } th { "state" } th.num { "workers / slots" }
                    th.num { "bundles sent" } th.num { "bundles received" } th.num { "sessions" }
                } }
                tbody {
                    @for node in &snapshot.nodes {
                        tr {
                            td { (ctx.clean(&node.name)) }
                            td.mono { (ctx.clean(&node.address)) }
                            td { (node.state.as_str()) }
                            td.num { (node.workers.len()) " / " (node.slots) }
                            td.num { (node.bundle_bytes_sent) " B" }
                            td.num { (node.bundle_bytes_received) " B" }
                            td.num { (node.session_bytes_received) " B" }
                        }
                    }
                }
            }
        }
    }
}

fn tree_rows<'a>(
    snapshot: &'a StatusSnapshot,
    agent: &'a AgentRecord,
    depth: usize,
    rows: &mut Vec<(usize, &'a AgentRecord)>,
) {
    if rows.iter().any(|(_, a)| a.id == agent.id) {
        return;
    }
    rows.push((depth, agent));
    for child in snapshot
        .agents
        .iter()
        .filter(|a| a.parent.as_deref() == Some(agent.id.as_str()))
    {
        tree_rows(snapshot, child, depth + 1, rows);
    }
}

fn git_state(ctx: &Ctx<'_>, extra: &Extra) -> String {
    let status = extra
        .git
        .clone()
        .or_else(|| ctx.run.summary().and_then(|s| s.git.clone()));
    match (status, ctx.run.ended()) {
        (Some(git), None) => match &git.in_flight {
            Some(op) => format!(
                "running {op} · {} queued · {} done",
                git.queued, git.ops_done
            ),
            None => format!("idle · {} ops done", git.ops_done),
        },
        (Some(git), Some(_)) => format!("stopped · {} ops done", git.ops_done),
        (None, None) => "running".into(),
        (None, Some(_)) => "stopped".into(),
    }
}

/// A CSS class for an agent's state.
pub(super) fn state_class(state: &str) -> &'static str {
    let s = state.to_ascii_lowercase();
    if s.contains("fail") || s.contains("dead") || s.contains("gave up") {
        "state bad"
    } else if s.starts_with("paused") || s.contains("restart") || s.contains("limited") {
        "state warn"
    } else if s.starts_with("working")
        || s.starts_with("planning")
        || s.starts_with("merging")
        || s.starts_with("leading")
        || s.starts_with("directing")
        || s.starts_with("review")
    {
        "state busy"
    } else {
        "state"
    }
}
