//! `repositoryUrl` (and `localRepoPath`): which repository a run works on, parsed without
//! touching the file system.

use std::path::Path;

use crate::model::RepositoryLocation;
use crate::validate::resolve;

/// Parses a `repositoryUrl`; the error is a short reason for the message.
pub(crate) fn parse_repository(raw: &str, dir: &Path) -> Result<RepositoryLocation, String> {
    if raw.trim().is_empty() {
        return Err("it is empty".into());
    }
    if raw.trim() != raw {
        return Err("it has leading or trailing whitespace".into());
    }
    // A leading "-" would be read by git as an option (e.g. "--upload-pack=...").
    if raw.starts_with('-') {
        return Err("it starts with \"-\"".into());
    }
    if raw.chars().any(char::is_control) {
        return Err("it contains a control character".into());
    }
    if let Some(rest) = raw.strip_prefix("file://") {
        if rest.is_empty() {
            return Err("the file:// URL has no path".into());
        }
        return Ok(RepositoryLocation::LocalPath(resolve(dir, Path::new(rest))));
    }
    for scheme in ["https://", "http://", "ssh://"] {
        if let Some(rest) = raw.strip_prefix(scheme) {
            let authority = rest.split('/').next().unwrap_or("");
            let host = authority.rsplit('@').next().unwrap_or("");
            if host.is_empty() || host.starts_with(':') {
                return Err(format!("the {scheme} URL has no host"));
            }
            if raw.chars().any(char::is_whitespace) {
                return Err("a URL cannot contain whitespace".into());
            }
            return Ok(RepositoryLocation::Remote(raw.to_string()));
        }
    }
    if let Some(at) = raw.find("://") {
        return Err(format!("unsupported URL scheme \"{}\"", &raw[..at]));
    }
    if is_scp_like(raw) {
        return Ok(RepositoryLocation::Remote(raw.to_string()));
    }
    Ok(RepositoryLocation::LocalPath(resolve(dir, Path::new(raw))))
}

/// `user@host:path`, as git's scp-like syntax (a user is required, so `C:`-style or
/// `dir:file` local paths are not mistaken for remotes).
fn is_scp_like(raw: &str) -> bool {
    let Some((user_host, path)) = raw.split_once(':') else {
        return false;
    };
    let Some((user, host)) = user_host.split_once('@') else {
        return false;
    };
    let word = |s: &str, extra: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    };
    word(user, "._-")
        && word(host, ".-")
        && !path.is_empty()
        && !raw.chars().any(char::is_whitespace)
}

/// Hides a password in `scheme://user:password@host/...` (for messages and summaries).
pub fn mask_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) if authority[..at].contains(':') => {
            let user = authority[..at].split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme_end + 3], &rest[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_forms() {
        let dir = Path::new("/cfg");
        let remote = |s: &str| RepositoryLocation::Remote(s.into());
        assert_eq!(
            parse_repository("https://github.com/a/b.git", dir),
            Ok(remote("https://github.com/a/b.git"))
        );
        assert_eq!(
            parse_repository("http://h/a", dir),
            Ok(remote("http://h/a"))
        );
        assert_eq!(
            parse_repository("ssh://git@h:22/a", dir),
            Ok(remote("ssh://git@h:22/a"))
        );
        assert_eq!(
            parse_repository("git@github.com:a/b.git", dir),
            Ok(remote("git@github.com:a/b.git"))
        );
        assert_eq!(
            parse_repository("file:///srv/repo", dir),
            Ok(RepositoryLocation::LocalPath("/srv/repo".into()))
        );
        assert_eq!(
            parse_repository("./demo-repo", dir),
            Ok(RepositoryLocation::LocalPath("/cfg/demo-repo".into()))
        );
        assert_eq!(
            parse_repository("/abs/repo", dir),
            Ok(RepositoryLocation::LocalPath("/abs/repo".into()))
        );
        for bad in [
            "",
            " ",
            "-oProxyCommand=x",
            "ftp://h/a",
            "https://",
            "https:///a",
            "a\nb",
            " x",
        ] {
            assert!(parse_repository(bad, dir).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn masks_passwords() {
        assert_eq!(mask_userinfo("https://u:tok@h/a"), "https://u:***@h/a");
        assert_eq!(mask_userinfo("https://h/a@b"), "https://h/a@b");
        assert_eq!(mask_userinfo("ftp://x"), "ftp://x");
    }
}
