//! The namespace's records in a compact binary form (format byte 2): the
//! inodes, directory entries, extents, chunk, upload and usage records a
//! node holds one or more of per file. They are Protocol Buffers messages
//! (prost), so a later release can add fields without a new format; values
//! of format 1 (JSON, earlier releases) are still read, and [`migrate`]
//! rewrites them once.
//!
//! The other tables (accounts, certificates, keys, settings) hold a few
//! records each and stay JSON.

use prost::Message;
use rocksdb::{WriteBatch, DB};

use crate::columns::SM_META;
use crate::error::StoreError;
use crate::records::{
    ChunkHash, ChunkRecord, ChunkRef, InodeKind, InodeRecord, MultipartState, ObjectRef,
    PartRecord, TrashEntry, UploadRecord, UsageRecord,
};
use crate::table::{self, cf, CodecError, FORMAT_V1};

/// Protocol Buffers after the byte.
pub const FORMAT_V2: u8 = 2;

/// The tables whose records are compact.
pub(crate) const TABLES: [&str; 6] = ["inodes", "dirents", "extents", "chunks", "uploads", "usage"];

/// A value of a namespace table.
pub(crate) trait Record: Sized {
    fn to_bytes(&self) -> Result<Vec<u8>, CodecError>;
    fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError>;
}

/// Splits off the format byte; format 1 is handed to serde's JSON.
fn body(bytes: &[u8]) -> Result<(u8, &[u8]), CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&format, rest)) if format == FORMAT_V1 || format == FORMAT_V2 => Ok((format, rest)),
        Some((&other, _)) => Err(CodecError::UnknownFormat(other)),
    }
}

fn framed(message: &impl Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + message.encoded_len());
    out.push(FORMAT_V2);
    // Encoding into a Vec cannot run out of room.
    let _ = message.encode(&mut out);
    out
}

fn hash(bytes: &[u8]) -> Result<ChunkHash, CodecError> {
    ChunkHash::from_bytes(bytes).map_err(|e| CodecError::Binary(e.to_string()))
}

fn binary(e: prost::DecodeError) -> CodecError {
    CodecError::Binary(e.to_string())
}

/// Implements [`Record`] for a record type through its message type.
macro_rules! record {
    ($record:ty, $message:ty) => {
        impl Record for $record {
            fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
                Ok(framed(&<$message>::from(self)))
            }

            fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
                match body(bytes)? {
                    (FORMAT_V2, rest) => <$message>::decode(rest).map_err(binary)?.try_into(),
                    _ => table::decode(bytes),
                }
            }
        }
    };
}

#[derive(Clone, PartialEq, Message)]
struct ChunkRefMessage {
    #[prost(bytes = "vec", tag = "1")]
    hash: Vec<u8>,
    #[prost(uint64, tag = "2")]
    len: u64,
}

impl From<&ChunkRef> for ChunkRefMessage {
    fn from(c: &ChunkRef) -> Self {
        Self {
            hash: c.hash.as_bytes().to_vec(),
            len: c.len,
        }
    }
}

impl TryFrom<ChunkRefMessage> for ChunkRef {
    type Error = CodecError;
    fn try_from(m: ChunkRefMessage) -> Result<Self, CodecError> {
        Ok(ChunkRef {
            hash: hash(&m.hash)?,
            len: m.len,
        })
    }
}

record!(ChunkRef, ChunkRefMessage);

#[derive(Clone, PartialEq, Message)]
struct InodeMessage {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(bool, tag = "2")]
    dir: bool,
    #[prost(uint64, tag = "3")]
    size: u64,
    #[prost(uint64, tag = "4")]
    mtime: u64,
    #[prost(message, repeated, tag = "5")]
    chunks: Vec<ChunkRefMessage>,
    #[prost(uint64, tag = "6")]
    extents: u64,
    #[prost(string, optional, tag = "7")]
    upload: Option<String>,
    #[prost(string, tag = "8")]
    owner: String,
    #[prost(uint64, tag = "9")]
    generation: u64,
    #[prost(message, optional, tag = "10")]
    object: Option<ObjectRefMessage>,
}

#[derive(Clone, PartialEq, Message)]
struct ObjectRefMessage {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    etag: String,
    #[prost(uint64, tag = "3")]
    size: u64,
}

impl From<&InodeRecord> for InodeMessage {
    fn from(i: &InodeRecord) -> Self {
        Self {
            id: i.id,
            dir: i.is_dir(),
            size: i.size,
            mtime: i.mtime,
            chunks: i.chunks.iter().map(Into::into).collect(),
            extents: i.extents,
            upload: i.upload.clone(),
            owner: i.owner.clone(),
            generation: i.generation,
            object: i.object.as_ref().map(|o| ObjectRefMessage {
                key: o.key.clone(),
                etag: o.etag.clone(),
                size: o.size,
            }),
        }
    }
}

impl TryFrom<InodeMessage> for InodeRecord {
    type Error = CodecError;
    fn try_from(m: InodeMessage) -> Result<Self, CodecError> {
        Ok(InodeRecord {
            id: m.id,
            kind: if m.dir {
                InodeKind::Dir
            } else {
                InodeKind::File
            },
            size: m.size,
            mtime: m.mtime,
            chunks: m
                .chunks
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            extents: m.extents,
            upload: m.upload,
            owner: m.owner,
            generation: m.generation,
            object: m.object.map(|o| ObjectRef {
                key: o.key,
                etag: o.etag,
                size: o.size,
            }),
        })
    }
}

record!(InodeRecord, InodeMessage);

#[derive(Clone, PartialEq, Message)]
struct ChunkRecordMessage {
    #[prost(bytes = "vec", tag = "1")]
    hash: Vec<u8>,
    #[prost(uint64, tag = "2")]
    len: u64,
    #[prost(uint64, repeated, tag = "3")]
    replicas: Vec<u64>,
    #[prost(uint64, tag = "4")]
    refs: u64,
}

impl From<&ChunkRecord> for ChunkRecordMessage {
    fn from(c: &ChunkRecord) -> Self {
        Self {
            hash: c.hash.as_bytes().to_vec(),
            len: c.len,
            replicas: c.replicas.clone(),
            refs: c.refs,
        }
    }
}

impl TryFrom<ChunkRecordMessage> for ChunkRecord {
    type Error = CodecError;
    fn try_from(m: ChunkRecordMessage) -> Result<Self, CodecError> {
        Ok(ChunkRecord {
            hash: hash(&m.hash)?,
            len: m.len,
            replicas: m.replicas,
            refs: m.refs,
        })
    }
}

record!(ChunkRecord, ChunkRecordMessage);

#[derive(Clone, PartialEq, Message)]
struct UploadMessage {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    path: String,
    #[prost(uint64, tag = "3")]
    inode: u64,
    #[prost(uint64, tag = "4")]
    node: u64,
    #[prost(uint64, tag = "5")]
    durable: u64,
    #[prost(uint64, tag = "6")]
    heartbeat: u64,
    #[prost(message, optional, tag = "7")]
    multipart: Option<MultipartMessage>,
}

#[derive(Clone, PartialEq, Message)]
struct MultipartMessage {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    id: String,
    #[prost(uint64, tag = "3")]
    parts: u64,
    #[prost(string, tag = "4")]
    sha256: String,
}

impl From<&MultipartState> for MultipartMessage {
    fn from(m: &MultipartState) -> Self {
        Self {
            key: m.key.clone(),
            id: m.id.clone(),
            parts: m.parts,
            sha256: m.sha256.clone(),
        }
    }
}

impl From<MultipartMessage> for MultipartState {
    fn from(m: MultipartMessage) -> Self {
        Self {
            key: m.key,
            id: m.id,
            parts: m.parts,
            sha256: m.sha256,
        }
    }
}

impl From<&UploadRecord> for UploadMessage {
    fn from(u: &UploadRecord) -> Self {
        Self {
            id: u.id.clone(),
            path: u.path.clone(),
            inode: u.inode,
            node: u.node,
            durable: u.durable,
            heartbeat: u.heartbeat,
            multipart: u.multipart.as_ref().map(MultipartMessage::from),
        }
    }
}

impl TryFrom<UploadMessage> for UploadRecord {
    type Error = CodecError;
    fn try_from(m: UploadMessage) -> Result<Self, CodecError> {
        Ok(UploadRecord {
            id: m.id,
            path: m.path,
            inode: m.inode,
            node: m.node,
            durable: m.durable,
            heartbeat: m.heartbeat,
            multipart: m.multipart.map(MultipartState::from),
        })
    }
}

record!(UploadRecord, UploadMessage);

#[derive(Clone, PartialEq, Message)]
struct PartMessage {
    #[prost(string, tag = "1")]
    etag: String,
    #[prost(uint64, tag = "2")]
    len: u64,
}

impl From<&PartRecord> for PartMessage {
    fn from(p: &PartRecord) -> Self {
        Self {
            etag: p.etag.clone(),
            len: p.len,
        }
    }
}

impl TryFrom<PartMessage> for PartRecord {
    type Error = CodecError;
    fn try_from(m: PartMessage) -> Result<Self, CodecError> {
        Ok(PartRecord {
            etag: m.etag,
            len: m.len,
        })
    }
}

record!(PartRecord, PartMessage);

#[derive(Clone, PartialEq, Message)]
struct TrashMessage {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    abort: String,
    #[prost(uint64, tag = "3")]
    inode: u64,
    #[prost(uint64, tag = "4")]
    generation: u64,
    #[prost(string, tag = "5")]
    etag: String,
}

impl From<&TrashEntry> for TrashMessage {
    fn from(t: &TrashEntry) -> Self {
        Self {
            key: t.key.clone(),
            abort: t.abort.clone(),
            inode: t.inode,
            generation: t.generation,
            etag: t.etag.clone(),
        }
    }
}

impl TryFrom<TrashMessage> for TrashEntry {
    type Error = CodecError;
    fn try_from(m: TrashMessage) -> Result<Self, CodecError> {
        Ok(TrashEntry {
            key: m.key,
            etag: m.etag,
            abort: m.abort,
            inode: m.inode,
            generation: m.generation,
        })
    }
}

record!(TrashEntry, TrashMessage);

#[derive(Clone, PartialEq, Message)]
struct UsageMessage {
    #[prost(uint64, tag = "1")]
    bytes: u64,
    #[prost(uint64, tag = "2")]
    files: u64,
}

impl From<&UsageRecord> for UsageMessage {
    fn from(u: &UsageRecord) -> Self {
        Self {
            bytes: u.bytes,
            files: u.files,
        }
    }
}

impl TryFrom<UsageMessage> for UsageRecord {
    type Error = CodecError;
    fn try_from(m: UsageMessage) -> Result<Self, CodecError> {
        Ok(UsageRecord {
            bytes: m.bytes,
            files: m.files,
        })
    }
}

record!(UsageRecord, UsageMessage);

/// A directory entry's child inode: a varint after the byte.
impl Record for u64 {
    fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        let mut out = vec![FORMAT_V2];
        prost::encoding::encode_varint(*self, &mut out);
        Ok(out)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        match body(bytes)? {
            (FORMAT_V2, mut rest) => prost::encoding::decode_varint(&mut rest).map_err(binary),
            _ => table::decode(bytes),
        }
    }
}

/// Settings the namespace keeps (the next inode number) stay JSON, like the
/// rest of the `settings` table.
impl Record for String {
    fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        table::encode(self)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        table::decode(bytes)
    }
}

pub(crate) fn get<T: Record>(db: &DB, t: &str, key: &[u8]) -> Result<Option<T>, StoreError> {
    match db.get_pinned_cf(cf(db, t)?, key)? {
        None => Ok(None),
        Some(v) => Ok(Some(T::from_bytes(&v)?)),
    }
}

/// Every record of a table, in key order; an undecodable one is logged and skipped.
pub(crate) fn scan<T: Record>(db: &DB, t: &str) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for item in db.iterator_cf(cf(db, t)?, rocksdb::IteratorMode::Start) {
        let (_, value) = item?;
        match T::from_bytes(&value) {
            Ok(v) => out.push(v),
            Err(e) => tracing::error!(table = t, "skipping an undecodable record: {e}"),
        }
    }
    Ok(out)
}

/// `sm_meta` key saying every namespace record is in format 2.
const MIGRATED: &[u8] = b"records_format";
/// Bytes of rewritten records per write batch.
const MIGRATION_BATCH_BYTES: usize = 4 << 20;

/// Rewrites the namespace records an earlier release wrote as JSON in the
/// compact form, in bounded batches, once (again after a snapshot install,
/// which may bring JSON records from an older leader). Returns how many it
/// rewrote.
pub(crate) fn migrate(db: &DB) -> Result<u64, StoreError> {
    if table::get::<u8>(db, SM_META, MIGRATED)? == Some(FORMAT_V2) {
        return Ok(0);
    }
    fn rewrite<T: Record>(
        db: &DB,
        t: &str,
        batch: &mut WriteBatch,
        count: &mut u64,
    ) -> Result<(), StoreError> {
        let handle = cf(db, t)?;
        for item in db.iterator_cf(handle, rocksdb::IteratorMode::Start) {
            let (key, value) = item?;
            if value.first() != Some(&FORMAT_V1) {
                continue;
            }
            batch.put_cf(handle, &key, T::from_bytes(&value)?.to_bytes()?);
            *count += 1;
            if batch.size_in_bytes() >= MIGRATION_BATCH_BYTES {
                db.write(std::mem::take(batch))?;
            }
        }
        Ok(())
    }
    let (mut batch, mut count) = (WriteBatch::default(), 0);
    rewrite::<InodeRecord>(db, "inodes", &mut batch, &mut count)?;
    rewrite::<u64>(db, "dirents", &mut batch, &mut count)?;
    rewrite::<ChunkRef>(db, "extents", &mut batch, &mut count)?;
    rewrite::<ChunkRecord>(db, "chunks", &mut batch, &mut count)?;
    rewrite::<UploadRecord>(db, "uploads", &mut batch, &mut count)?;
    rewrite::<UsageRecord>(db, "usage", &mut batch, &mut count)?;
    table::put(db, &mut batch, SM_META, MIGRATED, &FORMAT_V2)?;
    db.write(batch)?;
    db.flush_wal(true)?;
    if count > 0 {
        tracing::info!(
            records = count,
            "rewrote the namespace records of an earlier release in the compact format"
        );
    }
    Ok(count)
}

/// After a snapshot install the tables may hold an older leader's records.
pub(crate) fn forget_migration(db: &DB, batch: &mut WriteBatch) -> Result<(), StoreError> {
    table::delete(db, batch, SM_META, MIGRATED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inode() -> InodeRecord {
        InodeRecord {
            id: 42,
            kind: InodeKind::File,
            size: 9,
            mtime: 1_700_000_000,
            chunks: vec![ChunkRef {
                hash: ChunkHash::of(b"x"),
                len: 9,
            }],
            extents: 0,
            upload: Some("0123456789abcdef0123456789abcdef".into()),
            owner: "alice".into(),
            generation: 3,
            object: None,
        }
    }

    #[test]
    fn records_round_trip_and_read_their_json_form_too() {
        let record = inode();
        let compact = record.to_bytes().unwrap();
        let json = table::encode(&record).unwrap();
        assert_eq!(compact[0], FORMAT_V2);
        assert!(
            compact.len() * 2 < json.len(),
            "{} vs {}",
            compact.len(),
            json.len()
        );
        assert_eq!(InodeRecord::from_bytes(&compact).unwrap(), record);
        assert_eq!(InodeRecord::from_bytes(&json).unwrap(), record);

        // A file on object storage keeps its object's key, ETag and size.
        let object = InodeRecord {
            chunks: Vec::new(),
            object: Some(ObjectRef {
                key: "wharf/alice/in/a.csv".into(),
                etag: "\"9b2cf535f27731c974343645a3985328\"".into(),
                size: 9,
            }),
            ..inode()
        };
        assert_eq!(
            InodeRecord::from_bytes(&object.to_bytes().unwrap()).unwrap(),
            object
        );
        assert_eq!(
            InodeRecord::from_bytes(&table::encode(&object).unwrap()).unwrap(),
            object
        );

        let chunk = ChunkRecord {
            hash: ChunkHash::of(b"y"),
            len: 4 << 20,
            replicas: vec![1, 2, 3],
            refs: 2,
        };
        assert_eq!(
            ChunkRecord::from_bytes(&chunk.to_bytes().unwrap()).unwrap(),
            chunk
        );
        assert_eq!(
            u64::from_bytes(&7_000_000u64.to_bytes().unwrap()).unwrap(),
            7_000_000
        );
        assert_eq!(u64::from_bytes(&table::encode(&7u64).unwrap()).unwrap(), 7);

        // An upload into object storage keeps its multipart upload, and
        // each durable part its ETag.
        let upload = UploadRecord {
            id: "u1".into(),
            path: "/alice/big.bin".into(),
            inode: 9,
            node: 2,
            durable: 16 << 20,
            heartbeat: 1_700_000_000,
            multipart: Some(MultipartState {
                key: "wharf/alice/big.bin".into(),
                id: "2~xLbvnA".into(),
                parts: 2,
                sha256: "6a09e667bb67ae85".into(),
            }),
        };
        for bytes in [upload.to_bytes().unwrap(), table::encode(&upload).unwrap()] {
            assert_eq!(UploadRecord::from_bytes(&bytes).unwrap(), upload);
        }
        let part = PartRecord {
            etag: "\"5d41402abc4b2a76b9719d911017c592\"".into(),
            len: 8 << 20,
        };
        assert_eq!(
            PartRecord::from_bytes(&part.to_bytes().unwrap()).unwrap(),
            part
        );
    }

    #[test]
    fn damaged_or_unknown_values_are_errors_not_panics() {
        let mut bytes = inode().to_bytes().unwrap();
        bytes.truncate(bytes.len() / 2);
        assert!(InodeRecord::from_bytes(&bytes).is_err());
        assert!(matches!(
            InodeRecord::from_bytes(&[9, 1, 2]),
            Err(CodecError::UnknownFormat(9))
        ));
        assert!(matches!(u64::from_bytes(&[]), Err(CodecError::Empty)));
        // A chunk hash of the wrong length.
        let bad = framed(&ChunkRefMessage {
            hash: vec![1, 2, 3],
            len: 1,
        });
        assert!(ChunkRef::from_bytes(&bad).is_err());
    }
}
