//! Untrusted names/paths, killed git, stale locks, snapshots, secrets, clone/fetch/push, actor.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use cco_git::*;
use cco_testkit::{git, init_repo, process_group_alive, temp_dir, wait_until_async};
use common::*;

#[test]
fn invalid_agent_branch_names_are_replaced() {
    let long = "a".repeat(200);
    let table: &[(&str, bool)] = &[
        ("feature/login", false),
        ("fix-123", false),
        ("a.b", false),
        ("", true),
        ("..", true),
        ("a..b", true),
        ("-rf", true),
        (".hidden", true),
        ("a/.b", true),
        ("has space", true),
        ("tilde~1", true),
        ("caret^", true),
        ("colon:x", true),
        ("q?", true),
        ("star*", true),
        ("br[acket", true),
        ("back\\slash", true),
        ("ctl\u{7}", true),
        ("new\nline", true),
        ("at@{1}", true),
        ("@", true),
        ("x.lock", true),
        ("a/b.lock/c", true),
        ("trailing/", true),
        ("trailing.", true),
        ("/leading", true),
        ("double//slash", true),
        ("ünï", true),
        (long.as_str(), true),
    ];
    for (input, replaced) in table {
        let s = sanitize_branch_component(input);
        assert_eq!(s.replaced, *replaced, "{input:?} -> {s:?}");
        assert_eq!(s.reason.is_some(), *replaced, "{input:?}");
        assert!(
            branch_name_problem(&s.name).is_none(),
            "{input:?} gave invalid {:?}",
            s.name
        );
        if !replaced {
            assert_eq!(&s.name, input);
        }
        // The replacement is accepted by git itself.
        let ok = std::process::Command::new("git")
            .args(["check-ref-format", "--branch", &s.name])
            .output()
            .unwrap();
        assert!(ok.status.success(), "git rejects {:?}", s.name);
    }
    assert_eq!(
        sanitize_branch_component("Fix the Login!").name,
        "fix-the-login"
    );
    assert_eq!(worker_branch("my team", "w/1"), "cco/my-team/w-1");
    assert_eq!(worker_branch("t", "team"), "cco/t/team-worker");
}

#[test]
fn relative_paths_cannot_escape() {
    assert_eq!(
        validate_relative_path("src/main.rs").unwrap(),
        std::path::PathBuf::from("src/main.rs")
    );
    assert_eq!(
        validate_relative_path("./a/../b").unwrap(),
        std::path::PathBuf::from("b")
    );
    for bad in [
        "",
        "/etc/passwd",
        "..",
        "../x",
        "a/../../x",
        ".git/config",
        "a/.git/hooks",
        "A/.GIT",
        ".",
        "a\0b",
    ] {
        let err = validate_relative_path(bad).unwrap_err();
        assert!(matches!(err, GitError::InvalidPath { .. }), "{bad:?}");
    }
}

/// A `git` that hangs in `git commit` (with a child process, as a hook would) while `hang`
/// exists, and is the real git otherwise. cco's git runs no hooks, so the hang is the
/// program's own.
fn hanging_git(fx: &Fx, hang: &std::path::Path, pgid_file: &std::path::Path) -> std::path::PathBuf {
    let path = fx.tmp.path().join("slow-git");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nif [ -e '{}' ]; then for a in \"$@\"; do if [ \"$a\" = commit ]; then cut -d' ' -f5 /proc/$$/stat > '{}'; sleep 30 & wait; exit 1; fi; done; fi\nexec git \"$@\"\n",
            hang.display(),
            pgid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test]
async fn timed_out_git_is_killed_with_its_group_and_stale_lock_is_handled() {
    let fx = Fx::new();
    let pgid_file = fx.tmp.path().join("git.pgid");
    let hang = fx.tmp.path().join("hang");
    let mut cfg = fx.config();
    cfg.git_timeout = Duration::from_millis(1500);
    cfg.stale_lock_age = Duration::ZERO;
    cfg.git_program = hanging_git(&fx, &hang, &pgid_file);
    let repo = fx.repo(cfg).await;
    let wt = repo.create_worktree("flat", "w1", "main").await.unwrap();
    std::fs::write(&hang, "").unwrap();

    write(&wt.path, "a.txt", "a\n");
    let err = repo.commit_all(&wt.path, "hangs").await.unwrap_err();
    assert!(matches!(err, GitError::Timeout { .. }), "{err}");
    let pgid: u32 = std::fs::read_to_string(&pgid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(
        pgid as i32,
        nix::unistd::getpgrp().as_raw(),
        "git ran in its own group"
    );
    wait_until_async(
        Duration::from_secs(5),
        "git's process group gone",
        || async { !process_group_alive(pgid) },
    )
    .await;
    let git_dir = git(&wt.path, &["rev-parse", "--absolute-git-dir"]);
    let lock = std::path::Path::new(git_dir.trim()).join("index.lock");
    // Leave a lock as a killed `git add` would.
    if !lock.exists() {
        std::fs::write(&lock, "").unwrap();
    }

    std::fs::remove_file(&hang).unwrap();
    let c = repo.commit_all(&wt.path, "works again").await.unwrap();
    assert!(c.is_some());
    assert!(!lock.exists());
    assert_eq!(
        git(&wt.path, &["log", "-1", "--format=%s"]).trim(),
        "works again"
    );
}

#[tokio::test]
async fn young_lock_with_default_age_is_left_alone() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await; // stale_lock_age 5 s
    let wt = repo.create_worktree("flat", "w1", "main").await.unwrap();
    let git_dir = git(&wt.path, &["rev-parse", "--absolute-git-dir"]);
    let lock = std::path::Path::new(git_dir.trim()).join("index.lock");
    std::fs::write(&lock, "").unwrap();
    write(&wt.path, "a.txt", "a\n");
    assert!(repo.commit_all(&wt.path, "x").await.is_err());
    assert!(lock.exists());
    // Aged lock: removed and retried.
    let out = std::process::Command::new("touch")
        .args(["-d", "1 minute ago"])
        .arg(&lock)
        .status()
        .unwrap();
    assert!(out.success());
    assert!(repo.commit_all(&wt.path, "x").await.unwrap().is_some());
}

#[tokio::test]
async fn removing_a_dirty_worktree_snapshots_it_first() {
    let fx = Fx::new();
    let env_src = fx.tmp.path().join("local.env");
    std::fs::write(&env_src, "TOKEN=secret\n").unwrap();
    let mut cfg = fx.config();
    cfg.env_files = vec![EnvFile::from_source(&env_src, Some(fx.tmp.path()))];
    let repo = fx.repo(cfg).await;
    let wt = repo.create_worktree("flat", "w1", "main").await.unwrap();
    write(&wt.path, "shared.txt", "edited\n");
    write(&wt.path, "new/untracked.txt", "untracked\n");
    let out = repo.remove_worktree("w1", true).await.unwrap();
    assert!(!wt.path.exists());
    assert!(out.branch_deleted);
    let snap = out.snapshot.expect("snapshot");
    assert!(snap.starts_with("refs/cco/snapshots/w1/"), "{snap}");
    assert_eq!(fx.show(&snap, "shared.txt"), "edited\n");
    assert_eq!(fx.show(&snap, "new/untracked.txt"), "untracked\n");
    assert!(
        !fx.has_file(&snap, "local.env"),
        "env file kept out of the snapshot"
    );

    // A clean, merged worktree needs no snapshot.
    let wt2 = repo.create_worktree("flat", "w2", "main").await.unwrap();
    assert!(wt2.path.exists());
    assert_eq!(
        repo.remove_worktree("w2", true).await.unwrap().snapshot,
        None
    );
}

#[tokio::test]
async fn secrets_are_never_committed_or_merged() {
    let fx = Fx::new();
    let env_src = fx.tmp.path().join("conf/dev.secrets");
    write(fx.tmp.path(), "conf/dev.secrets", "KEY=1\n");
    let mut cfg = fx.config();
    cfg.env_files = vec![EnvFile::from_source(&env_src, Some(fx.tmp.path()))];
    let repo = fx.repo(cfg).await;
    let wt = repo.create_worktree("flat", "w1", "main").await.unwrap();
    let copied = wt.path.join("conf/dev.secrets");
    assert_eq!(std::fs::read_to_string(&copied).unwrap(), "KEY=1\n");
    assert_eq!(
        std::fs::metadata(&copied).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let exclude = std::fs::read_to_string(fx.repo_dir().join(".git/info/exclude")).unwrap();
    assert!(exclude.contains("/conf/dev.secrets"));

    write(&wt.path, ".env", "A=1\n");
    write(&wt.path, "sub/.env.local", "B=1\n");
    write(&wt.path, "api-keys.json", "{}\n");
    write(&wt.path, ".claude/settings.local.json", "{}\n");
    write(&wt.path, "code.rs", "fn main() {}\n");
    git(&wt.path, &["add", "-A", "-f"]);
    let c = repo.commit_all(&wt.path, "work").await.unwrap().unwrap();
    let files = git(&wt.path, &["ls-tree", "-r", "--name-only", &c]);
    assert!(files.lines().any(|l| l == "code.rs"));
    for secret in [
        "conf/dev.secrets",
        ".env",
        "sub/.env.local",
        "api-keys.json",
        ".claude/settings.local.json",
    ] {
        assert!(!files.lines().any(|l| l == secret), "{secret} committed");
        assert!(wt.path.join(secret).exists(), "{secret} deleted from disk");
    }

    // An agent that commits a secret itself cannot get it merged.
    git(&wt.path, &["add", "-f", "api-keys.json"]);
    git(&wt.path, &["commit", "-q", "-m", "oops"]);
    let err = repo
        .merge(&MergeRequest::new(&wt.branch, "main", MergeStrategy::Agent))
        .await
        .unwrap_err();
    match err {
        GitError::SecretFile { path, .. } => assert_eq!(path, "api-keys.json"),
        other => panic!("expected SecretFile, got {other}"),
    }
}

#[tokio::test]
async fn shallow_single_branch_clone_can_fetch_merge_and_push() {
    let tmp = temp_dir();
    let src = init_repo(&tmp.path().join("src"));
    write(&src, "two.txt", "2\n");
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-q", "-m", "second"]);
    // `feature` forks from the first commit, below the depth-1 boundary of main.
    git(&src, &["branch", "feature", "HEAD~1"]);
    git(&src, &["checkout", "-q", "feature"]);
    write(&src, "feature.txt", "f\n");
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-q", "-m", "feature work"]);
    git(&src, &["checkout", "-q", "main"]);
    let remote = bare_clone(&src, &tmp.path().join("remote.git"));

    let mut cfg = GitConfig::new(tmp.path().join("ws"), file_url(&remote));
    cfg.clone = CloneOptions {
        depth: Some(1),
        single_branch: true,
        no_submodules: true,
    };
    cfg.push = true;
    let repo = GitRepo::new(cfg).unwrap();
    let info = repo.setup().await.unwrap();
    assert_eq!(info.base_branch, "main");
    assert_eq!(info.push_remote.as_deref(), Some("origin"));
    let repo_dir = tmp.path().join("ws/repo");
    assert_eq!(
        git(&repo_dir, &["rev-parse", "--is-shallow-repository"]).trim(),
        "true"
    );
    assert!(
        git(&repo_dir, &["config", "--get-all", "remote.origin.fetch"]).contains("refs/heads/*")
    );

    repo.fetch("feature").await.unwrap();
    let out = repo
        .merge(&MergeRequest::new(
            "origin/feature",
            "main",
            MergeStrategy::Agent,
        ))
        .await
        .unwrap();
    let MergeOutcome::Merged { commit, pushed, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        pushed,
        PushStatus::Pushed {
            remote: "origin".into()
        }
    );
    assert_eq!(git(&remote, &["rev-parse", "main"]).trim(), commit);
    let files = git(&remote, &["ls-tree", "-r", "--name-only", "main"]);
    assert!(files.contains("feature.txt") && files.contains("two.txt"));

    // Resume: setup reuses the clone.
    let again = GitRepo::new(GitConfig::new(
        tmp.path().join("ws"),
        format!("file://{}", remote.display()),
    ))
    .unwrap();
    let info2 = again.setup().await.unwrap();
    assert!(info2.reused);
    assert_eq!(info2.base_branch, "main");
}

#[tokio::test]
async fn run_branch_and_local_repo_without_remote() {
    let fx = Fx::new();
    let mut cfg = fx.config();
    cfg.use_run_branch = true;
    cfg.push = true;
    let repo = fx.repo(cfg).await;
    let info = repo.info().unwrap();
    let run = info.run_branch.clone().unwrap();
    assert!(run.starts_with("cco/run-"));
    assert_eq!(info.base_branch, run);
    assert_eq!(info.push_remote, None);
    let wt = repo.create_worktree("flat", "w1", &run).await.unwrap();
    write(&wt.path, "x.txt", "x\n");
    repo.commit_all(&wt.path, "x").await.unwrap();
    let out = repo
        .merge(&MergeRequest::new(&wt.branch, &run, MergeStrategy::Agent))
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
    assert_ne!(
        repo.head(&run).await.unwrap(),
        repo.head("main").await.unwrap()
    );
    // The clone keeps a detached HEAD: no branch is checked out in <workspace>/repo.
    assert!(
        std::process::Command::new("git")
            .args(["symbolic-ref", "-q", "HEAD"])
            .current_dir(fx.repo_dir())
            .status()
            .unwrap()
            .code()
            == Some(1)
    );
}

#[tokio::test]
async fn actor_answers_status_while_an_op_runs_and_finishes_it_on_stop() {
    let fx = Fx::new();
    let release = fx.tmp.path().join("release");
    let mut cfg = fx.config();
    cfg.verify_command = Some(format!(
        "while [ ! -f '{}' ]; do sleep 0.02; done",
        release.display()
    ));
    let (h, join) = GitHandle::spawn(cfg).await.unwrap();
    h.setup().await.unwrap();
    let wt = h.create_worktree("flat", "w1", "main").await.unwrap();
    write(&wt.path, "x.txt", "x\n");
    h.commit_all(&wt.path, "x").await.unwrap();

    let h2 = h.clone();
    let branch = wt.branch.clone();
    let merge = tokio::spawn(async move {
        h2.merge(MergeRequest::new(&branch, "main", MergeStrategy::Agent))
            .await
    });
    wait_until_async(Duration::from_secs(10), "merge in flight", || async {
        h.status()
            .await
            .unwrap()
            .in_flight
            .is_some_and(|s| s.starts_with("merge"))
    })
    .await;
    let h3 = h.clone();
    let queued = tokio::spawn(async move { h3.head("main").await });
    wait_until_async(Duration::from_secs(10), "head queued", || async {
        h.status().await.unwrap().queued == 1
    })
    .await;

    let h4 = h.clone();
    let stopper = tokio::spawn(async move { h4.stop().await });
    std::fs::write(&release, "").unwrap();
    let out = merge.await.unwrap().unwrap();
    assert!(
        matches!(out, MergeOutcome::Merged { .. }),
        "in-flight op finished: {out:?}"
    );
    assert!(matches!(
        queued.await.unwrap(),
        Err(GitError::Stopped { .. })
    ));
    stopper.await.unwrap().unwrap();
    join.await.unwrap();
    assert!(h.head("main").await.is_err());
}

/// `localRepoPath` with `cloneDepth`: the clone comes from the local repository (shallow,
/// through `file://`), pushes go to the configured repository URL.
#[tokio::test]
async fn a_local_source_is_cloned_shallow_and_pushes_go_to_the_configured_url() {
    let tmp = temp_dir();
    let src = init_repo(&tmp.path().join("src"));
    for i in 0..3 {
        write(&src, &format!("f{i}.txt"), "x\n");
        git(&src, &["add", "-A"]);
        git(&src, &["commit", "-q", "-m", &format!("c{i}")]);
    }
    let remote = bare_clone(&src, &tmp.path().join("remote.git"));
    let mut cfg = GitConfig::new(tmp.path().join("ws"), file_url(&remote));
    cfg.local_source = Some(src.clone());
    cfg.clone.depth = Some(1);
    cfg.push = true;
    let repo = GitRepo::new(cfg).unwrap();
    let info = repo.setup().await.unwrap();
    let clone = tmp.path().join("ws/repo");
    assert_eq!(
        git(&clone, &["rev-parse", "--is-shallow-repository"]).trim(),
        "true"
    );
    assert_eq!(git(&clone, &["rev-list", "--count", "main"]).trim(), "1");
    assert_eq!(info.push_remote.as_deref(), Some("upstream"));
    let wt = repo.create_worktree("flat", "w1", "main").await.unwrap();
    write(&wt.path, "new.txt", "new\n");
    repo.commit_all(&wt.path, "new").await.unwrap();
    let out = repo
        .merge(&MergeRequest::new(&wt.branch, "main", MergeStrategy::Fail))
        .await
        .unwrap();
    let MergeOutcome::Merged { commit, pushed, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        pushed,
        PushStatus::Pushed {
            remote: "upstream".into()
        }
    );
    assert_eq!(git(&remote, &["rev-parse", "main"]).trim(), commit);
}

/// A bare clone of `src` at `at` (a remote to push to).
fn bare_clone(src: &std::path::Path, at: &std::path::Path) -> std::path::PathBuf {
    let parent = at.parent().unwrap();
    git(
        parent,
        &[
            "clone",
            "-q",
            "--bare",
            &src.to_string_lossy(),
            &at.to_string_lossy(),
        ],
    );
    at.to_path_buf()
}

fn file_url(p: &std::path::Path) -> String {
    format!("file://{}", p.display())
}
