//! The session binding (DESIGN.md §2 step 5).
//!
//! Every control connection gets 32 random bytes which are embedded, with the
//! client's address, in every resumption ticket or cached session it produces;
//! the tickets a data connection hands out also name the logged-in user. The
//! tickets are encrypted and authenticated with the cluster's ticket keys, so
//! what a resumed session says about itself (a [`SessionClaim`]) is what this
//! cluster wrote: a data connection that resumes a session proves it comes from
//! a TLS client the cluster already knows, at that address, and — through the
//! user or the binding — as whom. The engine decides what suffices
//! (`wharf_server::data_tls`).
//!
//! rustls reports the embedded bytes back (`received_resumption_data`) only for
//! TLS 1.3. For TLS 1.2 tickets and session IDs, each data connection gets a
//! [`ResumptionWitness`] in front of the shared ticketer and session cache: it
//! sees the plaintext of whatever session the client offers and reads the claim
//! from it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use rand::RngCore;
use rustls::server::{ProducesTickets, StoresServerSessions};
use rustls::{HandshakeKind, ServerConnection};

/// Marks the start of a claim inside rustls' encoding of a stored session.
const MAGIC: &[u8; 4] = b"WHRF";
const VERSION: u8 = 1;
const BINDING_LEN: usize = 32;
/// The longest user name a claim carries; a longer one is left out (the
/// binding still identifies the session).
const MAX_USER_LEN: usize = 255;

/// The identity of one control connection: random bytes and the client's
/// address (after any PROXY header).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionBinding {
    bytes: [u8; BINDING_LEN],
    client: IpAddr,
}

impl SessionBinding {
    pub fn new(client: IpAddr) -> Self {
        let mut bytes = [0u8; BINDING_LEN];
        rand::thread_rng().fill_bytes(&mut bytes);
        Self { bytes, client }
    }

    /// The address the binding was made for.
    pub fn client(&self) -> IpAddr {
        self.client
    }

    /// Embeds the binding in the tickets and cached sessions `conn` will issue
    /// (a control connection's: no user yet). Must be called before the
    /// handshake runs.
    pub fn install(&self, conn: &mut ServerConnection) {
        conn.set_resumption_data(&self.claim(None).encode());
    }

    /// Like [`install`](Self::install), for a data connection of a session
    /// logged in as `user`: its tickets also name the user.
    pub fn install_for_user(&self, conn: &mut ServerConnection, user: &str) {
        conn.set_resumption_data(&self.claim(Some(user)).encode());
    }

    /// What the tickets of this session say, with `user` once logged in.
    pub fn claim(&self, user: Option<&str>) -> SessionClaim {
        SessionClaim {
            binding: self.bytes,
            client: self.client,
            user: user.filter(|u| u.len() <= MAX_USER_LEN).map(str::to_owned),
        }
    }
}

impl std::fmt::Debug for SessionBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A secret of sorts: never print it.
        f.write_str("SessionBinding(..)")
    }
}

/// What a resumed session says about the connection that issued it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionClaim {
    binding: [u8; BINDING_LEN],
    pub client: IpAddr,
    /// The user, when a data connection of a logged-in session issued it.
    pub user: Option<String>,
}

impl SessionClaim {
    /// Whether the session was issued by the control connection `binding`
    /// (or one of its data connections).
    pub fn is_of(&self, binding: &SessionBinding) -> bool {
        self.binding == binding.bytes && self.client == binding.client
    }

    /// The binding of the control connection that issued the session.
    pub fn binding(&self) -> SessionBinding {
        SessionBinding {
            bytes: self.binding,
            client: self.client,
        }
    }

    /// `MAGIC ‖ version ‖ binding ‖ 4|6 ‖ address ‖ user length ‖ user`.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.binding);
        match self.client {
            IpAddr::V4(v4) => {
                out.push(4);
                out.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                out.push(6);
                out.extend_from_slice(&v6.octets());
            }
        }
        let user = self.user.as_deref().unwrap_or_default().as_bytes();
        out.push(user.len() as u8);
        out.extend_from_slice(user);
        out
    }

    /// Reads a claim from the start of `bytes`.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let rest = bytes.strip_prefix(MAGIC.as_slice())?;
        let (&version, rest) = rest.split_first()?;
        if version != VERSION || rest.len() < BINDING_LEN {
            return None;
        }
        let (binding, rest) = rest.split_at(BINDING_LEN);
        let (&family, rest) = rest.split_first()?;
        let (client, rest) = match family {
            4 => {
                let (octets, rest) = rest.split_first_chunk::<4>()?;
                (IpAddr::V4(Ipv4Addr::from(*octets)), rest)
            }
            6 => {
                let (octets, rest) = rest.split_first_chunk::<16>()?;
                (IpAddr::V6(Ipv6Addr::from(*octets)), rest)
            }
            _ => return None,
        };
        let (&len, rest) = rest.split_first()?;
        let user = rest.get(..usize::from(len))?;
        Some(Self {
            binding: binding.try_into().ok()?,
            client,
            user: (len > 0)
                .then(|| String::from_utf8(user.to_vec()).ok())
                .flatten(),
        })
    }

    /// Finds a claim inside rustls' encoding of a whole stored session.
    fn find_in(session: &[u8]) -> Option<Self> {
        session
            .windows(MAGIC.len())
            .enumerate()
            .filter(|(_, w)| *w == MAGIC)
            .find_map(|(at, _)| Self::decode(session.get(at..)?))
    }
}

impl std::fmt::Debug for SessionClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionClaim")
            .field("client", &self.client)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Watches the session lookups of one data-connection handshake.
pub struct ResumptionWitness {
    seen: Mutex<Option<SessionClaim>>,
    ticketer: Arc<dyn ProducesTickets>,
    cache: Arc<dyn StoresServerSessions>,
}

impl ResumptionWitness {
    pub(crate) fn new(
        ticketer: Arc<dyn ProducesTickets>,
        cache: Arc<dyn StoresServerSessions>,
    ) -> Arc<Self> {
        Arc::new(Self {
            seen: Mutex::new(None),
            ticketer,
            cache,
        })
    }

    fn observe(&self, session: Option<Vec<u8>>) -> Option<Vec<u8>> {
        if let Some(claim) = session.as_deref().and_then(SessionClaim::find_in) {
            if let Ok(mut seen) = self.seen.lock() {
                *seen = Some(claim);
            }
        }
        session
    }

    /// What the session the finished handshake resumed says about itself;
    /// `None` after a full handshake or a session this cluster did not bind.
    pub fn claim(&self, conn: &ServerConnection) -> Option<SessionClaim> {
        if conn.handshake_kind() != Some(HandshakeKind::Resumed) {
            return None;
        }
        match conn.received_resumption_data() {
            Some(data) => SessionClaim::decode(data),
            None => self.seen.lock().ok()?.clone(),
        }
    }

    /// True when the finished handshake resumed a session of the control
    /// connection `binding`.
    pub fn resumed_by(&self, conn: &ServerConnection, binding: &SessionBinding) -> bool {
        self.claim(conn).is_some_and(|c| c.is_of(binding))
    }
}

impl std::fmt::Debug for ResumptionWitness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumptionWitness").finish_non_exhaustive()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_round_trips_with_and_without_user() {
        for client in ["192.0.2.7", "2001:db8::1"] {
            let binding = SessionBinding::new(client.parse().unwrap());
            for user in [None, Some("alice")] {
                let claim = binding.claim(user);
                let mut stored = b"rustls session prefix".to_vec();
                stored.extend_from_slice(&claim.encode());
                stored.extend_from_slice(b"suffix");
                let found = SessionClaim::find_in(&stored).unwrap();
                assert_eq!(found, claim);
                assert!(found.is_of(&binding));
                assert_eq!(found.user.as_deref(), user);
            }
        }
    }

    #[test]
    fn truncated_or_foreign_bytes_are_no_claim() {
        let claim = SessionBinding::new("192.0.2.7".parse().unwrap()).claim(Some("bob"));
        let bytes = claim.encode();
        for cut in 0..bytes.len() {
            assert!(
                SessionClaim::decode(&bytes[..cut]).is_none(),
                "cut at {cut}"
            );
        }
        assert!(SessionClaim::find_in(b"WHRFWHRF\x02garbage").is_none());
    }

    #[test]
    fn another_address_is_another_binding() {
        let binding = SessionBinding::new("192.0.2.7".parse().unwrap());
        let mut claim = binding.claim(None);
        claim.client = "192.0.2.8".parse().unwrap();
        assert!(!claim.is_of(&binding));
    }
}
