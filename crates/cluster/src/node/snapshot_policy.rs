//! When this node builds a Raft snapshot, and the Raft configuration that
//! follows from it.

use std::time::{Duration, Instant};

use openraft::Config;
use wharf_store::Raft;

/// When a node builds a snapshot: once the log written since the last one
/// outweighs the state a snapshot holds (and at least `min_log_bytes`), so
/// snapshot work per committed byte stays the same however big the namespace
/// grows; or, when `every_entries` is set, also every that many entries.
/// A snapshot goes to a follower in pieces of `piece_bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotSettings {
    pub min_log_bytes: u64,
    pub every_entries: u64,
    pub piece_bytes: u64,
}

impl Default for SnapshotSettings {
    fn default() -> Self {
        Self {
            min_log_bytes: 32 << 20,
            every_entries: 0,
            piece_bytes: 3 << 20,
        }
    }
}

/// Log entries kept behind a snapshot, so a follower a little behind catches
/// up from the log rather than with a whole snapshot.
const LOG_KEPT_BEHIND_SNAPSHOT: u64 = 1000;

impl SnapshotSettings {
    fn due(&self, log_bytes_since: u64, snapshot_bytes: u64, entries_since: u64) -> bool {
        log_bytes_since >= self.min_log_bytes.max(snapshot_bytes)
            || (self.every_entries > 0 && entries_since >= self.every_entries)
    }

    fn kept_behind(&self) -> u64 {
        match self.every_entries {
            0 => LOG_KEPT_BEHIND_SNAPSHOT,
            n => (n / 2).min(LOG_KEPT_BEHIND_SNAPSHOT),
        }
    }
}

/// Asks openraft for a snapshot whenever the policy says one is due.
pub(crate) async fn apply_snapshot_policy(
    raft: Raft,
    stats: wharf_store::StoreStats,
    policy: SnapshotSettings,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut asked_at: Option<(u64, Instant)> = None;
    loop {
        tick.tick().await;
        let (applied, snapshot) = {
            let m = raft.metrics();
            let m = m.borrow();
            (
                m.last_applied.map_or(0, |l| l.index),
                m.snapshot.map_or(0, |l| l.index),
            )
        };
        // One request per snapshot: wait for it (or for a minute) before asking again.
        if let Some((built, at)) = asked_at {
            if stats.snapshots() == built && at.elapsed() < Duration::from_secs(60) {
                continue;
            }
        }
        let since = applied.saturating_sub(snapshot);
        if since > 0
            && policy.due(
                stats.log_bytes_since_snapshot(),
                stats.snapshot_bytes(),
                since,
            )
        {
            if raft.trigger().snapshot().await.is_err() {
                return;
            }
            asked_at = Some((stats.snapshots(), Instant::now()));
        }
    }
}

pub(crate) fn raft_config(snapshot: SnapshotSettings) -> Config {
    Config {
        cluster_name: "wharf".into(),
        // openraft's leader lease equals election_timeout_max: voters refuse a
        // candidate until it ran out, so a new leader takes about one lease
        // plus one election timeout after the old one died: 1.4-2 s here.
        heartbeat_interval: 150,
        election_timeout_min: 700,
        election_timeout_max: 1000,
        // `apply_snapshot_policy` decides when.
        snapshot_policy: openraft::SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: snapshot.kept_behind(),
        snapshot_max_chunk_size: snapshot.piece_bytes.max(1),
        purge_batch_size: 1,
        ..Config::default()
    }
}
