//! [`probe_cli`]: what a `claude` binary supports, asked once per run (`claude --help`).
//!
//! Today it answers one question: does the CLI know `--json-schema` (structured output,
//! Claude Code 2.1.x)? A CLI that does not would refuse the flag ("unknown option") and fail
//! every planning turn, so callers probe first and fall back to text answers.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::spec::ALWAYS_REMOVED_ENV;

/// What the probed CLI supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CliFeatures {
    /// `--json-schema <schema>`: answers through the `StructuredOutput` tool, checked by the
    /// CLI and reported as `structured_output` in the `result` event.
    pub structured_output: StructuredOutput,
}

/// Whether the CLI does structured output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StructuredOutput {
    /// `--help` lists `--json-schema`.
    Supported,
    /// It does not: use text answers (lenient parsing and the repair loop).
    Unsupported,
}

impl StructuredOutput {
    pub fn is_supported(self) -> bool {
        self == StructuredOutput::Supported
    }
}

/// Why the CLI could not be probed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot run {} --help: {source}", binary.display())]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("{} --help gave no answer within {} s", binary.display(), timeout.as_secs())]
    Timeout { binary: PathBuf, timeout: Duration },
    #[error("{} --help failed ({status}): {stderr}", binary.display())]
    Failed {
        binary: PathBuf,
        status: crate::ExitInfo,
        stderr: String,
    },
}

/// Runs `<binary> --help` (stdin closed, `CLAUDECODE` removed, killed after `timeout`) and
/// reads what it supports from the text.
pub async fn probe_cli(binary: &Path, timeout: Duration) -> Result<CliFeatures, ProbeError> {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.arg("--help")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for name in ALWAYS_REMOVED_ENV {
        cmd.env_remove(name);
    }
    let child = cmd.spawn().map_err(|source| ProbeError::Spawn {
        binary: binary.to_path_buf(),
        source,
    })?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(source)) => {
            return Err(ProbeError::Spawn {
                binary: binary.to_path_buf(),
                source,
            })
        }
        Err(_) => {
            return Err(ProbeError::Timeout {
                binary: binary.to_path_buf(),
                timeout,
            })
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() && stdout.trim().is_empty() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(ProbeError::Failed {
            binary: binary.to_path_buf(),
            status: crate::ExitInfo::from_status(output.status),
            stderr: crate::parse::excerpt(stderr.trim()),
        });
    }
    Ok(features_from_help(&stdout))
}

/// Reads the features from the text of `claude --help`.
pub fn features_from_help(help: &str) -> CliFeatures {
    let json_schema = help
        .split(|c: char| c.is_whitespace() || c == ',')
        .any(|word| word == "--json-schema");
    CliFeatures {
        structured_output: if json_schema {
            StructuredOutput::Supported
        } else {
            StructuredOutput::Unsupported
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_text_decides() {
        let with = "Options:\n  --json-schema <schema>   JSON Schema for structured output\n";
        assert!(features_from_help(with).structured_output.is_supported());
        let without = "Options:\n  --json-schema-ish\n  --model <model>\n";
        assert_eq!(
            features_from_help(without).structured_output,
            StructuredOutput::Unsupported
        );
    }
}
