//! Client certificates (mutual TLS) on the FTPS listeners. Each listener asks
//! for them off, optionally or always; the trust anchors come from the
//! cluster's `trust` table and change underneath a running listener (a new
//! partner CA takes effect without a restart). What a verified certificate
//! says about its holder (`ClientIdentity`) is what accounts map to users.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Whether a listener asks for client certificates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientCertMode {
    #[default]
    Off,
    /// Asked for; a client without one still connects (and logs in with a
    /// password), a client with one must present a trusted one.
    Optional,
    /// No handshake completes without a trusted certificate.
    Required,
}

impl ClientCertMode {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Self::Off),
            "optional" => Ok(Self::Optional),
            "required" => Ok(Self::Required),
            other => Err(format!(
                "client certificates {other:?}: expected off, optional or required"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Optional => "optional",
            Self::Required => "required",
        }
    }
}

/// The client-certificate settings of the two control listeners and the
/// anchors they share.
#[derive(Clone, Debug)]
pub struct ClientAuth {
    pub anchors: Arc<TrustAnchors>,
    pub explicit: ClientCertMode,
    pub implicit: ClientCertMode,
}

impl ClientAuth {
    pub fn off() -> Self {
        Self {
            anchors: TrustAnchors::new(),
            explicit: ClientCertMode::Off,
            implicit: ClientCertMode::Off,
        }
    }

    /// Data connections never require a certificate (they are bound to the
    /// control session, which did), but accept one when the control
    /// listeners ask for them: a client may send its certificate again.
    pub(crate) fn data(&self) -> ClientCertMode {
        if self.explicit == ClientCertMode::Off && self.implicit == ClientCertMode::Off {
            ClientCertMode::Off
        } else {
            ClientCertMode::Optional
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("trust anchor {name}: {reason}")]
    Anchor { name: String, reason: String },
}

/// The CA certificates client certificates must chain to, swapped whole.
#[derive(Debug, Default)]
pub struct TrustAnchors {
    verifier: ArcSwapOption<Arc<dyn ClientCertVerifier>>,
}

impl TrustAnchors {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Replaces the anchors with `(name, PEM)` pairs; an empty list trusts
    /// nothing. A PEM that is not a usable CA certificate is an error naming it
    /// and leaves the previous anchors in force.
    pub fn replace(&self, anchors: &[(String, String)]) -> Result<usize, TrustError> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = RootCertStore::empty();
        for (name, pem) in anchors {
            let bad = |reason: String| TrustError::Anchor {
                name: name.clone(),
                reason,
            };
            let mut any = false;
            for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let der = der.map_err(|e| bad(format!("not PEM: {e}")))?;
                roots.add(der).map_err(|e| bad(e.to_string()))?;
                any = true;
            }
            if !any {
                return Err(bad("no certificate in it".into()));
            }
        }
        let count = roots.len();
        if count == 0 {
            self.verifier.store(None);
            return Ok(0);
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| TrustError::Anchor {
                name: "all".into(),
                reason: e.to_string(),
            })?;
        self.verifier.store(Some(Arc::new(verifier)));
        Ok(count)
    }

    /// The verifier a listener in `mode` installs.
    pub fn verifier(self: &Arc<Self>, mode: ClientCertMode) -> Arc<dyn ClientCertVerifier> {
        Arc::new(ListenerVerifier {
            anchors: self.clone(),
            mode,
            provider: provider(),
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

#[derive(Debug)]
struct ListenerVerifier {
    anchors: Arc<TrustAnchors>,
    mode: ClientCertMode,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for ListenerVerifier {
    fn offer_client_auth(&self) -> bool {
        match self.mode {
            ClientCertMode::Off => false,
            // Nothing to verify against: asking would only fail clients.
            ClientCertMode::Optional => self.anchors.verifier.load().is_some(),
            ClientCertMode::Required => true,
        }
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mode == ClientCertMode::Required
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The anchors change underneath; clients pick their configured
        // certificate anyway (curl, lftp, FileZilla).
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.anchors.verifier.load_full() {
            Some(v) => v.verify_client_cert(end_entity, intermediates, now),
            None => Err(rustls::Error::General(
                "no trust anchors for client certificates".into(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What a client certificate says about its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdentity {
    /// SHA-256 of the DER certificate, lower-case hex.
    pub fingerprint: String,
    /// The subject's common names.
    pub common_names: Vec<String>,
    /// DNS names, e-mail addresses and URIs of the subject alternative names.
    pub alt_names: Vec<String>,
}

impl ClientIdentity {
    /// Reads the end-entity certificate a client presented; `None` if it is
    /// not a certificate (it was verified, so this does not happen).
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let common_names = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
            .collect();
        let alt_names = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(v) | GeneralName::RFC822Name(v) | GeneralName::URI(v) => {
                        Some(v.to_string())
                    }
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Some(Self {
            fingerprint: crate::inspect::fingerprint(der),
            common_names,
            alt_names,
        })
    }
}

/// How a certificate maps to a user: `cn:NAME`, `san:NAME` or
/// `sha256:FINGERPRINT` (hex, colons allowed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertMatch {
    CommonName(String),
    AltName(String),
    Fingerprint(String),
}

impl CertMatch {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (kind, value) = s
            .split_once(':')
            .ok_or_else(|| format!("certificate match {s:?}: expected cn:, san: or sha256:"))?;
        if value.is_empty() {
            return Err(format!("certificate match {s:?} has no value"));
        }
        match kind.to_ascii_lowercase().as_str() {
            "cn" => Ok(Self::CommonName(value.to_owned())),
            "san" => Ok(Self::AltName(value.to_owned())),
            "sha256" => {
                let hex: String = value
                    .chars()
                    .filter(|c| *c != ':')
                    .collect::<String>()
                    .to_ascii_lowercase();
                if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(format!(
                        "certificate match {s:?}: a SHA-256 fingerprint is 64 hex digits"
                    ));
                }
                Ok(Self::Fingerprint(hex))
            }
            other => Err(format!(
                "certificate match {s:?}: unknown kind {other:?} (cn, san or sha256)"
            )),
        }
    }

    pub fn matches(&self, id: &ClientIdentity) -> bool {
        match self {
            Self::CommonName(cn) => id.common_names.iter().any(|c| c == cn),
            Self::AltName(name) => id.alt_names.iter().any(|n| n.eq_ignore_ascii_case(name)),
            Self::Fingerprint(fp) => id.fingerprint == *fp,
        }
    }
}

impl std::fmt::Display for CertMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CommonName(v) => write!(f, "cn:{v}"),
            Self::AltName(v) => write!(f, "san:{v}"),
            Self::Fingerprint(v) => write!(f, "sha256:{v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> ClientIdentity {
        ClientIdentity {
            fingerprint: "ab".repeat(32),
            common_names: vec!["partner-1".into()],
            alt_names: vec!["edi.partner.example".into(), "ops@partner.example".into()],
        }
    }

    #[test]
    fn matches_by_common_name_alt_name_or_fingerprint() {
        let id = identity();
        for (rule, expected) in [
            ("cn:partner-1", true),
            ("cn:partner-2", false),
            ("san:EDI.partner.example", true),
            ("san:ops@partner.example", true),
            ("san:other.example", false),
            (&format!("sha256:{}", "AB:".repeat(31) + "AB"), true),
            (&format!("sha256:{}", "cd".repeat(32)), false),
        ] {
            let m = CertMatch::parse(rule).unwrap();
            assert_eq!(m.matches(&id), expected, "{rule}");
        }
    }

    #[test]
    fn malformed_rules_are_errors() {
        let bad_hex = format!("sha256:{}", "zz".repeat(32));
        for rule in ["partner-1", "cn:", "sha256:abc", "dn:x", &bad_hex] {
            assert!(CertMatch::parse(rule).is_err(), "{rule}");
        }
    }

    #[test]
    fn identity_is_read_from_a_real_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["edi.partner.example".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "partner-1");
        let cert = params.self_signed(&key).unwrap();
        let id = ClientIdentity::from_der(cert.der()).unwrap();
        assert_eq!(id.common_names, ["partner-1"]);
        assert_eq!(id.alt_names, ["edi.partner.example"]);
        assert_eq!(id.fingerprint, crate::inspect::fingerprint(cert.der()));
    }

    #[test]
    fn anchors_that_are_not_certificates_are_refused_and_the_old_ones_stay() {
        let anchors = TrustAnchors::new();
        let err = anchors
            .replace(&[("junk".into(), "not a pem".into())])
            .unwrap_err();
        assert!(err.to_string().contains("junk"), "{err}");
        assert!(anchors.verifier.load().is_none());
        assert_eq!(anchors.replace(&[]).unwrap(), 0);
    }
}
