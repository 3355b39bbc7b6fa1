//! In-memory TLS handshakes for unit tests: a rustls client and server joined
//! by two byte buffers, no sockets.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::client::{ClientSessionMemoryCache, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, ClientConnection, HandshakeKind, RootCertStore, ServerConfig, ServerConnection,
};

use crate::SessionBinding;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A self-signed ECDSA P-256 certified key for `names`.
pub(crate) fn self_signed(names: &[&str]) -> Arc<CertifiedKey> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let generated = rcgen::generate_simple_self_signed(names).unwrap();
    let key = PrivateKeyDer::Pkcs8(generated.key_pair.serialize_der().into());
    crate::resolver::certified_key_der(vec![generated.cert.der().clone()], key).unwrap()
}

/// One TLS client whose connections share a session store, so a second
/// connection offers the ticket the first one received.
pub(crate) struct Handshake {
    config: Arc<ClientConfig>,
}

impl Handshake {
    /// TLS 1.3 and 1.2, any server certificate accepted.
    pub(crate) fn new() -> Self {
        Self::build(&[&rustls::version::TLS13, &rustls::version::TLS12], None)
    }

    /// TLS 1.2 only, any server certificate accepted.
    pub(crate) fn tls12() -> Self {
        Self::build(&[&rustls::version::TLS12], None)
    }

    /// TLS 1.3 and 1.2, server certificates verified against `roots`.
    pub(crate) fn verifying(roots: RootCertStore) -> Self {
        Self::build(
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            Some(roots),
        )
    }

    fn build(
        versions: &[&'static rustls::SupportedProtocolVersion],
        roots: Option<RootCertStore>,
    ) -> Self {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap();
        let mut config = match roots {
            Some(roots) => builder.with_root_certificates(roots),
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(crate::AnyServerCertificate::new(
                    provider(),
                ))),
        }
        .with_no_client_auth();
        config.resumption = Resumption::store(Arc::new(ClientSessionMemoryCache::new(32)));
        Self {
            config: Arc::new(config),
        }
    }

    /// Connects to `server` as `host` (sent as SNI unless it is an address)
    /// and runs the handshake, including the tickets sent after it, to the end.
    pub(crate) fn run(&self, server: &Arc<ServerConfig>, host: &str) -> Session {
        self.try_run(server, host).unwrap()
    }

    pub(crate) fn try_run(
        &self,
        server: &Arc<ServerConfig>,
        host: &str,
    ) -> Result<Session, rustls::Error> {
        self.try_run_bound(server, host, None)
    }

    /// Like [`run`](Self::run), with `binding` installed in the server side
    /// as a control connection does.
    pub(crate) fn run_bound(
        &self,
        server: &Arc<ServerConfig>,
        host: &str,
        binding: &SessionBinding,
    ) -> Session {
        self.try_run_bound(server, host, Some(binding)).unwrap()
    }

    fn try_run_bound(
        &self,
        server: &Arc<ServerConfig>,
        host: &str,
        binding: Option<&SessionBinding>,
    ) -> Result<Session, rustls::Error> {
        let name = ServerName::try_from(host.to_string()).unwrap();
        let mut session = Session {
            client: ClientConnection::new(self.config.clone(), name)?,
            server: ServerConnection::new(server.clone())?,
        };
        if let Some(binding) = binding {
            binding.install(&mut session.server);
        }
        session.pump()?;
        Ok(session)
    }
}

pub(crate) struct Session {
    pub(crate) client: ClientConnection,
    pub(crate) server: ServerConnection,
}

impl Session {
    /// Moves bytes both ways until neither side has anything left to send.
    fn pump(&mut self) -> Result<(), rustls::Error> {
        for _ in 0..32 {
            let mut to_server = Vec::new();
            while self.client.wants_write() {
                self.client.write_tls(&mut to_server).unwrap();
            }
            let mut input = &to_server[..];
            while !input.is_empty() {
                self.server.read_tls(&mut input).unwrap();
                self.server.process_new_packets()?;
            }

            let mut to_client = Vec::new();
            while self.server.wants_write() {
                self.server.write_tls(&mut to_client).unwrap();
            }
            let mut input = &to_client[..];
            while !input.is_empty() {
                self.client.read_tls(&mut input).unwrap();
                self.client.process_new_packets()?;
            }

            let quiet = to_server.is_empty() && to_client.is_empty();
            if quiet && !self.client.is_handshaking() && !self.server.is_handshaking() {
                return Ok(());
            }
            if quiet {
                return Err(rustls::Error::General("handshake stalled".into()));
            }
        }
        Err(rustls::Error::General("handshake did not finish".into()))
    }

    /// Whether the server resumed a session or ran a full handshake.
    pub(crate) fn kind(&self) -> HandshakeKind {
        let kind = self.server.handshake_kind().unwrap();
        assert_eq!(self.client.handshake_kind(), Some(kind));
        kind
    }

    pub(crate) fn version(&self) -> rustls::ProtocolVersion {
        self.server.protocol_version().unwrap()
    }

    /// The leaf certificate the client received.
    pub(crate) fn server_leaf(&self) -> Vec<u8> {
        self.client.peer_certificates().unwrap()[0].to_vec()
    }

    /// Sends a few bytes each way, proving the session still works.
    pub(crate) fn exchange_application_data(&mut self) {
        self.client.writer().write_all(b"STOR a.txt").unwrap();
        self.pump().unwrap();
        let mut got = [0u8; 10];
        self.server.reader().read_exact(&mut got).unwrap();
        assert_eq!(&got, b"STOR a.txt");
        self.server.writer().write_all(b"226 ok").unwrap();
        self.pump().unwrap();
        let mut got = [0u8; 6];
        self.client.reader().read_exact(&mut got).unwrap();
        assert_eq!(&got, b"226 ok");
    }
}
