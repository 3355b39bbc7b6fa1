//! The state machine: tables in column families, updated by applying log
//! entries. Each entry's table changes, `last_applied` and membership go into
//! one `WriteBatch`, so after a crash the tables and `last_applied` agree and
//! openraft re-applies exactly what is missing.
//!
//! Snapshots are files (see [`crate::snapshot`]), built and installed by the
//! blocking routines of [`crate::snapshot_io`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use rocksdb::{WriteBatch, DB};
use tokio::sync::watch;

use crate::columns::{LAST_APPLIED, MEMBERSHIP, SM_META};
use crate::command::{Command, CommandResult};
use crate::error::StoreError;
use crate::events::{last_event_id, EventKind, SinkRecord, ANNOUNCED, DROPPED, EVENTS, SINKS};
use crate::reader::StateReader;
use crate::records::{AcmeAccountRecord, AcmeCertRecord};
use crate::snapshot::SnapshotDir;
use crate::snapshot_io::{self, Promotion};
use crate::stats::StoreStats;
use crate::table;
use crate::{ClusterNode, NodeId, TypeConfig};

type StorageResult<T> = Result<T, StorageError<NodeId>>;

/// Where releases before snapshot files kept the whole snapshot, as one value.
const LEGACY_SNAPSHOT: &[u8] = b"snapshot";

#[derive(Clone)]
pub struct StateMachineStore {
    db: Arc<DB>,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, ClusterNode>,
    applied_tx: Arc<watch::Sender<u64>>,
    snapshot_seq: Arc<AtomicU64>,
    snapshots: SnapshotDir,
    /// Serialises making a file the current snapshot: a build and an install
    /// may finish together, and the newer must win.
    promotion: Promotion,
    stats: StoreStats,
}

fn io(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: StoreError) -> StorageError<NodeId> {
    StorageIOError::new(subject, verb, openraft::AnyError::new(&e)).into()
}

impl StateMachineStore {
    pub(crate) fn load(
        db: Arc<DB>,
        snapshots: SnapshotDir,
        stats: StoreStats,
    ) -> Result<Self, StoreError> {
        let meta_cf = table::cf(&db, SM_META)?;
        if db.get_pinned_cf(meta_cf, LEGACY_SNAPSHOT)?.is_some() {
            // The next snapshot is built as a file; until then a follower
            // that needs one waits for it.
            db.delete_cf(meta_cf, LEGACY_SNAPSHOT)?;
            tracing::info!("dropped the snapshot an earlier release kept inside the store");
        }
        snapshot_io::finish_interrupted_install(&db, &snapshots)?;
        crate::compact::migrate(&db)?;
        crate::chunk_health::ensure_indexed(&db)?;
        let last_applied: Option<LogId<NodeId>> = table::get(&db, SM_META, LAST_APPLIED)?;
        let membership = table::get(&db, SM_META, MEMBERSHIP)?.unwrap_or_default();
        let (applied_tx, _) = watch::channel(last_applied.map_or(0, |l| l.index));
        stats.snapshot_built(snapshots.current_size().unwrap_or(0));
        Ok(Self {
            db,
            last_applied,
            membership,
            applied_tx: Arc::new(applied_tx),
            snapshot_seq: Arc::new(AtomicU64::new(0)),
            snapshots,
            promotion: Promotion::default(),
            stats,
        })
    }

    #[cfg(test)]
    pub(crate) fn db(&self) -> Arc<DB> {
        self.db.clone()
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
            Command::PutSink(mut sink) => {
                if table::exists(db, SINKS, sink.name.as_bytes())? {
                    return Ok(CommandResult::AlreadyExists);
                }
                // A new sink gets the events recorded from now on.
                sink.delivered = last_event_id(db)?;
                table::put(db, batch, SINKS, sink.name.as_bytes(), &sink)?
            }
            Command::RemoveSink { name } => return removed(batch, SINKS, name.as_bytes()),
            Command::SinkProgress {
                name,
                delivered,
                at_ms,
                error,
            } => {
                let Some(mut sink) = table::get::<SinkRecord>(db, SINKS, name.as_bytes())? else {
                    return Ok(CommandResult::NotFound);
                };
                if delivered > sink.delivered {
                    sink.delivered = delivered;
                    sink.delivered_at_ms = sink.delivered_at_ms.max(at_ms);
                }
                sink.failures = if error.is_empty() {
                    0
                } else {
                    sink.failures.saturating_add(1)
                };
                sink.last_error = error;
                table::put(db, batch, SINKS, name.as_bytes(), &sink)?
            }
            Command::PruneEvents { through, dropped } => {
                // Each forgotten upload event takes its dedup entry along.
                let mut after = 0;
                loop {
                    let page = crate::events::after(db, after, 1000)?;
                    for event in page.iter().take_while(|e| e.id <= through) {
                        if let EventKind::FileUploaded { upload, .. } = &event.kind {
                            batch.delete_cf(table::cf(db, ANNOUNCED)?, upload.as_bytes());
                        }
                    }
                    match page.last() {
                        Some(last) if last.id < through && page.len() == 1000 => after = last.id,
                        _ => break,
                    }
                }
                let end = through.saturating_add(1);
                batch.delete_range_cf(
                    table::cf(db, EVENTS)?,
                    0u64.to_be_bytes(),
                    end.to_be_bytes(),
                );
                if dropped > 0 {
                    let before: u64 = table::get::<String>(db, "settings", DROPPED)?
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let after = before.saturating_add(dropped).to_string();
                    table::put(db, batch, "settings", DROPPED, &after)?
                }
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
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let seq = self.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let (db, dir, promotion) = (
            self.db.clone(),
            self.snapshots.clone(),
            self.promotion.clone(),
        );
        let log_bytes = self.stats.log_bytes();
        let built =
            tokio::task::spawn_blocking(move || snapshot_io::build(&db, &dir, &promotion, seq))
                .await
                .map_err(|e| StoreError::Io(format!("the snapshot builder stopped: {e}")))
                .and_then(|r| r)
                .map_err(|e| io(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        self.stats.snapshot_built_at(built.bytes, log_bytes);
        Ok(Snapshot {
            meta: built.meta,
            snapshot: Box::new(tokio::fs::File::from_std(built.file)),
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

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<tokio::fs::File>> {
        let file = snapshot_io::receiving_file(&self.snapshots)
            .map_err(|e| io(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        tracing::info!("receiving a snapshot from the leader");
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, ClusterNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> StorageResult<()> {
        let failed = |e| {
            io(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
                e,
            )
        };
        let received = snapshot.into_std().await;
        let (db, dir, promotion, expected) = (
            self.db.clone(),
            self.snapshots.clone(),
            self.promotion.clone(),
            meta.clone(),
        );
        let bytes = tokio::task::spawn_blocking(move || {
            snapshot_io::install(&db, &dir, &promotion, &expected, received)
        })
        .await
        .map_err(|e| StoreError::Io(format!("the snapshot installer stopped: {e}")))
        .and_then(|r| r)
        .map_err(failed)?;
        self.stats.snapshot_built_at(bytes, self.stats.log_bytes());
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.applied_tx
            .send_replace(meta.last_log_id.map_or(0, |l| l.index));
        tracing::info!(
            snapshot = %meta.snapshot_id,
            up_to = ?meta.last_log_id.map(|l| l.index),
            bytes,
            "installed a snapshot from the leader"
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let current = snapshot_io::open_current(&self.snapshots)
            .map_err(|e| io(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))?;
        Ok(current.map(|(meta, file)| Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        }))
    }
}
