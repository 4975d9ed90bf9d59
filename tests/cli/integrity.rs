//! One cco per run, crashes that leave nothing behind, signals, and the journal agreeing with
//! git (issue 12 §1, §3; issue 18 §4): the `cco` binary with fake-claude and real git.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::harness::*;

const RUN: Duration = Duration::from_secs(90);

fn journal_of(project: &CliProject) -> Value {
    let run_dir = cco::Orchestrator::latest_run(&project.logs_dir()).expect("a run");
    serde_json::from_slice(&std::fs::read(run_dir.join("journal.json")).unwrap()).unwrap()
}

fn summary_of(project: &CliProject) -> Value {
    let run_dir = cco::Orchestrator::latest_run(&project.logs_dir()).expect("a run");
    serde_json::from_slice(&std::fs::read(run_dir.join("summary.json")).unwrap()).unwrap()
}

fn task_in<'a>(doc: &'a Value, list: &str, id: &str) -> &'a Value {
    let tasks = match list {
        "journal" => &doc["snapshot"]["tasks"],
        _ => &doc["tasks"],
    };
    tasks
        .as_array()
        .and_then(|t| t.iter().find(|t| t["id"] == id))
        .unwrap_or(&Value::Null)
}

fn clone_of(project: &CliProject) -> PathBuf {
    project.config_dir.join("workspace/repo")
}

/// How often `subject` is a commit subject on main.
fn landed(project: &CliProject, subject: &str) -> usize {
    cco_testkit::git(&clone_of(project), &["log", "--format=%s", "main"])
        .lines()
        .filter(|l| *l == subject)
        .count()
}

/// A worker step waiting (at most 60 s) until `marker` exists.
fn wait_for(marker: &Path) -> Value {
    json!({"bash": format!("i=0; while [ ! -e '{}' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done", marker.display())})
}

/// `cco <args>` with stderr captured (not the project's stderr file).
fn refused(project: &CliProject, args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = project.cco(args);
    cmd.stderr(Stdio::piped());
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_second_cco_is_refused_while_the_first_lands_every_task_exactly_once() {
    let dir = cco_testkit::temp_dir();
    let go = dir.path().join("go");
    let ids = ["t1", "t2", "t3"];
    let mut script = simple_script(&ids, None);
    // Every worker waits for the test's go before it writes and commits its file.
    for rule in script["rules"].as_array_mut().unwrap() {
        if rule["match"]["role"] != "worker" {
            continue;
        }
        if let Some(steps) = rule.get_mut("steps").and_then(Value::as_array_mut) {
            steps.insert(0, wait_for(&go));
        }
    }
    let project = CliProject::new(json!({"workerCount": 2}), script);
    let mut first = project.cco(&["start", "--plain"]).spawn().unwrap();
    project.wait_for_worker_pids(&mut first, 2);
    let holder = format!("a cco (pid {}, started ", first.id());
    for args in [
        &["start", "--plain"][..],
        &["resume", "--plain"],
        &["start", "--fresh", "--plain"],
    ] {
        let (code, stderr) = refused(&project, args);
        assert_eq!(code, Some(2), "cco {args:?}: {stderr}");
        assert!(
            stderr.contains(&holder) && stderr.contains("is running this config"),
            "cco {args:?}: {stderr}"
        );
    }
    std::fs::write(&go, "").unwrap();
    let out = wait_output(first, RUN);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", project.stderr());
    assert!(stdout.contains("tasks done 3 / failed 0"), "{stdout}");
    for id in ids {
        assert_eq!(landed(&project, &format!("Merge flat/{id}")), 1, "{id}");
        assert_eq!(landed(&project, &format!("Add {id}")), 1, "{id}");
    }
}

#[test]
fn demo_dir_is_refused_while_a_cco_runs_it_and_nothing_in_it_is_touched() {
    let dir = cco_testkit::temp_dir();
    let demo = dir.path().join("demo");
    let setup = Command::new(env!("CARGO_BIN_EXE_cco"))
        .args(["demo", "--setup-only", "--dir"])
        .arg(&demo)
        .output()
        .unwrap();
    assert!(setup.status.success());
    // A live cco holds the lock of the demo's workspace (this test stands in for it).
    let workspace = demo.join("workspace");
    std::fs::create_dir_all(&workspace).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(workspace.join(cco::LOCK_FILE))
        .unwrap();
    let mut lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap();
    let holder = json!({"pid": std::process::id(), "started_at": "2025-01-02T03:04:05Z"});
    std::io::Write::write_all(&mut *lock, holder.to_string().as_bytes()).unwrap();
    let keep = workspace.join("in-use");
    std::fs::write(&keep, "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cco"))
        .args(["demo", "--plain", "--dir"])
        .arg(&demo)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("a cco (pid {}, started ", std::process::id()))
            && stderr.contains("is running this config"),
        "{stderr}"
    );
    assert!(
        keep.exists(),
        "the demo folder was cleaned under a live cco"
    );
    drop(lock);
}

#[test]
fn start_fresh_after_kill_9_ends_the_dead_runs_claude_processes_their_children_and_review_forks() {
    let dir = cco_testkit::temp_dir();
    let grandchild = dir.path().join("grandchild.pid");
    let tasks =
        json!([{"id": "t1", "title": "Write t1.txt"}, {"id": "t2", "title": "Write t2.txt"}]);
    let write = |id: &str| json!([{"write": {"path": format!("{id}.txt"), "content": "x\n"}}, {"commit": format!("Add {id}")}]);
    let rules = vec![
        json!({"match": {"prompt_contains": "[cco:coordinator-plan]"}, "result": json!({"status":"continue","tasks": tasks}).to_string()}),
        json!({"match": {"prompt_contains": "[cco:replan]"}, "result": "{\"status\":\"complete\",\"reason\":\"done\"}"}),
        // The first review of t2 hangs: a review fork of the coordinator's session.
        json!({"match": {"role": "coordinator", "prompt_contains": "Task ID: t2"}, "times": 1, "steps": [{"hang": true}]}),
        json!({"match": {"prompt_contains": "[cco:review"}, "result": "{\"decision\":\"approve\"}"}),
        // The first t1 leaves a child in its process group and hangs.
        json!({"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "times": 1, "steps": [
            {"spawn_grandchild": {"pid_file": grandchild.display().to_string()}}, {"hang": true}]}),
        json!({"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "steps": write("t1")}),
        json!({"match": {"role": "worker", "prompt_contains": "Task ID: t2"}, "steps": write("t2")}),
    ];
    // Without the guard (orphanPolicy stop) the processes outlive cco, as they do when cco
    // is killed with its guards (or a guard cannot act): the journal is what ends them.
    let project = CliProject::new(
        json!({"workerCount": 2, "orphanPolicy": "continue"}),
        json!({"rules": rules}),
    );
    let mut child = project.cco(&["start", "--plain"]).spawn().unwrap();
    let mut groups = Vec::new();
    cco_testkit::wait_until(RUN, "a worker and a review fork journaled", || {
        assert!(child.try_wait().unwrap().is_none(), "{}", project.stderr());
        let journal = cco::Orchestrator::latest_run(&project.logs_dir())
            .and_then(|d| std::fs::read(d.join("journal.json")).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .unwrap_or_default();
        let agents: Vec<(String, u64)> = journal["processes"]
            .as_array()
            .map(|p| {
                p.iter()
                    .filter_map(|p| Some((p["agent"].as_str()?.to_string(), p["pgid"].as_u64()?)))
                    .collect()
            })
            .unwrap_or_default();
        groups = agents.iter().map(|(_, g)| *g as u32).collect();
        agents.iter().any(|(a, _)| a == "coordinator")
            && agents.iter().any(|(a, _)| a.starts_with("worker"))
            && grandchild.exists()
    });
    let grandchild_pid: u32 = std::fs::read_to_string(&grandchild)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    signal(&child, Signal::SIGKILL);
    child.wait().unwrap();
    assert!(
        cco_testkit::pid_alive(grandchild_pid),
        "alive after kill -9"
    );

    let out = project
        .cco(&["start", "--fresh", "--plain"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", project.stderr());
    assert!(stdout.contains("run finished: complete"), "{stdout}");
    for group in groups {
        assert!(
            !cco_testkit::process_group_alive(group),
            "claude group {group} of the dead run survived --fresh"
        );
    }
    assert!(
        !cco_testkit::pid_alive(grandchild_pid),
        "its child survived"
    );
}

#[test]
fn a_base_branch_moved_while_no_cco_ran_is_found_and_put_back_on_resume() {
    let tasks =
        json!([{"id": "t1", "title": "Write t1.txt"}, {"id": "t2", "title": "Write t2.txt"}]);
    let write = |id: &str| json!([{"write": {"path": format!("{id}.txt"), "content": "x\n"}}, {"commit": format!("Add {id}")}]);
    let rules = vec![
        json!({"match": {"prompt_contains": "[cco:coordinator-plan]"}, "result": json!({"status":"continue","tasks": tasks}).to_string()}),
        json!({"match": {"prompt_contains": "[cco:replan]"}, "result": "{\"status\":\"complete\",\"reason\":\"done\"}"}),
        json!({"match": {"prompt_contains": "[cco:review"}, "result": "{\"decision\":\"approve\"}"}),
        json!({"match": {"role": "worker", "prompt_contains": "Task ID: t2"}, "times": 1, "steps": [{"hang": true}]}),
        json!({"match": {"role": "worker", "prompt_contains": "[cco-ref:resume/t2]"}, "steps": write("t2")}),
        json!({"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "steps": write("t1")}),
    ];
    let project = CliProject::new(json!({"workerCount": 2}), json!({"rules": rules}));
    let mut child = project.cco(&["start", "--plain"]).spawn().unwrap();
    let clone = clone_of(&project);
    cco_testkit::wait_until(RUN, "t1 merged and journaled with main's tip", || {
        assert!(child.try_wait().unwrap().is_none(), "{}", project.stderr());
        let Some(run_dir) = cco::Orchestrator::latest_run(&project.logs_dir()) else {
            return false;
        };
        let Some(j) = std::fs::read(run_dir.join("journal.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        else {
            return false;
        };
        let tip = cco_testkit::git(&clone, &["rev-parse", "main"]);
        task_in(&j, "journal", "t1")["state"] == "done"
            && j["expected_tips"]["main"].as_str() == Some(tip.trim())
            && j["processes"].as_array().is_some_and(|p| !p.is_empty())
    });
    signal(&child, Signal::SIGKILL);
    child.wait().unwrap();
    // While no cco runs, something else moves main.
    let foreign = cco_testkit::git(
        &clone,
        &[
            "commit-tree",
            "-p",
            "main",
            "-m",
            "moved while cco was dead",
            "main^{tree}",
        ],
    )
    .trim()
    .to_string();
    cco_testkit::git(&clone, &["update-ref", "refs/heads/main", &foreign]);
    // The crash also left git locks behind, in cco's clone and in an agent's repository.
    let stale = [
        clone.join(".git/index.lock"),
        project
            .config_dir
            .join("workspace/worktrees/worker-1/.git/index.lock"),
    ];
    for lock in &stale {
        std::fs::write(lock, "").unwrap();
    }

    let out = project.cco(&["resume", "--plain"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = project.stderr();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("run finished: complete"), "{stdout}");
    let log = cco_testkit::git(&clone, &["log", "--format=%H", "main"]);
    assert!(!log.contains(&foreign), "the foreign commit reached main");
    assert_eq!(landed(&project, "Merge flat/t2"), 1);
    let kept = cco_testkit::git(
        &clone,
        &[
            "for-each-ref",
            "--format=%(objectname)",
            "refs/cco/foreign/",
        ],
    );
    assert_eq!(kept.trim(), foreign);
    assert!(
        format!("{stdout}{stderr}").contains("behind cco's back"),
        "the move is reported:\n{stdout}\n{stderr}"
    );
    for lock in &stale {
        assert!(!lock.exists(), "{} was left", lock.display());
        assert!(
            stderr.contains(&format!("removed the stale git lock {}", lock.display())),
            "{stderr}"
        );
    }
}

#[test]
fn sighup_and_sigquit_stop_the_run_gracefully_like_sigterm() {
    for (sig, name) in [(Signal::SIGHUP, "SIGHUP"), (Signal::SIGQUIT, "SIGQUIT")] {
        let project = CliProject::new(
            json!({"workerCount": 2}),
            simple_script(&["h1", "h2"], Some(json!([{"hang": true}]))),
        );
        let mut child = project.cco(&["start", "--plain"]).spawn().unwrap();
        let pids = project.wait_for_worker_pids(&mut child, 2);
        signal(&child, sig);
        let out = wait_output(child, Duration::from_secs(30));
        let stderr = project.stderr();
        assert!(
            stderr.contains(&format!("{name}: stopping gracefully")),
            "{stderr}"
        );
        assert!(
            String::from_utf8_lossy(&out.stdout)
                .contains(&format!("run finished: shutdown requested ({name})")),
            "{name}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for pid in pids {
            assert!(!cco_testkit::process_group_alive(pid), "{name}: {pid}");
        }
        let summary = summary_of(&project);
        assert_eq!(summary["outcome"]["kind"], "stopped", "{name}");
        assert_eq!(summary["outcome"]["signal"], sig as i32, "{name}");
        assert_eq!(journal_of(&project)["finished"], true, "{name}");
    }
}

#[test]
fn a_sigterm_during_the_verify_command_leaves_summary_and_journal_agreeing_with_git() {
    let dir = cco_testkit::temp_dir();
    let (verifying, go) = (dir.path().join("verifying"), dir.path().join("go"));
    let verify = format!(
        "touch '{}'; i=0; while [ ! -e '{}' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done",
        verifying.display(),
        go.display()
    );
    let project = CliProject::new(
        json!({"workerCount": 1, "verifyCommand": verify}),
        simple_script(&["t1"], None),
    );
    let mut child = project.cco(&["start", "--plain"]).spawn().unwrap();
    cco_testkit::wait_until(RUN, "the verify command of t1's merge", || {
        assert!(child.try_wait().unwrap().is_none(), "{}", project.stderr());
        verifying.exists()
    });
    signal(&child, Signal::SIGTERM);
    cco_testkit::wait_until(Duration::from_secs(30), "the graceful stop", || {
        project.stderr_contains("stopping gracefully")
    });
    // The verify passes after the stop began: the merge lands.
    std::fs::write(&go, "").unwrap();
    let out = wait_output(child, RUN);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(landed(&project, "Merge flat/t1"), 1, "{stdout}");
    let summary = summary_of(&project);
    assert_eq!(summary["totals"]["merges"], 1, "{summary:#}");
    assert_eq!(summary["totals"]["tasks_done"], 1, "{summary:#}");
    assert_eq!(task_in(&summary, "summary", "t1")["state"], "done");
    let merged = cco_testkit::git(&clone_of(&project), &["rev-parse", "main"]);
    assert_eq!(
        task_in(&summary, "summary", "t1")["merged_commit"].as_str(),
        Some(merged.trim())
    );
    let journal = journal_of(&project);
    assert_eq!(task_in(&journal, "journal", "t1")["state"], "done");
    assert_eq!(journal["snapshot"]["totals"]["merges"], 1);
    assert_eq!(journal["finished"], true);
}

/// The real git, for a wrapper placed before it on `PATH`.
fn real_git() -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("git"))
        .find(|p| p.is_file())
        .expect("git on PATH")
}

/// A `git` in `<dir>/bin` that, for cco's own git only (agents carry `CCO_AGENT_ROLE`), runs
/// `body` (sh, with `$REAL` the real git) when `trigger` (a `case` pattern over the
/// arguments) matches; everything else runs the real git. Returns the `PATH` to use.
fn git_wrapper(dir: &Path, trigger: &str, body: &str) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        "#!/bin/sh\nREAL='{real}'\nif [ -z \"$CCO_AGENT_ROLE\" ]; then case \" $* \" in {trigger}) {body} ;; esac; fi\nexec \"$REAL\" \"$@\"\n",
        real = real_git().display(),
    );
    let path = bin.join("git");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn a_merge_redone_after_a_kill_between_the_merge_and_the_journal_is_recorded_once() {
    let dir = cco_testkit::temp_dir();
    let (mark, pid_file) = (dir.path().join("merged"), dir.path().join("git.pid"));
    // The first move of main: made, then git hangs before cco hears of it.
    let body = format!(
        "if [ ! -e '{mark}' ]; then \"$REAL\" \"$@\" || exit $?; echo $$ > '{pid}'; touch '{mark}'; exec sleep 3600; fi",
        mark = mark.display(),
        pid = pid_file.display()
    );
    let path = git_wrapper(
        dir.path(),
        "*\" update-ref \"*\" refs/heads/main \"*",
        &body,
    );
    let project = CliProject::new(
        json!({"workerCount": 1}),
        simple_script(&["t1", "t2"], None),
    );
    let mut start = project.cco(&["start", "--plain"]);
    start.env("PATH", &path);
    let mut child = start.spawn().unwrap();
    cco_testkit::wait_until(RUN, "the first merge into main", || {
        assert!(child.try_wait().unwrap().is_none(), "{}", project.stderr());
        mark.exists() && pid_file.exists()
    });
    signal(&child, Signal::SIGKILL);
    child.wait().unwrap();
    let hung: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(hung), Signal::SIGKILL);
    let first = if landed(&project, "Merge flat/t1") == 1 {
        "t1"
    } else {
        "t2"
    };
    let merge_commit = cco_testkit::git(
        &clone_of(&project),
        &[
            "log",
            "--format=%H",
            "--grep",
            &format!("^Merge flat/{first}$"),
            "main",
        ],
    )
    .trim()
    .to_string();
    assert_eq!(merge_commit.len(), 40, "one merge landed");
    // The journal did not record the merge (it shows the task merging, or still in review
    // when its writes lagged behind).
    let journal = journal_of(&project);
    let state = &task_in(&journal, "journal", first)["state"];
    assert!(state == "merging" || state == "review", "{state}");

    let out = project.cco(&["resume", "--plain"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", project.stderr());
    assert!(stdout.contains("run finished: complete"), "{stdout}");
    for id in ["t1", "t2"] {
        assert_eq!(landed(&project, &format!("Merge flat/{id}")), 1, "{id}");
    }
    let summary = summary_of(&project);
    assert_eq!(summary["totals"]["merges"], 2, "{summary:#}");
    assert_eq!(summary["totals"]["tasks_done"], 2, "{summary:#}");
    assert_eq!(
        task_in(&summary, "summary", first)["merged_commit"].as_str(),
        Some(merge_commit.as_str()),
        "the commit that really merged it\n{}\n{}",
        cco_testkit::git(
            &clone_of(&project),
            &["log", "--graph", "--format=%H %s", "main"]
        ),
        task_in(&journal, "journal", first)
    );
    // The resumed run did not announce that merge again.
    let run_dir = cco::Orchestrator::latest_run(&project.logs_dir()).unwrap();
    let log = std::fs::read_to_string(run_dir.join(cco::log::FILE_NAME)).unwrap();
    let announced = log
        .lines()
        .filter(|l| l.contains(&format!("flat/{first}")) && l.contains("merged"))
        .count();
    assert!(announced <= 1, "{log}");
}

#[test]
fn a_full_disk_pauses_the_run_with_a_clear_message_and_resume_finishes_it() {
    let dir = cco_testkit::temp_dir();
    // Every capture cco makes fails as git does on a full disk.
    let body = "echo \"error: unable to write file .git/objects/ab/cd: No space left on device\" >&2; exit 128";
    let path = git_wrapper(dir.path(), "*\"cco: capture task\"*", body);
    let project = CliProject::new(
        json!({"workerCount": 2}),
        simple_script(&["t1", "t2"], None),
    );
    let mut start = project.cco(&["start", "--plain"]);
    start.env("PATH", &path);
    let out = wait_output(start.spawn().unwrap(), RUN);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = project.stderr();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let summary = summary_of(&project);
    assert_eq!(
        summary["outcome"]["kind"], "environment_paused",
        "{summary:#}\n{stdout}\n{stderr}"
    );
    let reason = summary["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("disk full in ") && reason.ends_with("; free space and run cco resume"),
        "{reason}"
    );
    assert!(stdout.contains(reason), "{stdout}");
    assert_eq!(
        summary["totals"]["tasks_failed"], 0,
        "no task failed: {summary:#}"
    );
    assert_eq!(journal_of(&project)["finished"], false);
    let status = project.cco(&["status"]).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains(&format!("paused: {reason} (`cco resume` continues it)")),
        "{status}"
    );

    let out = project.cco(&["resume", "--plain"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", project.stderr());
    assert!(stdout.contains("tasks done 2 / failed 0"), "{stdout}");
    for id in ["t1", "t2"] {
        assert_eq!(landed(&project, &format!("Merge flat/{id}")), 1, "{id}");
    }
}
