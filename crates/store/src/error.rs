//! What can go wrong reading or writing the store.

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

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("unknown value format {0}")]
    UnknownFormat(u8),
    #[error("empty value")]
    Empty,
    #[error("malformed value: {0}")]
    Json(#[from] serde_json::Error),
    #[error("malformed binary value: {0}")]
    Binary(String),
}
