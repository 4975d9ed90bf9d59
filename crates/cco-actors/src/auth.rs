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
fn user_config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CLAUDE_CONFIG_DIR") {
        return Some(PathBuf::from(dir));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".claude"))
}

pub fn prepare_config_dir(ctx: &RunContext, dir: &Path) {
    if let Err(error) = std::fs::create_dir_all(dir) {
        warn!(dir = %dir.display(), %error, "cannot create agent config dir");
        return;
    }
    if matches!(ctx.config.config.auth_mode, AuthMode::ApiKeysOnly) {
        return;
    }
    let Some(source) = user_config_dir() else { return };
    if source == dir {
        return;
    }
    for name in LOGIN_FILES {
        let from = source.join(name);
        let to = dir.join(name);
        if !from.is_file() || to.exists() {
            continue;
        }
        match copy_private(&from, &to) {
            Ok(()) => debug!(file = %to.display(), "copied CLI login file"),
            Err(error) => warn!(file = %from.display(), %error, "could not copy CLI login file"),
        }
    }
}

fn copy_private(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let data = std::fs::read(from)?;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(to)?;
    file.write_all(&data)
}
