//! Shared refs only move onto checked commits: expected tips, content checks at capture and
//! merge (paths, symlinks, submodules, conflict markers, secrets), long names, stale locks,
//! environmental failures.
mod common;

use std::time::Duration;

use cco_git::*;
use cco_testkit::git;
use common::*;

/// A commit on top of `main` made in the clone behind cco's back.
fn foreign_commit(fx: &Fx) -> String {
    let r = fx.repo_dir();
    let tree = git(&r, &["rev-parse", "main^{tree}"]);
    let out = std::process::Command::new("git")
        .args(["commit-tree", tree.trim(), "-p", "main", "-m", "foreign"])
        .current_dir(&r)
        .env("GIT_AUTHOR_NAME", "x")
        .env("GIT_AUTHOR_EMAIL", "x@x")
        .env("GIT_COMMITTER_NAME", "x")
        .env("GIT_COMMITTER_EMAIL", "x@x")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn a_shared_branch_moved_behind_ccos_back_is_restored_and_its_commits_kept() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let main = repo.head("main").await.unwrap();
    assert_eq!(repo.expected_tips().get("main"), Some(&main));
    let team = repo.ensure_team_branch("alpha", None).await.unwrap();
    assert_eq!(repo.expected_tips().get(&team), Some(&main));

    let foreign = foreign_commit(&fx);
    git(&fx.repo_dir(), &["update-ref", "refs/heads/main", &foreign]);
    let wt = repo.create_worktree("flat", "w1", "main").await.unwrap();
    write(&wt.path, "a.txt", "a\n");
    let t1 = captured(&repo, &wt, "t1").await.unwrap();
    assert!(t1.moved);
    let err = merged(&repo, "t1").await.unwrap_err();
    let GitError::BranchMoved {
        branch,
        expected,
        found,
        commits,
        kept_in,
        restored,
    } = &err
    else {
        panic!("expected BranchMoved, got {err}");
    };
    assert_eq!(
        (branch.as_str(), expected, found),
        ("main", &main, &foreign)
    );
    assert_eq!(commits, &vec![foreign.clone()]);
    assert!(*restored && !err.is_integrity_failure());
    let kept = kept_in.clone().unwrap();
    assert!(kept.starts_with("refs/cco/foreign/main/"), "{kept}");
    assert_eq!(git(&fx.repo_dir(), &["rev-parse", &kept]).trim(), foreign);
    assert_eq!(repo.head("main").await.unwrap(), main, "restored");
    // The next merge goes on from the restored branch, and cco's writes are its new tips.
    let out = merged(&repo, "t1").await.unwrap();
    let MergeOutcome::Merged { commit, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(repo.expected_tips().get("main"), Some(&commit));

    // A resumed run restores the tips its journal kept and catches a move made meanwhile.
    let moved = foreign_commit(&fx);
    git(&fx.repo_dir(), &["update-ref", "refs/heads/main", &moved]);
    let again = GitRepo::new(fx.config()).unwrap();
    again.restore_expected_tips(repo.expected_tips());
    again.setup().await.unwrap();
    assert_eq!(again.expected_tips().get("main"), Some(&commit));
    // Never pushed: a branch cco did not write, or one moved behind its back.
    assert!(again.push("cco/nope").await.is_err());
    let err = again
        .merge(&MergeRequest::new(&team, "main", MergeStrategy::Fail))
        .await
        .unwrap_err();
    assert!(
        matches!(err, GitError::BranchMoved { restored: true, .. }),
        "{err}"
    );
    assert_eq!(again.head("main").await.unwrap(), commit);
}

#[tokio::test]
async fn capture_refuses_symlinks_out_of_the_repository_git_paths_and_local_submodules() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let main = repo.head("main").await.unwrap();

    let w1 = repo.create_worktree("flat", "w1", "main").await.unwrap();
    agent_ok(
        &w1.path,
        "ln -s /etc/passwd leak && ln -s ../../.. up && git add leak up && git commit -qm links",
    );
    match captured(&repo, &w1, "t1").await {
        Err(GitError::Refused(Refusal::Symlink { path, .. })) => {
            assert!(path == "leak" || path == "up", "{path}")
        }
        other => panic!("expected a symlink refusal, got {other:?}"),
    }
    // Nothing reached a ref; the agent keeps its work to fix it.
    assert_eq!(git(&fx.repo_dir(), &["for-each-ref", "refs/cco/tasks"]), "");
    assert!(w1.path.join("leak").exists());
    // A link inside the repository is fine.
    let w2 = repo.create_worktree("flat", "w2", "main").await.unwrap();
    agent_ok(
        &w2.path,
        "mkdir d && ln -s ../inside.txt d/link && git add d && git commit -qm ok",
    );
    assert!(captured(&repo, &w2, "t2").await.unwrap().moved);

    // A tree entry named `.GIT`, crafted with plumbing.
    let w3 = repo.create_worktree("flat", "w3", "main").await.unwrap();
    agent_ok(
        &w3.path,
        "b=$(echo x | git hash-object -w --stdin) && t=$(printf \"100644 blob $b\\t.GIT\\n\" | git mktree) \
         && git update-ref HEAD $(git commit-tree -m evil -p HEAD $t)",
    );
    let err = captured(&repo, &w3, "t3").await.unwrap_err();
    assert!(
        matches!(err, GitError::Refused(Refusal::GitPath { .. })),
        "{err}"
    );

    // A submodule pointing to a local path.
    let w4 = repo.create_worktree("flat", "w4", "main").await.unwrap();
    agent_ok(
        &w4.path,
        &format!(
            "printf '[submodule \"s\"]\\n\\tpath = s\\n\\turl = /srv/private.git\\n' > .gitmodules \
             && git add .gitmodules && git update-index --add --cacheinfo 160000,{main},s \
             && git commit -qm sub"
        ),
    );
    let err = captured(&repo, &w4, "t4").await.unwrap_err();
    assert!(
        matches!(err, GitError::Refused(Refusal::LocalSubmodule { .. })),
        "{err}"
    );
    // A relative URL resolves against the remote, here a local path: a local path too.
    let w5 = repo.create_worktree("flat", "w5", "main").await.unwrap();
    agent_ok(
        &w5.path,
        &format!(
            "printf '[submodule \"r\"]\\n\\tpath = r\\n\\turl = ../../private.git\\n' > .gitmodules \
             && git add .gitmodules && git update-index --add --cacheinfo 160000,{main},r \
             && git commit -qm sub"
        ),
    );
    let err = captured(&repo, &w5, "t5").await.unwrap_err();
    assert!(
        matches!(err, GitError::Refused(Refusal::LocalSubmodule { .. })),
        "{err}"
    );
    assert_eq!(repo.head("main").await.unwrap(), main);
}

#[tokio::test]
async fn committed_conflict_markers_never_reach_a_shared_branch() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let w1 = repo.create_worktree("flat", "w1", "main").await.unwrap();
    let w2 = repo.create_worktree("flat", "w2", "main").await.unwrap();
    write(&w1.path, "shared.txt", &lines(&[(5, "five by w1")]));
    repo.commit_all(&w1.path, "w1").await.unwrap();
    repo.merge(&MergeRequest::new(&w1.branch, "main", MergeStrategy::Fail))
        .await
        .unwrap();
    write(&w2.path, "shared.txt", &lines(&[(5, "five by w2")]));
    repo.commit_all(&w2.path, "w2").await.unwrap();
    let conflicted = repo.merge_into_worktree(&w2.path, "main").await.unwrap();
    assert!(matches!(conflicted, WorktreeMerge::Conflicted { .. }));
    // A careless "resolution": everything added and committed, markers and all.
    agent_ok(&w2.path, "git add -A && git commit -q --no-edit");
    let err = repo.conclude_worktree_merge(&w2.path).await.unwrap_err();
    let GitError::ConflictMarkers { markers, .. } = &err else {
        panic!("expected ConflictMarkers, got {err}");
    };
    assert_eq!(
        markers.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["shared.txt:5", "shared.txt:7", "shared.txt:9"],
        "{err}"
    );
    // The same session fixes it on top: concluded.
    write(&w2.path, "shared.txt", &lines(&[(5, "five by both")]));
    agent_ok(&w2.path, "git commit -qam fixed");
    repo.conclude_worktree_merge(&w2.path).await.unwrap();

    // Independently of conflict turns: a branch adding a complete marker block is refused
    // at capture and at merge, and the target does not move.
    let w3 = repo.create_worktree("flat", "w3", "main").await.unwrap();
    write(
        &w3.path,
        "notes.txt",
        "<<<<<<< HEAD\nmine\n=======\ntheirs\n>>>>>>> abc\n",
    );
    repo.commit_all(&w3.path, "markers").await.unwrap();
    let before = repo.head("main").await.unwrap();
    let err = repo
        .merge(&MergeRequest::new(&w3.branch, "main", MergeStrategy::Fail))
        .await
        .unwrap_err();
    match &err {
        GitError::Refused(Refusal::ConflictMarkers { at }) => {
            assert_eq!(at, &vec![FileLine::new("notes.txt", 1)])
        }
        other => panic!("expected a marker refusal, got {other}"),
    }
    assert!(err.to_string().contains("notes.txt:1"), "{err}");
    assert_eq!(repo.head("main").await.unwrap(), before);
    assert!(matches!(
        captured(&repo, &w3, "t3").await,
        Err(GitError::Refused(Refusal::ConflictMarkers { .. }))
    ));
}

#[tokio::test]
async fn the_longest_legal_ids_and_team_names_work_in_both_modes() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let id = "t".repeat(64);
    let team = format!("team-{}", "x".repeat(59));
    assert_eq!(team.len(), 64);
    let run = "run-20261201-014445";
    for (team, target) in [
        ("flat".to_string(), "main".to_string()),
        (
            team.clone(),
            repo.ensure_team_branch(&team, None).await.unwrap(),
        ),
    ] {
        let worker = format!("{team}-worker-12");
        let wt = repo.create_worktree(&team, &worker, &target).await.unwrap();
        assert!(wt.branch.len() <= 4 + 64 + 1 + 64, "{}", wt.branch);
        // Deduplicated keys (`<id>-2`) are longer than 64: they still fit.
        for task in [id.clone(), format!("{id}-2")] {
            let tref = task_ref(run, &team, &task);
            write(&wt.path, &format!("{}.txt", &task[60..]), "x\n");
            let out = repo
                .capture_task(&wt.path, "long", &tref, &target)
                .await
                .unwrap();
            assert!(out.moved, "{tref}");
            assert_eq!(
                repo.diff_summary(&target, &tref)
                    .await
                    .unwrap()
                    .commits
                    .len(),
                1
            );
            let merged = repo
                .merge(&MergeRequest::new(&tref, &target, MergeStrategy::Fail))
                .await
                .unwrap();
            assert!(matches!(merged, MergeOutcome::Merged { .. }), "{merged:?}");
        }
    }
    assert_ne!(
        task_ref(run, "flat", &format!("{id}-2")),
        task_ref(run, "flat", &format!("{id}-3")),
        "hash suffixes keep long names distinct"
    );
}

#[tokio::test]
async fn stale_locks_in_ccos_repositories_are_removed() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let wt = repo.create_worktree("flat", "w1", "main").await.unwrap();
    let locks = [
        fx.repo_dir().join(".git/index.lock"),
        fx.repo_dir().join(".git/refs/heads/main.lock"),
        wt.path.join(".git/index.lock"),
        wt.path.join(".git/HEAD.lock"),
    ];
    for l in &locks {
        std::fs::write(l, "").unwrap();
    }
    // Compared by canonical directory (the workspace may sit behind a symlink).
    let canonical = |paths: &[std::path::PathBuf]| {
        let mut v: Vec<_> = paths
            .iter()
            .map(|l| {
                std::fs::canonicalize(l.parent().unwrap())
                    .unwrap()
                    .join(l.file_name().unwrap())
            })
            .collect();
        v.sort();
        v
    };
    let removed = repo.remove_stale_locks();
    assert_eq!(canonical(&removed), canonical(&locks));
    assert!(locks.iter().all(|l| !l.exists()));
    write(&wt.path, "a.txt", "a\n");
    assert!(repo.commit_all(&wt.path, "a").await.unwrap().is_some());
}

#[tokio::test]
async fn environmental_failures_are_typed() {
    let fx = Fx::new();
    let mut cfg = fx.config();
    cfg.git_program = fx.tmp.path().join("no-such-git");
    cfg.git_timeout = Duration::from_secs(5);
    let err = GitRepo::new(cfg).unwrap().setup().await.unwrap_err();
    assert_eq!(err.environment(), Some(EnvFailure::GitMissing), "{err}");
    for (errno, kind) in [
        (nix::errno::Errno::ENOSPC, EnvFailure::DiskFull),
        (nix::errno::Errno::EROFS, EnvFailure::ReadOnly),
        (nix::errno::Errno::EDQUOT, EnvFailure::QuotaExceeded),
    ] {
        let io = std::io::Error::from_raw_os_error(errno as i32);
        assert_eq!(EnvFailure::from_io(&io), Some(kind));
    }
    assert_eq!(
        EnvFailure::from_io(&std::io::Error::from_raw_os_error(
            nix::errno::Errno::EACCES as i32
        )),
        None
    );
}

#[tokio::test]
async fn a_task_result_is_copied_whole_as_loose_objects_or_as_a_pack_and_an_incomplete_one_never() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    // A few objects (unpacked loose) and many (kept as a pack, as a fetch would).
    for (id, files) in [("small", 3), ("large", 150)] {
        let wt = repo.create_worktree("flat", id, "main").await.unwrap();
        agent_ok(
            &wt.path,
            &format!(
                "mkdir -p gen && for i in $(seq 1 {files}); do echo \"{id} $i\" > gen/{id}-$i.txt; done \
                 && git add gen && git commit -qm {id}"
            ),
        );
        let out = captured(&repo, &wt, id).await.unwrap();
        assert!(out.moved, "{out:?}");
        let tref = task_ref("run", "flat", id);
        let listed = git(
            &fx.repo_dir(),
            &["ls-tree", "-r", "--name-only", &tref, "gen"],
        );
        assert_eq!(
            listed.lines().count(),
            files,
            "{id}: every file reached cco's clone"
        );
        // Every object is in cco's own store (not only through the agent's).
        let fsck = std::process::Command::new("git")
            .args(["fsck", "--connectivity-only", "--no-dangling"])
            .current_dir(fx.repo_dir())
            .output()
            .unwrap();
        assert!(fsck.status.success(), "{fsck:?}");
        // No pack file is left behind in cco's git dir.
        let left: Vec<_> = std::fs::read_dir(fx.repo_dir().join(".git"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("cco-incoming-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
    // A commit whose tree the agent's store lacks (deleted behind git's back): refused, and
    // no task ref is written.
    let wt = repo
        .create_worktree("flat", "broken", "main")
        .await
        .unwrap();
    agent_ok(
        &wt.path,
        "echo broken > broken.txt && git add broken.txt && git commit -qm broken \
         && rm -f .git/objects/$(git rev-parse HEAD:broken.txt | cut -c1-2)/$(git rev-parse HEAD:broken.txt | cut -c3-)",
    );
    assert!(captured(&repo, &wt, "broken").await.is_err());
    assert_eq!(
        git(
            &fx.repo_dir(),
            &["for-each-ref", "refs/cco/tasks/run/flat/broken"]
        ),
        ""
    );
}

/// What an agent's commits make git print is read up to a limit: a change whose patch is
/// larger (a data set, build outputs) is refused back to the agent, quickly, instead of
/// read into cco's memory; the git process printing it is stopped.
#[tokio::test]
async fn a_change_too_large_to_check_is_refused_without_reading_it_all() {
    let fx = Fx::new();
    let mut cfg = fx.config();
    cfg.max_check_bytes = 64 * 1024;
    let repo = fx.repo(cfg).await;
    let main = repo.head("main").await.unwrap();

    let w1 = repo.create_worktree("flat", "w1", "main").await.unwrap();
    // 4 MiB of text lines: a patch 64 times the limit.
    agent_ok(
        &w1.path,
        "seq 1 600000 > data.txt && git add data.txt && git commit -qm data",
    );
    // (Were git left blocked on a full pipe, this would be the git timeout's error.)
    let err = captured(&repo, &w1, "t1").await.unwrap_err();
    assert!(
        matches!(err, GitError::Refused(Refusal::TooLarge { limit: 65536 })),
        "{err}"
    );
    assert!(err.to_string().contains("too large to check"), "{err}");
    assert!(err.to_string().contains(".gitignore"), "{err}");
    assert_eq!(git(&fx.repo_dir(), &["for-each-ref", "refs/cco/tasks"]), "");
    assert_eq!(repo.head("main").await.unwrap(), main);

    // A change under the limit passes.
    let w2 = repo.create_worktree("flat", "w2", "main").await.unwrap();
    agent_ok(
        &w2.path,
        "seq 1 1000 > small.txt && git add small.txt && git commit -qm small",
    );
    assert!(captured(&repo, &w2, "t2").await.unwrap().moved);
}

/// The content checks read an agent's bytes: lines that look almost like conflict markers,
/// with a multi-byte character where a marker's seventh character would be, are captured
/// like any text (the check once sliced such a line in the middle of a character and
/// panicked).
#[tokio::test]
async fn lines_almost_like_markers_with_multibyte_characters_are_captured() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let w1 = repo.create_worktree("flat", "w1", "main").await.unwrap();
    write(&w1.path, "arrows.txt", "<<<<<<é\n======é\n>>>>>>😀 x\n");
    agent_ok(&w1.path, "git add arrows.txt && git commit -qm arrows");
    let out = captured(&repo, &w1, "t1").await.unwrap();
    assert!(out.moved);
    let merged = merged(&repo, "t1").await.unwrap();
    assert!(matches!(merged, MergeOutcome::Merged { .. }), "{merged:?}");
}

/// Symlinks are followed through each other: `l -> .` and `m -> l/..` are each fine read
/// alone, and together `m` names the repository's parent. A link the project had that leads
/// outside stays its own business; one added through it is refused.
#[tokio::test]
async fn symlinks_that_leave_the_repository_through_other_symlinks_are_refused() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let w1 = repo.create_worktree("flat", "w1", "main").await.unwrap();
    agent_ok(
        &w1.path,
        "ln -s . l && ln -s l/.. m && git add l m && git commit -qm links",
    );
    match captured(&repo, &w1, "t1").await {
        Err(GitError::Refused(Refusal::Symlink { path, reason })) => {
            assert_eq!(path, "m");
            assert!(reason.contains("outside the repository"), "{reason}");
        }
        other => panic!("expected a symlink refusal, got {other:?}"),
    }
    // The project's own link out (a monorepo's `vendor -> ../common`) does not block work
    // that does not go through it; a new link through it is refused.
    let fx = Fx::new();
    std::os::unix::fs::symlink("../common", fx.src.join("vendor")).unwrap();
    git(&fx.src, &["add", "vendor"]);
    git(&fx.src, &["commit", "-q", "-m", "the project has it"]);
    let repo = fx.repo(fx.config()).await;
    let w3 = repo.create_worktree("flat", "w3", "main").await.unwrap();
    agent_ok(
        &w3.path,
        "mkdir docs && ln -s ../README.md docs/readme && git add docs && git commit -qm docs",
    );
    assert!(captured(&repo, &w3, "t3").await.unwrap().moved);
    let w4 = repo.create_worktree("flat", "w4", "main").await.unwrap();
    agent_ok(
        &w4.path,
        "ln -s vendor/secrets s && git add s && git commit -qm through",
    );
    match captured(&repo, &w4, "t4").await {
        Err(GitError::Refused(Refusal::Symlink { path, .. })) => assert_eq!(path, "s"),
        other => panic!("expected a symlink refusal, got {other:?}"),
    }
}
