//! What makes every git process cco runs immune to what agents can write: hooks, config and
//! attribute files. Applied by the command builder (`git.rs`) to every process, so it is
//! written once.
//!
//! - Hooks never run: `-c core.hooksPath=/dev/null` (no file can be created below it).
//! - Config an agent can write is not read: no system config (`GIT_CONFIG_NOSYSTEM`), a global
//!   config that is a file cco owns (`GIT_CONFIG_GLOBAL`; an agent's `git config --global`
//!   writes the user's `~/.gitconfig`). Only ops that talk to the run's remote (clone, fetch
//!   and push of origin) read the user's global and system config, for credentials, ssh and
//!   URL rewrites.
//! - The repository's own config is read (git has no switch for it), but every key that
//!   runs a program or changes what cco sees is pinned on the command line, which wins over
//!   every file: `core.fsmonitor`, signing, auto gc/maintenance, `submodule.recurse`, sparse
//!   checkout, untracked-file display, attribute and exclude files. Keys with an agent-chosen
//!   name that run programs (`filter.<x>.*`, `merge.<x>.driver`, `diff.<x>.command` /
//!   `textconv`, `submodule.<x>.update`) are read from the repository's effective config
//!   (includes followed) and each is pinned to a value that runs nothing.
//! - Replace refs and grafts are ignored (`GIT_NO_REPLACE_OBJECTS`), so an agent cannot make
//!   cco see another history than the one it fetches.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The paths the hardening points git at. Both are `/dev/null`: nothing can be put into it,
/// so no agent can plant a hook or a config line there.
#[derive(Debug, Clone)]
pub(crate) struct Hardening {
    /// The hooks path of every git process (`/dev/null/<hook>` never exists).
    pub no_hooks: PathBuf,
    /// An empty file: the global config of local ops, the attributes and excludes files.
    pub empty: PathBuf,
}

/// Fixed overrides given to every git process (`-c key=value`).
pub(crate) fn fixed_overrides(h: &Hardening) -> Vec<String> {
    let hooks = h.no_hooks.display();
    let empty = h.empty.display();
    vec![
        format!("core.hooksPath={hooks}"),
        "core.fsmonitor=false".into(),
        "core.untrackedCache=false".into(),
        "core.sparseCheckout=false".into(),
        "core.protectNTFS=true".into(),
        "core.protectHFS=true".into(),
        format!("core.attributesFile={empty}"),
        format!("core.excludesFile={empty}"),
        "core.pager=cat".into(),
        "commit.gpgSign=false".into(),
        "tag.gpgSign=false".into(),
        "merge.verifySignatures=false".into(),
        "gc.auto=0".into(),
        "maintenance.auto=false".into(),
        "submodule.recurse=false".into(),
        "status.showUntrackedFiles=normal".into(),
        "advice.detachedHead=false".into(),
    ]
}

/// The pinned value of a config key whose name an agent chooses, or `None` for harmless keys.
fn neutral_value(key: &str) -> Option<&'static str> {
    let lower = key.to_ascii_lowercase();
    let (section, rest) = lower.split_once('.')?;
    let (_, var) = rest.rsplit_once('.')?;
    match (section, var) {
        ("filter", "clean" | "smudge" | "process") => Some(""),
        ("filter", "required") => Some("false"),
        // A failing driver leaves the path conflicted: git reports it, nothing is resolved
        // behind anyone's back.
        ("merge", "driver") => Some("false"),
        ("diff", "command" | "textconv") => Some(""),
        ("submodule", "update") => Some("checkout"),
        _ => None,
    }
}

/// The overrides neutralising every agent-named driver in `keys` (config key names).
pub(crate) fn driver_overrides<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = keys
        .into_iter()
        .filter_map(|k| neutral_value(k).map(|v| format!("{k}={v}")))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Identity of a config file's content as far as a cache needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime_ns: i128,
    ino: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: m.len(),
        mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        ino: m.ino(),
    })
}

/// Driver overrides per git dir, valid while its `config` file is unchanged. Config that
/// pulls in other files (`include`, `includeIf`, per-worktree config) is never cached.
#[derive(Default)]
pub(crate) struct DriverCache {
    entries: Mutex<HashMap<PathBuf, (Stamp, Vec<String>)>>,
}

impl DriverCache {
    pub fn get(&self, git_dir: &Path) -> Option<Vec<String>> {
        let now = stamp(&git_dir.join("config"))?;
        let entries = self.entries.lock().ok()?;
        let (s, v) = entries.get(git_dir)?;
        (s == &now).then(|| v.clone())
    }

    pub fn put(&self, git_dir: &Path, overrides: Vec<String>) {
        let config = git_dir.join("config");
        let Some(s) = stamp(&config) else {
            return;
        };
        let text = std::fs::read_to_string(&config)
            .unwrap_or_default()
            .to_ascii_lowercase();
        if text.contains("include") || text.contains("worktreeconfig") {
            return;
        }
        if let Ok(mut e) = self.entries.lock() {
            e.insert(git_dir.to_path_buf(), (s, overrides));
        }
    }
}

/// The `upload-pack` cco's fetch runs in an agent's repository (through `sh`): no hooks, no
/// fsmonitor, any commit id may be asked for.
pub(crate) fn upload_pack_command(git: &str, h: &Hardening) -> String {
    format!(
        "{} -c core.hooksPath={} -c core.fsmonitor=false -c uploadpack.allowAnySHA1InWant=true upload-pack",
        shell_quote(git),
        shell_quote(&h.no_hooks.to_string_lossy()),
    )
}

/// Overrides for a fetch from an agent's repository: only the local file transport, and
/// every received object checked, a `.git`-like path being an error rather than a warning.
pub(crate) fn agent_fetch_overrides() -> Vec<String> {
    [
        "protocol.allow=never",
        "protocol.file.allow=always",
        "protocol.version=2",
        "fetch.fsckObjects=true",
        "fetch.fsck.hasDotgit=error",
        "fetch.fsck.hasDotdot=error",
        "fetch.fsck.fullPathname=error",
    ]
    .iter()
    .flat_map(|o| ["-c".to_string(), o.to_string()])
    .collect()
}

/// Single-quotes `s` for `sh`.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_named_drivers_are_pinned_to_values_that_run_nothing() {
        let keys = [
            "filter.evil.clean",
            "filter.evil.process",
            "filter.lfs.required",
            "merge.mine.driver",
            "merge.mine.name",
            "diff.x.textconv",
            "diff.x.command",
            "submodule.s.update",
            "user.name",
            "core.fsmonitor",
            "FILTER.Up.Smudge",
            "filter.a.b.clean",
        ];
        assert_eq!(
            driver_overrides(keys),
            vec![
                "FILTER.Up.Smudge=",
                "diff.x.command=",
                "diff.x.textconv=",
                "filter.a.b.clean=",
                "filter.evil.clean=",
                "filter.evil.process=",
                "filter.lfs.required=false",
                "merge.mine.driver=false",
                "submodule.s.update=checkout",
            ]
        );
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
