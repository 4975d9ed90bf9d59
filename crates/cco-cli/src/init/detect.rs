//! What `cco init` can tell before asking: the git repository around the current directory
//! (its `origin`, its branch), the test command its files suggest, and the credentials at hand.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A git checkout on this machine.
#[derive(Debug, Clone, Default)]
pub struct Checkout {
    /// The work tree's root.
    pub root: PathBuf,
    /// `remote.origin.url`, if set.
    pub origin: Option<String>,
    /// The checked-out branch (none on a detached HEAD).
    pub branch: Option<String>,
}

/// Runs git in `dir`; its trimmed stdout when it succeeds with output.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The git work tree containing `dir`, if any.
pub fn checkout(dir: &Path) -> Option<Checkout> {
    let root = PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"])?);
    Some(Checkout {
        origin: git(&root, &["config", "--get", "remote.origin.url"]),
        branch: git(&root, &["symbolic-ref", "--short", "-q", "HEAD"]),
        root,
    })
}

/// Test commands the files at the root of `dir` suggest, most specific first.
pub fn verify_commands(dir: &Path) -> Vec<String> {
    let has = |name: &str| dir.join(name).is_file();
    let mut found = Vec::new();
    if has("Cargo.toml") {
        found.push("cargo test".to_string());
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("package.json")) {
        let has_test = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("scripts")?.get("test").cloned())
            .is_some();
        if has_test {
            found.push("npm test".to_string());
        }
    }
    let make_test = ["GNUmakefile", "makefile", "Makefile"].iter().any(|name| {
        std::fs::read_to_string(dir.join(name))
            .is_ok_and(|text| text.lines().any(|line| line.starts_with("test:")))
    });
    if make_test {
        found.push("make test".to_string());
    }
    let python = [
        "pytest.ini",
        "pyproject.toml",
        "setup.py",
        "setup.cfg",
        "tox.ini",
        "conftest.py",
    ];
    if python.iter().any(|name| has(name)) {
        found.push("pytest".to_string());
    }
    found
}

/// True when `ANTHROPIC_API_KEY` holds something.
pub fn env_api_key() -> Option<String> {
    std::env::var("ANTHROPIC_API_KEY")
        .ok()
        .filter(|key| !key.trim().is_empty())
}

/// The default config directory: beside a git checkout (`../<name>-cco`: cco keeps its own
/// clone, worktrees and logs there, and agents must not run inside your checkout), else the
/// current directory.
pub fn default_dir(cwd: &Path, checkout: Option<&Checkout>) -> PathBuf {
    match checkout {
        Some(c) => {
            let name = c
                .root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "project".into());
            c.root
                .parent()
                .unwrap_or(&c.root)
                .join(format!("{name}-cco"))
        }
        None => cwd.to_path_buf(),
    }
}

/// `path` for a command line typed in `base`: relative when it is inside `base` or beside it
/// (`../x`), else absolute.
pub fn shown(path: &Path, base: &Path) -> String {
    let base = base.canonicalize().unwrap_or_else(|_| base.to_path_buf());
    if let Ok(rel) = path.strip_prefix(&base) {
        return if rel.as_os_str().is_empty() {
            ".".into()
        } else {
            rel.display().to_string()
        };
    }
    match base.parent().map(|parent| path.strip_prefix(parent)) {
        Some(Ok(rel)) if !rel.as_os_str().is_empty() => format!("../{}", rel.display()),
        _ => path.display().to_string(),
    }
}

/// `path` made absolute with `..` and symlinks resolved as far as it exists (the rest is
/// appended as given, without `.` components), so messages show a clean path.
pub fn clean(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_commands_follow_the_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(verify_commands(dir.path()).is_empty());
        std::fs::write(dir.path().join("Cargo.toml"), "[package]").unwrap();
        std::fs::write(
            dir.path().join("package.json"),
            r#"{"scripts": {"test": "jest"}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("Makefile"), "all:\n\ttrue\ntest:\n\ttrue\n").unwrap();
        std::fs::write(dir.path().join("pyproject.toml"), "").unwrap();
        assert_eq!(
            verify_commands(dir.path()),
            ["cargo test", "npm test", "make test", "pytest"]
        );
        std::fs::write(dir.path().join("package.json"), r#"{"scripts": {}}"#).unwrap();
        std::fs::write(dir.path().join("Makefile"), "all:\n\ttrue\n").unwrap();
        assert_eq!(verify_commands(dir.path()), ["cargo test", "pytest"]);
    }

    #[test]
    fn paths_are_cleaned_and_shown_short() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("app/src")).unwrap();
        let dir = clean(&root.join("app/src/../../run/./x"));
        assert_eq!(dir, root.join("run/x"));
        assert_eq!(shown(&dir, &root.join("app")), "../run/x");
        assert_eq!(shown(&root.join("app/cfg"), &root.join("app")), "cfg");
        assert_eq!(shown(&root, &root), ".");
        assert_eq!(
            shown(Path::new("/elsewhere/x"), &root.join("app")),
            "/elsewhere/x"
        );
    }

    #[test]
    fn the_default_dir_is_beside_a_checkout() {
        let c = Checkout {
            root: PathBuf::from("/src/app"),
            ..Checkout::default()
        };
        assert_eq!(
            default_dir(Path::new("/src/app/sub"), Some(&c)),
            PathBuf::from("/src/app-cco")
        );
        assert_eq!(
            default_dir(Path::new("/tmp/x"), None),
            PathBuf::from("/tmp/x")
        );
    }
}
