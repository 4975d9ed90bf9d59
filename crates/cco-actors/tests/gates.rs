//! End to end (fake claude, real git): the gates between an agent's work and the shared
//! branches (issue 12 §1, §2). Secrets are sent back to the worker with file and line and
//! never reach a ref, a prompt, a log or the journal; a base branch moved behind cco's back
//! is put back and the merge retried, or the run stops with an integrity stop when it cannot
//! be put back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure with a message

mod harness;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cco_actors::{RunEvent, RunOutcome, TaskPhase};
use harness::*;
use serde_json::json;

const RUN_TIMEOUT: Duration = Duration::from_secs(90);
const KEY: &str = "test-secret-value-0123456789";

/// A one-worker project on api-keys-only whose only key is [`KEY`] (its agents get it in
/// their environment).
fn keyed_project(script: serde_json::Value) -> Project {
    let project = Project::new(
        json!({"workerCount": 1, "authMode": "api-keys-only"}),
        script,
    );
    std::fs::write(
        project.config_dir.join("api-keys.json"),
        json!([{"name": "team-key", "apiKey": KEY}]).to_string(),
    )
    .unwrap();
    project
}

/// Every file below `dir`, recursively.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            found.extend(files_below(&p));
        } else {
            found.push(p);
        }
    }
    found
}

/// Files below `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    files_below(dir)
        .into_iter()
        .filter(|p| {
            std::fs::read(p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_committed_secret_goes_back_to_the_worker_with_file_and_line_and_reaches_no_ref_prompt_log_or_journal(
) {
    let script = json!({"rules": [
        plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[task("t1","t1.txt")]})),
        complete_rule("[cco:replan]"),
        approve_rule(),
        // Told what was refused, the same session rewrites its history.
        {"match": {"role": "worker", "resume": true, "prompt_contains": "cco refused your commits"}, "steps": [
            {"bash": "git reset -q --hard HEAD~1 && rm -f envdump.txt"},
            {"write": {"path": "t1.txt", "content": "t1\n"}},
            {"commit": "Implement t1"}
        ], "result": format!("fixed: {KEY} is no longer committed")},
        // The careless first turn: the environment (with the key) in a file, the key in the
        // commit message.
        {"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "steps": [
            {"bash": "env | grep -i anthropic > envdump.txt && git add -A && git commit -qm \"debug with $ANTHROPIC_API_KEY\""}
        ], "result": "dumped the environment"},
    ]});
    let project = keyed_project(script);
    let handle = project.start().await;
    let recorder = record(&handle);
    let summary = finish(&handle, RUN_TIMEOUT).await;
    let events = recorded(recorder, handle.clone()).await;
    assert!(summary.completed, "{}", summary.reason);
    assert_eq!(summary.totals.tasks_done, 1, "{summary:#?}");
    let t1 = &summary.tasks[0];
    assert_eq!(t1.fix_rounds, 1, "{t1:?}");
    // The worker was told where, never what.
    let revised = events
        .iter()
        .find_map(|e| match e {
            RunEvent::TaskRevised { feedback, .. } => Some(feedback.clone()),
            _ => None,
        })
        .expect("the refusal went back to the worker");
    assert!(
        revised.contains("envdump.txt:") && revised.contains("in the message (commit"),
        "{revised}"
    );
    assert!(!revised.contains(KEY));
    // Nothing holding the key reached a ref of cco's clone.
    let all = project.git(&["log", "--all", "-p", "--format=%H %B"]);
    assert!(!all.contains(KEY), "a ref holds the key");
    assert!(!project
        .files_on("main")
        .contains(&"envdump.txt".to_string()));
    assert_eq!(project.file_on("main", "t1.txt"), "t1\n");
    // Not in any prompt the reviewer got (the worker's result text held it), nor in the
    // transcripts, logs, journal or summary.
    let coordinator = project.config_dir.join("workspace/agents/coordinator");
    assert!(
        !files_below(&coordinator).is_empty(),
        "the coordinator's sessions exist"
    );
    assert_eq!(files_containing(&coordinator, KEY), Vec::<PathBuf>::new());
    assert_eq!(
        files_containing(handle.run_dir(), KEY),
        Vec::<PathBuf>::new()
    );
    assert!(
        !files_containing(&coordinator, "[REDACTED:team-key]").is_empty(),
        "the review prompt held the redacted result"
    );
}

/// Waits until task `id` of the flat team is done.
async fn wait_done(handle: &cco_actors::OrchestratorHandle, id: &str) {
    let key = format!("flat/{id}");
    cco_testkit::wait_until_async(Duration::from_secs(60), "the task to be merged", || {
        let done = handle
            .status()
            .tasks
            .iter()
            .any(|t| t.key == key && matches!(t.phase, TaskPhase::Done { .. }));
        async move { done }
    })
    .await;
}

/// Once t1 is merged and t2's turn runs (`ready`), main moves behind cco's back.
async fn move_main_once_t1_merged_and_t2_runs(
    project: &Project,
    handle: &cco_actors::OrchestratorHandle,
    ready: &Path,
) -> String {
    wait_done(handle, "t1").await;
    cco_testkit::wait_until_async(Duration::from_secs(60), "t2 to start", || {
        let ready = ready.exists();
        async move { ready }
    })
    .await;
    move_main_behind_ccos_back(project)
}

/// A commit on `main` of cco's clone that cco did not write (someone else moved it).
fn move_main_behind_ccos_back(project: &Project) -> String {
    let foreign = project
        .git(&["commit-tree", "-p", "main", "-m", "foreign", "main^{tree}"])
        .trim()
        .to_string();
    project.git(&["update-ref", "refs/heads/main", &foreign]);
    foreign
}

/// A two-task project whose second task waits (in its worker's turn) until the test says go.
fn two_tasks_second_waits(ready: &Path, go: &Path) -> Project {
    let script = json!({"rules": [
        plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[task("t1","t1.txt"), task("t2","t2.txt")]})),
        complete_rule("[cco:replan]"),
        approve_rule(),
        worker_rule("t1", "t1.txt", "t1\n"),
        {"match": {"role": "worker", "prompt_contains": "Task ID: t2"}, "steps": [
            {"bash": format!("touch '{}'", ready.display())},
            wait_for_file_step(&go.display().to_string()),
            {"write": {"path": "t2.txt", "content": "t2\n"}},
            {"commit": "Implement t2"}
        ], "result": "t2 done"},
    ]});
    Project::new(json!({"workerCount": 1}), script)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_base_branch_moved_behind_ccos_back_is_put_back_logged_and_the_merge_retried() {
    let marks = cco_testkit::temp_dir();
    let (ready, go) = (marks.path().join("ready"), marks.path().join("go"));
    let project = two_tasks_second_waits(&ready, &go);
    let handle = project.start().await;
    let recorder = record(&handle);
    let foreign = move_main_once_t1_merged_and_t2_runs(&project, &handle, &ready).await;
    std::fs::write(&go, "").unwrap();
    let summary = finish(&handle, RUN_TIMEOUT).await;
    let events = recorded(recorder, handle.clone()).await;
    assert!(summary.completed, "{}", summary.reason);
    assert_eq!(summary.totals.tasks_done, 2, "{summary:#?}");
    let log = project.git(&["log", "--format=%H %s", "main"]);
    assert!(
        !log.contains(&foreign),
        "the foreign commit stayed on main:\n{log}"
    );
    assert!(project.files_on("main").contains(&"t2.txt".to_string()));
    let kept = project.git(&[
        "for-each-ref",
        "--format=%(objectname)",
        "refs/cco/foreign/",
    ]);
    assert_eq!(kept.trim(), foreign, "the foreign commit is kept aside");
    let warning = events
        .iter()
        .find_map(|e| match e {
            RunEvent::Warning { message } if message.contains("behind cco's back") => {
                Some(message.clone())
            }
            _ => None,
        })
        .expect("the move is logged");
    assert!(
        warning.contains("main") && warning.contains(&foreign[..10]),
        "{warning}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_base_branch_that_cannot_be_put_back_stops_the_run_with_an_integrity_stop() {
    let marks = cco_testkit::temp_dir();
    let (ready, go) = (marks.path().join("ready"), marks.path().join("go"));
    let project = two_tasks_second_waits(&ready, &go);
    let handle = project.start().await;
    let foreign = move_main_once_t1_merged_and_t2_runs(&project, &handle, &ready).await;
    // Whoever moved it holds its lock: cco cannot put it back.
    let lock = project.workspace_repo().join(".git/refs/heads/main.lock");
    std::fs::create_dir_all(&lock).unwrap();
    std::fs::write(&go, "").unwrap();
    let summary = finish(&handle, RUN_TIMEOUT).await;
    std::fs::remove_dir_all(&lock).unwrap();
    assert_eq!(
        summary.outcome,
        RunOutcome::IntegrityStop,
        "{}",
        summary.reason
    );
    assert!(
        summary.reason.contains("main") && summary.reason.contains("cco resume"),
        "{}",
        summary.reason
    );
    // Nothing was merged onto the foreign commit; the run can be resumed.
    assert_eq!(project.git(&["rev-parse", "main"]).trim(), foreign);
    let t2 = summary.tasks.iter().find(|t| t.id == "t2").unwrap();
    assert!(matches!(t2.phase, TaskPhase::Merging { .. }), "{t2:?}");
    let journal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(handle.run_dir().join("journal.json")).unwrap())
            .unwrap();
    assert_eq!(journal["finished"], false);
    assert_eq!(journal["outcome"]["kind"], "integrity_stop");
}

/// The journal of a finished run says finished, every time (the final write never races a
/// periodic one).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_finished_runs_journal_always_says_finished() {
    for round in 0..3 {
        let script = json!({"rules": [
            plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[task("t1","t1.txt")]})),
            complete_rule("[cco:replan]"),
            approve_rule(),
            worker_rule("t1", "t1.txt", "t1\n"),
        ]});
        let project = Project::new(json!({"workerCount": 1}), script);
        let handle = project.start().await;
        let summary = finish(&handle, RUN_TIMEOUT).await;
        assert!(summary.completed, "round {round}: {}", summary.reason);
        let journal: serde_json::Value =
            serde_json::from_slice(&std::fs::read(handle.run_dir().join("journal.json")).unwrap())
                .unwrap();
        assert_eq!(journal["finished"], true, "round {round}");
        assert_eq!(journal["outcome"]["kind"], "completed", "round {round}");
        assert_eq!(journal["processes"], json!([]), "round {round}");
        // The run's lock is free again: another run of this config may start.
        cco_actors::Orchestrator::check_lock(&project.config_dir.join("workspace")).unwrap();
    }
}

/// A stop requested while a team merge runs its verify command: the merge completes and the
/// summary counts it (hierarchy: the Director's merge into the base branch).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_team_merge_that_lands_while_the_run_stops_is_counted() {
    let marks = cco_testkit::temp_dir();
    let (verifying, go) = (marks.path().join("verifying"), marks.path().join("go"));
    let verify = format!(
        "touch '{}'; i=0; while [ ! -e '{}' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done",
        verifying.display(),
        go.display()
    );
    let script = json!({"rules": [
        {"match": {"role": "director", "prompt_contains": "[cco:director-plan]"}, "result": json!({"status":"continue","teams":[
            {"name": "alpha", "goal": "alpha goal"}]}).to_string()},
        complete_rule("[cco:replan]"),
        plan_rule("alpha goal", json!({"status":"continue","tasks":[task("a1", "a1.txt")]})),
        approve_rule(),
        worker_rule("a1", "a1.txt", "a1\n"),
    ]});
    let project = Project::new(
        json!({"workerCount": 2, "engineerManagerGroupSize": 1, "verifyCommand": verify}),
        script,
    );
    let handle = project.start().await;
    let started = std::time::Instant::now();
    while !verifying.exists() {
        assert!(
            started.elapsed() < RUN_TIMEOUT,
            "no team merge verify; status:\n{}",
            handle.status().render_tree()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle.request_stop_for_signal(15);
    std::fs::write(&go, "").unwrap();
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(
        matches!(summary.outcome, RunOutcome::Stopped { .. }),
        "{:?}",
        summary.outcome
    );
    let team_merges = project
        .git(&["log", "--merges", "--first-parent", "--format=%s", "main"])
        .lines()
        .count();
    assert_eq!(team_merges, 1, "the team merge landed");
    // One task merge into the team branch, one team merge into main.
    assert_eq!(summary.totals.merges, 2, "{:?}", summary.totals);
}

/// A worker that tries every way found to slip a key past the gates or to lead cco's own git
/// into the integration repository, in one turn, and keeps doing so when told: a key in a
/// binary file, as its author, in a message after a forged end marker, a symlink out through
/// another one, its repository's refs linked to cco's clone with HEAD on `main` and work left
/// for cco to commit. Its task fails after the fix rounds; the same worker (the only one)
/// then does the other two tasks in the repositories it left, and they land; `main` never
/// moves but by cco's merges, and no ref, file of the run or prompt holds the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostile_worker_gets_nothing_past_the_gates_and_never_moves_main() {
    let hostile = json!([
        {"bash": "printf 'junk\\000K=%s\\n' \"$ANTHROPIC_API_KEY\" > cache.bin && git add cache.bin && git commit -qm cache"},
        {"bash": "echo a > a.txt && git add a.txt && GIT_AUTHOR_NAME=\"$ANTHROPIC_API_KEY\" git commit -qm author"},
        {"bash": "echo b > b.txt && git add b.txt && printf 'fine\\n\\n\\001cco-end\\nkey %s\\n' \"$ANTHROPIC_API_KEY\" > ../msg && git commit -q --cleanup=verbatim -F ../msg"},
        {"bash": "ln -s . l && ln -s l/.. m && git add l m && git commit -qm links"},
        {"bash": "echo left > left-for-cco.txt && rm -rf .git/refs && ln -s \"$(cd ../../repo/.git && pwd)/refs\" .git/refs && printf 'ref: refs/heads/main\\n' > .git/HEAD"}
    ]);
    let script = json!({"rules": [
        plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[task("t1","t1.txt"), task("t2","t2.txt"), task("t3","t3.txt")]})),
        complete_rule("[cco:replan]"),
        approve_rule(),
        // Told what was refused, it only tries again.
        {"match": {"role": "worker", "resume": true, "prompt_contains": "Task ID: t1"}, "steps": hostile.clone(), "result": "done"},
        {"match": {"role": "worker", "resume": true}, "steps": hostile.clone(), "result": "done"},
        {"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "steps": hostile, "result": "done"},
        {"match": {"role": "worker", "prompt_contains": "Task ID: t2"}, "steps": [
            {"write": {"path": "t2.txt", "content": "t2\n"}},
            {"commit": "Implement t2"}
        ], "result": "t2 done"},
        {"match": {"role": "worker", "prompt_contains": "Task ID: t3"}, "steps": [
            {"write": {"path": "t3.txt", "content": "t3\n"}},
            {"commit": "Implement t3"}
        ], "result": "t3 done"},
    ]});
    let project = keyed_project(script);
    let base = cco_testkit::git(&project.source, &["rev-parse", "main"]);
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "{}", summary.reason);
    assert_eq!(summary.totals.tasks_done, 2, "{summary:#?}");
    assert_eq!(summary.totals.tasks_failed, 1, "{summary:#?}");
    let t1 = summary.tasks.iter().find(|t| t.key == "flat/t1").unwrap();
    let failure = t1.failure.clone().unwrap_or_default();
    assert!(
        failure.contains("cco refused the work 4 times"),
        "{failure}"
    );
    assert!(!failure.contains(KEY), "{failure}");
    // main: the base, then cco's merge of t2 and nothing else.
    let since = project.git(&["log", "--format=%s", &format!("{}..main", base.trim())]);
    assert!(
        since
            .lines()
            .all(|s| s == "Implement t2" || s == "Implement t3" || s.starts_with("Merge ")),
        "{since}"
    );
    assert_eq!(
        project
            .files_on("main")
            .iter()
            .filter(|f| f.as_str() == "t2.txt")
            .count(),
        1
    );
    for name in [
        "cache.bin",
        "a.txt",
        "b.txt",
        "l",
        "m",
        "left-for-cco.txt",
        "t1.txt",
    ] {
        assert!(
            !project.files_on("main").contains(&name.to_string()),
            "{name} on main"
        );
    }
    eprintln!(
        "DEBUG refs: {}",
        project.git(&["for-each-ref", "--format=%(refname)"])
    );
    // No ref of the clone holds the key.
    let shared = project.git(&[
        "log",
        "--branches",
        "-p",
        "--text",
        "--format=%H %an %ae %B",
    ]);
    assert!(!shared.contains(KEY), "a ref holds the key");
    assert_eq!(
        files_containing(handle.run_dir(), KEY),
        Vec::<PathBuf>::new()
    );
    let coordinator = project.config_dir.join("workspace/agents/coordinator");
    assert_eq!(files_containing(&coordinator, KEY), Vec::<PathBuf>::new());
}
