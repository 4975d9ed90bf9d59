//! Bundles between cco's clone and a node's store (issue 15): a start commit goes out relative
//! to what the store has, the node's agent commits come back, and the head fetches and adopts
//! them through the same checks as local work.

mod common;

use std::time::Duration;

use cco_git::{GitConfig, GitError, GitRepo};
use cco_testkit::git;
use common::Fx;

fn store_dir(fx: &Fx) -> std::path::PathBuf {
    fx.tmp.path().join("node").join("repo")
}

fn node_store(fx: &Fx) -> GitRepo {
    let mut cfg = GitConfig::new(fx.tmp.path().join("node"), String::new());
    cfg.git_timeout = Duration::from_secs(30);
    GitRepo::new(cfg).unwrap()
}

/// A node's store, made, holding `commits` from the bundle file `bundle` (each under
/// `refs/cco/have/<id>`, as a node keeps them).
async fn store_with(fx: &Fx, bundle: &std::path::Path, commits: &[String]) -> GitRepo {
    let store = node_store(fx);
    store.init_store().await.unwrap();
    for id in commits {
        store
            .fetch_bundle(bundle, id, &format!("refs/cco/have/{id}"))
            .await
            .unwrap();
    }
    store
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
    // Node → head: only what the turn added, copied into the store on the way.
    let back = fx.tmp.path().join("result.bundle");
    let size = store
        .bundle_agent_result(
            &lane.path,
            &result,
            std::slice::from_ref(&start.head),
            "refs/cco/tasks/run/worker-1",
            &back,
        )
        .await
        .unwrap();
    assert_eq!(size, std::fs::metadata(&back).unwrap().len());
    assert_eq!(
        git(
            &store_dir(&fx),
            &["rev-parse", "refs/cco/tasks/run/worker-1"]
        )
        .trim(),
        result
    );
    // git itself reads the bundle cco wrote: one ref, the start commit as prerequisite.
    let heads = git(
        fx.tmp.path(),
        &["bundle", "list-heads", back.to_str().unwrap()],
    );
    assert_eq!(heads.lines().count(), 1, "{heads}");
    assert!(heads.starts_with(&result), "{heads}");
    let verified = std::process::Command::new("git")
        .args(["bundle", "verify", back.to_str().unwrap()])
        .current_dir(fx.tmp.path().join("node").join("repo"))
        .output()
        .unwrap();
    assert!(verified.status.success(), "{verified:?}");
    assert!(
        String::from_utf8_lossy(&verified.stdout).contains(&start.head)
            || String::from_utf8_lossy(&verified.stderr).contains(&start.head),
        "{verified:?}"
    );

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
    let store = store_with(&fx, &out, std::slice::from_ref(&start)).await;
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

/// A bundle is input from another host: a commit whose tree git calls dangerous (an entry
/// named `.git`) is refused as a fetch with `fsckObjects` refuses it, gets no ref, and a
/// file that is not a bundle is an error, not a guess.
#[tokio::test]
async fn a_bundle_with_a_dangerous_tree_or_no_bundle_at_all_is_refused() {
    let (fx, head, _worker) = head_with_worker().await;
    let evil = fx.tmp.path().join("evil");
    std::fs::create_dir_all(&evil).unwrap();
    git(&evil, &["init", "-q"]);
    std::fs::write(evil.join("f"), "hook\n").unwrap();
    let blob = git(&evil, &["hash-object", "-w", "f"]).trim().to_string();
    let entry = format!("100644 blob {blob}\t.git\n");
    let tree = std::process::Command::new("git")
        .args(["mktree"])
        .current_dir(&evil)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(entry.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let tree = String::from_utf8(tree.stdout).unwrap().trim().to_string();
    let commit = git(&evil, &["commit-tree", "-m", "evil", &tree])
        .trim()
        .to_string();
    git(&evil, &["update-ref", "refs/heads/x", &commit]);
    let out = fx.tmp.path().join("evil.bundle");
    git(
        &evil,
        &["bundle", "create", out.to_str().unwrap(), "refs/heads/x"],
    );

    let err = head
        .fetch_bundle(&out, &commit, "refs/cco/remote/evil")
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::Refused(_)), "{err}");
    assert!(!head.has_commit(&commit).await.unwrap());

    let not_a_bundle = fx.tmp.path().join("junk.bundle");
    std::fs::write(&not_a_bundle, b"PACK\0\0\0\x02").unwrap();
    let err = head
        .fetch_bundle(&not_a_bundle, &commit, "refs/cco/remote/evil")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a bundle"), "{err}");
}

/// A conflict resolution made on a node comes back whole: its bundle builds on both commits
/// the node was sent (the worker's and the one being merged), and the head gets the merge
/// commit with both parents.
#[tokio::test]
async fn a_conflict_resolved_on_a_node_comes_back_as_a_merge_of_both_sides() {
    let (fx, head, worker) = head_with_worker().await;
    let other = head
        .create_worktree("flat", "worker-2", "main")
        .await
        .unwrap();
    let mut sides = Vec::new();
    for (repo, text, name) in [(&worker, "one\n", "w1"), (&other, "two\n", "w2")] {
        std::fs::write(repo.path.join("a.txt"), text).unwrap();
        head.commit_all(&repo.path, text).await.unwrap();
        let tip = head.remote_start(&repo.path).await.unwrap().head;
        head.fetch_task_result(&repo.path, &tip, &format!("refs/cco/tasks/run/flat/{name}"))
            .await
            .unwrap();
        sides.push(tip);
    }
    let (start, merging) = (sides[0].clone(), sides[1].clone());
    let out = fx.tmp.path().join("start.bundle");
    head.create_bundle(&sides, &[], &out)
        .await
        .unwrap()
        .unwrap();
    let store = store_with(&fx, &out, &sides).await;
    let lane = store
        .create_worktree("flat", "worker-1", &start)
        .await
        .unwrap();
    let merge = store
        .merge_into_worktree(&lane.path, &merging)
        .await
        .unwrap();
    assert!(
        matches!(merge, cco_git::WorktreeMerge::Conflicted { .. }),
        "{merge:?}"
    );
    std::fs::write(lane.path.join("a.txt"), "one and two\n").unwrap();
    let result = store.conclude_worktree_merge(&lane.path).await.unwrap();

    let back = fx.tmp.path().join("resolution.bundle");
    store
        .bundle_agent_result(
            &lane.path,
            &result,
            &sides,
            "refs/cco/tasks/run/worker-1",
            &back,
        )
        .await
        .unwrap();
    // git accepts the bundle cco wrote (prerequisites: both sides, which the store has).
    git(
        &store_dir(&fx),
        &["bundle", "verify", back.to_str().unwrap()],
    );
    head.fetch_bundle(&back, &result, "refs/cco/remote/run/worker-1")
        .await
        .unwrap();
    assert!(head.has_commit(&result).await.unwrap());
    let shown = git(head.repo_dir(), &["rev-list", "--parents", "-n1", &result]);
    assert_eq!(
        shown.split_whitespace().collect::<Vec<_>>(),
        vec![result.as_str(), start.as_str(), merging.as_str()]
    );
    assert_eq!(
        git(head.repo_dir(), &["show", &format!("{result}:a.txt")]),
        "one and two\n"
    );
}
