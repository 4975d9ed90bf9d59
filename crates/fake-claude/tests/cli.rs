//! Black-box tests of the fake-claude binary: transcripts compared with the real CLI's
//! fixtures, sessions, script rules, refusals and signals. Nothing sleeps for a fixed time:
//! every wait polls a condition with a deadline.

mod common;

use cco_testkit::{init_repo, pid_alive, wait_until};
use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};

#[test]
fn success_transcript_is_shaped_like_the_fixture_and_really_commits() {
    let sb = Sandbox::new(Some(json!({"rules": [{
        "match": {"prompt_contains": "hello"},
        "steps": [
            {"text": "I'll create the file first."},
            {"write": {"path": "hello.txt", "content": "Hello from {{agent}}!\n"}},
            {"commit": "Add hello.txt"}
        ],
        "result": "Done: created hello.txt and committed it.",
        "cost_usd": 0.25
    }]})));
    init_repo(&sb.work());
    let run = sb.run("write hello", &[]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);

    let fx = fixture("success_multi_tool.jsonl");
    assert_eq!(
        shape(&run.events),
        shape(&fx),
        "event sequence differs from the real transcript"
    );

    let init = &run.events[0];
    let sid = init["session_id"].as_str().unwrap();
    assert_eq!(init["claude_code_version"], "2.1.331");
    assert_eq!(init["permissionMode"], "bypassPermissions");
    assert_eq!(
        init["cwd"],
        sb.work().canonicalize().unwrap().to_str().unwrap()
    );
    // messaging_socket_path names a live IPC socket of the real CLI; the fake has none.
    let mut fx_init = keys(&fx[0]);
    fx_init.remove("messaging_socket_path");
    assert_eq!(keys(init), fx_init);
    // Every other event: same keys as the fixture's event at the same position.
    for (i, (ours, theirs)) in run.events.iter().zip(&fx).enumerate().skip(1) {
        assert_eq!(
            keys(ours),
            keys(theirs),
            "keys of event {i} ({})",
            shape(&fx)[i]
        );
        if ours["type"] == "assistant" {
            assert_eq!(
                keys(&ours["message"]),
                keys(&theirs["message"]),
                "message keys of event {i}"
            );
        }
        assert_eq!(ours["session_id"], sid, "session_id of event {i}");
    }
    // Like the real CLI: text + tool_use of one response share a message id, the next differs.
    assert_eq!(
        run.events[1]["message"]["id"],
        run.events[2]["message"]["id"]
    );
    assert_ne!(
        run.events[2]["message"]["id"],
        run.events[4]["message"]["id"]
    );
    assert_eq!(
        run.events[3]["message"]["content"][0]["tool_use_id"],
        run.events[2]["message"]["content"][0]["id"]
    );

    let res = result_of(&run.events);
    assert_eq!(res["result"], "Done: created hello.txt and committed it.");
    assert_eq!(res["is_error"], false);
    assert_eq!(res["num_turns"], 3);
    assert_eq!(res["total_cost_usd"], 0.25);

    // The commit really happened, with the fallback identity.
    assert_eq!(
        git(&sb.work(), &["log", "-1", "--format=%s|%an"]),
        "Add hello.txt|fake-claude"
    );
    assert_eq!(git(&sb.work(), &["status", "--porcelain"]), "");
    assert_eq!(
        std::fs::read_to_string(sb.work().join("hello.txt")).unwrap(),
        "Hello from !\n"
    );
    let sha = git(&sb.work(), &["rev-parse", "--short", "HEAD"]);
    assert_eq!(
        run.events[6]["tool_use_result"]["gitOperation"]["commit"]["sha"],
        sha.as_str()
    );
    assert_eq!(run.events[5]["branch"], "main");
}

#[test]
fn failing_bash_is_an_error_tool_result_not_a_crash() {
    let sb = Sandbox::new(Some(
        json!({"default": {"steps": [{"bash": "echo oops >&2; exit 3"}, {"commit": "nothing"}]}}),
    ));
    let run = sb.run("x", &[]);
    assert_eq!(run.code, 0);
    let results: Vec<&Value> = run.events.iter().filter(|e| e["type"] == "user").collect();
    assert_eq!(results.len(), 2);
    let block = &results[0]["message"]["content"][0];
    assert_eq!(block["is_error"], true);
    assert_eq!(block["content"], "Exit code 3\noops");
    assert_eq!(
        results[1]["message"]["content"][0]["is_error"], true,
        "commit outside a repo fails"
    );
    assert_eq!(result_of(&run.events)["is_error"], false);
}

#[test]
fn resume_keeps_the_session_and_sees_history() {
    let sb = Sandbox::new(Some(
        json!({"default": {"result": "h={{history_len}} s={{session_id}}"}}),
    ));
    let first = sb.run("one", &[]);
    let sid = first.events[0]["session_id"].as_str().unwrap().to_string();
    assert_eq!(result_of(&first.events)["result"], format!("h=0 s={sid}"));

    let second = sb.run("two", &["--resume", &sid]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.events[0]["session_id"], sid.as_str());
    assert_eq!(result_of(&second.events)["result"], format!("h=2 s={sid}"));

    let forked = sb.run("three", &["--resume", &sid, "--fork-session"]);
    let fid = forked.events[0]["session_id"].as_str().unwrap().to_string();
    assert_ne!(fid, sid);
    assert_eq!(result_of(&forked.events)["result"], format!("h=4 s={fid}"));
    // The original session is untouched by the fork.
    let again = sb.run("four", &["--resume", &sid]);
    assert_eq!(result_of(&again.events)["result"], format!("h=4 s={sid}"));
}

#[test]
fn session_id_flag_fixes_the_id() {
    let sb = Sandbox::new(None);
    let id = "0b9a9d2c-3c6f-4b53-9e0f-4f4a1d1c2b3a";
    let run = sb.run("x", &["--session-id", id]);
    assert_eq!(run.events[0]["session_id"], id);
    let bad = sb.run("x", &["--session-id", "not-a-uuid"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("Invalid session ID"));
}

#[test]
fn unknown_resume_id_fails_like_the_real_cli() {
    let sb = Sandbox::new(None);
    let run = sb.run("x", &["--resume", "3f1e0a52-0000-4000-8000-000000000000"]);
    assert_eq!(run.code, 1);
    assert!(run.events.is_empty());
    assert!(run
        .stderr
        .contains("No conversation found with session ID: 3f1e0a52-0000-4000-8000-000000000000"));
}

#[test]
fn times_is_counted_across_runs_and_concurrent_processes() {
    let sb = Sandbox::new(Some(json!({
        "rules": [
            {"match": {"prompt_contains": "seq"}, "times": 2, "result": "A"},
            {"match": {"prompt_contains": "par"}, "times": 3, "result": "P"}
        ],
        "default": {"result": "D"}
    })));
    let seq: Vec<String> = (0..3)
        .map(|_| {
            result_of(&sb.run("seq", &[]).events)["result"]
                .as_str()
                .unwrap()
                .into()
        })
        .collect();
    assert_eq!(seq, ["A", "A", "D"]);

    let children: Vec<Child> = (0..10)
        .map(|_| {
            let mut args = vec!["-p", "par"];
            args.extend_from_slice(STREAM);
            sb.cmd(&args).stdout(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    let picks: Vec<String> = children
        .into_iter()
        .map(|c| {
            result_of(&finish(c.wait_with_output().unwrap()).events)["result"]
                .as_str()
                .unwrap()
                .into()
        })
        .collect();
    assert_eq!(picks.iter().filter(|r| *r == "P").count(), 3, "{picks:?}");
}

#[test]
fn match_fields_select_rules() {
    let sb = Sandbox::new(Some(json!({"rules": [
        {"match": {"role": "worker", "agent": "w2"}, "result": "worker w2"},
        {"match": {"model": "sonnet"}, "result": "sonnet"},
        {"match": {"resume": true}, "result": "resumed"}
    ]})));
    let mut c = sb.cmd(&["-p", "x", "--output-format", "json"]);
    c.env("CCO_AGENT_ROLE", "worker").env("CCO_AGENT_ID", "w2");
    let out = finish(c.output().unwrap());
    assert_eq!(out.events[0]["result"], "worker w2");
    let run = sb.run("x", &["--model", "sonnet"]);
    assert_eq!(result_of(&run.events)["result"], "sonnet");
    assert_eq!(run.events[0]["model"], "claude-sonnet-5-5");
    let sid = run.events[0]["session_id"].as_str().unwrap().to_string();
    assert_eq!(
        result_of(&sb.run("x", &["--resume", &sid]).events)["result"],
        "resumed"
    );
    assert_eq!(result_of(&sb.run("x", &[]).events)["result"], "ok");
}

#[test]
fn crash_exits_with_the_code_and_no_result() {
    let sb = Sandbox::new(Some(
        json!({"default": {"steps": [{"text": "working..."}, {"crash": {"exit_code": 3}}]}}),
    ));
    let run = sb.run("x", &[]);
    assert_eq!(run.code, 3);
    assert_eq!(run.events.len(), 2);
    assert_eq!(run.events[1]["message"]["content"][0]["text"], "working...");
    assert!(!has_result(&run.events));
}

#[test]
fn rate_limit_is_rejected_and_exits_1_with_is_error() {
    let sb = Sandbox::new(Some(
        json!({"default": {"steps": [{"rate_limit": {"resets_in_secs": 600, "retries": 2}}]}}),
    ));
    let before = chrono::Utc::now().timestamp() as u64;
    let run = sb.run("x", &[]);
    assert_eq!(run.code, 1);
    let fx = fixture("rate_limit_429_maxretries2.jsonl");
    assert_eq!(
        shape(&run.events),
        [
            "system/init",
            "system/api_retry",
            "system/api_retry",
            "rate_limit_event/",
            "assistant/text",
            "result/success"
        ]
    );
    assert_eq!(keys(&run.events[1]), keys(&fx[1]));
    assert_eq!(run.events[1]["error_status"], 429);
    let info = &run.events[3]["rate_limit_info"];
    assert_eq!(info["status"], "rejected");
    let resets = info["resetsAt"].as_u64().unwrap();
    assert!(
        (before + 600..=before + 660).contains(&resets),
        "resetsAt {resets}"
    );
    let msg = &run.events[4];
    assert_eq!(keys(msg), keys(&fx[3]));
    assert_eq!(msg["message"]["model"], "<synthetic>");
    assert_eq!(msg["error"], "rate_limit");
    assert_eq!(msg["is_api_error_message"], true);
    let res = result_of(&run.events);
    assert_eq!(keys(res), keys(fx.last().unwrap()));
    assert_eq!(res["subtype"], "success");
    assert_eq!(res["is_error"], true);
    assert_eq!(res["terminal_reason"], "api_error");
    assert_eq!(res["api_error_status"], 429);
    assert_eq!(res["api_error_type"], "rate_limit_error");
}

#[test]
fn overloaded_mimics_the_529_fixture() {
    let sb = Sandbox::new(Some(
        json!({"default": {"steps": [{"overloaded": {"retries": 2}}]}}),
    ));
    let run = sb.run("x", &[]);
    assert_eq!(run.code, 1);
    let fx = fixture("overloaded_529_maxretries2.jsonl");
    assert_eq!(shape(&run.events), shape(&fx));
    assert_eq!(keys(&run.events[3]), keys(&fx[3]));
    assert_eq!(run.events[3]["error"], "server_error");
    let res = result_of(&run.events);
    assert_eq!(keys(res), keys(fx.last().unwrap()));
    assert_eq!(res["api_error_status"], 529);
    assert_eq!(res["api_error_type"], "overloaded_error");
}

#[test]
fn max_turns_flag_ends_like_the_fixture() {
    let tick = |i: u32| json!([{"text": format!("tick {i}")}, {"bash": format!("echo tick-{i} >> ticks.txt")}]);
    let steps: Vec<Value> = (0..5)
        .flat_map(|i| tick(i).as_array().unwrap().clone())
        .collect();
    let sb = Sandbox::new(Some(json!({"default": {"steps": steps}})));
    let run = sb.run("x", &["--max-turns", "3"]);
    assert_eq!(run.code, 1);
    let fx = fixture("max_turns_3.jsonl");
    assert_eq!(shape(&run.events), shape(&fx));
    let res = result_of(&run.events);
    assert_eq!(keys(res), keys(fx.last().unwrap()));
    assert_eq!(res["subtype"], "error_max_turns");
    assert_eq!(res["num_turns"], 4);
    assert_eq!(res["errors"][0], "Reached maximum number of turns (3)");
    assert_eq!(
        std::fs::read_to_string(sb.work().join("ticks.txt")).unwrap(),
        "tick-0\ntick-1\ntick-2\n"
    );

    let sb = Sandbox::new(Some(json!({"default": {"steps": [{"max_turns": true}]}})));
    let run = sb.run("x", &[]);
    assert_eq!(run.code, 1);
    assert_eq!(result_of(&run.events)["subtype"], "error_max_turns");
}

#[test]
fn disallowed_tool_is_refused_like_the_real_cli() {
    let sb = Sandbox::new(Some(
        json!({"default": {"steps": [{"bash": "touch ran.txt"}]}}),
    ));
    let run = sb.run("x", &["--disallowedTools", "Bash", "Write"]);
    assert_eq!(run.code, 0);
    let tools = run.events[0]["tools"].as_array().unwrap();
    assert!(!tools.contains(&json!("Bash")) && tools.contains(&json!("Edit")));
    let tr = run.events.iter().find(|e| e["type"] == "user").unwrap();
    assert_eq!(tr["message"]["content"][0]["is_error"], true);
    assert!(tr["tool_use_result"]
        .as_str()
        .unwrap()
        .contains("No such tool available: Bash"));
    assert!(!sb.work().join("ran.txt").exists());
}

#[test]
fn sigterm_kills_the_bash_child_and_exits_143_without_result() {
    let sb = Sandbox::new(Some(json!({"default": {"steps": [
        {"spawn_grandchild": {"pid_file": "grandchild.pid"}},
        {"text": "started"},
        {"bash": "echo $$ > bash.pid; sleep 30; echo finished > finished.txt"}
    ]}})));
    let live = sb.spawn("x");
    let (bash_pid, gc_pid) = (sb.work().join("bash.pid"), sb.work().join("grandchild.pid"));
    let read_pid = |p: &Path| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
    };
    wait_until(DEADLINE, "bash.pid and grandchild.pid", || {
        read_pid(&bash_pid).is_some() && read_pid(&gc_pid).is_some()
    });
    let (bash, grandchild) = (read_pid(&bash_pid).unwrap(), read_pid(&gc_pid).unwrap());
    live.signal(Signal::SIGTERM);
    let (code, events) = live.exit();
    assert_eq!(code, 143);
    assert!(!has_result(&events));
    wait_until(DEADLINE, "the Bash tool child dies", || !pid_alive(bash));
    // The grandchild is left for the orchestrator's process-group kill.
    assert!(pid_alive(grandchild));
    kill(Pid::from_raw(grandchild as i32), Signal::SIGKILL).unwrap();
    assert!(!sb.work().join("finished.txt").exists());
}

#[test]
fn ignore_sigterm_survives_sigterm_until_sigkill() {
    let sb = Sandbox::new(Some(json!({"default": {"steps": [
        {"ignore_sigterm": true},
        {"text": "ready"},
        {"sleep_ms": 300},
        {"text": "still here"},
        {"hang": true}
    ]}})));
    let live = sb.spawn("x");
    live.wait_for_line("\"ready\"");
    live.signal(Signal::SIGTERM);
    // Printed after the SIGTERM was delivered: it survived.
    live.wait_for_line("still here");
    live.signal(Signal::SIGKILL);
    let mut live = live;
    let status = live.child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9));
}

#[test]
fn sigint_prints_the_aborted_result_and_exits_0() {
    let sb = Sandbox::new(Some(
        json!({"default": {"steps": [{"text": "ready"}, {"hang": true}]}}),
    ));
    let live = sb.spawn("x");
    live.wait_for_line("\"ready\"");
    live.signal(Signal::SIGINT);
    let (code, events) = live.exit();
    assert_eq!(code, 0);
    let fx = fixture("sigint_during_api_wait.jsonl");
    let n = events.len();
    assert_eq!(
        events[n - 2]["message"]["content"][0]["text"],
        "[Request interrupted by user]"
    );
    let res = result_of(&events);
    assert_eq!(keys(res), keys(fx.last().unwrap()));
    assert_eq!(res["subtype"], "error_during_execution");
    assert_eq!(res["terminal_reason"], "aborted_streaming");
    assert_eq!(res["is_error"], true);
}

#[test]
fn refusals_match_the_real_cli() {
    let sb = Sandbox::new(None);
    let out = sb
        .cmd(&["-p", "x", "--output-format", "stream-json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("Error: When using --print, --output-format=stream-json requires --verbose"));
    assert!(out.stdout.is_empty());

    let mut c = sb.cmd(&["-p", "x", "--output-format", "stream-json", "--verbose"]);
    let out = c.env("CLAUDECODE", "1").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("cannot be launched inside another Claude Code session"));

    let out = sb.cmd(&["-p", "x", "--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: unknown option '--bogus'"
    );

    if unsafe { nix::libc::geteuid() } == 0 {
        let mut c = sb.cmd(&["-p", "x", "--permission-mode", "bypassPermissions"]);
        let out = c.env_remove("IS_SANDBOX").output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("root"));
    }
}

#[test]
fn invalid_script_exits_2() {
    let sb = Sandbox::new(Some(json!({"rules": [{"steps": [{"no_such_step": 1}]}]})));
    let run = sb.run("x", &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.starts_with("fake-claude: invalid script "),
        "{}",
        run.stderr
    );
    assert!(run.events.is_empty());
}

#[test]
fn input_format_stream_json_plays_one_turn_per_line() {
    let sb = Sandbox::new(Some(
        json!({"default": {"result": "turn saw {{history_len}}: {{prompt}}"}}),
    ));
    let mut args = vec!["-p", "--input-format", "stream-json"];
    args.extend_from_slice(STREAM);
    let mut child = sb
        .cmd(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for text in ["first", "second", "third"] {
        let line = json!({"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": text}]}});
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let run = finish(child.wait_with_output().unwrap());
    assert_eq!(run.code, 0);
    let inits: Vec<&Value> = run
        .events
        .iter()
        .filter(|e| e["subtype"] == "init")
        .collect();
    let results: Vec<&Value> = run
        .events
        .iter()
        .filter(|e| e["type"] == "result")
        .collect();
    assert_eq!((inits.len(), results.len()), (3, 3));
    assert!(inits
        .iter()
        .all(|i| i["session_id"] == inits[0]["session_id"]));
    let texts: Vec<&str> = results
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "turn saw 0: first",
            "turn saw 2: second",
            "turn saw 4: third"
        ]
    );
    // The real CLI reports the process's cumulative cost.
    assert_eq!(results[2]["total_cost_usd"].as_f64().unwrap(), 0.003);
}

#[test]
fn big_line_and_raw_lines() {
    let sb = Sandbox::new(Some(
        json!({"default": {"steps": [{"big_line": 3_000_000}, {"raw": "{not json"}]}}),
    ));
    let out = sb
        .cmd(&["-p", "x", "--output-format", "stream-json", "--verbose"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[1].len(), 3_000_000);
    let big: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(big["type"], "assistant");
    assert_eq!(lines[2], "{not json");
}

#[test]
fn json_and_text_output_formats() {
    let sb = Sandbox::new(Some(
        json!({"default": {"steps": [{"text": "hi"}], "result": "final"}}),
    ));
    let out = sb
        .cmd(&["-p", "x", "--output-format", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["type"].as_str(), v["result"].as_str()),
        (Some("result"), Some("final"))
    );
    let out = sb
        .cmd(&["-p", "x", "--output-format", "json", "--verbose"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 4);
    let out = sb.cmd(&["-p", "x"]).output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "final\n");
    // The prompt may come from stdin.
    let mut child = sb
        .cmd(&["-p", "--output-format", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin\n")
        .unwrap();
    let v: Value = serde_json::from_slice(&child.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(v["result"], "final");
}
