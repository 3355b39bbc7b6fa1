//! What a Wharf node takes on disk, split the way the namespace benchmark
//! reports it: chunk files, the Raft store (log and tables), its snapshot.

use std::path::Path;

/// Bytes under a node's data directory, by part.
#[derive(Debug, Default, Clone, Copy)]
pub struct NodeDisk {
    /// `chunks/`: file contents.
    pub chunks: u64,
    /// `cluster/raft/` without its snapshots: RocksDB's files (log, tables, WAL).
    pub store: u64,
    /// `cluster/raft/snapshots/`.
    pub snapshots: u64,
    /// Everything under the data directory.
    pub total: u64,
}

/// Bytes of the regular files under `dir`, recursively; 0 when it is missing.
pub fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => bytes_under(&entry.path()),
            Ok(t) if t.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

pub fn node_disk(data_dir: &Path) -> NodeDisk {
    let raft = data_dir.join("cluster").join("raft");
    let snapshots = bytes_under(&raft.join("snapshots"));
    NodeDisk {
        chunks: bytes_under(&data_dir.join("chunks")),
        store: bytes_under(&raft).saturating_sub(snapshots),
        snapshots,
        total: bytes_under(data_dir),
    }
}

/// Resident memory of one process, KiB (`VmRSS`); 0 when it is gone.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_a_data_directory_are_counted_apart() {
        let dir = tempfile::tempdir().unwrap();
        let raft = dir.path().join("cluster/raft/snapshots");
        std::fs::create_dir_all(&raft).unwrap();
        std::fs::create_dir_all(dir.path().join("chunks/ab")).unwrap();
        std::fs::write(dir.path().join("chunks/ab/c"), [0u8; 100]).unwrap();
        std::fs::write(dir.path().join("cluster/raft/000001.log"), [0u8; 30]).unwrap();
        std::fs::write(raft.join("current.snap"), [0u8; 7]).unwrap();
        let disk = node_disk(dir.path());
        assert_eq!((disk.chunks, disk.store, disk.snapshots), (100, 30, 7));
        assert_eq!(disk.total, 137);
        assert!(rss_kib(std::process::id()) > 0);
    }
}
