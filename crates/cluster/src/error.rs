//! What can stop a node from starting or joining.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot open the store: {0}")]
    Store(#[from] wharf_store::StoreError),
    #[error("cannot read or write {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} for cluster traffic: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("Raft: {0}")]
    Raft(String),
    #[error("joining through {addr} failed: {reason}")]
    Join { addr: String, reason: String },
    #[error("cluster TLS: {0}")]
    Tls(String),
}
