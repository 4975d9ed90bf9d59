//! Stream lines are what the CLI prints, with the model's and the tools' words inside: the
//! parser and the API-signal reading take any line without a panic. A deterministic sweep of
//! generated lines made of the stream's keys and values, numbers at their limits, escapes,
//! multi-byte and control characters.

use cco_claude::parse::classify;
use cco_claude::{parse_line, Line};
use cco_testkit::Sweep;

const KEYS: &[&str] = &[
    "type",
    "subtype",
    "session_id",
    "message",
    "content",
    "text",
    "name",
    "input",
    "id",
    "tool_use_id",
    "is_error",
    "result",
    "total_cost_usd",
    "usage",
    "error_status",
    "error",
    "attempt",
    "max_retries",
    "retry_delay_ms",
    "rate_limit_info",
    "status",
    "resetsAt",
    "utilization",
    "rateLimitType",
    "unifiedWindows",
    "structured_output",
    "api_error_status",
    "terminal_reason",
    "modelUsage",
    "num_turns",
    "duration_ms",
    "é",
    "",
];

const VALUES: &[&str] = &[
    "\"system\"",
    "\"assistant\"",
    "\"user\"",
    "\"result\"",
    "\"rate_limit_event\"",
    "\"init\"",
    "\"api_retry\"",
    "\"success\"",
    "\"error_max_turns\"",
    "\"rejected\"",
    "\"allowed_warning\"",
    "\"allowed\"",
    "\"tool_use\"",
    "\"text\"",
    "\"five_hour\"",
    "\"rate_limit\"",
    "\"overloaded\"",
    "429",
    "529",
    "500",
    "0",
    "-1",
    "1e308",
    "-1e308",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "0.5",
    "1.7976931348623157e308",
    "null",
    "true",
    "false",
    "[]",
    "{}",
    "\"\\u0000\\u001b[2J\"",
    "\"\\ud800\"",
    "\"日本🦀\"",
    "\"x\"",
];

/// A JSON-ish value: mostly well-formed objects of the stream's keys, nested a little.
fn value(g: &mut Sweep, depth: usize) -> String {
    match g.below(if depth > 2 { 2 } else { 4 }) {
        0 | 1 => g.pick(VALUES).to_string(),
        2 => {
            let n = g.below(4);
            let items: Vec<String> = (0..n).map(|_| value(g, depth + 1)).collect();
            format!("[{}]", items.join(","))
        }
        _ => object(g, depth + 1),
    }
}

fn object(g: &mut Sweep, depth: usize) -> String {
    let n = g.below(6);
    let fields: Vec<String> = (0..n)
        .map(|_| format!("\"{}\":{}", g.pick(KEYS), value(g, depth)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

#[test]
fn any_stream_line_is_parsed_or_refused_never_a_panic() {
    let mut g = Sweep::new(0x9e37_79b9_7f4a_7c15);
    let now = chrono::Utc::now();
    let mut parsed = 0;
    for _ in 0..30_000 {
        let mut line = format!("{{\"type\":{},{}", g.pick(VALUES), &object(&mut g, 0)[1..]);
        // Sometimes broken: cut anywhere (at a character boundary) or with junk appended.
        match g.below(5) {
            0 => {
                let mut at = g.below(line.len() + 1);
                while !line.is_char_boundary(at) {
                    at -= 1;
                }
                line.truncate(at);
            }
            1 => line.push_str(g.pick(VALUES)),
            _ => {}
        }
        if let Ok(event) = parse_line(&line) {
            parsed += 1;
            let _ = event.type_name();
            if let Some(signal) = event.api_signal() {
                let _ = signal.to_string();
                let _ = signal.not_before(now);
                let _ = (signal.is_rate_limit_hit(), signal.is_api_unavailable());
            }
        }
        let _ = classify(&Line::Complete(line.clone().into_bytes()), 1 << 20);
        let _ = classify(
            &Line::TooLong {
                len: line.len() as u64,
                prefix: line.into_bytes(),
            },
            1 << 20,
        );
    }
    assert!(parsed > 1_000, "only {parsed} generated lines parsed");
}
