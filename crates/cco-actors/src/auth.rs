//! Per-agent `CLAUDE_CONFIG_DIR` preparation.
//!
//! Concurrent CLI instances sharing one config dir corrupt its state, so each agent gets its
//! own. For `oauth` (and as fallback for `api-keys-first`) the user's CLI login is copied in
//! (mode 0600); API keys never are: they travel by environment only.

use std::path::{Path, PathBuf};

use cco_config::AuthMode;
use tracing::{debug, warn};

use crate::context::RunContext;

/// Files of the user's Claude Code login that a fresh config dir needs.
const LOGIN_FILES: &[&str] = &[".credentials.json", "settings.json"];

/// Where the user's own CLI keeps its login.
pub(crate) fn user_config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CLAUDE_CONFIG_DIR") {
        return Some(PathBuf::from(dir));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".claude"))
}

/// Whether this machine has a CLI login to fall back on (`api-keys-first` uses it while every
/// key is rate limited): the login's credentials file, or a token in the environment. On
/// macOS the CLI keeps its login in the keychain, which cco cannot see: assumed present.
pub fn login_available() -> bool {
    let token = ["CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    let file = user_config_dir().is_some_and(|dir| dir.join(LOGIN_FILES[0]).is_file());
    token || file || cfg!(target_os = "macos")
}

pub fn prepare_config_dir(ctx: &RunContext, dir: &Path) {
    if let Err(error) = std::fs::create_dir_all(dir) {
        warn!(dir = %dir.display(), %error, "cannot create agent config dir");
        return;
    }
    if matches!(ctx.config.config.auth_mode, AuthMode::ApiKeysOnly) {
        return;
    }
    if let Some(source) = user_config_dir() {
        copy_login_files(&source, dir);
    }
}

/// Copies this machine's user's Claude Code login into `dest` (a node's agent config dir:
/// a node using OAuth uses its own login). Returns how many files were copied.
pub fn copy_user_login(dest: &Path) -> usize {
    if let Err(error) = std::fs::create_dir_all(dest) {
        warn!(dir = %dest.display(), %error, "cannot create agent config dir");
        return 0;
    }
    user_config_dir().map_or(0, |source| copy_login_files(&source, dest))
}

/// Copies the login files that exist in `source` and not yet in `dest` (mode 0600).
pub fn copy_login_files(source: &Path, dest: &Path) -> usize {
    if source == dest {
        return 0;
    }
    let mut copied = 0;
    for name in LOGIN_FILES {
        let from = source.join(name);
        let to = dest.join(name);
        if !from.is_file() || to.exists() {
            continue;
        }
        match copy_private(&from, &to) {
            Ok(()) => {
                debug!(file = %to.display(), "copied CLI login file");
                copied += 1;
            }
            Err(error) => warn!(file = %from.display(), %error, "could not copy CLI login file"),
        }
    }
    copied
}

fn copy_private(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let data = std::fs::read(from)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)?;
    file.write_all(&data)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn login_files_are_copied_privately_once_and_never_overwritten() {
        let user = tempfile::tempdir().unwrap();
        let agent = tempfile::tempdir().unwrap();
        std::fs::write(user.path().join(".credentials.json"), "{\"token\":\"t\"}").unwrap();
        std::fs::write(user.path().join("unrelated.json"), "{}").unwrap();
        assert_eq!(super::copy_login_files(user.path(), agent.path()), 1);
        let copied = agent.path().join(".credentials.json");
        assert_eq!(
            std::fs::read_to_string(&copied).unwrap(),
            "{\"token\":\"t\"}"
        );
        assert_eq!(
            std::fs::metadata(&copied).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!agent.path().join("unrelated.json").exists());
        // The agent's own (possibly refreshed) login is kept.
        std::fs::write(&copied, "agent's own").unwrap();
        assert_eq!(super::copy_login_files(user.path(), agent.path()), 0);
        assert_eq!(std::fs::read_to_string(&copied).unwrap(), "agent's own");
    }
}
