//! The cluster ticketer (DESIGN.md §5, "Session tickets").
//!
//! Every node loads the same ticket keys from the replicated `ticket_keys`
//! table, so a session ticket issued by one node resumes on any other: a client
//! whose data connection lands on a different node than its control connection
//! still skips the full handshake.
//!
//! A ticket is `key id (4 bytes, big-endian) ‖ nonce (12 bytes) ‖ AES-256-GCM
//! ciphertext and tag`, with the key id as associated data. The id is in clear
//! so a node finds the key without trial decryption.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use rustls::server::ProducesTickets;

const ID_LEN: usize = 4;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = ID_LEN + NONCE_LEN;

#[derive(Debug, thiserror::Error)]
pub enum TicketKeyError {
    #[error("the system random number generator failed; no ticket key was made")]
    Random,
}

/// One row of the `ticket_keys` table. Times are unix seconds.
///
/// The leader adds a key with `activate_at` in the future so every node has it
/// before any node encrypts with it, and removes it once `expires` has passed.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TicketKey {
    pub id: u32,
    pub secret: [u8; 32],
    pub created: u64,
    pub activate_at: u64,
    pub expires: u64,
}

impl TicketKey {
    /// A key with a random id and secret, used for new tickets from
    /// `now + activate_after` and accepted until `lifetime` seconds after that.
    pub fn generate(now: u64, activate_after: u64, lifetime: u64) -> Result<Self, TicketKeyError> {
        let mut id = [0u8; ID_LEN];
        let mut secret = [0u8; 32];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| TicketKeyError::Random)?;
        aws_lc_rs::rand::fill(&mut secret).map_err(|_| TicketKeyError::Random)?;
        let activate_at = now.saturating_add(activate_after);
        Ok(Self {
            id: u32::from_be_bytes(id),
            secret,
            created: now,
            activate_at,
            expires: activate_at.saturating_add(lifetime),
        })
    }

    /// May encrypt new tickets at `now`.
    pub fn is_active(&self, now: u64) -> bool {
        self.activate_at <= now && now < self.expires
    }

    /// May still decrypt tickets at `now`; a key not active yet counts, since a
    /// peer whose clock runs ahead may already have encrypted with it.
    pub fn is_live(&self, now: u64) -> bool {
        now < self.expires
    }
}

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret decrypts every ticket issued with it: never print it.
        f.debug_struct("TicketKey")
            .field("id", &format_args!("{:08x}", self.id))
            .field("created", &self.created)
            .field("activate_at", &self.activate_at)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// A key with its AEAD state prepared once, when the key list is replaced,
/// rather than on every handshake.
struct LoadedKey {
    key: TicketKey,
    aead: RandomizedNonceKey,
}

type Clock = Box<dyn Fn() -> u64 + Send + Sync>;

/// The ticket keys a node currently holds, readable without locks by every
/// handshake while the replication layer swaps in new lists.
pub struct TicketKeyRing {
    /// Newest first: descending `activate_at`, then descending `created`.
    keys: ArcSwap<Vec<LoadedKey>>,
    lifetime: u32,
    clock: Clock,
}

impl TicketKeyRing {
    /// An empty ring: it issues no tickets until keys arrive. Tickets tell
    /// clients they may be used for `ticket_lifetime_secs`.
    pub fn new(ticket_lifetime_secs: u32) -> Arc<Self> {
        Self::with_clock(ticket_lifetime_secs, unix_now)
    }

    /// Like [`new`](Self::new) but reading "now" (unix seconds) from `clock`,
    /// so tests can move time.
    pub fn with_clock(
        ticket_lifetime_secs: u32,
        clock: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            keys: ArcSwap::from_pointee(Vec::new()),
            lifetime: ticket_lifetime_secs,
            clock: Box::new(clock),
        })
    }

    /// Installs the full key list, typically whenever the replicated table
    /// changes. Handshakes in progress keep the list they started with.
    pub fn replace_keys(&self, keys: Vec<TicketKey>) {
        let mut loaded: Vec<LoadedKey> = keys
            .into_iter()
            .filter_map(|key| {
                // Cannot fail for a 32-byte key; a key that somehow did would
                // only mean its tickets are not accepted.
                let aead = RandomizedNonceKey::new(&AES_256_GCM, &key.secret).ok()?;
                Some(LoadedKey { key, aead })
            })
            .collect();
        loaded.sort_by(|a, b| {
            (b.key.activate_at, b.key.created).cmp(&(a.key.activate_at, a.key.created))
        });
        self.keys.store(Arc::new(loaded));
    }

    /// The keys currently held, newest first.
    pub fn keys(&self) -> Vec<TicketKey> {
        self.keys.load().iter().map(|k| k.key.clone()).collect()
    }
}

impl fmt::Debug for TicketKeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketKeyRing")
            .field("lifetime", &self.lifetime)
            .field("keys", &self.keys())
            .finish_non_exhaustive()
    }
}

impl ProducesTickets for TicketKeyRing {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let now = (self.clock)();
        let keys = self.keys.load();
        let newest = keys.iter().find(|k| k.key.is_active(now))?;
        let id = newest.key.id.to_be_bytes();

        let mut ticket = Vec::with_capacity(HEADER_LEN + plain.len() + TAG_LEN);
        ticket.extend_from_slice(&id);
        ticket.extend_from_slice(&[0u8; NONCE_LEN]);
        ticket.extend_from_slice(plain);
        let (nonce, tag) = newest
            .aead
            .seal_in_place_separate_tag(Aad::from(id), ticket.get_mut(HEADER_LEN..)?)
            .ok()?;
        ticket
            .get_mut(ID_LEN..HEADER_LEN)?
            .copy_from_slice(nonce.as_ref());
        ticket.extend_from_slice(tag.as_ref());
        Some(ticket)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < HEADER_LEN + TAG_LEN {
            return None;
        }
        let (id, rest) = cipher.split_at(ID_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let id_value = u32::from_be_bytes(id.try_into().ok()?);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let now = (self.clock)();
        // Ids are random, so two live keys may share one: try each.
        self.keys
            .load()
            .iter()
            .filter(|k| k.key.id == id_value && k.key.is_live(now))
            .find_map(|k| {
                let mut buf = sealed.to_vec();
                let plain_len = k
                    .aead
                    .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(id), &mut buf)
                    .ok()?
                    .len();
                buf.truncate(plain_len);
                Some(buf)
            })
    }
}

/// The current time in unix seconds; 0 if the system clock is before 1970.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    const T0: u64 = 1_700_000_000;

    fn ring_at(clock: &Arc<AtomicU64>) -> Arc<TicketKeyRing> {
        let clock = clock.clone();
        TicketKeyRing::with_clock(3600, move || clock.load(Ordering::Relaxed))
    }

    fn key_id(ticket: &[u8]) -> u32 {
        u32::from_be_bytes(ticket[..4].try_into().unwrap())
    }

    #[test]
    fn ticket_round_trips_and_carries_key_id_in_clear() {
        let clock = Arc::new(AtomicU64::new(T0));
        let ring = ring_at(&clock);
        let key = TicketKey::generate(T0, 0, 600).unwrap();
        ring.replace_keys(vec![key.clone()]);
        let ticket = ring.encrypt(b"session state").unwrap();
        assert_eq!(key_id(&ticket), key.id);
        assert_eq!(ticket.len(), 4 + 12 + 13 + 16);
        assert_eq!(ring.decrypt(&ticket).unwrap(), b"session state");
    }

    #[test]
    fn empty_ring_issues_no_tickets() {
        let ring = TicketKeyRing::new(3600);
        assert!(ring.enabled());
        assert_eq!(ring.lifetime(), 3600);
        assert!(ring.encrypt(b"x").is_none());
    }

    #[test]
    fn newest_active_key_encrypts_and_pending_key_only_decrypts() {
        let clock = Arc::new(AtomicU64::new(T0));
        let current = TicketKey::generate(T0 - 100, 0, 3600).unwrap();
        let pending = TicketKey::generate(T0, 60, 3600).unwrap();
        let ring = ring_at(&clock);
        ring.replace_keys(vec![current.clone(), pending.clone()]);
        assert_eq!(key_id(&ring.encrypt(b"x").unwrap()), current.id);

        // A peer whose clock is two minutes ahead already uses the new key.
        let ahead = Arc::new(AtomicU64::new(T0 + 120));
        let peer = ring_at(&ahead);
        peer.replace_keys(vec![pending.clone(), current.clone()]);
        let ticket = peer.encrypt(b"from the peer").unwrap();
        assert_eq!(key_id(&ticket), pending.id);
        assert_eq!(ring.decrypt(&ticket).unwrap(), b"from the peer");

        let only_pending = ring_at(&clock);
        only_pending.replace_keys(vec![pending]);
        assert!(only_pending.encrypt(b"x").is_none());
    }

    #[test]
    fn ties_in_activation_go_to_the_later_created_key() {
        let clock = Arc::new(AtomicU64::new(T0));
        let mut older = TicketKey::generate(T0 - 10, 0, 3600).unwrap();
        let newer = TicketKey::generate(T0 - 5, 0, 3600).unwrap();
        older.activate_at = newer.activate_at;
        let ring = ring_at(&clock);
        ring.replace_keys(vec![older, newer.clone()]);
        assert_eq!(key_id(&ring.encrypt(b"x").unwrap()), newer.id);
    }

    #[test]
    fn expired_key_neither_encrypts_nor_decrypts() {
        let clock = Arc::new(AtomicU64::new(T0));
        let ring = ring_at(&clock);
        ring.replace_keys(vec![TicketKey::generate(T0, 0, 600).unwrap()]);
        let ticket = ring.encrypt(b"x").unwrap();
        clock.store(T0 + 600, Ordering::Relaxed);
        assert!(ring.decrypt(&ticket).is_none());
        assert!(ring.encrypt(b"x").is_none());
    }

    #[test]
    fn tampered_truncated_or_foreign_tickets_are_rejected() {
        let clock = Arc::new(AtomicU64::new(T0));
        let ring = ring_at(&clock);
        ring.replace_keys(vec![TicketKey::generate(T0, 0, 600).unwrap()]);
        let ticket = ring.encrypt(b"session state").unwrap();
        for i in 0..ticket.len() {
            let mut bad = ticket.clone();
            bad[i] ^= 0x01;
            assert!(ring.decrypt(&bad).is_none(), "flipped byte {i} accepted");
        }
        for len in 0..ticket.len() {
            assert!(ring.decrypt(&ticket[..len]).is_none());
        }
        let other = ring_at(&clock);
        other.replace_keys(vec![TicketKey::generate(T0, 0, 600).unwrap()]);
        assert!(other.decrypt(&ticket).is_none());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let key = TicketKey::generate(T0, 0, 600).unwrap();
        let ring = TicketKeyRing::new(3600);
        ring.replace_keys(vec![key.clone()]);
        let shown = format!("{ring:?} {key:?}");
        let secret_bytes = format!("{:?}", key.secret);
        assert!(!shown.contains(&secret_bytes), "{shown}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
