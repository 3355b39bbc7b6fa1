//! Which chunks need the leader's upkeep, found without reading every chunk
//! record: `chunk_states` holds each chunk's hash under its state (no longer
//! used by any file, or used and stored on a given set of nodes) and
//! `chunk_census` counts the chunks in each state. The upkeep reads the
//! census — a handful of rows — every few seconds and walks only the states
//! that need work, so a healthy cluster pays nothing per tick for the million
//! chunks it holds.
//!
//! Both tables follow from `chunks` alone: they are kept in the same write
//! batch as the chunk record they describe, are not part of a snapshot, and
//! are rebuilt after a snapshot install or when a data directory of an
//! earlier release is opened.

use std::collections::BTreeMap;

use rocksdb::{WriteBatch, DB};

use crate::columns::SM_META;
use crate::compact::Record;
use crate::error::StoreError;
use crate::records::{ChunkHash, ChunkRecord};
use crate::table::{self, cf};
use crate::NodeId;

/// `state ‖ hash → ()`.
pub(crate) const CHUNK_STATES: &str = "chunk_states";
/// `state → number of chunks in it`.
pub(crate) const CHUNK_CENSUS: &str = "chunk_census";
/// Tables of this node only, derived from `chunks`.
pub(crate) const LOCAL_TABLES: [&str; 2] = [CHUNK_STATES, CHUNK_CENSUS];
/// `sm_meta` key present once the two tables describe every chunk record.
const INDEXED: &[u8] = b"chunk_states";
const REBUILD_BATCH_BYTES: usize = 4 << 20;

const UNREFERENCED: u8 = 0;
const PLACED: u8 = 1;

/// Where a chunk stands for the upkeep.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChunkState {
    /// No file uses it: its record and replicas can go.
    Unreferenced,
    /// Used, with replicas on these nodes (sorted, each once).
    Placed(Vec<NodeId>),
}

impl ChunkState {
    pub fn of(record: &ChunkRecord) -> Self {
        if record.refs == 0 {
            return Self::Unreferenced;
        }
        let mut nodes = record.replicas.clone();
        nodes.sort_unstable();
        nodes.dedup();
        Self::Placed(nodes)
    }

    /// `0`, or `1 ‖ count ‖ node ids` (big-endian): a key prefix under which
    /// the state's chunks sort together.
    pub(crate) fn key(&self) -> Vec<u8> {
        match self {
            Self::Unreferenced => vec![UNREFERENCED],
            Self::Placed(nodes) => {
                let mut key = Vec::with_capacity(2 + nodes.len() * 8);
                key.push(PLACED);
                // More than 255 replicas of a chunk is not a configuration
                // this cluster can reach (members are far fewer).
                key.push(nodes.len().min(u8::MAX as usize) as u8);
                for node in nodes.iter().take(u8::MAX as usize) {
                    key.extend_from_slice(&node.to_be_bytes());
                }
                key
            }
        }
    }

    fn parse(key: &[u8]) -> Option<Self> {
        match key.split_first()? {
            (&UNREFERENCED, []) => Some(Self::Unreferenced),
            (&PLACED, rest) => {
                let (&count, ids) = rest.split_first()?;
                if ids.len() != count as usize * 8 {
                    return None;
                }
                let nodes = ids
                    .chunks_exact(8)
                    .map(|id| <[u8; 8]>::try_from(id).ok().map(NodeId::from_be_bytes))
                    .collect::<Option<Vec<_>>>()?;
                Some(Self::Placed(nodes))
            }
            _ => None,
        }
    }

    /// How many of its replicas are on `members`.
    pub fn replicas_among(&self, members: &[NodeId]) -> usize {
        match self {
            Self::Unreferenced => 0,
            Self::Placed(nodes) => nodes.iter().filter(|n| members.contains(n)).count(),
        }
    }
}

pub(crate) fn entry_key(state: &ChunkState, hash: &ChunkHash) -> Vec<u8> {
    let mut key = state.key();
    key.extend_from_slice(hash.as_bytes());
    key
}

/// Every state with at least one chunk, and how many.
pub(crate) fn census(db: &DB) -> Result<Vec<(ChunkState, u64)>, StoreError> {
    let mut out = Vec::new();
    for item in db.iterator_cf(cf(db, CHUNK_CENSUS)?, rocksdb::IteratorMode::Start) {
        let (key, value) = item?;
        match ChunkState::parse(&key) {
            Some(state) => out.push((state, u64::from_bytes(&value)?)),
            None => tracing::error!("skipping an undecodable chunk census row"),
        }
    }
    Ok(out)
}

/// Up to `limit` hashes of chunks in `state`, in hash order, after `after`.
pub(crate) fn hashes_in(
    db: &DB,
    state: &ChunkState,
    after: Option<&ChunkHash>,
    limit: usize,
) -> Result<Vec<ChunkHash>, StoreError> {
    let prefix = state.key();
    let start = match after {
        Some(hash) => {
            let mut key = entry_key(state, hash);
            key.push(0);
            key
        }
        None => prefix.clone(),
    };
    let mode = rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward);
    let mut out = Vec::new();
    for item in db.iterator_cf(cf(db, CHUNK_STATES)?, mode) {
        let (key, _) = item?;
        let Some(hash) = key.strip_prefix(prefix.as_slice()) else {
            break;
        };
        // A key of another state that merely starts with these bytes is
        // longer or shorter than a hash.
        let Ok(hash) = ChunkHash::from_bytes(hash) else {
            continue;
        };
        out.push(hash);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// Builds both tables from `chunks` unless they are known to be complete.
/// Each batch is bounded; the marker goes last, so a node stopped half-way
/// starts over.
pub(crate) fn ensure_indexed(db: &DB) -> Result<(), StoreError> {
    if table::exists(db, SM_META, INDEXED)? {
        return Ok(());
    }
    for name in LOCAL_TABLES {
        table::clear(db, name)?;
    }
    let states = cf(db, CHUNK_STATES)?;
    let mut batch = WriteBatch::default();
    let mut census: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    let mut chunks = 0u64;
    for item in db.iterator_cf(cf(db, "chunks")?, rocksdb::IteratorMode::Start) {
        let (_, value) = item?;
        let record = match ChunkRecord::from_bytes(&value) {
            Ok(record) => record,
            Err(e) => {
                tracing::error!("skipping an undecodable chunk record: {e}");
                continue;
            }
        };
        let state = ChunkState::of(&record);
        batch.put_cf(states, entry_key(&state, &record.hash), []);
        *census.entry(state.key()).or_default() += 1;
        chunks += 1;
        if batch.size_in_bytes() >= REBUILD_BATCH_BYTES {
            db.write(std::mem::take(&mut batch))?;
        }
    }
    let counts = cf(db, CHUNK_CENSUS)?;
    for (key, n) in census {
        batch.put_cf(counts, key, (n as u64).to_bytes()?);
    }
    table::put(db, &mut batch, SM_META, INDEXED, &true)?;
    db.write(batch)?;
    if chunks > 0 {
        tracing::info!(chunks, "indexed the chunk records by state");
    }
    Ok(())
}

/// After a snapshot install the tables describe the chunks that were replaced.
pub(crate) fn forget_index(db: &DB, batch: &mut WriteBatch) -> Result<(), StoreError> {
    table::delete(db, batch, SM_META, INDEXED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_keys() {
        for state in [
            ChunkState::Unreferenced,
            ChunkState::Placed(vec![]),
            ChunkState::Placed(vec![1, 2, 300]),
        ] {
            assert_eq!(ChunkState::parse(&state.key()), Some(state));
        }
        assert_eq!(ChunkState::parse(&[PLACED, 2, 0, 0]), None);
        assert_eq!(ChunkState::parse(&[7]), None);
    }

    #[test]
    fn a_chunk_state_ignores_replica_order_and_repeats() {
        let record = ChunkRecord {
            hash: ChunkHash::of(b"x"),
            len: 1,
            replicas: vec![3, 1, 3],
            refs: 2,
        };
        assert_eq!(ChunkState::of(&record), ChunkState::Placed(vec![1, 3]));
        let unused = ChunkRecord { refs: 0, ..record };
        assert_eq!(ChunkState::of(&unused), ChunkState::Unreferenced);
        assert_eq!(ChunkState::Placed(vec![1, 3]).replicas_among(&[3, 4]), 1);
    }
}
