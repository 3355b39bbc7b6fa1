//! `ClusterFs` (DESIGN.md §3, §6): the engine's `FileSystem` over the
//! replicated namespace (Raft) and the chunk store. Every node serves every
//! file; a user's home is a directory of the namespace.

pub mod object_upkeep;
mod object_writer;
mod reader;
pub mod spill;
mod trash;
pub mod upkeep;
pub(crate) mod writer;

pub(crate) use writer::new_upload_id;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use wharf_cluster::{ClusterHandle, WriteError};
use wharf_ftp::{Entry, EntryKind, VirtualPath};
use wharf_server::fs::{
    DirPages, FileReader, FileSystem, FileWriter, FsError, Opener, Storage, WriteMode,
};
use wharf_server::User;
use wharf_store::events::Origin;
use wharf_store::records::{InodeRecord, ObjectRef, Quota, TrashEntry};
use wharf_store::{Announced, Command, CommandResult, FileWrite, Found, FsCommand, ObjectMove};

use crate::clock::{unix_now, unix_now_ms};
use crate::objects::{Objects, Opened};

pub struct ClusterStorage {
    pub node: Arc<ClusterHandle>,
    pub chunk_size: usize,
    /// `--storage s3`: files' contents are objects of this bucket, not chunks.
    pub objects: Option<Arc<Objects>>,
    forgetting: trash::Forgetting,
}

impl ClusterStorage {
    /// Starts the task that forgets removed objects (needs a runtime).
    pub fn new(node: Arc<ClusterHandle>, chunk_size: usize, objects: Option<Arc<Objects>>) -> Self {
        ClusterStorage {
            forgetting: trash::Forgetting::start(node.clone()),
            node,
            chunk_size,
            objects,
        }
    }
}

/// The most files a directory rename copies on object storage (each is a
/// server-side copy and a line of the rename's log entry).
const RENAME_MAX_OBJECTS: usize = 1000;

#[async_trait]
impl Storage for ClusterStorage {
    async fn open_home(
        &self,
        user: &User,
        opener: &Opener,
    ) -> Result<Arc<dyn FileSystem>, FsError> {
        // Read-index: this session sees everything committed before it began.
        self.node.catch_up().await;
        let home = namespace_path(&user.home);
        match self.node.reader().lookup(&home).map_err(store_error)? {
            Some(dir) if dir.is_dir() => {}
            Some(_) => return Err(FsError::NotADirectory),
            None => {
                let mkdir = FsCommand::Mkdir {
                    path: home.clone(),
                    parents: true,
                    mtime: unix_now(),
                };
                outcome(write(&self.node, mkdir).await?)?;
            }
        }
        let node_id = self.node.node_id();
        Ok(Arc::new(ClusterFs {
            node: self.node.clone(),
            origin: Origin {
                user: user.name.clone(),
                home: home.clone(),
                node: node_id,
                session: format!("{node_id}-{}", opener.session),
                client: opener.client.to_string(),
                time_ms: 0,
            },
            home,
            chunk_size: self.chunk_size,
            objects: self.objects.clone(),
            forgetting: self.forgetting.clone(),
            owner: user.name.clone(),
            quota: Quota {
                bytes: user.quota.bytes,
                files: user.quota.files,
            },
        }))
    }
}

/// A home such as `/home/alice` (relative homes are rooted at `/`).
fn namespace_path(home: &Path) -> String {
    let parts: Vec<String> = home
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    format!("/{}", parts.join("/"))
}

pub struct ClusterFs {
    node: Arc<ClusterHandle>,
    /// Who the session's changes are announced as (events).
    origin: Origin,
    home: String,
    chunk_size: usize,
    objects: Option<Arc<Objects>>,
    forgetting: trash::Forgetting,
    /// The logged-in user, charged for what they write.
    owner: String,
    quota: Quota,
}

fn store_error(e: wharf_store::StoreError) -> FsError {
    FsError::Io(std::io::Error::other(e.to_string()))
}

pub(crate) async fn write(
    node: &ClusterHandle,
    command: FsCommand,
) -> Result<CommandResult, FsError> {
    node.write(Command::Fs(command)).await.map_err(|e| match e {
        WriteError::Refused(why) => FsError::Io(std::io::Error::other(why)),
        other => FsError::Unavailable(other.to_string()),
    })
}

pub(crate) fn outcome(result: CommandResult) -> Result<(), FsError> {
    match result {
        CommandResult::Done => Ok(()),
        CommandResult::NotFound => Err(FsError::NotFound),
        CommandResult::AlreadyExists => Err(FsError::AlreadyExists),
        CommandResult::NotADirectory => Err(FsError::NotADirectory),
        CommandResult::IsADirectory => Err(FsError::IsADirectory),
        CommandResult::NotEmpty => Err(FsError::NotEmpty),
        CommandResult::QuotaExceeded => Err(FsError::QuotaExceeded),
        CommandResult::Superseded => Err(FsError::Superseded),
        // The writer answers it itself, by sending its whole list.
        CommandResult::Resend => Err(FsError::Io(std::io::Error::other(
            "a checkpoint was asked to resend its whole chunk list",
        ))),
        CommandResult::Invalid(why) => {
            tracing::info!("namespace change refused: {why}");
            Err(FsError::PermissionDenied)
        }
        // The group commit hands each change its own result; a batch's
        // results never reach a single change.
        CommandResult::Batch(_) => Err(FsError::Io(std::io::Error::other(
            "a single change was answered with a batch's results",
        ))),
    }
}

/// Deletes the object at `key` unless the file at `path` now keeps its
/// content there (a later upload to the same name took the key).
async fn forget_unless_used(node: &ClusterHandle, objects: &Objects, key: &str, path: &str) {
    if !trash::records_key(node, path, key) {
        objects.delete(key).await;
    }
}

fn entry(name: String, inode: &InodeRecord) -> Entry {
    let (kind, mode, perm) = if inode.is_dir() {
        (EntryKind::Dir, 0o755, "flcdmpe")
    } else {
        (EntryKind::File, 0o644, "adfrw")
    };
    Entry {
        name,
        kind,
        size: inode.size,
        modified: SystemTime::UNIX_EPOCH + Duration::from_secs(inode.mtime),
        mode,
        nlink: 1,
        unique: format!("c{:x}", inode.id),
        perm: perm.to_owned(),
    }
}

impl ClusterFs {
    fn path(&self, path: &VirtualPath) -> String {
        let mut out = self.home.trim_end_matches('/').to_owned();
        for part in path.components() {
            out.push('/');
            out.push_str(part);
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    fn target(&self, path: String) -> writer::Target {
        writer::Target {
            node: self.node.clone(),
            path,
            owner: self.owner.clone(),
            quota: self.quota,
            origin: self.origin.clone(),
            digest: self.node.reader().event_digest().unwrap_or_default(),
        }
    }

    /// The session as the origin of a change made now.
    fn origin(&self) -> Origin {
        Origin {
            time_ms: unix_now_ms(),
            ..self.origin.clone()
        }
    }

    fn lookup(&self, path: &VirtualPath) -> Result<InodeRecord, FsError> {
        self.lookup_path(&self.path(path))
    }

    fn lookup_path(&self, path: &str) -> Result<InodeRecord, FsError> {
        self.node
            .reader()
            .lookup(path)
            .map_err(store_error)?
            .ok_or(FsError::NotFound)
    }

    /// A rename on object storage: every file moved is copied to the key of
    /// its new path first, then one entry renames and switches them all to
    /// their copies, then the old objects go. Nothing is committed until
    /// every copy exists; a file changed meanwhile refuses the rename.
    async fn rename_objects(
        &self,
        objects: &Objects,
        from: String,
        to: String,
    ) -> Result<(), FsError> {
        let moving = self.lookup_path(&from)?;
        let mut files = Vec::new();
        self.files_under(&moving, &from, &mut files)?;
        let mut moves = Vec::new();
        let mut failed = None;
        if files.iter().any(|(file, _)| file.upload.is_some()) {
            // Its multipart upload completes at the key it began with.
            return Err(FsError::Unsupported(
                "a file still being uploaded cannot be renamed on object storage; finish or delete the upload first",
            ));
        }
        for (file, path) in &files {
            let Some(object) = &file.object else {
                continue;
            };
            let new_path = format!("{to}{}", path.get(from.len()..).unwrap_or_default());
            let copied = match objects.key(&new_path) {
                Ok(key) if key.as_ref() == object.key => continue,
                Ok(key) => objects.copy(object, &key, file.mtime).await,
                Err(e) => Err(e),
            };
            match copied {
                Ok(copy) => moves.push((
                    ObjectMove {
                        inode: file.id,
                        generation: file.generation,
                        object: copy,
                        from_key: object.key.clone(),
                    },
                    object.clone(),
                    new_path,
                )),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let answered = match failed {
            // Nothing was sent.
            Some(e) => Ok(Err(e)),
            None => {
                let rename = FsCommand::Rename {
                    from,
                    to,
                    objects: moves.iter().map(|(m, _, _)| m.clone()).collect(),
                };
                write(&self.node, self.announced(rename)).await.map(outcome)
            }
        };
        match answered {
            // The entry put the old keys in the trash.
            Ok(Ok(())) => {
                let old = moves.iter().map(|(m, old, _)| TrashEntry {
                    key: old.key.clone(),
                    etag: old.etag.clone(),
                    abort: String::new(),
                    inode: m.inode,
                    generation: m.generation,
                });
                trash::empty(&self.node, objects, old.collect(), &self.forgetting).await;
                Ok(())
            }
            // Refused: the copies are no file's.
            Ok(Err(e)) => {
                for (copy, _, new_path) in &moves {
                    forget_unless_used(&self.node, objects, &copy.object.key, new_path).await;
                }
                Err(e)
            }
            // No answer: the rename may have been committed, and its copies
            // be the files now. They stay (at worst unused objects).
            Err(e) => {
                tracing::warn!("a rename's outcome is unknown; its copies stay in the bucket: {e}");
                Err(e)
            }
        }
    }

    /// The bucket holds another object at a file's key than the one
    /// recorded: put there by an S3 tool, or by an upload whose node died
    /// between storing it and recording it. With no upload of the file in
    /// flight, the bucket's object becomes the file (what `wharf storage
    /// scan` records for an object Wharf did not write), so the file is
    /// served as S3 readers see it instead of failing every read.
    async fn take_replaced(
        &self,
        path: String,
        inode: &InodeRecord,
        current: &ObjectRef,
        modified: u64,
    ) -> Result<(), FsError> {
        let recorded = inode.object.as_ref().map(|o| o.etag.as_str());
        if inode.upload.is_some() {
            return Err(FsError::ObjectStorage(format!(
                "reading {}: the object was changed outside Wharf while an upload of it is in flight",
                current.key
            )));
        }
        if current.etag.is_empty() || recorded == Some(&current.etag) {
            return Err(FsError::ObjectStorage(format!(
                "reading {}: the store refused the recorded version ({}) yet holds it",
                current.key, current.etag
            )));
        }
        let mtime = if modified > 0 { modified } else { unix_now() };
        let change = self.record_object(path.clone(), inode, current.clone(), mtime);
        match write(&self.node, change).await? {
            CommandResult::Done => tracing::warn!(%path, key = %current.key, etag = %current.etag,
                size = current.size, "the bucket holds another object than the one recorded; the file is now that object"),
            // Another reader, or a writer, changed the file first.
            CommandResult::Superseded => {}
            other => outcome(other)?,
        }
        Ok(())
    }

    /// A change making `object` the content of the file `inode` at `path`,
    /// modified at `mtime`, unless the file changed since `inode` was read
    /// (`Superseded`). No quota check (the bytes are already in the bucket)
    /// and no event (nothing was uploaded).
    fn record_object(
        &self,
        path: String,
        inode: &InodeRecord,
        object: ObjectRef,
        mtime: u64,
    ) -> FsCommand {
        FsCommand::Write(FileWrite {
            upload: writer::new_upload_id(),
            path,
            chunks: Vec::new(),
            from: 0,
            mtime,
            node: self.node.node_id(),
            placed: Vec::new(),
            done: true,
            create_new: false,
            owner: inode.owner.clone(),
            quota: Quota::default(),
            found: Found::File {
                inode: inode.id,
                generation: inode.generation,
            },
            object: Some(object),
            multipart: None,
            inline: None,
        })
    }

    /// `MFMT` of a file kept as an object: the object gets the time as its
    /// `x-amz-meta-mtime` (a copy onto itself), then one entry records the
    /// copy's ETag and the time. A file changed meanwhile keeps its own.
    async fn set_object_mtime(
        &self,
        objects: &Objects,
        path: String,
        inode: &InodeRecord,
        object: &ObjectRef,
        mtime: u64,
    ) -> Result<(), FsError> {
        let updated = objects.set_mtime(object, mtime).await?;
        let change = self.record_object(path.clone(), inode, updated.clone(), mtime);
        if write(&self.node, change).await? != CommandResult::Superseded {
            return Ok(());
        }
        // A read in between found the copy and recorded it (with the
        // copy's own time): the file is still this copy, so record it
        // again with the time asked for. Anything else replaced the file.
        let now = self.lookup_path(&path)?;
        if now.object.as_ref().map(|o| &o.etag) != Some(&updated.etag) {
            return Err(FsError::ObjectStorage(format!(
                "setting the time of {}: the file was replaced meanwhile",
                object.key
            )));
        }
        outcome(write(&self.node, self.record_object(path, &now, updated, mtime)).await?)
    }

    /// The files at or under `inode` (at `path`), at most `RENAME_MAX_OBJECTS`.
    fn files_under(
        &self,
        inode: &InodeRecord,
        path: &str,
        out: &mut Vec<(InodeRecord, String)>,
    ) -> Result<(), FsError> {
        if !inode.is_dir() {
            if out.len() >= RENAME_MAX_OBJECTS {
                return Err(FsError::Unsupported(
                    "a directory of more than 1000 files cannot be renamed on object storage",
                ));
            }
            out.push((inode.clone(), path.to_owned()));
            return Ok(());
        }
        // A page at a time: a huge directory is refused after the limit,
        // not after reading it whole.
        let mut after: Option<String> = None;
        loop {
            let page = self
                .node
                .reader()
                .children_page(inode.id, after.as_deref(), LISTING_PAGE)
                .map_err(store_error)?;
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            after = Some(last.clone());
            for (name, child) in page {
                self.files_under(&child, &format!("{path}/{name}"), out)?;
            }
        }
    }

    /// Makes `change` and records its event in the same log entry.
    async fn change(&self, change: FsCommand) -> Result<(), FsError> {
        outcome(write(&self.node, self.announced(change)).await?)
    }

    /// `change` with the event it announces.
    fn announced(&self, change: FsCommand) -> FsCommand {
        FsCommand::Announced(Box::new(Announced {
            change,
            origin: self.origin(),
            upload: None,
        }))
    }
}

#[async_trait]
impl FileSystem for ClusterFs {
    async fn metadata(&self, path: &VirtualPath) -> Result<Entry, FsError> {
        let inode = self.lookup(path)?;
        let name = path.file_name().unwrap_or("/").to_owned();
        Ok(entry(name, &inode))
    }

    async fn list(&self, dir: &VirtualPath) -> Result<Vec<Entry>, FsError> {
        let inode = self.lookup(dir)?;
        if !inode.is_dir() {
            return Err(FsError::NotADirectory);
        }
        let children = self.node.reader().children(inode.id).map_err(store_error)?;
        Ok(children
            .into_iter()
            .map(|(name, inode)| entry(name, &inode))
            .collect())
    }

    async fn list_pages(&self, dir: &VirtualPath) -> Result<Box<dyn DirPages>, FsError> {
        let inode = self.lookup(dir)?;
        if !inode.is_dir() {
            return Err(FsError::NotADirectory);
        }
        Ok(Box::new(ClusterDirPages {
            node: self.node.clone(),
            dir: inode.id,
            after: None,
        }))
    }

    async fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<FileReader, FsError> {
        let inode = self.lookup(path)?;
        if inode.is_dir() {
            return Err(FsError::IsADirectory);
        }
        if offset > inode.size {
            return Err(FsError::InvalidOffset);
        }
        if let Some(objects) = &self.objects {
            let path = self.path(path);
            return match &inode.object {
                // During an overwrite, the file's object is still the old one.
                Some(object) => match objects.open(object, offset, None).await? {
                    Opened::Bytes(bytes) => Ok(bytes),
                    Opened::Replaced(current, modified) => {
                        self.take_replaced(path, &inode, &current, modified).await?;
                        if offset > current.size {
                            return Err(FsError::InvalidOffset);
                        }
                        objects.read(&current, offset, None).await
                    }
                },
                // A first upload in flight: its parts cannot be read yet.
                None if inode.upload.is_some() => Err(FsError::Unsupported(
                    "the file is still being uploaded; it can be read once its upload ends",
                )),
                None => Ok(Box::new(tokio::io::empty())),
            };
        }
        let chunks = self
            .node
            .reader()
            .file_chunks(&inode)
            .map_err(store_error)?;
        Ok(Box::new(reader::ChunkReader::new(
            self.node.clone(),
            chunks,
            offset,
        )))
    }

    async fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<Box<dyn FileWriter>, FsError> {
        let target = self.path(path);
        let existing = self.node.reader().lookup(&target).map_err(store_error)?;
        if existing.as_ref().is_some_and(|i| i.is_dir()) {
            return Err(FsError::IsADirectory);
        }
        let parent = target.rsplit_once('/').map_or("/", |(p, _)| p);
        let dir = self
            .node
            .reader()
            .lookup(if parent.is_empty() { "/" } else { parent })
            .map_err(store_error)?;
        let found = wharf_store::Found::of(existing.as_ref(), dir.as_ref());
        if let Some(objects) = &self.objects {
            let writer = object_writer::ObjectWriter::open(
                self.target(target),
                objects.clone(),
                mode,
                existing,
                found,
            )
            .await?;
            return Ok(Box::new(writer));
        }
        let writer =
            writer::UploadWriter::open(self.target(target), self.chunk_size, mode, existing, found)
                .await?;
        Ok(Box::new(writer))
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), FsError> {
        let (from, to) = (self.path(from), self.path(to));
        if let Some(objects) = &self.objects {
            return self.rename_objects(objects, from, to).await;
        }
        self.change(FsCommand::Rename {
            from,
            to,
            objects: Vec::new(),
        })
        .await
    }

    async fn delete(&self, path: &VirtualPath) -> Result<(), FsError> {
        let path = self.path(path);
        let Some(objects) = &self.objects else {
            return self.change(FsCommand::Remove { path }).await;
        };
        // What the entry puts in the trash, as the file is now: its object
        // and the multipart upload of an upload in flight.
        let file = self.lookup_path(&path)?;
        let entry = |key: &str, etag: &str, abort: &str| TrashEntry {
            key: key.to_owned(),
            etag: etag.to_owned(),
            abort: abort.to_owned(),
            inode: file.id,
            generation: file.generation,
        };
        let mut trashed: Vec<TrashEntry> = (file.object.iter())
            .map(|o| entry(&o.key, &o.etag, ""))
            .collect();
        if let Some(id) = &file.upload {
            if let Some(m) = self
                .node
                .reader()
                .upload(id)
                .map_err(store_error)?
                .and_then(|u| u.multipart)
            {
                trashed.push(entry(&m.key, "", &m.id));
            }
        }
        self.change(FsCommand::Remove { path: path.clone() })
            .await?;
        if file.object.is_none() {
            // An empty file left by a cut upload: whatever an earlier file
            // left at its key.
            if let Ok(key) = objects.key(&path) {
                forget_unless_used(&self.node, objects, key.as_ref(), &path).await;
            }
        }
        trash::empty(&self.node, objects, trashed, &self.forgetting).await;
        Ok(())
    }

    async fn mkdir(&self, path: &VirtualPath) -> Result<(), FsError> {
        self.change(FsCommand::Mkdir {
            path: self.path(path),
            parents: false,
            mtime: unix_now(),
        })
        .await
    }

    async fn rmdir(&self, path: &VirtualPath) -> Result<(), FsError> {
        if path.is_root() {
            return Err(FsError::PermissionDenied);
        }
        self.change(FsCommand::Rmdir {
            path: self.path(path),
        })
        .await
    }

    async fn set_modified(&self, path: &VirtualPath, time: SystemTime) -> Result<(), FsError> {
        let mtime = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let path = self.path(path);
        if let Some(objects) = &self.objects {
            let file = self.lookup_path(&path)?;
            // An upload in flight gets its time when it completes; an empty
            // file has no object.
            if let (Some(object), None) = (&file.object, &file.upload) {
                return self
                    .set_object_mtime(objects, path, &file, object, mtime)
                    .await;
            }
        }
        let command = FsCommand::SetMtime { path, mtime };
        outcome(write(&self.node, command).await?)
    }
}

/// Entries of a directory per listing page: bounded memory for any size.
const LISTING_PAGE: usize = 1000;

/// A directory of the namespace read a page at a time, each page from where
/// the last ended (entries made or removed meanwhile may or may not show,
/// as with `readdir`).
struct ClusterDirPages {
    node: Arc<ClusterHandle>,
    dir: u64,
    /// The last name listed.
    after: Option<String>,
}

#[async_trait]
impl DirPages for ClusterDirPages {
    async fn next_page(&mut self) -> Result<Option<Vec<Entry>>, FsError> {
        let page = self
            .node
            .reader()
            .children_page(self.dir, self.after.as_deref(), LISTING_PAGE)
            .map_err(store_error)?;
        let Some((last, _)) = page.last() else {
            return Ok(None);
        };
        self.after = Some(last.clone());
        Ok(Some(
            page.into_iter()
                .map(|(name, inode)| entry(name, &inode))
                .collect(),
        ))
    }
}
