//! The cluster's internal certificate authority (DESIGN.md §5, "Certificates").
//!
//! A cluster without operator-supplied or ACME certificates still needs
//! certificates its clients and nodes can verify: the leader keeps one CA in
//! the replicated state and issues short-lived ECDSA P-256 leaves from it,
//! renewing them at two thirds of their lifetime. Operators distribute the CA
//! certificate once instead of trusting a new self-signed leaf on every node.

use std::fmt;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::der;
use crate::ticketer::unix_now;

/// How long a generated CA is valid: ten years, longer than any cluster is
/// expected to run without an operator rotating it deliberately.
const CA_LIFETIME_SECS: u64 = 10 * 365 * 24 * 3600;
/// How far `not_before` lies in the past, so a verifier whose clock lags
/// ours a little does not reject a certificate issued a moment ago.
const CLOCK_SKEW_SECS: u64 = 60;
/// Longest value a commonName may hold (RFC 5280 ub-common-name).
const MAX_COMMON_NAME: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot build the certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("the CA certificate PEM holds no certificate")]
    NoCertificate,
    #[error("the CA certificate is not a well-formed X.509 certificate")]
    Malformed,
    #[error("the CA key does not belong to the CA certificate")]
    KeyMismatch,
    #[error(
        "the CA certificate's subject cannot be reproduced exactly in issued certificates \
         (repeated or multi-valued attributes, or an unsupported string type)"
    )]
    UnsupportedSubject,
    #[error("a certificate needs at least one name")]
    NoNames,
    #[error("the requested validity period cannot be expressed in a certificate")]
    Lifetime,
    #[error("the system random number generator failed")]
    Random,
    #[error("the certificate request is malformed or its signature does not verify")]
    BadRequest,
}

/// What an issued leaf may be used for (its extended key usages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafUsage {
    /// A node's FTPS listener.
    Server,
    /// A client authenticating with a certificate (mutual TLS).
    Client,
    /// Node-to-node links, where each side plays both roles.
    ServerAndClient,
}

impl LeafUsage {
    fn purposes(self) -> Vec<ExtendedKeyUsagePurpose> {
        match self {
            Self::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Self::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Self::ServerAndClient => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        }
    }
}

/// A leaf certificate and its key, ready for [`crate::certified_key`] or the
/// `certs` table.
#[derive(Clone)]
pub struct IssuedCert {
    /// The leaf, then the CA certificate.
    pub chain_pem: String,
    pub key_pem: String,
    /// End of validity, unix seconds: the leader renews at two thirds of it.
    pub not_after: u64,
    /// Lower-case hex, for logs and revocation.
    pub serial_hex: String,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("serial_hex", &self.serial_hex)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

pub struct ClusterCa {
    cert_pem: String,
    key_pem: String,
    /// The CA as rcgen needs it to sign: subject and key identifier rebuilt
    /// from `cert_pem`, so issued leaves name exactly this certificate.
    issuer: rcgen::Certificate,
    key: KeyPair,
}

impl ClusterCa {
    /// A new self-signed ECDSA P-256 CA, valid for about ten years, that may
    /// only sign leaves (path length 0).
    pub fn generate(cluster_name: &str) -> Result<Self, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Wharf");
        params.distinguished_name.push(
            DnType::CommonName,
            format!("Wharf cluster CA {cluster_name}"),
        );
        let now = unix_now();
        params.not_before = timestamp(now.saturating_sub(CLOCK_SKEW_SECS))?;
        params.not_after = timestamp(now.saturating_add(CA_LIFETIME_SECS))?;
        params.serial_number = Some(random_serial()?.0);
        let cert = ca_params(params).self_signed(&key)?;
        Self::from_pem(&cert.pem(), &key.serialize_pem())
    }

    /// Loads a CA kept as PEM, e.g. in the replicated state. The key must
    /// belong to the certificate.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CaError> {
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|_| CaError::NoCertificate)?;
        let parts = der::certificate_parts(&der).ok_or(CaError::Malformed)?;
        let key = KeyPair::from_pem(key_pem)?;
        if key.public_key_der() != parts.spki {
            return Err(CaError::KeyMismatch);
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(parts.subject)?;
        let issuer = ca_params(params).self_signed(&key)?;
        // rcgen writes the issuer name from its own model of the subject; a
        // leaf is only chained to this CA if that encoding is byte-identical.
        let rebuilt = der::certificate_parts(issuer.der()).ok_or(CaError::Malformed)?;
        if rebuilt.subject != parts.subject {
            return Err(CaError::UnsupportedSubject);
        }
        Ok(Self {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            issuer,
            key,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Issues an ECDSA P-256 leaf for `names` (DNS names, or IP addresses
    /// where they parse as one), valid from a minute ago for `lifetime`.
    pub fn issue(
        &self,
        names: &[String],
        lifetime: Duration,
        usage: LeafUsage,
    ) -> Result<IssuedCert, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let signed = self.sign(&key, names, lifetime, usage)?;
        Ok(IssuedCert {
            chain_pem: signed.chain_pem,
            key_pem: key.serialize_pem(),
            not_after: signed.not_after,
            serial_hex: signed.serial_hex,
        })
    }

    /// Signs a certificate for the key of a request made elsewhere (see
    /// [`certificate_request`]); the private key never leaves its owner. The
    /// request's signature proves possession of the key; everything the
    /// certificate says (names, lifetime, usage) is decided here, not taken
    /// from the request.
    pub fn sign_request(
        &self,
        request_der: &[u8],
        names: &[String],
        lifetime: Duration,
        usage: LeafUsage,
    ) -> Result<SignedCert, CaError> {
        let der = rustls::pki_types::CertificateSigningRequestDer::from(request_der);
        let request = rcgen::CertificateSigningRequestParams::from_der(&der)
            .map_err(|_| CaError::BadRequest)?;
        self.sign(&request.public_key, names, lifetime, usage)
    }

    fn sign(
        &self,
        public_key: &impl rcgen::PublicKeyData,
        names: &[String],
        lifetime: Duration,
        usage: LeafUsage,
    ) -> Result<SignedCert, CaError> {
        let first = names.first().ok_or(CaError::NoNames)?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = DistinguishedName::new();
        if first.len() <= MAX_COMMON_NAME {
            params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usage.purposes();
        params.use_authority_key_identifier_extension = true;
        let now = unix_now();
        let not_after = now
            .checked_add(lifetime.as_secs())
            .ok_or(CaError::Lifetime)?;
        params.not_before = timestamp(now.saturating_sub(CLOCK_SKEW_SECS))?;
        params.not_after = timestamp(not_after)?;
        let (serial, serial_hex) = random_serial()?;
        params.serial_number = Some(serial);
        let leaf = params.signed_by(public_key, &self.issuer, &self.key)?;

        let mut chain_pem = leaf.pem();
        if !chain_pem.ends_with('\n') {
            chain_pem.push('\n');
        }
        chain_pem.push_str(&self.cert_pem);
        Ok(SignedCert {
            chain_pem,
            not_after,
            serial_hex,
        })
    }
}

/// A certificate signed for a key the CA never saw.
#[derive(Clone, Debug)]
pub struct SignedCert {
    /// The leaf, then the CA certificate.
    pub chain_pem: String,
    /// End of validity, unix seconds.
    pub not_after: u64,
    pub serial_hex: String,
}

/// A new ECDSA P-256 key (PEM) and a certificate request for it (DER), for
/// [`ClusterCa::sign_request`] on another machine.
pub fn certificate_request() -> Result<(String, Vec<u8>), CaError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let request = CertificateParams::new(Vec::<String>::new())?.serialize_request(&key)?;
    Ok((key.serialize_pem(), request.der().to_vec()))
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa")
            .field("subject", &self.issuer.params().distinguished_name)
            .finish_non_exhaustive()
    }
}

/// The CA extensions, shared by generation and reload so both describe the
/// same issuer.
fn ca_params(mut params: CertificateParams) -> CertificateParams {
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// rcgen's model of a DER subject name, keeping each value's string type.
fn distinguished_name(subject: &[u8]) -> Result<DistinguishedName, CaError> {
    let attributes = der::name_attributes(subject).ok_or(CaError::Malformed)?;
    let mut name = DistinguishedName::new();
    for attribute in attributes {
        let text = || std::str::from_utf8(attribute.value).map_err(|_| CaError::UnsupportedSubject);
        let unsupported = |_| CaError::UnsupportedSubject;
        let value = match attribute.tag {
            0x0c => DnValue::Utf8String(text()?.to_string()),
            // rcgen takes a `?` (X.680 allows it) but its DER writer panics on
            // one (found by the `certificate` fuzz target): refuse it here.
            0x13 if text()?.contains('?') => return Err(CaError::UnsupportedSubject),
            0x13 => DnValue::PrintableString(text()?.try_into().map_err(unsupported)?),
            0x14 => DnValue::TeletexString(text()?.try_into().map_err(unsupported)?),
            0x16 => DnValue::Ia5String(text()?.try_into().map_err(unsupported)?),
            0x1c => DnValue::UniversalString(
                rcgen::UniversalString::from_utf32be(attribute.value.to_vec())
                    .map_err(unsupported)?,
            ),
            0x1e => DnValue::BmpString(
                rcgen::BmpString::from_utf16be(attribute.value.to_vec()).map_err(unsupported)?,
            ),
            _ => return Err(CaError::UnsupportedSubject),
        };
        name.push(DnType::from_oid(&attribute.oid), value);
    }
    Ok(name)
}

/// A random positive 128-bit serial and its hex form.
fn random_serial() -> Result<(SerialNumber, String), CaError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| CaError::Random)?;
    // Positive, and no leading zero byte for DER to strip.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok((SerialNumber::from_slice(&bytes), hex))
}

fn timestamp(unix_secs: u64) -> Result<OffsetDateTime, CaError> {
    let secs = i64::try_from(unix_secs).map_err(|_| CaError::Lifetime)?;
    OffsetDateTime::from_unix_timestamp(secs).map_err(|_| CaError::Lifetime)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::client::danger::ServerCertVerifier;
    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::{ServerName, UnixTime};
    use rustls::server::WebPkiClientVerifier;
    use rustls::RootCertStore;

    use super::*;

    #[test]
    fn a_printable_string_with_a_question_mark_is_refused_not_a_panic() {
        // Name ::= SEQUENCE { SET { SEQUENCE { id-at-commonName, PrintableString "a?b" } } }
        let subject = [
            0x30, 0x0e, 0x31, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x03, 0x13, 0x03, b'a',
            b'?', b'b',
        ];
        assert!(matches!(
            distinguished_name(&subject),
            Err(CaError::UnsupportedSubject)
        ));
    }
    use crate::test_support::Handshake;
    use crate::{certified_key, CertificateSet, TicketKeyRing, TlsConfigs, DEFAULT_NAME};

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn roots(ca: &ClusterCa) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap())
            .unwrap();
        roots
    }

    fn chain(issued: &IssuedCert) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    /// Verifies `issued` as a server certificate for `name` against `ca`.
    fn verify_server(ca: &ClusterCa, issued: &IssuedCert, name: &str) -> Result<(), rustls::Error> {
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots(ca)), provider())
            .build()
            .unwrap();
        let chain = chain(issued);
        let name = ServerName::try_from(name.to_string()).unwrap();
        verifier
            .verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now())
            .map(|_| ())
    }

    fn verify_client(ca: &ClusterCa, issued: &IssuedCert) -> Result<(), rustls::Error> {
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)), provider())
            .build()
            .unwrap();
        let chain = chain(issued);
        verifier
            .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
            .map(|_| ())
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn issued_server_leaf_verifies_for_each_requested_name_only() {
        let ca = ClusterCa::generate("test").unwrap();
        let issued = ca
            .issue(
                &names(&["ftp.example.com", "10.0.0.7", "::1"]),
                30 * DAY,
                LeafUsage::Server,
            )
            .unwrap();
        verify_server(&ca, &issued, "ftp.example.com").unwrap();
        verify_server(&ca, &issued, "10.0.0.7").unwrap();
        verify_server(&ca, &issued, "::1").unwrap();
        assert!(verify_server(&ca, &issued, "www.example.com").is_err());
        assert!(verify_server(&ca, &issued, "10.0.0.8").is_err());

        let other_ca = ClusterCa::generate("other").unwrap();
        assert!(verify_server(&other_ca, &issued, "ftp.example.com").is_err());
    }

    #[test]
    fn issued_leaf_reports_its_expiry_serial_and_chain() {
        let ca = ClusterCa::generate("test").unwrap();
        let issued = ca
            .issue(&names(&["ftp.example.com"]), 30 * DAY, LeafUsage::Server)
            .unwrap();
        let expected = unix_now() + 30 * DAY.as_secs();
        assert!(
            issued.not_after.abs_diff(expected) <= 5,
            "{}",
            issued.not_after
        );
        assert_eq!(issued.serial_hex.len(), 32);
        assert!(issued.serial_hex.bytes().all(|b| b.is_ascii_hexdigit()));
        let chain = chain(&issued);
        assert_eq!(chain.len(), 2);
        assert_eq!(
            chain[1],
            CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap()
        );
        let again = ca
            .issue(&names(&["ftp.example.com"]), 30 * DAY, LeafUsage::Server)
            .unwrap();
        assert_ne!(issued.serial_hex, again.serial_hex);
        assert!(!format!("{issued:?} {ca:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn usage_decides_server_and_client_roles() {
        let ca = ClusterCa::generate("test").unwrap();
        let issue = |usage| ca.issue(&names(&["node1.wharf"]), DAY, usage).unwrap();
        let server = issue(LeafUsage::Server);
        let client = issue(LeafUsage::Client);
        let both = issue(LeafUsage::ServerAndClient);
        assert!(verify_server(&ca, &server, "node1.wharf").is_ok());
        assert!(verify_client(&ca, &server).is_err());
        assert!(verify_server(&ca, &client, "node1.wharf").is_err());
        assert!(verify_client(&ca, &client).is_ok());
        assert!(verify_server(&ca, &both, "node1.wharf").is_ok());
        assert!(verify_client(&ca, &both).is_ok());
    }

    #[test]
    fn ca_reloaded_from_pem_keeps_issuing_under_the_same_name() {
        let ca = ClusterCa::generate("test").unwrap();
        let reloaded = ClusterCa::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
        let issued = reloaded
            .issue(&names(&["ftp.example.com"]), DAY, LeafUsage::Server)
            .unwrap();
        verify_server(&ca, &issued, "ftp.example.com").unwrap();
    }

    #[test]
    fn foreign_ca_with_printable_string_subject_is_reproduced() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CountryName,
            DnValue::PrintableString("DE".try_into().unwrap()),
        );
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Hafen GmbH");
        params.distinguished_name.push(
            DnType::CommonName,
            DnValue::PrintableString("Hafen Root".try_into().unwrap()),
        );
        let cert = ca_params(params).self_signed(&key).unwrap();
        let ca = ClusterCa::from_pem(&cert.pem(), &key.serialize_pem()).unwrap();
        let issued = ca
            .issue(&names(&["ftp.example.com"]), DAY, LeafUsage::Server)
            .unwrap();
        verify_server(&ca, &issued, "ftp.example.com").unwrap();
    }

    #[test]
    fn mismatched_or_missing_pem_is_refused() {
        let ca = ClusterCa::generate("a").unwrap();
        let other = ClusterCa::generate("b").unwrap();
        let err = ClusterCa::from_pem(ca.cert_pem(), other.key_pem()).unwrap_err();
        assert!(matches!(err, CaError::KeyMismatch), "{err}");
        let err = ClusterCa::from_pem("nothing here", ca.key_pem()).unwrap_err();
        assert!(matches!(err, CaError::NoCertificate), "{err}");
        let err = ca.issue(&[], DAY, LeafUsage::Server).unwrap_err();
        assert!(matches!(err, CaError::NoNames), "{err}");
        let err = ca
            .issue(&names(&["a.example"]), Duration::MAX, LeafUsage::Server)
            .unwrap_err();
        assert!(matches!(err, CaError::Lifetime), "{err}");
    }

    #[test]
    fn client_trusting_the_ca_completes_a_handshake_with_an_issued_leaf() {
        let ca = ClusterCa::generate("test").unwrap();
        let issued = ca
            .issue(&names(&["ftp.example.com"]), DAY, LeafUsage::Server)
            .unwrap();
        let certs = CertificateSet::new();
        let key = certified_key(issued.chain_pem.as_bytes(), issued.key_pem.as_bytes()).unwrap();
        certs.replace([(DEFAULT_NAME.to_string(), key)].into());
        let configs =
            TlsConfigs::from_parts(certs, TicketKeyRing::new(3600), &crate::ClientAuth::off())
                .unwrap();

        let client = Handshake::verifying(roots(&ca));
        client
            .run(&configs.control, "ftp.example.com")
            .exchange_application_data();
        assert!(client.try_run(&configs.control, "www.example.com").is_err());
    }
}
