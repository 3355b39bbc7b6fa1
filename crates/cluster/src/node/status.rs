//! What a member reports about the cluster: Raft state, members, and how
//! many chunks lack copies.

use std::collections::BTreeSet;

use openraft::ServerState;
use wharf_store::{ChunkState, NodeId};

use super::ClusterHandle;
use crate::pb;

impl ClusterHandle {
    /// Chunks in use, and how many have fewer copies on `live` members than
    /// the replication factor asks (or than there are live members).
    pub(crate) fn storage_health(&self, live: &dyn Fn(NodeId) -> bool) -> (u64, u64) {
        let live_members = self.member_ids().into_iter().filter(|id| live(*id)).count();
        let wanted = self.replication_factor().min(live_members).max(1);
        let (mut in_use, mut short) = (0, 0);
        for (state, count) in self.reader.chunk_census().unwrap_or_default() {
            let ChunkState::Placed(nodes) = state else {
                continue;
            };
            in_use += count;
            if nodes.iter().filter(|id| live(**id)).count() < wanted {
                short += count;
            }
        }
        (in_use, short)
    }

    /// The Raft view of this node; `status_with_reports` adds what only the
    /// members themselves can say (sessions, which copies are live).
    pub(crate) fn status(&self) -> pb::StatusReply {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let replication = m.replication.clone().unwrap_or_default();
        pb::StatusReply {
            replication: self.replication_factor() as u64,
            // Filled in by `status_with_reports`, which knows who answered.
            chunks: 0,
            under_replicated: 0,
            node_id: self.node_id,
            leader_id: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            last_applied_index: m.last_applied.map(|l| l.index),
            committed_index: None,
            state: match m.state {
                ServerState::Leader => "leader",
                ServerState::Follower => "follower",
                ServerState::Candidate => "candidate",
                ServerState::Learner => "learner",
                ServerState::Shutdown => "shutdown",
            }
            .into(),
            members: membership
                .nodes()
                .map(|(id, n)| pb::MemberStatus {
                    node_id: *id,
                    cluster_addr: n.cluster_addr.clone(),
                    role: if voters.contains(id) {
                        "voter"
                    } else {
                        "learner"
                    }
                    .into(),
                    matched_index: replication.get(id).and_then(|l| l.map(|l| l.index)),
                    draining: self.is_draining(*id),
                    open_sessions: None,
                })
                .collect(),
        }
    }
}
