//! Rough speed check: `cargo run --release -p cco-claude --example parse_speed`.
//! Compares [`cco_claude::parse_line`] with `serde_json::from_str::<Value>` over the fixtures.
use std::time::Instant;

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/claude-stream-json"
        )
        .into()
    });
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("fixtures dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let text = std::fs::read_to_string(path).expect("read");
        lines.extend(text.lines().map(str::to_owned));
    }
    let rounds = 2000;
    let t = Instant::now();
    for _ in 0..rounds {
        for l in &lines {
            std::hint::black_box(serde_json::from_str::<serde_json::Value>(l).ok());
        }
    }
    let value = t.elapsed();
    let t = Instant::now();
    for _ in 0..rounds {
        for l in &lines {
            std::hint::black_box(cco_claude::parse_line(l).ok());
        }
    }
    let typed = t.elapsed();
    println!(
        "{} lines x {rounds}: Value {value:?}, parse_line {typed:?} ({:.2}x)",
        lines.len(),
        value.as_secs_f64() / typed.as_secs_f64()
    );
}
