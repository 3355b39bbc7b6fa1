//! What the engine counts for operators: logins, bytes and transfers, and TLS
//! handshakes by version and kind. Plain atomics, read by the embedding
//! program (the `wharf` binary writes them out in Prometheus text format).

use std::sync::atomic::{AtomicU64, Ordering};

use rustls::{HandshakeKind, ProtocolVersion};

use crate::stream::FtpStream;

#[derive(Default, Debug)]
pub struct EngineMetrics {
    logins_ok: AtomicU64,
    logins_failed: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    transfers_complete: AtomicU64,
    transfers_incomplete: AtomicU64,
    /// `[TLS 1.2, TLS 1.3][full, resumed]`.
    handshakes: [[AtomicU64; 2]; 2],
}

/// One reading of every counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub logins_ok: u64,
    pub logins_failed: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub transfers_complete: u64,
    pub transfers_incomplete: u64,
    /// `[TLS 1.2, TLS 1.3][full, resumed]`.
    pub handshakes: [[u64; 2]; 2],
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl EngineMetrics {
    pub(crate) fn login(&self, ok: bool) {
        add(
            if ok {
                &self.logins_ok
            } else {
                &self.logins_failed
            },
            1,
        );
    }

    pub(crate) fn transfer(&self, incoming: bool, bytes: u64, complete: bool) {
        add(
            if incoming {
                &self.bytes_in
            } else {
                &self.bytes_out
            },
            bytes,
        );
        add(
            if complete {
                &self.transfers_complete
            } else {
                &self.transfers_incomplete
            },
            1,
        );
    }

    /// Counts the handshake a TLS stream went through (control or data).
    pub(crate) fn handshake(&self, stream: &FtpStream) {
        let FtpStream::Tls(tls) = stream else {
            return;
        };
        let conn = tls.get_ref().1;
        let version = match conn.protocol_version() {
            Some(ProtocolVersion::TLSv1_2) => 0,
            Some(ProtocolVersion::TLSv1_3) => 1,
            _ => return,
        };
        let resumed = usize::from(conn.handshake_kind() == Some(HandshakeKind::Resumed));
        if let Some(count) = self.handshakes.get(version).and_then(|v| v.get(resumed)) {
            add(count, 1);
        }
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            logins_ok: read(&self.logins_ok),
            logins_failed: read(&self.logins_failed),
            bytes_in: read(&self.bytes_in),
            bytes_out: read(&self.bytes_out),
            transfers_complete: read(&self.transfers_complete),
            transfers_incomplete: read(&self.transfers_incomplete),
            handshakes: self.handshakes.each_ref().map(|v| v.each_ref().map(read)),
        }
    }
}
