//! An upload into the cluster file system (DESIGN.md §6): bytes are cut into
//! chunks; each chunk is stored here and on R−1 peers (a few at once), and
//! checkpoints commit the file's durable chunks so far through Raft (from then on `SIZE` on any
//! node shows the durable offset and any node can resume). The end commits
//! the whole file; only then does the client get `226`.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::task::JoinHandle;
use wharf_blob::ChunkHash;
use wharf_cluster::ClusterHandle;
use wharf_server::fs::{FileWriter, FsError, WriteMode};
use wharf_store::events::{EventDigest, Origin, UploadFacts};
use wharf_store::records::{ChunkRef, InodeRecord, Quota};
use wharf_store::{Announced, CommandResult, FileWrite, Found, FsCommand, InlineBytes, NodeId};

use super::{outcome, write};
use crate::clock::{unix_now, unix_now_ms};
use crate::events::ContentDigest;

/// A chunk on its way to this node's disk and its replicas.
type Placing = JoinHandle<Result<(ChunkRef, Vec<NodeId>), FsError>>;

/// Chunks stored and replicated at once while the client keeps sending.
const MAX_IN_FLIGHT: usize = 3;
/// A chunk buffer's first size: enough for the small files of an ingest.
const SMALL_BUFFER: usize = 64 * 1024;
/// A checkpoint goes through Raft once this many chunks are durable since the
/// last one, or once this much time has passed.
const CHECKPOINT_CHUNKS: usize = 4;
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Where an upload goes and who pays for it.
pub struct Target {
    pub node: Arc<ClusterHandle>,
    pub path: String,
    pub owner: String,
    pub quota: Quota,
    /// The session the upload's `file.uploaded` event names.
    pub origin: Origin,
    /// The digest that event carries.
    pub digest: EventDigest,
}

/// The engine's handle on an upload. Dropped without `commit` (the client
/// vanished, the transfer was aborted or failed), it still keeps what was
/// received: a task finishes the upload with every byte that arrived, as a
/// file on disk keeps the bytes written before a cut.
pub struct UploadWriter {
    upload: Option<Upload>,
}

struct Upload {
    node: Arc<ClusterHandle>,
    upload: String,
    path: String,
    owner: String,
    quota: Quota,
    chunk_size: usize,
    create_new: bool,
    /// The file as this upload found it, checked once its client is gone.
    found: Found,
    /// The client vanished: the upload is finished on its behalf, unless the
    /// file changed since it began (a newer upload, perhaps its resumption
    /// on another node, must not be overwritten by this older one).
    abandoned: bool,
    /// The client ended the upload without TLS close_notify: finished as
    /// usual (and announced), but fenced like an abandoned one, since the
    /// client may have been cut off and have uploaded the file anew.
    unconfirmed: bool,
    /// The file's chunks as of the last checkpoint plus those placed since.
    chunks: Vec<ChunkRef>,
    /// How many of `chunks` this upload's last committed checkpoint left the
    /// file with; `None` before its first. The next checkpoint sends only
    /// the chunks after them.
    committed: Option<usize>,
    /// Replicas of the chunks placed since the last checkpoint.
    placed: Vec<(ChunkHash, Vec<NodeId>)>,
    /// The last chunk's bytes when it is small enough to travel inside the
    /// upload's last write instead of being placed before it.
    inline: Option<InlineBytes>,
    buffer: Vec<u8>,
    /// In upload order: chunks become durable, and enter `chunks`, in order.
    in_flight: std::collections::VecDeque<Placing>,
    last_checkpoint: std::time::Instant,
    /// The digest of every byte of the file so far, for its event.
    digest: ContentDigest,
    origin: Origin,
    /// A file was at the path before (an overwrite, not a resumption).
    replaces: bool,
}

pub(crate) fn new_upload_id() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

impl UploadWriter {
    pub async fn open(
        target: Target,
        chunk_size: usize,
        mode: WriteMode,
        existing: Option<InodeRecord>,
        found: Found,
    ) -> Result<Self, FsError> {
        let upload = Upload::open(target, chunk_size, mode, existing, found).await?;
        Ok(Self {
            upload: Some(upload),
        })
    }
}

impl Drop for UploadWriter {
    fn drop(&mut self) {
        let Some(mut upload) = self.upload.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        upload.abandoned = true;
        runtime.spawn(async move {
            let path = upload.path.clone();
            match upload.finish().await {
                Ok(size) => {
                    tracing::info!(%path, size, "upload cut off; what was received is kept")
                }
                Err(e) => tracing::warn!(%path,
                    "upload cut off; the file keeps its last checkpoint: {e}"),
            }
        });
    }
}

impl Upload {
    async fn open(
        target: Target,
        chunk_size: usize,
        mode: WriteMode,
        existing: Option<InodeRecord>,
        found: Found,
    ) -> Result<Self, FsError> {
        let mut writer = Self {
            node: target.node,
            upload: new_upload_id(),
            path: target.path,
            owner: target.owner,
            quota: target.quota,
            chunk_size,
            create_new: mode == WriteMode::CreateNew,
            found,
            abandoned: false,
            unconfirmed: false,
            chunks: Vec::new(),
            committed: None,
            placed: Vec::new(),
            inline: None,
            buffer: Vec::new(),
            in_flight: std::collections::VecDeque::new(),
            last_checkpoint: std::time::Instant::now(),
            digest: ContentDigest::new(target.digest),
            origin: target.origin,
            replaces: existing.is_some() && mode == WriteMode::Truncate,
        };
        let size = existing.as_ref().map_or(0, |i| i.size);
        match mode {
            WriteMode::Truncate => {}
            WriteMode::CreateNew => {
                if existing.is_some() {
                    return Err(FsError::AlreadyExists);
                }
                // Claim the name now, so a second STOU picks another one.
                writer.checkpoint(false).await?;
            }
            WriteMode::Append => writer.keep(existing, size).await?,
            WriteMode::At(offset) if offset > size => return Err(FsError::InvalidOffset),
            WriteMode::At(offset) => writer.keep(existing, offset).await?,
        }
        Ok(writer)
    }

    /// Starts from the first `offset` bytes of the existing file: whole
    /// chunks are kept as they are; a chunk cut by `offset` is fetched and
    /// its head becomes the start of the first new chunk.
    async fn keep(&mut self, existing: Option<InodeRecord>, offset: u64) -> Result<(), FsError> {
        let Some(inode) = existing else {
            return Ok(());
        };
        let chunks = self
            .node
            .reader()
            .file_chunks(&inode)
            .map_err(|e| FsError::Io(std::io::Error::other(e)))?;
        let mut kept = 0u64;
        for chunk in chunks {
            if kept == offset {
                break;
            }
            // A whole kept chunk is read only for the digest, which covers the
            // kept part too; a chunk cut by `offset` is read for its head.
            if kept + chunk.len <= offset && !self.digest.wanted() {
                kept += chunk.len;
                self.chunks.push(chunk);
                continue;
            }
            let data = self
                .node
                .read_chunk(chunk.hash)
                .await
                .map_err(|e| FsError::Io(std::io::Error::other(e)))?;
            if kept + chunk.len <= offset {
                kept += chunk.len;
                self.digest.update(&data);
                self.chunks.push(chunk);
                continue;
            }
            let head = data.get(..(offset - kept) as usize).unwrap_or(&data);
            self.digest.update(head);
            self.buffer.extend_from_slice(head);
            break;
        }
        Ok(())
    }

    // Every step below is cancel-safe (the engine may drop an upload at any
    // await): bytes leave the buffer only when their chunk task starts, a chunk
    // leaves the queue only once it is durable, and the replicas a checkpoint
    // reports are forgotten only once it is committed. Dropped half-way, the
    // upload can still be finished from where it stands.

    /// Waits for the oldest chunk in flight and adds it to the file.
    async fn settle(&mut self) -> Result<(), FsError> {
        let Some(placing) = self.in_flight.front_mut() else {
            return Ok(());
        };
        let placed = placing.await;
        self.in_flight.pop_front();
        let (chunk, nodes) = placed.map_err(|e| FsError::Io(std::io::Error::other(e)))??;
        self.placed.push((chunk.hash, nodes));
        self.chunks.push(chunk);
        Ok(())
    }

    async fn checkpoint(&mut self, done: bool) -> Result<(), FsError> {
        let from = self.committed.unwrap_or(0).min(self.chunks.len());
        match write(&self.node, self.checkpoint_command(done, from)).await? {
            // The file no longer ends where our last checkpoint left it (it
            // was replaced, or that checkpoint's answer was lost).
            CommandResult::Resend if from > 0 => {
                outcome(write(&self.node, self.checkpoint_command(done, 0)).await?)?
            }
            result => outcome(result)?,
        }
        self.committed = Some(self.chunks.len());
        self.placed.clear();
        self.last_checkpoint = std::time::Instant::now();
        Ok(())
    }

    fn checkpoint_command(&self, done: bool, from: usize) -> FsCommand {
        let write = self.file_write(done, from);
        // The end of an upload the client saw through is announced; one cut
        // off keeps its bytes quietly (its resumption will be announced).
        if !done || self.abandoned {
            return write;
        }
        FsCommand::Announced(Box::new(Announced {
            change: write,
            origin: Origin {
                time_ms: unix_now_ms(),
                ..self.origin.clone()
            },
            upload: Some(UploadFacts {
                sha256: self.digest.hex(),
                replaced: self.replaces,
            }),
        }))
    }

    fn file_write(&self, done: bool, from: usize) -> FsCommand {
        FsCommand::Write(FileWrite {
            upload: self.upload.clone(),
            path: self.path.clone(),
            chunks: self.chunks.get(from..).unwrap_or_default().to_vec(),
            from: from as u64,
            mtime: unix_now(),
            node: self.node.node_id(),
            placed: self.placed.clone(),
            done,
            create_new: self.create_new,
            owner: self.owner.clone(),
            quota: self.quota,
            // A live upload is the last writer, as with any FTP server.
            found: if self.abandoned || self.unconfirmed {
                self.found
            } else {
                Found::Unchecked
            },
            object: None,
            multipart: None,
            inline: self.inline.clone().map(Box::new),
        })
    }

    /// Sends the buffered chunk on its way. With `MAX_IN_FLIGHT` chunks
    /// already travelling, the oldest is waited for first; durable chunks are
    /// checkpointed every `CHECKPOINT_CHUNKS` chunks or `CHECKPOINT_INTERVAL`.
    async fn place_buffer(&mut self) -> Result<(), FsError> {
        while self.in_flight.len() >= MAX_IN_FLIGHT {
            self.settle().await?;
        }
        if self.placed.len() >= CHECKPOINT_CHUNKS
            || (!self.placed.is_empty() && self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL)
        {
            self.checkpoint(false).await?;
        }
        let data = std::mem::take(&mut self.buffer);
        let placing = tokio::spawn(place_chunk(self.node.clone(), data));
        self.in_flight.push_back(placing);
        Ok(())
    }
}

/// Hashes a chunk, then stores it here (fsynced) and on R−1 peers at the same
/// time: one buffer serves the local write and every replica's request.
async fn place_chunk(
    node: Arc<ClusterHandle>,
    data: Vec<u8>,
) -> Result<(ChunkRef, Vec<NodeId>), FsError> {
    let (hash, data) = tokio::task::spawn_blocking(move || (ChunkHash::of(&data), data))
        .await
        .map_err(|e| FsError::Io(std::io::Error::other(e)))?;
    let data = bytes::Bytes::from(data);
    let len = data.len() as u64;
    let store = node.chunk_store().clone();
    let local = tokio::task::spawn_blocking({
        let data = data.clone();
        move || store.put_hashed(&hash, &data)
    });
    let copies = node.replication_factor().saturating_sub(1);
    let peers = if copies > 0 {
        node.replicate(hash, data, copies).await
    } else {
        Vec::new()
    };
    local
        .await
        .map_err(|e| FsError::Io(std::io::Error::other(e)))??;
    if peers.len() < copies {
        tracing::warn!(%hash, placed = peers.len() + 1, wanted = copies + 1,
            "chunk under-replicated; the leader will repair it");
    }
    let nodes = std::iter::once(node.node_id()).chain(peers).collect();
    Ok((ChunkRef { hash, len }, nodes))
}

impl Upload {
    /// Grows the chunk buffer for `more` bytes: a small file's buffer stays
    /// small (no whole chunk allocated per 4 KiB upload), and a large one is
    /// reallocated once, to the chunk size, when it outgrows that.
    fn make_room(&mut self, more: usize) {
        let needed = self.buffer.len() + more;
        if needed > self.buffer.capacity() {
            let size = if needed <= SMALL_BUFFER {
                SMALL_BUFFER
            } else {
                self.chunk_size
            };
            self.buffer
                .reserve_exact(size.min(self.chunk_size) - self.buffer.len());
        }
    }

    /// Makes the buffer the file's last chunk, sent inside the last write
    /// (docs/design/small-files.md): the voters listed as its replicas keep
    /// the bytes when they apply that write, and nothing is placed beforehand.
    fn inline_buffer(&mut self) {
        let data = std::mem::take(&mut self.buffer);
        let chunk = ChunkRef {
            hash: ChunkHash::of(&data),
            len: data.len() as u64,
        };
        self.placed
            .push((chunk.hash, self.node.inline_replicas(&chunk.hash)));
        self.chunks.push(chunk);
        self.inline = Some(InlineBytes(data));
    }

    async fn write(&mut self, mut buf: &[u8]) -> Result<(), FsError> {
        while !buf.is_empty() {
            if self.buffer.len() == self.chunk_size {
                self.place_buffer().await?;
            }
            let take = (self.chunk_size - self.buffer.len()).min(buf.len());
            self.make_room(take);
            let (head, rest) = buf.split_at_checked(take).unwrap_or((buf, &[]));
            self.digest.update(head);
            self.buffer.extend_from_slice(head);
            buf = rest;
        }
        Ok(())
    }

    /// Places what is buffered, waits for every chunk and commits the file.
    /// Run again after being dropped half-way, it completes the same file.
    async fn finish(&mut self) -> Result<u64, FsError> {
        if !self.buffer.is_empty() {
            if self.buffer.len() <= self.node.inline_max() {
                while !self.in_flight.is_empty() {
                    self.settle().await?;
                }
                self.inline_buffer();
            } else {
                self.place_buffer().await?;
            }
        }
        while !self.in_flight.is_empty() {
            self.settle().await?;
        }
        self.checkpoint(true).await?;
        Ok(self.chunks.iter().map(|c| c.len).sum())
    }
}

#[async_trait]
impl FileWriter for UploadWriter {
    async fn write(&mut self, buf: &[u8]) -> Result<(), FsError> {
        match self.upload.as_mut() {
            Some(upload) => upload.write(buf).await,
            None => Err(FsError::Io(std::io::Error::other(
                "upload already finished",
            ))),
        }
    }

    async fn commit_unconfirmed(mut self: Box<Self>) -> Result<u64, FsError> {
        if let Some(upload) = self.upload.as_mut() {
            upload.unconfirmed = true;
        }
        self.commit().await
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, FsError> {
        let Some(upload) = self.upload.as_mut() else {
            return Err(FsError::Io(std::io::Error::other(
                "upload already finished",
            )));
        };
        let finished = upload.finish().await;
        // Done, or failed for good: nothing is left for `drop` to finish. (A
        // commit dropped half-way leaves the upload here, and `drop` goes on.)
        self.upload = None;
        finished
    }
}
