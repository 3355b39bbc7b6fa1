//! Chunks on local disk: `DIR/ab/abcdef…` (the first two hex digits fan the
//! files out over 256 directories).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use crate::checksum::Checksum;
use crate::hash::ChunkHash;

/// Suffix of a chunk being written; such files are never read as chunks and
/// are removed when the store is opened.
const PARTIAL: &str = ".partial";

pub struct ChunkStore {
    dir: PathBuf,
    /// Set once the file system refused a user extended attribute.
    no_attributes: AtomicBool,
}

/// A chunk found on disk, with the time it was last written (garbage
/// collection spares recent chunks: they may belong to an upload that has not
/// reached its checkpoint yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChunk {
    pub hash: ChunkHash,
    pub written: SystemTime,
    pub len: u64,
}

impl ChunkStore {
    /// Opens (creating) the store in `dir` and clears partial writes left by a crash.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        let store = Self {
            dir,
            no_attributes: AtomicBool::new(false),
        };
        for fan in store.fan_dirs()? {
            for entry in fs::read_dir(&fan)? {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == &PARTIAL[1..]) {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, hash: &ChunkHash) -> PathBuf {
        let name = hash.to_string();
        self.dir.join(&name[..2]).join(name)
    }

    fn fan_dirs(&self) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                out.push(entry.path());
            }
        }
        Ok(out)
    }

    /// Stores `bytes` under `hash` durably (temporary file, fsync, rename,
    /// fsync of the directory). Writing a chunk that exists refreshes its time,
    /// so garbage collection never takes a chunk an upload just produced.
    /// Refuses bytes that do not hash to `hash`.
    pub fn put(&self, hash: &ChunkHash, bytes: &[u8]) -> io::Result<()> {
        if !hash.matches(bytes) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("chunk bytes do not hash to {hash}"),
            ));
        }
        self.put_hashed(hash, bytes)
    }

    /// `put` for bytes whose `hash` the caller has just computed from these very
    /// bytes (an upload on this node), without hashing them a second time.
    pub fn put_hashed(&self, hash: &ChunkHash, bytes: &[u8]) -> io::Result<()> {
        let path = self.path(hash);
        let fan = path
            .parent()
            .ok_or_else(|| io::Error::other("a chunk path without a directory"))?;
        if path.exists() {
            let file = File::options().append(true).open(&path)?;
            file.set_modified(SystemTime::now())?;
            return Ok(());
        }
        fs::create_dir_all(fan)?;
        let temp = fan.join(format!("{}.{:08x}{PARTIAL}", hash, rand::random::<u32>()));
        let written = (|| {
            let mut file = File::create(&temp)?;
            file.write_all(bytes)?;
            self.attach_checksum(hash, &file, bytes);
            file.sync_all()?;
            fs::rename(&temp, &path)?;
            File::open(fan)?.sync_all()
        })();
        if written.is_err() {
            let _ = fs::remove_file(&temp);
        }
        written
    }

    /// Stores many chunks durably with two file-system syncs in all instead of
    /// two fsyncs each: every new chunk goes to its temporary file, the file
    /// system is synced (`syncfs`), the files are renamed into place and it is
    /// synced again, so no chunk is visible before its bytes are durable. For
    /// bytes the caller has already checked against their hash. A chunk that
    /// exists gets a fresh time, as with `put`.
    pub fn put_many<'a>(
        &self,
        chunks: impl IntoIterator<Item = (&'a ChunkHash, &'a [u8])>,
    ) -> io::Result<()> {
        let mut written: Vec<(PathBuf, PathBuf)> = Vec::new();
        let stored = (|| {
            for (hash, bytes) in chunks {
                let path = self.path(hash);
                if path.exists() {
                    File::options()
                        .append(true)
                        .open(&path)?
                        .set_modified(SystemTime::now())?;
                    continue;
                }
                let fan = path
                    .parent()
                    .ok_or_else(|| io::Error::other("a chunk path without a directory"))?;
                fs::create_dir_all(fan)?;
                let temp = fan.join(format!("{}.{:08x}{PARTIAL}", hash, rand::random::<u32>()));
                written.push((temp.clone(), path));
                let mut file = File::create(&temp)?;
                file.write_all(bytes)?;
                self.attach_checksum(hash, &file, bytes);
            }
            if written.is_empty() {
                return Ok(());
            }
            self.sync_file_system()?;
            for (temp, path) in &written {
                fs::rename(temp, path)?;
            }
            self.sync_file_system()
        })();
        if stored.is_err() {
            for (temp, _) in &written {
                let _ = fs::remove_file(temp);
            }
        }
        stored
    }

    /// Makes everything written to the store's file system durable.
    fn sync_file_system(&self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let dir = File::open(&self.dir)?;
        // SAFETY: `syncfs` only reads the descriptor, which `dir` keeps open.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The chunk's bytes, or `None` when this node does not hold it. A file
    /// whose bytes no longer match (disk damage) is removed and reported as
    /// missing, so the caller fetches a good replica instead. The check is the
    /// file's checksum attribute where it has one (see `checksum`), else the
    /// chunk's name.
    pub fn get(&self, hash: &ChunkHash) -> io::Result<Option<Vec<u8>>> {
        let path = self.path(hash);
        let (file, bytes, stored) = match read_chunk_file(&path) {
            Ok(found) => found,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if stored.is_some_and(|c| c == Checksum::of(&bytes)) {
            return Ok(Some(bytes));
        }
        if hash.matches(&bytes) {
            // Written before checksums, or the attribute itself was damaged.
            self.attach_checksum(hash, &file, &bytes);
            return Ok(Some(bytes));
        }
        tracing::error!(%hash, "chunk on disk is damaged; removed");
        let _ = fs::remove_file(&path);
        Ok(None)
    }

    /// Gives `file` the checksum of `bytes`, unless this store's file system
    /// already refused extended attributes (then reads fall back to BLAKE3,
    /// and trying again on every read would be wasted work).
    fn attach_checksum(&self, hash: &ChunkHash, file: &File, bytes: &[u8]) {
        if self.no_attributes.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = Checksum::of(bytes).write_to(file) {
            if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
                self.no_attributes.store(true, Ordering::Relaxed);
                tracing::warn!(dir = %self.dir.display(),
                    "no user extended attributes here: chunks are checked with BLAKE3 on every read");
            } else {
                tracing::debug!(%hash, "chunk checksum attribute not written: {e}");
            }
        }
    }

    pub fn contains(&self, hash: &ChunkHash) -> bool {
        self.path(hash).is_file()
    }

    pub fn remove(&self, hash: &ChunkHash) -> io::Result<()> {
        match fs::remove_file(self.path(hash)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes the chunk unless it was written (or refreshed) at or after
    /// `cutoff`, looking at its time again just before: a chunk an upload
    /// stored again since the caller looked stays. Whether it went.
    pub fn remove_if_written_before(
        &self,
        hash: &ChunkHash,
        cutoff: SystemTime,
    ) -> io::Result<bool> {
        let path = self.path(hash);
        let written = match fs::metadata(&path) {
            Ok(meta) => meta.modified()?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if written >= cutoff {
            return Ok(false);
        }
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every complete chunk on disk.
    pub fn list(&self) -> io::Result<Vec<StoredChunk>> {
        let mut out = Vec::new();
        self.visit(|chunk| out.push(chunk))?;
        Ok(out)
    }

    /// Calls `f` for every complete chunk on disk, one directory read at a
    /// time: a million chunks are never held in memory together.
    pub fn visit(&self, mut f: impl FnMut(StoredChunk)) -> io::Result<()> {
        for fan in self.fan_dirs()? {
            for entry in fs::read_dir(&fan)? {
                let entry = entry?;
                let name = entry.file_name();
                let Some(hash) = name.to_str().and_then(|n| n.parse().ok()) else {
                    continue;
                };
                let meta = entry.metadata()?;
                f(StoredChunk {
                    hash,
                    written: meta.modified()?,
                    len: meta.len(),
                });
            }
        }
        Ok(())
    }
}

/// A chunk file (still open), its bytes and the checksum it carries.
fn read_chunk_file(path: &Path) -> io::Result<(File, Vec<u8>, Option<Checksum>)> {
    let mut file = File::open(path)?;
    let checksum = Checksum::read_from(&file);
    let mut bytes = Vec::with_capacity(file.metadata()?.len() as usize);
    file.read_to_end(&mut bytes)?;
    Ok((file, bytes, checksum))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path().join("chunks")).unwrap();
        let bytes = b"some chunk bytes".to_vec();
        let hash = ChunkHash::of(&bytes);
        assert_eq!(store.get(&hash).unwrap(), None);
        store.put(&hash, &bytes).unwrap();
        store.put(&hash, &bytes).unwrap();
        assert!(store.contains(&hash));
        assert_eq!(store.get(&hash).unwrap(), Some(bytes.clone()));
        let listed = store.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].hash, hash);
        assert_eq!(listed[0].len, bytes.len() as u64);
        store.remove(&hash).unwrap();
        store.remove(&hash).unwrap();
        assert!(!store.contains(&hash));
    }

    #[test]
    fn bytes_that_do_not_match_the_name_are_refused_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let hash = ChunkHash::of(b"right");
        let err = store.put(&hash, b"wrong").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        store.put(&hash, b"right").unwrap();
        fs::write(store.path(&hash), b"rotted").unwrap();
        assert_eq!(store.get(&hash).unwrap(), None);
        assert!(!store.contains(&hash), "a damaged chunk is removed");
    }

    /// Whether this file system keeps user extended attributes (ext4, xfs,
    /// tmpfs since Linux 6.6 do); the checksum tests need them.
    fn attributes_work(dir: &Path) -> bool {
        let probe = dir.join("probe");
        fs::write(&probe, b"").unwrap();
        let file = File::open(&probe).unwrap();
        let works = Checksum::of(b"").write_to(&file).is_ok();
        if !works {
            eprintln!(
                "skipped: {} keeps no user extended attributes",
                dir.display()
            );
        }
        works
    }

    #[test]
    fn damage_that_keeps_the_length_is_caught_by_the_checksum() {
        let dir = tempfile::tempdir().unwrap();
        if !attributes_work(dir.path()) {
            return;
        }
        let store = ChunkStore::open(dir.path().join("chunks")).unwrap();
        let bytes = vec![7u8; 64 * 1024];
        let hash = ChunkHash::of(&bytes);
        store.put_hashed(&hash, &bytes).unwrap();
        let path = store.path(&hash);
        assert_eq!(
            Checksum::read_from(&File::open(&path).unwrap()),
            Some(Checksum::of(&bytes)),
            "a stored chunk carries its checksum"
        );
        // One bit flipped in place: same file, same length, same attribute.
        let mut file = File::options().write(true).open(&path).unwrap();
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(40_000)).unwrap();
        file.write_all(&[7 ^ 0x10]).unwrap();
        drop(file);
        assert_eq!(store.get(&hash).unwrap(), None);
        assert!(!store.contains(&hash), "a damaged chunk is removed");
    }

    #[test]
    fn a_chunk_without_a_good_checksum_is_checked_by_its_name_and_gets_one() {
        use xattr::FileExt;
        let dir = tempfile::tempdir().unwrap();
        if !attributes_work(dir.path()) {
            return;
        }
        let store = ChunkStore::open(dir.path().join("chunks")).unwrap();
        let bytes = b"written before checksums existed".to_vec();
        let hash = ChunkHash::of(&bytes);
        store.put(&hash, &bytes).unwrap();
        let path = store.path(&hash);
        File::open(&path)
            .unwrap()
            .remove_xattr("user.wharf.xxh3")
            .unwrap();
        assert_eq!(store.get(&hash).unwrap(), Some(bytes.clone()));
        let restored = Checksum::read_from(&File::open(&path).unwrap());
        assert_eq!(restored, Some(Checksum::of(&bytes)));
        // A damaged attribute on good bytes: the bytes are served, the
        // attribute repaired.
        Checksum::of(b"something else")
            .write_to(&File::open(&path).unwrap())
            .unwrap();
        assert_eq!(store.get(&hash).unwrap(), Some(bytes.clone()));
        let repaired = Checksum::read_from(&File::open(&path).unwrap());
        assert_eq!(repaired, Some(Checksum::of(&bytes)));
    }

    #[test]
    fn many_chunks_are_stored_at_once_and_an_existing_one_is_refreshed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let old = b"stored before".to_vec();
        let old_hash = ChunkHash::of(&old);
        store.put(&old_hash, &old).unwrap();
        let path = store.path(&old_hash);
        let long_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
        File::options()
            .append(true)
            .open(&path)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        let new: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 100 + i as usize]).collect();
        let hashes: Vec<ChunkHash> = new.iter().map(|b| ChunkHash::of(b)).collect();
        let batch = hashes
            .iter()
            .zip(&new)
            .map(|(h, b)| (h, b.as_slice()))
            .chain([(&old_hash, old.as_slice())]);
        store.put_many(batch).unwrap();
        for (hash, bytes) in hashes.iter().zip(&new) {
            assert_eq!(store.get(hash).unwrap().as_ref(), Some(bytes));
        }
        let files: usize = store
            .fan_dirs()
            .unwrap()
            .iter()
            .map(|fan| fs::read_dir(fan).unwrap().count())
            .sum();
        assert_eq!(files, 21, "every chunk and no partial file");
        let refreshed = fs::metadata(&path).unwrap().modified().unwrap();
        assert!(refreshed > long_ago + std::time::Duration::from_secs(1800));
        // Nothing new to write: no sync, no error.
        store.put_many([(&old_hash, old.as_slice())]).unwrap();
    }

    #[test]
    fn partial_writes_are_cleared_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let hash = ChunkHash::of(b"x");
        store.put(&hash, b"x").unwrap();
        let partial = store.path(&hash).with_extension("1234.partial");
        fs::write(&partial, b"half").unwrap();
        drop(store);
        let store = ChunkStore::open(dir.path()).unwrap();
        assert!(!partial.exists());
        assert!(store.contains(&hash));
        assert_eq!(store.list().unwrap().len(), 1);
    }
}
