//! Opening the node's RocksDB instance with every column family.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, Options, WriteBufferManager, DB};

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
        let cache = Cache::new_lru_cache(self.block_cache_bytes);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_cache_index_and_filter_blocks(true);
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

/// Opens (creating when missing) the store under `path` with the default
/// limits.
pub async fn open(path: &Path) -> Result<OpenedStore, StoreError> {
    open_with(path, StoreLimits::default()).await
}

/// Opens (creating when missing) the store under `path`; its snapshot files
/// live in `path/snapshots`.
pub async fn open_with(path: &Path, limits: StoreLimits) -> Result<OpenedStore, StoreError> {
    let (options, family) = limits.options();
    let families = column_families().map(|name| ColumnFamilyDescriptor::new(name, family.clone()));
    let db = Arc::new(DB::open_cf_descriptors(&options, path, families)?);
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
