//! Moving chunks between nodes: the `Chunks` gRPC service each node serves
//! from its local chunk store, and the client side the cluster file system
//! uses to place replicas and to fetch chunks it does not hold.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tonic::{Request, Response, Status};
use wharf_blob::ChunkHash;
use wharf_store::NodeId;

use crate::internal::internal;
use crate::node::ClusterHandle;
use crate::pb;
use crate::pb::chunks_client::ChunksClient;

/// Largest chunk message accepted (chunks are 4 MiB by default).
pub const MAX_CHUNK_MESSAGE: usize = 64 * 1024 * 1024;
/// How long a chunk transfer to a peer may take: a base for the round trip
/// plus a second per MiB (a floor of 1 MiB/s between members). A peer behind
/// a partition that silently drops packets answers nothing; this bounds how
/// long an upload waits on it before it is marked failing and passed over.
fn transfer_timeout(bytes: usize) -> Duration {
    Duration::from_secs(2) + Duration::from_millis(bytes as u64 / 1024 * 1000 / 1024)
}
/// How long fetching a chunk from a peer may take (its size is unknown
/// before the answer; chunks are 4 MiB by default).
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Setting that overrides the replication factor (`--replication`).
pub const REPLICATION_SETTING: &str = "fs.replication";
/// Setting that overrides how large a file's last chunk may be to travel
/// inside its Raft entry (`--inline-max`; 0: never).
pub const INLINE_SETTING: &str = "fs.inline_max";
/// The default of `--inline-max`: a 64 KiB last chunk rides in the entry.
pub const DEFAULT_INLINE_MAX: usize = 64 * 1024;
/// The largest `--inline-max` (every voter's log carries these bytes).
pub const MAX_INLINE: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk {0} is on no reachable node")]
    Unavailable(ChunkHash),
    #[error("local chunk store: {0}")]
    Local(#[from] std::io::Error),
}

pub struct ChunkService {
    pub node: Arc<ClusterHandle>,
}

fn hash_of(bytes: &[u8]) -> Result<ChunkHash, Status> {
    ChunkHash::from_bytes(bytes).map_err(|e| Status::invalid_argument(e.to_string()))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(std::io::Error::other)?
}

#[tonic::async_trait]
impl pb::chunks_server::Chunks for ChunkService {
    async fn put(
        &self,
        request: Request<pb::PutChunkRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.node.check_node(&request)?;
        let req = request.into_inner();
        let hash = hash_of(&req.hash)?;
        let store = self.node.chunk_store.clone();
        blocking(move || store.put(&hash, &req.data))
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidData => Status::invalid_argument(e.to_string()),
                _ => Status::resource_exhausted(format!("cannot store chunk {hash}: {e}")),
            })?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn get(
        &self,
        request: Request<pb::GetChunkRequest>,
    ) -> Result<Response<pb::ChunkData>, Status> {
        self.node.check_node(&request)?;
        let hash = hash_of(&request.get_ref().hash)?;
        match self.node.local_chunk(hash).await {
            Ok(Some(data)) => Ok(Response::new(pb::ChunkData { data: data.into() })),
            Ok(None) => Err(Status::not_found(format!("no chunk {hash} here"))),
            Err(e) => Err(internal(e)),
        }
    }
}

impl ClusterHandle {
    fn chunks_client(&self, node: NodeId) -> Option<ChunksClient<tonic::transport::Channel>> {
        let addr = self.member_addr(node)?;
        let channel = self.forward_channel(&addr).ok()?;
        Some(
            ChunksClient::new(channel)
                .max_decoding_message_size(MAX_CHUNK_MESSAGE)
                .max_encoding_message_size(MAX_CHUNK_MESSAGE),
        )
    }

    /// Members other than this node, starting at a place that depends on
    /// `hash`, so replicas spread evenly over the cluster.
    fn peers_for(&self, hash: &ChunkHash) -> Vec<NodeId> {
        let mut peers: Vec<NodeId> = self
            .member_ids()
            .into_iter()
            .filter(|id| *id != self.node_id)
            .collect();
        if !peers.is_empty() {
            let start = hash.as_bytes()[0] as usize % peers.len();
            peers.rotate_left(start);
        }
        peers
    }

    /// How many copies of each chunk the cluster keeps: the `fs.replication`
    /// setting, or three (fewer when the cluster has fewer voters).
    pub fn replication_factor(&self) -> usize {
        let voters = self.voter_ids().len().max(1);
        match self.reader.setting(REPLICATION_SETTING) {
            Ok(Some(v)) => v.parse().unwrap_or(3).max(1),
            _ => voters.min(3),
        }
    }

    /// How large a file's last chunk may be to travel inside its Raft entry.
    pub fn inline_max(&self) -> usize {
        match self.reader.setting(INLINE_SETTING) {
            Ok(Some(v)) => v
                .parse()
                .map_or(DEFAULT_INLINE_MAX, |n: usize| n.min(MAX_INLINE)),
            _ => DEFAULT_INLINE_MAX,
        }
    }

    /// The voters listed as holding a chunk that travels inside its entry:
    /// this node first when it votes, then others spread by `hash`, as many
    /// as the replication factor. Each applies the entry and keeps the bytes;
    /// the other members drop them (`spill`).
    pub fn inline_replicas(&self, hash: &ChunkHash) -> Vec<NodeId> {
        let voters = self.voter_ids();
        let wanted = self.replication_factor();
        let own = voters.contains(&self.node_id).then_some(self.node_id);
        own.into_iter()
            .chain(
                self.peers_for(hash)
                    .into_iter()
                    .filter(|id| voters.contains(id)),
            )
            .take(wanted)
            .collect()
    }

    /// A chunk this node holds: a chunk file, else bytes that came inside a
    /// log entry and are not a file yet. The spiller makes the file before it
    /// forgets the row, so a row gone between the two looks finds the file
    /// on a second look.
    pub async fn local_chunk(&self, hash: ChunkHash) -> std::io::Result<Option<Vec<u8>>> {
        let store = self.chunk_store.clone();
        let file = move || {
            let store = store.clone();
            blocking(move || store.get(&hash))
        };
        if let Some(data) = file().await? {
            return Ok(Some(data));
        }
        match self.reader.inline_chunk(&hash) {
            Ok(Some(data)) => Ok(Some(data)),
            Ok(None) => file().await,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }

    /// Sends a chunk to `copies` peers; returns those that stored it (fewer
    /// when not enough peers answer: the leader's repair job tops it up).
    /// Peers that failed a transfer lately are not waited for: without
    /// enough healthy peers the chunk has fewer copies for now, and a copy
    /// goes to each failing peer in the background (one at a time), whose
    /// answer makes it healthy again. So a member cut off by a partition
    /// holds up uploads once, for one transfer timeout, not for as long as
    /// the partition lasts.
    pub async fn replicate(
        self: &Arc<Self>,
        hash: ChunkHash,
        data: Bytes,
        copies: usize,
    ) -> Vec<NodeId> {
        let mut placed = Vec::new();
        let (healthy, failing): (Vec<NodeId>, Vec<NodeId>) = self
            .peers_for(&hash)
            .into_iter()
            .partition(|peer| self.peer_health.is_healthy(*peer));
        for peer in failing {
            if !self.peer_health.start_probe(peer) {
                continue;
            }
            let node = self.clone();
            let data = data.clone();
            tokio::spawn(async move {
                match node.put_chunk(peer, hash, data).await {
                    Ok(()) => node.peer_health.answered(peer),
                    Err(_) => node.peer_health.failed(peer),
                }
                node.peer_health.end_probe(peer);
            });
        }
        let mut candidates = healthy.into_iter();
        while placed.len() < copies {
            let wave: Vec<NodeId> = candidates.by_ref().take(copies - placed.len()).collect();
            if wave.is_empty() {
                break;
            }
            let sends: Vec<_> = wave
                .into_iter()
                .map(|peer| {
                    let node = self.clone();
                    let data = data.clone();
                    tokio::spawn(async move { (peer, node.put_chunk(peer, hash, data).await) })
                })
                .collect();
            for send in sends {
                match send.await {
                    Ok((peer, Ok(()))) => {
                        self.peer_health.answered(peer);
                        placed.push(peer)
                    }
                    Ok((peer, Err(status))) => {
                        self.peer_health.failed(peer);
                        tracing::warn!(%hash, peer, "replica not stored: {}", status.message())
                    }
                    Err(e) => tracing::warn!(%hash, "replica task failed: {e}"),
                }
            }
        }
        placed
    }

    pub async fn put_chunk(
        &self,
        peer: NodeId,
        hash: ChunkHash,
        data: Bytes,
    ) -> Result<(), Status> {
        let mut client = self
            .chunks_client(peer)
            .ok_or_else(|| Status::unavailable(format!("node {peer} is not a member")))?;
        let timeout = transfer_timeout(data.len());
        let mut request = Request::new(pb::PutChunkRequest {
            hash: hash.as_bytes().to_vec(),
            data,
        });
        request.set_timeout(timeout);
        client.put(request).await.map(|_| ())
    }

    async fn get_chunk(&self, peer: NodeId, hash: ChunkHash) -> Option<Vec<u8>> {
        let mut client = self.chunks_client(peer)?;
        let mut request = Request::new(pb::GetChunkRequest {
            hash: hash.as_bytes().to_vec(),
        });
        request.set_timeout(FETCH_TIMEOUT);
        match client.get(request).await {
            Ok(reply) => {
                let data = Vec::from(reply.into_inner().data);
                hash.matches(&data).then_some(data)
            }
            Err(status) => {
                tracing::debug!(%hash, peer, "chunk not fetched: {}", status.message());
                None
            }
        }
    }

    /// A chunk of a file: `fetch_chunk` with the replicas the `chunks` table
    /// lists for it.
    pub async fn read_chunk(&self, hash: ChunkHash) -> Result<Vec<u8>, ChunkError> {
        let replicas = match self.reader.chunk(&hash) {
            Ok(Some(record)) => record.replicas,
            _ => Vec::new(),
        };
        self.fetch_chunk(hash, &replicas).await
    }

    /// A chunk's bytes: from the local store, else from the nodes listed as
    /// its replicas, else from any member. A chunk this node should hold but
    /// lost is stored again on the way.
    pub async fn fetch_chunk(
        &self,
        hash: ChunkHash,
        replicas: &[NodeId],
    ) -> Result<Vec<u8>, ChunkError> {
        if let Some(data) = self.local_chunk(hash).await? {
            return Ok(data);
        }
        let others = self.peers_for(&hash);
        let order = replicas
            .iter()
            .copied()
            .filter(|id| *id != self.node_id)
            .chain(others.into_iter().filter(|id| !replicas.contains(id)));
        for peer in order {
            if let Some(data) = self.get_chunk(peer, hash).await {
                if replicas.contains(&self.node_id) {
                    let store = self.chunk_store.clone();
                    let copy = data.clone();
                    if let Err(e) = blocking(move || store.put(&hash, &copy)).await {
                        tracing::warn!(%hash, "cannot restore the local replica: {e}");
                    }
                }
                return Ok(data);
            }
        }
        Err(ChunkError::Unavailable(hash))
    }
}
