//! Finding the `claude` executable.
//!
//! Rules: no `claudeBinary` means `claude` on `PATH`; an absolute path is used as is; a path
//! with a directory part (`bin/claude`, `../x/claude`) is relative to the config directory; a
//! bare name is looked up in the config directory first, then on `PATH`. The resolved path must
//! be an executable regular file. Errors list every place searched.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::error::ConfigError;
use crate::model::Config;
use crate::validate::{resolve, Result};

const DEFAULT_BINARY: &str = "claude";

/// Resolves the claude binary of `config` to an absolute path. `search_path` is the value of
/// `PATH` to search (passed in so tests do not depend on the machine's `PATH`).
pub fn resolve_claude_binary(
    config: &Config,
    search_path: Option<&OsStr>,
) -> Result<PathBuf, ConfigError> {
    let dir = config.config_dir();
    let error = |problem: String, searched: Vec<String>| ConfigError::ClaudeBinary {
        path: config.source.clone(),
        field: "claudeBinary".into(),
        problem,
        searched,
    };

    let (name, local) = match &config.claude_binary {
        None => (PathBuf::from(DEFAULT_BINARY), None),
        Some(p) if p.is_absolute() || p.components().count() > 1 => {
            let candidate = resolve(&dir, p);
            return match executable_problem(&candidate) {
                None => Ok(candidate),
                Some(problem) => Err(error(problem, vec![candidate.display().to_string()])),
            };
        }
        Some(p) => (p.clone(), Some(resolve(&dir, p))),
    };

    let mut searched = Vec::new();
    if let Some(candidate) = local {
        match executable_problem(&candidate) {
            None => return Ok(candidate),
            // A file that is there but unusable is almost certainly the one meant.
            Some(problem) if candidate.exists() => {
                return Err(error(problem, vec![candidate.display().to_string()]))
            }
            Some(_) => searched.push(candidate.display().to_string()),
        }
    }
    let path_desc = match search_path {
        Some(p) if !p.is_empty() => {
            format!("\"{}\" on PATH ({})", name.display(), p.to_string_lossy())
        }
        _ => format!("\"{}\" on PATH (PATH is not set)", name.display()),
    };
    searched.push(path_desc);
    match search_path.filter(|p| !p.is_empty()) {
        Some(paths) => match which::which_in(&name, Some(paths), &dir) {
            Ok(found) => Ok(resolve(&dir, &found)),
            Err(_) => Err(error("found none".into(), searched)),
        },
        None => Err(error("found none".into(), searched)),
    }
}

/// Why `path` cannot be run, or `None` if it is an executable regular file.
fn executable_problem(path: &Path) -> Option<String> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Some(format!("found no file at {}", path.display()))
        }
        Err(err) => return Some(format!("cannot inspect {}: {err}", path.display())),
    };
    if !meta.is_file() {
        return Some(format!(
            "found {}, which is not a regular file",
            path.display()
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o111 == 0 {
            return Some(format!("found {}, which is not executable", path.display()));
        }
    }
    None
}
