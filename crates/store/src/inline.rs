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

use base64::Engine as _;
use rocksdb::{WriteBatch, DB};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::StoreError;
use crate::records::{ChunkHash, ChunkRef};
use crate::table::cf;

/// `chunk hash → the chunk's bytes`, until they are a chunk file here.
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

/// Adds the row to an entry's batch.
pub(crate) fn keep(
    db: &DB,
    batch: &mut WriteBatch,
    hash: &ChunkHash,
    bytes: &InlineBytes,
) -> Result<(), StoreError> {
    batch.put_cf(cf(db, INLINE_CHUNKS)?, hash.as_bytes(), &bytes.0);
    Ok(())
}

pub(crate) fn get(db: &DB, hash: &ChunkHash) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(db.get_cf(cf(db, INLINE_CHUNKS)?, hash.as_bytes())?)
}

/// Up to `limit` rows not yet stored as chunk files, in hash order.
pub(crate) fn waiting(db: &DB, limit: usize) -> Result<Vec<(ChunkHash, Vec<u8>)>, StoreError> {
    let mut out = Vec::new();
    for item in db.iterator_cf(cf(db, INLINE_CHUNKS)?, rocksdb::IteratorMode::Start) {
        let (key, value) = item?;
        match ChunkHash::from_bytes(&key) {
            Ok(hash) => out.push((hash, value.into_vec())),
            Err(_) => tracing::error!("skipping an inline chunk row with a malformed key"),
        }
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// Drops the rows of chunks now stored as files (or no longer wanted).
pub(crate) fn forget(db: &DB, hashes: &[ChunkHash]) -> Result<(), StoreError> {
    let handle = cf(db, INLINE_CHUNKS)?;
    let mut batch = WriteBatch::default();
    for hash in hashes {
        batch.delete_cf(handle, hash.as_bytes());
    }
    db.write(batch)?;
    Ok(())
}
