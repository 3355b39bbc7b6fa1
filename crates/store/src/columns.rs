//! The column families outside the state tables (`table::TABLES`), and
//! the keys of the state machine's metadata.

/// Raft log entries by index.
pub const RAFT_LOG: &str = "raft_log";
/// Vote, committed log id, last purged log id.
pub const RAFT_META: &str = "raft_meta";
/// Last applied log id, membership and the current snapshot.
pub const SM_META: &str = "sm_meta";

/// Keys in `SM_META`.
pub(crate) const LAST_APPLIED: &[u8] = b"last_applied";
pub(crate) const MEMBERSHIP: &[u8] = b"membership";
