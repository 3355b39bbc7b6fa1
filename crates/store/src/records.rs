//! The records kept in the replicated tables. Plain data: the layers above turn
//! them into accounts, certificates and ticket keys.

use serde::{Deserialize, Serialize};

/// `users`: one account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub home: String,
    pub permissions: Vec<String>,
    /// CIDR allow list; empty means any source.
    pub allow: Vec<String>,
    pub max_sessions: u64,
    pub upload_rate: u64,
    pub download_rate: u64,
    pub enabled: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertSource {
    Imported,
    InternalCa,
    Acme,
}

/// `certs`: a certificate chain and key for one server name (SNI), or
/// `default`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    pub name: String,
    pub chain_pem: String,
    pub key_pem: String,
    /// Unix seconds; 0 when unknown (imported certificates are not parsed yet).
    #[serde(default)]
    pub not_before: u64,
    /// Unix seconds; 0 when unknown.
    pub not_after: u64,
    pub source: CertSource,
    /// Bumped on every replacement, so nodes and operators can tell rotations apart.
    pub generation: u64,
}

/// `ca`: the cluster's internal certificate authority.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaRecord {
    pub cert_pem: String,
    pub key_pem: String,
}

/// `ticket_keys`: one TLS session-ticket key shared by every node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketKeyRecord {
    pub id: u32,
    pub secret: Vec<u8>,
    pub created: u64,
    pub activate_at: u64,
    pub expires: u64,
}

/// `bans`: an address or network refused until a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanRecord {
    /// An IP address or CIDR network.
    pub address: String,
    pub until: u64,
    pub reason: String,
}

/// `acme`: a pending HTTP-01 challenge token and its key authorisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeToken {
    pub token: String,
    pub key_authorization: String,
    pub expires: u64,
}
