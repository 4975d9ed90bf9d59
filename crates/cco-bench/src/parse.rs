//! Stream parsing throughput: `cco_claude::parse_line` (typed events) against plain
//! `serde_json::from_str::<Value>` over the same lines of the real CLI transcripts.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct ParseRow {
    pub parser: String,
    pub lines: usize,
    pub bytes: usize,
    pub rounds: usize,
    pub events_per_sec: f64,
    pub mib_per_sec: f64,
    /// Lines the parser rejected (per round).
    pub errors: usize,
}

pub fn load_lines(dir: &Path) -> Result<Vec<String>, String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut lines = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        lines.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned),
        );
    }
    if lines.is_empty() {
        return Err(format!("no .jsonl lines in {}", dir.display()));
    }
    Ok(lines)
}

/// Runs `parse` over all lines for about `budget` (whole rounds); returns a row.
fn measure(
    name: &str,
    lines: &[String],
    budget: Duration,
    parse: impl Fn(&str) -> bool,
) -> ParseRow {
    let bytes: usize = lines.iter().map(String::len).sum();
    let errors = lines.iter().filter(|l| !parse(l)).count();
    // Warm-up round above; then whole rounds until the budget is spent.
    let start = Instant::now();
    let mut rounds = 0;
    while rounds == 0 || start.elapsed() < budget {
        for line in lines {
            black_box(parse(black_box(line)));
        }
        rounds += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    ParseRow {
        parser: name.to_string(),
        lines: lines.len(),
        bytes,
        rounds,
        events_per_sec: (lines.len() * rounds) as f64 / secs,
        mib_per_sec: (bytes * rounds) as f64 / secs / (1024.0 * 1024.0),
        errors,
    }
}

pub fn run(dir: &Path, budget: Duration) -> Result<Vec<ParseRow>, String> {
    let lines = load_lines(dir)?;
    Ok(vec![
        measure("cco_claude::parse_line", &lines, budget, |l| {
            cco_claude::parse_line(l).is_ok()
        }),
        measure("serde_json::Value", &lines, budget, |l| {
            serde_json::from_str::<serde_json::Value>(l).is_ok()
        }),
    ])
}
