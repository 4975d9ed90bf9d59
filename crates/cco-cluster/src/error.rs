//! [`ClusterError`]: everything that can go wrong between a head and its nodes.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    #[error("cookie file {}: {problem}", path.display())]
    Cookie { path: PathBuf, problem: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {address}: {reason}")]
    Listen { address: String, reason: String },
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("node {node}: {reason}")]
    Node { node: String, reason: String },
    #[error(transparent)]
    Git(Box<cco_git::GitError>),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<cco_git::GitError> for ClusterError {
    fn from(error: cco_git::GitError) -> Self {
        ClusterError::Git(Box::new(error))
    }
}

impl ClusterError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ClusterError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
