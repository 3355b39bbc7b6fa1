//! Who is in the cluster: member addresses, admitting and removing nodes,
//! and promoting learners that have caught up.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openraft::ChangeMembers;
use tonic::Status;
use wharf_store::{ClusterNode, NodeId};

use super::admin_auth::JOIN_TOKEN_SETTING;
use super::ClusterHandle;

/// Leader job: learners that have caught up become voters.
pub(crate) async fn promote_learners(handle: Arc<ClusterHandle>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let metrics = handle.raft.metrics().borrow().clone();
        if metrics.current_leader != Some(handle.node_id) {
            continue;
        }
        let Some(last) = metrics.last_log_index else {
            continue;
        };
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let replication = metrics.replication.unwrap_or_default();
        let ready: BTreeSet<NodeId> = membership
            .learner_ids()
            .filter(|id| {
                replication
                    .get(id)
                    .and_then(|m| m.as_ref())
                    .is_some_and(|m| m.index + 50 >= last)
            })
            .collect();
        if ready.is_empty() || ready.is_subset(&voters) {
            continue;
        }
        let _guard = handle.membership_lock.lock().await;
        match handle
            .raft
            .change_membership(ChangeMembers::AddVoterIds(ready.clone()), true)
            .await
        {
            Ok(_) => tracing::info!(?ready, "promoted caught-up learners to voters"),
            Err(e) => tracing::warn!(?ready, "cannot promote learners yet: {e}"),
        }
    }
}

impl ClusterHandle {
    /// Where the cluster reaches member `id`.
    pub fn member_addr(&self, id: NodeId) -> Option<String> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.cluster_addr.clone())
    }

    /// Every member, voters and learners.
    pub fn member_ids(&self) -> Vec<NodeId> {
        let metrics = self.raft.metrics().borrow().clone();
        let ids = metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id);
        ids.collect()
    }

    pub fn voter_ids(&self) -> Vec<NodeId> {
        let metrics = self.raft.metrics().borrow().clone();
        let ids = metrics.membership_config.membership().voter_ids();
        ids.collect()
    }

    /// Admits a new node as a learner (leader only); returns its id.
    pub async fn admit(&self, token: &str, cluster_addr: String) -> Result<NodeId, Status> {
        if !self.token_matches(JOIN_TOKEN_SETTING, token)? {
            tracing::warn!(%cluster_addr, "refused a join with a wrong token");
            return Err(Status::permission_denied("wrong join token"));
        }
        if self.raft.current_leader().await != Some(self.node_id) {
            let leader = match self.raft.current_leader().await {
                Some(id) => self.member_addr(id).unwrap_or_default(),
                None => String::new(),
            };
            return Err(Status::failed_precondition(format!(
                "this node is not the leader; join through {leader}"
            )));
        }
        let _guard = self.membership_lock.lock().await;
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        if let Some((id, _)) = membership
            .nodes()
            .find(|(_, n)| n.cluster_addr == cluster_addr)
        {
            return Ok(*id);
        }
        let id = membership.nodes().map(|(id, _)| *id).max().unwrap_or(0) + 1;
        self.raft
            .add_learner(
                id,
                ClusterNode {
                    cluster_addr: cluster_addr.clone(),
                },
                false,
            )
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        tracing::info!(node_id = id, %cluster_addr, "admitted a new node as learner");
        Ok(id)
    }

    pub async fn remove(&self, node_id: NodeId) -> Result<(), Status> {
        let _guard = self.membership_lock.lock().await;
        let ids: BTreeSet<NodeId> = [node_id].into();
        self.raft
            .change_membership(ChangeMembers::RemoveVoters(ids.clone()), false)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        self.raft
            .change_membership(ChangeMembers::RemoveNodes(ids), false)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(())
    }
}
