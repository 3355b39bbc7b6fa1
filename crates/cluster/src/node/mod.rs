//! A running cluster member, one concern per module (starting or joining it
//! is `crate::start`, its gRPC server `crate::grpc`): the write path (`write`),
//! read-indexes (`read_index`), membership (`membership`), tokens and
//! certificate signing (`admin_auth`), the status report (`status`) and
//! when to snapshot (`snapshot_policy`). This module holds the handle
//! itself and what every part reads.

mod admin_auth;
pub(crate) mod membership;
mod read_index;
pub(crate) mod snapshot_policy;
mod status;
mod write;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tonic::Status;
use wharf_store::{NodeId, Raft, StateReader};

use crate::group_commit::GroupCommit;
use crate::peer_health::PeerHealth;
use crate::rounds::SharedRounds;
use crate::transport::Transport;

pub use crate::error::ClusterError;
pub use snapshot_policy::SnapshotSettings;
pub use write::WriteError;
pub(crate) use write::FORWARDED;

/// Reports the open FTPS sessions of this node (installed by the engine).
pub(crate) type SessionCounter = Box<dyn Fn() -> usize + Send + Sync>;

/// How long a write may wait for a leader and a quorum before failing.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Files in the data dir where a node keeps the tokens for local operators.
pub const JOIN_TOKEN_FILE: &str = "join_token";
pub const ADMIN_TOKEN_FILE: &str = "admin_token";
/// Where a node records its cluster address for local operators.
pub const CLUSTER_ADDR_FILE: &str = "cluster_addr";

pub struct ClusterConfig {
    /// Holds `node_id` and the store (`raft/`).
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Address peers use to reach this node; defaults to `listen`.
    pub advertise: Option<String>,
    /// `(address of a member, join token)` for a node that is not yet a member.
    pub join: Option<(String, String)>,
    /// When this node builds a snapshot (older log entries are then purged).
    pub snapshot: SnapshotSettings,
    /// RocksDB's memory and write-ahead-log budget.
    pub store_limits: wharf_store::StoreLimits,
    /// This node's chunks, served to peers.
    pub chunk_store: Arc<wharf_blob::ChunkStore>,
    /// The local address connections to peers leave from (default: the
    /// system's choice).
    pub source: Option<std::net::IpAddr>,
    /// Seals private keys and ticket keys before they enter the log.
    pub secrets: Option<Arc<wharf_store::secrets::SecretsKey>>,
}

pub struct ClusterHandle {
    pub(crate) node_id: NodeId,
    pub(crate) advertise: String,
    pub(crate) raft: Raft,
    pub(crate) reader: StateReader,
    /// This node's certificate and the cluster CA, for every peer connection.
    pub(crate) transport: Transport,
    pub(crate) chunk_store: Arc<wharf_blob::ChunkStore>,
    /// Log bytes written and snapshot sizes, for the snapshot policy and metrics.
    pub(crate) store_stats: wharf_store::StoreStats,
    /// One multiplexed channel per peer address for forwarded writes, so a
    /// write does not pay for a TLS handshake.
    forward_channels: std::sync::Mutex<BTreeMap<String, tonic::transport::Channel>>,
    /// Serialises membership changes made through this node.
    membership_lock: Mutex<()>,
    /// Peers that recently failed to store or serve a chunk, so new replicas go
    /// to healthy members first.
    pub(crate) peer_health: PeerHealth,
    /// Counts this node's open FTPS sessions, once the engine runs.
    pub(crate) sessions: std::sync::OnceLock<SessionCounter>,
    /// Leadership confirmations for read-indexes, shared by concurrent asks
    /// (this node's logins and those forwarded by followers).
    confirmations: SharedRounds<Result<u64, Status>>,
    /// Read-indexes fetched for this node's own sessions, shared likewise.
    read_indexes: SharedRounds<Option<u64>>,
    /// Namespace changes committed while this node leads.
    group_commit: GroupCommit,
}

/// What `crate::start` brings to a new handle; the rest starts empty.
pub(crate) struct Parts {
    pub node_id: NodeId,
    pub advertise: String,
    pub raft: Raft,
    pub reader: StateReader,
    pub transport: Transport,
    pub chunk_store: Arc<wharf_blob::ChunkStore>,
    pub store_stats: wharf_store::StoreStats,
    pub group_commit: GroupCommit,
}

impl ClusterHandle {
    pub(crate) fn new(p: Parts) -> Self {
        Self {
            node_id: p.node_id,
            advertise: p.advertise,
            raft: p.raft,
            reader: p.reader,
            transport: p.transport,
            chunk_store: p.chunk_store,
            store_stats: p.store_stats,
            forward_channels: std::sync::Mutex::new(BTreeMap::new()),
            peer_health: PeerHealth::default(),
            membership_lock: Mutex::new(()),
            sessions: std::sync::OnceLock::new(),
            confirmations: SharedRounds::default(),
            read_indexes: SharedRounds::default(),
            group_commit: p.group_commit,
        }
    }
}

pub struct RunningCluster {
    pub handle: Arc<ClusterHandle>,
    pub server: JoinHandle<()>,
    pub local_addr: SocketAddr,
}

impl ClusterHandle {
    /// Whether this node leads the cluster now (as far as it knows).
    pub async fn is_leader(&self) -> bool {
        self.raft.current_leader().await == Some(self.node_id)
    }

    /// This member's id in the cluster.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Reads of this node's replicated store (what it has applied).
    pub fn reader(&self) -> &StateReader {
        &self.reader
    }

    /// This node's chunk files.
    pub fn chunk_store(&self) -> &Arc<wharf_blob::ChunkStore> {
        &self.chunk_store
    }

    /// Log bytes written and snapshot sizes of this node's store.
    pub fn store_stats(&self) -> &wharf_store::StoreStats {
        &self.store_stats
    }

    /// This member's Raft metrics now (term, leader, log, replication).
    pub fn raft_metrics(&self) -> openraft::RaftMetrics<NodeId, wharf_store::ClusterNode> {
        self.raft.metrics().borrow().clone()
    }

    /// Waits, at most `limit`, until every follower has `index` in its log;
    /// false when one has not by then.
    pub async fn wait_replicated(&self, index: u64, limit: Duration) -> bool {
        let mut metrics = self.raft.metrics();
        let everywhere = async move {
            metrics
                .wait_for(|m| {
                    m.replication.as_ref().is_none_or(|peers| {
                        peers
                            .values()
                            .all(|matched| matched.is_some_and(|l| l.index >= index))
                    })
                })
                .await
                .is_ok()
        };
        tokio::time::timeout(limit, everywhere).await == Ok(true)
    }

    /// Stops this member's Raft (its gRPC server is the caller's to stop).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("Raft did not stop cleanly: {e}");
        }
    }

    /// Whether some node leads the cluster now (as far as this one knows).
    pub async fn has_leader(&self) -> bool {
        self.raft.current_leader().await.is_some()
    }
}
