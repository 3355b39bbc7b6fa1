//! The state machine: tables in column families, updated by applying log
//! entries. Each entry's table changes, `last_applied` and membership go into
//! one `WriteBatch`, so after a crash the tables and `last_applied` agree and
//! openraft re-applies exactly what is missing.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use rocksdb::{WriteBatch, DB};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::command::{Command, CommandResult};
use crate::db::{StoreError, SM_META};
use crate::reader::StateReader;
use crate::records::{AcmeAccountRecord, AcmeCertRecord};
use crate::table::{self, cf, TABLES};
use crate::{ClusterNode, NodeId, TypeConfig};

type StorageResult<T> = Result<T, StorageError<NodeId>>;

const LAST_APPLIED: &[u8] = b"last_applied";
const MEMBERSHIP: &[u8] = b"membership";
const SNAPSHOT: &[u8] = b"snapshot";

/// One stored row: key and encoded value.
type Row = (Vec<u8>, Vec<u8>);

/// Every row of every table, as shipped to a follower that is too far behind.
#[derive(Serialize, Deserialize, Default)]
struct SnapshotImage {
    tables: Vec<(String, Vec<Row>)>,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, ClusterNode>,
    data: Vec<u8>,
}

#[derive(Clone)]
pub struct StateMachineStore {
    db: Arc<DB>,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, ClusterNode>,
    applied_tx: Arc<watch::Sender<u64>>,
    snapshot_seq: Arc<AtomicU64>,
}

fn io(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: StoreError) -> StorageError<NodeId> {
    StorageIOError::new(subject, verb, openraft::AnyError::new(&e)).into()
}

impl StateMachineStore {
    pub(crate) fn load(db: Arc<DB>) -> Result<Self, StoreError> {
        let last_applied: Option<LogId<NodeId>> = table::get(&db, SM_META, LAST_APPLIED)?;
        let membership = table::get(&db, SM_META, MEMBERSHIP)?.unwrap_or_default();
        let (applied_tx, _) = watch::channel(last_applied.map_or(0, |l| l.index));
        Ok(Self {
            db,
            last_applied,
            membership,
            applied_tx: Arc::new(applied_tx),
            snapshot_seq: Arc::new(AtomicU64::new(0)),
        })
    }

    pub(crate) fn reader(&self) -> StateReader {
        StateReader::new(self.db.clone(), self.applied_tx.subscribe())
    }

    fn apply_command(
        &self,
        batch: &mut WriteBatch,
        command: Command,
    ) -> Result<CommandResult, StoreError> {
        let db = &*self.db;
        let removed =
            |batch: &mut WriteBatch, t: &str, key: &[u8]| -> Result<CommandResult, StoreError> {
                if table::exists(db, t, key)? {
                    table::delete(db, batch, t, key)?;
                    Ok(CommandResult::Done)
                } else {
                    Ok(CommandResult::NotFound)
                }
            };
        match command {
            Command::PutUser { user, create_only } => {
                if create_only && table::exists(db, "users", user.name.as_bytes())? {
                    return Ok(CommandResult::AlreadyExists);
                }
                table::put(db, batch, "users", user.name.as_bytes(), &user)?;
            }
            Command::RemoveUser { name } => return removed(batch, "users", name.as_bytes()),
            Command::SetPassword {
                name,
                password_hash,
            } => {
                let Some(mut user) =
                    table::get::<crate::records::UserRecord>(db, "users", name.as_bytes())?
                else {
                    return Ok(CommandResult::NotFound);
                };
                user.password_hash = password_hash;
                table::put(db, batch, "users", name.as_bytes(), &user)?;
            }
            Command::SetDataTls { name, rule } => {
                let Some(mut user) =
                    table::get::<crate::records::UserRecord>(db, "users", name.as_bytes())?
                else {
                    return Ok(CommandResult::NotFound);
                };
                user.data_tls = rule;
                table::put(db, batch, "users", name.as_bytes(), &user)?;
            }
            Command::PutCert(cert) => {
                let key = cert.name.to_ascii_lowercase();
                table::put(db, batch, "certs", key.as_bytes(), &cert)?;
            }
            Command::RemoveCert { name } => {
                return removed(batch, "certs", name.to_ascii_lowercase().as_bytes())
            }
            Command::PutCa(ca) => table::put(db, batch, "ca", b"ca", &ca)?,
            Command::PutTicketKey(key) => {
                table::put(db, batch, "ticket_keys", &key.id.to_be_bytes(), &key)?
            }
            Command::RemoveTicketKey { id } => {
                return removed(batch, "ticket_keys", &id.to_be_bytes())
            }
            Command::PutTrustAnchor(anchor) => {
                table::put(db, batch, "trust", anchor.name.as_bytes(), &anchor)?
            }
            Command::RemoveTrustAnchor { name } => return removed(batch, "trust", name.as_bytes()),
            Command::PutBan(ban) => table::put(db, batch, "bans", ban.address.as_bytes(), &ban)?,
            Command::RemoveBan { address } => return removed(batch, "bans", address.as_bytes()),
            Command::PutAcmeCert(acme) => {
                let key = AcmeCertRecord::key(&acme.name);
                table::put(db, batch, "acme", key.as_bytes(), &acme)?
            }
            Command::RemoveAcmeCert { name } => {
                return removed(batch, "acme", AcmeCertRecord::key(&name).as_bytes())
            }
            Command::PutAcmeAccount(account) => {
                let key = AcmeAccountRecord::key(&account.directory);
                table::put(db, batch, "acme", key.as_bytes(), &account)?
            }
            Command::SetAcmeOrder {
                name,
                expected,
                order,
                error,
            } => {
                let key = AcmeCertRecord::key(&name);
                let Some(mut acme) = table::get::<AcmeCertRecord>(db, "acme", key.as_bytes())?
                else {
                    return Ok(CommandResult::NotFound);
                };
                if acme.order.as_ref().map(|o| &o.url) != expected.as_ref() {
                    return Ok(CommandResult::Superseded);
                }
                acme.order = order;
                if let Some(error) = error {
                    acme.last_error = error;
                    acme.failures = acme.failures.saturating_add(1);
                }
                table::put(db, batch, "acme", key.as_bytes(), &acme)?
            }
            Command::CompleteAcmeOrder { cert, order_url } => {
                let key = AcmeCertRecord::key(&cert.name);
                let Some(mut acme) = table::get::<AcmeCertRecord>(db, "acme", key.as_bytes())?
                else {
                    return Ok(CommandResult::NotFound);
                };
                if acme.order.as_ref().map(|o| &o.url) != Some(&order_url) {
                    return Ok(CommandResult::Superseded);
                }
                acme.order = None;
                acme.last_error.clear();
                acme.failures = 0;
                table::put(db, batch, "acme", key.as_bytes(), &acme)?;
                let name = cert.name.to_ascii_lowercase();
                table::put(db, batch, "certs", name.as_bytes(), &cert)?
            }
            Command::PutSetting { key, value } => {
                table::put(db, batch, "settings", key.as_bytes(), &value)?
            }
            Command::Fs(fs) => {
                return crate::namespace::apply(&mut crate::namespace::Txn::new(db, batch), fs)
            }
            Command::FsBatch(commands) => {
                // One transaction: each change sees those before it.
                let mut txn = crate::namespace::Txn::new(db, batch);
                let results = commands
                    .into_iter()
                    .map(|fs| crate::namespace::apply(&mut txn, fs))
                    .collect::<Result<_, _>>()?;
                return Ok(CommandResult::Batch(results));
            }
        }
        Ok(CommandResult::Done)
    }

    fn read_current_snapshot(&self) -> Result<Option<StoredSnapshot>, StoreError> {
        table::get(&self.db, SM_META, SNAPSHOT)
    }

    fn install_image(
        &mut self,
        meta: &SnapshotMeta<NodeId, ClusterNode>,
        data: Vec<u8>,
    ) -> Result<(), StoreError> {
        let image: SnapshotImage =
            serde_json::from_slice(&data).map_err(table::CodecError::from)?;
        let db = &*self.db;
        let mut batch = WriteBatch::default();
        for name in TABLES {
            let handle = cf(db, name)?;
            for item in db.iterator_cf(handle, rocksdb::IteratorMode::Start) {
                let (key, _) = item?;
                batch.delete_cf(handle, key);
            }
        }
        for (name, rows) in image.tables {
            if !TABLES.contains(&name.as_str()) {
                tracing::warn!(table = %name, "snapshot holds an unknown table; skipped");
                continue;
            }
            let handle = cf(db, &name)?;
            for (key, value) in rows {
                batch.put_cf(handle, key, value);
            }
        }
        let membership = meta.last_membership.clone();
        table::put(db, &mut batch, SM_META, LAST_APPLIED, &meta.last_log_id)?;
        table::put(db, &mut batch, SM_META, MEMBERSHIP, &membership)?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        table::put(db, &mut batch, SM_META, SNAPSHOT, &stored)?;
        db.write(batch)?;
        db.flush_wal(true)?;
        self.last_applied = meta.last_log_id;
        self.membership = membership;
        self.applied_tx
            .send_replace(meta.last_log_id.map_or(0, |l| l.index));
        tracing::info!(
            snapshot = %meta.snapshot_id,
            up_to = ?meta.last_log_id.map(|l| l.index),
            "installed a snapshot from the leader"
        );
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let read = |e: StoreError| io(ErrorSubject::StateMachine, ErrorVerb::Read, e);
        // A RocksDB snapshot gives one consistent view even while entries
        // keep being applied.
        let db = &*self.db;
        let view = db.snapshot();
        let mut image = SnapshotImage::default();
        for name in TABLES {
            let handle = cf(db, name).map_err(read)?;
            let mut rows = Vec::new();
            for item in view.iterator_cf(handle, rocksdb::IteratorMode::Start) {
                let (key, value) = item.map_err(|e| read(e.into()))?;
                rows.push((key.to_vec(), value.to_vec()));
            }
            image.tables.push((name.to_owned(), rows));
        }
        let meta_cf = cf(db, SM_META).map_err(read)?;
        let decode_meta =
            |key: &[u8]| -> Result<Option<Vec<u8>>, StoreError> { Ok(view.get_cf(meta_cf, key)?) };
        let last_applied: Option<LogId<NodeId>> = match decode_meta(LAST_APPLIED).map_err(read)? {
            Some(v) => table::decode(&v).map_err(|e| read(e.into()))?,
            None => None,
        };
        let membership: StoredMembership<NodeId, ClusterNode> =
            match decode_meta(MEMBERSHIP).map_err(read)? {
                Some(v) => table::decode(&v).map_err(|e| read(e.into()))?,
                None => StoredMembership::default(),
            };
        drop(view);
        let data = serde_json::to_vec(&image)
            .map_err(|e| read(StoreError::Codec(table::CodecError::Json(e))))?;
        let seq = self.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}-{seq}", l.leader_id, l.index),
            None => format!("--{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        let mut batch = WriteBatch::default();
        table::put(db, &mut batch, SM_META, SNAPSHOT, &stored).map_err(|e| {
            io(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
                e,
            )
        })?;
        db.write(batch).map_err(|e| {
            io(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
                e.into(),
            )
        })?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, ClusterNode>)> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<CommandResult>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let write = |e| io(ErrorSubject::StateMachine, ErrorVerb::Write, e);
        let mut results = Vec::new();
        for entry in entries {
            let mut batch = WriteBatch::default();
            let result = match entry.payload {
                EntryPayload::Blank => CommandResult::Done,
                EntryPayload::Normal(command) => {
                    self.apply_command(&mut batch, command).map_err(write)?
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    table::put(&self.db, &mut batch, SM_META, MEMBERSHIP, &self.membership)
                        .map_err(write)?;
                    CommandResult::Done
                }
            };
            table::put(
                &self.db,
                &mut batch,
                SM_META,
                LAST_APPLIED,
                &Some(entry.log_id),
            )
            .map_err(write)?;
            self.db.write(batch).map_err(|e| write(e.into()))?;
            self.last_applied = Some(entry.log_id);
            results.push(result);
        }
        if let Some(last) = self.last_applied {
            self.applied_tx.send_replace(last.index);
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, ClusterNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        self.install_image(meta, snapshot.into_inner())
            .map_err(|e| {
                io(
                    ErrorSubject::Snapshot(Some(meta.signature())),
                    ErrorVerb::Write,
                    e,
                )
            })
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let stored = self
            .read_current_snapshot()
            .map_err(|e| io(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))?;
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
