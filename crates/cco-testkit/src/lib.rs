//! cco-testkit: helpers shared by the test suites of the cco crates (a dev-dependency only).
//!
//! - [`fake_claude`]: path to a freshly built `fake-claude` binary (built once per test process).
//! - [`wait_until`] / [`wait_until_async`]: poll a condition with a deadline; tests never sleep
//!   for a fixed time.
//! - [`init_repo`], [`git`]: throwaway git repositories with a fixed identity.
//! - [`pid_alive`], [`process_group_alive`]: liveness checks that treat zombies as dead.
//! - [`Sweep`]: deterministic generated inputs for "any input, no panic" sweeps.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Root of the cargo workspace.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("cco-testkit lives at crates/cco-testkit")
        .to_path_buf()
}

/// The real-CLI transcripts every parser test must read: `tests/fixtures/claude-stream-json`
/// in this repository (its README says what each file is).
pub fn fixtures_dir() -> PathBuf {
    fixtures_dir_in(&workspace_root())
}

/// [`fixtures_dir`] of the checkout at `root` (a test proves a bare clone has them).
pub fn fixtures_dir_in(root: &Path) -> PathBuf {
    root.join("tests/fixtures/claude-stream-json")
}

/// The target directory the running test binary was built into.
fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    // <target>/<profile>/deps/<test-binary>
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Path to the `fake-claude` binary, built (or confirmed up to date) once per test process.
///
/// Building from inside a test is safe: cargo releases its build lock before it runs tests.
pub fn fake_claude() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_fake_claude(&target_dir(), false).unwrap_or_else(|e| panic!("{e}")))
}

/// Builds (or confirms up to date) `fake-claude` into `target` with cargo, `--release` or
/// not, and returns the binary's path.
pub fn build_fake_claude(target: &Path, release: bool) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args([
            "build",
            "--quiet",
            "-p",
            "fake-claude",
            "--bin",
            "fake-claude",
            "--target-dir",
        ])
        .arg(target);
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cargo build -p fake-claude: {e}"))?;
    if !status.success() {
        return Err("building fake-claude failed".into());
    }
    let bin = target
        .join(if release { "release" } else { "debug" })
        .join("fake-claude");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("fake-claude not found at {}", bin.display()))
    }
}

/// Polls `condition` every 20 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Async twin of [`wait_until`] for tests running on a tokio runtime.
pub async fn wait_until_async<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !condition().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs git in `dir` with a fixed identity; panics with stderr on failure; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=cco-test",
            "-c",
            "user.email=cco-test@localhost",
        ])
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Creates a git repository at `dir` on branch `main` with one commit holding `README.md`.
pub fn init_repo(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("create repo dir");
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("README.md"), "# test repo\n").expect("write README");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "initial commit"]);
    dir.to_path_buf()
}

/// Writes a fake-claude script (see docs/fake-claude.md) and returns its path.
pub fn write_script(dir: &Path, script: &serde_json::Value) -> PathBuf {
    let path = dir.join("fake-claude-script.json");
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(script).expect("script json"),
    )
    .expect("write script");
    path
}

/// Writes an executable `claude` in `dir` that runs `fake_claude` playing `script`, with its
/// `times` counters in `state_dir`. A wrapper per project: the script travels with the binary,
/// not through a process-global environment variable, so tests can run in parallel.
pub fn fake_claude_wrapper(
    dir: &Path,
    fake_claude: &Path,
    script: &Path,
    state_dir: &Path,
) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let wrapper = dir.join("claude");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nFAKE_CLAUDE_SCRIPT='{}' FAKE_CLAUDE_STATE_DIR='{}' exec '{}' \"$@\"\n",
            script.display(),
            state_dir.display(),
            fake_claude.display()
        ),
    )?;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
    Ok(wrapper)
}

/// A fake-claude rule for a planner's or reviewer's turn that answers `document` either way:
/// through the `StructuredOutput` tool when the run uses `--json-schema`, and as the result
/// text otherwise (without `--json-schema` the tool call is refused and the text is read).
pub fn answer_rule(matcher: serde_json::Value, document: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "match": matcher,
        "steps": [{"structured_output": document.clone()}],
        "result": document.to_string()
    })
}

/// A throwaway project for a run: `<dir>/source` (a git repo), `<dir>/config` holding
/// `orchestrator.json` (`defaults` with `overrides` applied on top, and `repositoryUrl` and
/// `claudeBinary` filled in) and a fake-claude wrapper playing `script`. The fake's `times`
/// counters live in `<dir>/fake-state`, outside the config dir (which a test may make read-only).
/// Returns (source repo, config dir).
pub fn scripted_project(
    dir: &Path,
    defaults: serde_json::Value,
    overrides: &serde_json::Value,
    script: &serde_json::Value,
) -> (PathBuf, PathBuf) {
    let source = init_repo(&dir.join("source"));
    let config_dir = dir.join("config");
    std::fs::create_dir_all(&config_dir).expect("create config dir");
    let script_path = write_script(&config_dir, script);
    // A wrapper per project: the script travels with the binary, not through a global env.
    fake_claude_wrapper(
        &config_dir,
        fake_claude(),
        &script_path,
        &dir.join("fake-state"),
    )
    .expect("write wrapper");
    let mut config = defaults;
    config["repositoryUrl"] = serde_json::Value::String(source.display().to_string());
    config["claudeBinary"] = serde_json::Value::String("./claude".into());
    if let Some(overrides) = overrides.as_object() {
        for (key, value) in overrides {
            config[key] = value.clone();
        }
    }
    std::fs::write(
        config_dir.join("orchestrator.json"),
        serde_json::to_vec_pretty(&config).expect("config json"),
    )
    .expect("write orchestrator.json");
    (source, config_dir)
}

/// `/proc/<pid>/stat` fields: (state, pgrp).
fn proc_stat(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// True when the process exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    matches!(proc_stat(pid as i32), Some((state, _)) if state != 'Z' && state != 'X')
}

/// True when any live (non-zombie) process belongs to process group `pgid`.
pub fn process_group_alive(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.filter_map(Result::ok).any(|entry| {
        entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
            .and_then(proc_stat)
            .is_some_and(|(state, pgrp)| pgrp == pgid as i32 && state != 'Z' && state != 'X')
    })
}

/// A temporary directory, kept on disk (and printed) when `CCO_KEEP_TEST_DIRS` is set.
pub fn temp_dir() -> tempfile::TempDir {
    let keep = std::env::var_os("CCO_KEEP_TEST_DIRS").is_some();
    let dir = tempfile::Builder::new()
        .prefix("cco-test-")
        .disable_cleanup(keep)
        .tempdir()
        .expect("tempdir");
    if keep {
        eprintln!("test dir: {}", dir.path().display());
    }
    dir
}

/// Deterministic pseudo-random inputs for sweeps of parsers and checks (xorshift64*: the same
/// sequence for the same seed on every run and machine; not for anything but tests).
pub struct Sweep(u64);

impl Sweep {
    /// A generator started at `seed` (any value but 0).
    pub fn new(seed: u64) -> Sweep {
        Sweep(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// One of `items` (not empty).
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// Up to `max` of `pieces`, joined.
    pub fn text(&mut self, pieces: &[&str], max: usize) -> String {
        let n = self.below(max + 1);
        (0..n).map(|_| self.pick(pieces)).collect()
    }
}
