//! `cco-bench`: benchmarks of cco with fake-claude agents. See docs/benchmarks.md.
//!
//! One module per benchmark: [`sched`] (scheduling efficiency), [`overhead`] (cco's own CPU
//! and peak RSS, measured around the scheduling runs), [`parse`] (stream parsing),
//! [`merge`] (GitActor merges), [`recovery`] (kill → resumed session), [`ratelimit`] (a key
//! that keeps answering 429, against no 429 at all). [`project`] sets up a fake-claude
//! project, [`table`] prints. Results go to stdout as tables and to a JSON file.

mod merge;
mod nodes;
mod overhead;
mod parse;
mod project;
mod ratelimit;
mod recovery;
mod sched;
mod table;
mod ui;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde::Serialize;

use table::{f, Table};

#[derive(Parser, Debug)]
#[command(
    name = "cco-bench",
    about = "Benchmarks of cco with fake-claude agents (docs/benchmarks.md)"
)]
struct Args {
    /// Full profile: 10, 50, 100 and 200 workers, longer tasks, more branches and samples.
    #[arg(long)]
    full: bool,
    /// Where to write the JSON results (default: <target dir>/cco-bench/results.json).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Benchmarks to run, comma separated: sched,parse,merge,recovery,ratelimit (overhead
    /// comes with sched). ratelimit runs only when named (or with --rate-limited-key).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Only the rate-limited key case: a 4-task flat run on two keys, one answering 429 with
    /// retry-after 30 s, against the same run without any 429 (three runs of each).
    #[arg(long)]
    rate_limited_key: bool,
    /// Worker counts for the scheduling runs (overrides the profile).
    #[arg(long, value_delimiter = ',')]
    workers: Vec<usize>,
    /// Durations T of the tasks in ms, comma separated: one scheduling run per T and worker
    /// count (overrides the profile).
    #[arg(long, value_delimiter = ',')]
    task_ms: Vec<u64>,
    /// Who commits each task's file: `agent` (its last step, as claude does when told to),
    /// `cco` (the agent leaves it; cco's capture commits it), or `both` (one run each).
    /// Default: the profile's (quick: agent; full: agent for every T, plus cco for the first).
    #[arg(long, value_parser = ["agent", "cco", "both"])]
    commits: Option<String>,
    /// Tasks per worker (overrides the profile).
    #[arg(long)]
    tasks_per_worker: Option<usize>,
    /// engineerManagerGroupSize: runs with more workers are hierarchical.
    #[arg(long, default_value_t = 10)]
    group_size: usize,
    /// Branches merged by the merge benchmark (overrides the profile).
    #[arg(long)]
    branches: Option<usize>,
    /// The real-CLI transcripts (default: cco_testkit::fixtures_dir()).
    #[arg(long)]
    fixtures: Option<PathBuf>,
    /// A fake-claude binary (default: built with cargo into this binary's target dir).
    #[arg(long)]
    fake_claude: Option<PathBuf>,
    /// Scheduling runs serve the web dashboard, with one client following the board (to
    /// measure its cost): `on`, `off`, or `both` (each case twice, without then with).
    #[arg(long, value_parser = ["on", "off", "both"], default_value = "off", num_args = 0..=1, default_missing_value = "on")]
    ui: String,
    /// Write each scheduling run's timeline chart (the dashboard's, as timeline.svg) into DIR.
    #[arg(long, value_name = "DIR")]
    timeline: Option<PathBuf>,
    /// Run the scheduling runs' workers on this many local node processes (issue 15; the
    /// default profile then is 100 workers, T 20 s).
    #[arg(long, default_value_t = 0)]
    nodes: usize,
}

struct Profile {
    name: &'static str,
    workers: Vec<usize>,
    task_ms: Vec<u64>,
    tasks_per_worker: usize,
    branches: usize,
    parse_budget: Duration,
    recovery_samples: usize,
}

impl Profile {
    fn of(args: &Args) -> Profile {
        let mut p = if args.full {
            Profile {
                name: "full",
                workers: vec![10, 50, 100, 200],
                task_ms: vec![5000, 20000],
                tasks_per_worker: 3,
                branches: 200,
                parse_budget: Duration::from_secs(3),
                recovery_samples: 10,
            }
        } else {
            Profile {
                name: "quick",
                workers: vec![10, 50],
                task_ms: vec![2000],
                tasks_per_worker: 2,
                branches: 50,
                parse_budget: Duration::from_secs(1),
                recovery_samples: 5,
            }
        };
        if args.nodes > 0 {
            p.name = "nodes";
            p.workers = vec![100];
            p.task_ms = vec![20000];
        }
        if !args.workers.is_empty() {
            p.workers = args.workers.clone();
        }
        if !args.task_ms.is_empty() {
            p.task_ms = args.task_ms.clone();
        }
        p.tasks_per_worker = args.tasks_per_worker.unwrap_or(p.tasks_per_worker).max(1);
        p.branches = args.branches.unwrap_or(p.branches).max(1);
        p
    }
}

#[derive(Serialize, Default)]
struct Report {
    profile: String,
    cpus: usize,
    sched: Vec<sched::SchedResult>,
    overhead: Vec<overhead::OverheadRow>,
    parse: Vec<parse::ParseRow>,
    merge: Vec<merge::MergeRow>,
    recovery: Option<recovery::RecoveryResult>,
    rate_limited_key: Option<ratelimit::RateLimitResult>,
    errors: Vec<String>,
}

fn default_json_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|e| e.parent().and_then(|p| p.parent()).map(PathBuf::from))
        });
    target
        .unwrap_or_else(|| PathBuf::from("."))
        .join("cco-bench")
        .join("results.json")
}

/// Caps glibc's malloc arenas at two. cco's tasks move between threads (tokio's workers, its
/// blocking pool) and glibc gives each allocating thread an arena of its own, never handed
/// back: at 100 workers that held about 30 MiB more than the live heap (peak RSS 70 MiB
/// against 40 MiB with two arenas, at the same CPU). A process-wide setting, so the binary
/// makes it, not the library. mimalloc was tried and held far more (about 300 MiB).
fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before any other thread
    // exists.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
    }
}

fn main() -> ExitCode {
    cap_malloc_arenas();
    // `cco-bench __node ...`: a node of the `--nodes` runs (a child of this process).
    if let Some(code) = nodes::node_entry() {
        return code;
    }
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let profile = Profile::of(&args);
    let wants = |name: &str| {
        let named = args
            .only
            .iter()
            .any(|o| o == name || (name == "sched" && o == "overhead"));
        match name {
            "ratelimit" => named || args.rate_limited_key,
            _ => named || (args.only.is_empty() && !args.rate_limited_key),
        }
    };
    let mut report = Report {
        profile: profile.name.into(),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        ..Report::default()
    };
    eprintln!(
        "cco-bench: {} profile on {} cpus",
        profile.name, report.cpus
    );

    let needs_fake = wants("sched") || wants("recovery") || wants("ratelimit");
    let fake = if needs_fake {
        match project::fake_claude(args.fake_claude.as_deref()) {
            Ok(path) => Some(path),
            Err(e) => {
                eprintln!("cco-bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };

    if let (true, Some(fake)) = (wants("sched"), &fake) {
        // (T, agents commit) series, each over every worker count.
        let series: Vec<(u64, bool)> = match args.commits.as_deref() {
            Some("agent") => profile.task_ms.iter().map(|&t| (t, true)).collect(),
            Some("cco") => profile.task_ms.iter().map(|&t| (t, false)).collect(),
            Some(_) => profile
                .task_ms
                .iter()
                .flat_map(|&t| [(t, true), (t, false)])
                .collect(),
            None => {
                let mut series: Vec<_> = profile.task_ms.iter().map(|&t| (t, true)).collect();
                if args.full {
                    series.extend(profile.task_ms.first().map(|&t| (t, false)));
                }
                series
            }
        };
        let uis: &[bool] = match args.ui.as_str() {
            "on" => &[true],
            "both" => &[false, true],
            _ => &[false],
        };
        let cases = series.into_iter().flat_map(|(t, commits)| {
            profile
                .workers
                .iter()
                .flat_map(move |&w| uis.iter().map(move |&ui| (t, commits, w, ui)))
        });
        for (task_ms, agent_commits, workers, ui) in cases {
            let case = sched::SchedCase {
                workers,
                group_size: args.group_size,
                tasks_per_worker: profile.tasks_per_worker,
                task_ms,
                agent_commits,
                ui,
                timeline_dir: args.timeline.clone(),
                nodes: args.nodes,
            };
            eprintln!(
                "cco-bench: scheduling, {workers} workers x {} tasks of {} ms ({}{}) ...",
                case.tasks_per_worker,
                case.task_ms,
                if case.agent_commits {
                    "agents commit"
                } else {
                    "cco commits"
                },
                if case.ui { ", dashboard watched" } else { "" }
            );
            match sched::run(fake, &case).await {
                Ok(r) => report.sched.push(r),
                Err(e) => report.errors.push(format!("sched {workers}: {e}")),
            }
        }
        report.overhead = overhead::rows(&report.sched);
    }
    if wants("parse") {
        eprintln!("cco-bench: stream parsing ...");
        let dir = args
            .fixtures
            .clone()
            .unwrap_or_else(cco_testkit::fixtures_dir);
        match parse::run(&dir, profile.parse_budget) {
            Ok(rows) => report.parse = rows,
            Err(e) => report.errors.push(format!("parse: {e}")),
        }
    }
    if wants("merge") {
        eprintln!("cco-bench: merging {} branches ...", profile.branches);
        match merge::run(profile.branches).await {
            Ok(rows) => report.merge = rows,
            Err(e) => report.errors.push(format!("merge: {e}")),
        }
    }
    if let (true, Some(fake)) = (wants("recovery"), &fake) {
        eprintln!(
            "cco-bench: recovery, {} kills ...",
            profile.recovery_samples
        );
        match recovery::run(fake, profile.recovery_samples).await {
            Ok(r) => report.recovery = Some(r),
            Err(e) => report.errors.push(format!("recovery: {e}")),
        }
    }

    if let (true, Some(fake)) = (wants("ratelimit"), &fake) {
        eprintln!("cco-bench: a key that keeps answering 429, against none (3 runs each) ...");
        match ratelimit::run(fake, 3).await {
            Ok(r) => report.rate_limited_key = Some(r),
            Err(e) => report.errors.push(format!("rate-limited key: {e}")),
        }
    }

    print!("{}", render(&report));
    let path = args.json.clone().unwrap_or_else(default_json_path);
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    match serde_json::to_vec_pretty(&report)
        .map_err(|e| e.to_string())
        .and_then(|b| std::fs::write(&path, b).map_err(|e| e.to_string()))
    {
        Ok(()) => println!("JSON: {}", path.display()),
        Err(e) => report
            .errors
            .push(format!("cannot write {}: {e}", path.display())),
    }
    for e in &report.errors {
        eprintln!("cco-bench: error: {e}");
    }
    if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn render(r: &Report) -> String {
    let mut out = String::new();
    if !r.sched.is_empty() {
        let mut t = Table::new(
            "Scheduling efficiency (ideal = tasks x T / workers; measured = first TaskAssigned -> last TaskFinished)",
            &["run", "tasks", "T ms", "ideal s", "measured s", "efficiency", "planning s", "tail s", "total s", "turn mean/max s", "gap mean/max s", "start spread s", "done", "on main", "complete"],
        );
        for s in &r.sched {
            t.row(vec![
                s.label.clone(),
                s.tasks.to_string(),
                s.task_ms.to_string(),
                f(s.ideal_ms / 1000.0, 2),
                f(s.measured_ms / 1000.0, 2),
                f(s.efficiency, 3),
                f(s.planning_ms / 1000.0, 2),
                f(s.tail_ms / 1000.0, 2),
                f(s.total_ms / 1000.0, 2),
                format!(
                    "{}/{}",
                    f(s.turn_mean_ms / 1000.0, 2),
                    f(s.turn_max_ms / 1000.0, 2)
                ),
                format!(
                    "{}/{}",
                    f(s.reassign_gap_mean_ms / 1000.0, 2),
                    f(s.reassign_gap_max_ms / 1000.0, 2)
                ),
                f(s.start_spread_ms / 1000.0, 2),
                s.tasks_done.to_string(),
                s.files_on_main.to_string(),
                s.completed.to_string(),
            ]);
        }
        out += &t.render();
        out += "\n";
        let mut t = Table::new(
            "Orchestrator overhead (this process only: getrusage RUSAGE_SELF, VmHWM; children excluded)",
            &["run", "events", "CPU ms", "CPU ms/worker", "CPU ms/1k events", "peak RSS MiB", "RSS KiB/worker", "RSS KiB/1k events", "board updates x CPU ms"],
        );
        for o in &r.overhead {
            t.row(vec![
                o.label.clone(),
                o.events.to_string(),
                f(o.cpu_ms, 0),
                f(o.cpu_ms_per_worker, 1),
                f(o.cpu_ms_per_1000_events, 1),
                f(o.peak_rss_mib, 1),
                f(o.rss_growth_kib_per_worker, 1),
                f(o.rss_growth_kib_per_1000_events, 1),
                match (o.dashboard_updates, o.dashboard_board_cpu_ms) {
                    (Some(n), Some(ms)) => format!("{n} x {}", f(ms, 2)),
                    _ => "-".into(),
                },
            ]);
        }
        out += &t.render();
        out += "\n";
        let mut t = Table::new(
            "GitActor (every git op of the run, one at a time; busy = running ops, queue time excluded)",
            &["run", "ops", "busy s", "busy % of run", "capture ms/op", "diff ms/op", "merge ms/op", "sync ms/op", "worktree ms/op"],
        );
        let per_op = |s: &sched::SchedResult, op: &str| {
            s.git_ops
                .get(op)
                .filter(|o| o.count > 0)
                .map(|o| f(o.busy_ms / o.count as f64, 1))
                .unwrap_or_else(|| "-".into())
        };
        for s in &r.sched {
            let ops: u64 = s.git_ops.values().map(|o| o.count).sum();
            t.row(vec![
                s.label.clone(),
                ops.to_string(),
                f(s.git_busy_ms / 1000.0, 2),
                f(100.0 * s.git_busy_ms / s.total_ms.max(1.0), 0),
                per_op(s, "capture_task"),
                per_op(s, "diff_summary"),
                per_op(s, "merge"),
                per_op(s, "sync_worktree"),
                per_op(s, "create_worktree"),
            ]);
        }
        out += &t.render();
        out += "\n";
        let clustered: Vec<_> = r.sched.iter().filter(|s| s.nodes > 0).collect();
        if !clustered.is_empty() {
            let mut t = Table::new(
                "Cluster (head side: this process; nodes are child processes, not counted)",
                &[
                    "run",
                    "nodes",
                    "head CPU ms/remote worker",
                    "head RSS KiB/remote worker",
                    "bundles sent KiB/task",
                    "bundles received KiB/task",
                    "session files KiB/task",
                ],
            );
            for s in clustered {
                let o = r.overhead.iter().find(|o| o.label == s.label);
                t.row(vec![
                    s.label.clone(),
                    s.nodes.to_string(),
                    o.map(|o| f(o.cpu_ms_per_worker, 1)).unwrap_or_default(),
                    o.map(|o| f(o.rss_growth_kib_per_worker, 1))
                        .unwrap_or_default(),
                    f(s.bundle_bytes_sent_per_task / 1024.0, 2),
                    f(s.bundle_bytes_received_per_task / 1024.0, 2),
                    f(s.session_bytes_per_task / 1024.0, 2),
                ]);
            }
            out += &t.render();
            out += "\n";
        }
    }
    if !r.parse.is_empty() {
        let mut t = Table::new(
            "Stream parsing (real CLI fixture transcripts)",
            &["parser", "lines", "rounds", "events/s", "MiB/s", "rejected"],
        );
        for p in &r.parse {
            t.row(vec![
                p.parser.clone(),
                p.lines.to_string(),
                p.rounds.to_string(),
                f(p.events_per_sec, 0),
                f(p.mib_per_sec, 1),
                p.errors.to_string(),
            ]);
        }
        out += &t.render();
        out += "\n";
    }
    if !r.merge.is_empty() {
        let mut t = Table::new(
            "Merge throughput (independent branches into main)",
            &["method", "branches", "seconds", "merges/s"],
        );
        for m in &r.merge {
            t.row(vec![
                m.method.clone(),
                m.branches.to_string(),
                f(m.seconds, 2),
                f(m.merges_per_sec, 1),
            ]);
        }
        out += &t.render();
        out += "\n";
    }
    if let Some(rl) = &r.rate_limited_key {
        let mut t = Table::new(
            &format!(
                "A key answering 429 with retry-after 30 s ({} tasks of {} ms, 2 workers, 2 keys; wall time per run)",
                rl.tasks, rl.task_ms
            ),
            &["run", "seconds per run", "median s"],
        );
        let list = |v: &[f64]| v.iter().map(|s| f(*s, 1)).collect::<Vec<_>>().join(", ");
        t.row(vec![
            "no 429".into(),
            list(&rl.baseline_s),
            f(rl.median_baseline_s, 1),
        ]);
        t.row(vec![
            format!(
                "one key answers 429 (benched {} times)",
                rl.benched
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join("/")
            ),
            list(&rl.limited_s),
            f(rl.median_limited_s, 1),
        ]);
        t.row(vec!["difference".into(), "".into(), f(rl.extra_s, 1)]);
        out += &t.render();
        out += "\n";
    }
    if let Some(rec) = &r.recovery {
        let mut t = Table::new(
            &format!(
                "Recovery after kill -9 of a worker's claude (restartBackoffMs {})",
                rec.restart_backoff_ms
            ),
            &["measure", "samples", "median ms", "max ms"],
        );
        let max = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
        t.row(vec![
            "kill -> resumed process started".into(),
            rec.samples.to_string(),
            f(rec.median_to_respawn_ms, 1),
            f(max(&rec.to_respawn_ms), 1),
        ]);
        t.row(vec![
            "kill -> resumed session's first event".into(),
            rec.samples.to_string(),
            f(rec.median_to_first_event_ms, 1),
            f(rec.max_to_first_event_ms, 1),
        ]);
        out += &t.render();
        out += "\n";
    }
    out
}
