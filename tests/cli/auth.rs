//! The auth modes as the original tool documents them, through the binary (the CLI login a
//! run may fall back on is the one of the `HOME` cco runs with).

use std::path::Path;

use serde_json::{json, Value};

use crate::harness::*;

const K1: &str = "sk-ant-test-key-one-111";
const K2: &str = "sk-ant-test-key-two-222";

fn mark(file: &Path, line: &str) -> Value {
    json!({"append": {"path": file.display().to_string(), "content": format!("{line}\n")}})
}

/// `api-keys-first`: while every key is rate limited, the same session goes on on the CLI
/// login (this machine has one), and later processes return to the keys at their reset.
#[test]
fn api_keys_first_falls_back_to_the_login_and_returns_to_the_keys() {
    let records = cco_testkit::temp_dir();
    let used = records.path().join("used.txt");
    let rejected = json!({"rate_limit_event": {"status": "rejected", "resets_in_secs": 2}});
    let tasks = json!({"status":"continue","tasks":[
        {"id":"t1","title":"Write t1.txt"}, {"id":"t2","title":"Write t2.txt","depends_on":["t1"]}]});
    let script = json!({"rules": [
        {"match": {"prompt_contains": "[cco:coordinator-plan]"}, "result": tasks.to_string()},
        {"match": {"prompt_contains": "[cco:replan]"}, "result": "{\"status\":\"complete\",\"reason\":\"done\"}"},
        {"match": {"prompt_contains": "[cco:review]"}, "result": "{\"decision\":\"approve\"}"},
        // t1's first process and its resume on the other key: both keys are limited (2 s).
        {"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "times": 1, "steps": [rejected.clone()]},
        {"match": {"role": "worker", "prompt_contains": "[cco:resume]", "api_key": K1}, "times": 1, "steps": [rejected.clone()]},
        {"match": {"role": "worker", "prompt_contains": "[cco:resume]", "api_key": K2}, "times": 1, "steps": [rejected]},
        // On the login (no key in the environment), after the keys' reset has passed.
        {"match": {"role": "worker", "prompt_contains": "[cco:resume]"}, "steps": [
            mark(&used, "t1 on the login"), {"sleep_ms": 2500},
            {"write": {"path": "t1.txt", "content": "t1\n"}}, {"commit": "t1"}], "result": "done"},
        {"match": {"role": "worker", "prompt_contains": "Task ID: t2", "api_key": K1}, "steps": [
            mark(&used, "t2 on a key"), {"write": {"path": "t2.txt", "content": "t2\n"}}, {"commit": "t2"}]},
        {"match": {"role": "worker", "prompt_contains": "Task ID: t2", "api_key": K2}, "steps": [
            mark(&used, "t2 on a key"), {"write": {"path": "t2.txt", "content": "t2\n"}}, {"commit": "t2"}]},
        {"match": {"role": "worker", "prompt_contains": "Task ID: t2"}, "steps": [mark(&used, "t2 on the login")]},
    ]});
    let project = CliProject::new(
        json!({"workerCount": 1, "authMode": "api-keys-first", "minKeyBenchMs": 200}),
        script,
    );
    std::fs::write(
        project.config_dir.join("api-keys.json"),
        json!([{"name": "k1", "apiKey": K1}, {"name": "k2", "apiKey": K2}]).to_string(),
    )
    .unwrap();
    // A machine with a CLI login.
    let home = project.dir.path().join("home");
    std::fs::create_dir_all(home.join(".claude")).unwrap();
    std::fs::write(
        home.join(".claude/.credentials.json"),
        "{\"claudeAiOauth\":{}}",
    )
    .unwrap();
    let mut cmd = project.cco(&["start", "--plain"]);
    cmd.env("HOME", &home)
        .env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .env_remove("ANTHROPIC_API_KEY");
    let out = cmd.output().unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let used = std::fs::read_to_string(&used).unwrap();
    assert_eq!(used, "t1 on the login\nt2 on a key\n", "{stdout}");
    // The process lines say which credential each process ran on.
    assert!(
        stdout.contains("worker-1: claude pid ") && stdout.contains(" on oauth (resumed session)"),
        "{stdout}"
    );
    // The summary and `cco status` name each agent's credential.
    let status = project.cco(&["status"]).output().unwrap();
    let (text, _) = texts(&status);
    assert!(
        text.contains("worker-1 [") && text.contains("credential=k"),
        "{text}"
    );
    assert!(
        text.contains("credentials: k1 ready · k2 ready · oauth ready"),
        "{text}"
    );
}
