#![allow(dead_code, clippy::new_without_default)]
use std::path::{Path, PathBuf};
use std::time::Duration;

use cco_git::{
    task_ref, CaptureOutcome, GitConfig, GitError, GitRepo, MergeOutcome, MergeRequest,
    MergeStrategy, WorktreeInfo,
};
use cco_testkit::{git, init_repo, temp_dir};

pub struct Fx {
    pub tmp: tempfile::TempDir,
    pub src: PathBuf,
    pub ws: PathBuf,
}

impl Fx {
    /// A source repo with `shared.txt` (10 lines) on `main`.
    pub fn new() -> Fx {
        let tmp = temp_dir();
        let src = init_repo(&tmp.path().join("src"));
        std::fs::write(src.join("shared.txt"), lines(&[])).unwrap();
        git(&src, &["add", "-A"]);
        git(&src, &["commit", "-q", "-m", "shared"]);
        let ws = tmp.path().join("ws");
        Fx { tmp, src, ws }
    }

    pub fn config(&self) -> GitConfig {
        let mut cfg = GitConfig::new(&self.ws, self.src.to_string_lossy());
        cfg.git_timeout = Duration::from_secs(30);
        cfg.op_timeout = Duration::from_secs(60);
        cfg.verify_timeout = Duration::from_secs(30);
        cfg
    }

    pub async fn repo(&self, cfg: GitConfig) -> GitRepo {
        let repo = GitRepo::new(cfg).expect("config");
        repo.setup().await.expect("setup");
        repo
    }

    pub fn repo_dir(&self) -> PathBuf {
        self.ws.join("repo")
    }

    /// File content of `path` at `rev` in the clone.
    pub fn show(&self, rev: &str, path: &str) -> String {
        git(&self.repo_dir(), &["show", &format!("{rev}:{path}")])
    }

    pub fn has_file(&self, rev: &str, path: &str) -> bool {
        let out = git(&self.repo_dir(), &["ls-tree", "-r", "--name-only", rev]);
        out.lines().any(|l| l == path)
    }
}

/// 10 numbered lines, with `(line_no, text)` replacements.
pub fn lines(changes: &[(usize, &str)]) -> String {
    (1..=10)
        .map(|i| {
            changes
                .iter()
                .find(|(n, _)| *n == i)
                .map(|(_, t)| t.to_string())
                .unwrap_or_else(|| format!("line {i}"))
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

pub fn write(dir: &Path, rel: &str, content: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// Runs `script` with `sh -c` in `dir` as an agent would (its own identity, its own git).
pub fn agent_sh(dir: &Path, script: &str) -> std::process::Output {
    std::process::Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "agent")
        .env("GIT_AUTHOR_EMAIL", "agent@localhost")
        .env("GIT_COMMITTER_NAME", "agent")
        .env("GIT_COMMITTER_EMAIL", "agent@localhost")
        .output()
        .unwrap()
}

/// [`agent_sh`] that must succeed; its stdout.
pub fn agent_ok(dir: &Path, script: &str) -> String {
    let out = agent_sh(dir, script);
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Task `id` of the flat team captured from `wt` into its task ref (target `main`).
pub async fn captured(
    repo: &GitRepo,
    wt: &WorktreeInfo,
    id: &str,
) -> Result<CaptureOutcome, GitError> {
    repo.capture_task(&wt.path, id, &task_ref("run", "flat", id), "main")
        .await
}

/// Task `id`'s captured work merged into `main` (strategy `fail`).
pub async fn merged(repo: &GitRepo, id: &str) -> Result<MergeOutcome, GitError> {
    repo.merge(&MergeRequest::new(
        task_ref("run", "flat", id),
        "main",
        MergeStrategy::Fail,
    ))
    .await
}
