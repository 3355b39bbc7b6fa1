//! The session binding (DESIGN.md §2 step 5).
//!
//! Every control connection gets 32 random bytes which are embedded in every
//! resumption ticket or cached session it produces. A data connection is only
//! accepted when the client resumed one of those sessions, which proves the data
//! connection comes from the same TLS client as the control connection and stops
//! data-connection stealing (vsftpd's `require_ssl_reuse`).
//!
//! rustls reports the embedded bytes back (`received_resumption_data`) only for
//! TLS 1.3. For TLS 1.2 tickets and session IDs, each data connection gets a
//! [`ResumptionWitness`] in front of the shared ticketer and session cache: it
//! sees the plaintext of whatever session the client offers and notes whether
//! it carries this binding.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rand::RngCore;
use rustls::server::{ProducesTickets, StoresServerSessions};
use rustls::{HandshakeKind, ServerConnection};

#[derive(Clone, PartialEq, Eq)]
pub struct SessionBinding([u8; 32]);

impl SessionBinding {
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Embeds the binding in the tickets and cached sessions `conn` will issue.
    /// Must be called before the handshake runs.
    pub fn install(&self, conn: &mut ServerConnection) {
        conn.set_resumption_data(&self.0);
    }

    fn found_in(&self, session: &[u8]) -> bool {
        session.windows(self.0.len()).any(|w| w == self.0)
    }
}

impl std::fmt::Debug for SessionBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A secret of sorts: never print it.
        f.write_str("SessionBinding(..)")
    }
}

/// Watches the session lookups of one data-connection handshake.
pub struct ResumptionWitness {
    binding: SessionBinding,
    seen: AtomicBool,
    ticketer: Arc<dyn ProducesTickets>,
    cache: Arc<dyn StoresServerSessions>,
}

impl ResumptionWitness {
    pub(crate) fn new(
        binding: SessionBinding,
        ticketer: Arc<dyn ProducesTickets>,
        cache: Arc<dyn StoresServerSessions>,
    ) -> Arc<Self> {
        Arc::new(Self {
            binding,
            seen: AtomicBool::new(false),
            ticketer,
            cache,
        })
    }

    fn observe(&self, session: Option<Vec<u8>>) -> Option<Vec<u8>> {
        if let Some(plain) = &session {
            if self.binding.found_in(plain) {
                self.seen.store(true, Ordering::Relaxed);
            }
        }
        session
    }

    /// True when the finished handshake resumed a session of the control
    /// connection this witness was made for.
    pub fn resumed_by(&self, conn: &ServerConnection) -> bool {
        if conn.handshake_kind() != Some(HandshakeKind::Resumed) {
            return false;
        }
        match conn.received_resumption_data() {
            Some(data) => data == self.binding.0,
            None => self.seen.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for ResumptionWitness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumptionWitness")
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl ProducesTickets for ResumptionWitness {
    fn enabled(&self) -> bool {
        self.ticketer.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.ticketer.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.ticketer.encrypt(plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.observe(self.ticketer.decrypt(cipher))
    }
}

impl StoresServerSessions for ResumptionWitness {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.cache.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.observe(self.cache.get(key))
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.observe(self.cache.take(key))
    }

    fn can_cache(&self) -> bool {
        self.cache.can_cache()
    }
}
