//! Parser tolerance, malformed lines, the TS2429 trap and the bounded line reader.

use std::pin::Pin;
use std::task::{Context, Poll};

use cco_claude::parse::{classify, Classified};
use cco_claude::{
    judge, parse_line, BoundedLines, ContentBlock, ExitInfo, Line, OutcomeKind, ParseError,
    StreamEvent, SystemEvent,
};
use tokio::io::{AsyncRead, BufReader, ReadBuf};

#[test]
fn unknown_types_fields_and_subtypes_are_tolerated() {
    let e = parse_line(r#"{"type":"brand_new","payload":{"x":[1,2,3]}}"#).unwrap();
    assert_eq!(
        e,
        StreamEvent::Unknown {
            type_name: "brand_new".into()
        }
    );
    let e = parse_line(
        r#"{"type":"system","subtype":"compact_boundary","session_id":"s1","extra":true}"#,
    )
    .unwrap();
    assert_eq!(
        e,
        StreamEvent::System(SystemEvent::Other {
            subtype: "compact_boundary".into(),
            session_id: Some("s1".into())
        })
    );
    // Unknown content block, string content, missing optional fields, nulls.
    let e = parse_line(
        r#"{"type":"assistant","message":{"content":[{"type":"server_widget","z":1},{"type":"thinking","thinking":"hm"}],"usage":null},"new_field":{}}"#,
    )
    .unwrap();
    let StreamEvent::Assistant(a) = e else {
        panic!()
    };
    assert_eq!(
        a.message.content[0],
        ContentBlock::Unknown {
            type_name: "server_widget".into()
        }
    );
    assert_eq!(
        a.message.content[1],
        ContentBlock::Thinking {
            thinking: "hm".into()
        }
    );
    let e = parse_line(r#"{"type":"user","message":{"role":"user","content":"plain prompt"}}"#)
        .unwrap();
    let StreamEvent::User(u) = e else { panic!() };
    assert_eq!(
        u.message.content,
        vec![ContentBlock::Text {
            text: "plain prompt".into()
        }]
    );
    // Tool result content as an array.
    let e = parse_line(
        r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"x"}]}]}}"#,
    )
    .unwrap();
    let StreamEvent::User(u) = e else { panic!() };
    let ContentBlock::ToolResult {
        content, is_error, ..
    } = &u.message.content[0]
    else {
        panic!()
    };
    assert!(content.is_array());
    assert!(!is_error);
    // "type" not first, and with whitespace: the probe path.
    let e = parse_line(
        r#" { "is_error" : null, "type" : "result", "num_turns": "3", "api_error_status": null }"#,
    )
    .unwrap();
    let StreamEvent::Result(r) = e else { panic!() };
    assert!(!r.is_error);
    assert_eq!(r.num_turns, Some(3));
    // Escaped type name.
    let e = parse_line(r#"{"type":"resul\u0074"}"#).unwrap();
    assert!(matches!(e, StreamEvent::Result(_)));
    // Minimal result and rate limit event.
    assert!(matches!(
        parse_line(r#"{"type":"result"}"#).unwrap(),
        StreamEvent::Result(_)
    ));
    let e = parse_line(
        r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1767225600,"rateLimitType":"five_hour"}}"#,
    )
    .unwrap();
    let StreamEvent::RateLimit(r) = e else {
        panic!()
    };
    assert!(r.is_rejected());
    assert_eq!(r.rate_limit_info.resets_at, Some(1767225600));
    assert_eq!(
        r.rate_limit_info.rate_limit_type.as_deref(),
        Some("five_hour")
    );
}

#[test]
fn malformed_lines_are_errors_not_panics() {
    for bad in [
        "not json",
        "",
        "[1,2,3]",
        r#""just a string""#,
        "null",
        r#"{"no_type":1}"#,
        r#"{"type":42}"#,
        r#"{"type":null}"#,
        r#"{"type":"assistant","message":{"id":"#,
        r#"{"type":"unknown_but_truncated","a":"#,
        r#"{"type":"result","is_error":"yes"}"#,
        r#"{"type":"result"} trailing"#,
        "{",
    ] {
        assert!(parse_line(bad).is_err(), "{bad:?} should be malformed");
    }
    assert!(matches!(
        parse_line(r#"{"a":1}"#),
        Err(ParseError::MissingType)
    ));
    assert!(matches!(parse_line("[]"), Err(ParseError::NotAnObject)));
    // Deep nesting: skipped iteratively in ignored fields, and stopped by serde_json's
    // recursion limit where it is kept (tool input): never a stack overflow.
    let deep = format!(
        r#"{{"type":"x","a":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(matches!(parse_line(&deep), Ok(StreamEvent::Unknown { .. })));
    let deep = format!(
        r#"{{"type":"assistant","message":{{"content":[{{"type":"tool_use","id":"t","name":"n","input":{}{}}}]}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(parse_line(&deep).is_err());
}

#[test]
fn classify_reports_excerpts_of_at_most_200_chars() {
    let long_bad = "x".repeat(1000);
    match classify(&Line::Complete(long_bad.clone().into_bytes()), 1 << 20) {
        Classified::Malformed { excerpt, .. } => assert_eq!(excerpt.chars().count(), 200),
        other => panic!("{other:?}"),
    }
    match classify(&Line::Complete(vec![0xff, 0xfe, b'{']), 1 << 20) {
        Classified::Malformed { error, .. } => assert!(error.contains("UTF-8")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        classify(&Line::Complete(b"   ".to_vec()), 10),
        Classified::Blank
    ));
    match classify(
        &Line::TooLong {
            len: 5_000_000,
            prefix: b"{\"type\"".to_vec(),
        },
        1000,
    ) {
        Classified::Malformed {
            error,
            excerpt,
            reason,
        } => {
            assert_eq!(
                error,
                "line of 5000000 bytes (4.8 MiB) is longer than the limit of 1000 bytes: skipped"
            );
            assert_eq!(excerpt, "{\"type\"");
            assert_eq!(
                reason,
                cco_claude::MalformedReason::TooLong {
                    len: 5_000_000,
                    limit: 1000
                }
            );
        }
        other => panic!("{other:?}"),
    }
}

/// Rate limits come from structured fields only: "429" / "TS2429" in texts mean nothing.
#[test]
fn ts2429_in_texts_is_not_a_rate_limit() {
    let lines = [
        r#"{"type":"system","subtype":"init","session_id":"s-429"}"#,
        r#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"tsc"}}]}}"#,
        r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1","is_error":true,"content":"src/a.ts(3,1): error TS2429: Interface incorrectly extends. HTTP 429 rate limit"}]}}"#,
        r#"{"type":"result","subtype":"success","is_error":false,"result":"Fixed TS2429 (not a 429 rate_limit_error)","total_cost_usd":0.5}"#,
    ];
    let events: Vec<_> = lines.iter().map(|l| parse_line(l).unwrap()).collect();
    assert_eq!(
        judge(
            &events,
            "warning: 429 Too Many Requests TS2429",
            ExitInfo::code(0),
            None
        ),
        OutcomeKind::Success
    );
    // Even a crash with "429" on stderr is a crash, not a rate limit.
    let events_no_result = &events[..3];
    assert!(matches!(
        judge(
            events_no_result,
            "Error 429 rate_limit_error",
            ExitInfo::code(1),
            None
        ),
        OutcomeKind::Crashed { .. }
    ));
}

#[test]
fn rate_limit_event_rejected_gives_resets_at() {
    let lines = [
        r#"{"type":"system","subtype":"init","session_id":"s"}"#,
        r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed_warning","resetsAt":1}}"#,
        r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1767225600}}"#,
        r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":500,"result":"API Error"}"#,
    ];
    let events: Vec<_> = lines.iter().map(|l| parse_line(l).unwrap()).collect();
    let expected = chrono::DateTime::from_timestamp(1767225600, 0).unwrap();
    assert_eq!(
        judge(&events, "", ExitInfo::code(1), None),
        OutcomeKind::RateLimited {
            resets_at: Some(expected)
        }
    );
    // allowed_warning alone does not block.
    let events2: Vec<_> = [
        lines[0],
        lines[1],
        r#"{"type":"result","is_error":false,"result":"ok"}"#,
    ]
    .iter()
    .map(|l| parse_line(l).unwrap())
    .collect();
    assert_eq!(
        judge(&events2, "", ExitInfo::code(0), None),
        OutcomeKind::Success
    );
}

#[test]
fn judgement_edge_cases() {
    let init = parse_line(r#"{"type":"system","subtype":"init","session_id":"s"}"#).unwrap();
    // Exit 0 without a result: crash.
    assert!(matches!(
        judge([&init], "", ExitInfo::code(0), None),
        OutcomeKind::Crashed { .. }
    ));
    // Resume of an unknown id.
    assert_eq!(
        judge(
            [],
            "No conversation found with session ID: abc\n",
            ExitInfo::code(1),
            None
        ),
        OutcomeKind::ResumeNotFound
    );
    // is_error with a subtype "success" and no API status: Error.
    let r =
        parse_line(r#"{"type":"result","subtype":"success","is_error":true,"errors":["boom"]}"#)
            .unwrap();
    assert_eq!(
        judge([&r], "", ExitInfo::code(1), None),
        OutcomeKind::Error {
            message: "boom".into()
        }
    );
    // Killed after a result: the result's judgement stands.
    let ok = parse_line(r#"{"type":"result","is_error":false}"#).unwrap();
    let mut b = cco_claude::OutcomeBuilder::new();
    b.observe(&ok);
    b.mark_killed(cco_claude::KillReason::Requested);
    assert_eq!(b.judge(ExitInfo::signal(15)), OutcomeKind::Success);
    // A result that only came after our kill: Killed.
    let mut b = cco_claude::OutcomeBuilder::new();
    b.mark_killed(cco_claude::KillReason::IdleTimeout);
    b.observe(
        &parse_line(r#"{"type":"result","subtype":"error_during_execution","is_error":true}"#)
            .unwrap(),
    );
    assert_eq!(
        b.judge(ExitInfo::code(0)),
        OutcomeKind::Killed {
            reason: cco_claude::KillReason::IdleTimeout
        }
    );
    // Retryability.
    assert!(OutcomeKind::Crashed {
        message: String::new()
    }
    .is_retryable());
    assert!(OutcomeKind::ApiError {
        status: Some(500),
        message: String::new()
    }
    .is_retryable());
    assert!(OutcomeKind::Killed {
        reason: cco_claude::KillReason::IdleTimeout
    }
    .is_retryable());
    assert!(!OutcomeKind::Killed {
        reason: cco_claude::KillReason::Requested
    }
    .is_retryable());
    assert!(!OutcomeKind::MaxTurns.is_retryable());
    assert!(OutcomeKind::Success.is_success());
}

#[test]
fn stderr_tail_is_bounded() {
    let mut b = cco_claude::OutcomeBuilder::new();
    for i in 0..10_000 {
        b.observe_stderr(&format!("line {i} ünïcode"));
    }
    let tail = b.stderr_tail();
    assert!(tail.len() <= cco_claude::outcome::STDERR_TAIL_BYTES);
    assert!(tail.ends_with("line 9999 ünïcode\n"));
}

/// An AsyncRead producing `prefix`, then `big` bytes of 'x' (generated, never stored),
/// then `suffix`; records the largest read buffer it was asked to fill.
struct Synthetic {
    prefix: Vec<u8>,
    big: u64,
    suffix: Vec<u8>,
    pos: u64,
}

impl AsyncRead for Synthetic {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let p = self.prefix.len() as u64;
        let total = p + self.big + self.suffix.len() as u64;
        let mut pos = self.pos;
        while buf.remaining() > 0 && pos < total {
            if pos < p {
                let s = &self.prefix[pos as usize..];
                let n = s.len().min(buf.remaining());
                buf.put_slice(&s[..n]);
                pos += n as u64;
            } else if pos < p + self.big {
                let n = ((p + self.big - pos) as usize)
                    .min(buf.remaining())
                    .min(8192);
                buf.put_slice(&vec![b'x'; n]);
                pos += n as u64;
            } else {
                let s = &self.suffix[(pos - p - self.big) as usize..];
                let n = s.len().min(buf.remaining());
                buf.put_slice(&s[..n]);
                pos += n as u64;
            }
        }
        self.pos = pos;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn over_long_line_is_skipped_without_buffering() {
    let big: u64 = 20 * 1024 * 1024;
    let reader = Synthetic {
        prefix: br#"{"type":"system","subtype":"init","session_id":"a"}
{"type":"assistant","message":{"content":[{"type":"text","text":""#
            .to_vec(),
        big,
        suffix: b"\"}]}}\r\n{\"type\":\"result\",\"is_error\":false}\nlast line without newline"
            .to_vec(),
        pos: 0,
    };
    let max = 1024 * 1024;
    let mut lines = BoundedLines::new(BufReader::with_capacity(64 * 1024, reader), max);

    let first = lines.next_line().await.unwrap().unwrap();
    assert!(matches!(classify(&first, max), Classified::Event(_)));

    let second = lines.next_line().await.unwrap().unwrap();
    match &second {
        Line::TooLong { len, prefix } => {
            let head = br#"{"type":"assistant","message":{"content":[{"type":"text","text":""#.len()
                as u64;
            assert_eq!(*len, head + big + 6, "full length is counted (with the CR)");
            assert!(prefix.len() <= 200);
            assert!(prefix.starts_with(b"{\"type\":\"assistant\""));
        }
        other => panic!("expected TooLong, got {:?}", std::mem::discriminant(other)),
    }
    // Memory: the reader holds at most about `max` bytes while skipping.
    assert!(lines_buffer_capacity(&lines) <= max + 64 * 1024);
    assert!(matches!(
        classify(&second, max),
        Classified::Malformed { .. }
    ));

    let third = lines.next_line().await.unwrap().unwrap();
    match classify(&third, max) {
        Classified::Event(e) => assert!(matches!(*e, StreamEvent::Result(_))),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        lines.next_line().await.unwrap().unwrap(),
        Line::Complete(b"last line without newline".to_vec())
    );
    assert_eq!(lines.next_line().await.unwrap(), None);
}

fn lines_buffer_capacity<R>(lines: &BoundedLines<R>) -> usize {
    lines.buffered_capacity()
}

#[tokio::test]
async fn exact_limit_and_crlf() {
    let data: &[u8] = b"abcd\nabcde\r\nabc\r\n\n";
    let mut lines = BoundedLines::new(BufReader::with_capacity(2, data), 4);
    assert_eq!(
        lines.next_line().await.unwrap().unwrap(),
        Line::Complete(b"abcd".to_vec())
    );
    // "abcde\r" is 6 bytes > 4.
    assert!(matches!(
        lines.next_line().await.unwrap().unwrap(),
        Line::TooLong { len: 6, .. }
    ));
    assert_eq!(
        lines.next_line().await.unwrap().unwrap(),
        Line::Complete(b"abc".to_vec())
    );
    assert_eq!(
        lines.next_line().await.unwrap().unwrap(),
        Line::Complete(Vec::new())
    );
    assert_eq!(lines.next_line().await.unwrap(), None);
}
