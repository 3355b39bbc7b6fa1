//! An upload into object storage (`--storage s3`): the file's bytes become
//! one object under its path — a single PUT for a file smaller than a part,
//! else an S3 multipart upload with parts in flight — and only once the
//! object is complete does one Raft entry record the file (with its event);
//! `226` follows that entry.
//!
//! A multipart upload is checkpointed through Raft as its parts land (its id,
//! each part's ETag, the digest's state), so `SIZE` on any node shows the
//! durable offset, and a resumption there on any node (`REST` at that offset,
//! or `APPE`) adopts the same multipart upload and goes on from its next
//! part; the namespace fences the writer it took over from. A cut upload is
//! finished on its client's behalf with every byte received, as on the other
//! storages; an upload refused by the object store or the quota keeps its last
//! checkpoint, for a resumption to continue. `REST`/`APPE` on a complete
//! file re-uploads its kept head from the bucket.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use object_store::path::Path as Key;
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;
use wharf_server::fs::{FileWriter, FsError, WriteMode};
use wharf_store::events::{Origin, UploadFacts};
use wharf_store::records::{InodeRecord, ObjectRef, PartRecord, UploadRecord};
use wharf_store::{Announced, CommandResult, FileWrite, Found, FsCommand, PartsWrite};

use super::writer::{new_upload_id, Target};
use super::{outcome, store_error, write};
use crate::clock::{unix_now, unix_now_ms};
use crate::events::ContentDigest;
use crate::objects::{Objects, PARTS_IN_FLIGHT};

/// A small file's buffer to begin with.
const SMALL_BUFFER: usize = 64 * 1024;
/// Parts are checkpointed once this many are durable since the last
/// checkpoint, or once this much time has passed.
const CHECKPOINT_PARTS: usize = 2;
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// A part on its way: its upload, its length and the digest's state after it.
type Sending = (JoinHandle<Result<String, FsError>>, u64, String);

/// A multipart upload this writer holds.
struct Parts {
    id: String,
    /// Durable parts, in order.
    done: Vec<PartRecord>,
    /// The digest's state after the last of `done`.
    sha256: String,
    /// How many of `done` the namespace holds.
    committed: usize,
    /// The pending upload this one takes over (its first checkpoint says so).
    adopt: Option<String>,
    in_flight: VecDeque<Sending>,
}

/// The engine's handle on an upload; see [`Upload`].
pub struct ObjectWriter {
    upload: Option<Upload>,
}

struct Upload {
    target: Target,
    objects: Arc<Objects>,
    key: Key,
    upload: String,
    create_new: bool,
    /// A file was at the path before (an overwrite).
    replaces: bool,
    /// Bytes not yet sent as a part (the whole of a small file).
    buffer: Vec<u8>,
    parts: Option<Parts>,
    size: u64,
    /// What the owner's byte quota leaves for this file; `None`: no limit.
    room: Option<u64>,
    /// Of every byte sent as a part (and, at the end, of the rest).
    digest: ContentDigest,
    /// The file as this upload found it: a cut upload finishes only if it is
    /// still that file.
    found: Found,
    /// The ETag of the object the file had when this upload began, if any: a
    /// cut small overwrite replaces only that object.
    found_etag: Option<String>,
    /// The multipart upload of another upload this one replaces (discarded
    /// once this upload has taken the file).
    replaced: Option<(String, String)>,
    /// Refused by the object store or the quota, or committing: a drop then
    /// leaves the file at its last checkpoint.
    settled: bool,
    /// The client ended the upload without TLS close_notify: finished and
    /// announced, but fenced as a cut upload is (it may have been cut off
    /// and have uploaded the file anew meanwhile).
    unconfirmed: bool,
    last_checkpoint: Instant,
}

impl ObjectWriter {
    pub async fn open(
        target: Target,
        objects: Arc<Objects>,
        mode: WriteMode,
        existing: Option<InodeRecord>,
        found: Found,
    ) -> Result<Self, FsError> {
        let upload = Upload::open(target, objects, mode, existing, found).await?;
        Ok(Self {
            upload: Some(upload),
        })
    }
}

impl Upload {
    async fn open(
        target: Target,
        objects: Arc<Objects>,
        mode: WriteMode,
        existing: Option<InodeRecord>,
        found: Found,
    ) -> Result<Self, FsError> {
        let key = objects.key(&target.path)?;
        let room = room_left(&target, existing.as_ref())?;
        let pending = match existing.as_ref().and_then(|i| i.upload.as_deref()) {
            Some(id) => target.node.reader().upload(id).map_err(store_error)?,
            None => None,
        }
        .filter(|p| p.multipart.is_some());
        let mut writer = Self {
            key,
            upload: new_upload_id(),
            create_new: mode == WriteMode::CreateNew,
            replaces: existing.is_some() && mode == WriteMode::Truncate,
            buffer: Vec::new(),
            parts: None,
            size: 0,
            room,
            digest: ContentDigest::new(target.digest),
            found,
            found_etag: existing
                .as_ref()
                .and_then(|i| i.object.as_ref())
                .map(|o| o.etag.clone())
                .filter(|e| !e.is_empty()),
            replaced: None,
            // Until it is open, a drop leaves the file alone.
            settled: true,
            unconfirmed: false,
            last_checkpoint: Instant::now(),
            objects,
            target,
        };
        let size = existing.as_ref().map_or(0, |i| i.size);
        let keep = match mode {
            WriteMode::Truncate => 0,
            WriteMode::CreateNew if existing.is_some() => return Err(FsError::AlreadyExists),
            WriteMode::CreateNew => 0,
            WriteMode::Append => size,
            WriteMode::At(offset) if offset > size => return Err(FsError::InvalidOffset),
            WriteMode::At(offset) => offset,
        };
        match pending {
            Some(pending) if keep > 0 => {
                if keep != pending.durable {
                    return Err(FsError::ResumeAt(pending.durable));
                }
                writer.adopt(pending).await?;
            }
            Some(pending) => {
                writer.replaced = pending.multipart.map(|m| (m.key, m.id));
            }
            None if keep > 0 => writer.keep(existing, keep).await?,
            None => {}
        }
        writer.settled = false;
        Ok(writer)
    }

    /// Takes over `pending`'s multipart upload at its durable offset: its
    /// parts stay, the digest goes on from its state, and the namespace
    /// records the handover before the client sends a byte.
    async fn adopt(&mut self, pending: UploadRecord) -> Result<(), FsError> {
        let Some(state) = pending.multipart.as_ref() else {
            return Ok(());
        };
        let done = self
            .target
            .node
            .reader()
            .upload_parts(state)
            .map_err(store_error)?;
        if done.len() as u64 != state.parts {
            return Err(FsError::Superseded);
        }
        self.key = crate::objects::recorded(&state.key);
        self.digest = ContentDigest::resume(self.target.digest, &state.sha256, pending.durable)
            .unwrap_or_else(|| {
                tracing::warn!(key = %state.key, "the resumed upload's digest state is missing; its event carries no digest");
                ContentDigest::new(wharf_store::events::EventDigest::None)
            });
        self.size = pending.durable;
        self.parts = Some(Parts {
            id: state.id.clone(),
            committed: done.len(),
            done,
            sha256: state.sha256.clone(),
            adopt: Some(pending.id.clone()),
            in_flight: VecDeque::new(),
        });
        self.checkpoint().await?;
        tracing::info!(key = %state.key, offset = pending.durable, from = %pending.id,
            "resuming an upload's multipart upload");
        Ok(())
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

    /// Cancel-safe: `size` counts the bytes as they enter the buffer, so an
    /// upload dropped at an await (its client gone) is finished with exactly
    /// the bytes it holds.
    async fn write_bytes(&mut self, mut buf: &[u8]) -> Result<(), FsError> {
        if self
            .room
            .is_some_and(|room| self.size + buf.len() as u64 > room)
        {
            return Err(FsError::QuotaExceeded);
        }
        if self.parts.is_some() {
            self.keep_durable().await?;
        }
        let part_size = self.objects.part_size();
        while !buf.is_empty() {
            if self.buffer.len() == part_size {
                self.send_buffer().await?;
            }
            let take = (part_size - self.buffer.len()).min(buf.len());
            let (head, rest) = buf.split_at_checked(take).unwrap_or((buf, &[]));
            self.make_room(head.len(), part_size);
            self.buffer.extend_from_slice(head);
            self.size += head.len() as u64;
            buf = rest;
        }
        Ok(())
    }

    /// A small file's buffer stays small; a large one grows once, to a part.
    fn make_room(&mut self, more: usize, part_size: usize) {
        let needed = self.buffer.len() + more;
        if needed > self.buffer.capacity() {
            let size = if needed <= SMALL_BUFFER {
                SMALL_BUFFER
            } else {
                part_size
            };
            self.buffer
                .reserve_exact(size.max(needed) - self.buffer.len());
        }
    }

    /// Begins the multipart upload (and checkpoints its id) on first use.
    async fn parts(&mut self) -> Result<(), FsError> {
        if self.parts.is_none() {
            let id = self.objects.create_multipart(&self.key).await?;
            self.parts = Some(Parts {
                id,
                done: Vec::new(),
                sha256: String::new(),
                committed: 0,
                adopt: None,
                in_flight: VecDeque::new(),
            });
            // Its id is in Raft before any part: nothing of it can leak.
            self.checkpoint().await?;
        }
        Ok(())
    }

    // Cancel-safe, as the chunk writer is: a part leaves the queue only once
    // durable, and is forgotten only once checkpointed.

    /// Sends the buffer as the next part, a few at once; durable parts are
    /// checkpointed every `CHECKPOINT_PARTS` parts or `CHECKPOINT_INTERVAL`.
    async fn send_buffer(&mut self) -> Result<(), FsError> {
        while self
            .parts
            .as_ref()
            .is_some_and(|p| p.in_flight.len() >= PARTS_IN_FLIGHT)
        {
            self.settle().await?;
        }
        self.keep_durable().await?;
        let (objects, key) = (self.objects.clone(), self.key.clone());
        self.parts().await?;
        // Nothing awaited from here on: the bytes leave the buffer only as
        // their part sets off.
        let data = std::mem::take(&mut self.buffer);
        self.digest.update(&data);
        let state = self.digest.midstate();
        let len = data.len() as u64;
        let Some(parts) = self.parts.as_mut() else {
            return Ok(());
        };
        let index = parts.done.len() + parts.in_flight.len();
        let id = parts.id.clone();
        let sending = tokio::spawn(async move { objects.put_part(&key, &id, index, data).await });
        parts.in_flight.push_back((sending, len, state));
        Ok(())
    }

    /// Waits for the oldest part in flight and adds it to the durable ones.
    async fn settle(&mut self) -> Result<(), FsError> {
        let Some(parts) = self.parts.as_mut() else {
            return Ok(());
        };
        let Some((sending, len, state)) = parts.in_flight.front_mut() else {
            return Ok(());
        };
        let sent = sending.await;
        let (len, state) = (*len, std::mem::take(state));
        parts.in_flight.pop_front();
        let etag = sent.map_err(|e| FsError::Io(std::io::Error::other(e)))??;
        parts.done.push(PartRecord { etag, len });
        parts.sha256 = state;
        Ok(())
    }

    /// Adds the parts that have landed to the durable ones, and checkpoints
    /// them every `CHECKPOINT_PARTS` parts or `CHECKPOINT_INTERVAL`: a part
    /// that landed is recorded within about a second even when the client is
    /// slow to send the next one.
    async fn keep_durable(&mut self) -> Result<(), FsError> {
        while self.parts.as_ref().is_some_and(|p| {
            p.in_flight
                .front()
                .is_some_and(|(sending, _, _)| sending.is_finished())
        }) {
            self.settle().await?;
        }
        if self.parts.as_ref().is_some_and(|p| {
            let new = p.done.len() - p.committed;
            new >= CHECKPOINT_PARTS
                || (new > 0 && self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL)
        }) {
            self.checkpoint().await?;
        }
        Ok(())
    }

    async fn settle_all(&mut self) -> Result<(), FsError> {
        while self.parts.as_ref().is_some_and(|p| !p.in_flight.is_empty()) {
            self.settle().await?;
        }
        Ok(())
    }

    fn file_write(&self, done: Option<ObjectRef>, multipart: Option<Box<PartsWrite>>) -> FileWrite {
        FileWrite {
            upload: self.upload.clone(),
            path: self.target.path.clone(),
            chunks: Vec::new(),
            from: 0,
            mtime: unix_now(),
            node: self.target.node.node_id(),
            placed: Vec::new(),
            done: done.is_some(),
            create_new: self.create_new,
            owner: self.target.owner.clone(),
            quota: self.target.quota,
            // A live upload is the last writer; one finished for a vanished
            // client changes the file only if it is still the one it found.
            found: if self.fenced() {
                self.found
            } else {
                Found::Unchecked
            },
            object: done,
            multipart,
            inline: None,
        }
    }

    /// The parts after the first `from` of the namespace's view.
    fn parts_write(parts: &Parts, key: &Key, from: usize) -> Box<PartsWrite> {
        Box::new(PartsWrite {
            key: key.to_string(),
            id: parts.id.clone(),
            from: from as u64,
            parts: parts.done.get(from..).unwrap_or_default().to_vec(),
            sha256: parts.sha256.clone(),
            adopt: parts.adopt.clone(),
        })
    }

    /// Records the durable parts through Raft.
    async fn checkpoint(&mut self) -> Result<(), FsError> {
        let Some(parts) = self.parts.as_ref() else {
            return Ok(());
        };
        let command = |from| {
            FsCommand::Write(self.file_write(None, Some(Self::parts_write(parts, &self.key, from))))
        };
        match write(&self.target.node, command(parts.committed)).await? {
            // That checkpoint's answer was lost: every part again.
            CommandResult::Resend => outcome(write(&self.target.node, command(0)).await?)?,
            result => outcome(result)?,
        }
        let first = parts.committed == 0 && parts.adopt.is_none();
        if let Some(parts) = self.parts.as_mut() {
            parts.committed = parts.done.len();
            parts.adopt = None;
        }
        self.last_checkpoint = Instant::now();
        if first {
            self.discard_replaced();
        }
        Ok(())
    }

    /// The upload this one replaced had a multipart upload: its parts go.
    fn discard_replaced(&mut self) {
        if let Some((key, id)) = self.replaced.take() {
            let objects = self.objects.clone();
            tokio::spawn(async move { objects.abort(&key, &id).await });
        }
    }

    /// The last write: the file is `object`, announced unless the upload
    /// is being finished for a vanished client (its resumption will be).
    fn done_command(&self, object: ObjectRef) -> FsCommand {
        let multipart = self
            .parts
            .as_ref()
            .map(|p| Self::parts_write(p, &self.key, p.done.len()));
        let write = FsCommand::Write(self.file_write(Some(object), multipart));
        if self.settled {
            return write;
        }
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

    /// Sends what is left, completes the object and records it.
    async fn finish(&mut self) -> Result<u64, FsError> {
        let object = match self.parts.is_some() {
            false => {
                // Kept until stored: a commit dropped half-way is finished
                // from the same bytes.
                let whole = self.buffer.clone();
                // Finished for a vanished client, the PUT replaces only what
                // the upload found (nothing, or the file's object): a
                // resumption that stored first wins.
                let object = match (self.fenced(), self.found, &self.found_etag) {
                    (true, Found::Absent { .. }, _) => {
                        self.objects.put_new(&self.key, whole).await?
                    }
                    (true, Found::File { .. }, Some(etag)) => {
                        self.objects.put_over(&self.key, whole, etag).await?
                    }
                    _ => self.objects.put(&self.key, whole).await?,
                };
                self.digest.update(&self.buffer);
                object
            }
            true => {
                if !self.buffer.is_empty() {
                    self.send_buffer().await?;
                }
                self.settle_all().await?;
                if self.fenced() {
                    // For a vanished client: only while the upload is still
                    // this one's (the checkpoint is fenced).
                    self.checkpoint().await?;
                }
                let parts = self.parts.as_ref().map(|p| &p.done[..]).unwrap_or_default();
                let etags = parts.iter().map(|p| p.etag.clone()).collect();
                let id = self
                    .parts
                    .as_ref()
                    .map(|p| p.id.clone())
                    .unwrap_or_default();
                self.objects
                    .complete(&self.key, &id, etags, self.size)
                    .await?
            }
        };
        let key = object.key.clone();
        let committed = match write(&self.target.node, self.done_command(object)).await {
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
        self.discard_replaced();
        Ok(self.size)
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
    /// Cut off by its client, the upload is finished on its behalf with
    /// every byte received, unless another upload has taken the file since
    /// (its resumption on another node, say). Refused (by the store or the
    /// quota), it keeps its last checkpoint.
    fn drop(&mut self) {
        let Some(mut upload) = self.upload.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if upload.settled {
            return;
        }
        upload.settled = true;
        runtime.spawn(async move {
            let path = upload.target.path.clone();
            if upload.parts.is_none() && !upload.still_found() {
                return;
            }
            match upload.finish().await {
                Ok(size) => {
                    tracing::info!(%path, size, "upload cut off; what was received is kept")
                }
                Err(FsError::Superseded) => {
                    tracing::info!(%path, "upload cut off; a newer upload has the file")
                }
                Err(e) => tracing::warn!(%path,
                    "upload cut off; the file keeps its last checkpoint: {e}"),
            }
        });
    }
}

impl Upload {
    /// Whether the end may replace only what the upload found: it is being
    /// finished for a vanished client, or one that did not confirm its end.
    fn fenced(&self) -> bool {
        self.settled || self.unconfirmed
    }

    /// Whether the file is still the one this upload found: a single PUT
    /// cannot be fenced, so a cut small upload looks before it stores.
    fn still_found(&self) -> bool {
        let reader = self.target.node.reader();
        let path = &self.target.path;
        let parent = path.rsplit_once('/').map_or("/", |(dir, _)| dir);
        let (Ok(file), Ok(dir)) = (reader.lookup(path), reader.lookup(parent)) else {
            return false;
        };
        self.found == Found::Unchecked || self.found.matches(file.as_ref(), dir.as_ref())
    }
}

#[async_trait]
impl FileWriter for ObjectWriter {
    async fn write(&mut self, buf: &[u8]) -> Result<(), FsError> {
        let Some(upload) = self.upload.as_mut() else {
            return Err(finished());
        };
        let written = upload.write_bytes(buf).await;
        upload.settled |= written.is_err();
        written
    }

    async fn commit_unconfirmed(mut self: Box<Self>) -> Result<u64, FsError> {
        if let Some(upload) = self.upload.as_mut() {
            upload.unconfirmed = true;
        }
        self.commit().await
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, FsError> {
        let Some(mut upload) = self.upload.take() else {
            return Err(finished());
        };
        // Finished in a task of its own, which goes on if this future is
        // dropped (the client's session ending, say): the object is then
        // completed by one task, never re-run from half-way by `drop` while
        // a completion may still be in flight. A failure leaves the last
        // checkpoint for a resumption.
        match tokio::spawn(async move { upload.finish().await }).await {
            Ok(finished) => finished,
            Err(e) => Err(FsError::Io(std::io::Error::other(e))),
        }
    }
}

fn finished() -> FsError {
    FsError::Io(std::io::Error::other("upload already finished"))
}
