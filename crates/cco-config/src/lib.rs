//! Configuration of cco: loading, validating and explaining the files in a config directory.
//!
//! A config directory holds:
//!
//! - `orchestrator.json` (required): the run settings, parsed into [`Config`].
//! - `api-keys.json` (optional): named credentials, parsed into [`ApiKey`]s.
//!
//! [`load`] reads both, validates every field, resolves relative paths against the config
//! directory and locates the `claude` binary, returning a [`LoadedConfig`]. [`load_path`] also
//! takes the path of the settings file itself (any name; api-keys.json is read beside it). The
//! pure parsers [`Config::from_json_str`] and [`parse_api_keys`] do no file system access and
//! are what tests and tools that only inspect a file should use.
//!
//! Config directories of the original tool (`@mohsen/claude-code-orchestrator`) load unchanged:
//! its keys are read with their original meaning and each gets a [`KeyNote`]
//! (`Config::original_keys`), and api-keys.json accepts all of its forms.
//!
//! # Layout
//!
//! - `model`: [`Config`] and its parts (enums, [`Models`], [`RepositoryLocation`]).
//! - `parse`: orchestrator.json → [`Config`]; `legacy`: the original tool's keys;
//!   `repository`: `repositoryUrl` forms.
//! - `keys`: [`ApiKey`], [`KeyAuth`] and the api-keys.json parser.
//! - `env`: environment variables for agents (names, reserved names, secret values).
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
mod cluster;
mod env;
mod error;
mod keys;
mod legacy;
mod model;
mod parse;
mod repository;
mod secret;
mod validate;

use std::path::{Path, PathBuf};

pub use binary::resolve_claude_binary;
pub use cluster::{
    is_loopback_host, split_host_port, ClusterConfig, ClusterTls, NodeAddress, MAX_SLOTS,
};
pub use env::{reserved_reason, CREDENTIAL_VARS};
pub use error::ConfigError;
pub use keys::{parse_api_keys, ApiKey, KeyAuth};
pub use model::{
    AuthMode, Config, GitCloneOptions, KeyNote, MergeStrategy, Models, OrphanPolicy,
    PermissionMode, RepositoryLocation, StructuredOutput, MAX_CLONE_DEPTH, MAX_MS, MAX_RUN_MINUTES,
    MAX_TURNS,
};
pub use parse::{
    MAX_API_RETRIES, MAX_AUTO_RESOLVE_CONFLICTS, MAX_TOOL_USES_PER_INSTANCE, MAX_TOTAL_TOOL_USES,
    TOP_KEYS,
};
pub use repository::mask_userinfo;
pub use secret::{Redactor, Secret, MIN_REDACTED_LEN, REDACTED};

/// Name of the required settings file in a config directory.
pub const CONFIG_FILE_NAME: &str = "orchestrator.json";
/// Name of the optional credentials file in a config directory.
pub const API_KEYS_FILE_NAME: &str = "api-keys.json";

/// Everything [`load`] produced from a config directory.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The config directory (the settings file's directory), absolute.
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
    /// A redactor for every secret: api-keys.json's, and the values of `env`.
    pub fn redactor(&self) -> Redactor {
        self.redactor_with(std::iter::empty())
    }

    /// [`redactor`](Self::redactor), also redacting `extra` secrets (`(name, value)`): what
    /// the application knows besides the config (a login token, its own environment's keys).
    pub fn redactor_with(&self, extra: impl IntoIterator<Item = (String, Secret)>) -> Redactor {
        let env = self
            .config
            .env
            .iter()
            .map(|(name, value)| (format!("env.{name}"), value.clone()));
        Redactor::new(
            Redactor::key_secrets(&self.api_keys)
                .chain(env)
                .chain(extra),
        )
    }

    /// The settings file that was read (`orchestrator.json`, or the file given to
    /// [`load_path`]), absolute.
    pub fn config_path(&self) -> PathBuf {
        self.config.source.clone()
    }

    pub fn api_keys_path(&self) -> PathBuf {
        self.dir.join(API_KEYS_FILE_NAME)
    }
}

/// Loads `dir/orchestrator.json` and, if present, `dir/api-keys.json`; validates them and
/// resolves the claude binary (searching the process's `PATH` when needed).
pub fn load(dir: &Path) -> Result<LoadedConfig, ConfigError> {
    let dir = absolute(dir)?;
    load_file(&dir.join(CONFIG_FILE_NAME))
}

/// [`load`] for a path that is either a config directory or the settings file itself (a file
/// of any name: exactly that file is read, and `api-keys.json` beside it).
pub fn load_path(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let path = absolute(path)?;
    if path.is_file() {
        load_file(&path)
    } else {
        load(&path)
    }
}

fn absolute(path: &Path) -> Result<PathBuf, ConfigError> {
    std::path::absolute(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn load_file(config_path: &Path) -> Result<LoadedConfig, ConfigError> {
    let config_path = config_path.to_path_buf();
    let dir = config_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let text = read_text(&config_path)?.ok_or_else(|| ConfigError::MissingFile {
        path: config_path.clone(),
        what: if config_path.file_name() == Some(CONFIG_FILE_NAME.as_ref()) {
            format!("every config directory needs an {CONFIG_FILE_NAME}; see docs/configuration.md")
        } else {
            "the settings file named by --config".to_string()
        },
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
        _ => {}
    }

    credential_env_conflict(&config, &api_keys, &keys_path)?;

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

/// A name in `env` that a credential in use also sets: the credential's value would win for
/// its processes and not for the others, which is never what was meant.
fn credential_env_conflict(
    config: &Config,
    api_keys: &[ApiKey],
    keys_path: &Path,
) -> Result<(), ConfigError> {
    // Every mode uses the keys (oauth: while the login is rate limited).
    for name in config.env.keys() {
        if let Some(key) = api_keys
            .iter()
            .find(|key| key.var_names().contains(&name.as_str()))
        {
            return Err(ConfigError::InvalidValue {
                path: config.source.clone(),
                field: format!("env.{name}"),
                expected: "a variable that no credential in api-keys.json sets".into(),
                found: format!(
                    "{name}, also set by the entry \"{}\" of {} (set it there, per credential)",
                    key.name,
                    keys_path.display()
                ),
                suggestion: None,
            });
        }
    }
    Ok(())
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
