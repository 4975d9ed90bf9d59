//! Configuration of cco: loading, validating and explaining the files in a config directory.
//!
//! A config directory holds:
//!
//! - `orchestrator.json` (required): the run settings, parsed into [`Config`].
//! - `api-keys.json` (optional): named credentials, parsed into [`ApiKey`]s.
//!
//! [`load`] reads both, validates every field, resolves relative paths against the config
//! directory and locates the `claude` binary, returning a [`LoadedConfig`]. The pure parsers
//! [`Config::from_json_str`] and [`parse_api_keys`] do no file system access and are what tests
//! and tools that only inspect a file should use.
//!
//! # Layout
//!
//! - `model`: [`Config`] and its parts (enums, [`Models`], [`RepositoryLocation`]).
//! - `keys`: [`ApiKey`], [`KeyAuth`] and the api-keys.json parser.
//! - `secret`: [`Secret`] (never printed) and [`Redactor`] (scrubs secrets from text).
//! - `binary`: finding the claude executable.
//! - `validate`: typed field access on `serde_json::Value` with precise errors.
//! - `error`: [`ConfigError`].
//!
//! # Rules
//!
//! - Every error names the file (full path), the field as a JSON path (`gitCloneOptions.depth`,
//!   `[2].apiKey`) and what was expected. Unknown keys are errors, with a "did you mean" hint,
//!   because a silently ignored typo (`workerCont`) is worse than a refused start.
//! - Secrets never reach `Debug`, `Display`, `Serialize` or an error message.
//! - No input can make this crate panic.

mod binary;
mod error;
mod keys;
mod model;
mod secret;
mod validate;

use std::path::{Path, PathBuf};

pub use binary::resolve_claude_binary;
pub use error::ConfigError;
pub use keys::{parse_api_keys, ApiKey, KeyAuth};
pub use model::{
    AuthMode, Config, GitCloneOptions, MergeStrategy, Models, PermissionMode, RepositoryLocation,
    MAX_CLONE_DEPTH, MAX_MS, MAX_RUN_MINUTES, MAX_TURNS,
};
pub use secret::{Redactor, Secret, MIN_REDACTED_LEN, REDACTED};

/// Name of the required settings file in a config directory.
pub const CONFIG_FILE_NAME: &str = "orchestrator.json";
/// Name of the optional credentials file in a config directory.
pub const API_KEYS_FILE_NAME: &str = "api-keys.json";

/// Everything [`load`] produced from a config directory.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The config directory, absolute.
    pub dir: PathBuf,
    pub config: Config,
    /// Empty when there is no api-keys.json.
    pub api_keys: Vec<ApiKey>,
    /// The claude executable, absolute.
    pub claude_binary: PathBuf,
    /// Problems that do not stop a run (e.g. a world-readable api-keys.json); the CLI prints them.
    pub warnings: Vec<String>,
}

impl LoadedConfig {
    /// A redactor for every secret in api-keys.json.
    pub fn redactor(&self) -> Redactor {
        Redactor::from_keys(&self.api_keys)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE_NAME)
    }

    pub fn api_keys_path(&self) -> PathBuf {
        self.dir.join(API_KEYS_FILE_NAME)
    }
}

/// Loads `dir/orchestrator.json` and, if present, `dir/api-keys.json`; validates them and
/// resolves the claude binary (searching the process's `PATH` when needed).
pub fn load(dir: &Path) -> Result<LoadedConfig, ConfigError> {
    let dir = std::path::absolute(dir).map_err(|source| ConfigError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let config_path = dir.join(CONFIG_FILE_NAME);
    let text = read_text(&config_path)?.ok_or_else(|| ConfigError::MissingFile {
        path: config_path.clone(),
        what: format!(
            "every config directory needs an {CONFIG_FILE_NAME}; see docs/configuration.md"
        ),
    })?;
    let config = Config::from_json_str(&text, &config_path)?;

    let mut warnings = Vec::new();
    let keys_path = dir.join(API_KEYS_FILE_NAME);
    let api_keys = match read_text(&keys_path)? {
        None => Vec::new(),
        Some(text) => {
            if let Some(warning) = world_readable_warning(&keys_path) {
                warnings.push(warning);
            }
            parse_api_keys(&text, &keys_path)?
        }
    };

    match config.auth_mode {
        AuthMode::ApiKeysOnly if api_keys.is_empty() => {
            let found = if keys_path.exists() {
                "an empty list"
            } else {
                "no such file"
            };
            return Err(ConfigError::NoApiKeys {
                path: config_path,
                keys_path,
                found: found.into(),
            });
        }
        AuthMode::ApiKeysFirst if api_keys.is_empty() => warnings.push(format!(
            "{}: authMode is \"api-keys-first\" but {} has no keys; every process will use OAuth",
            config_path.display(),
            keys_path.display()
        )),
        AuthMode::Oauth if !api_keys.is_empty() => warnings.push(format!(
            "{}: authMode is \"oauth\", so the {} key(s) in {} are not used",
            config_path.display(),
            api_keys.len(),
            keys_path.display()
        )),
        _ => {}
    }

    let path_var = std::env::var_os("PATH");
    let claude_binary = resolve_claude_binary(&config, path_var.as_deref())?;
    Ok(LoadedConfig {
        dir,
        config,
        api_keys,
        claude_binary,
        warnings,
    })
}

/// The file's text, or `None` if it does not exist.
fn read_text(path: &Path) -> Result<Option<String>, ConfigError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|err| ConfigError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "expected UTF-8 text, found an invalid byte at offset {}",
                    err.utf8_error().valid_up_to()
                ),
            ),
        })
}

#[cfg(unix)]
fn world_readable_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o004 != 0).then(|| {
        format!(
            "{}: readable by every user on this machine (mode {:o}); it holds secrets, run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )
    })
}

#[cfg(not(unix))]
fn world_readable_warning(_path: &Path) -> Option<String> {
    None
}
