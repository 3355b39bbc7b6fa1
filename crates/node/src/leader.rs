//! Jobs only the Raft leader runs (ticket-key rotation, certificate renewal,
//! ACME orders, ban expiry, chunk repair): each is a [`LeaderJob`], run by the
//! one loop here on its own task. A job's turn must be idempotent: a new
//! leader simply carries on where the old one stopped.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use wharf_cluster::ClusterHandle;

#[async_trait]
pub trait LeaderJob: Send + 'static {
    /// The job's name in the log.
    fn name(&self) -> &'static str;
    /// How long between two turns.
    fn every(&self) -> Duration;
    /// One turn, while this node leads. Failures are the job's to log: the
    /// next turn tries again.
    async fn turn(&mut self, node: &Arc<ClusterHandle>);
    /// This node does not lead (any more): forget what only a leader's turns
    /// keep (warnings given, back-offs, last-seen times).
    fn not_leading(&mut self) {}
}

/// Runs `job` for as long as the node lives: a turn every `job.every()`
/// while this node leads.
pub async fn run(node: Arc<ClusterHandle>, mut job: impl LeaderJob) {
    let mut tick = tokio::time::interval(job.every());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::debug!(job = job.name(), "leader job started");
    loop {
        tick.tick().await;
        if node.is_leader().await {
            job.turn(&node).await;
        } else {
            job.not_leading();
        }
    }
}
