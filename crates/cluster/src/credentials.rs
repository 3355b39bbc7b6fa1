//! A node's identity inside the cluster (DESIGN.md §4): a certificate from the
//! cluster CA, its key, and the CA certificate it trusts, kept in the node's
//! data dir; and the tokens operators hand to new nodes and admin clients,
//! which name the CA by fingerprint so the first contact is authenticated too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::ClusterError;

/// The DNS name every node certificate carries; peers verify it instead of
/// an address, so a node may move or be reached through any address.
pub const NODE_NAME: &str = "wharf-node";
/// The DNS name of certificates issued to operators (`wharf cluster admin-cert`).
pub const ADMIN_NAME: &str = "wharf-admin";
/// How long a node certificate is valid. A node renews its own at start-up
/// once less than a third of that remains.
pub const NODE_CERT_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// Directory under the cluster data dir holding the files below.
pub const TLS_DIR: &str = "tls";
pub const CA_FILE: &str = "ca.pem";
pub const CERT_FILE: &str = "node.pem";
pub const KEY_FILE: &str = "node.key";

/// A certificate chain and key issued by the cluster CA, with the CA
/// certificate to verify others by.
#[derive(Clone)]
pub struct Credentials {
    pub ca_pem: String,
    /// The leaf, then the CA.
    pub chain_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("ca", &self.ca_fingerprint())
            .finish_non_exhaustive()
    }
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `contents` to `path` (mode 0600) through a temporary file, so a
/// crash never leaves half a key behind.
pub fn write_private(path: &Path, contents: &str) -> Result<(), ClusterError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut f| f.write_all(contents.as_bytes()).and_then(|()| f.sync_all()))
        .map_err(file_error(&temporary))?;
    std::fs::rename(&temporary, path).map_err(file_error(path))
}

impl Credentials {
    /// The credentials kept in `dir`, or `None` if any file is missing.
    pub fn load(dir: &Path) -> Result<Option<Self>, ClusterError> {
        let read = |name: &str| -> Result<Option<String>, ClusterError> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(s) => Ok(Some(s)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(ClusterError::File { path, source }),
            }
        };
        let (Some(ca_pem), Some(chain_pem), Some(key_pem)) =
            (read(CA_FILE)?, read(CERT_FILE)?, read(KEY_FILE)?)
        else {
            return Ok(None);
        };
        let credentials = Self {
            ca_pem,
            chain_pem,
            key_pem,
        };
        wharf_tls::certified_key(
            credentials.chain_pem.as_bytes(),
            credentials.key_pem.as_bytes(),
        )
        .map_err(|e| ClusterError::File {
            path: dir.join(CERT_FILE),
            source: std::io::Error::other(format!("not a usable certificate and key: {e}")),
        })?;
        Ok(Some(credentials))
    }

    pub fn save(&self, dir: &Path) -> Result<(), ClusterError> {
        std::fs::create_dir_all(dir).map_err(file_error(dir))?;
        write_private(&dir.join(KEY_FILE), &self.key_pem)?;
        write_private(&dir.join(CERT_FILE), &self.chain_pem)?;
        write_private(&dir.join(CA_FILE), &self.ca_pem)
    }

    pub fn ca_fingerprint(&self) -> String {
        wharf_tls::leaf_fingerprint(&self.ca_pem).unwrap_or_default()
    }

    /// Whether less than a third of the certificate's lifetime remains.
    pub fn due_for_renewal(&self, now: u64) -> bool {
        wharf_tls::inspect_leaf_pem(&self.chain_pem)
            .is_none_or(|f| f.not_after < now + NODE_CERT_LIFETIME.as_secs() / 3)
    }
}

/// Where a node keeps its credentials: `<cluster data dir>/tls`.
pub fn tls_dir(cluster_dir: &Path) -> PathBuf {
    cluster_dir.join(TLS_DIR)
}

const TOKEN_PREFIX: &str = "wharf1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error(
        "not a Wharf token: expected wharf1.SECRET.CA-FINGERPRINT as printed by \
         `wharf cluster token` (or found in DATA_DIR/cluster/admin_token)"
    )]
    Malformed,
}

/// A join or admin token: the shared secret, and the SHA-256 of the cluster
/// CA certificate so the holder can verify the node it first talks to.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub secret: String,
    pub ca_fingerprint: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("ca_fingerprint", &self.ca_fingerprint)
            .finish_non_exhaustive()
    }
}

impl Token {
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let mut parts = text.trim().split('.');
        let (Some(TOKEN_PREFIX), Some(secret), Some(fingerprint), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
        if secret.is_empty() || !hex(secret) || fingerprint.len() != 64 || !hex(fingerprint) {
            return Err(TokenError::Malformed);
        }
        Ok(Self {
            secret: secret.to_owned(),
            ca_fingerprint: fingerprint.to_ascii_lowercase(),
        })
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{TOKEN_PREFIX}.{}.{}", self.secret, self.ca_fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let token = Token {
            secret: "ab12".into(),
            ca_fingerprint: "f".repeat(64),
        };
        assert_eq!(Token::parse(&token.to_string()).unwrap(), token);
        assert_eq!(Token::parse(&format!(" {token}\n")).unwrap(), token);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let fp = "0".repeat(64);
        for bad in [
            String::new(),
            "ab12".into(),
            format!("wharf2.ab12.{fp}"),
            format!("wharf1..{fp}"),
            format!("wharf1.zz.{fp}"),
            "wharf1.ab12.0123".into(),
            format!("wharf1.ab12.{fp}.x"),
        ] {
            assert_eq!(Token::parse(&bad), Err(TokenError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let token = Token {
            secret: "5ec7e7".into(),
            ca_fingerprint: "a".repeat(64),
        };
        assert!(!format!("{token:?}").contains("5ec7e7"));
    }
}
