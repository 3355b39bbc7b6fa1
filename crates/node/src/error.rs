//! What stops a node from starting or running.

use std::net::SocketAddr;
use std::path::PathBuf;

use wharf_cluster::{ClusterError, WriteError};
use wharf_server::EngineError;
use wharf_store::secrets::SecretsError;
use wharf_store::StoreError;
use wharf_tls::{CaError, CertificateError, IdentityError, TicketKeyError, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A file or directory the node needs (`what` says which, as a phrase
    /// such as "cannot create data directory").
    #[error("{what} {}: {error}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the node's TLS identity: {0}")]
    Identity(#[from] IdentityError),
    #[error("certificate: {0}")]
    Certificate(#[from] CertificateError),
    #[error("TLS configuration: {0}")]
    Tls(#[from] TlsError),
    #[error("the cluster CA: {0}")]
    Ca(#[from] CaError),
    #[error("session-ticket key: {0}")]
    TicketKey(#[from] TicketKeyError),
    #[error("the cluster has no CA yet")]
    NoCa,
    #[error("secrets key from {from}: {error}")]
    SecretsKey { from: String, error: SecretsError },
    #[error("cannot open the secrets in this node's store: {0}")]
    Secrets(StoreError),
    #[error("the node's store: {0}")]
    Store(#[from] StoreError),
    #[error("cluster: {0}")]
    Cluster(#[from] ClusterError),
    #[error("cluster write: {0}")]
    Write(#[from] WriteError),
    #[error("cannot open the chunk store: {0}")]
    ChunkStore(std::io::Error),
    #[error("no cluster leader after 30 s: are a majority of the members up?")]
    NoLeader,
    #[error("no join token in {} after {waited} s", path.display())]
    NoJoinToken { path: PathBuf, waited: u64 },
    #[error(
        "this cluster keeps files in {recorded} storage; --storage {wanted} cannot change that"
    )]
    StorageConflict {
        recorded: &'static str,
        wanted: &'static str,
    },
    #[error("the cluster's recorded storage {0:?} is unknown to this release of Wharf; upgrade this node")]
    UnknownStorage(String),
    #[error("object storage: {0}")]
    ObjectStorage(#[from] crate::objects::ObjectsError),
    #[error("this cluster keeps its objects with {what} {recorded:?}; --{flag} {given:?} cannot change that")]
    ObjectsConflict {
        what: &'static str,
        flag: &'static str,
        recorded: String,
        given: String,
    },
    #[error("FTPS listeners: {0}")]
    Engine(#[from] EngineError),
    #[error("cannot listen on {flag} {addr}: {error}")]
    Listen {
        flag: &'static str,
        addr: SocketAddr,
        error: std::io::Error,
    },
}

impl NodeError {
    pub(crate) fn file(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |error| NodeError::File { what, path, error }
    }
}
