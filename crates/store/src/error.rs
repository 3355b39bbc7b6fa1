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
    Secrets(#[from] SecretsError),
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

/// Sealing and opening the secrets kept in the store (`secrets`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretsError {
    #[error("a secrets key is 64 hexadecimal characters (32 bytes, e.g. `openssl rand -hex 32`)")]
    BadKey,
    #[error(
        "a {label} in the store is sealed with secrets key {sealed_with}, but this node has {ours}"
    )]
    WrongKey {
        label: &'static str,
        sealed_with: String,
        ours: String,
    },
    #[error("a {label} in the store is sealed (key {sealed_with}) and this node has no secrets key: give it --secrets-key-file or WHARF_SECRETS_KEY")]
    NoKey {
        label: &'static str,
        sealed_with: String,
    },
    #[error("a sealed {label} in the store is damaged")]
    Damaged { label: &'static str },
    #[error("cannot seal a {label}")]
    Seal { label: &'static str },
}
