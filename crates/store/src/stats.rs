//! What the snapshot policy weighs: bytes appended to the Raft log since the
//! last snapshot against the size of that snapshot (the state).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Clone, Default, Debug)]
pub struct StoreStats(Arc<Counters>);

#[derive(Default, Debug)]
struct Counters {
    /// Bytes of log entries ever appended by this process.
    log_bytes: AtomicU64,
    /// `log_bytes` when the last snapshot was built or installed.
    log_bytes_at_snapshot: AtomicU64,
    snapshot_bytes: AtomicU64,
    snapshots: AtomicU64,
}

impl StoreStats {
    pub(crate) fn appended(&self, bytes: u64) {
        self.0.log_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn log_bytes(&self) -> u64 {
        self.0.log_bytes.load(Ordering::Relaxed)
    }

    /// A snapshot of `bytes` exists (found at start-up).
    pub(crate) fn snapshot_built(&self, bytes: u64) {
        self.0.snapshot_bytes.store(bytes, Ordering::Relaxed);
    }

    /// A snapshot of `bytes` was made when the log had `log_bytes` appended.
    pub(crate) fn snapshot_built_at(&self, bytes: u64, log_bytes: u64) {
        self.0.snapshot_bytes.store(bytes, Ordering::Relaxed);
        self.0
            .log_bytes_at_snapshot
            .store(log_bytes, Ordering::Relaxed);
        self.0.snapshots.fetch_add(1, Ordering::Relaxed);
    }

    /// Bytes of log entries appended since the process started.
    pub fn log_bytes_written(&self) -> u64 {
        self.log_bytes()
    }

    /// Log bytes appended since the last snapshot (since start-up when none
    /// was made since).
    pub fn log_bytes_since_snapshot(&self) -> u64 {
        self.log_bytes()
            .saturating_sub(self.0.log_bytes_at_snapshot.load(Ordering::Relaxed))
    }

    /// Size of the newest snapshot file; 0 when there is none.
    pub fn snapshot_bytes(&self) -> u64 {
        self.0.snapshot_bytes.load(Ordering::Relaxed)
    }

    /// Snapshots built or installed by this process.
    pub fn snapshots(&self) -> u64 {
        self.0.snapshots.load(Ordering::Relaxed)
    }
}
