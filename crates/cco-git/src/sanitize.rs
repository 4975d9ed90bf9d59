//! Validation of untrusted names and paths proposed by agents, and the secret-file rule.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::GitError;

/// Longest accepted branch component (bytes); longer proposals are replaced by a slug.
pub const MAX_BRANCH_COMPONENT: usize = 100;
const MAX_SLUG: usize = 60;

/// Result of [`sanitize_branch_component`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sanitized {
    pub name: String,
    /// True when the proposal was invalid and `name` is a generated slug.
    pub replaced: bool,
    pub reason: Option<String>,
}

/// Why `name` is not a valid (part of a) branch name, following `git check-ref-format`
/// plus a length cap and ASCII-only (names end up in paths and shell commands).
pub fn branch_name_problem(name: &str) -> Option<String> {
    if name.len() > MAX_BRANCH_COMPONENT {
        return Some(format!("longer than {MAX_BRANCH_COMPONENT} bytes"));
    }
    ref_name_problem(name)
}

/// Longest component of a ref name cco uses (file systems allow 255 bytes per name; git
/// appends `.lock`).
pub const MAX_REF_COMPONENT: usize = 200;

/// Why `name` is not a valid ref or branch name cco can use: the rules of
/// [`branch_name_problem`] without its cap on the whole name (full refs such as task refs
/// are longer); each `/`-separated component at most [`MAX_REF_COMPONENT`] bytes.
pub fn ref_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("empty".into());
    }
    if name.len() > 1000 {
        return Some("longer than 1000 bytes".into());
    }
    if let Some(long) = name.split('/').find(|c| c.len() > MAX_REF_COMPONENT) {
        return Some(format!(
            "component of {} bytes (at most {MAX_REF_COMPONENT})",
            long.len()
        ));
    }
    if name == "@" {
        return Some("is `@`".into());
    }
    if name.starts_with('-') {
        return Some("starts with `-`".into());
    }
    if let Some(c) = name.chars().find(|c| c.is_control() || !c.is_ascii()) {
        return Some(format!("contains control or non-ASCII character {c:?}"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
    {
        return Some(format!("contains forbidden character {c:?}"));
    }
    if name.contains("..") {
        return Some("contains `..`".into());
    }
    if name.contains("@{") {
        return Some("contains `@{`".into());
    }
    if name.ends_with('/') || name.ends_with('.') {
        return Some("ends with `/` or `.`".into());
    }
    if name.starts_with('/') || name.contains("//") {
        return Some("has an empty path component".into());
    }
    for part in name.split('/') {
        if part.starts_with('.') {
            return Some(format!("component {part:?} starts with `.`"));
        }
        if part.ends_with(".lock") {
            return Some(format!("component {part:?} ends with `.lock`"));
        }
    }
    None
}

/// FNV-1a: stable, dependency-free, distinct inputs rarely collide.
pub(crate) fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Lowercase ASCII alphanumerics and single dashes; never empty (falls back to a hash).
pub fn slugify(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= MAX_SLUG {
            break;
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        format!("branch-{:08x}", fnv(s) as u32)
    } else {
        out
    }
}

/// Validates an agent-proposed branch name (component); invalid ones are replaced by a slug
/// and logged.
pub fn sanitize_branch_component(proposed: &str) -> Sanitized {
    match branch_name_problem(proposed) {
        None => Sanitized {
            name: proposed.to_string(),
            replaced: false,
            reason: None,
        },
        Some(reason) => {
            let name = slugify(proposed);
            tracing::warn!(proposed, replacement = %name, %reason, "invalid branch name replaced");
            Sanitized {
                name,
                replaced: true,
                reason: Some(reason),
            }
        }
    }
}

/// Longest component cco puts in a branch or ref name it derives (team, worker, task id,
/// run id): the protocol's ids and team names (64 characters) fit as they are.
pub const MAX_NAME_COMPONENT: usize = 64;

/// A single path/ref component (worker id, team name, task id): sanitized, without `/`, at
/// most [`MAX_NAME_COMPONENT`] bytes (longer ones keep a prefix and get a hash suffix, so
/// distinct names stay distinct).
pub(crate) fn single_component(proposed: &str) -> String {
    let s = sanitize_branch_component(proposed).name;
    let s = if s.contains('/') {
        s.replace('/', "-")
    } else {
        s
    };
    if s.len() <= MAX_NAME_COMPONENT {
        return s;
    }
    let mut cut = MAX_NAME_COMPONENT - 9;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let prefix = s[..cut].trim_end_matches(['.', '-']);
    format!("{prefix}-{:08x}", fnv(proposed) as u32)
}

/// Validates a path proposed by an agent: relative, no `..` escaping the root, no `.git`
/// component. Returns it normalised (no `.`/`..` components).
pub fn validate_relative_path(p: &str) -> Result<PathBuf, GitError> {
    let bad = |reason: &str| GitError::InvalidPath {
        path: p.to_string(),
        reason: reason.to_string(),
    };
    if p.is_empty() {
        return Err(bad("empty"));
    }
    if p.contains('\0') {
        return Err(bad("contains NUL"));
    }
    let path = Path::new(p);
    let mut out: Vec<&std::ffi::OsStr> = Vec::new();
    for comp in path.components() {
        match comp {
            Component::Prefix(_) | Component::RootDir => return Err(bad("absolute")),
            Component::CurDir => {}
            Component::ParentDir => {
                if out.pop().is_none() {
                    return Err(bad("escapes the root with `..`"));
                }
            }
            Component::Normal(c) => {
                if c.to_string_lossy().eq_ignore_ascii_case(".git") {
                    return Err(bad("has a `.git` component"));
                }
                out.push(c);
            }
        }
    }
    if out.is_empty() {
        return Err(bad("names the root itself"));
    }
    Ok(out.iter().collect())
}

/// True for files that must never be committed: `api-keys.json`, `.env*`, anything under
/// `.claude/`, and the configured env files. Case-insensitive (`.ENV`, `.Env.local`): on
/// case-insensitive file systems these are the same files.
pub fn is_secret_path(path: &str, env_files: &[PathBuf]) -> bool {
    let p = Path::new(path);
    let lower = path.to_ascii_lowercase();
    if env_files
        .iter()
        .any(|e| e == p || e.to_string_lossy().to_ascii_lowercase() == lower)
    {
        return true;
    }
    let mut comps = Path::new(&lower).components().peekable();
    while let Some(c) = comps.next() {
        let name = c.as_os_str().to_string_lossy();
        let last = comps.peek().is_none();
        if name == ".claude" {
            return true;
        }
        if last && (name == "api-keys.json" || name.starts_with(".env")) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_paths() {
        let env = vec![PathBuf::from("config/local.secrets")];
        for p in [
            "api-keys.json",
            "a/api-keys.json",
            ".env",
            "x/.env.local",
            ".claude/settings.json",
            "config/local.secrets",
            ".ENV",
            "x/.Env.local",
            "API-KEYS.json",
            ".Claude/settings.json",
            "Config/Local.Secrets",
        ] {
            assert!(is_secret_path(p, &env), "{p}");
        }
        for p in ["src/env.rs", "README.md", "claude/x", "local.secrets"] {
            assert!(!is_secret_path(p, &env), "{p}");
        }
    }
}
