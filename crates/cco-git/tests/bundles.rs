//! Bundles between cco's clone and a node's store (issue 15): a start commit goes out relative
//! to what the store has, the node's agent commits come back, and the head fetches and adopts
//! them through the same checks as local work.

mod common;

use std::time::Duration;

use cco_git::{GitConfig, GitError, GitRepo};
use cco_testkit::git;
use common::Fx;

fn node_store(fx: &Fx) -> GitRepo {
    let mut cfg = GitConfig::new(fx.tmp.path().join("node"), String::new());
    cfg.git_timeout = Duration::from_secs(30);
    GitRepo::new(cfg).unwrap()
}

/// The head's repository with worker-1's repository on `main`.
async fn head_with_worker() -> (Fx, GitRepo, cco_git::WorktreeInfo) {
    let fx = Fx::new();
    let head = fx.repo(fx.config()).await;
    let worker = head
        .create_worktree("flat", "worker-1", "main")
        .await
        .unwrap();
    (fx, head, worker)
}

#[tokio::test]
async fn a_start_commit_goes_to_a_node_and_the_agents_work_comes_back() {
    let (fx, head, worker) = head_with_worker().await;
    let start = head.remote_start(&worker.path).await.unwrap();
    assert_eq!(start.merging, None);

    // Head → node: a full bundle the first time.
    let store = node_store(&fx);
    store.init_store().await.unwrap();
    let out = fx.tmp.path().join("start.bundle");
    let size = head
        .create_bundle(std::slice::from_ref(&start.head), &[], &out)
        .await
        .unwrap()
        .unwrap();
    assert!(size > 0);
    let have = format!("refs/cco/have/{}", start.head);
    store.fetch_bundle(&out, &start.head, &have).await.unwrap();
    assert!(store.has_commit(&start.head).await.unwrap());
    // Nothing to send for a commit the node has.
    assert_eq!(
        head.create_bundle(
            std::slice::from_ref(&start.head),
            std::slice::from_ref(&start.head),
            &out
        )
        .await
        .unwrap(),
        None
    );

    // The node's agent works in a repository of its own, on the start commit.
    let lane = store
        .create_worktree("flat", "worker-1", &start.head)
        .await
        .unwrap();
    std::fs::write(lane.path.join("remote.txt"), "from the node\n").unwrap();
    store.commit_all(&lane.path, "node work").await.unwrap();
    let result = store.remote_start(&lane.path).await.unwrap().head;
    store
        .fetch_task_result(&lane.path, &result, "refs/cco/tasks/run/worker-1")
        .await
        .unwrap();
    // Node → head: only what the head lacks.
    let back = fx.tmp.path().join("result.bundle");
    store
        .create_bundle(
            std::slice::from_ref(&result),
            std::slice::from_ref(&start.head),
            &back,
        )
        .await
        .unwrap()
        .unwrap();
    let heads = git(
        fx.tmp.path(),
        &["bundle", "list-heads", back.to_str().unwrap()],
    );
    assert_eq!(heads.lines().count(), 1, "{heads}");

    // A bundle is fetched only for the commit the caller expects.
    let err = head
        .fetch_bundle(&back, &start.head, "refs/cco/remote/x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not hold commit"), "{err}");
    head.fetch_bundle(&back, &result, "refs/cco/remote/run/worker-1")
        .await
        .unwrap();
    head.adopt_remote_result(&worker.path, &result)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(worker.path.join("remote.txt")).unwrap(),
        "from the node\n"
    );
    // The capture that follows sees the node's commit as the worker's work.
    let captured = head
        .capture_task(
            &worker.path,
            "capture",
            "refs/cco/tasks/run/flat/t1",
            "main",
        )
        .await
        .unwrap();
    assert_eq!(captured.task_commit.as_deref(), Some(result.as_str()));
}

#[tokio::test]
async fn a_bundle_without_its_prerequisites_is_refused() {
    let (fx, head, worker) = head_with_worker().await;
    let base = head.remote_start(&worker.path).await.unwrap().head;
    std::fs::write(worker.path.join("more.txt"), "more\n").unwrap();
    head.commit_all(&worker.path, "more").await.unwrap();
    let tip = head.remote_start(&worker.path).await.unwrap().head;
    let out = fx.tmp.path().join("thin.bundle");
    head.create_bundle(
        std::slice::from_ref(&tip),
        std::slice::from_ref(&base),
        &out,
    )
    .await
    .unwrap()
    .unwrap();
    // A store that has nothing cannot use a bundle built on `base`.
    let store = node_store(&fx);
    store.init_store().await.unwrap();
    let err = store
        .fetch_bundle(&out, &tip, &format!("refs/cco/have/{tip}"))
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::NotFound { .. }), "{err}");
    assert!(!store.has_commit(&tip).await.unwrap());
}

#[tokio::test]
async fn an_unknown_basis_gives_a_full_bundle_and_a_node_repository_is_reset_for_the_next_turn() {
    let (fx, head, worker) = head_with_worker().await;
    let start = head.remote_start(&worker.path).await.unwrap().head;
    // A basis commit the head never saw (a node's own): the bundle holds everything.
    let unknown = "1".repeat(40);
    let out = fx.tmp.path().join("full.bundle");
    head.create_bundle(std::slice::from_ref(&start), &[unknown], &out)
        .await
        .unwrap()
        .expect("a full bundle");
    let store = node_store(&fx);
    store.init_store().await.unwrap();
    store
        .fetch_bundle(&out, &start, &format!("refs/cco/have/{start}"))
        .await
        .unwrap();
    // A node's repository left dirty by a turn, with an untracked file and a commit of its
    // own, is put back at the next start commit.
    let lane = store
        .create_worktree("flat", "worker-1", &start)
        .await
        .unwrap();
    std::fs::write(lane.path.join("left.txt"), "left\n").unwrap();
    store.commit_all(&lane.path, "node work").await.unwrap();
    std::fs::write(lane.path.join("untracked.txt"), "u\n").unwrap();
    std::fs::write(lane.path.join("left.txt"), "changed\n").unwrap();
    store.reset_agent_repo(&lane.path, &start).await.unwrap();
    assert_eq!(git(&lane.path, &["rev-parse", "HEAD"]).trim(), start);
    assert!(git(&lane.path, &["status", "--porcelain"])
        .trim()
        .is_empty());
    assert!(!lane.path.join("left.txt").exists());
    assert!(!lane.path.join("untracked.txt").exists());
}
