//! The session binding (DESIGN.md §2 step 5).
//!
//! Every control connection gets 32 random bytes which are embedded in every
//! resumption ticket or cached session it produces. A data connection is only
//! accepted when the client resumed one of those sessions, which proves the data
//! connection comes from the same TLS client as the control connection and stops
//! data-connection stealing (vsftpd's `require_ssl_reuse`).

use rand::RngCore;
use rustls::ServerConnection;

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

    /// True when the client resumed a session that carries this binding.
    pub fn is_resumed_by(&self, conn: &ServerConnection) -> bool {
        conn.received_resumption_data() == Some(&self.0[..])
    }
}

impl std::fmt::Debug for SessionBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The value is a secret of sorts: never print it.
        f.write_str("SessionBinding(..)")
    }
}
