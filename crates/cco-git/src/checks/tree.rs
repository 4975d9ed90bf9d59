//! What a tree may not hold: paths git treats as its own directory, symlinks that lead out
//! of the repository (alone or through the tree's other links), submodules that point to
//! this machine.

/// Why a path may never enter a tree cco integrates: a component git itself treats as its
/// own directory (`.git` in any case, with the trailing dots or spaces NTFS drops, or its
/// 8.3 short name `git~1`).
pub(crate) fn git_path_problem(path: &str) -> Option<&'static str> {
    for comp in path.split('/') {
        let trimmed = comp.trim_end_matches(['.', ' ']);
        if trimmed.eq_ignore_ascii_case(".git") || comp.eq_ignore_ascii_case("git~1") {
            return Some("has a `.git` component");
        }
    }
    None
}

/// Why symlink `path` -> `target` leaves the repository (absolute, or more `..` than its
/// depth), or points into a `.git` directory.
pub(crate) fn symlink_problem(path: &str, target: &str) -> Option<&'static str> {
    if target.starts_with('/') || target.starts_with('~') {
        return Some("points to an absolute path");
    }
    if git_path_problem(target).is_some() {
        return Some("points into a `.git` directory");
    }
    let mut depth: i64 = path.split('/').count() as i64 - 1;
    for comp in target.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return Some("points outside the repository");
                }
            }
            _ => depth += 1,
        }
    }
    None
}

/// How a symlink leads outside the repository: why, and the links followed on the way (the
/// symlink itself first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Escape {
    pub reason: &'static str,
    pub through: Vec<String>,
}

/// Whether the symlink at `path` leads outside the repository once the tree's other symlinks
/// are followed (`targets`: every symlink of the tree, path → target), as the kernel resolves
/// it: a link met on the way is replaced by its target, and `..` applies to where that led.
/// The lexical check ([`symlink_problem`]) misses `l -> .` with `m -> l/..`: `m` names the
/// repository's parent. `None`: it stays inside (or ends at a path that does not exist).
pub(crate) fn symlink_escape(
    path: &str,
    targets: &std::collections::HashMap<String, String>,
) -> Option<Escape> {
    /// Links followed before giving up (the kernel's limit is 40).
    const MAX_HOPS: usize = 40;
    let mut through = vec![path.to_string()];
    let escape = |reason, through| Some(Escape { reason, through });
    let target = targets.get(path)?;
    if target.starts_with('/') || target.starts_with('~') {
        return escape("points to an absolute path", through);
    }
    let mut at: Vec<&str> = path.split('/').collect();
    at.pop();
    let mut pending: std::collections::VecDeque<&str> = target.split('/').collect();
    while let Some(comp) = pending.pop_front() {
        match comp {
            "" | "." => {}
            ".." => {
                if at.pop().is_none() {
                    return escape(
                        "points outside the repository (through the tree's symlinks)",
                        through,
                    );
                }
            }
            name => {
                at.push(name);
                let here = at.join("/");
                if let Some(target) = targets.get(&here) {
                    through.push(here);
                    if through.len() > MAX_HOPS {
                        return escape("is part of a symlink loop", through);
                    }
                    if target.starts_with('/') || target.starts_with('~') {
                        return escape(
                            "points outside the repository (through an absolute symlink)",
                            through,
                        );
                    }
                    at.pop();
                    for c in target.split('/').rev() {
                        pending.push_front(c);
                    }
                }
            }
        }
    }
    None
}

/// Whether a submodule URL names a path on this machine (absolute, `file:`, `~`) or could
/// be read as an option.
pub(crate) fn local_submodule_url(url: &str) -> bool {
    let u = url.trim();
    u.starts_with('/')
        || u.starts_with('~')
        || u.starts_with('-')
        || u.to_ascii_lowercase().starts_with("file:")
}

/// Whether a submodule URL is relative (`./x`, `../x`): git resolves it against the
/// superproject's remote, so it names a local path when that remote is one.
pub(crate) fn relative_submodule_url(url: &str) -> bool {
    let u = url.trim();
    u.starts_with("./") || u.starts_with("../")
}

/// Whether a repository location (a run's source) is a path on this machine rather than a
/// URL of a host: an absolute or relative path, `~`, or `file:`.
pub(crate) fn source_is_local(source: &str) -> bool {
    let s = source.trim();
    if s.to_ascii_lowercase().starts_with("file:") {
        return true;
    }
    if s.contains("://") {
        return false;
    }
    // `host:path` and `user@host:path` (scp-like) name a host; a path has no `:` before its
    // first `/`.
    match (s.find(':'), s.find('/')) {
        (Some(colon), Some(slash)) => slash < colon,
        (Some(_), None) => false,
        (None, _) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_symlinks() {
        for bad in [
            ".git/config",
            "a/.GIT/hooks/x",
            ".git./x",
            "x/.git /y",
            "GIT~1/x",
        ] {
            assert!(git_path_problem(bad).is_some(), "{bad}");
        }
        for ok in [".gitignore", "a/.github/x", "git/x", ".gitmodules"] {
            assert!(git_path_problem(ok).is_none(), "{ok}");
        }
        assert!(symlink_problem("a/link", "/etc/passwd").is_some());
        assert!(symlink_problem("a/link", "../../x").is_some());
        assert!(symlink_problem("link", "../x").is_some());
        assert!(symlink_problem("a/link", "../.git/hooks").is_some());
        assert!(symlink_problem("a/b/link", "../../x").is_none());
        assert!(symlink_problem("link", "a/./b").is_none());
    }

    #[test]
    fn relative_submodule_urls_and_local_sources() {
        assert!(relative_submodule_url("../private.git"));
        assert!(relative_submodule_url(" ./lib"));
        assert!(!relative_submodule_url("https://h/x.git"));
        for local in [
            "/srv/git/p.git",
            "./p",
            "../p",
            "~/p",
            "file:///srv/p",
            "p",
            "a/b:c",
        ] {
            assert!(source_is_local(local), "{local}");
        }
        for remote in [
            "https://github.com/o/p.git",
            "git@github.com:o/p.git",
            "host:p",
            "ssh://h/p",
        ] {
            assert!(!source_is_local(remote), "{remote}");
        }
    }

    #[test]
    fn symlinks_are_followed_through_the_trees_other_symlinks() {
        let tree = |links: &[(&str, &str)]| -> std::collections::HashMap<String, String> {
            links
                .iter()
                .map(|(p, t)| (p.to_string(), t.to_string()))
                .collect()
        };
        // Each fine alone, lexically; together `m` names the repository's parent.
        let t = tree(&[("l", "."), ("m", "l/..")]);
        assert_eq!(symlink_problem("m", "l/.."), None);
        assert_eq!(symlink_escape("m", &t).unwrap().through, ["m", "l"]);
        assert_eq!(symlink_escape("l", &t), None);
        // Deeper: a link to a directory, then up from where it led.
        let t = tree(&[("a/b/up", "../.."), ("x/y", "../a/b/up/..")]);
        assert!(symlink_escape("x/y", &t).is_some());
        // Chains that stay inside.
        let t = tree(&[
            ("docs", "site/docs"),
            ("site/docs", "../content"),
            ("d/link", "../docs/x"),
        ]);
        assert_eq!(symlink_escape("d/link", &t), None);
        assert_eq!(symlink_escape("docs", &t), None);
        // Through an absolute one; a loop.
        let t = tree(&[("abs", "/etc"), ("via", "abs/passwd")]);
        assert_eq!(symlink_escape("via", &t).unwrap().through, ["via", "abs"]);
        assert_eq!(symlink_escape("abs", &t).unwrap().through, ["abs"]);
        let t = tree(&[("a", "b"), ("b", "a")]);
        assert!(symlink_escape("a", &t).is_some());
        assert!(local_submodule_url("/srv/x.git"));
        assert!(local_submodule_url("file:///srv/x"));
        assert!(local_submodule_url("--upload-pack=x"));
        assert!(!local_submodule_url("https://example.invalid/x.git"));
        assert!(!local_submodule_url("../sibling.git"));
    }
}
