//! Which storage serves users' files: chosen when the cluster is created and
//! kept in the replicated settings, so every node of a cluster agrees.

use std::path::Path;
use std::sync::Arc;

use wharf_cluster::ClusterHandle;
use wharf_server::fs::Storage;
use wharf_store::Command;

use crate::cluster_fs::ClusterStorage;
use crate::config::StorageMode;
use crate::error::NodeError;
use crate::local_events::AnnouncedLocalStorage;

const STORAGE_SETTING: &str = "fs.storage";

/// Settles the storage mode: the cluster's recorded choice, else `wanted`
/// (default cluster), recorded when this node created the cluster. A flag
/// that contradicts the cluster's choice is an error, not a silent switch.
pub async fn settle(
    node: &ClusterHandle,
    wanted: Option<StorageMode>,
    replication: Option<usize>,
    bootstrapped: bool,
) -> Result<StorageMode, NodeError> {
    let recorded = node
        .reader()
        .setting(STORAGE_SETTING)?
        .and_then(|name| StorageMode::parse(&name));
    let mode = match (recorded, wanted) {
        (Some(r), Some(w)) if r != w => {
            return Err(NodeError::StorageConflict {
                recorded: r.name(),
                wanted: w.name(),
            })
        }
        (Some(r), _) => r,
        (None, w) => {
            let mode = w.unwrap_or(StorageMode::Cluster);
            if bootstrapped {
                node.write(Command::PutSetting {
                    key: STORAGE_SETTING.into(),
                    value: mode.name().into(),
                })
                .await?;
            }
            mode
        }
    };
    if let Some(r) = replication {
        let current = node
            .reader()
            .setting(wharf_cluster::chunks::REPLICATION_SETTING)?;
        if current.as_deref() != Some(r.to_string().as_str()) {
            node.write(Command::PutSetting {
                key: wharf_cluster::chunks::REPLICATION_SETTING.into(),
                value: r.to_string(),
            })
            .await?;
        }
    }
    Ok(mode)
}

/// The engine's storage boundary for `mode`; and where relative homes are
/// rooted (the node's data dir for local storage, the namespace root else).
pub fn boundary(
    mode: StorageMode,
    node: &Arc<ClusterHandle>,
    data_dir: &Path,
) -> (Arc<dyn Storage>, std::path::PathBuf) {
    match mode {
        StorageMode::Local => (
            Arc::new(AnnouncedLocalStorage { node: node.clone() }),
            data_dir.to_owned(),
        ),
        StorageMode::Cluster => (
            Arc::new(ClusterStorage {
                node: node.clone(),
                chunk_size: wharf_blob::DEFAULT_CHUNK_SIZE,
            }),
            "/".into(),
        ),
    }
}
