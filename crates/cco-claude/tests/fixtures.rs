//! The real CLI transcripts: every line parses, and each file gets the expected verdict.

use std::path::Path;

use cco_claude::{
    judge, parse_line, ContentBlock, ExitInfo, KillReason, OutcomeBuilder, OutcomeKind,
    StreamEvent, SystemEvent,
};

fn read_fixture(name: &str) -> Vec<StreamEvent> {
    let path = cco_testkit::fixtures_dir().join(name);
    parse_file(&path)
}

fn parse_file(path: &Path) -> Vec<StreamEvent> {
    let text = std::fs::read_to_string(path).expect("read fixture");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| parse_line(l).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1)))
        .collect()
}

#[test]
fn every_fixture_parses_without_malformed_lines() {
    let files = parse_every_fixture(&cco_testkit::fixtures_dir());
    assert!(files >= 14, "found only {files} fixtures");
}

/// Parses every transcript in `dir` (each must start with `system/init`); returns how many.
fn parse_every_fixture(dir: &Path) -> usize {
    let mut files = 0;
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            let events = parse_file(&path);
            assert!(!events.is_empty(), "{}", path.display());
            assert!(
                matches!(events[0], StreamEvent::System(SystemEvent::Init(_))),
                "{} starts with system/init",
                path.display()
            );
            files += 1;
        }
    }
    files
}

#[test]
fn success_multi_tool() {
    let events = read_fixture("success_multi_tool.jsonl");
    let mut b = OutcomeBuilder::new();
    events.iter().for_each(|e| b.observe(e));
    let out = b.finish(ExitInfo::code(0), std::time::Duration::ZERO);
    assert_eq!(out.kind, OutcomeKind::Success);
    assert_eq!(
        out.session_id.as_deref(),
        Some("3a24dfb3-6de7-4b80-82e6-9148ef97004f")
    );
    assert_eq!(
        out.result_text.as_deref(),
        Some("Done: created hello.txt and committed it.")
    );
    assert!((out.total_cost_usd - 0.029887999999999998).abs() < 1e-12);
    assert_eq!(out.num_turns, Some(3));
    assert_eq!(out.last_tool.as_deref(), Some("Bash"));
    assert_eq!(out.events, events.len() as u64);
    assert_eq!(out.malformed_lines, 0);

    // Typed details.
    let StreamEvent::System(SystemEvent::Init(init)) = &events[0] else {
        panic!()
    };
    assert_eq!(init.model.as_deref(), Some("claude-opus-5-5"));
    assert_eq!(init.permission_mode.as_deref(), Some("bypassPermissions"));
    assert_eq!(init.api_key_source.as_deref(), Some("ANTHROPIC_API_KEY"));
    assert_eq!(init.claude_code_version.as_deref(), Some("2.1.331"));
    assert!(init.tools.iter().any(|t| t == "Bash"));
    assert!(events.iter().any(|e| matches!(e, StreamEvent::System(SystemEvent::Other { subtype, .. }) if subtype == "vcs_state_changed")));
    let tool_uses: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Assistant(a) => Some(&a.message.content),
            _ => None,
        })
        .flatten()
        .filter_map(|b| match b {
            ContentBlock::ToolUse { name, input, .. } => Some((name.as_str(), input)),
            _ => None,
        })
        .collect();
    assert_eq!(tool_uses.len(), 2);
    assert_eq!(tool_uses[0].0, "Write");
    assert_eq!(
        tool_uses[1].1["command"],
        "git add -A && git commit -m 'Add hello.txt (mock)'"
    );
    let results = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::User(u) => Some(&u.message.content),
            _ => None,
        })
        .flatten()
        .filter(|b| {
            matches!(
                b,
                ContentBlock::ToolResult {
                    is_error: false,
                    ..
                }
            )
        })
        .count();
    assert_eq!(results, 2);
    let StreamEvent::Result(r) = events.last().unwrap() else {
        panic!()
    };
    assert_eq!(r.usage.input_tokens, Some(6842));
    assert_eq!(r.terminal_reason.as_deref(), Some("completed"));
}

#[test]
fn rate_limit_429() {
    let events = read_fixture("rate_limit_429_maxretries2.jsonl");
    let retries: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::System(SystemEvent::ApiRetry(r)) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(retries.len(), 2);
    assert_eq!(retries[0].error_status, Some(429));
    assert_eq!(retries[0].max_retries, Some(2));
    assert_eq!(retries[0].error.as_deref(), Some("rate_limit"));
    let synthetic = events.iter().find_map(|e| match e {
        StreamEvent::Assistant(a) if a.api_error_status.is_some() => Some(a),
        _ => None,
    });
    assert_eq!(synthetic.unwrap().error.as_deref(), Some("rate_limit"));
    // Exit 1 after the result: the result decides.
    let kind = judge(&events, "", ExitInfo::code(1), None);
    assert_eq!(kind, OutcomeKind::RateLimited { resets_at: None });
    assert!(!kind.is_retryable());
}

#[test]
fn overloaded_529_is_api_error_despite_subtype_success() {
    let events = read_fixture("overloaded_529_maxretries2.jsonl");
    let StreamEvent::Result(r) = events.last().unwrap() else {
        panic!()
    };
    assert_eq!(r.subtype.as_deref(), Some("success"));
    assert!(r.is_error);
    match judge(&events, "", ExitInfo::code(1), None) {
        OutcomeKind::ApiError {
            status: Some(529),
            message,
        } => assert!(message.contains("529 Overloaded")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn max_turns() {
    let events = read_fixture("max_turns_3.jsonl");
    assert_eq!(
        judge(&events, "", ExitInfo::code(1), None),
        OutcomeKind::MaxTurns
    );
}

#[test]
fn sigint_is_error() {
    let events = read_fixture("sigint_during_api_wait.jsonl");
    match judge(&events, "", ExitInfo::code(0), None) {
        OutcomeKind::Error { message } => assert!(message.contains("ede_diagnostic"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sigterm_has_no_result() {
    let events = read_fixture("sigterm_during_bash_tool.jsonl");
    assert!(!events.iter().any(|e| matches!(e, StreamEvent::Result(_))));
    // We sent the SIGTERM: Killed, even though it exited 143.
    assert_eq!(
        judge(
            &events,
            "",
            ExitInfo::code(143),
            Some(KillReason::WallTimeout)
        ),
        OutcomeKind::Killed {
            reason: KillReason::WallTimeout
        }
    );
    // Someone else did: a crash naming the exit code.
    match judge(&events, "", ExitInfo::code(143), None) {
        OutcomeKind::Crashed { message } => assert!(message.contains("143"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn resume_keeps_session_id_and_multiturn_takes_last_result() {
    let t1 = read_fixture("resume_turn1.jsonl");
    let t2 = read_fixture("resume_turn2.jsonl");
    let id = |events: &[StreamEvent]| {
        let mut b = OutcomeBuilder::new();
        events.iter().for_each(|e| b.observe(e));
        b.session_id().map(str::to_owned)
    };
    assert_eq!(id(&t1), id(&t2));
    assert_eq!(
        judge(&t2, "", ExitInfo::code(0), None),
        OutcomeKind::Success
    );

    let multi = read_fixture("stream_json_input_multiturn.jsonl");
    let mut b = OutcomeBuilder::new();
    multi.iter().for_each(|e| b.observe(e));
    let out = b.finish(ExitInfo::code(0), Default::default());
    assert_eq!(out.kind, OutcomeKind::Success);
    assert_eq!(out.result_text.as_deref(), Some("I see 9 messages."));
    assert!((out.total_cost_usd - 0.049184).abs() < 1e-9);
}

#[test]
fn disallowed_tool_error_result_is_still_success() {
    let events = read_fixture("disallowed_tools_bash.jsonl");
    assert!(events.iter().any(|e| matches!(e, StreamEvent::User(u)
        if u.message.content.iter().any(|b| matches!(b, ContentBlock::ToolResult { is_error: true, .. })))));
    assert_eq!(
        judge(&events, "", ExitInfo::code(0), None),
        OutcomeKind::Success
    );
}

/// The project is self-contained: a bare clone of it (in a temp dir, with no `shared/` folder
/// anywhere near it) has every transcript the tests read.
#[test]
fn a_bare_clone_has_every_fixture() {
    let root = cco_testkit::workspace_root();
    let tmp = tempfile::tempdir().unwrap();
    let clone = tmp.path().join("cco");
    let cloned = std::process::Command::new("git")
        .args(["clone", "-q", "--no-hardlinks"])
        .arg(&root)
        .arg(&clone)
        .status()
        .is_ok_and(|s| s.success());
    if !cloned {
        // Not a git checkout (an exported source tree): copy the tree without build output.
        copy_tree(&root, &clone);
    }
    assert!(
        !tmp.path().join("shared").exists(),
        "no shared/ beside the clone"
    );
    let here = parse_every_fixture(&cco_testkit::fixtures_dir());
    let there = parse_every_fixture(&cco_testkit::fixtures_dir_in(&clone));
    assert_eq!(here, there, "the clone has every fixture of this checkout");
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        let ty = entry.file_type().unwrap();
        if ty.is_dir() {
            copy_tree(&entry.path(), &to.join(&name));
        } else if ty.is_file() {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}
