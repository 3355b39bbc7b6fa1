//! Mutual TLS on the cluster port (DESIGN.md §4). Every node serves with its
//! cluster-CA certificate and asks clients for theirs; a client certificate
//! is optional at the TLS layer only so that a new node can present its join
//! token before it has one. The services then decide per call: Raft traffic
//! needs a node certificate, admin calls a node or admin certificate or the
//! admin token, joining the join token.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

use crate::credentials::{Credentials, ADMIN_NAME, NODE_NAME};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Who is on the other end of a cluster connection, by its certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRole {
    Node,
    Admin,
}

/// The role a request's verified client certificate gives it, if any. The
/// TLS layer has already checked the chain against the cluster CA; the CA
/// only ever puts one of the two role names in a certificate it issues.
pub fn peer_role<T>(request: &tonic::Request<T>) -> Option<PeerRole> {
    let certs = request.peer_certs()?;
    let facts = wharf_tls::inspect(certs.first()?)?;
    if facts.dns_names.iter().any(|n| n == NODE_NAME) {
        Some(PeerRole::Node)
    } else if facts.dns_names.iter().any(|n| n == ADMIN_NAME) {
        Some(PeerRole::Admin)
    } else {
        None
    }
}

/// This node's TLS on the cluster port, as server and as client.
#[derive(Clone, Debug)]
pub struct Transport {
    credentials: Credentials,
    /// The local address connections to peers leave from; the system's
    /// choice when `None`.
    source: Option<IpAddr>,
}

impl Transport {
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials,
            source: None,
        }
    }

    /// Connections to peers leave from `source` (a multi-homed host's
    /// cluster interface).
    pub fn with_source(self, source: Option<IpAddr>) -> Self {
        Self { source, ..self }
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(
                &self.credentials.chain_pem,
                &self.credentials.key_pem,
            ))
            .client_ca_root(Certificate::from_pem(&self.credentials.ca_pem))
            .client_auth_optional(true)
    }

    /// A lazily connecting endpoint to a peer, authenticating both ways.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, tonic::transport::Error> {
        Ok(client_endpoint(
            addr,
            &self.credentials.ca_pem,
            Some((&self.credentials.chain_pem, &self.credentials.key_pem)),
        )?
        .local_address(self.source))
    }
}

/// An endpoint that trusts only the cluster CA and presents `identity`
/// (certificate chain and key, PEM) when given.
pub fn client_endpoint(
    addr: &str,
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<Endpoint, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name(NODE_NAME);
    if let Some((chain, key)) = identity {
        tls = tls.identity(Identity::from_pem(chain, key));
    }
    Endpoint::from_shared(format!("https://{addr}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .tls_config(tls)
}

#[derive(Debug, thiserror::Error)]
pub enum FetchCaError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Learns the cluster CA certificate (PEM) from the node at `addr`, trusting
/// it only if its SHA-256 is `fingerprint` (from a token) and the node's
/// certificate verifies under it.
pub async fn fetch_ca(addr: &str, fingerprint: &str) -> Result<String, FetchCaError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(PinnedCa {
        fingerprint: fingerprint.to_ascii_lowercase(),
        found: Mutex::new(None),
        provider: provider.clone(),
        signatures: wharf_tls::AnyServerCertificate::new(provider.clone()),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FetchCaError::Handshake(std::io::Error::other(e)))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    #[allow(clippy::expect_used)] // NODE_NAME is a constant, valid DNS name
    let name = ServerName::try_from(NODE_NAME).expect("a valid DNS name");
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(FetchCaError::Connect)?;
        connector
            .connect(name, tcp)
            .await
            .map_err(FetchCaError::Handshake)
    };
    let timeout = CONNECT_TIMEOUT * 3;
    let stream = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| FetchCaError::Timeout(timeout))??;
    drop(stream);
    let ca = verifier
        .found
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .ok_or_else(|| FetchCaError::Handshake(std::io::Error::other("no CA recorded")))?;
    Ok(wharf_tls::certificate_pem(&ca))
}

/// Accepts a server whose chain holds the pinned CA and whose leaf verifies
/// under it, and remembers that CA.
#[derive(Debug)]
struct PinnedCa {
    fingerprint: String,
    found: Mutex<Option<Vec<u8>>>,
    provider: Arc<CryptoProvider>,
    /// Handshake signatures are checked as for any server.
    signatures: wharf_tls::AnyServerCertificate,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| wharf_tls::fingerprint(c) == self.fingerprint)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the node does not present the cluster CA the token names \
                     (wrong token, or not a member of that cluster)"
                        .into(),
                )
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)?;
        *self.found.lock().unwrap_or_else(|e| e.into_inner()) = Some(ca.to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.supported_verify_schemes()
    }
}
