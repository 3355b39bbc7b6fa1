//! The server's certificate chain and private key: loaded from PEM files the
//! operator gives, or a self-signed ECDSA P-256 certificate generated into the
//! data directory on first start.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use crate::resolver::{certified_key_der, CertificateError};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no usable PEM private key (PKCS#8, SEC1 or PKCS#1 expected)")]
    NoKey { path: PathBuf },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Where it came from, for the start-up summary.
    pub source: String,
}

impl Clone for ServerIdentity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            source: self.source.clone(),
        }
    }
}

impl ServerIdentity {
    /// Loads a chain (leaf first, intermediates after) and its key from PEM files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, IdentityError> {
        let cert_pem = read(cert)?;
        let key_pem = read(key)?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .filter_map(Result::ok)
            .collect();
        if chain.is_empty() {
            return Err(IdentityError::NoCertificate { path: cert.into() });
        }
        let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|_| IdentityError::NoKey { path: key.into() })?;
        Ok(Self {
            chain,
            key: key_der,
            source: format!("{} (key {})", cert.display(), key.display()),
        })
    }

    /// Uses `dir/cert.pem` and `dir/key.pem`, generating a self-signed ECDSA P-256
    /// certificate for `names` there first when they do not exist yet.
    pub fn self_signed_in(dir: &Path, names: &[String]) -> Result<Self, IdentityError> {
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        if !cert_path.exists() || !key_path.exists() {
            let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            let mut params = rcgen::CertificateParams::new(names.to_vec())?;
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "Wharf self-signed");
            let cert = params.self_signed(&key_pair)?;
            create_dir_private(dir)?;
            write_private(&key_path, key_pair.serialize_pem().as_bytes())?;
            write_private(&cert_path, cert.pem().as_bytes())?;
        }
        let mut identity = Self::from_pem_files(&cert_path, &key_path)?;
        identity.source = format!("self-signed {}", cert_path.display());
        Ok(identity)
    }

    /// The identity as rustls serves it, after checking that the key belongs
    /// to the leaf certificate.
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>, CertificateError> {
        certified_key_der(self.chain.clone(), self.key.clone_key())
    }

    /// SHA-256 of the leaf certificate, colon-separated hex as browsers show it.
    pub fn fingerprint(&self) -> String {
        let Some(leaf) = self.chain.first() else {
            return String::new();
        };
        let digest = Sha256::digest(leaf.as_ref());
        digest
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

fn read(path: &Path) -> Result<Vec<u8>, IdentityError> {
    fs::read(path).map_err(|source| IdentityError::Read {
        path: path.into(),
        source,
    })
}

fn create_dir_private(dir: &Path) -> Result<(), IdentityError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| IdentityError::Write {
            path: dir.into(),
            source,
        })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    let err = |source| IdentityError::Write {
        path: path.into(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_identity_is_generated_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let first = ServerIdentity::self_signed_in(&tls, &["localhost".into()]).unwrap();
        let second = ServerIdentity::self_signed_in(&tls, &["localhost".into()]).unwrap();
        assert_eq!(first.fingerprint(), second.fingerprint());
        let mode = fs::metadata(tls.join("key.pem")).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }

    #[test]
    fn missing_certificate_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        fs::write(&cert, "not a pem").unwrap();
        fs::write(&key, "not a pem").unwrap();
        let err = ServerIdentity::from_pem_files(&cert, &key).err().unwrap();
        assert!(matches!(err, IdentityError::NoCertificate { .. }), "{err}");
    }
}
