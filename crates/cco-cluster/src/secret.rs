//! The cookie both sides prove they know, and the TLS settings of nodes and heads.
//!
//! A cookie file must be readable by its owner only (mode 0600 or stricter): anyone who can
//! read it can run turns, with the run's API keys, on every node. ractor_cluster never sends
//! the cookie (it is a challenge), but only TLS encrypts what follows.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::error::ClusterError;

/// Shortest cookie accepted (a guessable cookie is no secret).
pub const MIN_COOKIE_LEN: usize = 16;

/// Reads the cookie: the file's first line, trimmed. Refused when group or others may read
/// or write it, when it is shorter than [`MIN_COOKIE_LEN`], or not one line of text.
pub fn read_cookie(path: &Path) -> Result<String, ClusterError> {
    use std::os::unix::fs::PermissionsExt;
    let problem = |problem: String| ClusterError::Cookie {
        path: path.to_path_buf(),
        problem,
    };
    let meta = std::fs::metadata(path).map_err(|e| problem(e.to_string()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(problem(format!(
            "mode {mode:o} lets other users read or change it; run `chmod 600 {}`",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| problem(e.to_string()))?;
    let cookie = text.lines().next().unwrap_or("").trim().to_string();
    if cookie.len() < MIN_COOKIE_LEN || cookie.chars().any(char::is_control) {
        return Err(problem(format!(
            "the cookie must be one line of at least {MIN_COOKIE_LEN} characters"
        )));
    }
    Ok(cookie)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn tls_err(what: &str, path: &Path, e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Tls(format!("{what} {}: {e}", path.display()))
}

/// A node's TLS acceptor from its certificate chain and private key (PEM files).
pub fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, ClusterError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_err("certificate", cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err("certificate", cert, e))?;
    if chain.is_empty() {
        return Err(tls_err("certificate", cert, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_err("private key", key, e))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClusterError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| ClusterError::Tls(format!("certificate and key: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A head's TLS connector trusting the CA certificates in `ca` (PEM).
pub fn connector(ca: &Path) -> Result<tokio_rustls::TlsConnector, ClusterError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| tls_err("CA file", ca, e))? {
        let cert = cert.map_err(|e| tls_err("CA file", ca, e))?;
        roots
            .add(cert)
            .map_err(|e| tls_err("CA certificate in", ca, e))?;
    }
    if roots.is_empty() {
        return Err(tls_err("CA file", ca, "no certificate in the file"));
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClusterError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// The name a node's certificate must carry.
pub fn server_name(name: &str) -> Result<ServerName<'static>, ClusterError> {
    ServerName::try_from(name.to_string())
        .map_err(|e| ClusterError::Tls(format!("server name {name:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_cookie_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cookie");
        std::fs::write(&path, "0123456789abcdef-secret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_cookie(&path).unwrap_err().to_string();
        assert!(e.contains("mode 644") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_cookie(&path).unwrap(), "0123456789abcdef-secret");
        std::fs::write(&path, "short\n").unwrap();
        assert!(read_cookie(&path)
            .unwrap_err()
            .to_string()
            .contains("at least 16"));
    }
}
