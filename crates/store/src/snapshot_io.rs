//! Building, installing and resuming snapshots between RocksDB and snapshot
//! files. Blocking: callers run these on a blocking thread.
//!
//! An install copies the received file while checking it, makes the copy the
//! current snapshot, records in `sm_meta` that an install is under way, and
//! only then replaces the tables, in bounded write batches. A node killed in
//! the middle finds the record when it starts and finishes the install from
//! the current snapshot before it serves anything.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::{Arc, Mutex};

use openraft::{LogId, StoredMembership};
use rocksdb::{WriteBatch, DB};

use crate::columns::{LAST_APPLIED, MEMBERSHIP, SM_META};
use crate::error::StoreError;
use crate::snapshot::{
    read_meta, Meta, SnapshotDir, SnapshotFileError, SnapshotReader, SnapshotWriter,
};
use crate::table::{self, cf, TABLES};
use crate::{ClusterNode, NodeId};

/// `sm_meta` key present while an install replaces the tables.
const INSTALLING: &[u8] = b"installing";
/// Bytes of row data per write batch while installing.
const INSTALL_BATCH_BYTES: usize = 4 << 20;

impl From<SnapshotFileError> for StoreError {
    fn from(e: SnapshotFileError) -> Self {
        StoreError::Io(e.to_string())
    }
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

/// Held while a file becomes the current snapshot.
#[derive(Clone, Default)]
pub(crate) struct Promotion(Arc<Mutex<()>>);

impl Promotion {
    /// Makes `path` the current snapshot unless the current one is newer;
    /// returns whether it did.
    fn promote_if_newer(
        &self,
        dir: &SnapshotDir,
        path: &std::path::Path,
        meta: &Meta,
    ) -> io::Result<bool> {
        let _held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let newer_exists = read_meta(&dir.current())
            .ok()
            .is_some_and(|current| current.last_log_id > meta.last_log_id);
        if newer_exists {
            return Ok(false);
        }
        dir.promote(path)?;
        Ok(true)
    }
}

pub(crate) struct Built {
    pub meta: Meta,
    pub file: File,
    pub bytes: u64,
}

/// Writes every table, as one consistent view, to a new snapshot file.
pub(crate) fn build(
    db: &DB,
    dir: &SnapshotDir,
    promotion: &Promotion,
    seq: u64,
) -> Result<Built, StoreError> {
    let started = std::time::Instant::now();
    // A RocksDB snapshot gives one consistent view while entries keep being
    // applied.
    let view = db.snapshot();
    let meta_cf = cf(db, SM_META)?;
    let last_applied: Option<LogId<NodeId>> = match view.get_cf(meta_cf, LAST_APPLIED)? {
        Some(v) => table::decode(&v)?,
        None => None,
    };
    let membership: StoredMembership<NodeId, ClusterNode> =
        match view.get_cf(meta_cf, MEMBERSHIP)? {
            Some(v) => table::decode(&v)?,
            None => StoredMembership::default(),
        };
    let snapshot_id = match last_applied {
        Some(l) => format!("{}-{}-{seq}", l.leader_id, l.index),
        None => format!("--{seq}"),
    };
    let meta = Meta {
        last_log_id: last_applied,
        last_membership: membership,
        snapshot_id,
    };
    let path = dir.temporary("building");
    let result = (|| {
        let mut writer = SnapshotWriter::create(&path, &meta, &TABLES)?;
        for (position, name) in TABLES.iter().enumerate() {
            let handle = cf(db, name)?;
            for item in view.iterator_cf(handle, rocksdb::IteratorMode::Start) {
                let (key, value) = item?;
                writer.row(position as u8, &key, &value)?;
            }
        }
        Ok::<_, StoreError>(writer.finish()?)
    })();
    drop(view);
    let (rows, bytes) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    // Opened before the rename: the handle reads this snapshot even if a newer
    // one replaces it while it is being sent.
    let file = File::open(&path)?;
    if !promotion.promote_if_newer(dir, &path, &meta)? {
        std::fs::remove_file(&path)?;
    }
    tracing::info!(
        snapshot = %meta.snapshot_id,
        rows,
        bytes,
        took_ms = started.elapsed().as_millis() as u64,
        "built a snapshot"
    );
    Ok(Built { meta, file, bytes })
}

/// An unnamed file for a snapshot arriving from the leader: nothing to clean
/// up if the transfer stops half-way.
pub(crate) fn receiving_file(dir: &SnapshotDir) -> Result<File, StoreError> {
    let path = dir.temporary("receiving");
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// The current snapshot's metadata and a handle reading it from the start.
pub(crate) fn open_current(dir: &SnapshotDir) -> Result<Option<(Meta, File)>, StoreError> {
    let file = match File::open(dir.current()) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut reader = SnapshotReader::new(&file)?;
    let meta = std::mem::take(&mut reader.meta);
    drop(reader);
    let mut file = file;
    file.seek(SeekFrom::Start(0))?;
    Ok(Some((meta, file)))
}

/// Copies what it reads into `copy`.
struct Tee<'a, R> {
    from: R,
    copy: &'a mut io::BufWriter<File>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.from.read(buf)?;
        self.copy.write_all(buf.get(..n).unwrap_or_default())?;
        Ok(n)
    }
}

/// Installs the snapshot in `received` (any position): checked and kept as the
/// current snapshot, then loaded into the tables. Returns the file's size.
pub(crate) fn install(
    db: &DB,
    dir: &SnapshotDir,
    promotion: &Promotion,
    expected: &Meta,
    mut received: File,
) -> Result<u64, StoreError> {
    received.seek(SeekFrom::Start(0))?;
    let path = dir.temporary("installing");
    let checked = (|| {
        let mut copy = io::BufWriter::with_capacity(1 << 20, File::create(&path)?);
        let reader = SnapshotReader::new(Tee {
            from: &received,
            copy: &mut copy,
        })?;
        if reader.meta.snapshot_id != expected.snapshot_id
            || reader.meta.last_log_id != expected.last_log_id
        {
            return Err(StoreError::Io(format!(
                "the snapshot file holds {} up to {:?}, the leader announced {} up to {:?}",
                reader.meta.snapshot_id,
                reader.meta.last_log_id,
                expected.snapshot_id,
                expected.last_log_id
            )));
        }
        reader.verify()?;
        let copy = copy.into_inner().map_err(|e| e.into_error())?;
        copy.sync_all()?;
        Ok(())
    })();
    if let Err(e) = checked {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    if !promotion.promote_if_newer(dir, &path, expected)? {
        std::fs::remove_file(&path)?;
        return Err(StoreError::Io(
            "a newer snapshot is already current; not installing an older one".into(),
        ));
    }
    let mut batch = WriteBatch::default();
    table::put(db, &mut batch, SM_META, INSTALLING, &expected.snapshot_id)?;
    db.write(batch)?;
    db.flush_wal(true)?;
    load_tables(db, dir)
}

/// Finishes an install a crash interrupted (see the module's notes).
pub(crate) fn finish_interrupted_install(db: &DB, dir: &SnapshotDir) -> Result<(), StoreError> {
    let Some(id) = table::get::<String>(db, SM_META, INSTALLING)? else {
        return Ok(());
    };
    tracing::warn!(snapshot = %id, "a snapshot install was interrupted; finishing it");
    let bytes = load_tables(db, dir)?;
    tracing::info!(snapshot = %id, bytes, "installed a snapshot from the leader (resumed)");
    Ok(())
}

/// Replaces every table with the current snapshot's rows, then records its
/// position and membership and clears the install record, in the last batch.
fn load_tables(db: &DB, dir: &SnapshotDir) -> Result<u64, StoreError> {
    let file = File::open(dir.current())?;
    let size = file.metadata()?.len();
    let mut reader = SnapshotReader::new(file)?;
    tracing::info!(snapshot = %reader.meta.snapshot_id, bytes = size, "loading a snapshot into the tables");
    for name in TABLES {
        table::clear(db, name)?;
    }
    let handles = reader
        .tables
        .iter()
        .map(|name| {
            if TABLES.contains(&name.as_str()) {
                cf(db, name).map(Some)
            } else {
                tracing::warn!(table = %name, "snapshot holds an unknown table; skipped");
                Ok(None)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let namespace: Vec<bool> = reader
        .tables
        .iter()
        .map(|name| crate::compact::TABLES.contains(&name.as_str()))
        .collect();
    let mut json_records = 0u64;
    let mut batch = WriteBatch::default();
    while let Some((table, key, value)) = reader.next_row()? {
        if let Some(handle) = handles.get(table as usize).copied().flatten() {
            if namespace.get(table as usize) == Some(&true)
                && value.first() == Some(&table::FORMAT_V1)
            {
                json_records += 1;
            }
            batch.put_cf(handle, key, value);
        }
        if batch.size_in_bytes() >= INSTALL_BATCH_BYTES {
            db.write(std::mem::take(&mut batch))?;
        }
    }
    let meta = reader.meta.clone();
    table::put(db, &mut batch, SM_META, LAST_APPLIED, &meta.last_log_id)?;
    table::put(db, &mut batch, SM_META, MEMBERSHIP, &meta.last_membership)?;
    table::delete(db, &mut batch, SM_META, INSTALLING)?;
    crate::chunk_health::forget_index(db, &mut batch)?;
    if json_records > 0 {
        // An older leader's snapshot: its records are rewritten below.
        crate::compact::forget_migration(db, &mut batch)?;
    }
    db.write(batch)?;
    db.flush_wal(true)?;
    crate::compact::migrate(db)?;
    crate::chunk_health::ensure_indexed(db)?;
    Ok(size)
}
