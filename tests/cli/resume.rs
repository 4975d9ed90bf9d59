//! Crash safety: `kill -9` of cco mid-run, then `cco resume` finishes the project with every
//! task's commits on main exactly once; `cco status` reads the live journal.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

fn journal(project: &CliProject) -> Option<Value> {
    let run_dir = cco::Orchestrator::latest_run(&project.logs_dir())?;
    let bytes = std::fs::read(run_dir.join("journal.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn task_state(journal: &Value, id: &str) -> String {
    task_of(journal, id)["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits (60 s at most) until the live journal satisfies `ready`; cco must keep running.
fn wait_for_journal(
    project: &CliProject,
    child: &mut std::process::Child,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) {
    cco_testkit::wait_until(Duration::from_secs(60), what, || {
        assert!(
            child.try_wait().unwrap().is_none(),
            "cco exited early: {}",
            project.stderr()
        );
        journal(project).is_some_and(|j| ready(&j))
    });
}

/// A task of the journal by id (`null` when absent).
fn task_of(journal: &Value, id: &str) -> Value {
    journal["snapshot"]["tasks"]
        .as_array()
        .and_then(|tasks| tasks.iter().find(|t| t["id"] == id).cloned())
        .unwrap_or_default()
}

#[test]
fn kill_9_mid_run_then_resume_completes_with_each_task_on_main_exactly_once() {
    let ids = ["t1", "t2", "t3", "t4"];
    // t4 waits for t3, so nothing is merging when cco is killed (a merge the journal has not
    // recorded yet is the integrity checks' business, not this test's).
    let tasks: Vec<Value> = ids.iter().map(|id| {
        let depends_on: Vec<&str> = if *id == "t4" { vec!["t3"] } else { vec![] };
        json!({"id": id, "title": format!("Write {id}.txt"), "files": [format!("{id}.txt")], "depends_on": depends_on})
    }).collect();
    let write_and_commit = |id: &str| json!([{"write": {"path": format!("{id}.txt"), "content": format!("{id}\n")}}, {"commit": format!("Add {id}")}]);
    let mut rules = vec![
        json!({"match": {"prompt_contains": "[cco:coordinator-plan]"}, "result": json!({"status":"continue","tasks": tasks}).to_string()}),
        json!({"match": {"prompt_contains": "[cco:replan]"}, "result": "{\"status\":\"complete\",\"reason\":\"done\"}"}),
        json!({"match": {"prompt_contains": "[cco:review"}, "result": "{\"decision\":\"approve\"}"}),
        // t3 hangs in the first cco process; the resumed session finishes it.
        json!({"match": {"role": "worker", "prompt_contains": "Task ID: t3"}, "times": 1, "steps": [{"text": "working on t3"}, {"hang": true}]}),
        json!({"match": {"role": "worker", "prompt_contains": "[cco-ref:resume/t3]"}, "steps": write_and_commit("t3"), "result": "t3 finished after resume"}),
    ];
    for id in ["t1", "t2", "t4"] {
        rules.push(json!({"match": {"role": "worker", "prompt_contains": format!("Task ID: {id}")}, "steps": write_and_commit(id)}));
    }
    let project = CliProject::new(json!({"workerCount": 2}), json!({"rules": rules}));
    let mut child = project.cco(&["start", "--plain"]).spawn().unwrap();

    // Wait until t1 and t2 are merged and t3 runs in a journaled claude process.
    wait_for_journal(&project, &mut child, "t1, t2 merged and t3 running", |j| {
        let t3_worker_has_pid = j["snapshot"]["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["current_task"] == "flat/t3" && a["pid"].is_u64());
        task_state(j, "t1") == "done"
            && task_state(j, "t2") == "done"
            && task_state(j, "t3") == "running"
            && t3_worker_has_pid
    });

    // `cco status` while running lists every agent.
    let status = project.cco(&["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    // Flat mode: the coordinator is the root of the tree (no agent is called director).
    for id in ["coordinator", "worker-1", "worker-2"] {
        assert!(text.contains(id), "{id} missing from status:\n{text}");
    }
    assert!(!text.contains("director"), "{text}");

    let orphan = journal(&project).unwrap()["snapshot"]["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["current_task"] == "flat/t3")
        .and_then(|a| a["pid"].as_u64())
        .unwrap() as u32;
    signal(&child, nix::sys::signal::Signal::SIGKILL);
    child.wait().unwrap();

    // A plain start refuses to run over an unfinished run.
    let refused = project.cco(&["start", "--plain"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        project.stderr().contains("cco resume"),
        "{}",
        project.stderr()
    );

    let out = project.cco(&["resume", "--plain"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        project.stderr()
    );
    assert!(stdout.contains("run finished: complete"), "{stdout}");
    assert!(
        !cco_testkit::process_group_alive(orphan),
        "the dead cco's claude process was left running"
    );

    let log = cco_testkit::git(
        &project.config_dir.join("workspace/repo"),
        &["log", "--format=%s", "main"],
    );
    for id in ids {
        let commits = log.lines().filter(|l| *l == format!("Add {id}")).count();
        let merges = log
            .lines()
            .filter(|l| *l == format!("Merge flat/{id}"))
            .count();
        assert_eq!(
            (commits, merges),
            (1, 1),
            "{id} should land exactly once:\n{log}\n{stdout}"
        );
    }
    let final_journal = journal(&project).unwrap();
    assert_eq!(final_journal["finished"], true);
    let t3_session = final_journal["snapshot"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "t3")
        .unwrap()["session_id"]
        .clone();
    assert!(t3_session.is_string(), "t3 kept its session id");

    // A damaged journal: `cco status` says so and shows the previous good state.
    let run_dir = cco::Orchestrator::latest_run(&project.logs_dir()).unwrap();
    let journal_path = run_dir.join("journal.json");
    let bytes = std::fs::read(&journal_path).unwrap();
    std::fs::write(&journal_path, &bytes[..bytes.len() / 3]).unwrap();
    let status = project.cco(&["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    let stderr = project.stderr();
    assert!(status.status.success(), "{stderr}");
    assert!(
        stderr.contains("journal.json is damaged") && stderr.contains("previous good state"),
        "{stderr}"
    );
    assert!(
        text.contains("worker-1") && text.contains("coordinator"),
        "{text}"
    );
}

/// A task whose finished turn was captured in its task ref is reviewed and merged from the
/// ref after `kill -9` + `cco resume`: its worker does not run it again (and went on with the
/// next task while the review was pending).
#[test]
fn a_task_killed_in_review_is_merged_from_its_task_ref_without_rerunning_the_worker() {
    let runs_dir = cco_testkit::temp_dir();
    let runs = runs_dir.path().join("worker-runs.log");
    let runs_str = runs.display().to_string();
    let tasks = json!([
        {"id": "t1", "title": "Write t1.txt", "files": ["t1.txt"]},
        {"id": "t2", "title": "Write t2.txt", "files": ["t2.txt"]}
    ]);
    let work = |id: &str| {
        json!({"match": {"role": "worker", "prompt_contains": format!("Task ID: {id}")}, "steps": [
            {"bash": format!("echo {id} >> '{runs_str}'")},
            {"write": {"path": format!("{id}.txt"), "content": format!("{id}\n")}},
            {"commit": format!("Add {id}")}
        ], "result": format!("{id} done")})
    };
    let rules = vec![
        json!({"match": {"prompt_contains": "[cco:coordinator-plan]"}, "result": json!({"status":"continue","tasks": tasks}).to_string()}),
        json!({"match": {"prompt_contains": "[cco:replan]"}, "result": "{\"status\":\"complete\",\"reason\":\"done\"}"}),
        // The first review of t1 never answers: cco is killed while it runs.
        json!({"match": {"role": "coordinator", "prompt_contains": "Task ID: t1"}, "times": 1, "steps": [{"text": "reviewing"}, {"hang": true}]}),
        json!({"match": {"prompt_contains": "[cco:review"}, "result": "{\"decision\":\"approve\"}"}),
        work("t1"),
        work("t2"),
    ];
    let project = CliProject::new(json!({"workerCount": 1}), json!({"rules": rules}));
    let mut child = project.cco(&["start", "--plain"]).spawn().unwrap();
    wait_for_journal(
        &project,
        &mut child,
        "t1 in review with its work in the task ref, t2 done",
        |j| {
            let t1 = task_of(j, "t1");
            let review_journaled = j["processes"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["agent"] == "coordinator"));
            t1["state"] == "review"
                && t1["captured_round"] == 0
                && task_state(j, "t2") == "done"
                && review_journaled
        },
    );
    // The hanging review runs in a fork of the coordinator's session: journaled with its pid.
    let review_fork = journal(&project).unwrap()["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["agent"] == "coordinator")
        .and_then(|p| p["pgid"].as_u64())
        .unwrap() as u32;
    signal(&child, nix::sys::signal::Signal::SIGKILL);
    child.wait().unwrap();

    let out = project.cco(&["resume", "--plain"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        project.stderr()
    );
    assert!(stdout.contains("run finished: complete"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap(),
        "t1\nt2\n",
        "each worker turn ran once"
    );
    assert!(
        !cco_testkit::process_group_alive(review_fork),
        "the killed cco's review fork outlived the resume"
    );
    let log = cco_testkit::git(
        &project.config_dir.join("workspace/repo"),
        &["log", "--format=%s", "main"],
    );
    for id in ["t1", "t2"] {
        let merges = log
            .lines()
            .filter(|l| *l == format!("Merge flat/{id}"))
            .count();
        assert_eq!(merges, 1, "{id} should land exactly once:\n{log}");
    }
}

/// cco is killed while it captures a finished turn (a pre-commit hook of cco's own commit
/// kills it): the task is journaled in review, its work still uncommitted in the worker's
/// worktree. `cco resume` captures that work and reviews and merges it, without running the
/// worker's session again.
#[test]
fn a_turn_finished_before_a_crash_is_captured_on_resume_not_run_again() {
    let dir = cco_testkit::temp_dir();
    let runs = dir.path().join("worker-runs.log");
    let (pid_file, mark) = (dir.path().join("cco.pid"), dir.path().join("killed"));
    let hooks = dir.path().join("hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    let tasks = json!([{"id": "t1", "title": "Write t1.txt", "files": ["t1.txt"]}]);
    let rules = vec![
        json!({"match": {"prompt_contains": "[cco:coordinator-plan]"}, "result": json!({"status":"continue","tasks": tasks}).to_string()}),
        json!({"match": {"prompt_contains": "[cco:replan]"}, "result": "{\"status\":\"complete\",\"reason\":\"done\"}"}),
        json!({"match": {"prompt_contains": "[cco:review"}, "result": "{\"decision\":\"approve\"}"}),
        // A resumed session would say so in the log.
        json!({"match": {"role": "worker", "prompt_contains": "[cco:resume]"}, "steps": [
            {"bash": format!("echo t1-resumed >> '{}'", runs.display())}], "result": "resumed"}),
        // The worker leaves its work uncommitted: cco's capture commits it.
        json!({"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "steps": [
            {"bash": format!("echo t1 >> '{}'", runs.display())},
            {"write": {"path": "t1.txt", "content": "t1\n"}}], "result": "t1 done"}),
    ];
    let project = CliProject::new(json!({"workerCount": 1}), json!({"rules": rules}));
    // cco's own commit (agents' processes carry CCO_AGENT_ROLE) waits until the journal has
    // the task in review, then kills cco once. cco's git runs no hooks, so the trap is a
    // `git` first on cco's PATH that runs the real one otherwise.
    let real_git = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("git"))
        .find(|p| p.is_file())
        .expect("git on PATH");
    let hook = hooks.join("git");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nif [ -z \"$CCO_AGENT_ROLE\" ] && [ ! -e '{mark}' ]; then for a in \"$@\"; do if [ \"$a\" = commit ]; then\ntouch '{mark}'\n\
             i=0; until grep -qs '\"review\"' $(find '{logs}' -name journal.json) || [ $i -ge 600 ]; do sleep 0.05; i=$((i+1)); done\n\
             kill -9 \"$(cat '{pid}')\"\nexit 1\nfi; done; fi\nexec '{git}' \"$@\"\n",
            mark = mark.display(),
            logs = project.logs_dir().display(),
            pid = pid_file.display(),
            git = real_git.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        hooks.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let with_hook = |mut cmd: std::process::Command| {
        cmd.env("PATH", &path);
        cmd
    };
    let mut child = with_hook(project.cco(&["start", "--plain"]))
        .spawn()
        .unwrap();
    std::fs::write(&pid_file, child.id().to_string()).unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "cco should have been killed: {}",
        project.stderr()
    );
    assert!(mark.exists(), "the hook never ran: {}", project.stderr());
    assert_eq!(task_state(&journal(&project).unwrap(), "t1"), "review");

    let out = with_hook(project.cco(&["resume", "--plain"]))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        project.stderr()
    );
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap(),
        "t1\n",
        "the finished turn was not run again"
    );
    let repo = project.config_dir.join("workspace/repo");
    assert_eq!(cco_testkit::git(&repo, &["show", "main:t1.txt"]), "t1\n");
    let log = cco_testkit::git(&repo, &["log", "--format=%s", "main"]);
    assert_eq!(
        log.lines().filter(|l| *l == "Merge flat/t1").count(),
        1,
        "{log}"
    );
}
