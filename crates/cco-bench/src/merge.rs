//! GitActor merge throughput: N independent branches (each adds its own file) merged one by
//! one into `main` through the GitActor (integration worktree, compare-and-swap of the ref),
//! against a shell loop of plain `git merge --no-ff` over the same branches in an ordinary
//! clone of the same source.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use cco_git::{GitConfig, GitHandle, MergeOutcome, MergeRequest, MergeStrategy};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct MergeRow {
    pub method: String,
    pub branches: usize,
    pub seconds: f64,
    pub merges_per_sec: f64,
}

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=cco-bench",
            "-c",
            "user.email=cco-bench@localhost",
        ])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A source repository with `n` branches `b1..bn` off `main`, each adding `files/b<i>.txt`.
fn make_source(dir: &Path, n: usize) -> Result<(), String> {
    cco_testkit::init_repo(dir);
    let main = git(dir, &["rev-parse", "main"])?.trim().to_string();
    // Plumbing keeps setup fast: one blob, tree and commit per branch, no checkouts.
    let base_tree = git(dir, &["rev-parse", "main^{tree}"])?.trim().to_string();
    for i in 1..=n {
        std::fs::write(dir.join("scratch.txt"), format!("branch {i}\n"))
            .map_err(|e| e.to_string())?;
        let blob = git(dir, &["hash-object", "-w", "scratch.txt"])?
            .trim()
            .to_string();
        let index = dir.join(format!(".git/bench-index-{i}"));
        let env_index = |args: &[&str]| -> Result<String, String> {
            let out = Command::new("git")
                .current_dir(dir)
                .env("GIT_INDEX_FILE", &index)
                .args([
                    "-c",
                    "user.name=cco-bench",
                    "-c",
                    "user.email=cco-bench@localhost",
                ])
                .args(args)
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!(
                    "git {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        env_index(&["read-tree", &base_tree])?;
        env_index(&[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("100644,{blob},files/b{i}.txt"),
        ])?;
        let tree = env_index(&["write-tree"])?.trim().to_string();
        let commit = git(
            dir,
            &[
                "commit-tree",
                &tree,
                "-p",
                &main,
                "-m",
                &format!("branch {i}"),
            ],
        )?
        .trim()
        .to_string();
        git(dir, &["update-ref", &format!("refs/heads/b{i}"), &commit])?;
        let _ = std::fs::remove_file(index);
    }
    let _ = std::fs::remove_file(dir.join("scratch.txt"));
    Ok(())
}

pub async fn run(n: usize) -> Result<Vec<MergeRow>, String> {
    let tmp = tempfile::Builder::new()
        .prefix("cco-bench-merge-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let source = tmp.path().join("source");
    make_source(&source, n)?;

    // cco: the GitActor in its own workspace.
    let mut cfg = GitConfig::new(tmp.path().join("workspace"), source.display().to_string());
    cfg.base_branch = Some("main".into());
    cfg.identity = Some(("cco-bench".into(), "cco-bench@localhost".into()));
    let (handle, _join): (GitHandle, _) = GitHandle::spawn(cfg).await.map_err(|e| e.to_string())?;
    handle.setup().await.map_err(|e| e.to_string())?;
    let start = Instant::now();
    for i in 1..=n {
        let mut req = MergeRequest::new(format!("origin/b{i}"), "main", MergeStrategy::Fail);
        req.verify = false;
        match handle
            .merge(req)
            .await
            .map_err(|e| format!("merge b{i}: {e}"))?
        {
            MergeOutcome::Merged { .. } => {}
            other => return Err(format!("merge b{i}: unexpected {other:?}")),
        }
    }
    let cco_secs = start.elapsed().as_secs_f64();
    let _ = handle.stop().await;
    let files = git(
        &tmp.path().join("workspace/repo"),
        &["ls-tree", "-r", "--name-only", "main", "files"],
    )?;
    if files.lines().count() != n {
        return Err(format!(
            "after the GitActor merges main holds {} of {n} files",
            files.lines().count()
        ));
    }

    // Plain git: a normal clone with main checked out, one `git merge` per branch.
    let plain = tmp.path().join("plain");
    git(
        tmp.path(),
        &["clone", "-q", &source.display().to_string(), "plain"],
    )?;
    let script = format!(
        "for i in $(seq 1 {n}); do git -c user.name=b -c user.email=b@localhost merge -q --no-ff --no-edit origin/b$i || exit 1; done"
    );
    let start = Instant::now();
    let status = Command::new("sh")
        .current_dir(&plain)
        .args(["-c", &script])
        .status()
        .map_err(|e| e.to_string())?;
    let plain_secs = start.elapsed().as_secs_f64();
    if !status.success() {
        return Err("the plain git merge loop failed".into());
    }
    Ok(vec![
        MergeRow {
            method: "GitActor (cco)".into(),
            branches: n,
            seconds: cco_secs,
            merges_per_sec: n as f64 / cco_secs,
        },
        MergeRow {
            method: "shell loop of git merge".into(),
            branches: n,
            seconds: plain_secs,
            merges_per_sec: n as f64 / plain_secs,
        },
    ])
}
