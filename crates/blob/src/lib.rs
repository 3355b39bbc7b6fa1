//! Wharf's chunk store (DESIGN.md §6): file contents cut into chunks named by
//! their BLAKE3 hash and kept under the node's data dir. A chunk is written to
//! a temporary file, fsynced and renamed into place, so a crash leaves either
//! the whole chunk or nothing under its name. Reads check each chunk against
//! a fast checksum stored with it (`checksum`), falling back to its name.
//! Replication between nodes and
//! the namespace that references chunks live in the cluster and store crates.

mod checksum;
mod hash;
mod store;

pub use checksum::Checksum;
pub use hash::{ChunkHash, HashError};
pub use store::{ChunkStore, StoredChunk};

/// Target size of a chunk: an upload is cut every this many bytes; the last
/// chunk of an upload is shorter.
pub const DEFAULT_CHUNK_SIZE: usize = 4 * 1024 * 1024;
