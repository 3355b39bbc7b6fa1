//! The fast check a chunk file carries against disk damage.
//!
//! A chunk's name is its BLAKE3 hash, and checking a chunk against its name on
//! every read costs a quarter of a core at download speed. What a read must
//! catch is damage on disk (bits that rotted, a torn sector), not a forger with
//! write access to the data dir (who could rewrite the Raft store just as
//! well). So each chunk file carries the XXH3-128 checksum of its bytes in an
//! extended attribute, written before the file is fsynced and renamed into
//! place, and a read compares against that: an order of magnitude cheaper than
//! BLAKE3 and as sure to notice accidental damage.
//!
//! BLAKE3 stays the authority. A chunk without the attribute (written before
//! it existed, or on a file system without user extended attributes) or whose
//! attribute does not match is checked against its name; if the bytes are
//! right after all, the attribute is (re)written for the next read.

use std::fs::File;
use std::io;

use xattr::FileExt;

/// The extended attribute holding the checksum.
const ATTRIBUTE: &str = "user.wharf.xxh3";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Checksum([u8; 16]);

impl Checksum {
    pub fn of(bytes: &[u8]) -> Self {
        Self(xxhash_rust::xxh3::xxh3_128(bytes).to_le_bytes())
    }

    /// The checksum `file` carries, if any. An attribute of the wrong length
    /// (damaged) counts as none: the caller falls back to BLAKE3.
    pub fn read_from(file: &File) -> Option<Self> {
        match file.get_xattr(ATTRIBUTE) {
            Ok(Some(value)) => <[u8; 16]>::try_from(value.as_slice()).ok().map(Self),
            Ok(None) => None,
            Err(e) => {
                tracing::trace!("chunk checksum not readable: {e}");
                None
            }
        }
    }

    /// Attaches the checksum to `file`. A file system without user extended
    /// attributes refuses; its chunks are then checked with BLAKE3 on every
    /// read, which is slower but no less safe.
    pub fn write_to(&self, file: &File) -> io::Result<()> {
        file.set_xattr(ATTRIBUTE, &self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_a_different_byte_changes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        std::fs::write(&path, b"chunk").unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(Checksum::read_from(&file), None);
        match Checksum::of(b"chunk").write_to(&file) {
            Ok(()) => assert_eq!(Checksum::read_from(&file), Some(Checksum::of(b"chunk"))),
            Err(e) => eprintln!("skipped the attribute check: {e} (no user xattrs here)"),
        }
        assert_ne!(Checksum::of(b"chunk"), Checksum::of(b"chunl"));
    }
}
