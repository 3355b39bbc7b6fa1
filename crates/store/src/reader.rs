//! Reading the local state machine. Reads never go through Raft: a node
//! answers from what it has applied, and `changes()` tells watchers (the
//! certificate resolver, the ticket key ring) when to reload.

use std::sync::Arc;

use rocksdb::DB;
use tokio::sync::watch;

use crate::db::StoreError;
use crate::records::{
    AcmeToken, BanRecord, CaRecord, CertRecord, ChunkHash, ChunkRecord, InodeRecord,
    TicketKeyRecord, UploadRecord, UserRecord,
};
use crate::table;

#[derive(Clone)]
pub struct StateReader {
    db: Arc<DB>,
    applied: watch::Receiver<u64>,
}

impl StateReader {
    pub(crate) fn new(db: Arc<DB>, applied: watch::Receiver<u64>) -> Self {
        Self { db, applied }
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
        table::scan(&self.db, "certs")
    }

    pub fn ca(&self) -> Result<Option<CaRecord>, StoreError> {
        table::get(&self.db, "ca", b"ca")
    }

    pub fn ticket_keys(&self) -> Result<Vec<TicketKeyRecord>, StoreError> {
        table::scan(&self.db, "ticket_keys")
    }

    pub fn bans(&self) -> Result<Vec<BanRecord>, StoreError> {
        table::scan(&self.db, "bans")
    }

    pub fn ban(&self, address: &str) -> Result<Option<BanRecord>, StoreError> {
        table::get(&self.db, "bans", address.as_bytes())
    }

    pub fn acme_token(&self, token: &str) -> Result<Option<AcmeToken>, StoreError> {
        table::get(&self.db, "acme", token.as_bytes())
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        table::get(&self.db, "settings", key.as_bytes())
    }

    /// The file or directory at an absolute namespace path.
    pub fn lookup(&self, path: &str) -> Result<Option<InodeRecord>, StoreError> {
        crate::namespace::read::lookup(&self.db, path)
    }

    /// The entries of a directory, by name.
    pub fn children(&self, dir: u64) -> Result<Vec<(String, InodeRecord)>, StoreError> {
        crate::namespace::read::children(&self.db, dir)
    }

    /// What an account's files take in cluster storage.
    pub fn usage(&self, owner: &str) -> Result<crate::records::UsageRecord, StoreError> {
        crate::namespace::read::usage(&self.db, owner)
    }

    pub fn uploads(&self) -> Result<Vec<UploadRecord>, StoreError> {
        table::scan(&self.db, "uploads")
    }

    pub fn chunk(&self, hash: &ChunkHash) -> Result<Option<ChunkRecord>, StoreError> {
        table::get(&self.db, "chunks", hash.as_bytes())
    }

    pub fn chunks(&self) -> Result<Vec<ChunkRecord>, StoreError> {
        table::scan(&self.db, "chunks")
    }
}
