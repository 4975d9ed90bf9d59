//! End-to-end: agents under real API conditions, against fake-claude. Rate limits are handled
//! at their first sign (the key rests until its reset, the session goes on elsewhere), an
//! unavailable API is not a task failure, the circuit breaker holds new starts during a
//! storm, admission prefers credentials with headroom, and the auth modes switch credentials
//! without losing a session.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure with a message

mod harness;

use std::path::Path;
use std::time::Duration;

use cco_actors::{CredentialState, PauseCause, RunEvent, RunOutcome, TaskState};
use harness::*;
use serde_json::{json, Value};

const RUN_TIMEOUT: Duration = Duration::from_secs(90);
const K1: &str = "sk-ant-test-key-one-111";
const K2: &str = "sk-ant-test-key-two-222";

fn write_keys(project: &Project, keys: &[(&str, &str)]) {
    let entries: Vec<Value> = keys
        .iter()
        .map(|(name, key)| json!({"name": name, "apiKey": key}))
        .collect();
    let path = project.config_dir.join("api-keys.json");
    std::fs::write(&path, Value::Array(entries).to_string()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A step that appends `line` to `file` (outside the repository).
fn mark(file: &Path, line: &str) -> Value {
    json!({"append": {"path": path_str(file), "content": format!("{line}\n")}})
}

fn lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_task(id: &str) -> Vec<Value> {
    vec![
        json!({"write": {"path": format!("{id}.txt"), "content": format!("{id}\n")}}),
        json!({"commit": format!("Implement {id}")}),
    ]
}

/// The first `api_retry` with status 429 ends the process at once, although the CLI would
/// wait 30 s per retry: the key rests until the reported retry time (at least), and the same
/// (planning) session continues on the other key, told it was rate limited, not to commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_429_rotates_the_key_at_once_and_benches_it_until_the_reported_reset() {
    let records = cco_testkit::temp_dir();
    let resumes = records.path().join("resumes.txt");
    let script = json!({"rules": [
        // Key one keeps answering 429 with retry-after 30 s, waiting like the real CLI.
        {"match": {"api_key": K1}, "steps": [
            {"rate_limit": {"retries": 3, "retry_delay_ms": 30000, "wait": true}}]},
        {"match": {"role": "coordinator", "prompt_contains": "[cco:resume]", "api_key": K2}, "steps": [
            {"append": {"path": path_str(&resumes), "content": "PROMPT\n{{prompt}}\n"}}],
         "result": json!({"status":"continue","tasks":[task("t1","t1.txt")]}).to_string()},
        complete_rule("[cco:replan]"),
        approve_rule(),
        worker_rule("t1", "t1.txt", "t1\n"),
    ]});
    let project = Project::new(
        json!({"workerCount": 1, "authMode": "api-keys-only"}),
        script,
    );
    write_keys(&project, &[("k1", K1), ("k2", K2)]);
    let started = chrono::Utc::now();
    let handle = project.start().await;
    let recorder = record(&handle);
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert_eq!(summary.outcome, RunOutcome::Completed, "{}", summary.reason);
    let events = recorded(recorder, handle.clone()).await;
    let benched: Vec<(&str, chrono::DateTime<chrono::Utc>)> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::KeyBenched { key, until } => Some((key.as_str(), *until)),
            _ => None,
        })
        .collect();
    assert_eq!(benched.len(), 1, "{benched:?}");
    assert_eq!(benched[0].0, "k1");
    // Until the latest of the retry delay (30 s) and the minimum bench (60 s).
    assert!(
        benched[0].1 >= started + chrono::Duration::seconds(60),
        "{benched:?}"
    );
    // The process on key one was stopped at its first retry: one api_retry in its transcript.
    let first = transcripts_of(&handle, "coordinator")
        .into_iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .find(|t| t.contains("\"api_retry\""))
        .expect("the rate-limited process's transcript");
    assert_eq!(first.matches("\"api_retry\"").count(), 1, "{first}");
    // The planner's resume fits a planner.
    let resume = std::fs::read_to_string(&resumes).unwrap();
    assert!(resume.contains("rate limit"), "{resume}");
    assert!(resume.contains("answer with your task plan"), "{resume}");
    assert!(!resume.contains("Commit your work"), "{resume}");
    // Every agent is shown on the credential it ran on last.
    let coordinator = summary
        .agents
        .iter()
        .find(|a| a.id == "coordinator")
        .unwrap();
    assert_eq!(coordinator.credential.as_deref(), Some("k2"));
    let k1 = summary.credentials.iter().find(|c| c.name == "k1").unwrap();
    assert_eq!(k1.state, CredentialState::Limited);
}

/// An overloaded API (529) outlasting the CLI's own retries is not the key's fault and not
/// the task's: no key is benched, the turn has its own budget for it (apart from
/// `maxTaskRestarts`), the session is told the API was unavailable, and when even that budget
/// is used up the task goes back to the queue instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unavailable_api_never_benches_a_key_and_never_fails_the_task() {
    let records = cco_testkit::temp_dir();
    let resumes = records.path().join("resumes.txt");
    let overloaded = json!({"overloaded": {"retries": 1, "retry_delay_ms": 10}});
    let script = json!({"rules": [
        plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[task("t1","t1.txt")]})),
        complete_rule("[cco:replan]"),
        approve_rule(),
        {"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "times": 1, "steps": [overloaded.clone()]},
        {"match": {"role": "worker", "prompt_contains": "[cco:resume]"}, "times": 2, "steps": [
            {"append": {"path": path_str(&resumes), "content": "PROMPT\n{{prompt}}\n"}}, overloaded]},
        {"match": {"role": "worker", "prompt_contains": "[cco:resume]"}, "steps": write_task("t1"), "result": "done"},
    ]});
    let project = Project::new(
        json!({"workerCount": 1, "authMode": "api-keys-only", "maxTaskRestarts": 0,
               "maxApiRetries": 1, "apiRetryBackoffMs": 20, "maxApiRetryBackoffMs": 40}),
        script,
    );
    write_keys(&project, &[("k1", K1), ("k2", K2)]);
    let handle = project.start().await;
    let recorder = record(&handle);
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert_eq!(summary.outcome, RunOutcome::Completed, "{}", summary.reason);
    assert_eq!(summary.totals.tasks_failed, 0);
    let events = recorded(recorder, handle.clone()).await;
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, RunEvent::KeyBenched { .. })),
        "a 529 benched a key"
    );
    assert!(
        events.iter().any(|e| matches!(e, RunEvent::Warning { message } if message.contains("flat/t1: back to the queue, the API was unavailable"))),
        "the task went back to the queue"
    );
    let exits: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::ProcessExited { agent, outcome } if agent == "worker-1" => {
                Some(outcome.as_str())
            }
            _ => None,
        })
        .collect();
    assert!(
        exits
            .iter()
            .filter(|o| o.starts_with("API error 529 (overloaded)"))
            .count()
            == 3,
        "{exits:?}"
    );
    let prompts = std::fs::read_to_string(&resumes).unwrap();
    assert!(prompts.contains("The API was unavailable"), "{prompts}");
    assert!(!prompts.contains("crashed"), "{prompts}");
    // One session all along.
    assert_eq!(transcripts_of(&handle, "worker-1").len(), 1);
}

/// Three agents see 529s within a short window: the breaker holds new claude processes for
/// a back-off period, shown as a pause, and the run goes on after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_529_storm_opens_the_circuit_breaker_and_the_run_goes_on_after_it() {
    let mut rules = flat_plan_rules(3);
    for n in 1..=3 {
        let id = format!("t{n}");
        let mut steps =
            vec![json!({"overloaded": {"retries": 1, "retry_delay_ms": 10, "recover": true}})];
        steps.extend(write_task(&id));
        rules.push(json!({"match": {"role": "worker", "prompt_contains": format!("Task ID: {id}")}, "steps": steps, "result": "done"}));
    }
    let project = Project::new(
        json!({"workerCount": 3, "apiRetryBackoffMs": 1500, "maxApiRetryBackoffMs": 3000}),
        json!({"rules": rules}),
    );
    let handle = project.start().await;
    let recorder = record(&handle);
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert_eq!(summary.outcome, RunOutcome::Completed, "{}", summary.reason);
    let events = recorded(recorder, handle.clone()).await;
    let opened = events
        .iter()
        .find_map(|e| match e {
            RunEvent::ApiOverloaded { agents, until } => Some((*agents, *until)),
            _ => None,
        })
        .expect("the breaker opened");
    assert_eq!(opened.0, 3);
    assert!(summary
        .pauses
        .iter()
        .any(|p| p.cause == PauseCause::ApiOverloaded));
    assert!(!events
        .iter()
        .any(|e| matches!(e, RunEvent::KeyBenched { .. })));
    // No process started while it held (the reviews came after it).
    let held_until = opened.1;
    let text: Vec<String> = events.iter().map(|e| e.text().lines.join(" ")).collect();
    assert!(
        text.iter()
            .any(|l| l.contains("the API is overloaded (3 agents")),
        "{text:?}"
    );
    assert!(held_until > summary.started_at);
}

/// Quota-aware admission: a credential whose `rate_limit_event` says `allowed_warning` gets no
/// new process while another has headroom.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_credential_at_its_warning_gets_no_new_agents_while_another_has_headroom() {
    let records = cco_testkit::temp_dir();
    let on_k1 = records.path().join("k1.txt");
    let tasks: Vec<Value> = (1..=3)
        .map(|n| task(&format!("t{n}"), &format!("t{n}.txt")))
        .collect();
    let warning = json!({"rate_limit_event": {"status": "allowed_warning", "utilization": 0.95,
        "surpassed_threshold": 0.9, "resets_in_secs": 3600}});
    let mut rules = vec![
        {
            json!({"match": {"api_key": K1, "prompt_contains": "[cco:coordinator-plan]"}, "steps": [warning, mark(&on_k1, "plan")],
                   "result": json!({"status":"continue","tasks": tasks}).to_string()})
        },
        json!({"match": {"api_key": K1}, "steps": [mark(&on_k1, "other")], "result": "{\"decision\":\"approve\"}"}),
        complete_rule("[cco:replan]"),
        approve_rule(),
    ];
    for n in 1..=3 {
        rules.push(worker_rule(&format!("t{n}"), &format!("t{n}.txt"), "x\n"));
    }
    let project = Project::new(
        json!({"workerCount": 2, "authMode": "api-keys-only"}),
        json!({"rules": rules}),
    );
    write_keys(&project, &[("k1", K1), ("k2", K2)]);
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert_eq!(summary.outcome, RunOutcome::Completed, "{}", summary.reason);
    assert_eq!(lines(&on_k1), ["plan"], "only the first process ran on k1");
    let k1 = summary.credentials.iter().find(|c| c.name == "k1").unwrap();
    assert_eq!(k1.state, CredentialState::Warning);
    assert_eq!(k1.utilization, Some(0.95));
}

/// With the CLI login only (no keys), a rejected rate limit pauses new starts until its reset
/// instead of failing the task, and the run resumes by itself, in the same session.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oauth_rate_limit_pauses_until_the_reset_and_the_run_resumes_by_itself() {
    let script = json!({"rules": [
        plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[task("t1","t1.txt")]})),
        complete_rule("[cco:replan]"),
        approve_rule(),
        {"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "times": 1, "steps": [
            {"text": "working"},
            {"rate_limit_event": {"status": "rejected", "resets_in_secs": 2}}]},
        {"match": {"role": "worker", "prompt_contains": "[cco:resume]"}, "steps": write_task("t1"), "result": "done"},
    ]});
    let project = Project::new(
        json!({"workerCount": 1, "authMode": "oauth", "minKeyBenchMs": 200}),
        script,
    );
    let handle = project.start().await;
    let mut saw_pause = false;
    cco_testkit::wait_until_async(Duration::from_secs(30), "the pause is shown", || {
        let status = handle.status();
        saw_pause |= status
            .pause
            .as_ref()
            .is_some_and(|p| p.cause == PauseCause::RateLimited)
            && status
                .render_tree()
                .contains("paused: every credential is rate limited until");
        std::future::ready(saw_pause || handle.is_finished())
    })
    .await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(saw_pause, "the pause was never visible in the status");
    assert_eq!(summary.outcome, RunOutcome::Completed, "{}", summary.reason);
    assert_eq!(summary.tasks[0].state, TaskState::Done);
    assert_eq!(summary.pauses.len(), 1, "{:?}", summary.pauses);
    assert_eq!(summary.pauses[0].cause, PauseCause::RateLimited);
    assert_eq!(transcripts_of(&handle, "worker-1").len(), 1, "one session");
}

/// `oauth` with keys: the login first; while it is rate limited the same session goes on on a
/// key; after the login's reset new processes use the login again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oauth_switches_to_the_keys_while_the_login_is_limited_and_back_after_its_reset() {
    let records = cco_testkit::temp_dir();
    let used = records.path().join("used.txt");
    let mut t1_on_key = vec![mark(&used, "t1 resumed on k1"), json!({"sleep_ms": 2500})];
    t1_on_key.extend(write_task("t1"));
    let script = json!({"rules": [
        plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[
            task("t1","t1.txt"), {"id": "t2", "title": "Write t2.txt", "depends_on": ["t1"]}]})),
        complete_rule("[cco:replan]"),
        approve_rule(),
        // On the login (no key), t1's first process hits the 5-hour limit (reset in 2 s).
        {"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "times": 1, "steps": [
            {"rate_limit_event": {"status": "rejected", "resets_in_secs": 2}}]},
        {"match": {"role": "worker", "prompt_contains": "[cco:resume]", "api_key": K1}, "steps": t1_on_key, "result": "done"},
        {"match": {"role": "worker", "prompt_contains": "Task ID: t2", "api_key": K1}, "steps": [mark(&used, "t2 on k1")]},
        {"match": {"role": "worker", "prompt_contains": "Task ID: t2"}, "steps": [
            mark(&used, "t2 on the login"), {"write": {"path": "t2.txt", "content": "t2\n"}}, {"commit": "t2"}], "result": "done"},
    ]});
    let project = Project::new(
        json!({"workerCount": 1, "authMode": "oauth", "minKeyBenchMs": 200}),
        script,
    );
    write_keys(&project, &[("k1", K1)]);
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert_eq!(summary.outcome, RunOutcome::Completed, "{}", summary.reason);
    assert_eq!(lines(&used), ["t1 resumed on k1", "t2 on the login"]);
    let t1 = summary.tasks.iter().find(|t| t.id == "t1").unwrap();
    let transcripts = transcripts_of(&handle, "worker-1");
    assert!(
        transcripts.iter().any(|p| p
            .to_string_lossy()
            .contains(t1.session_id.as_deref().unwrap())),
        "{transcripts:?}"
    );
    assert_eq!(
        transcripts.len(),
        2,
        "one session per task: {transcripts:?}"
    );
    let worker = summary.agents.iter().find(|a| a.id == "worker-1").unwrap();
    assert_eq!(worker.credential.as_deref(), Some("oauth"));
}
