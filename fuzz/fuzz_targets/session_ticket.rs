//! TLS session tickets a client presents, through the cluster ticketer
//! (`TicketKeyRing::decrypt`).
//!
//! The first byte picks a mode. Even: the rest is a ticket made up by the
//! client; it must be refused (`None`), whatever key id it names: the ring
//! holds keys under the ids the seed corpus uses, including two live keys
//! sharing an id and an expired one. Odd: the rest is session state; the
//! ticket the ring issues for it must decrypt to it, and stop decrypting
//! once one bit of it is flipped (the second byte says which) or it is cut.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rustls::server::ProducesTickets;
use wharf_tls::{TicketKey, TicketKeyRing};

const NOW: u64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let ring = ring();
    match data.split_first() {
        Some((mode, ticket)) if mode % 2 == 0 => {
            assert_eq!(ring.decrypt(ticket), None, "a forged ticket decrypted");
        }
        Some((_, rest)) => {
            let (flip, plain) = rest.split_first().unwrap_or((&0, &[]));
            let ticket = ring.encrypt(plain).expect("an active key issues tickets");
            assert_eq!(ring.decrypt(&ticket).as_deref(), Some(plain));

            let mut tampered = ticket.clone();
            let bit = usize::from(*flip) % (tampered.len() * 8);
            tampered[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(ring.decrypt(&tampered), None, "bit {bit} flipped");
            let cut = usize::from(*flip) % ticket.len();
            assert_eq!(ring.decrypt(&ticket[..cut]), None, "cut at {cut}");
        }
        None => {}
    }
});

/// The same ring for every input, its clock stopped at `NOW`.
fn ring() -> &'static Arc<TicketKeyRing> {
    static RING: OnceLock<Arc<TicketKeyRing>> = OnceLock::new();
    RING.get_or_init(|| {
        let key = |id: u32, fill: u8, activate_at: u64, expires: u64| TicketKey {
            id,
            secret: [fill; 32],
            created: activate_at,
            activate_at,
            expires,
        };
        let ring = TicketKeyRing::with_clock(3600, || NOW);
        ring.replace_keys(vec![
            key(0x5748_4146, 1, NOW - 600, NOW + 3600), // "WHAF", active
            key(0x5748_4146, 2, NOW + 60, NOW + 7200),  // same id, not active yet
            key(0x0000_0001, 3, NOW - 7200, NOW - 1),   // expired
        ]);
        ring
    })
}
