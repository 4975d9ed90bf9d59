//! Secret values never reach a shared branch (issue 12 §2): the content checks scan every
//! commit's added lines (binary files too), message, author and committer, and the names of
//! the files it adds, and report where, never the value; a message cannot hide part of
//! itself from the scan.
mod common;

use cco_git::*;
use cco_testkit::git;
use common::*;

#[tokio::test]
async fn secrets_in_added_lines_or_messages_are_refused_without_naming_the_value() {
    let fx = Fx::new();
    let value = "proxy-token-0123456789abcdef";
    let mut cfg = fx.config();
    cfg.secrets = SecretValues::new([value, "tiny"]);
    assert_eq!(
        cfg.secrets.len(),
        1,
        "values too short to scan for are dropped"
    );
    assert!(!format!("{cfg:?}").contains(value), "never printed");
    let repo = fx.repo(cfg).await;
    let main = repo.head("main").await.unwrap();

    let w1 = repo.create_worktree("flat", "w1", "main").await.unwrap();
    write(
        &w1.path,
        "envdump.txt",
        &format!("PATH=/bin\nANTHROPIC_AUTH_TOKEN={value}\n"),
    );
    let err = captured(&repo, &w1, "t1").await.unwrap_err();
    let GitError::Refused(Refusal::Secret { findings }) = &err else {
        panic!("expected a secret refusal, got {err}");
    };
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].at, Some(FileLine::new("envdump.txt", 2)));
    assert!(err.to_string().contains("envdump.txt:2"), "{err}");
    assert!(!err.to_string().contains(value), "{err}");
    assert_eq!(git(&fx.repo_dir(), &["for-each-ref", "refs/cco/tasks"]), "");

    // A key shape in a commit message; a commit that adds and a later one that removes the
    // secret (history reaches the branch too).
    let w2 = repo.create_worktree("flat", "w2", "main").await.unwrap();
    agent_ok(
        &w2.path,
        "echo ok > ok.txt && git add ok.txt && git commit -qm 'key sk-ant-api03-AAAAAAAAAAAAAAAAAAAAAAAA'",
    );
    let err = repo
        .merge(&MergeRequest::new(&w2.branch, "main", MergeStrategy::Fail))
        .await
        .unwrap_err();
    match &err {
        GitError::Refused(Refusal::Secret { findings }) => assert_eq!(findings[0].at, None),
        other => panic!("expected a secret refusal, got {other}"),
    }
    assert!(!err.to_string().contains("AAAAAAAA"), "{err}");
    let w3 = repo.create_worktree("flat", "w3", "main").await.unwrap();
    agent_ok(
        &w3.path,
        &format!(
            "echo '{value}' > k.txt && git add k.txt && git commit -qm add && git rm -q k.txt && git commit -qm remove"
        ),
    );
    assert!(matches!(
        captured(&repo, &w3, "t3").await,
        Err(GitError::Refused(Refusal::Secret { .. }))
    ));
    assert_eq!(repo.head("main").await.unwrap(), main);
    // A clean task goes through; the secret-file guard ignores case.
    let w4 = repo.create_worktree("flat", "w4", "main").await.unwrap();
    write(&w4.path, "fine.txt", "fine\n");
    write(&w4.path, ".ENV", "A=1\n");
    write(&w4.path, "sub/.Env.local", "B=1\n");
    let t4 = captured(&repo, &w4, "t4").await.unwrap();
    let tref = task_ref("run", "flat", "t4");
    assert!(t4.moved && fx.has_file(&tref, "fine.txt"));
    assert!(!fx.has_file(&tref, ".ENV") && !fx.has_file(&tref, "sub/.Env.local"));
}

/// The content checks read `git log` with markers around each commit's message; a message
/// that writes the end marker itself must not end its message early and hide what follows
/// (a key in the rest of the message), nor make message lines read as patch or raw lines.
#[tokio::test]
async fn a_commit_message_forging_the_checks_markers_hides_nothing() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let main = repo.head("main").await.unwrap();
    let w1 = repo.create_worktree("flat", "w1", "main").await.unwrap();
    std::fs::write(
        fx.tmp.path().join("msg"),
        "innocent subject\n\n\u{1}cco-end\nkey sk-ant-api03-BBBBBBBBBBBBBBBBBBBBBBBB\n",
    )
    .unwrap();
    agent_ok(
        &w1.path,
        &format!(
            "echo ok > ok.txt && git add ok.txt && git commit -q --cleanup=verbatim -F '{}'",
            fx.tmp.path().join("msg").display()
        ),
    );
    let msg = agent_ok(&w1.path, "git log -1 --format=%B");
    assert!(
        msg.contains("\u{1}cco-end"),
        "git kept the forged marker: {msg:?}"
    );
    let err = captured(&repo, &w1, "t1").await.unwrap_err();
    match &err {
        GitError::Refused(Refusal::Secret { findings }) => assert_eq!(findings[0].at, None),
        other => panic!("expected a secret refusal, got {other}"),
    }
    assert!(!err.to_string().contains("BBBBBBBB"), "{err}");

    // Forged patch lines in a message are not the change: no false refusal either.
    let w2 = repo.create_worktree("flat", "w2", "main").await.unwrap();
    std::fs::write(
        fx.tmp.path().join("msg2"),
        "subject\n\n\u{1}cco-end\ndiff --git a/x b/x\n+++ b/x\n@@ -0,0 +1,3 @@\n+<<<<<<< a\n+=======\n+>>>>>>> b\n",
    )
    .unwrap();
    agent_ok(
        &w2.path,
        &format!(
            "echo fine > fine.txt && git add fine.txt && git commit -q --cleanup=verbatim -F '{}'",
            fx.tmp.path().join("msg2").display()
        ),
    );
    assert!(captured(&repo, &w2, "t2").await.unwrap().moved);
    assert_eq!(repo.head("main").await.unwrap(), main);
}

/// Beside added lines and messages, a key can be committed as an author or committer name,
/// or as a file name: refused too, and never named.
#[tokio::test]
async fn keys_in_authors_and_file_names_are_refused_without_naming_them() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let key = "sk-ant-api03-CCCCCCCCCCCCCCCCCCCCCCCC";
    let w1 = repo.create_worktree("flat", "w1", "main").await.unwrap();
    agent_ok(
        &w1.path,
        &format!("echo ok > ok.txt && git add ok.txt && GIT_AUTHOR_NAME='{key}' git commit -qm ok"),
    );
    let err = captured(&repo, &w1, "t1").await.unwrap_err();
    match &err {
        GitError::Refused(Refusal::Secret { findings }) => {
            assert!(
                findings[0].what.ends_with("in the author or committer"),
                "{err}"
            )
        }
        other => panic!("expected a secret refusal, got {other}"),
    }
    assert!(!err.to_string().contains("CCCCCCCC"), "{err}");

    let w2 = repo.create_worktree("flat", "w2", "main").await.unwrap();
    write(&w2.path, &format!("notes-{key}.txt"), "x\n");
    let err = captured(&repo, &w2, "t2").await.unwrap_err();
    match &err {
        GitError::Refused(Refusal::Secret { findings }) => {
            assert!(findings[0].what.ends_with("in a file name"), "{err}")
        }
        other => panic!("expected a secret refusal, got {other}"),
    }
    assert!(!err.to_string().contains("CCCCCCCC"), "{err}");
    assert_eq!(git(&fx.repo_dir(), &["for-each-ref", "refs/cco/tasks"]), "");
}

/// A key in a binary file (a NUL byte makes git call it binary and show no lines) is found
/// as in any other file.
#[tokio::test]
async fn a_key_in_a_binary_file_is_refused() {
    let fx = Fx::new();
    let repo = fx.repo(fx.config()).await;
    let w1 = repo.create_worktree("flat", "w1", "main").await.unwrap();
    agent_ok(
        &w1.path,
        "printf 'PK\\003\\004\\000\\001\\002junk\\nKEY=sk-ant-api03-DDDDDDDDDDDDDDDDDDDDDDDD\\000\\377\\376' > cache.bin \
         && git add cache.bin && git commit -qm cache",
    );
    let numstat = agent_ok(&w1.path, "git show --numstat --format= HEAD");
    assert!(
        numstat.starts_with("-\t-\t"),
        "git sees a binary file: {numstat}"
    );
    let err = captured(&repo, &w1, "t1").await.unwrap_err();
    match &err {
        GitError::Refused(Refusal::Secret { findings }) => {
            assert_eq!(
                findings[0].at.as_ref().map(|a| a.path.as_str()),
                Some("cache.bin")
            )
        }
        other => panic!("expected a secret refusal, got {other}"),
    }
    assert!(!err.to_string().contains("DDDDDDDD"), "{err}");
    assert_eq!(git(&fx.repo_dir(), &["for-each-ref", "refs/cco/tasks"]), "");
}
