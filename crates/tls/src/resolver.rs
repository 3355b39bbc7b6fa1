//! Certificates chosen by SNI and swapped while the server runs (DESIGN.md §5,
//! "Certificates").
//!
//! The cluster keeps certificates in its `certs` table; whenever that changes,
//! the node calls [`CertificateSet::replace`]. The set lives behind an
//! `ArcSwap`, so a handshake in progress keeps the key it picked, established
//! sessions are untouched, and the next handshake sees the new set: rotation
//! never restarts a listener.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The entry used when the client sends no SNI or one no entry matches.
pub const DEFAULT_NAME: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("the certificate PEM holds no certificate")]
    NoCertificate,
    #[error("the key PEM holds no usable private key (PKCS#8, SEC1 or PKCS#1 expected)")]
    NoKey,
    #[error("certificate and key are unusable together: {0}")]
    Rejected(#[from] rustls::Error),
}

/// Builds a certified key from a PEM chain (leaf first) and its PEM key,
/// checking that the key belongs to the leaf: a mismatch would otherwise only
/// show up as failed handshakes.
pub fn certified_key(
    chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<CertifiedKey>, CertificateError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| CertificateError::NoCertificate)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| CertificateError::NoKey)?;
    certified_key_der(chain, key)
}

pub(crate) fn certified_key_der(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, CertificateError> {
    if chain.is_empty() {
        return Err(CertificateError::NoCertificate);
    }
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider)?;
    Ok(Arc::new(certified))
}

/// The certificates a node serves, keyed by lower-case DNS name, a
/// `*.example.com` wildcard, or [`DEFAULT_NAME`].
pub struct CertificateSet {
    certs: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
}

impl CertificateSet {
    /// An empty set: handshakes fail until certificates are installed.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            certs: ArcSwap::from_pointee(HashMap::new()),
        })
    }

    /// Installs a complete new set. Names are matched case-insensitively, so
    /// they are stored lower-case.
    pub fn replace(&self, certs: HashMap<String, Arc<CertifiedKey>>) {
        let certs = certs
            .into_iter()
            .map(|(name, key)| (name.to_ascii_lowercase(), key))
            .collect();
        self.certs.store(Arc::new(certs));
    }

    /// The names currently served, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.certs.load().keys().cloned().collect();
        names.sort();
        names
    }

    /// The entry stored under exactly `name` (case-insensitive), without
    /// wildcard or default fallback.
    pub fn get(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.certs.load().get(&name.to_ascii_lowercase()).cloned()
    }

    /// The key for a handshake: the exact name, then the wildcard one label
    /// up, then the default.
    fn select(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let certs = self.certs.load();
        if let Some(sni) = sni {
            let name = sni.trim_end_matches('.').to_ascii_lowercase();
            if let Some(key) = certs.get(&name) {
                return Some(key.clone());
            }
            if let Some((_, parent)) = name.split_once('.') {
                if let Some(key) = certs.get(&format!("*.{parent}")) {
                    return Some(key.clone());
                }
            }
        }
        certs.get(DEFAULT_NAME).cloned()
    }
}

impl fmt::Debug for CertificateSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateSet")
            .field("names", &self.names())
            .finish()
    }
}

impl ResolvesServerCert for CertificateSet {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.select(client_hello.server_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{self_signed, Handshake};
    use crate::{TicketKeyRing, TlsConfigs};

    fn leaf(key: &CertifiedKey) -> Vec<u8> {
        key.cert[0].to_vec()
    }

    fn configs(set: &Arc<CertificateSet>) -> TlsConfigs {
        TlsConfigs::from_parts(
            set.clone(),
            TicketKeyRing::new(3600),
            &crate::ClientAuth::off(),
        )
        .unwrap()
    }

    #[test]
    fn sni_picks_exact_then_wildcard_then_default() {
        let exact = self_signed(&["ftp.example.com"]);
        let wildcard = self_signed(&["*.example.org"]);
        let default = self_signed(&["localhost"]);
        let set = CertificateSet::new();
        set.replace(HashMap::from([
            ("FTP.example.com".to_string(), exact.clone()),
            ("*.example.org".to_string(), wildcard.clone()),
            (DEFAULT_NAME.to_string(), default.clone()),
        ]));
        let server = configs(&set).control;

        let seen = |sni: &str| Handshake::new().run(&server, sni).server_leaf();
        assert_eq!(seen("ftp.example.com"), leaf(&exact));
        assert_eq!(seen("files.example.org"), leaf(&wildcard));
        assert_eq!(seen("deep.files.example.org"), leaf(&default));
        assert_eq!(seen("other.example.net"), leaf(&default));
        assert_eq!(seen("127.0.0.1"), leaf(&default)); // no SNI for addresses
    }

    #[test]
    fn names_are_case_insensitive() {
        let key = self_signed(&["ftp.example.com"]);
        let set = CertificateSet::new();
        set.replace(HashMap::from([(
            "FTP.Example.COM".to_string(),
            key.clone(),
        )]));
        assert_eq!(set.names(), vec!["ftp.example.com".to_string()]);
        assert!(set.get("ftp.EXAMPLE.com").is_some());
        assert!(set.get("www.example.com").is_none());
        assert_eq!(
            set.select(Some("Ftp.Example.Com.")).map(|k| leaf(&k)),
            Some(leaf(&key))
        );
    }

    #[test]
    fn no_match_and_no_default_means_no_certificate() {
        let set = CertificateSet::new();
        set.replace(HashMap::from([(
            "ftp.example.com".to_string(),
            self_signed(&["ftp.example.com"]),
        )]));
        assert!(set.select(Some("other.example.com")).is_none());
        assert!(set.select(None).is_none());
    }

    #[test]
    fn replace_takes_effect_for_the_next_handshake() {
        let old = self_signed(&["ftp.example.com"]);
        let new = self_signed(&["ftp.example.com"]);
        let set = CertificateSet::new();
        set.replace(HashMap::from([(DEFAULT_NAME.to_string(), old.clone())]));
        let server = configs(&set).control;

        let before = Handshake::new().run(&server, "ftp.example.com");
        set.replace(HashMap::from([(DEFAULT_NAME.to_string(), new.clone())]));
        let after = Handshake::new().run(&server, "ftp.example.com");

        assert_eq!(before.server_leaf(), leaf(&old));
        assert_eq!(after.server_leaf(), leaf(&new));
        // The session established before the swap still carries data.
        let mut before = before;
        before.exchange_application_data();
    }

    #[test]
    fn certified_key_rejects_a_key_of_another_certificate() {
        let a = rcgen::generate_simple_self_signed(vec!["a.example.com".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.example.com".into()]).unwrap();
        let ok = certified_key(
            a.cert.pem().as_bytes(),
            a.key_pair.serialize_pem().as_bytes(),
        );
        assert!(ok.is_ok());
        let err = certified_key(
            a.cert.pem().as_bytes(),
            b.key_pair.serialize_pem().as_bytes(),
        )
        .err()
        .unwrap();
        assert!(matches!(err, CertificateError::Rejected(_)), "{err}");
        let err = certified_key(b"", a.key_pair.serialize_pem().as_bytes())
            .err()
            .unwrap();
        assert!(matches!(err, CertificateError::NoCertificate), "{err}");
        let err = certified_key(a.cert.pem().as_bytes(), b"nope")
            .err()
            .unwrap();
        assert!(matches!(err, CertificateError::NoKey), "{err}");
    }
}
