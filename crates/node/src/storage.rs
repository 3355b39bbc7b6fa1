//! Which storage serves users' files: chosen when the cluster is created and
//! kept in the replicated settings, so every node of a cluster agrees.

use std::path::Path;
use std::sync::Arc;

use wharf_cluster::ClusterHandle;
use wharf_server::fs::Storage;
use wharf_store::Command;

use crate::cluster_fs::ClusterStorage;
use crate::config::{S3Config, StorageMode};
use crate::error::NodeError;
use crate::local_events::AnnouncedLocalStorage;
use crate::objects::{credentials, Objects, ObjectsError, Placement};

const STORAGE_SETTING: &str = "fs.storage";
/// Where object storage keeps the cluster's files, recorded when the cluster
/// is created so joining nodes need only their credentials.
const S3_ENDPOINT: &str = "fs.s3.endpoint";
const S3_BUCKET: &str = "fs.s3.bucket";
const S3_PREFIX: &str = "fs.s3.prefix";
const S3_REGION: &str = "fs.s3.region";
const S3_PATH_STYLE: &str = "fs.s3.path_style";

/// Settles the storage mode: the cluster's recorded choice, else `wanted`
/// (default cluster), recorded when this node created the cluster. A flag
/// that contradicts the cluster's choice is an error, not a silent switch.
pub async fn settle(
    node: &ClusterHandle,
    wanted: Option<StorageMode>,
    replication: Option<usize>,
    inline_max: Option<usize>,
    bootstrapped: bool,
) -> Result<StorageMode, NodeError> {
    // A name this release does not know must stop the node: serving chunks
    // for a cluster whose files are elsewhere would show users empty homes.
    let recorded = match node.reader().setting(STORAGE_SETTING)? {
        Some(name) => Some(StorageMode::parse(&name).ok_or(NodeError::UnknownStorage(name))?),
        None => None,
    };
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
    let given = [
        (wharf_cluster::chunks::REPLICATION_SETTING, replication),
        (wharf_cluster::chunks::INLINE_SETTING, inline_max),
    ];
    for (key, value) in given {
        let Some(value) = value.map(|v| v.to_string()) else {
            continue;
        };
        if node.reader().setting(key)?.as_deref() != Some(value.as_str()) {
            node.write(Command::PutSetting {
                key: key.into(),
                value,
            })
            .await?;
        }
    }
    Ok(mode)
}

/// Object storage's placement: the cluster's recorded one, with this node's
/// own endpoint, region and addressing style where it gives them (a node
/// may reach the same bucket another way); the bucket and prefix cannot
/// differ.
async fn settle_placement(node: &ClusterHandle, given: &S3Config) -> Result<Placement, NodeError> {
    let recorded = |key: &str| node.reader().setting(key);
    let fixed = |what, flag, key: &str, given: Option<String>| -> Result<_, NodeError> {
        match (recorded(key)?, given) {
            (Some(r), Some(g)) if r != g => Err(NodeError::ObjectsConflict {
                what,
                flag,
                recorded: r,
                given: g,
            }),
            (Some(r), _) => Ok(Some(r)),
            (None, g) => Ok(g),
        }
    };
    let prefix = given
        .prefix
        .as_deref()
        .map(|p| p.trim_matches('/').to_owned());
    let placement = Placement {
        bucket: fixed("bucket", "s3-bucket", S3_BUCKET, given.bucket.clone())?
            .ok_or(ObjectsError::Missing("--s3-bucket"))?,
        prefix: fixed("prefix", "s3-prefix", S3_PREFIX, prefix)?.unwrap_or_default(),
        endpoint: match &given.endpoint {
            Some(e) => e.clone(),
            None => recorded(S3_ENDPOINT)?.ok_or(ObjectsError::Missing("--s3-endpoint"))?,
        },
        region: match &given.region {
            Some(r) => r.clone(),
            None => recorded(S3_REGION)?.unwrap_or_else(|| "us-east-1".into()),
        },
        path_style: match given.path_style {
            Some(p) => p,
            None => recorded(S3_PATH_STYLE)?.is_some_and(|p| p == "true"),
        },
    };
    Ok(placement)
}

/// Records `placement` for the nodes that join later, once the node that
/// created the cluster has reached its bucket (a wrong bucket name given on
/// the first start can still be corrected on the next).
async fn record_placement(node: &ClusterHandle, placement: &Placement) -> Result<(), NodeError> {
    if node.reader().setting(S3_BUCKET)?.is_none() {
        for (key, value) in [
            (S3_ENDPOINT, placement.endpoint.clone()),
            (S3_BUCKET, placement.bucket.clone()),
            (S3_PREFIX, placement.prefix.clone()),
            (S3_REGION, placement.region.clone()),
            (S3_PATH_STYLE, placement.path_style.to_string()),
        ] {
            node.write(Command::PutSetting {
                key: key.into(),
                value,
            })
            .await?;
        }
    }
    Ok(())
}

/// The bucket this node serves files from, checked: a missing bucket or
/// refused credentials stop the node with a message that names the problem.
/// An endpoint that does not answer only warns: uploads get `451` until it
/// does.
pub async fn connect_objects(
    node: &ClusterHandle,
    given: &S3Config,
    bootstrapped: bool,
) -> Result<Arc<Objects>, NodeError> {
    let placement = settle_placement(node, given).await?;
    let credentials = credentials::load(given.credentials_file.as_deref(), |name| {
        std::env::var(name).ok()
    })?;
    let objects = Objects::connect(
        placement,
        &credentials,
        given.ca_file.clone(),
        given.part_size_mib,
    )?
    .with_copy_max_mib(given.copy_max_mib)?;
    let p = objects.placement();
    match objects.probe(node.node_id()).await {
        Ok(()) => tracing::info!(endpoint = %p.endpoint, bucket = %p.bucket, prefix = %p.prefix,
            "files' contents are objects of bucket {} at {}", p.bucket, p.endpoint),
        Err(e @ ObjectsError::Probe { .. }) => {
            tracing::warn!("object storage is not answering; uploads will fail until it does: {e}")
        }
        Err(e) => return Err(e.into()),
    }
    if bootstrapped {
        record_placement(node, objects.placement()).await?;
    }
    Ok(Arc::new(objects))
}

/// The engine's storage boundary for `mode`; and where relative homes are
/// rooted (the node's data dir for local storage, the namespace root else).
pub fn boundary(
    mode: StorageMode,
    node: &Arc<ClusterHandle>,
    data_dir: &Path,
    objects: Option<Arc<Objects>>,
) -> (Arc<dyn Storage>, std::path::PathBuf) {
    match mode {
        StorageMode::Local => (
            Arc::new(AnnouncedLocalStorage { node: node.clone() }),
            data_dir.to_owned(),
        ),
        StorageMode::Cluster | StorageMode::S3 => (
            Arc::new(ClusterStorage::new(
                node.clone(),
                wharf_blob::DEFAULT_CHUNK_SIZE,
                objects,
            )),
            "/".into(),
        ),
    }
}
