//! What a certificate says about itself: validity and names. Imported
//! certificates need their expiry read (the leader warns before it), and the
//! cluster transport tells node certificates from admin certificates by the
//! names the cluster CA gave them.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFacts {
    /// Unix seconds (0 for dates before 1970).
    pub not_before: u64,
    pub not_after: u64,
    /// DNS names of the subject alternative name extension.
    pub dns_names: Vec<String>,
}

/// Reads a DER certificate; `None` if it is not one.
pub fn inspect(der: &[u8]) -> Option<CertificateFacts> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let validity = cert.validity();
    let unix = |t: i64| u64::try_from(t).unwrap_or(0);
    let dns_names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(name) => Some(name.to_string()),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(_) => return None,
    };
    Some(CertificateFacts {
        not_before: unix(validity.not_before.timestamp()),
        not_after: unix(validity.not_after.timestamp()),
        dns_names,
    })
}

/// A DER certificate as PEM text.
pub fn certificate_pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// SHA-256 of a DER certificate, lower-case hex: how tokens name the
/// cluster CA and how `wharf cert list` names certificates.
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SHA-256 of the first certificate of a PEM chain; `None` if there is none.
pub fn leaf_fingerprint(chain_pem: &str) -> Option<String> {
    let der = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()?
        .ok()?;
    Some(fingerprint(&der))
}

/// The facts of the first certificate of a PEM chain (the leaf).
pub fn inspect_leaf_pem(chain_pem: &str) -> Option<CertificateFacts> {
    let der = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()?
        .ok()?;
    inspect(&der)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{certificate_request, ClusterCa, LeafUsage};

    #[test]
    fn reads_validity_and_names_of_an_issued_leaf() {
        let ca = ClusterCa::generate("test").unwrap();
        let issued = ca
            .issue(
                &["ftp.example.com".into(), "127.0.0.1".into()],
                Duration::from_secs(3600),
                LeafUsage::Server,
            )
            .unwrap();
        let facts = inspect_leaf_pem(&issued.chain_pem).unwrap();
        assert_eq!(facts.not_after, issued.not_after);
        assert!(facts.not_before < facts.not_after);
        assert_eq!(facts.dns_names, vec!["ftp.example.com".to_owned()]);
    }

    #[test]
    fn pem_round_trips_and_fingerprints_match() {
        let ca = ClusterCa::generate("test").unwrap();
        let der = CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap();
        let again = certificate_pem(&der);
        assert_eq!(
            leaf_fingerprint(&again).unwrap(),
            leaf_fingerprint(ca.cert_pem()).unwrap()
        );
        assert_eq!(fingerprint(&der).len(), 64);
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(inspect(b"\x30\x03\x02\x01\x01"), None);
        assert_eq!(inspect_leaf_pem("no pem here"), None);
    }

    #[test]
    fn a_signed_request_carries_the_names_the_ca_chose() {
        let ca = ClusterCa::generate("test").unwrap();
        let (key_pem, request) = certificate_request().unwrap();
        let signed = ca
            .sign_request(
                &request,
                &["wharf-node".into()],
                Duration::from_secs(600),
                LeafUsage::ServerAndClient,
            )
            .unwrap();
        assert_eq!(
            inspect_leaf_pem(&signed.chain_pem).unwrap().dns_names,
            vec!["wharf-node".to_owned()]
        );
        // The certificate belongs to the requester's key.
        crate::certified_key(signed.chain_pem.as_bytes(), key_pem.as_bytes()).unwrap();
    }

    #[test]
    fn a_tampered_request_is_refused() {
        let ca = ClusterCa::generate("test").unwrap();
        let (_, mut request) = certificate_request().unwrap();
        let last = request.len() - 1;
        request[last] ^= 0x55;
        let refused = ca.sign_request(
            &request,
            &["wharf-node".into()],
            Duration::from_secs(600),
            LeafUsage::ServerAndClient,
        );
        assert!(matches!(refused, Err(crate::CaError::BadRequest)));
    }
}
