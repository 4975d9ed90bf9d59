//! The live view's frame: a pure function of a [`StatusSnapshot`], measured in terminal
//! columns.

use std::time::{Duration, Instant};

use cco::{AgentRecord, CredentialState, StatusSnapshot, TaskState};
use unicode_width::UnicodeWidthStr;

/// Column titles of the agent rows.
const COLUMNS: [&str; 8] = [
    "role",
    "agent",
    "state",
    "task",
    "credential",
    "last tool",
    "time",
    "cost",
];

/// The frame: a title, column headers, one line per agent (supervision tree order, every agent
/// exactly once), and a totals line; no line wider than `width` terminal columns.
///
/// Widths are display widths (a CJK character or an emoji takes two columns, a combining mark
/// none), so columns stay aligned and lines fit whatever the text.
pub fn render_frame(snapshot: &StatusSnapshot, width: usize) -> Vec<String> {
    render_frame_at(snapshot, width, Instant::now())
}

/// [`render_frame`] with the clock given (agents' time in their state is `now - state_since`).
pub fn render_frame_at(snapshot: &StatusSnapshot, width: usize, now: Instant) -> Vec<String> {
    let run_elapsed = snapshot.active_elapsed();
    let mut lines = vec![format!("cco {} — {}", snapshot.run_id, snapshot.phase)];
    let agents = tree_order(&snapshot.agents);
    let dash = "-";
    let header = COLUMNS.map(str::to_string);
    let rows: Vec<[String; 8]> = std::iter::once(header)
        .chain(agents.iter().map(|(depth, a)| {
            [
                format!("{}{}", "  ".repeat(*depth), a.role.as_str()),
                // A worker on a cluster node: `worker-3@node-a`.
                match &a.node {
                    Some(node) => format!("{}@{node}", a.id),
                    None => a.id.clone(),
                },
                a.state.clone(),
                a.current_task.clone().unwrap_or_else(|| dash.into()),
                a.credential.clone().unwrap_or_else(|| dash.into()),
                a.last_tool.clone().unwrap_or_else(|| dash.into()),
                a.state_since
                    .map(|t| format_duration(now.saturating_duration_since(t)))
                    .unwrap_or_else(|| dash.into()),
                format!("${:.4}", a.cost_usd),
            ]
        }))
        .collect();
    // Column widths from the content, capped so one long state or task does not push the
    // rest off the line.
    const CAPS: [usize; 8] = [17, 24, 28, 24, 12, 14, 7, 10];
    let mut widths = [0usize; 8];
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(display_width(cell)).min(CAPS[i]);
        }
    }
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                // `format!`'s padding counts chars, not columns: pad by display width.
                let cell = truncate(cell, widths[i]);
                let fill = " ".repeat(widths[i].saturating_sub(display_width(&cell)));
                if i == 6 || i == 7 {
                    format!("{fill}{cell}")
                } else {
                    format!("{cell}{fill}")
                }
            })
            .collect();
        lines.push(format!("  {}", cells.join("  ").trim_end()));
    }
    let t = &snapshot.totals;
    let running = snapshot
        .tasks
        .iter()
        .filter(|t| {
            matches!(
                t.state,
                TaskState::Running | TaskState::Review | TaskState::Merging
            )
        })
        .count();
    let pending = snapshot
        .tasks
        .iter()
        .filter(|t| t.state == TaskState::Pending)
        .count();
    // Credentials and a pause of new processes, when there is something to say.
    if snapshot.credentials.len() > 1
        || snapshot
            .credentials
            .iter()
            .any(|c| c.state != CredentialState::Ready)
    {
        let list: Vec<String> = snapshot.credentials.iter().map(|c| c.describe()).collect();
        lines.push(format!("credentials: {}", list.join(" · ")));
    }
    if let Some(pause) = &snapshot.pause {
        lines.push(pause.describe());
    }
    // Short enough for an 80-column terminal in most runs; what matters most comes first.
    lines.push(format!(
        "tasks done {} failed {} running {running} pending {pending} · commits {} merges {} conflicts {} · ${:.4} · elapsed {}",
        t.tasks_done,
        t.tasks_failed,
        t.commits,
        t.merges,
        t.conflicts,
        t.cost_usd,
        format_duration(run_elapsed)
    ));
    if !snapshot.nodes.is_empty() {
        let nodes: Vec<String> = snapshot
            .nodes
            .iter()
            .map(|n| {
                format!(
                    "{} {} {}/{}",
                    n.name,
                    n.state.as_str(),
                    n.workers.len(),
                    n.slots
                )
            })
            .collect();
        lines.push(format!("nodes: {}", nodes.join(" · ")));
    }
    lines.into_iter().map(|l| truncate(&l, width)).collect()
}

/// Agents depth-first from the roots (children sorted by id, numbers compared as numbers),
/// then any agent whose parent is unknown, so each appears exactly once.
fn tree_order(agents: &[AgentRecord]) -> Vec<(usize, &AgentRecord)> {
    let mut sorted: Vec<&AgentRecord> = agents.iter().collect();
    sorted.sort_by(|a, b| natural_key(&a.id).cmp(&natural_key(&b.id)));
    let known = |id: &str| agents.iter().any(|a| a.id == id);
    let mut out: Vec<(usize, &AgentRecord)> = Vec::with_capacity(agents.len());
    let mut seen = std::collections::HashSet::new();
    fn visit<'a>(
        agent: &'a AgentRecord,
        depth: usize,
        sorted: &[&'a AgentRecord],
        seen: &mut std::collections::HashSet<&'a str>,
        out: &mut Vec<(usize, &'a AgentRecord)>,
    ) {
        if !seen.insert(agent.id.as_str()) {
            return;
        }
        out.push((depth, agent));
        for child in sorted
            .iter()
            .filter(|c| c.parent.as_deref() == Some(agent.id.as_str()))
        {
            visit(child, depth + 1, sorted, seen, out);
        }
    }
    for root in sorted
        .iter()
        .filter(|a| a.parent.as_deref().is_none_or(|p| !known(p)))
    {
        visit(root, 0, &sorted, &mut seen, &mut out);
    }
    // Cycles (never expected) still show every agent.
    for agent in &sorted {
        if !seen.contains(agent.id.as_str()) {
            visit(agent, 0, &sorted, &mut seen, &mut out);
        }
    }
    out
}

/// `worker-10` after `worker-2`.
fn natural_key(id: &str) -> (&str, u64) {
    let digits_at = id
        .char_indices()
        .rfind(|(_, c)| !c.is_ascii_digit())
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(0);
    match id[digits_at..].parse::<u64>() {
        Ok(n) => (&id[..digits_at], n),
        Err(_) => (id, 0),
    }
}

/// `42s`, `3m05s`, `2h07m`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// Columns `text` takes on a terminal (Unicode Standard Annex #11, as `unicode-width` reads
/// it; ambiguous-width characters count one column, as outside an East Asian locale).
fn display_width(text: &str) -> usize {
    UnicodeWidthStr::width(text)
}

/// At most `width` terminal columns; a cut line ends with `…`.
pub(super) fn truncate(text: &str, width: usize) -> String {
    // Control characters (a newline in a state) would break the line count of the block.
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if display_width(&text) <= width {
        return text;
    }
    if width == 0 {
        return String::new();
    }
    // The longest prefix (at a char boundary) that leaves one column for `…`. Prefixes are
    // measured whole, not char by char, since an emoji sequence can be narrower than its
    // parts. Invariant: the prefix ending at `fits` fits, the one ending at `too_wide` does not
    // (the whole text does not), so the search ends on a prefix that fits.
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    let (mut fits, mut too_wide) = (0, bounds.len() - 1);
    while too_wide - fits > 1 {
        let mid = (fits + too_wide) / 2;
        if display_width(&text[..bounds[mid]]) < width {
            fits = mid;
        } else {
            too_wide = mid;
        }
    }
    let mut cut = text[..bounds[fits]].to_string();
    cut.push('…');
    // `…` is one column after any prefix in practice; never let an odd sequence overflow.
    while display_width(&cut) > width && cut.chars().count() > 1 {
        let last = cut.pop();
        cut.pop();
        cut.extend(last);
    }
    cut
}

/// Keeps a frame within `height` rows: header, as many agents as fit, `… N more`, totals.
pub(super) fn fit_height(mut frame: Vec<String>, height: usize) -> Vec<String> {
    let height = height.max(3);
    if frame.len() <= height {
        return frame;
    }
    let totals = frame.pop().unwrap_or_default();
    let keep = height - 2; // header and agents, then the "more" line, then totals
    let hidden = frame.len() - keep;
    frame.truncate(keep);
    frame.push(format!("  … {hidden} more agent(s) (cco status shows all)"));
    frame.push(totals);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_keys_split_at_the_last_non_digit_whatever_its_width() {
        assert_eq!(natural_key("worker-10"), ("worker-", 10));
        assert_eq!(natural_key("em-é5"), ("em-é", 5));
        assert_eq!(natural_key("日本"), ("日本", 0));
        assert_eq!(natural_key("42"), ("", 42));
    }
    use cco::{Role, TaskRecord};
    use chrono::Utc;

    /// Terminal columns, measured independently of the code under test.
    fn cols(text: &str) -> usize {
        UnicodeWidthStr::width(text)
    }

    fn agent(
        id: &str,
        role: Role,
        parent: Option<&str>,
        state_since: Option<Instant>,
    ) -> AgentRecord {
        let mut agent = AgentRecord::new(id, role);
        agent.parent = parent.map(str::to_string);
        agent.state = "working".into();
        agent.pid = Some(42);
        agent.current_task = Some(format!("flat/{id}-task"));
        agent.last_tool = Some("Bash".into());
        agent.cost_usd = 0.125;
        agent.state_since = state_since;
        agent
    }

    fn snapshot(agents: Vec<AgentRecord>) -> StatusSnapshot {
        let now = Utc::now();
        let mut snapshot = StatusSnapshot::new("run-1", now - chrono::Duration::seconds(125));
        snapshot.taken_at = now;
        snapshot.phase = "running".into();
        snapshot.agents = agents;
        let mut task = TaskRecord::new("flat", "t1", "t");
        task.state = TaskState::Running;
        task.attempts = 1;
        snapshot.tasks = vec![task];
        let totals = &mut snapshot.totals;
        totals.tasks_done = 3;
        totals.tasks_failed = 1;
        totals.commits = 4;
        totals.merges = 3;
        totals.conflicts = 1;
        totals.cost_usd = 1.5;
        snapshot
    }

    fn team() -> Vec<AgentRecord> {
        let mut agents = vec![
            agent("director", Role::Director, None, None),
            agent("coordinator", Role::Coordinator, Some("director"), None),
        ];
        for n in [1, 2, 10] {
            agents.push(agent(
                &format!("worker-{n}"),
                Role::Worker,
                Some("coordinator"),
                None,
            ));
        }
        agents
    }

    #[test]
    fn every_agent_appears_once_in_tree_order() {
        let frame = render_frame(&snapshot(team()), 200);
        assert_eq!(frame.len(), 1 + 1 + 5 + 1, "{frame:#?}");
        // Column headers above the agents, aligned with them.
        let header = &frame[1];
        for title in COLUMNS {
            assert!(header.contains(title), "{title} missing in {header:?}");
        }
        let at = |part: &str| header.find(part).unwrap();
        assert!(
            frame[3][at("agent")..].starts_with("coordinator"),
            "{frame:#?}"
        );
        assert!(frame[3][at("state")..].starts_with("working"), "{frame:#?}");
        for id in [
            "director",
            "coordinator",
            "worker-1",
            "worker-2",
            "worker-10",
        ] {
            let count = frame
                .iter()
                .filter(|l| l.split_whitespace().any(|w| w == id))
                .count();
            assert_eq!(count, 1, "{id} in {frame:#?}");
        }
        let pos = |id: &str| {
            frame
                .iter()
                .position(|l| l.split_whitespace().any(|w| w == id))
                .unwrap()
        };
        assert!(pos("director") < pos("coordinator") && pos("coordinator") < pos("worker-1"));
        assert!(
            pos("worker-2") < pos("worker-10"),
            "natural order: {frame:#?}"
        );
        let w1 = &frame[pos("worker-1")];
        for part in ["worker", "working", "flat/worker-1-task", "Bash", "$0.1250"] {
            assert!(w1.contains(part), "{part} missing in {w1:?}");
        }
    }

    #[test]
    fn an_agent_with_an_unknown_parent_still_appears() {
        let mut agents = team();
        agents.push(agent("em-9", Role::Em, Some("gone"), None));
        let frame = render_frame(&snapshot(agents), 200);
        assert_eq!(frame.iter().filter(|l| l.contains("em-9")).count(), 1);
    }

    #[test]
    fn the_totals_line_comes_last() {
        let frame = render_frame(&snapshot(team()), 300);
        let totals = frame.last().unwrap();
        assert_eq!(
            totals,
            "tasks done 3 failed 1 running 1 pending 0 · commits 4 merges 3 conflicts 1 · $1.5000 · elapsed 2m05s"
        );
        assert_eq!(frame[0], "cco run-1 — running");
    }

    #[test]
    fn limited_credentials_and_a_pause_are_shown_above_the_totals() {
        let mut snap = snapshot(team());
        let until = Utc::now() + chrono::Duration::seconds(90);
        snap.credentials = serde_json::from_value(serde_json::json!([
            {"name": "k1", "login": false, "fallback": false, "state": "limited", "until": until, "utilization": null},
            {"name": "oauth", "login": true, "fallback": true, "state": "warning", "until": null, "utilization": 0.93}
        ]))
        .unwrap();
        snap.pause = serde_json::from_value(serde_json::json!(
            {"cause": "rate_limited", "since": Utc::now(), "until": until}
        ))
        .unwrap();
        snap.agents[2].credential = Some("k1".into());
        let frame = render_frame(&snap, 300);
        let n = frame.len();
        let hhmmss = until.format("%H:%M:%S UTC").to_string();
        assert_eq!(
            frame[n - 3],
            format!("credentials: k1 limited until {hhmmss} · oauth warning (93% used)")
        );
        assert_eq!(
            frame[n - 2],
            format!("paused: every credential is rate limited until {hhmmss} (the earliest reset)")
        );
        assert!(frame.iter().any(|l| l.contains(" k1 ")), "{frame:#?}");
    }

    #[test]
    fn workers_on_nodes_show_their_node_and_the_nodes_come_last() {
        let mut snap = snapshot(team());
        snap.agents[2].node = Some("n1".into());
        let mut n1 = cco::cluster::NodeRecord::new("127.0.0.1:7701", 4);
        n1.name = "n1".into();
        n1.state = cco::cluster::NodeState::Joined;
        n1.workers = vec!["worker-1".into()];
        let mut n2 = cco::cluster::NodeRecord::new("127.0.0.1:7702", 2);
        n2.name = "n2".into();
        n2.state = cco::cluster::NodeState::Lost;
        snap.nodes = vec![n1, n2];
        let frame = render_frame(&snap, 300);
        let worker = frame
            .iter()
            .find(|l| l.contains("worker-1"))
            .expect("worker-1's row");
        assert!(worker.contains("worker-1@n1"), "{frame:#?}");
        assert_eq!(frame.last().unwrap(), "nodes: n1 joined 1/4 · n2 lost 0/2");
    }

    #[test]
    fn a_resumed_run_counts_the_time_of_its_earlier_processes() {
        let mut resumed = snapshot(team());
        resumed.active_before_secs = 3600.0;
        let frame = render_frame(&resumed, 300);
        let totals = frame.last().unwrap();
        assert!(totals.ends_with("elapsed 1h02m"), "{totals}");
    }

    #[test]
    fn lines_are_cut_to_the_width() {
        let mut agents = team();
        agents[2].state = format!("a very long state\nwith a newline {}", "x".repeat(100));
        for width in [20, 40, 80] {
            let frame = render_frame(&snapshot(agents.clone()), width);
            assert_eq!(frame.len(), 8);
            for line in &frame {
                assert!(cols(line) <= width, "{width}: {line:?}");
                assert!(!line.contains('\n'));
            }
            assert!(frame.last().unwrap().ends_with('…'));
        }
    }

    /// A team whose worker-1 works on a task titled in Chinese with an emoji, in a state
    /// with wide characters too.
    fn wide_team() -> Vec<AgentRecord> {
        let mut agents = team();
        agents[2].current_task = Some("flat/修复登录页面🐛".into());
        agents[2].state = "工作中 🚀".into();
        agents[3].last_tool = Some("编辑".into());
        agents
    }

    #[test]
    fn wide_characters_keep_the_columns_aligned() {
        let frame = render_frame(&snapshot(wide_team()), 200);
        let rows: Vec<&String> = frame[2..frame.len() - 1].iter().collect();
        assert_eq!(rows.len(), 5, "{frame:#?}");
        // The cost column is right-aligned and last: every agent row is equally wide.
        let widths: Vec<usize> = rows.iter().map(|l| cols(l)).collect();
        assert!(
            widths.iter().all(|w| *w == widths[0]),
            "{widths:?}\n{frame:#?}"
        );
        // And each column starts at the same terminal column on every row.
        let column_of = |line: &str, part: &str| cols(&line[..line.find(part).unwrap()]);
        let w1 = rows.iter().find(|l| l.contains("worker-1")).unwrap();
        let w2 = rows.iter().find(|l| l.contains("worker-2")).unwrap();
        assert!(
            w1.contains("flat/修复登录页面🐛") && w1.contains("工作中 🚀"),
            "{w1}"
        );
        assert_eq!(
            column_of(w1, "工作中"),
            column_of(w2, "working"),
            "{frame:#?}"
        );
        assert_eq!(column_of(w1, "flat/修复"), column_of(w2, "flat/worker-2"));
        assert_eq!(column_of(w1, "Bash"), column_of(w2, "编辑"), "{frame:#?}");
        assert_eq!(column_of(w1, "$0.1250"), column_of(w2, "$0.1250"));
    }

    #[test]
    fn lines_with_wide_characters_fit_the_width_in_columns() {
        let mut agents = wide_team();
        agents[4].state = "长".repeat(60);
        agents[0].last_tool = Some("👨‍👩‍👧‍👦".repeat(20));
        let mut snap = snapshot(agents);
        snap.phase = "运行中 ✅ ".repeat(20);
        for width in 20..=120 {
            let frame = render_frame(&snap, width);
            for line in &frame {
                assert!(cols(line) <= width, "{width}: {line:?}");
                // Cut lines use the room they have: a wide character that does not fit leaves
                // at most one column free.
                if line.ends_with('…') {
                    assert!(cols(line) >= width - 1, "{width}: {line:?}");
                }
            }
            assert!(frame[0].ends_with('…'), "{width}: {:?}", frame[0]);
        }
    }

    #[test]
    fn truncation_counts_columns() {
        assert_eq!(truncate("修复登录", 8), "修复登录");
        assert_eq!(truncate("修复登录", 7), "修复登…");
        assert_eq!(truncate("修复登录", 6), "修复…");
        assert_eq!(truncate("a🐛b🐛", 4), "a🐛…");
        assert_eq!(truncate("a🐛b🐛", 3), "a…");
        assert_eq!(truncate("修复", 1), "…");
        assert_eq!(truncate("修复", 0), "");
        // An emoji sequence is measured whole (two columns), not as the sum of its parts.
        let family = "👨‍👩‍👧‍👦";
        assert_eq!(cols(family), 2);
        assert_eq!(
            truncate(&format!("{family}{family}"), 4),
            format!("{family}{family}")
        );
        assert_eq!(
            truncate(&format!("{family}{family}x"), 4),
            format!("{family}…")
        );
    }

    #[test]
    fn time_in_state_uses_the_given_clock() {
        let start = Instant::now();
        let agents = vec![agent("director", Role::Director, None, Some(start))];
        let frame = render_frame_at(&snapshot(agents), 200, start + Duration::from_secs(3725));
        assert!(frame[2].contains("1h02m"), "{frame:#?}");
    }

    #[test]
    fn a_frame_taller_than_the_terminal_keeps_header_and_totals() {
        let frame = render_frame(&snapshot(team()), 200);
        let fitted = fit_height(frame.clone(), 5);
        assert_eq!(fitted.len(), 5);
        assert_eq!(fitted[0], frame[0]);
        assert_eq!(fitted[4], *frame.last().unwrap());
        assert_eq!(fitted[1], frame[1], "the column headers stay");
        assert!(fitted[3].contains("4 more agent(s)"), "{fitted:#?}");
        assert_eq!(fit_height(frame.clone(), 50), frame);
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(format_duration(Duration::from_secs(42)), "42s");
        assert_eq!(format_duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(format_duration(Duration::from_secs(7620)), "2h07m");
    }
}
