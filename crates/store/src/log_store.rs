//! The Raft log and vote on RocksDB. Appends and votes are fsynced (WAL
//! flush) before openraft is told they are durable: a node that acknowledged
//! an entry must still have it after a crash.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError,
    StorageIOError, Vote,
};
use rocksdb::{WriteBatch, DB};

use crate::columns::{RAFT_LOG, RAFT_META};
use crate::error::StoreError;
use crate::stats::StoreStats;
use crate::table::{self, cf};
use crate::{NodeId, TypeConfig};

type StorageResult<T> = Result<T, StorageError<NodeId>>;

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";
/// Encoded log bytes one append request carries at most (but always one
/// entry): 1 MiB crosses a 100 Mbit/s link within a heartbeat interval.
const APPEND_BUDGET: usize = 1 << 20;

#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    stats: StoreStats,
}

fn io(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: StoreError) -> StorageError<NodeId> {
    StorageIOError::new(subject, verb, openraft::AnyError::new(&e)).into()
}

/// Big-endian so RocksDB's byte order is index order.
fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl LogStore {
    pub(crate) fn new(db: Arc<DB>, stats: StoreStats) -> Self {
        Self { db, stats }
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        table::get(&self.db, RAFT_META, key)
    }

    fn put_meta_durably<T: serde::Serialize>(
        &self,
        key: &[u8],
        value: &T,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        table::put(&self.db, &mut batch, RAFT_META, key, value)?;
        self.db.write(batch)?;
        self.db.flush_wal(true)?;
        Ok(())
    }

    fn last_entry_id(&self) -> Result<Option<LogId<NodeId>>, StoreError> {
        let handle = cf(&self.db, RAFT_LOG)?;
        match self
            .db
            .iterator_cf(handle, rocksdb::IteratorMode::End)
            .next()
        {
            None => Ok(None),
            Some(item) => {
                let (_, value) = item?;
                let entry: Entry<TypeConfig> = table::decode(&value)?;
                Ok(Some(entry.log_id))
            }
        }
    }

    fn entries(&self, start: u64, end: Bound<u64>) -> Result<Vec<Entry<TypeConfig>>, StoreError> {
        self.entries_within(start, end, usize::MAX)
    }

    /// The entries from `start`, stopping once they add up to `budget`
    /// encoded bytes (the first is always given).
    fn entries_within(
        &self,
        start: u64,
        end: Bound<u64>,
        budget: usize,
    ) -> Result<Vec<Entry<TypeConfig>>, StoreError> {
        let handle = cf(&self.db, RAFT_LOG)?;
        let from = index_key(start);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mode = rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward);
        for item in self.db.iterator_cf(handle, mode) {
            let (key, value) = item?;
            let index = key
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(u64::MAX);
            let inside = match end {
                Bound::Included(e) => index <= e,
                Bound::Excluded(e) => index < e,
                Bound::Unbounded => true,
            };
            if !inside || (!out.is_empty() && bytes + value.len() > budget) {
                break;
            }
            bytes += value.len();
            out.push(table::decode(&value)?);
        }
        Ok(out)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        self.entries(start, range.end_bound().cloned())
            .map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Read, e))
    }

    /// What one append request to a follower carries: entries up to
    /// `APPEND_BUDGET` bytes. openraft gives each request one heartbeat
    /// interval (150 ms); entries that carry small files' bytes must not
    /// add up to more than a link moves in that time.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        self.entries_within(start, Bound::Excluded(end), APPEND_BUDGET)
            .map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Read, e))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let read = |e| io(ErrorSubject::Logs, ErrorVerb::Read, e);
        let last_purged_log_id: Option<LogId<NodeId>> = self.meta(LAST_PURGED).map_err(read)?;
        let last = self.last_entry_id().map_err(read)?;
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last.or(last_purged_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        self.put_meta_durably(VOTE, vote)
            .map_err(|e| io(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        self.meta(VOTE)
            .map_err(|e| io(ErrorSubject::Vote, ErrorVerb::Read, e))
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        self.put_meta_durably(COMMITTED, &committed)
            .map_err(|e| io(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        let committed: Option<Option<LogId<NodeId>>> = self
            .meta(COMMITTED)
            .map_err(|e| io(ErrorSubject::Store, ErrorVerb::Read, e))?;
        Ok(committed.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let write = |e| io(ErrorSubject::Logs, ErrorVerb::Write, e);
        let mut batch = WriteBatch::default();
        for entry in entries {
            table::put(
                &self.db,
                &mut batch,
                RAFT_LOG,
                &index_key(entry.log_id.index),
                &entry,
            )
            .map_err(write)?;
        }
        self.stats.appended(batch.size_in_bytes() as u64);
        let result = self
            .db
            .write(batch)
            .and_then(|()| self.db.flush_wal(true))
            .map_err(|e| std::io::Error::other(e.to_string()));
        let failed = result.as_ref().err().map(|e| e.to_string());
        callback.log_io_completed(result);
        match failed {
            None => Ok(()),
            Some(msg) => Err(io(
                ErrorSubject::Logs,
                ErrorVerb::Write,
                StoreError::Io(msg),
            )),
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let handle =
            cf(&self.db, RAFT_LOG).map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        self.db
            .delete_range_cf(handle, index_key(log_id.index), index_key(u64::MAX))
            .and_then(|()| self.db.flush_wal(true))
            .map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Delete, e.into()))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let delete = |e| io(ErrorSubject::Logs, ErrorVerb::Delete, e);
        // Record the purge point first: a crash in between leaves extra log
        // entries, never a gap that the recorded state does not explain.
        self.put_meta_durably(LAST_PURGED, &log_id)
            .map_err(delete)?;
        let handle = cf(&self.db, RAFT_LOG).map_err(delete)?;
        self.db
            .delete_range_cf(
                handle,
                index_key(0),
                index_key(log_id.index.saturating_add(1)),
            )
            .map_err(|e| delete(e.into()))
    }
}
