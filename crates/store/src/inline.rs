//! Small files carried inside their Raft entry (DESIGN.md §6, "small
//! files"). An upload whose last chunk is small sends that chunk's bytes in
//! the `FileWrite` itself instead of placing it on R nodes before the commit:
//! the log's fsync, on a quorum, is then the only one an upload waits for.
//!
//! Every node that applies the write keeps the bytes in `inline_bytes`, in
//! the same batch as the namespace change, so the file and its bytes are
//! durable together. The node's spiller (`wharf_cluster::spill`) later
//! stores them as an ordinary chunk file and forgets the row. The table is
//! this node's own: not part of a snapshot, and left as it is when one is
//! installed (the rows are still bytes of chunks the cluster lists).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use base64::Engine as _;
use rocksdb::{WriteBatch, DB};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::StoreError;
use crate::records::{ChunkHash, ChunkRef};
use crate::table::cf;

/// `chunk hash ‖ row number → the chunk's bytes`, until they are a chunk
/// file here.
pub(crate) const INLINE_CHUNKS: &str = "inline_bytes";

/// The bytes of a small chunk, in a log entry (base64 in its JSON).
#[derive(Clone, PartialEq, Eq)]
pub struct InlineBytes(pub Vec<u8>);

impl fmt::Debug for InlineBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InlineBytes({} bytes)", self.0.len())
    }
}

impl Serialize for InlineBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for InlineBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(InlineBytes)
            .map_err(serde::de::Error::custom)
    }
}

/// Why a write's inline bytes are refused: they must be the write's last
/// chunk, exactly.
pub(crate) fn mismatch(chunks: &[ChunkRef], bytes: &InlineBytes) -> Option<String> {
    let Some(last) = chunks.last() else {
        return Some("inline bytes in a write without chunks".into());
    };
    if last.len != bytes.0.len() as u64 || !last.hash.matches(&bytes.0) {
        return Some(format!("inline bytes are not chunk {}", last.hash));
    }
    None
}

/// One row: its key (the chunk's hash and this node's sequence number, so a
/// row the spiller read is never confused with one a later entry wrote for
/// the same bytes), the hash and the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InlineRow {
    pub key: Vec<u8>,
    pub hash: ChunkHash,
    pub bytes: Vec<u8>,
}

/// This node's next row number: rows are this node's own, so their keys
/// need not be the same on every node, only never reused.
fn next_sequence() -> u64 {
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    NEXT.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        AtomicU64::new(now)
    })
    .fetch_add(1, Ordering::Relaxed)
}

/// Adds the row to an entry's batch.
pub(crate) fn keep(
    db: &DB,
    batch: &mut WriteBatch,
    hash: &ChunkHash,
    bytes: &InlineBytes,
) -> Result<(), StoreError> {
    let mut key = hash.as_bytes().to_vec();
    key.extend_from_slice(&next_sequence().to_be_bytes());
    batch.put_cf(cf(db, INLINE_CHUNKS)?, key, &bytes.0);
    Ok(())
}

pub(crate) fn get(db: &DB, hash: &ChunkHash) -> Result<Option<Vec<u8>>, StoreError> {
    let prefix = hash.as_bytes();
    let mode = rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward);
    match db.iterator_cf(cf(db, INLINE_CHUNKS)?, mode).next() {
        Some(item) => {
            let (key, value) = item?;
            Ok(key.starts_with(prefix).then(|| value.into_vec()))
        }
        None => Ok(None),
    }
}

/// Rows not yet stored as chunk files, in key order: up to `limit` of them
/// and about `max_bytes` of content (always at least one).
pub(crate) fn waiting(
    db: &DB,
    limit: usize,
    max_bytes: usize,
) -> Result<Vec<InlineRow>, StoreError> {
    let mut out = Vec::new();
    let mut bytes = 0;
    for item in db.iterator_cf(cf(db, INLINE_CHUNKS)?, rocksdb::IteratorMode::Start) {
        let (key, value) = item?;
        let Some(hash) = key.get(..32).and_then(|h| ChunkHash::from_bytes(h).ok()) else {
            tracing::error!("skipping an inline chunk row with a malformed key");
            continue;
        };
        bytes += value.len();
        out.push(InlineRow {
            key: key.into_vec(),
            hash,
            bytes: value.into_vec(),
        });
        if out.len() >= limit || bytes >= max_bytes {
            break;
        }
    }
    Ok(out)
}

/// Drops rows by key: those stored as chunk files, or not wanted here.
pub(crate) fn forget(db: &DB, keys: &[Vec<u8>]) -> Result<(), StoreError> {
    let handle = cf(db, INLINE_CHUNKS)?;
    let mut batch = WriteBatch::default();
    for key in keys {
        batch.delete_cf(handle, key);
    }
    db.write(batch)?;
    Ok(())
}
