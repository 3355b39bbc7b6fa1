//! Store tests: openraft's storage conformance suite against the RocksDB
//! implementation, and the semantics of Wharf's own commands and snapshots.

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder, StorageError};
use tempfile::TempDir;

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
        store
            .state_machine
            .apply(vec![entry(
                1,
                Command::PutUser {
                    user: user("carol", "/c"),
                    create_only: false,
                },
            )])
            .await
            .unwrap();
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
        ])
        .await
        .unwrap();
    let snapshot = leader
        .state_machine
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();

    let follower_dir = tempfile::tempdir().unwrap();
    let mut follower = open(follower_dir.path()).await.unwrap();
    follower
        .state_machine
        .apply(vec![entry(
            1,
            Command::PutUser {
                user: user("stale", "/s"),
                create_only: false,
            },
        )])
        .await
        .unwrap();
    follower
        .state_machine
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    let names: Vec<_> = follower
        .reader
        .users()
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, vec!["dave".to_owned()]);
    assert_eq!(
        follower.reader.setting("cluster_name").unwrap().as_deref(),
        Some("wharf")
    );
    assert_eq!(follower.reader.applied_index(), 2);
    let current = follower
        .state_machine
        .get_current_snapshot()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.meta.last_log_id.map(|l| l.index), Some(2));
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
