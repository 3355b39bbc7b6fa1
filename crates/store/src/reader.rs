//! Reading the local state machine. Reads never go through Raft: a node
//! answers from what it has applied, and `changes()` tells watchers (the
//! certificate resolver, the ticket key ring) when to reload.

use std::sync::Arc;

use rocksdb::DB;
use tokio::sync::watch;

use crate::chunk_health::ChunkState;
use crate::command::Command;
use crate::error::StoreError;
use crate::events::{EventRecord, SinkRecord};
use crate::records::{
    AcmeAccountRecord, AcmeCertRecord, BanRecord, CaRecord, CertRecord, ChunkHash, ChunkRecord,
    InodeRecord, TicketKeyRecord, TrustAnchorRecord, UploadRecord, UserRecord,
};
use crate::secrets::{self, SecretsKey};
use crate::table;

#[derive(Clone)]
pub struct StateReader {
    db: Arc<DB>,
    applied: watch::Receiver<u64>,
    /// Opens sealed private keys and ticket keys; seals them in commands.
    secrets: Option<Arc<SecretsKey>>,
}

impl StateReader {
    pub(crate) fn new(db: Arc<DB>, applied: watch::Receiver<u64>) -> Self {
        Self {
            db,
            applied,
            secrets: None,
        }
    }

    /// This reader opening sealed secrets with `key` (see `secrets`).
    pub fn with_secrets(mut self, key: Option<Arc<SecretsKey>>) -> Self {
        self.secrets = key;
        self
    }

    /// `command` with its private keys and ticket keys sealed, when this
    /// node has a secrets key.
    pub fn seal(&self, command: Command) -> Result<Command, StoreError> {
        match &self.secrets {
            Some(key) => Ok(key.seal_command(command)?),
            None => Ok(command),
        }
    }

    /// Opens every sealed secret in the store: an error says which key they
    /// need when this node's is missing or another.
    pub fn check_secrets(&self) -> Result<(), StoreError> {
        self.certs()?;
        self.ca()?;
        self.ticket_keys()?;
        self.acme_certs()?;
        for mut account in table::scan_prefix(&self.db, "acme", b"account/")? {
            secrets::open_acme_account(self.secrets.as_deref(), &mut account)?;
        }
        Ok(())
    }

    /// Index of the last log entry applied on this node.
    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Notified after every batch of applied entries (and snapshot install).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.applied.clone()
    }

    /// Waits until this node has applied at least `index`.
    pub async fn wait_applied(&self, index: u64) {
        let mut rx = self.applied.clone();
        let _ = rx.wait_for(|applied| *applied >= index).await;
    }

    pub fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        table::get(&self.db, "users", name.as_bytes())
    }

    pub fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        table::scan(&self.db, "users")
    }

    pub fn certs(&self) -> Result<Vec<CertRecord>, StoreError> {
        let mut certs: Vec<CertRecord> = table::scan(&self.db, "certs")?;
        for c in &mut certs {
            secrets::open_cert(self.secrets.as_deref(), c)?;
        }
        Ok(certs)
    }

    pub fn ca(&self) -> Result<Option<CaRecord>, StoreError> {
        let mut ca: Option<CaRecord> = table::get(&self.db, "ca", b"ca")?;
        if let Some(c) = &mut ca {
            secrets::open_ca(self.secrets.as_deref(), c)?;
        }
        Ok(ca)
    }

    pub fn ticket_keys(&self) -> Result<Vec<TicketKeyRecord>, StoreError> {
        let mut keys: Vec<TicketKeyRecord> = table::scan(&self.db, "ticket_keys")?;
        for k in &mut keys {
            secrets::open_ticket_key(self.secrets.as_deref(), k)?;
        }
        Ok(keys)
    }

    pub fn trust_anchors(&self) -> Result<Vec<TrustAnchorRecord>, StoreError> {
        table::scan(&self.db, "trust")
    }

    pub fn bans(&self) -> Result<Vec<BanRecord>, StoreError> {
        table::scan(&self.db, "bans")
    }

    pub fn ban(&self, address: &str) -> Result<Option<BanRecord>, StoreError> {
        table::get(&self.db, "bans", address.as_bytes())
    }

    /// The certificates obtained by ACME, with their orders in flight.
    pub fn acme_certs(&self) -> Result<Vec<AcmeCertRecord>, StoreError> {
        let mut out: Vec<AcmeCertRecord> = table::scan_prefix(&self.db, "acme", b"cert/")?;
        for a in &mut out {
            secrets::open_acme_cert(self.secrets.as_deref(), a)?;
        }
        Ok(out)
    }

    pub fn acme_account(&self, directory: &str) -> Result<Option<AcmeAccountRecord>, StoreError> {
        let key = AcmeAccountRecord::key(directory);
        let mut account: Option<AcmeAccountRecord> = table::get(&self.db, "acme", key.as_bytes())?;
        if let Some(a) = &mut account {
            secrets::open_acme_account(self.secrets.as_deref(), a)?;
        }
        Ok(account)
    }

    /// The key authorisation answering HTTP-01 `token`, if an order in
    /// flight has that challenge (the keys need not be opened for this).
    pub fn acme_key_authorization(&self, token: &str) -> Result<Option<String>, StoreError> {
        let records: Vec<AcmeCertRecord> = table::scan_prefix(&self.db, "acme", b"cert/")?;
        Ok(records
            .into_iter()
            .filter_map(|a| a.order)
            .flat_map(|o| o.challenges)
            .find(|c| c.token == token)
            .map(|c| c.key_authorization))
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        table::get(&self.db, "settings", key.as_bytes())
    }

    /// The cluster's event retention limits (defaults where unset).
    pub fn event_retention(&self) -> Result<crate::events::Retention, StoreError> {
        use crate::events::Retention;
        let number = |key: &str| -> Result<Option<u64>, StoreError> {
            Ok(self.setting(key)?.and_then(|v| v.parse().ok()))
        };
        Ok(Retention {
            max_count: number(Retention::MAX_COUNT_SETTING)?
                .unwrap_or(Retention::DEFAULT.max_count),
            max_age: number(Retention::MAX_AGE_SETTING)?
                .map_or(Retention::DEFAULT.max_age, std::time::Duration::from_secs),
        })
    }

    /// The digest uploads' events carry (SHA-256 unless set otherwise).
    pub fn event_digest(&self) -> Result<crate::events::EventDigest, StoreError> {
        use crate::events::EventDigest;
        Ok(self
            .setting(EventDigest::SETTING)?
            .and_then(|v| EventDigest::parse(&v).ok())
            .unwrap_or_default())
    }

    /// The file or directory at an absolute namespace path.
    pub fn lookup(&self, path: &str) -> Result<Option<InodeRecord>, StoreError> {
        crate::namespace::read::lookup(&self.db, path)
    }

    /// Up to `limit` entries of directory `dir` after the name `after`, by name.
    pub fn children_page(
        &self,
        dir: u64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, InodeRecord)>, StoreError> {
        crate::namespace::read::children_page(&self.db, dir, after, limit)
    }

    /// The entries of a directory, by name.
    pub fn children(&self, dir: u64) -> Result<Vec<(String, InodeRecord)>, StoreError> {
        crate::namespace::read::children_page(&self.db, dir, None, usize::MAX)
    }

    /// What an account's files take in cluster storage.
    /// The chunks of a file, in order.
    pub fn file_chunks(
        &self,
        file: &InodeRecord,
    ) -> Result<Vec<crate::records::ChunkRef>, StoreError> {
        crate::namespace::read::file_chunks(&self.db, file)
    }

    pub fn usage(&self, owner: &str) -> Result<crate::records::UsageRecord, StoreError> {
        crate::namespace::read::usage(&self.db, owner)
    }

    /// Event sinks and how far each is delivered.
    pub fn sinks(&self) -> Result<Vec<SinkRecord>, StoreError> {
        let mut sinks: Vec<SinkRecord> = table::scan(&self.db, crate::events::SINKS)?;
        for s in &mut sinks {
            secrets::open_sink(self.secrets.as_deref(), s)?;
        }
        Ok(sinks)
    }

    /// Up to `limit` events after id `after`, in commit order.
    pub fn events_after(&self, after: u64, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        crate::events::after(&self.db, after, limit)
    }

    /// The id of the last event recorded (0: none yet).
    pub fn last_event_id(&self) -> Result<u64, StoreError> {
        crate::events::last_event_id(&self.db)
    }

    /// Events forgotten before every sink had them (retention).
    pub fn events_dropped(&self) -> Result<u64, StoreError> {
        let dropped: Option<String> = table::get(&self.db, "settings", crate::events::DROPPED)?;
        Ok(dropped.and_then(|s| s.parse().ok()).unwrap_or(0))
    }

    pub fn uploads(&self) -> Result<Vec<UploadRecord>, StoreError> {
        crate::compact::scan(&self.db, "uploads")
    }

    /// Upload `id`'s record, while it is in flight.
    pub fn upload(&self, id: &str) -> Result<Option<UploadRecord>, StoreError> {
        crate::namespace::read::upload(&self.db, id)
    }

    /// The durable parts of an upload into object storage, in order.
    pub fn upload_parts(
        &self,
        state: &crate::records::MultipartState,
    ) -> Result<Vec<crate::records::PartRecord>, StoreError> {
        crate::namespace::read::upload_parts(&self.db, state)
    }

    /// Objects and multipart uploads still to be removed from the bucket:
    /// up to `limit` after `after`, in key order.
    pub fn trash_page(
        &self,
        after: Option<&crate::records::TrashEntry>,
        limit: usize,
    ) -> Result<Vec<crate::records::TrashEntry>, StoreError> {
        crate::namespace::read::trash_page(&self.db, after, limit)
    }

    pub fn chunk(&self, hash: &ChunkHash) -> Result<Option<ChunkRecord>, StoreError> {
        crate::compact::get(&self.db, "chunks", hash.as_bytes())
    }

    /// A small chunk's bytes that came inside a log entry and are not yet a
    /// chunk file on this node (see `inline`).
    pub fn inline_chunk(&self, hash: &ChunkHash) -> Result<Option<Vec<u8>>, StoreError> {
        crate::inline::get(&self.db, hash)
    }

    /// Inline chunks waiting to become chunk files here: up to `limit` rows
    /// and about `max_bytes` of content.
    pub fn inline_waiting(
        &self,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<crate::InlineRow>, StoreError> {
        crate::inline::waiting(&self.db, limit, max_bytes)
    }

    /// Forgets inline chunk rows (by key) this node has stored as chunk
    /// files or does not keep: a write to this node's own table, not a
    /// change through Raft.
    pub fn forget_inline(&self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        crate::inline::forget(&self.db, keys)
    }

    /// How many chunks are in each state (a few rows, whatever the number
    /// of chunks).
    pub fn chunk_census(&self) -> Result<Vec<(ChunkState, u64)>, StoreError> {
        crate::chunk_health::census(&self.db)
    }

    /// Up to `limit` records of chunks in `state`, in hash order, after
    /// `after`.
    pub fn chunks_in(
        &self,
        state: &ChunkState,
        after: Option<&ChunkHash>,
        limit: usize,
    ) -> Result<Vec<ChunkRecord>, StoreError> {
        let hashes = crate::chunk_health::hashes_in(&self.db, state, after, limit)?;
        let mut out = Vec::with_capacity(hashes.len());
        for hash in hashes {
            // Gone since the index was read: a later entry forgot it.
            if let Some(record) = self.chunk(&hash)? {
                out.push(record);
            }
        }
        Ok(out)
    }
}
