//! An upload into object storage (`--storage s3`): the file's bytes become
//! one object under its path — a single PUT for a file smaller than a part,
//! a multipart upload with parts in flight for a larger one — and only once
//! the object is complete does one Raft entry record the file (with its
//! event); `226` follows that entry.
//!
//! This stage keeps no checkpoints, so nothing of a cut upload is durable: its
//! multipart upload is aborted and the file is left empty (what a cut
//! upload keeps is a prefix of what was sent, here the empty one), so a
//! client resuming from `SIZE` sends the whole file again instead of
//! appending to the old one. An upload refused by the object store or the
//! quota leaves the file as it was. `REST`/`APPE` on a complete file
//! re-uploads its kept head from the bucket. Checkpointed parts, resumable
//! on any node, are the next stage (docs/design/s3-storage.md §2).

use std::sync::Arc;

use async_trait::async_trait;
use object_store::path::Path as Key;
use object_store::WriteMultipart;
use tokio::io::AsyncReadExt;
use wharf_server::fs::{FileWriter, FsError, WriteMode};
use wharf_store::events::{Origin, UploadFacts};
use wharf_store::records::{InodeRecord, ObjectRef};
use wharf_store::{Announced, FileWrite, Found, FsCommand};

use super::writer::{new_upload_id, Target};
use super::{outcome, store_error, write};
use crate::clock::{unix_now, unix_now_ms};
use crate::events::ContentDigest;
use crate::objects::{Objects, PARTS_IN_FLIGHT};

/// A small file's buffer to begin with.
const SMALL_BUFFER: usize = 64 * 1024;

pub struct ObjectWriter {
    target: Target,
    objects: Arc<Objects>,
    key: Key,
    upload: String,
    create_new: bool,
    /// A file was at the path before (an overwrite).
    replaces: bool,
    /// The whole file while it is smaller than a part.
    buffer: Vec<u8>,
    /// Once it is not.
    multipart: Option<WriteMultipart>,
    size: u64,
    /// What the owner's byte quota leaves for this file; `None`: no limit.
    room: Option<u64>,
    digest: ContentDigest,
    /// The file as this upload found it: a cut upload empties it only if it
    /// is still that file.
    found: Found,
    /// Bytes of the old file the new one starts with (`REST`/`APPE`), and
    /// the old file's size: a cut that keeps the whole old file leaves it.
    kept: u64,
    old_size: u64,
    /// Refused by the object store or the quota, or committing: a drop then
    /// leaves the file alone.
    settled: bool,
}

impl ObjectWriter {
    pub async fn open(
        target: Target,
        objects: Arc<Objects>,
        mode: WriteMode,
        existing: Option<InodeRecord>,
        found: Found,
    ) -> Result<Self, FsError> {
        let key = objects.key(&target.path)?;
        let room = room_left(&target, existing.as_ref())?;
        let mut writer = Self {
            key,
            upload: new_upload_id(),
            create_new: mode == WriteMode::CreateNew,
            replaces: existing.is_some() && mode == WriteMode::Truncate,
            buffer: Vec::new(),
            multipart: None,
            size: 0,
            room,
            digest: ContentDigest::new(target.digest),
            found,
            kept: 0,
            old_size: existing.as_ref().map_or(0, |i| i.size),
            // Until it is open, a drop leaves the file alone.
            settled: true,
            objects,
            target,
        };
        let size = writer.old_size;
        let keep = match mode {
            WriteMode::Truncate => 0,
            WriteMode::CreateNew if existing.is_some() => return Err(FsError::AlreadyExists),
            WriteMode::CreateNew => 0,
            WriteMode::Append => size,
            WriteMode::At(offset) if offset > size => return Err(FsError::InvalidOffset),
            WriteMode::At(offset) => offset,
        };
        if keep > 0 {
            writer.keep(existing, keep).await?;
            writer.kept = keep;
        }
        writer.settled = false;
        Ok(writer)
    }

    /// Starts the new object with the first `offset` bytes of the file's
    /// current one, read back from the bucket (a `REST` or `APPE`).
    async fn keep(&mut self, existing: Option<InodeRecord>, offset: u64) -> Result<(), FsError> {
        let Some(object) = existing.and_then(|i| i.object) else {
            return Err(FsError::InvalidOffset);
        };
        let mut reader = self.objects.read(&object, 0, Some(offset)).await?;
        let mut block = vec![0u8; 256 * 1024];
        loop {
            let n = reader.read(&mut block).await.map_err(|e| {
                FsError::ObjectStorage(format!("reading back {} to resume: {e}", object.key))
            })?;
            if n == 0 {
                break;
            }
            self.write_bytes(block.get(..n).unwrap_or_default()).await?;
        }
        if self.size != offset {
            return Err(FsError::ObjectStorage(format!(
                "{} ended at {} bytes, not {offset}",
                object.key, self.size
            )));
        }
        Ok(())
    }

    async fn write_bytes(&mut self, buf: &[u8]) -> Result<(), FsError> {
        let size = self.size + buf.len() as u64;
        if self.room.is_some_and(|room| size > room) {
            return Err(FsError::QuotaExceeded);
        }
        self.size = size;
        self.digest.update(buf);
        if self.multipart.is_none() {
            if self.buffer.len() + buf.len() <= self.objects.part_size() {
                if self.buffer.capacity() == 0 {
                    self.buffer.reserve_exact(SMALL_BUFFER.max(buf.len()));
                }
                self.buffer.extend_from_slice(buf);
                return Ok(());
            }
            let mut multipart = self.objects.multipart(&self.key).await?;
            multipart.write(&std::mem::take(&mut self.buffer));
            self.multipart = Some(multipart);
        }
        if let Some(multipart) = self.multipart.as_mut() {
            multipart
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(|e| {
                    self.objects
                        .failed("uploading a part of", self.key.as_ref(), e)
                })?;
            multipart.write(buf);
        }
        Ok(())
    }

    /// The file as a whole: `object`, or empty (`None`). Only a live
    /// upload is the last writer; a cut one changes the file only if it is
    /// still the one it found.
    fn whole_file(&self, object: Option<ObjectRef>, found: Found) -> FsCommand {
        FsCommand::Write(FileWrite {
            upload: self.upload.clone(),
            path: self.target.path.clone(),
            chunks: Vec::new(),
            from: 0,
            mtime: unix_now(),
            node: self.target.node.node_id(),
            placed: Vec::new(),
            done: true,
            create_new: self.create_new,
            owner: self.target.owner.clone(),
            quota: self.target.quota,
            found,
            object,
        })
    }

    fn file_write(&self, object: ObjectRef) -> FsCommand {
        let write = self.whole_file(Some(object), Found::Unchecked);
        FsCommand::Announced(Box::new(Announced {
            change: write,
            origin: Origin {
                time_ms: unix_now_ms(),
                ..self.target.origin.clone()
            },
            upload: Some(UploadFacts {
                sha256: self.digest.hex(),
                replaced: self.replaces,
            }),
        }))
    }
}

/// Bytes the owner may still store in this file: the byte quota less what
/// they use elsewhere. A new file past the file quota is refused at once.
fn room_left(target: &Target, existing: Option<&InodeRecord>) -> Result<Option<u64>, FsError> {
    let quota = target.quota;
    if quota.bytes == 0 && quota.files == 0 {
        return Ok(None);
    }
    let usage = target
        .node
        .reader()
        .usage(&target.owner)
        .map_err(store_error)?;
    let own = existing.filter(|i| i.owner == target.owner);
    if quota.files > 0 && own.is_none() && usage.files >= quota.files {
        return Err(FsError::QuotaExceeded);
    }
    Ok((quota.bytes > 0).then(|| {
        let elsewhere = usage.bytes.saturating_sub(own.map_or(0, |i| i.size));
        quota.bytes.saturating_sub(elsewhere)
    }))
}

impl Drop for ObjectWriter {
    /// Never completed: the parts already sent are discarded. Cut off by its
    /// client, the upload leaves the file empty (unless it kept the old file
    /// whole, or another upload has replaced it since).
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let multipart = self.multipart.take();
        let keeps_old_file = self.kept > 0 && self.kept == self.old_size;
        // The file made empty, quietly (no event: nothing was uploaded).
        let empty = (!self.settled && !keeps_old_file).then(|| self.whole_file(None, self.found));
        let key = self.key.to_string();
        let node = self.target.node.clone();
        runtime.spawn(async move {
            if let Some(multipart) = multipart {
                if let Err(e) = multipart.abort().await {
                    tracing::warn!(%key,
                        "aborting a cut upload's multipart upload failed (a bucket lifecycle rule will remove it): {e}");
                }
            }
            let Some(write) = empty else {
                return;
            };
            match write_outcome(&node, write).await {
                Ok(()) => tracing::info!(%key,
                    "upload cut off; nothing of it is durable on object storage: the file is left empty"),
                Err(FsError::Superseded) => {}
                Err(e) => tracing::warn!(%key, "upload cut off; the file could not be emptied: {e}"),
            }
        });
    }
}

async fn write_outcome(
    node: &wharf_cluster::ClusterHandle,
    command: FsCommand,
) -> Result<(), FsError> {
    outcome(write(node, command).await?)
}

#[async_trait]
impl FileWriter for ObjectWriter {
    async fn write(&mut self, buf: &[u8]) -> Result<(), FsError> {
        let written = self.write_bytes(buf).await;
        self.settled |= written.is_err();
        written
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, FsError> {
        self.settled = true;
        let object = match self.multipart.take() {
            Some(multipart) => {
                let put = multipart
                    .finish()
                    .await
                    .map_err(|e| self.objects.failed("completing", self.key.as_ref(), e))?;
                ObjectRef {
                    key: self.key.to_string(),
                    etag: put.e_tag.unwrap_or_default(),
                    size: self.size,
                }
            }
            None => {
                let bytes = std::mem::take(&mut self.buffer);
                self.objects.put(&self.key, bytes).await?
            }
        };
        let key = object.key.clone();
        let committed = match write(&self.target.node, self.file_write(object)).await {
            Ok(result) => outcome(result),
            Err(e) => Err(e),
        };
        if let Err(e) = committed {
            // Not recorded: the object goes, unless a file of the namespace
            // is at this key (an overwrite refused: that file's object now
            // holds these bytes, which a read will report as changed).
            super::forget_unless_used(&self.target.node, &self.objects, &key, &self.target.path)
                .await;
            return Err(e);
        }
        Ok(self.size)
    }
}
