//! What agents' words and code reach: the operator's terminal (escape sequences shown as
//! text, never played) and the verify gate's environment (none of cco's credentials).

use serde_json::json;

use crate::harness::*;

/// Agents' words reach the operator's terminal (event lines, the summary, `cco logs`,
/// `cco status`): an escape sequence in them (retitling the window, clearing the screen,
/// writing the clipboard) is shown as text, never played.
#[test]
fn escape_sequences_agents_write_are_shown_as_text_never_played() {
    let mut script = simple_script(
        &["t1"],
        Some(json!([
            {"text": "working \u{1b}]52;c;cHduZWQ=\u{7} \u{1b}[2J done"},
            {"write": {"path": "t1.txt", "content": "t1\n"}},
            {"commit": "Add t1"}
        ])),
    );
    script["rules"].as_array_mut().unwrap().insert(
        0,
        cco_testkit::answer_rule(
            json!({"prompt_contains": "[cco:replan]"}),
            json!({"status": "complete", "reason": "all done \u{1b}]0;pwned\u{7}"}),
        ),
    );
    let project = CliProject::new(json!({"workerCount": 1}), script);
    let out = project.cco(&["start", "--plain"]).output().unwrap();
    let (stdout, _) = assert_success(&out);
    assert!(!stdout.contains('\u{1b}'), "{stdout:?}");
    assert!(
        stdout.contains("all done \\u{1b}]0;pwned\\u{7}"),
        "{stdout}"
    );

    let out = project.cco(&["logs", "worker-1"]).output().unwrap();
    let (log, _) = assert_success(&out);
    assert!(log.contains("\\u{1b}[2J done"), "{log}");
    assert!(!log.contains('\u{1b}'), "{log:?}");
    let out = project.cco(&["status"]).output().unwrap();
    let (status, _) = assert_success(&out);
    assert!(status.contains("pwned"), "{status}");
    assert!(!status.contains('\u{1b}'), "{status:?}");
}

/// The verify gate runs tests agents wrote: cco's own credentials are not in its environment.
#[test]
fn the_verify_command_runs_without_ccos_credentials() {
    let project = CliProject::new(
        json!({
            "workerCount": 1,
            "verifyCommand": "test -z \"$ANTHROPIC_API_KEY$ANTHROPIC_AUTH_TOKEN$CLAUDE_CODE_OAUTH_TOKEN\" && test -n \"$PATH\""
        }),
        simple_script(&["t1"], None),
    );
    let out = project
        .cco(&["start", "--plain"])
        .env("ANTHROPIC_API_KEY", "sk-ant-api03-EEEEEEEEEEEEEEEEEEEEEEEE")
        .env("ANTHROPIC_AUTH_TOKEN", "auth-token-FFFFFFFFFFFFFFFF")
        .env("CLAUDE_CODE_OAUTH_TOKEN", "oauth-token-GGGGGGGGGGGGGGGG")
        .output()
        .unwrap();
    let (stdout, _) = assert_success(&out);
    assert!(stdout.contains("tasks done 1 / failed 0"), "{stdout}");
    assert!(project.files_on_main().contains(&"t1.txt".to_string()));
}
