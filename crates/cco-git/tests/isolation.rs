//! Agents cannot reach the integration repository (issue 12 §1): each agent works in a
//! repository of its own; whatever it does there to refs, hooks or config never moves a
//! shared branch and never runs inside cco's git.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cco_git::*;
use cco_testkit::git;
use common::*;

/// A script that appends its name to `log` (and fails, so a hook that runs also breaks
/// whatever ran it).
fn trap(dir: &Path, name: &str, log: &Path) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        &p,
        format!("#!/bin/sh\necho {name} >> '{}'\nexit 1\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[tokio::test]
async fn agents_work_in_repositories_of_their_own() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let wt = repo.create_worktree("flat", "w1", "main").await.unwrap();
    let common = agent_ok(
        &wt.path,
        "git rev-parse --path-format=absolute --git-common-dir",
    );
    assert_eq!(
        PathBuf::from(common.trim()),
        std::fs::canonicalize(&wt.path).unwrap().join(".git")
    );
    // It sees cco's objects (alternates) but none of cco's branches.
    let branches = agent_ok(&wt.path, "git for-each-ref --format='%(refname)'");
    assert_eq!(branches.trim(), "refs/heads/cco/flat/w1");
    assert!(agent_ok(&wt.path, "git cat-file -t $(git rev-parse HEAD)").contains("commit"));
    // A push into cco's clone by path is refused by the clone's own hooks.
    let clone = fx.repo_dir();
    let main = repo.head("main").await.unwrap();
    let out = agent_sh(
        &wt.path,
        &format!(
            "echo x > x && git add x && git commit -qm x && git push -q '{}' HEAD:refs/heads/main",
            clone.display()
        ),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("accepts no pushes"));
    assert_eq!(repo.head("main").await.unwrap(), main);
}

/// A run's first seconds make many agent repositories at once (a node daemon makes its
/// slots' without the GitActor's queue); every one of them is a whole repository on its
/// branch at the start point.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_repositories_made_at_once_are_all_whole() {
    let fx = Fx::new();
    let repo = std::sync::Arc::new(fx.repo(fx.config()).await);
    let main = git(&fx.repo_dir(), &["rev-parse", "main"]);
    let made: Vec<_> = (0..12)
        .map(|i| {
            let repo = repo.clone();
            tokio::spawn(
                async move { repo.create_worktree("flat", &format!("w{i}"), "main").await },
            )
        })
        .collect();
    for (i, handle) in made.into_iter().enumerate() {
        let wt = handle
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("w{i}: {e}"));
        assert_eq!(agent_ok(&wt.path, "git rev-parse HEAD").trim(), main.trim());
        assert_eq!(
            agent_ok(&wt.path, "git symbolic-ref --short HEAD").trim(),
            wt.branch
        );
    }
}

#[tokio::test]
async fn refs_an_agent_moves_in_its_repository_never_move_shared_branches() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let main_before = repo.head("main").await.unwrap();
    let wt = repo.create_worktree("flat", "w1", "main").await.unwrap();
    // An unreviewed commit, then `main` forced onto it and replaced by a hijacked history.
    agent_ok(
        &wt.path,
        "echo evil > evil.txt && git add evil.txt && git commit -qm unreviewed \
         && git branch -f main HEAD \
         && git update-ref refs/heads/main $(git commit-tree -m hijack HEAD^{tree}) \
         && git update-ref refs/heads/cco/flat/team HEAD",
    );
    assert_eq!(repo.head("main").await.unwrap(), main_before);
    assert!(!fx.has_file("main", "evil.txt"));
    assert!(!repo.branch_exists("cco/flat/team").await.unwrap());

    // The task's work comes back only through capture (a fetch into the task ref) and
    // lands only through a merge; main's history stays cco's.
    let other = repo.create_worktree("flat", "w2", "main").await.unwrap();
    write(&other.path, "good.txt", "good\n");
    let tref = task_ref("run", "flat", "t2");
    let captured = repo
        .capture_task(&other.path, "t2", &tref, "main")
        .await
        .unwrap();
    assert!(captured.moved);
    let merged = repo
        .merge(&MergeRequest::new(&tref, "main", MergeStrategy::Fail))
        .await
        .unwrap();
    assert!(matches!(merged, MergeOutcome::Merged { .. }), "{merged:?}");
    assert!(fx.has_file("main", "good.txt"));
    assert!(!fx.has_file("main", "evil.txt"));
    let log = git(&fx.repo_dir(), &["log", "--format=%s", "main"]);
    assert!(
        !log.contains("hijack") && !log.contains("unreviewed"),
        "{log}"
    );
}

#[tokio::test]
async fn hooks_and_config_an_agent_writes_never_run_in_ccos_git() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let log = fx.tmp.path().join("ran.log");
    let wt = repo.create_worktree("flat", "w1", "main").await.unwrap();
    let git_dir = PathBuf::from(agent_ok(&wt.path, "git rev-parse --absolute-git-dir").trim());
    let hooks = git_dir.join("hooks");
    for hook in [
        "pre-commit",
        "prepare-commit-msg",
        "commit-msg",
        "post-commit",
        "pre-merge-commit",
        "post-merge",
        "post-checkout",
        "post-rewrite",
        "reference-transaction",
        "pre-auto-gc",
        "post-index-change",
    ] {
        trap(&hooks, hook, &log);
    }
    // Hooks elsewhere, config that runs programs: fsmonitor, a clean/smudge filter, a merge
    // driver, an external diff, a textconv, signing, a hooks path, an include.
    let other_hooks = fx.tmp.path().join("agent-hooks");
    trap(&other_hooks, "pre-commit", &log);
    trap(&other_hooks, "reference-transaction", &log);
    let fsmonitor = trap(fx.tmp.path(), "fsmonitor", &log);
    let filter = trap(fx.tmp.path(), "filter", &log);
    let driver = trap(fx.tmp.path(), "driver", &log);
    let ext = trap(fx.tmp.path(), "extdiff", &log);
    let gpg = trap(fx.tmp.path(), "gpg", &log);
    let included = fx.tmp.path().join("included.config");
    std::fs::write(
        &included,
        format!("[filter \"inc\"]\n\tsmudge = {}\n", filter.display()),
    )
    .unwrap();
    for (k, v) in [
        ("core.fsmonitor", fsmonitor.display().to_string()),
        ("core.hooksPath", other_hooks.display().to_string()),
        ("filter.evil.clean", filter.display().to_string()),
        ("filter.evil.smudge", filter.display().to_string()),
        ("filter.evil.required", "true".into()),
        ("merge.evil.driver", driver.display().to_string()),
        ("diff.external", ext.display().to_string()),
        ("diff.evil.textconv", ext.display().to_string()),
        ("commit.gpgSign", "true".into()),
        ("gpg.program", gpg.display().to_string()),
        ("include.path", included.display().to_string()),
        ("status.showUntrackedFiles", "no".into()),
    ] {
        agent_ok(&wt.path, &format!("git config '{k}' '{v}'"));
    }
    std::fs::write(
        wt.path.join(".gitattributes"),
        "* filter=evil merge=evil diff=evil\n*.inc filter=inc\n",
    )
    .unwrap();
    write(&wt.path, "shared.txt", &lines(&[(4, "four by w1")]));
    write(&wt.path, "new.inc", "included filter\n");

    // Every op cco runs in the agent's repository: capture (status, add, commit, fetch,
    // reset), a revision switch, a merge the agent resolves, its conclusion, a snapshot.
    let tref = task_ref("run", "flat", "t1");
    let out = repo
        .capture_task(&wt.path, "t1", &tref, "main")
        .await
        .unwrap();
    assert!(out.moved, "{out:?}");
    assert!(fx.has_file(&tref, "new.inc"), "untracked files captured");
    repo.switch_worktree(&wt.path, &tref, Some("main"))
        .await
        .unwrap();
    let other = repo.create_worktree("flat", "w2", "main").await.unwrap();
    write(&other.path, "shared.txt", &lines(&[(4, "four by w2")]));
    let t2 = task_ref("run", "flat", "t2");
    repo.capture_task(&other.path, "t2", &t2, "main")
        .await
        .unwrap();
    repo.merge(&MergeRequest::new(&t2, "main", MergeStrategy::Fail))
        .await
        .unwrap();
    let conflict = repo.merge_into_worktree(&wt.path, "main").await.unwrap();
    assert!(
        matches!(conflict, WorktreeMerge::Conflicted { .. }),
        "{conflict:?}"
    );
    write(&wt.path, "shared.txt", &lines(&[(4, "four by both")]));
    repo.conclude_worktree_merge(&wt.path).await.unwrap();
    write(&wt.path, "dirty.txt", "x\n");
    assert!(repo
        .snapshot(&wt.path, "w1", false)
        .await
        .unwrap()
        .is_some());
    let again = repo
        .capture_task(&wt.path, "t1 again", &tref, "main")
        .await
        .unwrap();
    assert!(again.moved);
    let merged = repo
        .merge(&MergeRequest::new(&tref, "main", MergeStrategy::Fail))
        .await
        .unwrap();
    assert!(matches!(merged, MergeOutcome::Merged { .. }), "{merged:?}");
    assert_eq!(fx.show("main", "shared.txt"), lines(&[(4, "four by both")]));
    assert!(
        !log.exists(),
        "agent programs ran inside cco's git: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // The agent's own git still runs them: the traps are real.
    let out = agent_sh(&wt.path, "git status --porcelain >/dev/null");
    assert!(out.status.success() || log.exists());
    assert!(log.exists(), "the agent's own git runs its fsmonitor");
}

/// A `commondir` file in an agent's git dir makes git take refs and objects from the
/// repository it names, even with `--git-dir` given: planted to name cco's clone, with
/// `HEAD` on `main`, cco's own commit of the turn's leftovers would move `main` there.
/// (Neither capture nor switch need succeed on such a repository; cco's branches must not
/// move.)
#[tokio::test]
async fn a_git_dir_an_agent_points_at_ccos_clone_is_not_followed() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let main_before = repo.head("main").await.unwrap();
    let wt = repo.create_worktree("flat", "w1", "main").await.unwrap();
    let clone_git = std::fs::canonicalize(fx.repo_dir().join(".git")).unwrap();
    agent_ok(
        &wt.path,
        &format!(
            "echo '{}' > .git/commondir && echo 'ref: refs/heads/main' > .git/HEAD",
            clone_git.display()
        ),
    );
    // What the agent itself sees now: cco's branches (the redirect is real).
    assert!(
        agent_ok(&wt.path, "git for-each-ref --format='%(refname)'").contains("refs/heads/main")
    );
    write(&wt.path, "leftover.txt", "left for cco to commit\n");

    let tref = task_ref("run", "flat", "t1");
    let _ = repo.capture_task(&wt.path, "t1", &tref, "main").await;
    let _ = repo.switch_worktree(&wt.path, "main", None).await;
    assert_eq!(repo.head("main").await.unwrap(), main_before);
    assert!(!fx.has_file("main", "leftover.txt"));
    assert!(!wt.path.join(".git/commondir").exists());
}

/// `.git/refs` (or a directory in it) linked to the clone's: git creates a ref's lock file in
/// the linked directory and renames it there, so cco's own commit of the turn's leftovers
/// would write the clone's `main`.
#[tokio::test]
async fn a_refs_directory_an_agent_links_to_ccos_clone_is_not_written_through() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let main_before = repo.head("main").await.unwrap();
    let clone_refs = std::fs::canonicalize(fx.repo_dir().join(".git/refs")).unwrap();
    for (worker, link) in [("w1", ".git/refs"), ("w2", ".git/refs/heads")] {
        let wt = repo.create_worktree("flat", worker, "main").await.unwrap();
        let target = if link.ends_with("heads") {
            clone_refs.join("heads")
        } else {
            clone_refs.clone()
        };
        agent_ok(
            &wt.path,
            &format!(
                "rm -rf {link} && ln -s '{}' {link} && echo 'ref: refs/heads/main' > .git/HEAD",
                target.display()
            ),
        );
        write(&wt.path, "leftover.txt", "left for cco to commit\n");
        let tref = task_ref("run", "flat", worker);
        let _ = repo.capture_task(&wt.path, worker, &tref, "main").await;
        let _ = repo.switch_worktree(&wt.path, "main", None).await;
        assert_eq!(repo.head("main").await.unwrap(), main_before, "{link}");
        assert!(!fx.has_file("main", "leftover.txt"), "{link}");
        let meta = std::fs::symlink_metadata(wt.path.join(link)).unwrap();
        assert!(meta.is_dir() && !meta.file_type().is_symlink(), "{link}");
        // The repository works again: a new task starts in it at cco's main.
        repo.switch_worktree(&wt.path, "main", None).await.unwrap();
        assert_eq!(agent_ok(&wt.path, "git rev-parse HEAD").trim(), main_before);
    }
}
