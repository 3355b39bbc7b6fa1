//! Typed tables over column families. Values carry a leading format byte so a
//! later release can recognise and migrate older encodings.

use rocksdb::{ColumnFamily, WriteBatch, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use crate::error::CodecError;
use crate::error::StoreError;

/// Encoding of every value written by this release: JSON after the byte.
pub const FORMAT_V1: u8 = 1;

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![FORMAT_V1];
    serde_json::to_writer(&mut out, value)?;
    Ok(out)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&FORMAT_V1, rest)) => Ok(serde_json::from_slice(rest)?),
        Some((&other, _)) => Err(CodecError::UnknownFormat(other)),
    }
}

/// The state-machine tables, in the order snapshots list them.
pub const TABLES: [&str; 19] = [
    "users",
    "certs",
    "ca",
    "ticket_keys",
    "bans",
    "acme",
    "settings",
    "inodes",
    "dirents",
    "uploads",
    "chunks",
    "usage",
    "trust",
    "extents",
    "events",
    "sinks",
    "announced",
    "parts",
    "object_trash",
];

pub fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a ColumnFamily, StoreError> {
    // Every column family is created at open; a missing one is a corrupt store.
    db.cf_handle(name)
        .ok_or_else(|| StoreError::MissingColumnFamily(name.to_owned()))
}

/// Values of one table, decoded, in key order.
pub fn scan<T: DeserializeOwned>(db: &DB, table: &str) -> Result<Vec<T>, StoreError> {
    let handle = cf(db, table)?;
    let mut out = Vec::new();
    for item in db.iterator_cf(handle, rocksdb::IteratorMode::Start) {
        let (_, value) = item?;
        match decode(&value) {
            Ok(v) => out.push(v),
            Err(e) => tracing::error!(table, "skipping an undecodable record: {e}"),
        }
    }
    Ok(out)
}

/// Values of one table whose keys start with `prefix`, decoded, in key order.
pub fn scan_prefix<T: DeserializeOwned>(
    db: &DB,
    table: &str,
    prefix: &[u8],
) -> Result<Vec<T>, StoreError> {
    let handle = cf(db, table)?;
    let mut out = Vec::new();
    let from = rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward);
    for item in db.iterator_cf(handle, from) {
        let (key, value) = item?;
        if !key.starts_with(prefix) {
            break;
        }
        match decode(&value) {
            Ok(v) => out.push(v),
            Err(e) => tracing::error!(table, "skipping an undecodable record: {e}"),
        }
    }
    Ok(out)
}

pub fn get<T: DeserializeOwned>(db: &DB, table: &str, key: &[u8]) -> Result<Option<T>, StoreError> {
    let handle = cf(db, table)?;
    match db.get_cf(handle, key)? {
        None => Ok(None),
        Some(v) => Ok(Some(decode(&v)?)),
    }
}

pub fn put<T: Serialize>(
    db: &DB,
    batch: &mut WriteBatch,
    table: &str,
    key: &[u8],
    value: &T,
) -> Result<(), StoreError> {
    batch.put_cf(cf(db, table)?, key, encode(value)?);
    Ok(())
}

pub fn delete(db: &DB, batch: &mut WriteBatch, table: &str, key: &[u8]) -> Result<(), StoreError> {
    batch.delete_cf(cf(db, table)?, key);
    Ok(())
}

pub fn exists(db: &DB, table: &str, key: &[u8]) -> Result<bool, StoreError> {
    Ok(db.get_pinned_cf(cf(db, table)?, key)?.is_some())
}

/// Deletes every row of a table.
pub fn clear(db: &DB, table: &str) -> Result<(), StoreError> {
    let handle = cf(db, table)?;
    let last = db
        .iterator_cf(handle, rocksdb::IteratorMode::End)
        .next()
        .transpose()?;
    if let Some((last, _)) = last {
        let mut end = last.to_vec();
        end.push(0);
        db.delete_range_cf(handle, [].as_slice(), end.as_slice())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_unknown_formats_are_refused() {
        let bytes = encode(&vec!["a".to_owned()]).unwrap();
        assert_eq!(bytes[0], FORMAT_V1);
        assert_eq!(decode::<Vec<String>>(&bytes).unwrap(), vec!["a".to_owned()]);
        let mut future = bytes.clone();
        future[0] = 9;
        assert!(matches!(
            decode::<Vec<String>>(&future),
            Err(CodecError::UnknownFormat(9))
        ));
        assert!(matches!(decode::<Vec<String>>(&[]), Err(CodecError::Empty)));
    }
}
