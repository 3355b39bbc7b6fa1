//! Every node: small chunks that came inside their upload's log entry (the
//! store's `inline_bytes`) become chunk files here, off the uploads' path, a
//! batch at a time with two file-system syncs per batch; then their rows are
//! forgotten. A member not listed as a replica of such a chunk (more voters
//! than the replication factor, a learner) forgets the row without storing
//! it, and so does any member once no file uses the chunk.

use std::sync::Arc;
use std::time::Duration;

use wharf_cluster::ClusterHandle;
use wharf_store::InlineRow;

/// How often the table is looked at when the last pass emptied it.
const EVERY: Duration = Duration::from_millis(200);
/// Rows stored per pass (at most 64 KiB each by default), and about how
/// much content.
const BATCH: usize = 256;
const BATCH_BYTES: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
enum SpillError {
    #[error("store: {0}")]
    Store(#[from] wharf_store::StoreError),
    #[error("chunk store: {0}")]
    Disk(#[from] std::io::Error),
}

pub async fn spill_inline_chunks(node: Arc<ClusterHandle>) {
    let mut failing = false;
    loop {
        let pass = node.clone();
        let spilled = tokio::task::spawn_blocking(move || spill_once(&pass)).await;
        match spilled {
            Ok(Ok(n)) => {
                if failing {
                    tracing::info!("small chunks are stored as chunk files again");
                    failing = false;
                }
                if n > 0 {
                    continue;
                }
            }
            Ok(Err(e)) if !failing => {
                failing = true;
                tracing::warn!(
                    "cannot store small chunks as chunk files; they stay in the store: {e}"
                );
            }
            Ok(Err(_)) => {}
            Err(e) => tracing::warn!("storing small chunks stopped: {e}"),
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Stores one batch; how many rows it took.
fn spill_once(node: &ClusterHandle) -> Result<usize, SpillError> {
    let reader = node.reader();
    let waiting = reader.inline_waiting(BATCH, BATCH_BYTES)?;
    if waiting.is_empty() {
        return Ok(0);
    }
    let me = node.node_id();
    let mut kept: Vec<&InlineRow> = Vec::new();
    let mut dropped: Vec<Vec<u8>> = Vec::new();
    for row in &waiting {
        if matches!(reader.chunk(&row.hash)?, Some(r) if r.refs > 0 && r.replicas.contains(&me)) {
            kept.push(row);
        } else {
            dropped.push(row.key.clone());
        }
    }
    let store = node.chunk_store();
    store.put_many(kept.iter().map(|row| (&row.hash, row.bytes.as_slice())))?;
    // A file that existed was only given a fresh time; should the local
    // collection have taken it meanwhile, its row stays for the next pass.
    let stored = kept
        .iter()
        .filter(|row| store.contains(&row.hash))
        .map(|row| row.key.clone());
    let done: Vec<Vec<u8>> = dropped.into_iter().chain(stored).collect();
    reader.forget_inline(&done)?;
    Ok(waiting.len())
}
