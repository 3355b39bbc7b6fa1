//! The cluster file system's namespace in the state machine: `inodes`,
//! `dirents` (`parent inode ‖ name → child inode`), `extents` (`inode ‖
//! position → chunk`, a file's content in order), `uploads` and `chunks`
//! (replicas and reference counts). Applying an [`FsCommand`] resolves its
//! paths against the tables as they are at that point of the log.

use std::collections::{BTreeMap, HashMap};

use rocksdb::{WriteBatch, DB};

use crate::chunk_health::{entry_key, ChunkState, CHUNK_CENSUS, CHUNK_STATES};
use crate::command::{
    Announced, CommandResult, FileWrite, Found, FsCommand, Happened, ObjectMove, IMPORTED,
};
use crate::compact::{self, Record};
use crate::error::StoreError;
use crate::events::{
    home_path, user_path, EventKind, EventRecord, UploadFacts, ANNOUNCED, EVENTS, NEXT_EVENT,
};
use crate::inline;
use crate::parts::{self, part_key, Claim};
use crate::records::{
    ChunkHash, ChunkRecord, ChunkRef, InodeKind, InodeRecord, MultipartState, ObjectRef,
    PartRecord, TrashEntry, UploadRecord, UsageRecord, ROOT_INODE,
};
use crate::table::cf;

const INODES: &str = "inodes";
const DIRENTS: &str = "dirents";
const UPLOADS: &str = "uploads";
const CHUNKS: &str = "chunks";
const EXTENTS: &str = "extents";
const USAGE: &str = "usage";
const PARTS: &str = "parts";
const OBJECT_TRASH: &str = "object_trash";
const SETTINGS: &str = "settings";
const NEXT_INODE: &[u8] = b"fs.next_inode";

/// The components of an absolute path; `None` for `.`, `..`, NUL or an
/// empty name in the middle (callers normalise paths before they get here).
pub fn components(path: &str) -> Option<Vec<&str>> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let bad = |p: &&str| *p == "." || *p == ".." || p.contains('\0');
    (!parts.iter().any(bad)).then_some(parts)
}

pub fn extent_key(inode: u64, position: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&inode.to_be_bytes());
    key[8..].copy_from_slice(&position.to_be_bytes());
    key
}

pub fn dirent_key(parent: u64, name: &str) -> Vec<u8> {
    let mut key = parent.to_be_bytes().to_vec();
    key.extend_from_slice(name.as_bytes());
    key
}

/// Reads that see the writes made earlier in the same log entry.
pub(crate) struct Txn<'a> {
    db: &'a DB,
    batch: &'a mut WriteBatch,
    overlay: HashMap<(&'static str, Vec<u8>), Option<Vec<u8>>>,
}

impl<'a> Txn<'a> {
    pub(crate) fn new(db: &'a DB, batch: &'a mut WriteBatch) -> Self {
        Self {
            db,
            batch,
            overlay: HashMap::new(),
        }
    }

    fn get<T: Record>(&self, t: &'static str, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.overlay.get(&(t, key.to_vec())) {
            Some(Some(bytes)) => Ok(Some(T::from_bytes(bytes)?)),
            Some(None) => Ok(None),
            None => compact::get(self.db, t, key),
        }
    }

    fn put<T: Record>(&mut self, t: &'static str, key: &[u8], value: &T) -> Result<(), StoreError> {
        let bytes = value.to_bytes()?;
        self.batch.put_cf(cf(self.db, t)?, key, &bytes);
        self.overlay.insert((t, key.to_vec()), Some(bytes));
        Ok(())
    }

    fn delete(&mut self, t: &'static str, key: &[u8]) -> Result<(), StoreError> {
        self.batch.delete_cf(cf(self.db, t)?, key);
        self.overlay.insert((t, key.to_vec()), None);
        Ok(())
    }

    fn has_children(&self, dir: u64) -> Result<bool, StoreError> {
        let prefix = dir.to_be_bytes();
        let in_overlay = self
            .overlay
            .iter()
            .any(|((t, k), v)| *t == DIRENTS && k.starts_with(&prefix) && v.is_some());
        if in_overlay {
            return Ok(true);
        }
        let handle = cf(self.db, DIRENTS)?;
        for item in self.db.prefix_iterator_cf(handle, prefix) {
            let (key, _) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            if !matches!(self.overlay.get(&(DIRENTS, key.to_vec())), Some(None)) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The inodes named in directory `dir`, as this entry sees them.
    fn child_ids(&self, dir: u64) -> Result<Vec<u64>, StoreError> {
        let prefix = dir.to_be_bytes();
        let mut keys = std::collections::BTreeSet::new();
        let handle = cf(self.db, DIRENTS)?;
        for item in self.db.prefix_iterator_cf(handle, prefix) {
            let (key, _) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            keys.insert(key.to_vec());
        }
        for (t, key) in self.overlay.keys() {
            if *t == DIRENTS && key.starts_with(&prefix) {
                keys.insert(key.clone());
            }
        }
        let mut ids = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(id) = self.get::<u64>(DIRENTS, &key)? {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// The chunks of `file` from position `from` on, as this entry sees them.
    fn chunks_from(&self, file: &InodeRecord, from: u64) -> Result<Vec<ChunkRef>, StoreError> {
        if file.extents == 0 {
            return Ok(file.chunks.iter().skip(from as usize).cloned().collect());
        }
        let mut found = BTreeMap::new();
        let handle = cf(self.db, EXTENTS)?;
        let start = extent_key(file.id, from);
        let mode = rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward);
        for item in self.db.iterator_cf(handle, mode) {
            let (key, value) = item?;
            if !key.starts_with(&file.id.to_be_bytes()) {
                break;
            }
            found.insert(key.to_vec(), ChunkRef::from_bytes(&value)?);
        }
        let prefix = file.id.to_be_bytes();
        for ((t, key), value) in &self.overlay {
            if *t != EXTENTS || !key.starts_with(&prefix) || key.as_slice() < start.as_slice() {
                continue;
            }
            match value {
                Some(bytes) => found.insert(key.clone(), ChunkRef::from_bytes(bytes)?),
                None => found.remove(key),
            };
        }
        Ok(found
            .into_values()
            .take((file.extents.saturating_sub(from)) as usize)
            .collect())
    }

    /// Makes `file`'s content its first `from` chunks (`kept`, when they are
    /// still inline in a record of an earlier release) followed by `chunks`,
    /// in `extents`; `replaced` are the chunks it had from `from` on.
    fn set_chunks(
        &mut self,
        file: &mut InodeRecord,
        from: u64,
        kept: &[ChunkRef],
        replaced: usize,
        chunks: &[ChunkRef],
    ) -> Result<(), StoreError> {
        for position in from..from + replaced as u64 {
            if file.extents > 0 {
                self.delete(EXTENTS, &extent_key(file.id, position))?;
            }
        }
        if file.extents == 0 {
            for (position, chunk) in kept.iter().enumerate() {
                self.put(EXTENTS, &extent_key(file.id, position as u64), chunk)?;
            }
        }
        for (i, chunk) in chunks.iter().enumerate() {
            self.put(EXTENTS, &extent_key(file.id, from + i as u64), chunk)?;
        }
        file.chunks = Vec::new();
        file.extents = from + chunks.len() as u64;
        Ok(())
    }

    fn inode(&self, id: u64) -> Result<Option<InodeRecord>, StoreError> {
        match self.get(INODES, &id.to_be_bytes())? {
            None if id == ROOT_INODE => Ok(Some(InodeRecord::root())),
            other => Ok(other),
        }
    }

    /// Stores `inode`. A key it records is live: out of the trash.
    fn put_inode(&mut self, inode: &InodeRecord) -> Result<(), StoreError> {
        if let Some(object) = &inode.object {
            let live = TrashEntry {
                key: object.key.clone(),
                ..TrashEntry::default()
            };
            let row = live.row_key();
            if self.get::<TrashEntry>(OBJECT_TRASH, &row)?.is_some() {
                self.delete(OBJECT_TRASH, &row)?;
            }
        }
        self.put(INODES, &inode.id.to_be_bytes(), inode)
    }

    /// Queues what `file` kept in the bucket for removal: `object`, or the
    /// multipart upload `multipart` at `key` it was receiving.
    fn trash(
        &mut self,
        file: &InodeRecord,
        key: &str,
        object: Option<&ObjectRef>,
        multipart: Option<&str>,
    ) -> Result<(), StoreError> {
        let entry = TrashEntry {
            key: key.to_owned(),
            etag: object.map(|o| o.etag.clone()).unwrap_or_default(),
            abort: multipart.unwrap_or_default().to_owned(),
            inode: file.id,
            generation: file.generation,
        };
        self.put(OBJECT_TRASH, &entry.row_key(), &entry)
    }

    /// A name left directory `dir` (see `Found::Absent`).
    fn note_removal(&mut self, dir: u64) -> Result<(), StoreError> {
        if let Some(mut d) = self.inode(dir)? {
            d.generation += 1;
            self.put_inode(&d)?;
        }
        Ok(())
    }

    fn child(&self, parent: u64, name: &str) -> Result<Option<u64>, StoreError> {
        self.get(DIRENTS, &dirent_key(parent, name))
    }

    fn allocate_inode(&mut self) -> Result<u64, StoreError> {
        let next: u64 = self
            .get::<String>(SETTINGS, NEXT_INODE)?
            .and_then(|s| s.parse().ok())
            .unwrap_or(ROOT_INODE + 1);
        self.put(SETTINGS, NEXT_INODE, &(next + 1).to_string())?;
        Ok(next)
    }

    /// Records an event made by `event` from its id, the next in the cluster.
    fn record_event(&mut self, event: impl FnOnce(u64) -> EventRecord) -> Result<(), StoreError> {
        let id: u64 = self
            .get::<String>(SETTINGS, NEXT_EVENT)?
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        self.put(SETTINGS, NEXT_EVENT, &(id + 1).to_string())?;
        let event = event(id);
        if let EventKind::FileUploaded { upload, .. } = &event.kind {
            self.put(ANNOUNCED, upload.as_bytes(), &id)?;
        }
        self.put(EVENTS, &id.to_be_bytes(), &event)
    }

    /// The namespace path of `user`'s home (`/` for an unknown user).
    fn home_of(&self, user: &str) -> Result<String, StoreError> {
        let record: Option<crate::records::UserRecord> =
            crate::table::get(self.db, "users", user.as_bytes())?;
        Ok(record.map_or_else(|| "/".to_owned(), |u| home_path(&u.home)))
    }

    fn usage(&self, owner: &str) -> Result<UsageRecord, StoreError> {
        Ok(self.get(USAGE, owner.as_bytes())?.unwrap_or_default())
    }

    /// Charges (or, negative, credits) an account for its files.
    fn charge(&mut self, owner: &str, bytes: i64, files: i64) -> Result<(), StoreError> {
        if owner.is_empty() || (bytes == 0 && files == 0) {
            return Ok(());
        }
        let mut usage = self.usage(owner)?;
        usage.bytes = usage.bytes.saturating_add_signed(bytes);
        usage.files = usage.files.saturating_add_signed(files);
        self.put(USAGE, owner.as_bytes(), &usage)
    }

    /// Drops upload `id`'s record and, on object storage, its parts' rows.
    /// Forgets upload `id` and its parts; with `abandoned_by`, the file it
    /// was writing, its multipart upload goes to the trash (it will never
    /// complete).
    fn drop_upload(
        &mut self,
        id: &str,
        abandoned_by: Option<&InodeRecord>,
    ) -> Result<(), StoreError> {
        if let Some(record) = self.get::<UploadRecord>(UPLOADS, id.as_bytes())? {
            if let Some(multipart) = &record.multipart {
                for index in 0..multipart.parts {
                    self.delete(PARTS, &part_key(&multipart.id, index))?;
                }
                if let Some(file) = abandoned_by {
                    self.trash(file, &multipart.key, None, Some(&multipart.id))?;
                }
            }
        }
        self.delete(UPLOADS, id.as_bytes())
    }

    /// Drops a file's inode and what it holds: its upload record, its
    /// chunk references, its owner's usage.
    fn release_file(&mut self, file: &InodeRecord) -> Result<(), StoreError> {
        self.delete(INODES, &file.id.to_be_bytes())?;
        if let Some(upload) = &file.upload {
            self.drop_upload(upload, Some(file))?;
        }
        if let Some(object) = &file.object {
            self.trash(file, &object.key, Some(object), None)?;
        }
        let chunks = self.chunks_from(file, 0)?;
        for position in 0..file.extents {
            self.delete(EXTENTS, &extent_key(file.id, position))?;
        }
        let mut deltas = BTreeMap::new();
        chunk_deltas(&mut deltas, &chunks, -1);
        self.count_refs(deltas)?;
        self.charge(&file.owner, -(file.size as i64), -1)
    }

    /// Adds `delta` references to each chunk (a chunk appearing twice in a
    /// file counts twice); records of chunks that reach zero stay until the
    /// leader forgets them, so their replicas can be collected.
    fn count_refs(&mut self, deltas: BTreeMap<ChunkHash, (i64, u64)>) -> Result<(), StoreError> {
        for (hash, (delta, len)) in deltas {
            if delta == 0 {
                continue;
            }
            let before = self.get::<ChunkRecord>(CHUNKS, hash.as_bytes())?;
            let mut record = before.clone().unwrap_or(ChunkRecord {
                hash,
                len,
                replicas: Vec::new(),
                refs: 0,
            });
            record.refs = record.refs.saturating_add_signed(delta);
            self.put_chunk(before.as_ref(), &record)?;
        }
        Ok(())
    }

    /// Stores a chunk record and moves it to its state in `chunk_states`.
    fn put_chunk(
        &mut self,
        before: Option<&ChunkRecord>,
        after: &ChunkRecord,
    ) -> Result<(), StoreError> {
        self.put(CHUNKS, after.hash.as_bytes(), after)?;
        self.reindex_chunk(before, Some(after))
    }

    fn delete_chunk(&mut self, record: &ChunkRecord) -> Result<(), StoreError> {
        self.delete(CHUNKS, record.hash.as_bytes())?;
        self.reindex_chunk(Some(record), None)
    }

    /// Keeps `chunk_states` and `chunk_census` (see `chunk_health`) in step
    /// with a chunk record going from `before` to `after`.
    fn reindex_chunk(
        &mut self,
        before: Option<&ChunkRecord>,
        after: Option<&ChunkRecord>,
    ) -> Result<(), StoreError> {
        let from = before.map(|r| (ChunkState::of(r), r.hash));
        let to = after.map(|r| (ChunkState::of(r), r.hash));
        if from == to {
            return Ok(());
        }
        let states = cf(self.db, CHUNK_STATES)?;
        if let Some((state, hash)) = from {
            self.batch.delete_cf(states, entry_key(&state, &hash));
            self.recount(&state, -1)?;
        }
        if let Some((state, hash)) = to {
            self.batch.put_cf(states, entry_key(&state, &hash), []);
            self.recount(&state, 1)?;
        }
        Ok(())
    }

    fn recount(&mut self, state: &ChunkState, change: i64) -> Result<(), StoreError> {
        let key = state.key();
        let count = self.get::<u64>(CHUNK_CENSUS, &key)?.unwrap_or(0);
        match count.saturating_add_signed(change) {
            0 => self.delete(CHUNK_CENSUS, &key),
            n => self.put(CHUNK_CENSUS, &key, &n),
        }
    }
}

/// Where a path leads: its parent directory, its last name, and the inode
/// there (if any). The root has no parent.
struct Resolved<'p> {
    parent: u64,
    name: &'p str,
    target: Option<InodeRecord>,
}

enum Lookup<'p> {
    Found(Resolved<'p>),
    Root,
    /// An ancestor is missing or is a file.
    Fail(CommandResult),
}

fn resolve<'p>(txn: &Txn<'_>, path: &'p str) -> Result<Lookup<'p>, StoreError> {
    let Some(parts) = components(path) else {
        return Ok(Lookup::Fail(CommandResult::Invalid(format!(
            "bad path {path:?}"
        ))));
    };
    let Some((name, ancestors)) = parts.split_last() else {
        return Ok(Lookup::Root);
    };
    let mut dir = ROOT_INODE;
    for part in ancestors {
        let Some(id) = txn.child(dir, part)? else {
            return Ok(Lookup::Fail(CommandResult::NotFound));
        };
        match txn.inode(id)? {
            Some(inode) if inode.is_dir() => dir = id,
            Some(_) => return Ok(Lookup::Fail(CommandResult::NotADirectory)),
            None => return Ok(Lookup::Fail(CommandResult::NotFound)),
        }
    }
    let target = match txn.child(dir, name)? {
        Some(id) => txn.inode(id)?,
        None => None,
    };
    Ok(Lookup::Found(Resolved {
        parent: dir,
        name,
        target,
    }))
}

macro_rules! found {
    ($lookup:expr, $root:expr) => {
        match $lookup {
            Lookup::Found(r) => r,
            Lookup::Root => return Ok($root),
            Lookup::Fail(result) => return Ok(result),
        }
    };
}

fn chunk_deltas(
    deltas: &mut BTreeMap<ChunkHash, (i64, u64)>,
    chunks: &[crate::records::ChunkRef],
    sign: i64,
) {
    for c in chunks {
        let entry = deltas.entry(c.hash).or_insert((0, c.len));
        entry.0 += sign;
    }
}

pub(crate) fn apply(txn: &mut Txn<'_>, command: FsCommand) -> Result<CommandResult, StoreError> {
    match command {
        FsCommand::Mkdir {
            path,
            parents,
            mtime,
        } => mkdir(txn, &path, parents, mtime),
        FsCommand::Rmdir { path } => {
            let r = found!(
                resolve(txn, &path)?,
                CommandResult::Invalid("the root stays".into())
            );
            match r.target {
                None => Ok(CommandResult::NotFound),
                Some(t) if !t.is_dir() => Ok(CommandResult::NotADirectory),
                Some(t) if txn.has_children(t.id)? => Ok(CommandResult::NotEmpty),
                Some(t) => {
                    txn.delete(DIRENTS, &dirent_key(r.parent, r.name))?;
                    txn.delete(INODES, &t.id.to_be_bytes())?;
                    txn.note_removal(r.parent)?;
                    Ok(CommandResult::Done)
                }
            }
        }
        FsCommand::Remove { path } => {
            let r = found!(resolve(txn, &path)?, CommandResult::IsADirectory);
            match r.target {
                None => Ok(CommandResult::NotFound),
                Some(t) if t.is_dir() => Ok(CommandResult::IsADirectory),
                Some(t) => {
                    txn.delete(DIRENTS, &dirent_key(r.parent, r.name))?;
                    txn.release_file(&t)?;
                    txn.note_removal(r.parent)?;
                    Ok(CommandResult::Done)
                }
            }
        }
        FsCommand::Rename { from, to, objects } => rename(txn, &from, &to, &objects),
        FsCommand::SetMtime { path, mtime } => {
            let r = found!(resolve(txn, &path)?, CommandResult::Done);
            match r.target {
                None => Ok(CommandResult::NotFound),
                Some(mut t) => {
                    t.mtime = mtime;
                    txn.put_inode(&t)?;
                    Ok(CommandResult::Done)
                }
            }
        }
        FsCommand::Write(write) => write_file(txn, write),
        FsCommand::Happened(h) => {
            let Happened { origin, kind } = *h;
            if let EventKind::FileUploaded { upload, .. } = &kind {
                if txn.get::<u64>(ANNOUNCED, upload.as_bytes())?.is_some() {
                    // A retried entry: this upload's event exists.
                    return Ok(CommandResult::Done);
                }
            }
            txn.record_event(|id| origin.event(id, kind))?;
            Ok(CommandResult::Done)
        }
        FsCommand::ForgetUpload { id, time_ms } => {
            let Some(upload) = txn.get::<UploadRecord>(UPLOADS, id.as_bytes())? else {
                return Ok(CommandResult::NotFound);
            };
            txn.drop_upload(&id, None)?;
            let mut owner = String::new();
            if let Some(mut inode) = txn.inode(upload.inode)? {
                if inode.upload.as_deref() == Some(id.as_str()) {
                    inode.upload = None;
                    if upload.multipart.is_some() {
                        // Its parts are discarded: the file is its object
                        // again (or empty).
                        let kept = inode.object.as_ref().map_or(0, |o| o.size);
                        txn.charge(&inode.owner, kept as i64 - inode.size as i64, 0)?;
                        inode.size = kept;
                    }
                    txn.put_inode(&inode)?;
                }
                owner = inode.owner;
            }
            let home = txn.home_of(&owner)?;
            txn.record_event(|id| EventRecord {
                id,
                time_ms,
                node: upload.node,
                user: owner,
                session: String::new(),
                client: String::new(),
                kind: EventKind::UploadAbandoned {
                    path: user_path(&home, &upload.path),
                    durable_offset: upload.durable,
                },
            })?;
            Ok(CommandResult::Done)
        }
        FsCommand::Announced(announced) => announced_change(txn, *announced),
        FsCommand::SetReplicas { hash, replicas } => {
            let Some(before) = txn.get::<ChunkRecord>(CHUNKS, hash.as_bytes())? else {
                return Ok(CommandResult::NotFound);
            };
            let record = ChunkRecord {
                replicas,
                ..before.clone()
            };
            txn.put_chunk(Some(&before), &record)?;
            Ok(CommandResult::Done)
        }
        FsCommand::ForgetChunk { hash } => {
            match txn.get::<ChunkRecord>(CHUNKS, hash.as_bytes())? {
                Some(record) if record.refs == 0 => {
                    txn.delete_chunk(&record)?;
                    Ok(CommandResult::Done)
                }
                Some(_) => Ok(CommandResult::Invalid("the chunk is in use".into())),
                None => Ok(CommandResult::NotFound),
            }
        }
        FsCommand::ForgetTrash { entries } => {
            for entry in entries {
                let row = entry.row_key();
                if txn.get::<TrashEntry>(OBJECT_TRASH, &row)?.as_ref() == Some(&entry) {
                    txn.delete(OBJECT_TRASH, &row)?;
                }
            }
            Ok(CommandResult::Done)
        }
    }
}

/// What an announced change will announce, known before it is applied.
enum Planned {
    Nothing,
    Event(EventKind),
    /// The size and time come from the file once written.
    Upload {
        path: String,
        upload: String,
        facts: UploadFacts,
    },
}

fn planned(change: &FsCommand, home: &str, upload: Option<UploadFacts>) -> Planned {
    let user = |path: &str| user_path(home, path);
    match change {
        FsCommand::Mkdir { path, .. } => Planned::Event(EventKind::DirCreated { path: user(path) }),
        FsCommand::Rmdir { path } => Planned::Event(EventKind::DirRemoved { path: user(path) }),
        FsCommand::Remove { path } => Planned::Event(EventKind::FileDeleted { path: user(path) }),
        FsCommand::Rename { from, to, .. } => Planned::Event(EventKind::FileRenamed {
            from: user(from),
            to: user(to),
        }),
        FsCommand::Write(w) if w.done => Planned::Upload {
            path: w.path.clone(),
            upload: w.upload.clone(),
            facts: upload.unwrap_or_default(),
        },
        _ => Planned::Nothing,
    }
}

/// Applies `a.change`; when it succeeds, records its event in the same
/// write.
fn announced_change(txn: &mut Txn<'_>, a: Announced) -> Result<CommandResult, StoreError> {
    let Announced {
        change,
        origin,
        upload,
    } = a;
    let mut planned = planned(&change, &origin.home, upload);
    if let Planned::Upload { upload, .. } = &planned {
        if txn.get::<u64>(ANNOUNCED, upload.as_bytes())?.is_some() {
            // This completion was committed before; its event exists.
            planned = Planned::Nothing;
        }
    }
    let result = apply(txn, change)?;
    if result != CommandResult::Done {
        return Ok(result);
    }
    let kind = match planned {
        Planned::Nothing => return Ok(result),
        Planned::Event(kind) => kind,
        Planned::Upload {
            path,
            upload,
            facts,
        } => {
            let Lookup::Found(Resolved {
                target: Some(file), ..
            }) = resolve(txn, &path)?
            else {
                return Ok(result);
            };
            EventKind::FileUploaded {
                path: user_path(&origin.home, &path),
                size: file.size,
                sha256: facts.sha256,
                mtime: file.mtime,
                replaced: facts.replaced,
                upload,
            }
        }
    };
    txn.record_event(|id| origin.event(id, kind))?;
    Ok(result)
}

fn new_dir(id: u64, mtime: u64) -> InodeRecord {
    InodeRecord {
        id,
        kind: InodeKind::Dir,
        size: 0,
        mtime,
        chunks: Vec::new(),
        extents: 0,
        upload: None,
        owner: String::new(),
        generation: 0,
        object: None,
    }
}

fn mkdir(
    txn: &mut Txn<'_>,
    path: &str,
    parents: bool,
    mtime: u64,
) -> Result<CommandResult, StoreError> {
    let Some(parts) = components(path) else {
        return Ok(CommandResult::Invalid(format!("bad path {path:?}")));
    };
    if parts.is_empty() {
        return Ok(if parents {
            CommandResult::Done
        } else {
            CommandResult::AlreadyExists
        });
    }
    let mut dir = ROOT_INODE;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match txn.child(dir, part)? {
            Some(id) => match txn.inode(id)? {
                Some(inode) if inode.is_dir() => {
                    if last && !parents {
                        return Ok(CommandResult::AlreadyExists);
                    }
                    dir = id;
                }
                Some(_) if last => return Ok(CommandResult::AlreadyExists),
                Some(_) => return Ok(CommandResult::NotADirectory),
                None => return Ok(CommandResult::NotFound),
            },
            None if !last && !parents => return Ok(CommandResult::NotFound),
            None => {
                let id = txn.allocate_inode()?;
                txn.put_inode(&new_dir(id, mtime))?;
                txn.put(DIRENTS, &dirent_key(dir, part), &id)?;
                dir = id;
            }
        }
    }
    Ok(CommandResult::Done)
}

fn is_within(txn: &Txn<'_>, ancestor: u64, path: &str) -> Result<bool, StoreError> {
    let Some(parts) = components(path) else {
        return Ok(false);
    };
    let mut dir = ROOT_INODE;
    for part in parts {
        match txn.child(dir, part)? {
            Some(id) if id == ancestor => return Ok(true),
            Some(id) => dir = id,
            None => return Ok(false),
        }
    }
    Ok(false)
}

fn rename(
    txn: &mut Txn<'_>,
    from: &str,
    to: &str,
    objects: &[ObjectMove],
) -> Result<CommandResult, StoreError> {
    let invalid = || CommandResult::Invalid("the root cannot move".into());
    let src = found!(resolve(txn, from)?, invalid());
    let Some(moving) = src.target else {
        return Ok(CommandResult::NotFound);
    };
    let dst = found!(resolve(txn, to)?, invalid());
    if txn.inode(dst.parent)?.is_none() {
        return Ok(CommandResult::NotFound);
    }
    if dst.parent == src.parent && dst.name == src.name {
        return Ok(CommandResult::Done);
    }
    if moving.is_dir() && (dst.parent == moving.id || is_within(txn, moving.id, to)?) {
        return Ok(CommandResult::Invalid(
            "a directory cannot move into itself".into(),
        ));
    }
    match &dst.target {
        Some(existing) if existing.is_dir() => return Ok(CommandResult::AlreadyExists),
        Some(_) if moving.is_dir() => return Ok(CommandResult::NotADirectory),
        _ => {}
    }
    // Every copy must still be of the file as it is: checked before anything
    // changes, so a refused rename leaves every table as it was.
    let mut moved = Vec::with_capacity(objects.len());
    for m in objects {
        match txn.inode(m.inode)? {
            Some(inode) if copied_from(&inode, m) => moved.push((
                inode.object.clone(),
                InodeRecord {
                    object: Some(m.object.clone()),
                    ..inode
                },
            )),
            _ => return Ok(CommandResult::Superseded),
        }
    }
    if moving.is_dir() && !objects.is_empty() && !moves_whole_subtree(txn, &moving, objects)? {
        return Ok(CommandResult::Superseded);
    }
    if let Some(existing) = &dst.target {
        txn.release_file(existing)?;
    }
    // The old objects first: a key both left and taken (files swapping
    // names within the move) ends live.
    for (old, inode) in &moved {
        if let Some(old) = old
            .as_ref()
            .filter(|o| Some(&o.key) != inode.object.as_ref().map(|n| &n.key))
        {
            txn.trash(inode, &old.key, Some(old), None)?;
        }
    }
    for (_, inode) in &moved {
        txn.put_inode(inode)?;
    }
    txn.delete(DIRENTS, &dirent_key(src.parent, src.name))?;
    txn.note_removal(src.parent)?;
    txn.put(DIRENTS, &dirent_key(dst.parent, dst.name), &moving.id)?;
    if let Some(upload) = &moving.upload {
        if let Some(mut record) = txn.get::<UploadRecord>(UPLOADS, upload.as_bytes())? {
            record.path = to.to_owned();
            txn.put(UPLOADS, upload.as_bytes(), &record)?;
        }
    }
    Ok(CommandResult::Done)
}

/// Entries a directory rename on object storage looks at, at most (the
/// renaming node copies at most 1,000 files).
const RENAME_WALK_MAX: usize = 10_000;

/// Whether `objects` moves every file under directory `dir` that has an
/// object, and none has an upload in flight: a file stored there while
/// the others were being copied would keep the key of its old path.
fn moves_whole_subtree(
    txn: &Txn<'_>,
    dir: &InodeRecord,
    objects: &[ObjectMove],
) -> Result<bool, StoreError> {
    let moved: std::collections::HashSet<u64> = objects.iter().map(|m| m.inode).collect();
    let mut dirs = vec![dir.id];
    let mut seen = 0;
    while let Some(d) = dirs.pop() {
        for id in txn.child_ids(d)? {
            seen += 1;
            if seen > RENAME_WALK_MAX {
                return Ok(false);
            }
            let Some(child) = txn.inode(id)? else {
                continue;
            };
            if child.is_dir() {
                dirs.push(child.id);
            } else if child.upload.is_some()
                || (child.object.is_some() && !moved.contains(&child.id))
            {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Whether `m` is a copy of `inode` as it is: the same generation, and
/// the key it was copied from still the file's (a rename does not change
/// the generation).
fn copied_from(inode: &InodeRecord, m: &ObjectMove) -> bool {
    let key = inode.object.as_ref().map(|o| o.key.as_str());
    !inode.is_dir()
        && inode.generation == m.generation
        && (m.from_key.is_empty() || key == Some(m.from_key.as_str()))
}

fn write_file(txn: &mut Txn<'_>, w: FileWrite) -> Result<CommandResult, StoreError> {
    if let Some(why) = w
        .inline
        .as_ref()
        .and_then(|b| inline::mismatch(&w.chunks, b))
    {
        return Ok(CommandResult::Invalid(why));
    }
    let r = found!(resolve(txn, &w.path)?, CommandResult::IsADirectory);
    let previous = match r.target {
        Some(t) if t.is_dir() => return Ok(CommandResult::IsADirectory),
        Some(t) if w.create_new && t.upload.as_deref() != Some(w.upload.as_str()) => {
            return Ok(CommandResult::AlreadyExists)
        }
        other => other,
    };
    if let Some(object) = w.object.as_ref().filter(|_| w.node == IMPORTED) {
        let deleted = TrashEntry {
            key: object.key.clone(),
            ..TrashEntry::default()
        };
        if txn
            .get::<TrashEntry>(OBJECT_TRASH, &deleted.row_key())?
            .is_some()
        {
            return Ok(CommandResult::Invalid(
                "deleted in Wharf; the bucket still holds its object, which will go".into(),
            ));
        }
    }
    // The upload in flight, if any.
    let pending = match previous.as_ref().and_then(|p| p.upload.as_deref()) {
        Some(upload) => txn.get::<UploadRecord>(UPLOADS, upload.as_bytes())?,
        None => None,
    };
    let (kept_parts, adopted) = match &w.multipart {
        None => (0, None),
        Some(m) => match parts::claim(m, &w.upload, w.done, pending.as_ref()) {
            Claim::Continue { kept, adopted } => (kept, adopted),
            Claim::Refused(result) => return Ok(result),
        },
    };
    let owned = adopted.is_some()
        || previous
            .as_ref()
            .is_some_and(|p| p.upload.as_deref() == Some(w.upload.as_str()));
    // A file on object storage: its bytes are an object or parts, not chunks.
    let object_file = previous.as_ref().is_some_and(|p| p.object.is_some())
        || pending.as_ref().is_some_and(|p| p.multipart.is_some());
    // Live uploads (`Unchecked`) skip this: no directory read per checkpoint.
    if !owned
        && w.found != Found::Unchecked
        && !w
            .found
            .matches(previous.as_ref(), txn.inode(r.parent)?.as_ref())
    {
        return Ok(CommandResult::Superseded);
    }
    // What the file keeps (its first `from` chunks) and what this write
    // replaces (the rest).
    let (kept, replaced) = match &previous {
        Some(p) => {
            if w.from > 0 && !(owned && p.chunk_count() == w.from) {
                return Ok(CommandResult::Resend);
            }
            let kept = match p.extents {
                0 => p
                    .chunks
                    .get(..w.from as usize)
                    .unwrap_or(&p.chunks)
                    .to_vec(),
                _ => Vec::new(),
            };
            (kept, txn.chunks_from(p, w.from)?)
        }
        None if w.from > 0 => return Ok(CommandResult::Resend),
        None => (Vec::new(), Vec::new()),
    };
    let replaced_bytes: u64 = replaced.iter().map(|c| c.len).sum();
    // An object file keeps nothing: its bytes are not chunks.
    let kept_bytes = previous
        .as_ref()
        .filter(|_| !object_file)
        .map_or(0, |p| p.size.saturating_sub(replaced_bytes));
    let size: u64 = match (&w.object, &w.multipart) {
        // An object replaces the whole file, whatever it was.
        (Some(object), _) if w.from > 0 || !w.chunks.is_empty() => {
            return Ok(CommandResult::Invalid(format!(
                "object {} written together with chunks",
                object.key
            )))
        }
        (Some(object), _) => object.size,
        (None, Some(m)) => kept_parts + m.parts.iter().map(|p| p.len).sum::<u64>(),
        (None, None) => kept_bytes + w.chunks.iter().map(|c| c.len).sum::<u64>(),
    };
    // Quota first: a refused write must leave every table as it was.
    let (old_bytes, old_file) = match &previous {
        Some(p) if p.owner == w.owner => (p.size as i64, 1),
        _ => (0, 0),
    };
    let grows = size as i64 - old_bytes;
    let new_files = 1 - old_file;
    if !w.owner.is_empty() && (grows > 0 || new_files > 0) {
        let usage = txn.usage(&w.owner)?;
        let bytes = usage.bytes.saturating_add_signed(grows);
        let files = usage.files + new_files as u64;
        if (w.quota.bytes > 0 && bytes > w.quota.bytes)
            || (w.quota.files > 0 && files > w.quota.files)
        {
            return Ok(CommandResult::QuotaExceeded);
        }
    }
    if let Some(p) = previous.as_ref().filter(|p| p.owner != w.owner) {
        txn.charge(&p.owner, -(p.size as i64), -1)?;
    }
    txn.charge(&w.owner, grows, new_files)?;
    let mut deltas = BTreeMap::new();
    chunk_deltas(&mut deltas, &w.chunks, 1);
    let id = match &previous {
        Some(p) => {
            chunk_deltas(&mut deltas, &replaced, -1);
            if let Some(other) = p.upload.as_ref().filter(|u| **u != w.upload) {
                if adopted.as_ref() == Some(other) {
                    // A resumption: the multipart upload and its parts are
                    // this upload's now.
                    txn.delete(UPLOADS, other.as_bytes())?;
                } else {
                    // Another upload to the same name: the later writer owns it now.
                    txn.drop_upload(other, Some(p))?;
                }
            }
            p.id
        }
        None => {
            let id = txn.allocate_inode()?;
            txn.put(DIRENTS, &dirent_key(r.parent, r.name), &id)?;
            id
        }
    };
    txn.count_refs(deltas)?;
    for (hash, nodes) in &w.placed {
        if let Some(before) = txn.get::<ChunkRecord>(CHUNKS, hash.as_bytes())? {
            let mut record = before.clone();
            for node in nodes {
                if !record.replicas.contains(node) {
                    record.replicas.push(*node);
                }
            }
            txn.put_chunk(Some(&before), &record)?;
        }
    }
    if let (Some(bytes), Some(last)) = (&w.inline, w.chunks.last()) {
        inline::keep(txn.db, txn.batch, &last.hash, bytes)?;
    }
    let mut inode = InodeRecord {
        id,
        kind: InodeKind::File,
        size,
        mtime: w.mtime,
        chunks: Vec::new(),
        extents: previous.as_ref().map_or(0, |p| p.extents),
        upload: (!w.done).then(|| w.upload.clone()),
        owner: w.owner.clone(),
        generation: previous.as_ref().map_or(1, |p| p.generation + 1),
        // While parts are being written, the file's object is the one it
        // had (an overwrite replaces it only when complete).
        object: match (&w.object, &w.multipart) {
            (None, Some(_)) if !w.done => previous.as_ref().and_then(|p| p.object.clone()),
            _ => w.object.clone(),
        },
    };
    txn.set_chunks(&mut inode, w.from, &kept, replaced.len(), &w.chunks)?;
    txn.put_inode(&inode)?;
    if w.done {
        txn.drop_upload(&w.upload, None)?;
    } else {
        let multipart = match w.multipart {
            Some(m) => Some(record_parts(txn, *m)?),
            None => None,
        };
        let record = UploadRecord {
            id: w.upload.clone(),
            path: w.path,
            inode: id,
            node: w.node,
            durable: size,
            heartbeat: w.mtime,
            multipart,
        };
        txn.put(UPLOADS, w.upload.as_bytes(), &record)?;
    }
    Ok(CommandResult::Done)
}

/// Adds a checkpoint's parts to `parts`; the upload's state after them.
fn record_parts(txn: &mut Txn<'_>, m: crate::PartsWrite) -> Result<MultipartState, StoreError> {
    for (index, part) in (m.from..).zip(&m.parts) {
        txn.put::<PartRecord>(PARTS, &part_key(&m.id, index), part)?;
    }
    Ok(MultipartState {
        parts: m.from + m.parts.len() as u64,
        key: m.key,
        id: m.id,
        sha256: m.sha256,
    })
}

/// Namespace reads from the local state machine.
pub(crate) mod read {
    use super::*;

    pub fn lookup(db: &DB, path: &str) -> Result<Option<InodeRecord>, StoreError> {
        let Some(parts) = components(path) else {
            return Ok(None);
        };
        // The root is stored once a name has left it (its removal count).
        let mut current = compact::get::<InodeRecord>(db, INODES, &ROOT_INODE.to_be_bytes())?
            .unwrap_or_else(InodeRecord::root);
        for part in parts {
            if !current.is_dir() {
                return Ok(None);
            }
            let Some(id) = compact::get::<u64>(db, DIRENTS, &dirent_key(current.id, part))? else {
                return Ok(None);
            };
            match compact::get::<InodeRecord>(db, INODES, &id.to_be_bytes())? {
                Some(inode) => current = inode,
                None => return Ok(None),
            }
        }
        Ok(Some(current))
    }

    /// The chunks of `file`, in order.
    pub fn file_chunks(db: &DB, file: &InodeRecord) -> Result<Vec<ChunkRef>, StoreError> {
        if file.extents == 0 {
            return Ok(file.chunks.clone());
        }
        let prefix = file.id.to_be_bytes();
        let mut out = Vec::with_capacity(file.extents as usize);
        for item in db.prefix_iterator_cf(cf(db, EXTENTS)?, prefix) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || out.len() as u64 == file.extents {
                break;
            }
            out.push(ChunkRef::from_bytes(&value)?);
        }
        Ok(out)
    }

    pub fn usage(db: &DB, owner: &str) -> Result<UsageRecord, StoreError> {
        Ok(compact::get(db, USAGE, owner.as_bytes())?.unwrap_or_default())
    }

    pub fn upload(db: &DB, id: &str) -> Result<Option<UploadRecord>, StoreError> {
        compact::get(db, UPLOADS, id.as_bytes())
    }

    /// The durable parts of a multipart upload, in order.
    pub fn upload_parts(db: &DB, state: &MultipartState) -> Result<Vec<PartRecord>, StoreError> {
        let prefix = parts::part_prefix(&state.id);
        let mut out = Vec::with_capacity(state.parts as usize);
        for item in db.prefix_iterator_cf(cf(db, PARTS)?, &prefix) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || out.len() as u64 == state.parts {
                break;
            }
            out.push(PartRecord::from_bytes(&value)?);
        }
        Ok(out)
    }

    /// Up to `limit` entries of directory `dir` whose names come after
    /// `after` (from the first without), by name.
    /// Up to `limit` entries of `object_trash` after `after`, in key order.
    pub fn trash_page(
        db: &DB,
        after: Option<&TrashEntry>,
        limit: usize,
    ) -> Result<Vec<TrashEntry>, StoreError> {
        let start = match after {
            Some(entry) => {
                let mut key = entry.row_key();
                key.push(0);
                key
            }
            None => Vec::new(),
        };
        let handle = cf(db, OBJECT_TRASH)?;
        let mode = rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward);
        let mut out = Vec::new();
        for item in db.iterator_cf(handle, mode).take(limit) {
            let (_, value) = item?;
            out.push(TrashEntry::from_bytes(&value)?);
        }
        Ok(out)
    }

    pub fn children_page(
        db: &DB,
        dir: u64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, InodeRecord)>, StoreError> {
        let prefix = dir.to_be_bytes();
        let start = match after {
            Some(name) => {
                let mut key = dirent_key(dir, name);
                key.push(0);
                key
            }
            None => prefix.to_vec(),
        };
        let handle = cf(db, DIRENTS)?;
        let mut out = Vec::new();
        let mode = rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward);
        for item in db.iterator_cf(handle, mode) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || out.len() == limit {
                break;
            }
            let name = String::from_utf8_lossy(key.get(8..).unwrap_or_default()).into_owned();
            let id = u64::from_bytes(&value)?;
            if let Some(inode) = compact::get::<InodeRecord>(db, INODES, &id.to_be_bytes())? {
                out.push((name, inode));
            }
        }
        Ok(out)
    }
}
