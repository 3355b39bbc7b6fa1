//! Namespace changes made at the same time share log entries (group commit),
//! and each caller still gets its own result: a real one-node cluster, with
//! its RocksDB store and its gRPC listener.

// Test and benchmark code: a failed unwrap is the run failing (the workspace
// denies these lints outside tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Duration;

use wharf_cluster::{ClusterConfig, ClusterHandle};
use wharf_store::{Command, CommandResult, FsCommand};

async fn one_node(dir: &std::path::Path) -> Arc<ClusterHandle> {
    let chunks = wharf_blob::ChunkStore::open(dir.join("chunks")).unwrap();
    let running = wharf_cluster::start(ClusterConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        advertise: None,
        join: None,
        snapshot: Default::default(),
        store_limits: Default::default(),
        chunk_store: Arc::new(chunks),
        source: None,
        secrets: None,
    })
    .await
    .unwrap();
    let node = running.handle;
    for _ in 0..100 {
        if node.is_leader().await {
            return node;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("a one-node cluster did not elect itself");
}

fn mkdir(path: String) -> Command {
    Command::Fs(FsCommand::Mkdir {
        path,
        parents: false,
        mtime: 1,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_share_entries_and_each_gets_its_own_result() {
    let dir = tempfile::tempdir().unwrap();
    let node = one_node(dir.path()).await;
    let writers = 64;
    // Every directory twice: of each pair, one is created, the other refused.
    let tasks: Vec<_> = (0..writers * 2)
        .map(|i| {
            let node = node.clone();
            tokio::spawn(async move { node.write_indexed(mkdir(format!("/d{}", i / 2))).await })
        })
        .collect();
    let mut indexes = std::collections::BTreeSet::new();
    let mut results = vec![Vec::new(); writers];
    for (i, task) in tasks.into_iter().enumerate() {
        let (result, index) = task.await.unwrap().unwrap();
        indexes.insert(index);
        results[i / 2].push(result);
    }
    for (d, mut pair) in results.into_iter().enumerate() {
        pair.sort_by_key(|r| format!("{r:?}"));
        assert_eq!(
            pair,
            vec![CommandResult::AlreadyExists, CommandResult::Done],
            "/d{d}: one mkdir creates it, the other finds it"
        );
        assert!(node.reader().lookup(&format!("/d{d}")).unwrap().is_some());
    }
    assert!(
        indexes.len() < writers,
        "{} changes made at once took {} log entries",
        writers * 2,
        indexes.len()
    );
}
