//! Opening the node's RocksDB instance with every column family.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, Options, DB};

use crate::log_store::LogStore;
use crate::reader::StateReader;
use crate::state_machine::StateMachineStore;
use crate::table::{CodecError, TABLES};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("RocksDB: {0}")]
    RocksDb(#[from] rocksdb::Error),
    #[error("store is missing column family {0}: the data directory is damaged")]
    MissingColumnFamily(String),
    #[error("cannot decode a stored value: {0}")]
    Codec(#[from] CodecError),
    #[error("I/O: {0}")]
    Io(String),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
}

/// Raft log entries by index.
pub const RAFT_LOG: &str = "raft_log";
/// Vote, committed log id, last purged log id.
pub const RAFT_META: &str = "raft_meta";
/// Last applied log id, membership and the current snapshot.
pub const SM_META: &str = "sm_meta";

pub struct OpenedStore {
    pub log: LogStore,
    pub state_machine: StateMachineStore,
    pub reader: StateReader,
}

/// Opens (creating when missing) the store under `path`.
pub async fn open(path: &Path) -> Result<OpenedStore, StoreError> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    let families = [RAFT_LOG, RAFT_META, SM_META]
        .into_iter()
        .chain(TABLES)
        .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
    let db = Arc::new(DB::open_cf_descriptors(&options, path, families)?);
    let state_machine = StateMachineStore::load(db.clone())?;
    let reader = state_machine.reader();
    Ok(OpenedStore {
        log: LogStore::new(db),
        state_machine,
        reader,
    })
}
