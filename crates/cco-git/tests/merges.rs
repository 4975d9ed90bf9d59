//! Merges through team branches, conflict strategies, the verify gate.
mod common;

use cco_git::*;
use common::*;

#[tokio::test]
async fn four_workers_land_on_main_through_team_branches_via_actor() {
    let fx = Fx::new();
    let (h, join) = GitHandle::spawn(fx.config()).await.unwrap();
    let info = h.setup().await.unwrap();
    assert_eq!(info.base_branch, "main");
    let mut teams = Vec::new();
    for team in ["alpha", "beta"] {
        let tb = h.ensure_team_branch(team, None).await.unwrap();
        assert_eq!(tb, format!("cco/{team}/team"));
        teams.push((team, tb));
    }
    let mut workers = Vec::new();
    for (i, (team, tb)) in [&teams[0], &teams[0], &teams[1], &teams[1]]
        .into_iter()
        .enumerate()
    {
        let id = format!("w{i}");
        let wt = h.create_worktree(team, &id, tb).await.unwrap();
        assert_eq!(wt.branch, format!("cco/{team}/{id}"));
        assert!(!wt.reused);
        write(
            &wt.path,
            &format!("src/{id}.txt"),
            &format!("work of {id}\n"),
        );
        let c = h
            .commit_all(&wt.path, &format!("task of {id}"))
            .await
            .unwrap();
        assert!(c.is_some());
        workers.push((wt, tb.clone()));
    }
    for (wt, tb) in &workers {
        let out = h
            .merge(MergeRequest::new(&wt.branch, tb, MergeStrategy::Agent))
            .await
            .unwrap();
        assert!(matches!(out, MergeOutcome::Merged { .. }), "{out:?}");
        // Next task starts from the team tip.
        let s = h.sync_worktree(&wt.path, tb).await.unwrap();
        assert_eq!(s.snapshot, None);
        assert_eq!(s.head, h.head(tb).await.unwrap());
    }
    let summary = h.diff_summary("main", &teams[0].1).await.unwrap();
    assert_eq!(summary.files, vec!["src/w0.txt", "src/w1.txt"]);
    assert_eq!(summary.insertions, 2);
    assert!(summary.commits.iter().any(|(_, s)| s == "task of w0"));
    for (_, tb) in &teams {
        let out = h
            .merge(MergeRequest::new(tb, "main", MergeStrategy::Agent))
            .await
            .unwrap();
        assert!(
            matches!(
                out,
                MergeOutcome::Merged {
                    pushed: PushStatus::NotPushed,
                    ..
                }
            ),
            "{out:?}"
        );
    }
    for i in 0..4 {
        assert_eq!(
            fx.show("main", &format!("src/w{i}.txt")),
            format!("work of w{i}\n")
        );
    }
    // Merging again is a no-op; re-creating a worktree reuses it (resume).
    let again = h
        .merge(MergeRequest::new(&teams[0].1, "main", MergeStrategy::Agent))
        .await
        .unwrap();
    assert!(matches!(again, MergeOutcome::UpToDate { .. }));
    let re = h.create_worktree("alpha", "w0", &teams[0].1).await.unwrap();
    assert!(re.reused);
    assert!(h
        .log_graph("main", 20)
        .await
        .unwrap()
        .contains("Merge cco/alpha/team into main"));
    assert!(h.branch_exists("cco/beta/team").await.unwrap());
    assert!(!h.branch_exists("cco/nope").await.unwrap());
    // The user's checkout was never touched.
    assert!(!fx.src.join("src").exists());
    let st = h.status().await.unwrap();
    assert_eq!(st.in_flight, None);
    assert!(st.ops_done > 20);
    h.stop().await.unwrap();
    join.await.unwrap();
}

/// Flat mode: w3 lands `other.txt`, w1 changes line 5, then w2 (line 5 too, plus line 9 and
/// a new file) is merged into main with `strategy`.
async fn conflict(
    fx: &Fx,
    strategy: MergeStrategy,
) -> (
    GitRepo,
    WorktreeInfo,
    String,
    Result<MergeOutcome, GitError>,
) {
    let repo = fx.repo(fx.config()).await;
    let mut wts = Vec::new();
    for id in ["w1", "w2", "w3"] {
        wts.push(repo.create_worktree("flat", id, "main").await.unwrap());
    }
    write(&wts[2].path, "other.txt", "w3 work\n");
    write(&wts[0].path, "shared.txt", &lines(&[(5, "five by w1")]));
    write(&wts[0].path, "w1.txt", "w1 file\n");
    write(
        &wts[1].path,
        "shared.txt",
        &lines(&[(5, "five by w2"), (9, "nine by w2")]),
    );
    write(&wts[1].path, "w2.txt", "w2 file\n");
    for wt in &wts {
        repo.commit_all(&wt.path, "work").await.unwrap().unwrap();
    }
    for wt in [&wts[2], &wts[0]] {
        let out = repo
            .merge(&MergeRequest::new(&wt.branch, "main", strategy))
            .await
            .unwrap();
        assert!(matches!(out, MergeOutcome::Merged { .. }), "{out:?}");
    }
    let before = repo.head("main").await.unwrap();
    let out = repo
        .merge(&MergeRequest::new(&wts[1].branch, "main", strategy))
        .await;
    (repo, wts[1].clone(), before, out)
}

fn assert_others_intact(fx: &Fx) {
    assert_eq!(fx.show("main", "other.txt"), "w3 work\n");
    assert_eq!(fx.show("main", "w1.txt"), "w1 file\n");
}

#[tokio::test]
async fn strategy_agent_resolves_in_worker_worktree() {
    let fx = Fx::new();
    let (repo, w2, before, out) = conflict(&fx, MergeStrategy::Agent).await;
    assert_eq!(
        out.unwrap(),
        MergeOutcome::Conflict {
            files: vec!["shared.txt".into()]
        }
    );
    assert_eq!(repo.head("main").await.unwrap(), before, "target untouched");

    let m = repo.merge_into_worktree(&w2.path, "main").await.unwrap();
    assert_eq!(
        m,
        WorktreeMerge::Conflicted {
            files: vec!["shared.txt".into()]
        }
    );
    let text = std::fs::read_to_string(w2.path.join("shared.txt")).unwrap();
    assert!(text.contains("<<<<<<<") && text.contains("five by w1") && text.contains("five by w2"));
    // Asking again reports the same pending conflict.
    assert!(matches!(
        repo.merge_into_worktree(&w2.path, "main").await.unwrap(),
        WorktreeMerge::Conflicted { .. }
    ));
    // commit_all must not commit the markers.
    let err = repo.commit_all(&w2.path, "too early").await.unwrap_err();
    assert!(matches!(err, GitError::UnresolvedConflicts { .. }), "{err}");
    // Markers still there: refused.
    let err = repo.conclude_worktree_merge(&w2.path).await.unwrap_err();
    assert!(matches!(err, GitError::UnresolvedConflicts { .. }), "{err}");
    // The test plays the agent (and forgets `git add`).
    write(
        &w2.path,
        "shared.txt",
        &lines(&[(5, "five by w1 and w2"), (9, "nine by w2")]),
    );
    repo.conclude_worktree_merge(&w2.path).await.unwrap();

    let out = repo
        .merge(&MergeRequest::new(&w2.branch, "main", MergeStrategy::Agent))
        .await
        .unwrap();
    assert!(matches!(out, MergeOutcome::Merged { .. }), "{out:?}");
    assert_eq!(
        fx.show("main", "shared.txt"),
        lines(&[(5, "five by w1 and w2"), (9, "nine by w2")])
    );
    assert_eq!(fx.show("main", "w2.txt"), "w2 file\n");
    assert_others_intact(&fx);
}

#[tokio::test]
async fn strategy_ours_keeps_target_side_of_conflicting_hunks_only() {
    let fx = Fx::new();
    let (_repo, _, _, out) = conflict(&fx, MergeStrategy::Ours).await;
    assert!(matches!(out.unwrap(), MergeOutcome::Merged { .. }));
    assert_eq!(
        fx.show("main", "shared.txt"),
        lines(&[(5, "five by w1"), (9, "nine by w2")])
    );
    assert_eq!(fx.show("main", "w2.txt"), "w2 file\n");
    assert_others_intact(&fx);
}

#[tokio::test]
async fn strategy_theirs_takes_source_side_without_overwriting_other_files() {
    let fx = Fx::new();
    let (_repo, _, _, out) = conflict(&fx, MergeStrategy::Theirs).await;
    assert!(matches!(out.unwrap(), MergeOutcome::Merged { .. }));
    assert_eq!(
        fx.show("main", "shared.txt"),
        lines(&[(5, "five by w2"), (9, "nine by w2")])
    );
    assert_others_intact(&fx);
}

#[tokio::test]
async fn strategy_union_keeps_both_sides() {
    let fx = Fx::new();
    let (_repo, _, _, out) = conflict(&fx, MergeStrategy::Union).await;
    assert!(matches!(out.unwrap(), MergeOutcome::Merged { .. }));
    let text = fx.show("main", "shared.txt");
    assert!(text.contains("five by w1\nfive by w2\n"), "{text}");
    assert!(
        text.contains("nine by w2") && !text.contains("<<<<<<<"),
        "{text}"
    );
    assert_eq!(fx.show("main", "w2.txt"), "w2 file\n");
    assert_others_intact(&fx);
}

#[tokio::test]
async fn strategy_skip_leaves_target_untouched() {
    let fx = Fx::new();
    let (repo, _, before, out) = conflict(&fx, MergeStrategy::Skip).await;
    assert_eq!(
        out.unwrap(),
        MergeOutcome::Skipped {
            files: vec!["shared.txt".into()]
        }
    );
    assert_eq!(repo.head("main").await.unwrap(), before);
    assert!(!fx.has_file("main", "w2.txt"));
    assert_others_intact(&fx);
}

#[tokio::test]
async fn strategy_fail_errors_with_files() {
    let fx = Fx::new();
    let (repo, _, before, out) = conflict(&fx, MergeStrategy::Fail).await;
    match out {
        Err(GitError::MergeConflict { files, .. }) => {
            assert_eq!(files, vec!["shared.txt".to_string()])
        }
        other => panic!("expected MergeConflict, got {other:?}"),
    }
    assert_eq!(repo.head("main").await.unwrap(), before);
    assert_others_intact(&fx);
}

#[tokio::test]
async fn red_verify_command_does_not_move_target() {
    let fx = Fx::new();
    let mut cfg = fx.config();
    cfg.verify_command =
        Some("echo checking; test ! -f bad.txt || { echo 'bad.txt present' >&2; exit 3; }".into());
    let repo = fx.repo(cfg).await;
    let good = repo.create_worktree("flat", "good", "main").await.unwrap();
    let bad = repo.create_worktree("flat", "bad", "main").await.unwrap();
    write(&good.path, "good.txt", "ok\n");
    write(&bad.path, "bad.txt", "no\n");
    repo.commit_all(&good.path, "good").await.unwrap();
    repo.commit_all(&bad.path, "bad").await.unwrap();
    assert!(matches!(
        repo.merge(&MergeRequest::new(
            &good.branch,
            "main",
            MergeStrategy::Agent
        ))
        .await
        .unwrap(),
        MergeOutcome::Merged { .. }
    ));
    let before = repo.head("main").await.unwrap();
    match repo
        .merge(&MergeRequest::new(
            &bad.branch,
            "main",
            MergeStrategy::Agent,
        ))
        .await
        .unwrap()
    {
        MergeOutcome::VerifyFailed {
            status,
            output_tail,
        } => {
            assert!(output_tail.contains("bad.txt present"), "{output_tail}");
            assert_eq!(status, cco_git::VerifyStatus::Exited(3), "{output_tail}");
            assert!(!output_tail.contains("Some("), "{output_tail}");
        }
        other => panic!("expected VerifyFailed, got {other:?}"),
    }
    assert_eq!(repo.head("main").await.unwrap(), before);
    // The gate can be skipped per request.
    let mut req = MergeRequest::new(&bad.branch, "main", MergeStrategy::Agent);
    req.verify = false;
    assert!(matches!(
        repo.merge(&req).await.unwrap(),
        MergeOutcome::Merged { .. }
    ));
}

#[tokio::test]
async fn sync_worktree_snapshots_work_not_in_target() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let wt = repo.create_worktree("flat", "w1", "main").await.unwrap();
    write(&wt.path, "unmerged.txt", "committed but never merged\n");
    repo.commit_all(&wt.path, "unmerged").await.unwrap();
    write(&wt.path, "dirty.txt", "uncommitted\n");
    let out = repo.sync_worktree(&wt.path, "main").await.unwrap();
    let snap = out.snapshot.expect("snapshot taken");
    assert!(snap.starts_with("refs/cco/snapshots/w1/"));
    assert_eq!(fx.show(&snap, "dirty.txt"), "uncommitted\n");
    assert_eq!(
        fx.show(&snap, "unmerged.txt"),
        "committed but never merged\n"
    );
    assert_eq!(out.head, repo.head("main").await.unwrap());
    assert!(!wt.path.join("dirty.txt").exists());
}

#[tokio::test]
async fn checked_out_target_stays_consistent_after_merge() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    // Someone has `main` checked out in a worktree of the clone.
    let main_wt = fx.tmp.path().join("main-checkout");
    cco_testkit::git(
        &fx.repo_dir(),
        &["worktree", "add", "-q", &main_wt.to_string_lossy(), "main"],
    );
    let wt = repo.create_worktree("flat", "w1", "main").await.unwrap();
    write(&wt.path, "landed.txt", "landed\n");
    repo.commit_all(&wt.path, "landed").await.unwrap();
    let out = repo
        .merge(&MergeRequest::new(&wt.branch, "main", MergeStrategy::Agent))
        .await
        .unwrap();
    assert!(matches!(out, MergeOutcome::Merged { .. }), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(main_wt.join("landed.txt")).unwrap(),
        "landed\n"
    );
    assert_eq!(cco_testkit::git(&main_wt, &["status", "--porcelain"]), "");
}

/// A merge redone (a restart that did not record the first one) is `UpToDate` with the commit
/// that really merged the work, not the target's tip: other merges may have landed since.
#[tokio::test]
async fn a_merge_redone_later_names_the_commit_that_merged_the_work() {
    let fx = Fx::new();
    let (h, join) = GitHandle::spawn(fx.config()).await.unwrap();
    h.setup().await.unwrap();
    let mut merges = Vec::new();
    let mut branches = Vec::new();
    for id in ["w1", "w2"] {
        let wt = h.create_worktree("flat", id, "main").await.unwrap();
        write(&wt.path, &format!("{id}.txt"), "x\n");
        h.commit_all(&wt.path, id).await.unwrap();
        let out = h
            .merge(MergeRequest::new(&wt.branch, "main", MergeStrategy::Agent))
            .await
            .unwrap();
        let MergeOutcome::Merged { commit, .. } = out else {
            panic!("{out:?}");
        };
        merges.push(commit);
        branches.push(wt.branch);
    }
    let again = h
        .merge(MergeRequest::new(
            &branches[0],
            "main",
            MergeStrategy::Agent,
        ))
        .await
        .unwrap();
    assert_eq!(
        again,
        MergeOutcome::UpToDate {
            commit: merges[0].clone()
        }
    );
    assert_eq!(
        h.merged_by("main", &branches[1]).await.unwrap(),
        Some(merges[1].clone())
    );
    // Not merged: nothing.
    let wt = h.create_worktree("flat", "w3", "main").await.unwrap();
    write(&wt.path, "w3.txt", "x\n");
    h.commit_all(&wt.path, "w3").await.unwrap();
    assert_eq!(h.merged_by("main", &wt.branch).await.unwrap(), None);
    // A conflict resolution is shown against both parents of its merge.
    let res = h.resolution_diff("main", &branches[0]).await.unwrap();
    assert_eq!(res, None, "no merge commit of its own");
    h.stop().await.unwrap();
    join.await.unwrap();
}
