//! Opening the node's RocksDB instance with every column family.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamilyDescriptor, LruCacheOptions,
    Options, WriteBufferManager, DB,
};

use crate::columns::{RAFT_LOG, RAFT_META, SM_META};
use crate::error::StoreError;
use crate::log_store::LogStore;
use crate::reader::StateReader;
use crate::snapshot::SnapshotDir;
use crate::state_machine::StateMachineStore;
use crate::stats::StoreStats;
use crate::table::TABLES;

pub struct OpenedStore {
    pub log: LogStore,
    pub state_machine: StateMachineStore,
    pub reader: StateReader,
    pub stats: StoreStats,
}

/// What RocksDB may hold in memory and in its write-ahead log, for all column
/// families together: a node's footprint stays within these whatever the
/// size of the namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Write-ahead log files in all; past it RocksDB flushes the column
    /// families that pin the oldest file.
    pub wal_bytes: u64,
    /// Memtables of every column family together.
    pub write_buffer_bytes: usize,
    /// Cached blocks, index and filter blocks included.
    pub block_cache_bytes: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            wal_bytes: 64 << 20,
            write_buffer_bytes: 64 << 20,
            block_cache_bytes: 64 << 20,
        }
    }
}

/// The block cache's shards, as a power of two.
const CACHE_SHARD_BITS: i32 = 2;
/// The size of one piece of a table file's index or filter.
const METADATA_BLOCK: usize = 4096;

impl StoreLimits {
    fn options(&self) -> (Options, Options) {
        let mut db = Options::default();
        db.create_if_missing(true);
        db.create_missing_column_families(true);
        db.set_max_total_wal_size(self.wal_bytes);
        db.set_write_buffer_manager(&WriteBufferManager::new_write_buffer_manager(
            self.write_buffer_bytes,
            false,
        ));
        db.set_max_background_jobs(2);
        db.set_keep_log_file_num(4);
        db.set_max_manifest_file_size(16 << 20);
        let mut cache = LruCacheOptions::default();
        cache.set_capacity(self.block_cache_bytes);
        // Four shards, not RocksDB's default of one per 512 KiB (64 at the
        // default size): a block larger than its shard is never kept, so a
        // store written before filters were partitioned, whose table files
        // carry filters of a megabyte and more, would read them again on
        // every lookup.
        cache.set_num_shard_bits(CACHE_SHARD_BITS);
        let cache = Cache::new_lru_cache_opts(&cache);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        // Index and filter in pieces of METADATA_BLOCK bytes, cached like
        // data blocks, under a small top level pinned in memory: a lookup
        // reads one piece of each, whatever the table file's size. Whole
        // filters grow with their file (a million names: 1 MiB), and once
        // one no longer fits its cache shard every lookup reads and
        // checksums it again: the cost per file doubled past a million
        // files (benches/RESULTS.md, session 27).
        table.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
        table.set_partition_filters(true);
        table.set_metadata_block_size(METADATA_BLOCK);
        table.set_cache_index_and_filter_blocks(true);
        table.set_cache_index_and_filter_blocks_with_high_priority(true);
        table.set_pin_top_level_index_and_filter(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        table.set_bloom_filter(10.0, false);
        let mut family = Options::default();
        family.set_block_based_table_factory(&table);
        // A column family's own memtable stays a fraction of the shared
        // budget, so a rarely written one cannot sit on most of it.
        family.set_write_buffer_size((self.write_buffer_bytes / 4).max(1 << 20));
        family.set_compression_type(rocksdb::DBCompressionType::Lz4);
        (db, family)
    }
}

/// Every column family of a store: the log, the state machine's metadata,
/// its tables, and the tables this node derives from them.
pub(crate) fn column_families() -> impl Iterator<Item = &'static str> {
    [RAFT_LOG, RAFT_META, SM_META]
        .into_iter()
        .chain(TABLES)
        .chain(crate::chunk_health::LOCAL_TABLES)
        .chain([crate::inline::INLINE_CHUNKS])
}

/// The RocksDB instance under `path` with every column family.
fn open_db(path: &Path, limits: StoreLimits) -> Result<Arc<DB>, StoreError> {
    let (options, family) = limits.options();
    let families = column_families().map(|name| ColumnFamilyDescriptor::new(name, family.clone()));
    Ok(Arc::new(DB::open_cf_descriptors(&options, path, families)?))
}

/// Opens (creating when missing) the store under `path` with the default
/// limits.
pub async fn open(path: &Path) -> Result<OpenedStore, StoreError> {
    open_with(path, StoreLimits::default()).await
}

/// Opens (creating when missing) the store under `path`; its snapshot files
/// live in `path/snapshots`.
pub async fn open_with(path: &Path, limits: StoreLimits) -> Result<OpenedStore, StoreError> {
    let db = open_db(path, limits)?;
    let snapshots = SnapshotDir::open(path.join("snapshots"))?;
    let stats = StoreStats::default();
    let state_machine = StateMachineStore::load(db.clone(), snapshots, stats.clone())?;
    let reader = state_machine.reader();
    Ok(OpenedStore {
        log: LogStore::new(db, stats.clone()),
        state_machine,
        reader,
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes this thread has read through system calls, page cache
    /// included: RocksDB reads a table file's blocks in the calling thread.
    fn thread_read_bytes() -> u64 {
        let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
        io.lines()
            .find_map(|l| l.strip_prefix("rchar: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap()
    }

    /// A table file whose whole filter would outgrow a cache shard (125 KB
    /// of filter for 100,000 names, against shards of 64 KiB) still costs
    /// a lookup one piece, cached once read, not the whole filter read and
    /// checksummed again.
    #[test]
    fn lookups_in_a_large_table_file_read_pieces_not_its_whole_filter() {
        let dir = tempfile::tempdir().unwrap();
        let limits = StoreLimits {
            block_cache_bytes: 256 << 10,
            ..StoreLimits::default()
        };
        let db = open_db(dir.path(), limits).unwrap();
        let dirents = db.cf_handle("dirents").unwrap();
        for i in 0u64..100_000 {
            let mut key = 7u64.to_be_bytes().to_vec();
            key.extend_from_slice(format!("f{i:08}").as_bytes());
            db.put_cf(&dirents, &key, i.to_be_bytes()).unwrap();
        }
        db.flush_cf(&dirents).unwrap();
        db.compact_range_cf(&dirents, None::<&[u8]>, None::<&[u8]>);
        let before = thread_read_bytes();
        let lookups = 2000u64;
        for i in 0..lookups {
            // Names that are not there: only the filter is consulted.
            let mut key = 7u64.to_be_bytes().to_vec();
            key.extend_from_slice(format!("g{:08}", i * 37).as_bytes());
            assert!(db.get_pinned_cf(&dirents, &key).unwrap().is_none());
        }
        let read = thread_read_bytes() - before;
        // A whole filter read per lookup would be 2,000 x 125 KB = 250 MB.
        assert!(
            read < lookups * 16 * 1024,
            "{read} bytes read for {lookups} lookups"
        );
    }
}
