//! Store tests: openraft's storage conformance suite against the RocksDB
//! implementation, and the semantics of Wharf's own commands and snapshots.

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder, StorageError};
use tempfile::TempDir;

use crate::namespace_tests::{inline_upload, upload};
use crate::records::{TicketKeyRecord, UserRecord};
use crate::{open, Command, CommandResult, LogStore, NodeId, StateMachineStore, TypeConfig};

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<NodeId>> {
        let dir = tempfile::tempdir()
            .map_err(|e| StorageError::from(openraft::StorageIOError::read(&e)))?;
        let opened = open(dir.path())
            .await
            .map_err(|e| StorageError::from(openraft::StorageIOError::read(&e)))?;
        Ok((dir, opened.log, opened.state_machine))
    }
}

#[test]
fn openraft_storage_suite_passes_on_rocksdb() {
    Suite::test_all(RocksBuilder).unwrap();
}

fn user(name: &str, home: &str) -> UserRecord {
    UserRecord {
        name: name.into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        home: home.into(),
        permissions: vec!["all".into()],
        allow: vec![],
        deny: vec![],
        commands: vec![],
        login: String::new(),
        certificates: vec![],
        max_sessions: 0,
        upload_rate: 0,
        download_rate: 0,
        enabled: true,
        quota_bytes: 0,
        quota_files: 0,
        data_tls: String::new(),
    }
}

/// Applies a `PutUser` of `name` at log index `index`.
async fn put_user(store: &mut crate::OpenedStore, index: u64, name: &str, home: &str) {
    store
        .state_machine
        .apply(vec![entry(
            index,
            Command::PutUser {
                user: user(name, home),
                create_only: false,
            },
        )])
        .await
        .unwrap();
}

async fn build_snapshot(store: &mut crate::OpenedStore) -> openraft::storage::Snapshot<TypeConfig> {
    let mut builder = store.state_machine.get_snapshot_builder().await;
    builder.build_snapshot().await.unwrap()
}

fn user_names(store: &crate::OpenedStore) -> Vec<String> {
    store
        .reader
        .users()
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect()
}

fn entry(index: u64, command: Command) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(command),
    }
}

#[tokio::test]
async fn commands_change_tables_and_report_their_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).await.unwrap();
    let results = store
        .state_machine
        .apply(vec![
            entry(
                1,
                Command::PutUser {
                    user: user("alice", "/a"),
                    create_only: true,
                },
            ),
            entry(
                2,
                Command::PutUser {
                    user: user("alice", "/other"),
                    create_only: true,
                },
            ),
            entry(3, Command::RemoveUser { name: "bob".into() }),
            entry(
                4,
                Command::PutTicketKey(TicketKeyRecord {
                    id: 7,
                    secret: vec![1; 32],
                    created: 1,
                    activate_at: 2,
                    expires: 3,
                }),
            ),
        ])
        .await
        .unwrap();
    assert_eq!(
        results,
        vec![
            CommandResult::Done,
            CommandResult::AlreadyExists,
            CommandResult::NotFound,
            CommandResult::Done
        ]
    );
    let reader = &store.reader;
    assert_eq!(reader.user("alice").unwrap().unwrap().home, "/a");
    assert_eq!(reader.ticket_keys().unwrap()[0].id, 7);
    assert_eq!(reader.applied_index(), 4);
}

#[tokio::test]
async fn applied_state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path()).await.unwrap();
        put_user(&mut store, 1, "carol", "/c").await;
    }
    let mut store = open(dir.path()).await.unwrap();
    let (applied, _) = store.state_machine.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(1));
    assert!(store.reader.user("carol").unwrap().is_some());
    let log_state = store.log.get_log_state().await.unwrap();
    assert_eq!(log_state.last_log_id, None);
}

#[tokio::test]
async fn snapshot_installs_the_same_tables_on_another_node_and_drops_stale_rows() {
    let leader_dir = tempfile::tempdir().unwrap();
    let mut leader = open(leader_dir.path()).await.unwrap();
    leader
        .state_machine
        .apply(vec![
            entry(
                1,
                Command::PutUser {
                    user: user("dave", "/d"),
                    create_only: false,
                },
            ),
            entry(
                2,
                Command::PutSetting {
                    key: "cluster_name".into(),
                    value: "wharf".into(),
                },
            ),
            entry(3, Command::Fs(upload("up1", "/kept", b"kept bytes"))),
        ])
        .await
        .unwrap();
    let snapshot = build_snapshot(&mut leader).await;

    let follower_dir = tempfile::tempdir().unwrap();
    let mut follower = open(follower_dir.path()).await.unwrap();
    put_user(&mut follower, 1, "stale", "/s").await;
    let stale = entry(2, Command::Fs(upload("up2", "/stale", b"stale bytes")));
    follower.state_machine.apply(vec![stale]).await.unwrap();
    follower
        .state_machine
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    let names = user_names(&follower);
    assert_eq!(names, vec!["dave".to_owned()]);
    assert_eq!(
        follower.reader.setting("cluster_name").unwrap().as_deref(),
        Some("wharf")
    );
    assert_eq!(follower.reader.applied_index(), 3);
    // The chunk index is this node's own: rebuilt from the installed
    // records, the stale chunk gone from it.
    let census = follower.reader.chunk_census().unwrap();
    assert_eq!(census, leader.reader.chunk_census().unwrap());
    assert_eq!(census, vec![(crate::ChunkState::Placed(vec![1]), 1)]);
    let placed = follower.reader.chunks_in(&census[0].0, None, 10).unwrap();
    assert_eq!(placed[0].hash, crate::records::ChunkHash::of(b"kept bytes"));
    assert_eq!(placed.len(), 1);
    let current = follower
        .state_machine
        .get_current_snapshot()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.meta.last_log_id.map(|l| l.index), Some(3));
}

/// Inline chunk rows are each node's own: a snapshot neither carries the
/// leader's nor drops the installing node's (their bytes are still chunks
/// the cluster lists on it, waiting to be stored as files).
#[tokio::test]
async fn inline_chunk_rows_stay_out_of_snapshots_and_survive_an_install() {
    let quota = crate::records::Quota::default();
    let leader_dir = tempfile::tempdir().unwrap();
    let mut leader = open(leader_dir.path()).await.unwrap();
    let written = entry(
        1,
        Command::Fs(inline_upload("u1", "/a", b"leader's", quota)),
    );
    leader.state_machine.apply(vec![written]).await.unwrap();
    let snapshot = build_snapshot(&mut leader).await;

    let follower_dir = tempfile::tempdir().unwrap();
    let mut follower = open(follower_dir.path()).await.unwrap();
    let own = entry(1, Command::Fs(inline_upload("u2", "/b", b"its own", quota)));
    follower.state_machine.apply(vec![own]).await.unwrap();
    follower
        .state_machine
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    assert!(follower.reader.lookup("/a").unwrap().is_some());
    let rows = follower.reader.inline_waiting(10, 1 << 20).unwrap();
    let own = crate::records::ChunkHash::of(b"its own");
    let found: Vec<_> = rows.iter().map(|r| (r.hash, r.bytes.clone())).collect();
    assert_eq!(found, vec![(own, b"its own".to_vec())]);
}

fn acme_order(url: &str, token: &str) -> crate::records::AcmeOrder {
    crate::records::AcmeOrder {
        url: url.into(),
        key_pem: "-----BEGIN PRIVATE KEY-----\nk\n".into(),
        challenges: vec![crate::records::AcmeChallenge {
            token: token.into(),
            key_authorization: format!("{token}.thumb"),
        }],
        started: 1,
        started_by: 1,
    }
}

#[tokio::test]
async fn acme_orders_change_only_from_the_order_their_writer_saw() {
    use crate::records::{AcmeCertRecord, CertRecord, CertSource};
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).await.unwrap();
    let config = AcmeCertRecord::new(
        "Default",
        vec!["ftp.example.test".into()],
        "https://acme.test/dir",
    );
    let set = |expected: Option<&str>, order, error: Option<&str>| Command::SetAcmeOrder {
        name: "default".into(),
        expected: expected.map(Into::into),
        order,
        error: error.map(Into::into),
    };
    let cert = CertRecord {
        name: "default".into(),
        chain_pem: "CHAIN".into(),
        key_pem: "KEY".into(),
        not_before: 1,
        not_after: 2,
        source: CertSource::Acme,
        generation: 2,
    };
    let complete = |url: &str| Command::CompleteAcmeOrder {
        cert: cert.clone(),
        order_url: url.into(),
    };
    let results = store
        .state_machine
        .apply(vec![
            entry(1, set(None, None, None)),
            entry(2, Command::PutAcmeCert(config)),
            entry(3, set(None, Some(acme_order("o/1", "t1")), None)),
            // A deposed leader that still believes there is no order.
            entry(4, set(None, Some(acme_order("o/2", "t2")), None)),
            entry(5, complete("o/2")),
            entry(6, set(Some("o/1"), None, Some("validation failed"))),
            entry(7, set(None, Some(acme_order("o/3", "t3")), None)),
            entry(8, complete("o/3")),
        ])
        .await
        .unwrap();
    use CommandResult::{Done, NotFound, Superseded};
    assert_eq!(
        results,
        vec![NotFound, Done, Done, Superseded, Superseded, Done, Done, Done]
    );
    let reader = &store.reader;
    let acme = &reader.acme_certs().unwrap()[0];
    assert_eq!(acme.order, None, "completed");
    assert_eq!(
        (acme.last_error.as_str(), acme.failures),
        ("", 0),
        "a success clears the failure"
    );
    assert_eq!(reader.certs().unwrap(), vec![cert]);
    assert_eq!(reader.acme_key_authorization("t3").unwrap(), None);

    store
        .state_machine
        .apply(vec![entry(
            9,
            set(None, Some(acme_order("o/4", "t4")), None),
        )])
        .await
        .unwrap();
    assert_eq!(
        reader.acme_key_authorization("t4").unwrap().as_deref(),
        Some("t4.thumb"),
        "every node answers a pending challenge from the store"
    );
    assert_eq!(reader.acme_key_authorization("t1").unwrap(), None);
}

/// A leader's store holding `users` accounts, and its snapshot file.
async fn leader_with_snapshot(
    dir: &std::path::Path,
    users: usize,
) -> (crate::OpenedStore, openraft::storage::Snapshot<TypeConfig>) {
    let mut leader = open(dir).await.unwrap();
    let entries = (0..users)
        .map(|i| {
            entry(
                i as u64 + 1,
                Command::PutUser {
                    user: user(&format!("u{i:05}"), "/h"),
                    create_only: false,
                },
            )
        })
        .collect::<Vec<_>>();
    leader.state_machine.apply(entries).await.unwrap();
    let snapshot = build_snapshot(&mut leader).await;
    (leader, snapshot)
}

#[tokio::test]
async fn snapshots_are_files_and_only_the_newest_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (mut leader, first) = leader_with_snapshot(dir.path(), 3).await;
    put_user(&mut leader, 4, "late", "/l").await;
    let second = build_snapshot(&mut leader).await;
    assert_ne!(first.meta.snapshot_id, second.meta.snapshot_id);
    let files: Vec<_> = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["current.snap"]);
    let current = leader
        .state_machine
        .get_current_snapshot()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.meta, second.meta);
    // No snapshot inside RocksDB: the state machine's metadata stays small.
    let db_bytes: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| std::fs::read(e.path()).unwrap())
        .filter(|bytes| bytes.windows(8).any(|w| w == b"WHARFSNP"))
        .count() as u64;
    assert_eq!(db_bytes, 0, "a snapshot file's bytes are inside the store");
}

#[tokio::test]
async fn an_install_interrupted_by_a_crash_is_finished_when_the_store_opens() {
    let leader_dir = tempfile::tempdir().unwrap();
    let (_leader, snapshot) = leader_with_snapshot(leader_dir.path(), 2_000).await;

    let follower_dir = tempfile::tempdir().unwrap();
    {
        let mut follower = open(follower_dir.path()).await.unwrap();
        put_user(&mut follower, 1, "stale", "/s").await;
    }
    // What a crash in the middle of loading the tables leaves: the checked
    // file as the current snapshot, the install record, old and new rows mixed.
    std::fs::copy(
        leader_dir.path().join("snapshots/current.snap"),
        follower_dir.path().join("snapshots/current.snap"),
    )
    .unwrap();
    {
        let db = rocksdb::DB::open_cf(
            &rocksdb::Options::default(),
            follower_dir.path(),
            crate::db::column_families(),
        )
        .unwrap();
        let mut batch = rocksdb::WriteBatch::default();
        crate::table::put(
            &db,
            &mut batch,
            crate::columns::SM_META,
            b"installing",
            &snapshot.meta.snapshot_id,
        )
        .unwrap();
        crate::table::put(&db, &mut batch, "users", b"u00007", &user("u00007", "/h")).unwrap();
        db.write(batch).unwrap();
    }

    let reopened = open(follower_dir.path()).await.unwrap();
    let names = user_names(&reopened);
    assert_eq!(names.len(), 2_000);
    assert!(!names.contains(&"stale".to_owned()));
    assert_eq!(reopened.reader.applied_index(), 2_000);
    let marker: Option<String> = crate::table::get(
        &reopened_db(&reopened),
        crate::columns::SM_META,
        b"installing",
    )
    .unwrap();
    assert_eq!(marker, None);
}

fn reopened_db(store: &crate::OpenedStore) -> std::sync::Arc<rocksdb::DB> {
    store.state_machine.db()
}

#[tokio::test]
async fn a_damaged_snapshot_is_refused_and_the_tables_stay_as_they_were() {
    let leader_dir = tempfile::tempdir().unwrap();
    let (_leader, snapshot) = leader_with_snapshot(leader_dir.path(), 50).await;
    let mut bytes = std::fs::read(leader_dir.path().join("snapshots/current.snap")).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;

    let follower_dir = tempfile::tempdir().unwrap();
    let mut follower = open(follower_dir.path()).await.unwrap();
    put_user(&mut follower, 1, "kept", "/k").await;
    let mut received = follower
        .state_machine
        .begin_receiving_snapshot()
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut *received, &bytes)
        .await
        .unwrap();
    let result = follower
        .state_machine
        .install_snapshot(&snapshot.meta, received)
        .await;
    assert!(result.is_err(), "a damaged snapshot was installed");
    let names = user_names(&follower);
    assert_eq!(names, ["kept"]);
    assert!(follower
        .state_machine
        .get_current_snapshot()
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_snapshot_kept_inside_the_store_by_an_earlier_release_is_dropped_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path()).await.unwrap();
        put_user(&mut store, 1, "old", "/o").await;
        let db = store.state_machine.db();
        let mut batch = rocksdb::WriteBatch::default();
        let legacy = serde_json::json!({"meta": {}, "data": [1, 2, 3]});
        crate::table::put(
            &db,
            &mut batch,
            crate::columns::SM_META,
            b"snapshot",
            &legacy,
        )
        .unwrap();
        db.write(batch).unwrap();
    }
    let mut store = open(dir.path()).await.unwrap();
    let db = store.state_machine.db();
    assert!(!crate::table::exists(&db, crate::columns::SM_META, b"snapshot").unwrap());
    assert!(store
        .state_machine
        .get_current_snapshot()
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.reader.users().unwrap().len(), 1);
    assert_eq!(store.reader.applied_index(), 1);
}
