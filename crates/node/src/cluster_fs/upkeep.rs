//! Keeping the chunk store healthy: the leader re-replicates chunks that
//! lost replicas (a node removed from the cluster, or silent for longer than
//! `--repair-after`) and forgets what nothing uses; every node deletes chunk
//! files nothing references after `--chunk-grace` (a recent chunk may belong to
//! an upload not yet checkpointed).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use wharf_cluster::ClusterHandle;
use wharf_store::records::{ChunkHash, ChunkRecord};
use wharf_store::{ChunkState, Command, FsCommand, NodeId};

use crate::clock::unix_now;
use crate::leader::LeaderJob;

const REPAIR_EVERY: Duration = Duration::from_secs(5);
/// Chunk records read at a time while walking one state.
const PAGE: usize = 1000;
/// Local collection runs every half grace period, at most every ten minutes.
const LOCAL_GC_EVERY_MAX: Duration = Duration::from_secs(600);

/// Leader job: replicas on nodes that left the cluster, or have not
/// answered for `down_after`, are written off and replaced (a node that comes
/// back keeps its copies: one extra replica is harmless); records of unused
/// chunks and abandoned uploads are dropped.
pub struct Repair {
    down_after: Duration,
    /// An upload without a checkpoint for this long is abandoned: its record
    /// goes (the file keeps its durable prefix).
    upload_grace: Duration,
    /// Chunks short of replicas at the last count (`/metrics`).
    backlog: Arc<AtomicU64>,
    last_seen: HashMap<NodeId, Instant>,
}

impl Repair {
    pub fn new(down_after: Duration, upload_grace: Duration, backlog: Arc<AtomicU64>) -> Self {
        Self {
            down_after,
            upload_grace,
            backlog,
            last_seen: HashMap::new(),
        }
    }

    /// The members that answered within `down_after`.
    async fn live_members(&mut self, node: &Arc<ClusterHandle>) -> Vec<NodeId> {
        let now = Instant::now();
        let mut members = Vec::new();
        for id in node.member_ids() {
            let seen = self.last_seen.entry(id).or_insert(now);
            if node.answers(id).await {
                *seen = now;
            }
            if now.duration_since(*seen) < self.down_after {
                members.push(id);
            } else {
                tracing::debug!(node = id, "silent too long; its replicas do not count");
            }
        }
        members
    }
}

#[async_trait]
impl LeaderJob for Repair {
    fn name(&self) -> &'static str {
        "chunk repair"
    }

    fn every(&self) -> Duration {
        REPAIR_EVERY
    }

    async fn turn(&mut self, node: &Arc<ClusterHandle>) {
        let Ok(census) = node.reader().chunk_census() else {
            return;
        };
        let members = self.live_members(node).await;
        let wanted = node.replication_factor().min(members.len());
        // Only the states that need work are walked: a healthy cluster reads
        // the census and nothing else.
        let mut short = 0;
        let mut to_walk = Vec::new();
        for (state, count) in census {
            match state {
                ChunkState::Unreferenced => to_walk.push(state),
                ChunkState::Placed(_) if state.replicas_among(&members) < wanted => {
                    short += count;
                    to_walk.push(state);
                }
                ChunkState::Placed(_) => {}
            }
        }
        self.backlog.store(short, Ordering::Relaxed);
        'states: for state in to_walk {
            let mut after = None;
            while let Some(page) = next_page(node, &state, &mut after) {
                if !node.is_leader().await {
                    break 'states;
                }
                if state == ChunkState::Unreferenced {
                    // One entry per page: a mass delete is forgotten a
                    // thousand chunks per commit, not one.
                    let forgets = page
                        .iter()
                        .map(|chunk| FsCommand::ForgetChunk { hash: chunk.hash })
                        .collect();
                    commit(node, Command::FsBatch(forgets)).await;
                    continue;
                }
                for chunk in page {
                    repair(node, &chunk, &members, wanted).await;
                }
            }
        }
        forget_abandoned_uploads(node, self.upload_grace).await;
    }

    fn not_leading(&mut self) {
        self.last_seen.clear();
    }
}

async fn forget_abandoned_uploads(node: &ClusterHandle, grace: Duration) {
    let Ok(uploads) = node.reader().uploads() else {
        return;
    };
    let cutoff = unix_now().saturating_sub(grace.as_secs());
    for upload in uploads.into_iter().filter(|u| u.heartbeat < cutoff) {
        tracing::info!(upload = %upload.id, path = %upload.path, durable = upload.durable,
            "forgetting an abandoned upload; the file keeps its durable prefix");
        let forget = FsCommand::ForgetUpload {
            id: upload.id,
            time_ms: crate::clock::unix_now_ms(),
        };
        commit(node, Command::Fs(forget)).await;
    }
}

/// The next page of chunks in `state` after `after`, moving `after` past
/// it; `None` once the state is walked.
fn next_page(
    node: &ClusterHandle,
    state: &ChunkState,
    after: &mut Option<ChunkHash>,
) -> Option<Vec<ChunkRecord>> {
    let page = node.reader().chunks_in(state, after.as_ref(), PAGE).ok()?;
    *after = Some(page.last()?.hash);
    Some(page)
}

async fn commit(node: &ClusterHandle, command: Command) {
    if let Err(e) = node.write(command).await {
        tracing::debug!("upkeep write deferred: {e}");
    }
}

async fn repair(node: &Arc<ClusterHandle>, chunk: &ChunkRecord, members: &[NodeId], wanted: usize) {
    let live: Vec<NodeId> = chunk
        .replicas
        .iter()
        .copied()
        .filter(|id| members.contains(id))
        .collect();
    let mut replicas = live.clone();
    if live.len() < wanted {
        let data = match node.fetch_chunk(chunk.hash, &live).await {
            Ok(data) => bytes::Bytes::from(data),
            Err(e) => {
                tracing::warn!(hash = %chunk.hash, "cannot repair: {e}");
                return;
            }
        };
        let candidates = members.iter().copied().filter(|id| !live.contains(id));
        for target in candidates {
            if replicas.len() >= wanted {
                break;
            }
            let stored = if target == node.node_id() {
                let (store, copy) = (node.chunk_store().clone(), data.clone());
                let hash = chunk.hash;
                tokio::task::spawn_blocking(move || store.put(&hash, &copy))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
            } else {
                node.put_chunk(target, chunk.hash, data.clone())
                    .await
                    .map_err(|s| s.message().to_owned())
            };
            match stored {
                Ok(()) => replicas.push(target),
                Err(e) => tracing::warn!(hash = %chunk.hash, target, "repair copy failed: {e}"),
            }
        }
    }
    if replicas != chunk.replicas {
        tracing::info!(hash = %chunk.hash, from = ?chunk.replicas, to = ?replicas, "chunk replicas repaired");
        let set = FsCommand::SetReplicas {
            hash: chunk.hash,
            replicas,
        };
        commit(node, Command::Fs(set)).await;
    }
}

/// Every node: deletes chunk files that no file references once they are
/// older than `grace` (`--chunk-grace`).
pub async fn collect_local_chunks(node: Arc<ClusterHandle>, grace: Duration) {
    let mut tick = tokio::time::interval((grace / 2).min(LOCAL_GC_EVERY_MAX));
    loop {
        tick.tick().await;
        // A pass reads every chunk file's name and time and looks each up in
        // the store: blocking work, kept off the threads that serve sessions
        // and Raft.
        let pass = node.clone();
        match tokio::task::spawn_blocking(move || collect_once(&pass, grace)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(removed)) => tracing::info!(removed, "collected unreferenced chunks"),
            Ok(Err(e)) => tracing::warn!("cannot list the chunk store: {e}"),
            Err(e) => tracing::warn!("chunk collection stopped: {e}"),
        }
    }
}

/// Deletes the chunk files older than `grace` that no file uses; how many.
fn collect_once(node: &ClusterHandle, grace: Duration) -> std::io::Result<u64> {
    let now = SystemTime::now();
    let mut removed = 0;
    node.chunk_store().visit(|chunk| {
        let young = now
            .duration_since(chunk.written)
            .map_or(true, |age| age < grace);
        if young {
            return;
        }
        let used = matches!(node.reader().chunk(&chunk.hash), Ok(Some(r)) if r.refs > 0);
        let cutoff = now.checked_sub(grace).unwrap_or(std::time::UNIX_EPOCH);
        if !used
            && matches!(
                node.chunk_store()
                    .remove_if_written_before(&chunk.hash, cutoff),
                Ok(true)
            )
        {
            removed += 1;
        }
    })?;
    Ok(removed)
}
