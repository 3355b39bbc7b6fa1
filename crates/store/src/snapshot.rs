//! Snapshot files: the state machine's tables written row by row from one
//! consistent RocksDB view into a file, and read back the same way. Nothing is
//! held in memory beyond one row and the I/O buffers, whatever the namespace's
//! size; openraft sends the file to a follower in pieces of
//! `snapshot_max_chunk_size`.
//!
//! Layout (integers little-endian):
//!
//! ```text
//! "WHARFSNP" version:u8
//! meta_len:u32 meta (JSON of openraft's SnapshotMeta)
//! table_count:u8 { name_len:u8 name }*
//! { table:u8 key_len:u32 key value_len:u32 value }*
//! 0xFF rows:u64 sha256(everything before it):[u8; 32]
//! ```
//!
//! Values are the tables' stored values, byte for byte, so a snapshot carries
//! whatever record formats the tables hold.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::digest::{Context, SHA256};
use openraft::SnapshotMeta;

use crate::{ClusterNode, NodeId};

const MAGIC: &[u8; 8] = b"WHARFSNP";
const VERSION: u8 = 1;
const END: u8 = 0xFF;
/// Larger keys or values than this are a damaged file, not a record.
const MAX_FIELD: u32 = 256 << 20;

pub type Meta = SnapshotMeta<NodeId, ClusterNode>;

/// One row: the table's position in the header's list, the key, the value.
pub type Row = (u8, Vec<u8>, Vec<u8>);

#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    #[error("snapshot file I/O: {0}")]
    Io(#[from] io::Error),
    #[error("not a Wharf snapshot file (bad magic)")]
    Magic,
    #[error("snapshot format {0} is newer than this release reads")]
    Version(u8),
    #[error("snapshot file is damaged: {0}")]
    Damaged(String),
}

/// The directory holding this node's snapshot files: the newest snapshot as
/// `current.snap`, and temporary files while one is built or received.
#[derive(Clone, Debug)]
pub struct SnapshotDir {
    dir: PathBuf,
}

impl SnapshotDir {
    /// Opens (creating) the directory and removes what an interrupted build
    /// or transfer left behind.
    pub fn open(dir: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(Self { dir })
    }

    pub fn current(&self) -> PathBuf {
        self.dir.join("current.snap")
    }

    /// A fresh temporary file name for `purpose` (`building`, `receiving`, …).
    pub fn temporary(&self, purpose: &str) -> PathBuf {
        let nonce: u64 = rand_nonce();
        self.dir.join(format!("{purpose}-{nonce:016x}.tmp"))
    }

    /// Makes the finished file `from` the current snapshot (atomically, durably).
    pub fn promote(&self, from: &Path) -> io::Result<()> {
        fs::rename(from, self.current())?;
        File::open(&self.dir)?.sync_all()
    }

    /// Size in bytes of the current snapshot, if there is one.
    pub fn current_size(&self) -> Option<u64> {
        fs::metadata(self.current()).ok().map(|m| m.len())
    }
}

fn rand_nonce() -> u64 {
    let mut bytes = [0u8; 8];
    // aws-lc's generator only fails when the system's does; a clock then
    // still tells concurrent temporaries apart.
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return now.as_nanos() as u64;
    }
    u64::from_le_bytes(bytes)
}

/// Writes a snapshot file row by row.
pub struct SnapshotWriter {
    out: BufWriter<File>,
    digest: Context,
    rows: u64,
    bytes: u64,
}

impl SnapshotWriter {
    pub fn create(path: &Path, meta: &Meta, tables: &[&str]) -> Result<Self, SnapshotFileError> {
        let file = File::create(path)?;
        let mut writer = Self {
            out: BufWriter::with_capacity(1 << 20, file),
            digest: Context::new(&SHA256),
            rows: 0,
            bytes: 0,
        };
        let meta = serde_json::to_vec(meta).map_err(io::Error::other)?;
        writer.put(MAGIC)?;
        writer.put(&[VERSION])?;
        writer.put(&(meta.len() as u32).to_le_bytes())?;
        writer.put(&meta)?;
        writer.put(&[tables.len() as u8])?;
        for name in tables {
            writer.put(&[name.len() as u8])?;
            writer.put(name.as_bytes())?;
        }
        Ok(writer)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.digest.update(bytes);
        self.bytes += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    /// One row of the table at position `table` of the header's list.
    pub fn row(&mut self, table: u8, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.put(&[table])?;
        self.put(&(key.len() as u32).to_le_bytes())?;
        self.put(key)?;
        self.put(&(value.len() as u32).to_le_bytes())?;
        self.put(value)?;
        self.rows += 1;
        Ok(())
    }

    /// Ends the file and makes it durable; returns its rows and bytes.
    pub fn finish(mut self) -> io::Result<(u64, u64)> {
        self.put(&[END])?;
        let rows = self.rows;
        self.put(&rows.to_le_bytes())?;
        let sum = self.digest.clone().finish();
        self.out.write_all(sum.as_ref())?;
        self.bytes += 32;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok((rows, self.bytes))
    }
}

/// Reads a snapshot file row by row, checking its digest at the end.
pub struct SnapshotReader<R: Read> {
    input: BufReader<R>,
    digest: Context,
    pub meta: Meta,
    pub tables: Vec<String>,
    rows: u64,
    done: bool,
}

impl<R: Read> SnapshotReader<R> {
    pub fn new(input: R) -> Result<Self, SnapshotFileError> {
        let mut reader = Self {
            input: BufReader::with_capacity(1 << 20, input),
            digest: Context::new(&SHA256),
            meta: Meta::default(),
            tables: Vec::new(),
            rows: 0,
            done: false,
        };
        let mut magic = [0u8; 8];
        reader.take(&mut magic)?;
        if &magic != MAGIC {
            return Err(SnapshotFileError::Magic);
        }
        let version = reader.byte()?;
        if version != VERSION {
            return Err(SnapshotFileError::Version(version));
        }
        let meta = reader.field()?;
        reader.meta = serde_json::from_slice(&meta)
            .map_err(|e| SnapshotFileError::Damaged(format!("metadata: {e}")))?;
        for _ in 0..reader.byte()? {
            let len = reader.byte()? as usize;
            let mut name = vec![0u8; len];
            reader.take(&mut name)?;
            let name = String::from_utf8(name)
                .map_err(|_| SnapshotFileError::Damaged("a table name is not UTF-8".into()))?;
            reader.tables.push(name);
        }
        Ok(reader)
    }

    fn take(&mut self, buf: &mut [u8]) -> Result<(), SnapshotFileError> {
        self.input.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => SnapshotFileError::Damaged("truncated".into()),
            _ => SnapshotFileError::Io(e),
        })?;
        self.digest.update(buf);
        Ok(())
    }

    fn byte(&mut self) -> Result<u8, SnapshotFileError> {
        let mut b = [0u8; 1];
        self.take(&mut b)?;
        Ok(b[0])
    }

    fn field(&mut self) -> Result<Vec<u8>, SnapshotFileError> {
        let mut len = [0u8; 4];
        self.take(&mut len)?;
        let len = u32::from_le_bytes(len);
        if len > MAX_FIELD {
            return Err(SnapshotFileError::Damaged(format!(
                "a field of {len} bytes"
            )));
        }
        let mut field = vec![0u8; len as usize];
        self.take(&mut field)?;
        Ok(field)
    }

    /// The next row as (table position, key, value); `None` after the last,
    /// once the row count and digest have been checked.
    pub fn next_row(&mut self) -> Result<Option<Row>, SnapshotFileError> {
        if self.done {
            return Ok(None);
        }
        let table = self.byte()?;
        if table == END {
            let mut count = [0u8; 8];
            self.take(&mut count)?;
            if u64::from_le_bytes(count) != self.rows {
                return Err(SnapshotFileError::Damaged("row count differs".into()));
            }
            let expected = self.digest.clone().finish();
            let mut sum = [0u8; 32];
            self.input
                .read_exact(&mut sum)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => SnapshotFileError::Damaged("truncated".into()),
                    _ => SnapshotFileError::Io(e),
                })?;
            if sum != expected.as_ref() {
                return Err(SnapshotFileError::Damaged("checksum differs".into()));
            }
            self.done = true;
            return Ok(None);
        }
        if table as usize >= self.tables.len() {
            return Err(SnapshotFileError::Damaged(format!("row of table #{table}")));
        }
        let key = self.field()?;
        let value = self.field()?;
        self.rows += 1;
        Ok(Some((table, key, value)))
    }

    /// Reads to the end, checking everything; returns the rows and the reader.
    pub fn verify(mut self) -> Result<(u64, R), SnapshotFileError> {
        while self.next_row()?.is_some() {}
        Ok((self.rows, self.input.into_inner()))
    }
}

/// The metadata in the header of the snapshot file at `path`.
pub fn read_meta(path: &Path) -> Result<Meta, SnapshotFileError> {
    Ok(SnapshotReader::new(File::open(path)?)?.meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rows: &[(u8, &[u8], &[u8])]) -> PathBuf {
        let path = dir.join("s.snap");
        let meta = Meta {
            snapshot_id: "t-1".into(),
            ..Meta::default()
        };
        let mut w = SnapshotWriter::create(&path, &meta, &["users", "inodes"]).unwrap();
        for (t, k, v) in rows {
            w.row(*t, k, v).unwrap();
        }
        w.finish().unwrap();
        path
    }

    #[test]
    fn rows_round_trip_with_their_tables_and_meta() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            &[(0, b"alice", b"\x01{}"), (1, b"\0\0\0\x02", b"")],
        );
        let mut r = SnapshotReader::new(File::open(&path).unwrap()).unwrap();
        assert_eq!(r.meta.snapshot_id, "t-1");
        assert_eq!(r.tables, ["users", "inodes"]);
        assert_eq!(
            r.next_row().unwrap(),
            Some((0, b"alice".to_vec(), b"\x01{}".to_vec()))
        );
        assert_eq!(r.next_row().unwrap(), Some((1, vec![0, 0, 0, 2], vec![])));
        assert_eq!(r.next_row().unwrap(), None);
        assert_eq!(read_meta(&path).unwrap().snapshot_id, "t-1");
    }

    #[test]
    fn truncated_flipped_or_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &[(0, b"alice", b"value"), (1, b"k", b"v")]);
        let bytes = fs::read(&path).unwrap();
        let verify = |b: &[u8]| SnapshotReader::new(b).and_then(|r| r.verify().map(|_| ()));
        assert!(verify(&bytes).is_ok());
        for cut in [10, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                matches!(verify(&bytes[..cut]), Err(SnapshotFileError::Damaged(_))),
                "cut at {cut}"
            );
        }
        let mut flipped = bytes.clone();
        let at = bytes.len() - 40;
        flipped[at] ^= 1;
        assert!(verify(&flipped).is_err());
        assert!(matches!(
            verify(b"{\"tables\":[]}"),
            Err(SnapshotFileError::Magic)
        ));
    }
}
