//! This node's recent experience of its peers as chunk holders.

use std::time::Duration;

use wharf_store::NodeId;

/// How long a peer that failed a chunk transfer is placed after the others.
const UNHEALTHY_FOR: Duration = Duration::from_secs(30);

/// This node's recent experience of its peers as chunk holders: a peer that
/// failed a transfer is tried last for new replicas until it answers again or
/// `UNHEALTHY_FOR` has passed (it may have been restarted meanwhile).
#[derive(Default)]
pub struct PeerHealth {
    failed: std::sync::Mutex<std::collections::BTreeMap<NodeId, std::time::Instant>>,
    /// Failing peers with a probe transfer on its way.
    probing: std::sync::Mutex<std::collections::BTreeSet<NodeId>>,
}

impl PeerHealth {
    /// Claims the one probe of a failing peer; false when one is running.
    pub(crate) fn start_probe(&self, peer: NodeId) -> bool {
        self.probing.lock().is_ok_and(|mut p| p.insert(peer))
    }

    pub(crate) fn end_probe(&self, peer: NodeId) {
        if let Ok(mut p) = self.probing.lock() {
            p.remove(&peer);
        }
    }

    pub(crate) fn failed(&self, peer: NodeId) {
        if let Ok(mut failed) = self.failed.lock() {
            failed.insert(peer, std::time::Instant::now());
        }
    }

    pub(crate) fn answered(&self, peer: NodeId) {
        if let Ok(mut failed) = self.failed.lock() {
            failed.remove(&peer);
        }
    }

    pub(crate) fn is_healthy(&self, peer: NodeId) -> bool {
        match self.failed.lock() {
            Ok(failed) => failed
                .get(&peer)
                .is_none_or(|at| at.elapsed() >= UNHEALTHY_FOR),
            Err(_) => true,
        }
    }
}
