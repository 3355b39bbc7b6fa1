//! Object storage's upkeep (`--storage s3`): the leader finishes uploads
//! nobody resumed. A multipart upload whose last checkpoint is older than the
//! grace period is completed with its durable parts, so the file keeps its
//! durable prefix (as an abandoned upload does on cluster storage); one
//! without a durable part is discarded and the file is what it was before.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use wharf_cluster::ClusterHandle;
use wharf_store::records::UploadRecord;
use wharf_store::{Command, CommandResult, FileWrite, Found, FsCommand, PartsWrite};

use super::trash::Sweep;
use crate::clock::{unix_now, unix_now_ms};
use crate::leader::LeaderJob;
use crate::objects::{recorded, Objects};

const EVERY: Duration = Duration::from_secs(60);

pub struct ObjectUpkeep {
    objects: Arc<Objects>,
    /// An upload without a checkpoint for this long is abandoned.
    grace: Duration,
    trash: Sweep,
}

impl ObjectUpkeep {
    pub fn new(objects: Arc<Objects>, grace: Duration) -> Self {
        Self {
            objects,
            grace,
            trash: Sweep::default(),
        }
    }

    /// Completes (or discards) `upload`'s multipart upload and records the
    /// file as it is then; a resumption that adopted it meanwhile wins (the
    /// last write must still own the multipart upload).
    async fn finish(&self, node: &ClusterHandle, upload: UploadRecord) {
        let Some(state) = upload.multipart.clone() else {
            return;
        };
        let parts = match node.reader().upload_parts(&state) {
            Ok(parts) if parts.len() as u64 == state.parts => parts,
            _ => return,
        };
        let key = recorded(&state.key);
        let command = if parts.is_empty() {
            if !self.objects.abort(&state.key, &state.id).await {
                return;
            }
            FsCommand::ForgetUpload {
                id: upload.id.clone(),
                time_ms: unix_now_ms(),
            }
        } else {
            let etags = parts.into_iter().map(|p| p.etag).collect();
            match self
                .objects
                .complete(&key, &state.id, etags, upload.durable)
                .await
            {
                Ok(object) => FsCommand::Write(FileWrite {
                    upload: upload.id.clone(),
                    path: upload.path.clone(),
                    chunks: Vec::new(),
                    from: 0,
                    mtime: unix_now(),
                    node: upload.node,
                    placed: Vec::new(),
                    done: true,
                    create_new: false,
                    owner: owner_of(node, &upload),
                    quota: Default::default(),
                    found: Found::Unchecked,
                    object: Some(object),
                    inline: None,
                    multipart: Some(Box::new(PartsWrite {
                        key: state.key.clone(),
                        id: state.id.clone(),
                        from: state.parts,
                        parts: Vec::new(),
                        sha256: state.sha256.clone(),
                        adopt: None,
                    })),
                }),
                // Parts were sent after the last checkpoint (the node died
                // between the two), and the store wants every part listed
                // (Ceph does; AWS does not): what is durable cannot be kept.
                Err(e) if e.to_string().contains("InvalidPart") => {
                    tracing::warn!(upload = %upload.id, key = %state.key,
                        "an abandoned upload cannot be completed with its durable parts (more parts reached the store than were checkpointed); discarding it: {e}");
                    if !self.objects.abort(&state.key, &state.id).await {
                        return;
                    }
                    FsCommand::ForgetUpload {
                        id: upload.id.clone(),
                        time_ms: unix_now_ms(),
                    }
                }
                Err(e) => {
                    tracing::warn!(upload = %upload.id, key = %state.key,
                        "an abandoned upload could not be completed; trying again later: {e}");
                    return;
                }
            }
        };
        match node.write(Command::Fs(command)).await {
            Ok(CommandResult::Done) => tracing::info!(upload = %upload.id, path = %upload.path,
                durable = upload.durable, "finished an abandoned upload: the file keeps its durable prefix"),
            Ok(other) => {
                tracing::info!(upload = %upload.id, "abandoned upload left as it is: {other:?}")
            }
            Err(e) => tracing::debug!("upkeep write deferred: {e}"),
        }
    }
}

/// The account the file is charged to.
fn owner_of(node: &ClusterHandle, upload: &UploadRecord) -> String {
    node.reader()
        .lookup(&upload.path)
        .ok()
        .flatten()
        .map(|inode| inode.owner)
        .unwrap_or_default()
}

#[async_trait]
impl LeaderJob for ObjectUpkeep {
    fn name(&self) -> &'static str {
        "object upkeep"
    }

    fn every(&self) -> Duration {
        EVERY.min(self.grace)
    }

    async fn turn(&mut self, node: &Arc<ClusterHandle>) {
        let Ok(uploads) = node.reader().uploads() else {
            return;
        };
        let cutoff = unix_now().saturating_sub(self.grace.as_secs());
        for upload in uploads.into_iter().filter(|u| u.heartbeat < cutoff) {
            if !node.is_leader().await {
                return;
            }
            self.finish(node, upload).await;
        }
        self.trash.turn(node, &self.objects).await;
    }
}
