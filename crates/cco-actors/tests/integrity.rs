//! End to end (fake claude, real git): what an agent does to refs, hooks and config in its
//! own repository never reaches the base branch nor runs inside cco's git (issue 12 §1).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure with a message

mod harness;

use std::time::Duration;

use harness::*;
use serde_json::json;

const RUN_TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_that_moves_main_and_plants_hooks_changes_nothing_cco_integrates() {
    let marks = cco_testkit::temp_dir();
    let marker = marks.path().join("ran-in-cco.log");
    // Runs only outside the agent's own processes (they carry CCO_AGENT_ROLE): in cco's git.
    let trap = marks.path().join("trap");
    let hostile = format!(
        "set -e\n\
         cat > '{trap}' <<'EOF'\n#!/bin/sh\n[ -n \"$CCO_AGENT_ROLE\" ] && exit 0\necho \"$0\" >> '{marker}'\nexit 1\nEOF\n\
         chmod +x '{trap}'\n\
         git checkout -q -b side; echo evil > evil.txt; git add evil.txt; git commit -qm unreviewed\n\
         git branch -f main HEAD\n\
         git update-ref refs/heads/main $(git commit-tree -m hijack HEAD^{{tree}})\n\
         git checkout -q -\n\
         hooks=$(git rev-parse --git-common-dir)/hooks; mkdir -p \"$hooks\"\n\
         for h in pre-commit commit-msg pre-merge-commit post-merge post-checkout post-commit reference-transaction; do cp '{trap}' \"$hooks/$h\"; done\n\
         git config core.fsmonitor '{trap}'\n",
        trap = trap.display(),
        marker = marker.display(),
    );
    let script = json!({
        "rules": [
            plan_rule("[cco:coordinator-plan]", json!({"status":"continue","tasks":[
                task("t1", "src/one.txt"), task("t2", "src/two.txt"), task("t3", "src/three.txt")
            ]})),
            complete_rule("[cco:replan]"),
            approve_rule(),
            {
                "match": {"role": "worker", "prompt_contains": "Task ID: t1"},
                "steps": [
                    {"bash": hostile},
                    {"write": {"path": "src/one.txt", "content": "one\n"}},
                    {"commit": "Implement t1"}
                ],
                "result": "Implemented t1"
            },
            worker_rule("t2", "src/two.txt", "two\n"),
            // t3 leaves its work uncommitted: cco's own commit runs in a repository whose
            // hooks and fsmonitor the hostile worker may have planted.
            {
                "match": {"role": "worker", "prompt_contains": "Task ID: t3"},
                "steps": [{"write": {"path": "src/three.txt", "content": "three\n"}}],
                "result": "Implemented t3"
            },
        ]
    });
    let project = Project::new(json!({"workerCount": 1}), script);
    let handle = project.start().await;
    let summary = finish(&handle, RUN_TIMEOUT).await;
    assert!(summary.completed, "run should complete: {}", summary.reason);
    assert_eq!(summary.totals.tasks_done, 3, "{summary:#?}");
    let files = project.files_on("main");
    for f in ["src/one.txt", "src/two.txt", "src/three.txt"] {
        assert!(
            files.contains(&f.to_string()),
            "{f} missing on main: {files:?}"
        );
    }
    assert!(
        !files.contains(&"evil.txt".to_string()),
        "an unreviewed file reached main"
    );
    let log = project.git(&["log", "--format=%s", "main"]);
    assert!(
        !log.contains("hijack") && !log.contains("unreviewed"),
        "main holds the agent's history: {log}"
    );
    // The attack happened, in the worker's own repository.
    let agent_repo = project.config_dir.join("workspace/worktrees/worker-1");
    assert_eq!(
        cco_testkit::git(&agent_repo, &["log", "-1", "--format=%s", "main"]).trim(),
        "hijack"
    );
    assert!(agent_repo.join(".git/hooks/pre-commit").exists());
    assert!(
        !marker.exists(),
        "agent hooks ran inside cco's git: {}",
        std::fs::read_to_string(&marker).unwrap_or_default()
    );
}
