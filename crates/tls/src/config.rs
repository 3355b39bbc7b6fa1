//! rustls configurations for control and data connections.
//!
//! Policy (DESIGN.md §5): TLS 1.2 and 1.3 only, rustls' AEAD suites from the
//! aws-lc-rs provider, session tickets and a session-ID cache for resumption,
//! no 0-RTT (FTP commands are not replay-safe).

use std::sync::Arc;

use rustls::server::ServerSessionMemoryCache;
use rustls::ServerConfig;

use crate::binding::ResumptionWitness;
use crate::{ServerIdentity, SessionBinding};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The two configurations a listener needs. They share the ticketer and the
/// session cache, so a data connection can resume a control session.
#[derive(Clone)]
pub struct TlsConfigs {
    pub control: Arc<ServerConfig>,
    /// Identical to `control` except that it sends no TLS 1.3 tickets: a client
    /// that only writes on a data connection (an upload) never reads them, and
    /// closing a socket with unread bytes makes the kernel send RST, which can
    /// destroy the tail of the upload before the server has read it.
    pub data: Arc<ServerConfig>,
}

/// How many TLS 1.2 sessions each node remembers for session-ID resumption.
const SESSION_CACHE_SIZE: usize = 8192;

impl TlsConfigs {
    pub fn new(identity: &ServerIdentity) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut control = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
        control.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
        control.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
        control.max_early_data_size = 0;
        let mut data = control.clone();
        data.send_tls13_tickets = 0;
        Ok(Self {
            control: Arc::new(control),
            data: Arc::new(data),
        })
    }

    /// The configuration for one data connection of the control session that
    /// owns `binding`, and the witness that tells afterwards whether the client
    /// resumed that session.
    pub fn for_data_connection(
        &self,
        binding: &SessionBinding,
    ) -> (Arc<ServerConfig>, Arc<ResumptionWitness>) {
        let mut config = (*self.data).clone();
        let witness = ResumptionWitness::new(
            binding.clone(),
            config.ticketer.clone(),
            config.session_storage.clone(),
        );
        config.ticketer = witness.clone();
        config.session_storage = witness.clone();
        (Arc::new(config), witness)
    }
}
