//! Task refs: a worker's finished turn is frozen in `refs/cco/tasks/<team>/<id>` and its
//! worktree parked at the target tip, so the worker can take its next task while the frozen
//! work is reviewed and merged; urgent ops (the ones a worker waits on) jump the queue.
mod common;

use std::time::Duration;

use cco_git::*;
use cco_testkit::{git, wait_until_async};
use common::*;

#[tokio::test]
async fn capture_freezes_committed_and_uncommitted_work_and_parks_the_worktree() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let wt = repo.create_worktree("flat", "w1", "main").await.unwrap();
    let tref = task_ref("run-1", "flat", "t1");
    assert_eq!(tref, "refs/cco/tasks/run-1/flat/t1");

    // The agent commits one file, leaves one changed, one untracked, and an env file.
    write(&wt.path, "a.txt", "committed\n");
    git(&wt.path, &["add", "a.txt"]);
    git(&wt.path, &["commit", "-q", "-m", "agent commit"]);
    write(&wt.path, "shared.txt", &lines(&[(3, "changed")]));
    write(&wt.path, "new/b.txt", "untracked\n");
    write(&wt.path, ".env.local", "SECRET=1\n");

    let out = repo
        .capture_task(&wt.path, "t1: leftovers", &tref, "main")
        .await
        .unwrap();
    assert!(out.committed.is_some(), "{out:?}");
    assert!(out.moved);
    let main = repo.head("main").await.unwrap();
    assert_eq!(
        out.task_commit.as_deref(),
        Some(out.committed.as_deref().unwrap())
    );
    // Everything is in the task ref, nothing secret.
    assert_eq!(fx.show(&tref, "a.txt"), "committed\n");
    assert_eq!(fx.show(&tref, "new/b.txt"), "untracked\n");
    assert_eq!(fx.show(&tref, "shared.txt"), lines(&[(3, "changed")]));
    assert!(!fx.has_file(&tref, ".env.local"));
    // The worktree is back at main, clean; the excluded env file is still there.
    assert_eq!(git(&wt.path, &["rev-parse", "HEAD"]).trim(), main);
    assert_eq!(git(&wt.path, &["status", "--porcelain"]), "");
    assert!(!wt.path.join("a.txt").exists());
    assert!(wt.path.join(".env.local").exists());

    // Review and merge work from the ref.
    let diff = repo.diff_summary("main", &tref).await.unwrap();
    assert_eq!(diff.commits.len(), 2);
    assert_eq!(diff.files, vec!["a.txt", "new/b.txt", "shared.txt"]);
    let merged = repo
        .merge(&MergeRequest::new(&tref, "main", MergeStrategy::Fail))
        .await
        .unwrap();
    assert!(matches!(merged, MergeOutcome::Merged { .. }), "{merged:?}");
    assert_eq!(fx.show("main", "a.txt"), "committed\n");
}

#[tokio::test]
async fn a_repeated_capture_or_one_with_nothing_done_never_moves_the_task_ref() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let w1 = repo.create_worktree("flat", "w1", "main").await.unwrap();
    let w2 = repo.create_worktree("flat", "w2", "main").await.unwrap();
    let tref = task_ref("run-1", "flat", "t1");

    // Nothing done: no ref.
    let out = repo
        .capture_task(&w1.path, "t1", &tref, "main")
        .await
        .unwrap();
    assert_eq!(
        (out.moved, out.task_commit, out.committed),
        (false, None, None)
    );
    assert_eq!(git(&fx.repo_dir(), &["for-each-ref", "refs/cco/tasks"]), "");

    write(&w1.path, "a.txt", "a\n");
    let first = repo
        .capture_task(&w1.path, "t1", &tref, "main")
        .await
        .unwrap();
    let frozen = first.task_commit.clone().unwrap();
    // main moves on (another worker's task lands) ...
    write(&w2.path, "b.txt", "b\n");
    repo.commit_all(&w2.path, "b").await.unwrap();
    repo.merge(&MergeRequest::new(&w2.branch, "main", MergeStrategy::Fail))
        .await
        .unwrap();
    // ... and the capture is repeated on the parked worktree (cco restarted in between):
    // the parked HEAD is an old main, already in main, so the ref keeps the work.
    let again = repo
        .capture_task(&w1.path, "t1", &tref, "main")
        .await
        .unwrap();
    assert!(!again.moved);
    assert_eq!(again.task_commit.as_deref(), Some(frozen.as_str()));
    assert_eq!(
        git(&w1.path, &["rev-parse", "HEAD"]).trim(),
        repo.head("main").await.unwrap()
    );
    assert_eq!(fx.show(&tref, "a.txt"), "a\n");
}

#[tokio::test]
async fn a_revision_switches_the_worktree_to_the_task_ref_and_captures_on_top() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let wt = repo.create_worktree("flat", "w1", "main").await.unwrap();
    let tref = task_ref("run-1", "flat", "t1");
    write(&wt.path, "a.txt", "v1\n");
    let first = repo
        .capture_task(&wt.path, "t1", &tref, "main")
        .await
        .unwrap();

    // Parked at main; going back to the task needs no snapshot: main holds the parked HEAD.
    let to = repo
        .switch_worktree(&wt.path, &tref, Some("main"))
        .await
        .unwrap();
    assert_eq!(to.snapshot, None);
    assert_eq!(Some(to.head), first.task_commit.clone());
    assert_eq!(
        std::fs::read_to_string(wt.path.join("a.txt")).unwrap(),
        "v1\n"
    );
    // Already there: nothing to do.
    let same = repo
        .switch_worktree(&wt.path, &tref, Some("main"))
        .await
        .unwrap();
    assert_eq!(same.snapshot, None);

    write(&wt.path, "a.txt", "v2\n");
    let second = repo
        .capture_task(&wt.path, "t1 rev", &tref, "main")
        .await
        .unwrap();
    assert!(second.moved);
    assert_eq!(fx.show(&tref, "a.txt"), "v2\n");
    let diff = repo.diff_summary("main", &tref).await.unwrap();
    assert_eq!(diff.commits.len(), 2, "{diff:?}");

    // Dirty work that is in neither ref is snapshotted before a switch.
    write(&wt.path, "a.txt", "v3 uncommitted\n");
    let out = repo.switch_worktree(&wt.path, "main", None).await.unwrap();
    let snapshot = out.snapshot.expect("snapshot of uncommitted work");
    assert_eq!(fx.show(&snapshot, "a.txt"), "v3 uncommitted\n");
}

#[tokio::test]
async fn capture_refuses_bad_refs_and_unresolved_conflicts_without_touching_the_worktree() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let w1 = repo.create_worktree("flat", "w1", "main").await.unwrap();
    let w2 = repo.create_worktree("flat", "w2", "main").await.unwrap();
    for bad in [
        "refs/heads/main",
        "refs/cco/tasks/../x",
        "refs/cco/tasks/a b",
    ] {
        let err = repo.capture_task(&w1.path, "m", bad, "main").await;
        assert!(err.is_err(), "{bad}: {err:?}");
    }
    // The task id an agent invents is sanitized into one ref component.
    assert_eq!(
        task_ref("run-1", "flat", "../../x y"),
        task_ref("run-1", "flat", "../../x y")
    );
    assert!(task_ref("run-1", "flat", "../../x y").starts_with("refs/cco/tasks/run-1/flat/"));
    assert_eq!(task_ref("run-1", "flat", "a/b").matches('/').count(), 5);

    write(&w1.path, "shared.txt", &lines(&[(1, "w1")]));
    repo.commit_all(&w1.path, "w1").await.unwrap();
    repo.merge(&MergeRequest::new(&w1.branch, "main", MergeStrategy::Fail))
        .await
        .unwrap();
    write(&w2.path, "shared.txt", &lines(&[(1, "w2")]));
    repo.commit_all(&w2.path, "w2").await.unwrap();
    let conflicted = repo.merge_into_worktree(&w2.path, "main").await.unwrap();
    assert!(matches!(conflicted, WorktreeMerge::Conflicted { .. }));
    let tref = task_ref("run-1", "flat", "t2");
    let err = repo.capture_task(&w2.path, "t2", &tref, "main").await;
    assert!(
        matches!(err, Err(GitError::UnresolvedConflicts { .. })),
        "{err:?}"
    );
    assert!(std::fs::read_to_string(w2.path.join("shared.txt"))
        .unwrap()
        .contains("<<<<<<<"));
}

/// Ops a worker waits on go before queued merges and diffs: with a merge in flight (its
/// verify command waits for a file), a diff is queued, then a sync; the sync is answered
/// first. (One op at a time here, so everything queues; with more, see
/// `agents_ops_run_beside_a_merge_in_flight`.)
#[tokio::test]
async fn urgent_ops_jump_the_queue_of_merges_and_diffs() {
    let fx = Fx::new();
    let gate = fx.tmp.path().join("go");
    let mut cfg = fx.config();
    cfg.parallel_ops = 1;
    cfg.verify_command = Some(format!(
        "while [ ! -e '{}' ]; do sleep 0.01; done",
        gate.display()
    ));
    let (h, join) = GitHandle::spawn(cfg).await.unwrap();
    h.setup().await.unwrap();
    let w1 = h.create_worktree("flat", "w1", "main").await.unwrap();
    let w2 = h.create_worktree("flat", "w2", "main").await.unwrap();
    write(&w1.path, "a.txt", "a\n");
    h.commit_all(&w1.path, "a").await.unwrap();

    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut req = MergeRequest::new(&w1.branch, "main", MergeStrategy::Fail);
    req.verify = true;
    let merge = {
        let (h, order) = (h.clone(), order.clone());
        tokio::spawn(async move {
            let out = h.merge(req).await;
            order.lock().unwrap().push("merge");
            out
        })
    };
    let status = || async { h.status().await.unwrap() };
    wait_until_async(Duration::from_secs(20), "the merge in flight", || async {
        status()
            .await
            .in_flight
            .is_some_and(|op| op.starts_with("merge"))
    })
    .await;
    let diff = {
        let (h, order) = (h.clone(), order.clone());
        tokio::spawn(async move {
            let out = h.diff_summary("main", "main").await;
            order.lock().unwrap().push("diff");
            out
        })
    };
    wait_until_async(Duration::from_secs(20), "the diff queued", || async {
        status().await.queued == 1
    })
    .await;
    let sync = {
        let (h, order) = (h.clone(), order.clone());
        let path = w2.path.clone();
        tokio::spawn(async move {
            let out = h.sync_worktree(&path, "main").await;
            order.lock().unwrap().push("sync");
            out
        })
    };
    wait_until_async(Duration::from_secs(20), "the sync queued", || async {
        status().await.queued == 2
    })
    .await;
    std::fs::write(&gate, "").unwrap();
    assert!(matches!(
        merge.await.unwrap().unwrap(),
        MergeOutcome::Merged { .. }
    ));
    sync.await.unwrap().unwrap();
    diff.await.unwrap().unwrap();
    assert_eq!(*order.lock().unwrap(), vec!["merge", "sync", "diff"]);
    // Every finished op is counted by kind, with the time it ran.
    let status = h.status().await.unwrap();
    for op in ["merge", "sync_worktree", "diff_summary", "create_worktree"] {
        let stats = &status.by_op[op];
        assert!(stats.count >= 1 && stats.busy_ms > 0.0, "{op}: {stats:?}");
    }
    assert_eq!(status.by_op["create_worktree"].count, 2);
    assert!(status.busy_ms() >= status.by_op["merge"].busy_ms);
    h.stop().await.unwrap();
    let _ = join.await;
}

/// A new worktree on a new branch is at the start point; a reused one, or a new one on a
/// branch that already exists, is not. A worktree whose folder was deleted behind git's back
/// is re-created (its stale registration pruned).
#[tokio::test]
async fn worktrees_say_whether_they_start_at_the_start_point() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let main = repo.head("main").await.unwrap();
    let first = repo.create_worktree("flat", "w1", "main").await.unwrap();
    assert!(first.at_start_point && !first.reused);
    assert_eq!(first.head, main);
    let again = repo.create_worktree("flat", "w1", "main").await.unwrap();
    assert!(!again.at_start_point && again.reused);

    write(&first.path, "a.txt", "a\n");
    let work = repo.commit_all(&first.path, "a").await.unwrap().unwrap();
    std::fs::remove_dir_all(&first.path).unwrap();
    let recreated = repo.create_worktree("flat", "w1", "main").await.unwrap();
    assert!(!recreated.at_start_point && !recreated.reused);
    assert_eq!(recreated.head, work, "back on the existing branch");
    assert_eq!(
        std::fs::read_to_string(recreated.path.join("a.txt")).unwrap(),
        "a\n"
    );
}

/// The GitActor stays the single owner of shared refs, but ops on agents' repositories do
/// not wait behind it: with a merge in flight (its verify command waits for a file), every
/// agent's capture, sync and diff completes; a second merge waits for the first.
#[tokio::test]
async fn agents_ops_run_beside_a_merge_in_flight() {
    let fx = Fx::new();
    let gate = fx.tmp.path().join("go");
    let mut cfg = fx.config();
    cfg.parallel_ops = 4;
    cfg.verify_command = Some(format!(
        "while [ ! -e '{}' ]; do sleep 0.01; done",
        gate.display()
    ));
    let (h, join) = GitHandle::spawn(cfg).await.unwrap();
    h.setup().await.unwrap();
    let mut wts = Vec::new();
    for id in ["w1", "w2", "w3", "w4"] {
        wts.push(h.create_worktree("flat", id, "main").await.unwrap());
    }
    write(&wts[0].path, "a.txt", "a\n");
    h.commit_all(&wts[0].path, "a").await.unwrap();
    let first = {
        let h = h.clone();
        let req = MergeRequest::new(&wts[0].branch, "main", MergeStrategy::Fail);
        tokio::spawn(async move { h.merge(req).await })
    };
    wait_until_async(Duration::from_secs(20), "the merge in flight", || async {
        h.status()
            .await
            .unwrap()
            .in_flight
            .is_some_and(|op| op.starts_with("merge"))
    })
    .await;
    let second = {
        let h = h.clone();
        let req = MergeRequest::new(&wts[1].branch, "main", MergeStrategy::Fail);
        tokio::spawn(async move { h.merge(req).await })
    };
    // Captures of three agents, a sync and a diff: all done while the merge waits.
    let mut jobs = Vec::new();
    for (i, wt) in wts.iter().enumerate().skip(1) {
        write(&wt.path, &format!("f{i}.txt"), "x\n");
        let (h, path) = (h.clone(), wt.path.clone());
        jobs.push(tokio::spawn(async move {
            let tref = task_ref("run", "flat", &format!("t{i}"));
            let out = h.capture_task(&path, "t", &tref, "main").await.unwrap();
            assert!(out.moved);
            h.sync_worktree(&path, "main").await.unwrap();
            h.diff_summary("main", &tref).await.unwrap()
        }));
    }
    for j in jobs {
        assert_eq!(j.await.unwrap().files.len(), 1);
    }
    let status = h.status().await.unwrap();
    assert!(status.in_flight.unwrap().starts_with("merge"));
    assert_eq!(status.queued, 1, "the second merge waits for the first");
    std::fs::write(&gate, "").unwrap();
    assert!(matches!(
        first.await.unwrap().unwrap(),
        MergeOutcome::Merged { .. }
    ));
    second.await.unwrap().unwrap();
    h.stop().await.unwrap();
    let _ = join.await;
}
