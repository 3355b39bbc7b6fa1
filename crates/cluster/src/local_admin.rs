//! Reaching a node on this host as its operator: the cluster address and
//! node certificate it keeps in its data directory are all it takes
//! (`wharf … --data-dir`, the benchmarks' harness).

use std::path::{Path, PathBuf};

use tonic::transport::Endpoint;

use crate::credentials::{self, Credentials};
use crate::node::CLUSTER_ADDR_FILE;
use crate::transport;

#[derive(Debug, thiserror::Error)]
pub enum LocalAdminError {
    #[error("cannot read {path}: is a node running with this data dir? ({source})")]
    NotRunning {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} holds no cluster certificate: is a node running with this data dir?")]
    NoCertificate(PathBuf),
    #[error(transparent)]
    Credentials(#[from] crate::ClusterError),
    #[error("cannot set up TLS to {addr}: {source}")]
    Endpoint {
        addr: String,
        source: tonic::transport::Error,
    },
}

/// The address of the node whose cluster data is `cluster_dir`
/// (`DATA_DIR/cluster`), and an endpoint authenticated as that node.
pub fn endpoint(cluster_dir: &Path) -> Result<(String, Endpoint), LocalAdminError> {
    let path = cluster_dir.join(CLUSTER_ADDR_FILE);
    let addr = std::fs::read_to_string(&path)
        .map_err(|source| LocalAdminError::NotRunning { path, source })?
        .trim()
        .to_owned();
    let node = Credentials::load(&credentials::tls_dir(cluster_dir))?
        .ok_or_else(|| LocalAdminError::NoCertificate(cluster_dir.to_path_buf()))?;
    let endpoint =
        transport::client_endpoint(&addr, &node.ca_pem, Some((&node.chain_pem, &node.key_pem)))
            .map_err(|source| LocalAdminError::Endpoint {
                addr: addr.clone(),
                source,
            })?;
    Ok((addr, endpoint))
}
