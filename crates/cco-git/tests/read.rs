//! `RepoReader`: a task ref's patch against its target, read without running anything the
//! repository's (agent-writable) configuration names.

use cco_git::RepoReader;
use cco_testkit::git;

#[tokio::test]
async fn a_patch_lists_files_and_commits_and_runs_no_configured_program() {
    let dir = cco_testkit::temp_dir();
    // A run's workspace: its clone is `<workspace>/repo`.
    let workspace = dir.path().join("workspace");
    let repo = cco_testkit::init_repo(&workspace.join("repo"));
    git(&repo, &["checkout", "-q", "-b", "work"]);
    std::fs::write(repo.join("a.txt"), "one\ntwo\n").unwrap();
    std::fs::write(repo.join("big.txt"), "x\n".repeat(50)).unwrap();
    std::fs::write(repo.join(".gitattributes"), "*.txt diff=evil\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "work: add files"]);
    git(&repo, &["update-ref", "refs/cco/tasks/run/flat/t1", "work"]);
    // What an agent could write into the shared configuration from its worktree.
    let marker = dir.path().join("ran");
    let evil = format!("sh -c 'touch {}'", marker.display());
    for (key, value) in [
        ("diff.external", evil.as_str()),
        ("diff.evil.textconv", evil.as_str()),
        ("diff.evil.command", evil.as_str()),
        ("core.fsmonitor", evil.as_str()),
        ("core.pager", evil.as_str()),
        ("gpg.program", evil.as_str()),
        ("log.showSignature", "true"),
    ] {
        git(&repo, &["config", key, value]);
    }

    let reader = RepoReader::for_workspace(&workspace).unwrap();
    assert!(reader.exists());
    let patch = reader
        .patch("main", "refs/cco/tasks/run/flat/t1", 10)
        .await
        .unwrap();
    assert_eq!(patch.commits.len(), 1);
    assert_eq!(patch.commits[0].1, "work: add files");
    let names: Vec<&str> = patch.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(names, [".gitattributes", "a.txt", "big.txt"]);
    assert_eq!(patch.files[1].added, Some(2));
    // big.txt (50 lines) does not fit in 10 changed lines: listed, left out of the patch.
    assert_eq!(patch.omitted, ["big.txt"]);
    assert!(patch.text.contains("+one"), "{}", patch.text);
    assert!(!patch.text.contains("big.txt"), "{}", patch.text);
    assert!(!marker.exists(), "a configured program ran");

    assert_eq!(reader.resolve("no-such-branch").await.unwrap(), None);
    assert!(reader.resolve("--output=x").await.is_err());
    assert!(reader.patch("main", "no-such-branch", 10).await.is_err());
}

/// A line budget does not bound the text (one line of a minified file can be megabytes), and
/// file names go on git's command line: a patch longer than `MAX_PATCH_BYTES` is listed, not
/// read, and at most 500 files are shown.
#[tokio::test]
async fn a_patch_too_long_to_show_is_listed_and_not_read() {
    let dir = cco_testkit::temp_dir();
    let workspace = dir.path().join("workspace");
    let repo = cco_testkit::init_repo(&workspace.join("repo"));
    git(&repo, &["checkout", "-q", "-b", "work"]);
    let line = "x".repeat(cco_git::MAX_PATCH_BYTES as usize + 1024);
    std::fs::write(repo.join("min.js"), format!("{line}\n")).unwrap();
    std::fs::write(repo.join("small.txt"), "one\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "a minified file"]);
    git(&repo, &["checkout", "-q", "-b", "many", "main"]);
    for i in 0..600 {
        std::fs::write(repo.join(format!("f{i:03}.txt")), "a\n").unwrap();
    }
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "many files"]);

    let reader = RepoReader::for_workspace(&workspace).unwrap();
    let patch = reader.patch("main", "work", 1000).await.unwrap();
    assert_eq!(patch.files.len(), 2);
    assert_eq!(patch.files[0].added, Some(1), "one line");
    assert!(patch.text.is_empty());
    assert_eq!(patch.omitted, ["min.js", "small.txt"]);

    let patch = reader.patch("main", "many", 10_000).await.unwrap();
    assert_eq!(patch.files.len(), 600);
    assert_eq!(patch.omitted.len(), 100);
    assert!(patch.text.contains("f499.txt") && !patch.text.contains("f500.txt"));
}
