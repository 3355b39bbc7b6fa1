//! Reads that see every write committed before them: the leader confirms
//! its commit index with a quorum, followers ask the leader for it and wait
//! until they have applied that far.

use std::time::{Duration, Instant};

use tonic::Status;

use super::ClusterHandle;
use crate::pb;
use crate::pb::cluster_client::ClusterClient;

/// How long a read may wait to catch up with the leader's commit index.
const READ_INDEX_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause before asking again for a read index no leader gave.
const READ_INDEX_RETRY: Duration = Duration::from_millis(100);

impl ClusterHandle {
    /// The leader's commit index, confirmed by a quorum (only on the leader).
    pub async fn leader_read_index(&self) -> Result<u64, Status> {
        let confirm = || async {
            match self.raft.get_read_log_id().await {
                Ok((log_id, _)) => Ok(log_id.map_or(0, |l| l.index)),
                Err(e) => Err(Status::unavailable(e.to_string())),
            }
        };
        tokio::time::timeout(READ_INDEX_TIMEOUT, self.confirmations.ask(confirm))
            .await
            .map_err(|_| Status::unavailable("no quorum confirmed the leadership"))?
    }

    /// Waits until this node has applied everything committed before the
    /// call (read-index through the leader), so a client moving between
    /// nodes never sees an older namespace than it saw. Bounded: without a
    /// leader the local state is what there is (a minority keeps serving
    /// committed reads). True when this node did catch up.
    pub async fn catch_up(&self) -> bool {
        let deadline = Instant::now() + READ_INDEX_TIMEOUT;
        // No answer (a leader being elected, one this node has not heard
        // from yet, a lost request) is asked again until the deadline: right
        // after a failover, the local state may be older than what the
        // client just wrote through another node.
        let index = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let shared = self.read_indexes.ask(|| self.fetch_read_index());
            match tokio::time::timeout(left, shared).await {
                Ok(Some(index)) => break Some(index),
                Ok(None) if Instant::now() + READ_INDEX_RETRY < deadline => {
                    tokio::time::sleep(READ_INDEX_RETRY).await
                }
                _ => break None,
            }
        };
        match index {
            Some(index) => {
                let left = deadline.saturating_duration_since(Instant::now());
                let applied = tokio::time::timeout(left, self.reader.wait_applied(index)).await;
                if applied.is_err() {
                    tracing::warn!(
                        index,
                        "not caught up with the leader in time; reading local state"
                    );
                }
                applied.is_ok()
            }
            None => {
                tracing::debug!("no read index from a leader; reading local state");
                false
            }
        }
    }

    /// The read-index, from this node when it leads, else from the leader.
    async fn fetch_read_index(&self) -> Option<u64> {
        match self.raft.current_leader().await {
            Some(id) if id == self.node_id => self.leader_read_index().await.ok(),
            Some(id) => match self.member_addr(id).map(|a| self.forward_channel(&a)) {
                Some(Ok(channel)) => {
                    let mut request = tonic::Request::new(pb::Empty {});
                    request.set_timeout(READ_INDEX_TIMEOUT);
                    ClusterClient::new(channel)
                        .read_index(request)
                        .await
                        .ok()
                        .map(|r| r.into_inner().index)
                }
                _ => None,
            },
            None => None,
        }
    }
}
