//! Draining a member before maintenance: the flag lives in the replicated
//! settings (so it survives the node's restart and every member sees it),
//! the engine on the drained node turns new connections away, and a status
//! query asks every member how many sessions it still holds.

use std::sync::Arc;
use std::time::Duration;

use tonic::Status;
use wharf_store::{Command, NodeId};

use crate::node::ClusterHandle;
use crate::pb;
use crate::pb::cluster_client::ClusterClient;

/// How long a status query waits for each member's own report.
const REPORT_TIMEOUT: Duration = Duration::from_secs(1);

fn setting(node_id: NodeId) -> String {
    format!("drain.{node_id}")
}

impl ClusterHandle {
    /// Whether the operator drained `node_id`, as this node has applied it.
    pub fn is_draining(&self, node_id: NodeId) -> bool {
        matches!(self.reader.setting(&setting(node_id)), Ok(Some(v)) if v == "on")
    }

    /// Starts or stops draining a member; refuses ids outside the membership.
    pub async fn set_draining(&self, node_id: NodeId, on: bool) -> Result<(), Status> {
        let known = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&node_id)
            .is_some();
        if !known {
            return Err(Status::not_found(format!(
                "node {node_id} is not a member of this cluster"
            )));
        }
        self.write(Command::PutSetting {
            key: setting(node_id),
            value: if on { "on" } else { "off" }.into(),
        })
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
        tracing::info!(node_id, draining = on, "drain changed by an operator");
        Ok(())
    }

    /// Lets status queries report this node's sessions; called once by the
    /// program that runs the engine.
    pub fn count_sessions_with(&self, counter: impl Fn() -> usize + Send + Sync + 'static) {
        let _ = self.sessions.set(Box::new(counter));
    }

    pub fn report(&self) -> pb::NodeReport {
        pb::NodeReport {
            node_id: self.node_id,
            open_sessions: self.sessions.get().map_or(0, |count| count()) as u64,
            draining: self.is_draining(self.node_id),
        }
    }

    /// Whether member `id` answers a report request now (within a second).
    pub async fn answers(self: &Arc<Self>, id: NodeId) -> bool {
        match self.member_addr(id) {
            Some(addr) => self.clone().ask_report(id, addr).await.is_some(),
            None => false,
        }
    }

    async fn ask_report(self: Arc<Self>, id: NodeId, addr: String) -> Option<pb::NodeReport> {
        if id == self.node_id {
            return Some(self.report());
        }
        let channel = self.forward_channel(&addr).ok()?;
        let mut request = tonic::Request::new(pb::Empty {});
        request.set_timeout(REPORT_TIMEOUT);
        let mut client = ClusterClient::new(channel);
        match tokio::time::timeout(REPORT_TIMEOUT, client.report(request)).await {
            Ok(Ok(reply)) => Some(reply.into_inner()),
            _ => None,
        }
    }

    /// The Raft view of `status`, with every member's own report of its
    /// sessions (members that do not answer in time are left without one).
    pub async fn status_with_reports(self: &Arc<Self>) -> pb::StatusReply {
        let mut status = self.status();
        let asks: Vec<_> = status
            .members
            .iter()
            .map(|m| tokio::spawn(self.clone().ask_report(m.node_id, m.cluster_addr.clone())))
            .collect();
        let mut reports = Vec::with_capacity(asks.len());
        for ask in asks {
            reports.push(ask.await.ok().flatten());
        }
        for (member, report) in status.members.iter_mut().zip(reports) {
            if let Some(r) = report {
                member.open_sessions = Some(r.open_sessions);
            }
        }
        // Copies on members that did not answer do not count as live.
        let answered: Vec<NodeId> = status
            .members
            .iter()
            .filter(|m| m.open_sessions.is_some())
            .map(|m| m.node_id)
            .collect();
        let (chunks, short) = self.storage_health(&|id| answered.contains(&id));
        status.chunks = chunks;
        status.under_replicated = short;
        status
    }
}
