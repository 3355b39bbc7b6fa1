//! How long the cluster ticketer takes to seal and open one session ticket.
//!
//! Every full handshake encrypts a ticket and every resumption decrypts one,
//! so both sit on the handshake path. The ring holds what it holds in steady
//! state: the active key and the next one, added ahead of its activation.

// Test and benchmark code: a failed unwrap is the run failing (the workspace
// denies these lints outside tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rustls::server::ProducesTickets;
use wharf_tls::{TicketKey, TicketKeyRing};

/// About the size of the session state rustls hands the ticketer for a TLS 1.3
/// resumption (version, suite, secret, client certificate absent, ALPN, times).
const PLAINTEXT_LEN: usize = 200;

fn ring_with_active_and_pending_key() -> std::sync::Arc<TicketKeyRing> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let active = TicketKey::generate(now.saturating_sub(60), 0, 12 * 3600)
        .expect("the system random number generator works");
    let pending = TicketKey::generate(now, 3600, 12 * 3600)
        .expect("the system random number generator works");
    let ring = TicketKeyRing::new(3600);
    ring.replace_keys(vec![active, pending]);
    ring
}

fn ticketer(c: &mut Criterion) {
    let ring = ring_with_active_and_pending_key();
    let plain: Vec<u8> = (0..PLAINTEXT_LEN).map(|i| (i * 7 % 251) as u8).collect();
    let ticket = ring
        .encrypt(&plain)
        .expect("a ring with an active key issues tickets");
    assert_eq!(
        ring.decrypt(&ticket).as_deref(),
        Some(plain.as_slice()),
        "the benchmark ticket must round-trip"
    );

    let mut group = c.benchmark_group("ticketer");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Bytes(PLAINTEXT_LEN as u64));
    group.bench_function("encrypt_200B", |b| {
        b.iter(|| ring.encrypt(black_box(&plain)))
    });
    group.bench_function("decrypt_200B", |b| {
        b.iter(|| ring.decrypt(black_box(&ticket)))
    });
    group.finish();
}

criterion_group!(benches, ticketer);
criterion_main!(benches);
