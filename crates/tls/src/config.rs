//! rustls configurations for control and data connections.
//!
//! Policy (DESIGN.md §5): TLS 1.2 and 1.3 only, rustls' AEAD suites from the
//! aws-lc-rs provider, session tickets and a session-ID cache for resumption,
//! no 0-RTT (FTP commands are not replay-safe).

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ProducesTickets, ServerSessionMemoryCache};
use rustls::ServerConfig;

use crate::binding::ResumptionWitness;
use crate::client_auth::{ClientAuth, ClientCertMode};
use crate::resolver::{CertificateError, DEFAULT_NAME};
use crate::ticketer::{unix_now, TicketKeyError};
use crate::{CertificateSet, ServerIdentity, TicketKey, TicketKeyRing};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("server certificate unusable: {0}")]
    Certificate(#[from] CertificateError),
    #[error("cannot make a session ticket key: {0}")]
    TicketKey(#[from] TicketKeyError),
}

/// The two configurations a listener needs. They share the ticketer and the
/// session cache, so a data connection can resume a control session.
#[derive(Clone)]
pub struct TlsConfigs {
    /// The explicit listener's (`AUTH TLS`).
    pub control: Arc<ServerConfig>,
    /// The implicit listener's: the same but for its client-certificate mode.
    pub implicit: Arc<ServerConfig>,
    /// A data connection's, for a client that may never read from it (an
    /// upload whose client sends its command first): no TLS 1.3 ticket unless
    /// the client asks for one (RFC 9149). A client that only writes closes
    /// with an unread ticket in its socket, which the kernel turns into a
    /// reset that can cut off the tail of the upload (Go's crypto/tls,
    /// rclone).
    pub data: Arc<ServerConfig>,
    /// A data connection's that hands out fresh TLS 1.3 tickets: for
    /// downloads and listings (the client reads to the end) and for clients
    /// that start the handshake before their command (curl, which reads what
    /// is waiting when it closes). Clients that use each ticket once (curl's
    /// session cache, rustls, Java) resume their next data connection from it.
    pub data_with_tickets: Arc<ServerConfig>,
}

/// How many TLS 1.2 sessions each node remembers for session-ID resumption.
const SESSION_CACHE_SIZE: usize = 8192;
/// TLS 1.3 tickets a control connection hands out after its handshake.
/// Clients that use each ticket once (rustls, the JDK) spend one per data
/// connection, and an upload's data connection cannot give one back (the
/// client never reads it): eight, as many as a rustls client keeps per
/// server, carry eight data connections before the first download hands out
/// more. About 2 KiB per login.
const CONTROL_TICKETS: usize = 8;

/// How long clients may keep a ticket from a standalone node: six hours, as
/// rustls' own ticketer.
const STANDALONE_TICKET_LIFETIME_SECS: u32 = 6 * 3600;

/// How long a standalone node's ticket key lives. It is made at start-up and
/// never rotated, so it must outlive the process; a cluster replaces it with
/// rotated keys from the `ticket_keys` table.
const STANDALONE_TICKET_KEY_LIFETIME_SECS: u64 = 100 * 365 * 24 * 3600;

impl TlsConfigs {
    /// Configurations for a single node serving `identity`, with a ticket key
    /// of its own so sessions resume even without a cluster.
    pub fn new(identity: &ServerIdentity) -> Result<Self, TlsError> {
        let certs = CertificateSet::new();
        certs.replace(HashMap::from([(
            DEFAULT_NAME.to_string(),
            identity.certified_key()?,
        )]));
        let tickets = TicketKeyRing::new(STANDALONE_TICKET_LIFETIME_SECS);
        tickets.replace_keys(vec![TicketKey::generate(
            unix_now(),
            0,
            STANDALONE_TICKET_KEY_LIFETIME_SECS,
        )?]);
        Self::from_parts(certs, tickets, &ClientAuth::off())
    }

    /// Configurations that take certificates from `certs` and encrypt tickets
    /// with `tickets`; both may change underneath while the listener runs.
    pub fn from_parts(
        certs: Arc<CertificateSet>,
        tickets: Arc<dyn ProducesTickets>,
        client_auth: &ClientAuth,
    ) -> Result<Self, TlsError> {
        let session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
        let config = |mode: ClientCertMode| -> Result<ServerConfig, TlsError> {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let mut c = ServerConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
                .with_client_cert_verifier(client_auth.anchors.verifier(mode))
                .with_cert_resolver(certs.clone());
            c.session_storage = session_storage.clone();
            c.ticketer = tickets.clone();
            c.max_early_data_size = 0;
            // The server's order (AES-256-GCM first, all AEAD): auditors'
            // scanners flag a server without a cipher order.
            c.ignore_client_order = true;
            Ok(c)
        };
        let mut control = config(client_auth.explicit)?;
        control.send_tls13_tickets = CONTROL_TICKETS;
        let mut implicit = config(client_auth.implicit)?;
        implicit.send_tls13_tickets = CONTROL_TICKETS;
        let mut data = config(client_auth.data())?;
        data.send_tls13_tickets = 0;
        data.max_tls13_tickets = 1;
        // Two: a download replaces the ticket it used and adds one for an
        // upload, which cannot get its own (alternating uploads and downloads
        // never run dry).
        let mut data_with_tickets = config(client_auth.data())?;
        data_with_tickets.send_tls13_tickets = 2;
        Ok(Self {
            control: Arc::new(control),
            implicit: Arc::new(implicit),
            data: Arc::new(data),
            data_with_tickets: Arc::new(data_with_tickets),
        })
    }

    /// The configuration for one data connection (handing out tickets or
    /// not), and the witness that tells afterwards which session the client
    /// resumed.
    pub fn for_data_connection(
        &self,
        tickets: bool,
    ) -> (Arc<ServerConfig>, Arc<ResumptionWitness>) {
        let base = if tickets {
            &self.data_with_tickets
        } else {
            &self.data
        };
        let mut config = (**base).clone();
        let witness =
            ResumptionWitness::new(config.ticketer.clone(), config.session_storage.clone());
        config.ticketer = witness.clone();
        config.session_storage = witness.clone();
        (Arc::new(config), witness)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use rustls::{HandshakeKind, ProtocolVersion};

    use super::*;
    use crate::test_support::{self_signed, Handshake};
    use crate::SessionBinding;

    const HOST: &str = "ftp.example.com";

    /// One cluster node: its own ring instance and session cache, holding
    /// `keys`, with "now" read from `clock`.
    fn node(keys: &[TicketKey], clock: &Arc<AtomicU64>) -> TlsConfigs {
        let certs = CertificateSet::new();
        certs.replace(HashMap::from([(
            DEFAULT_NAME.to_string(),
            self_signed(&[HOST]),
        )]));
        let clock = clock.clone();
        let ring = TicketKeyRing::with_clock(3600, move || clock.load(Ordering::Relaxed));
        ring.replace_keys(keys.to_vec());
        TlsConfigs::from_parts(certs, ring, &ClientAuth::off()).unwrap()
    }

    fn key() -> TicketKey {
        TicketKey::generate(unix_now() - 10, 0, 3600).unwrap()
    }

    fn clock() -> Arc<AtomicU64> {
        Arc::new(AtomicU64::new(unix_now()))
    }

    /// Connects once to `first` and then to `second`, returning the kind of
    /// the second handshake.
    fn second_handshake(
        client: &Handshake,
        first: &TlsConfigs,
        second: &TlsConfigs,
    ) -> HandshakeKind {
        let initial = client.run(&first.control, HOST);
        assert_eq!(initial.kind(), HandshakeKind::Full);
        client.run(&second.control, HOST).kind()
    }

    /// A ticket issued by node A resumes on node B holding the same keys.
    fn assert_ticket_resumes_across_nodes(client: Handshake, version: ProtocolVersion) {
        let keys = [key()];
        let (a, b) = (node(&keys, &clock()), node(&keys, &clock()));
        assert_eq!(client.run(&a.control, HOST).version(), version);
        let resumed = client.run(&b.control, HOST);
        assert_eq!(resumed.kind(), HandshakeKind::Resumed);
        assert_eq!(resumed.version(), version);
    }

    #[test]
    fn tls13_ticket_from_one_node_resumes_on_another() {
        assert_ticket_resumes_across_nodes(Handshake::new(), ProtocolVersion::TLSv1_3);
    }

    #[test]
    fn tls12_ticket_from_one_node_resumes_on_another() {
        assert_ticket_resumes_across_nodes(Handshake::tls12(), ProtocolVersion::TLSv1_2);
    }

    #[test]
    fn nodes_with_disjoint_keys_fall_back_to_a_full_handshake() {
        let (a, b) = (node(&[key()], &clock()), node(&[key()], &clock()));
        assert_eq!(
            second_handshake(&Handshake::new(), &a, &b),
            HandshakeKind::Full
        );
        assert_eq!(
            second_handshake(&Handshake::tls12(), &a, &b),
            HandshakeKind::Full
        );
    }

    #[test]
    fn ticket_of_an_expired_key_no_longer_resumes() {
        let keys = [key()];
        let later = clock();
        let (a, b) = (node(&keys, &clock()), node(&keys, &later));
        later.store(keys[0].expires, Ordering::Relaxed);
        assert_eq!(
            second_handshake(&Handshake::new(), &a, &b),
            HandshakeKind::Full
        );
        assert_eq!(
            second_handshake(&Handshake::tls12(), &a, &b),
            HandshakeKind::Full
        );
    }

    #[test]
    fn ticket_of_a_key_not_yet_active_here_still_resumes() {
        // Node A's clock runs two minutes ahead and already uses the new key.
        let old = key();
        let new = TicketKey::generate(unix_now(), 60, 3600).unwrap();
        let ahead = Arc::new(AtomicU64::new(unix_now() + 120));
        let a = node(&[old.clone(), new.clone()], &ahead);
        let b = node(&[old, new], &clock());
        assert_eq!(
            second_handshake(&Handshake::new(), &a, &b),
            HandshakeKind::Resumed
        );
    }

    #[test]
    fn data_connection_on_another_node_proves_the_same_client() {
        for client in [Handshake::new(), Handshake::tls12()] {
            let keys = [key()];
            let (a, b) = (node(&keys, &clock()), node(&keys, &clock()));
            let binding = SessionBinding::new([192, 0, 2, 7].into());
            client.run_bound(&a.control, HOST, &binding);

            let (config, witness) = b.for_data_connection(false);
            let data = client.run(&config, HOST);
            assert_eq!(data.kind(), HandshakeKind::Resumed);
            assert!(witness.resumed_by(&data.server, &binding));
            assert_eq!(witness.claim(&data.server).unwrap().user, None);

            let stranger = SessionBinding::new([192, 0, 2, 7].into());
            assert!(!witness.resumed_by(&data.server, &stranger));
        }
    }

    #[test]
    fn standalone_node_resumes_its_own_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let identity = ServerIdentity::self_signed_in(dir.path(), &[HOST.into()]).unwrap();
        let configs = TlsConfigs::new(&identity).unwrap();
        for client in [Handshake::new(), Handshake::tls12()] {
            let first = client.run(&configs.control, HOST);
            assert_eq!(first.server_leaf(), identity.chain[0].to_vec());
            assert_eq!(
                client.run(&configs.control, HOST).kind(),
                HandshakeKind::Resumed
            );
        }
    }

    #[test]
    fn a_data_connection_with_tickets_hands_out_fresh_ones() {
        // Clients that use each TLS 1.3 ticket once (rustls, curl's OpenSSL
        // cache, Java) resume every data connection from the previous one's.
        let configs = node(&[key()], &clock());
        let client = Handshake::new();
        let binding = SessionBinding::new([192, 0, 2, 7].into());
        client.run_bound(&configs.control, HOST, &binding);
        for _ in 0..20 {
            let (config, witness) = configs.for_data_connection(true);
            let data = client.run_bound(&config, HOST, &binding);
            assert_eq!(data.kind(), HandshakeKind::Resumed);
            assert!(witness.resumed_by(&data.server, &binding));
        }
    }

    #[test]
    fn a_quiet_data_connection_hands_out_no_ticket_unasked() {
        let configs = node(&[key()], &clock());
        let client = Handshake::new();
        client.run(&configs.data, HOST);
        assert_eq!(client.run(&configs.data, HOST).kind(), HandshakeKind::Full);
    }
}
