//! The cheap paths of the hot ops give the same results as the general ones: in-memory merges
//! (`merge-tree` + `commit-tree`) vs the integration worktree, `commit_all` with nothing to
//! commit, the one-process `diff_summary`.
mod common;

use std::os::unix::fs::PermissionsExt;

use cco_git::*;
use cco_testkit::git;
use common::*;

/// What a merge sequence produced, without the (timestamp-dependent) commit ids.
#[derive(Debug, PartialEq)]
struct Landed {
    outcomes: Vec<String>,
    /// `<tree> <number of parents>` + full message of every commit on main (sorted).
    history: Vec<String>,
    /// Trees along main's first-parent chain, newest first.
    first_parents: String,
    main_tree: String,
}

fn shape(out: &Result<MergeOutcome, GitError>) -> String {
    match out {
        Ok(MergeOutcome::Merged { pushed, .. }) => format!("merged {pushed:?}"),
        Ok(MergeOutcome::UpToDate { .. }) => "up to date".into(),
        Ok(other) => format!("{other:?}"),
        Err(GitError::MergeConflict { files, .. }) => format!("MergeConflict {files:?}"),
        Err(e) => format!("error {e}"),
    }
}

/// Commit ids quoted in messages (`merge.log`) differ between runs.
fn mask_ids(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        out.push_str(if run.len() == 40 { "<id>" } else { &run });
        run.clear();
        out.push(c);
    }
    out.pop();
    out
}

fn landed(fx: &Fx, outcomes: Vec<String>) -> Landed {
    let log = git(&fx.repo_dir(), &["log", "--format=%T %P%n%B%x00", "main"]);
    let mut history: Vec<String> = log
        .split('\0')
        .map(|c| {
            let c = c.trim_start_matches('\n');
            let (head, body) = c.split_once('\n').unwrap_or((c, ""));
            let mut parts = head.split(' ');
            let tree = parts.next().unwrap_or("").to_string();
            format!("{tree} {}\n{}", parts.count(), mask_ids(body))
        })
        .collect();
    // Commits made in the same second have no defined log order.
    history.sort();
    Landed {
        outcomes,
        history,
        first_parents: git(
            &fx.repo_dir(),
            &["log", "--first-parent", "--format=%T", "main"],
        ),
        main_tree: git(&fx.repo_dir(), &["rev-parse", "main^{tree}"]),
    }
}

/// w1 lands a clean change (line 2 + a file), w2 was branched before and conflicts with w1
/// on line 5 (plus clean changes), w3 is a fast-forward-able branch off the new main, w4 is
/// merged twice (up to date the second time). Every merge uses `strategy`, `message`.
async fn scenario(
    in_memory: bool,
    strategy: MergeStrategy,
    message: Option<&str>,
    clone_config: &[(&str, &str)],
) -> (Fx, Landed, bool) {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    repo.set_in_memory_merges(in_memory);
    for (k, v) in clone_config {
        git(&fx.repo_dir(), &["config", k, v]);
    }
    let mut outcomes = Vec::new();
    let merge = |branch: String| {
        let mut req = MergeRequest::new(branch, "main", strategy);
        req.message = message.map(str::to_string);
        req
    };
    let w1 = repo.create_worktree("flat", "w1", "main").await.unwrap();
    let w2 = repo.create_worktree("flat", "w2", "main").await.unwrap();
    write(
        &w1.path,
        "shared.txt",
        &lines(&[(2, "two by w1"), (5, "five by w1")]),
    );
    write(&w1.path, "dir/w1.txt", "w1\n");
    repo.commit_all(&w1.path, "w1 work").await.unwrap().unwrap();
    write(
        &w2.path,
        "shared.txt",
        &lines(&[(5, "five by w2"), (9, "nine by w2")]),
    );
    write(&w2.path, "w2.txt", "w2\n");
    repo.commit_all(&w2.path, "w2 work").await.unwrap().unwrap();
    outcomes.push(shape(&repo.merge(&merge(w1.branch.clone())).await));
    outcomes.push(shape(&repo.merge(&merge(w2.branch.clone())).await));
    let w3 = repo.create_worktree("flat", "w3", "main").await.unwrap();
    write(&w3.path, "dir/w3.txt", "w3\n");
    repo.commit_all(&w3.path, "w3 work").await.unwrap().unwrap();
    outcomes.push(shape(&repo.merge(&merge(w3.branch.clone())).await));
    outcomes.push(shape(&repo.merge(&merge(w3.branch.clone())).await));
    let integration_used = fx.ws.join("integration").exists();
    let l = landed(&fx, outcomes);
    (fx, l, integration_used)
}

async fn same_as_worktree_merges(
    strategy: MergeStrategy,
    message: Option<&str>,
    clone_config: &[(&str, &str)],
) -> Landed {
    let (_fx_a, fast, _) = scenario(true, strategy, message, clone_config).await;
    let (_fx_b, slow, used) = scenario(false, strategy, message, clone_config).await;
    assert!(used, "the reference run used the integration worktree");
    assert_eq!(
        fast, slow,
        "in-memory merges differ from git merge ({strategy:?})"
    );
    fast
}

#[tokio::test]
async fn in_memory_merges_match_git_merge_for_every_strategy() {
    for strategy in [
        MergeStrategy::Agent,
        MergeStrategy::Ours,
        MergeStrategy::Theirs,
        MergeStrategy::Union,
        MergeStrategy::Skip,
        MergeStrategy::Fail,
    ] {
        let l = same_as_worktree_merges(strategy, None, &[]).await;
        assert_eq!(l.outcomes[0], "merged NotPushed");
        assert_eq!(
            l.outcomes[2], "merged NotPushed",
            "fast-forward-able: still --no-ff"
        );
        assert_eq!(l.outcomes[3], "up to date");
        let conflict = match strategy {
            MergeStrategy::Agent => "Conflict { files: [\"shared.txt\"] }",
            MergeStrategy::Skip => "Skipped { files: [\"shared.txt\"] }",
            MergeStrategy::Fail => "MergeConflict [\"shared.txt\"]",
            _ => "merged NotPushed",
        };
        assert_eq!(l.outcomes[1], conflict, "{strategy:?}");
        // Every landed merge is a two-parent commit.
        let merges = l.history.iter().filter(|h| h.contains(" 2\n")).count();
        let landed = l
            .outcomes
            .iter()
            .filter(|o| o.starts_with("merged"))
            .count();
        assert_eq!(merges, landed, "{strategy:?}: {:?}", l.history);
    }
}

#[tokio::test]
async fn in_memory_merge_messages_get_git_merges_cleanup() {
    let l = same_as_worktree_merges(
        MergeStrategy::Theirs,
        Some("\n\n  Merge t1:  spaces kept  \t\n\n\n\nbody # not a comment   \n\n\n"),
        &[],
    )
    .await;
    let merges: Vec<&String> = l.history.iter().filter(|h| h.contains(" 2\n")).collect();
    assert_eq!(merges.len(), 3);
    for m in merges {
        assert!(
            m.ends_with(" 2\n  Merge t1:  spaces kept\n\nbody # not a comment\n"),
            "{m:?}"
        );
    }
}

#[tokio::test]
async fn configuration_that_changes_git_merge_is_honoured() {
    // merge.log appends a shortlog `commit-tree` would not write: such runs merge in the
    // integration worktree, with the same result.
    let l = same_as_worktree_merges(MergeStrategy::Ours, None, &[("merge.log", "true")]).await;
    assert!(
        l.history
            .iter()
            .any(|h| h.contains(" 2\n") && h.contains("w3 work")),
        "{:?}",
        l.history
    );
}

#[tokio::test]
async fn clean_merges_without_verify_need_no_checkout() {
    let (fx, _, used) = scenario(true, MergeStrategy::Theirs, None, &[]).await;
    assert!(!used, "no integration worktree for clean unverified merges");
    assert_eq!(
        fx.show("main", "shared.txt"),
        lines(&[(2, "two by w1"), (5, "five by w2"), (9, "nine by w2")])
    );
    // A conflict (strategy agent) falls back to the integration worktree.
    let (_fx, _, used) = scenario(true, MergeStrategy::Agent, None, &[]).await;
    assert!(used);
}

/// Hooks in cco's clone never run in cco's git (issue: agents wrote hooks that ran inside
/// cco's merges): neither in memory nor in the integration worktree.
#[tokio::test]
async fn hooks_in_the_clone_never_run_in_ccos_merges() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let ran = fx.tmp.path().join("hook ran");
    for hook in [
        "pre-merge-commit",
        "post-merge",
        "reference-transaction",
        "commit-msg",
    ] {
        let p = fx.repo_dir().join(".git/hooks").join(hook);
        write(
            &fx.repo_dir(),
            &format!(".git/hooks/{hook}"),
            &format!("#!/bin/sh\necho {hook} >> '{}'\nexit 1\n", ran.display()),
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for in_memory in [true, false] {
        repo.set_in_memory_merges(in_memory);
        let id = format!("w{in_memory}");
        let wt = repo.create_worktree("flat", &id, "main").await.unwrap();
        write(&wt.path, &format!("{id}.txt"), "a\n");
        repo.commit_all(&wt.path, "a").await.unwrap().unwrap();
        let req = MergeRequest::new(&wt.branch, "main", MergeStrategy::Theirs);
        assert!(
            matches!(repo.merge(&req).await.unwrap(), MergeOutcome::Merged { .. }),
            "in memory: {in_memory}"
        );
        assert!(fx.has_file("main", &format!("{id}.txt")));
    }
    assert!(
        !ran.exists(),
        "a hook ran: {:?}",
        std::fs::read_to_string(&ran)
    );
}

#[tokio::test]
async fn in_memory_merges_refuse_secrets_and_respect_the_verify_gate() {
    let fx = Fx::new();
    let mut cfg = fx.config();
    cfg.verify_command = Some("test ! -f bad.txt".into());
    let repo = fx.repo(cfg).await;
    let wt = repo.create_worktree("flat", "w1", "main").await.unwrap();
    write(&wt.path, ".env.production", "KEY=1\n");
    git(&wt.path, &["add", "-f", ".env.production"]);
    git(&wt.path, &["commit", "-q", "-m", "oops"]);
    let mut req = MergeRequest::new(&wt.branch, "main", MergeStrategy::Theirs);
    req.verify = false;
    match repo.merge(&req).await {
        Err(GitError::SecretFile { path, .. }) => assert_eq!(path, ".env.production"),
        other => panic!("expected SecretFile, got {other:?}"),
    }
    assert!(!fx.has_file("main", ".env.production"));

    let bad = repo.create_worktree("flat", "w2", "main").await.unwrap();
    write(&bad.path, "bad.txt", "x\n");
    repo.commit_all(&bad.path, "bad").await.unwrap().unwrap();
    let before = repo.head("main").await.unwrap();
    let out = repo
        .merge(&MergeRequest::new(
            &bad.branch,
            "main",
            MergeStrategy::Agent,
        ))
        .await
        .unwrap();
    assert!(matches!(out, MergeOutcome::VerifyFailed { .. }), "{out:?}");
    assert_eq!(repo.head("main").await.unwrap(), before);
    // Unverified: in memory, and the target moves with compare-and-swap.
    let mut req = MergeRequest::new(&bad.branch, "main", MergeStrategy::Agent);
    req.verify = false;
    match repo.merge(&req).await.unwrap() {
        MergeOutcome::Merged {
            commit, previous, ..
        } => {
            assert_eq!(previous, before);
            assert_eq!(repo.head("main").await.unwrap(), commit);
            let parents = git(&fx.repo_dir(), &["rev-list", "--parents", "-n1", &commit]);
            assert_eq!(parents.split_whitespace().count(), 3);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn commit_all_with_nothing_to_commit_and_with_a_pending_merge() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let wt = repo.create_worktree("flat", "w1", "main").await.unwrap();
    assert_eq!(repo.commit_all(&wt.path, "nothing").await.unwrap(), None);
    // Ignored (secret) files alone are nothing to commit either.
    write(&wt.path, ".env", "A=1\n");
    assert_eq!(repo.commit_all(&wt.path, "nothing").await.unwrap(), None);
    // Untracked in a new directory: committed.
    write(&wt.path, "new/dir/file.txt", "x\n");
    let c = repo
        .commit_all(&wt.path, "untracked")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(git(&wt.path, &["rev-parse", "HEAD"]).trim(), c);
    // A merge whose result equals HEAD: nothing shows in status, but the merge is committed.
    let other = repo.create_worktree("flat", "w2", "main").await.unwrap();
    write(&other.path, "o.txt", "o\n");
    let other_commit = repo
        .commit_all(&other.path, "other")
        .await
        .unwrap()
        .unwrap();
    // Agents' repositories are separate: w1 sees w2's commit through cco's object store.
    git(
        &wt.path,
        &["merge", "-q", "-s", "ours", "--no-commit", &other_commit],
    );
    assert_eq!(git(&wt.path, &["status", "--porcelain"]), "");
    let m = repo.commit_all(&wt.path, "merge").await.unwrap().unwrap();
    let parents = git(&wt.path, &["rev-list", "--parents", "-n1", &m]);
    assert_eq!(parents.split_whitespace().count(), 3, "{parents}");
}

#[tokio::test]
async fn diff_summary_matches_separate_git_diffs() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let wt = repo.create_worktree("flat", "w1", "main").await.unwrap();
    write(&wt.path, "gone.txt", "a\nb\nc\nd\ne\nf\n");
    write(&wt.path, "bin.dat", "\0\u{1}bin");
    repo.commit_all(&wt.path, "setup").await.unwrap().unwrap();
    repo.merge(&MergeRequest::new(&wt.branch, "main", MergeStrategy::Agent))
        .await
        .unwrap();
    git(&wt.path, &["mv", "gone.txt", "ren é.txt"]);
    write(&wt.path, "tab\tname", "x\ty\n");
    write(&wt.path, "bin.dat", "\0\u{1}bin2");
    write(&wt.path, "shared.txt", &lines(&[(3, "three"), (4, "four")]));
    std::fs::set_permissions(
        wt.path.join("shared.txt"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    repo.commit_all(&wt.path, "many kinds of change")
        .await
        .unwrap()
        .unwrap();
    let s = repo.diff_summary("main", &wt.branch).await.unwrap();
    let three = format!("main...{}", wt.branch);
    let r = fx.repo_dir();
    let names: Vec<String> = git(&r, &["diff", "--name-only", "-z", &three])
        .split('\0')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect();
    assert_eq!(s.files, names);
    assert_eq!(s.files.len(), 4, "{:?}", s.files);
    let (mut ins, mut del) = (0, 0);
    for l in git(&r, &["diff", "--numstat", &three]).lines() {
        let mut p = l.split('\t');
        ins += p.next().unwrap().parse::<u64>().unwrap_or(0);
        del += p.next().unwrap().parse::<u64>().unwrap_or(0);
    }
    assert_eq!((s.insertions, s.deletions), (ins, del));
    assert_eq!((s.insertions, s.deletions), (3, 2));
    assert_eq!(s.stat, git(&r, &["diff", "--stat", &three]));
    assert_eq!(s.commits.len(), 1);
    assert_eq!(s.commits[0].1, "many kinds of change");
    // Names used as they are (full refs) and names resolved first (a commit id, `main~0`)
    // give the same summary.
    let head = git(&r, &["rev-parse", &wt.branch]).trim().to_string();
    let full = format!("refs/heads/{}", wt.branch);
    for (base, tip) in [
        ("refs/heads/main", full.as_str()),
        ("main~0", head.as_str()),
    ] {
        assert_eq!(
            repo.diff_summary(base, tip).await.unwrap(),
            s,
            "{base}..{tip}"
        );
    }
    assert!(repo.diff_summary("main", "no-such-branch").await.is_err());
    // No changes at all.
    let empty = repo.diff_summary("main", "main").await.unwrap();
    assert_eq!(empty, DiffSummary::default());
}

#[tokio::test]
async fn sync_worktree_aborts_a_pending_merge_after_snapshotting() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let w1 = repo.create_worktree("flat", "w1", "main").await.unwrap();
    let w2 = repo.create_worktree("flat", "w2", "main").await.unwrap();
    write(&w1.path, "shared.txt", &lines(&[(1, "w1")]));
    repo.commit_all(&w1.path, "w1").await.unwrap().unwrap();
    write(&w2.path, "shared.txt", &lines(&[(1, "w2")]));
    repo.commit_all(&w2.path, "w2").await.unwrap().unwrap();
    repo.merge(&MergeRequest::new(&w1.branch, "main", MergeStrategy::Agent))
        .await
        .unwrap();
    assert!(matches!(
        repo.merge_into_worktree(&w2.path, "main").await.unwrap(),
        WorktreeMerge::Conflicted { .. }
    ));
    let out = repo.sync_worktree(&w2.path, "main").await.unwrap();
    assert!(out.snapshot.is_some());
    assert_eq!(out.head, repo.head("main").await.unwrap());
    assert_eq!(git(&w2.path, &["status", "--porcelain"]), "");
    let merge_head = git(&w2.path, &["rev-parse", "--git-path", "MERGE_HEAD"]);
    assert!(!w2.path.join(merge_head.trim()).exists(), "merge aborted");
    // Synced again with nothing new: no snapshot.
    assert_eq!(
        repo.sync_worktree(&w2.path, "main").await.unwrap().snapshot,
        None
    );
}
