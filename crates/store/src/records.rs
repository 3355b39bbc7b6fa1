//! The records kept in the replicated tables. Plain data: the layers above turn
//! them into accounts, certificates, ticket keys and the cluster file system.

use serde::{Deserialize, Serialize};
pub use wharf_blob::ChunkHash;

use crate::NodeId;

/// `users`: one account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub home: String,
    pub permissions: Vec<String>,
    /// CIDR allow list; empty means any source.
    pub allow: Vec<String>,
    /// CIDR deny list, winning over `allow`.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Commands the user may send beyond the session basics; empty = all.
    #[serde(default)]
    pub commands: Vec<String>,
    /// `password` (also when empty), `certificate` or `both`.
    #[serde(default)]
    pub login: String,
    /// How a client certificate maps to the user (`cn:`, `san:`, `sha256:`);
    /// empty means the subject CN must be the user name.
    #[serde(default)]
    pub certificates: Vec<String>,
    pub max_sessions: u64,
    pub upload_rate: u64,
    pub download_rate: u64,
    pub enabled: bool,
    /// Bytes the user's files may take in cluster storage; 0 = unlimited.
    #[serde(default)]
    pub quota_bytes: u64,
    /// Files the user may own in cluster storage; 0 = unlimited.
    #[serde(default)]
    pub quota_files: u64,
    /// What the user's data connections must prove: `reuse`, `same-user`,
    /// `any`; empty means the server's rule.
    #[serde(default)]
    pub data_tls: String,
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

/// `trust`: a CA certificate client certificates may chain to (mutual TLS).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustAnchorRecord {
    pub name: String,
    pub cert_pem: String,
    /// Unix seconds.
    pub added: u64,
}

/// `bans`: an address or network refused until a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanRecord {
    /// An IP address or CIDR network.
    pub address: String,
    pub until: u64,
    pub reason: String,
}

/// `acme`, key `cert/<name>`: a certificate the leader obtains from an ACME
/// directory for the `certs` entry `name`, and the order in flight for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeCertRecord {
    /// The `certs` entry the certificate goes to (a server name or `default`).
    pub name: String,
    /// DNS names the certificate covers, validated by HTTP-01.
    pub domains: Vec<String>,
    /// The directory URL (RFC 8555 §7.1.1).
    pub directory: String,
    /// PEM roots the directory's HTTPS certificate must chain to; empty:
    /// the public web PKI roots.
    pub directory_roots_pem: String,
    /// Account contact URLs (`mailto:ops@example.com`).
    pub contact: Vec<String>,
    /// The order being worked on, so a new leader can finish it.
    pub order: Option<AcmeOrder>,
    /// Why the last attempt failed (empty after a success), for operators.
    pub last_error: String,
    /// Failed attempts since the last certificate (backoff).
    pub failures: u32,
}

impl AcmeCertRecord {
    /// A certificate for `domains` from `directory`, trusting the public
    /// roots, with no contact and nothing ordered yet.
    pub fn new(name: &str, domains: Vec<String>, directory: &str) -> Self {
        Self {
            name: name.to_ascii_lowercase(),
            domains,
            directory: directory.to_owned(),
            directory_roots_pem: String::new(),
            contact: Vec::new(),
            order: None,
            last_error: String::new(),
            failures: 0,
        }
    }

    /// Its key in the `acme` table.
    pub fn key(name: &str) -> String {
        format!("cert/{}", name.to_ascii_lowercase())
    }
}

impl AcmeAccountRecord {
    /// Its key in the `acme` table.
    pub fn key(directory: &str) -> String {
        format!("account/{directory}")
    }
}

/// An ACME order in flight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeOrder {
    pub url: String,
    /// The certificate's private key (PKCS#8 PEM), made with the order so
    /// whichever node finalises it signs the CSR with the same key. Sealed
    /// with the secrets key when the cluster has one.
    pub key_pem: String,
    /// HTTP-01 challenges every node answers.
    pub challenges: Vec<AcmeChallenge>,
    /// Unix seconds.
    pub started: u64,
    pub started_by: NodeId,
}

/// A pending HTTP-01 challenge: the token the validator asks for under
/// `/.well-known/acme-challenge/` and the key authorisation to answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeChallenge {
    pub token: String,
    pub key_authorization: String,
}

/// `acme`, key `account/<directory>`: the cluster's account with one ACME
/// directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeAccountRecord {
    pub directory: String,
    /// The account's credentials (URL and private key) as the ACME client
    /// serialises them; sealed with the secrets key when there is one.
    pub credentials: String,
}

/// Inode of the namespace root; it exists without a record.
pub const ROOT_INODE: u64 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InodeKind {
    File,
    Dir,
}

/// One chunk of a file's content, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub hash: ChunkHash,
    pub len: u64,
}

/// Where a file on object storage (`--storage s3`) keeps its content: an
/// object of the bucket. The key is recorded, not derived from the path when
/// read, so reads and deletes never depend on where new objects are placed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// The object's key in the bucket, the storage's prefix included.
    pub key: String,
    /// The ETag the object store gave it: a read asks for that version, so
    /// an object replaced outside Wharf is noticed instead of served.
    pub etag: String,
    pub size: u64,
}

/// `inodes`: a file or directory of the cluster file system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InodeRecord {
    pub id: u64,
    pub kind: InodeKind,
    /// Bytes; for a file being uploaded, its durable offset.
    pub size: u64,
    /// Unix seconds.
    pub mtime: u64,
    /// A file written by a release before `extents`: its chunks, inline.
    /// Empty for files written since, whose chunks are in `extents`.
    pub chunks: Vec<ChunkRef>,
    /// How many chunks the file has in the `extents` table (keyed by inode
    /// and position, so a checkpoint appends without rewriting the list).
    #[serde(default)]
    pub extents: u64,
    /// The upload writing this file now, if any.
    pub upload: Option<String>,
    /// The account charged for the file (quotas).
    #[serde(default)]
    pub owner: String,
    /// A file: counts its writes, so an upload can tell whether the file is
    /// still the one it started from. A directory: counts the names that
    /// left it (removed, renamed away), for uploads that found no file.
    #[serde(default)]
    pub generation: u64,
    /// A file on object storage: its object (no chunks).
    #[serde(default)]
    pub object: Option<ObjectRef>,
}

impl InodeRecord {
    pub fn root() -> Self {
        Self {
            id: ROOT_INODE,
            kind: InodeKind::Dir,
            size: 0,
            mtime: 0,
            chunks: Vec::new(),
            extents: 0,
            upload: None,
            owner: String::new(),
            generation: 0,
            object: None,
        }
    }

    /// How many chunks the file has, wherever they are kept.
    pub fn chunk_count(&self) -> u64 {
        if self.extents > 0 {
            self.extents
        } else {
            self.chunks.len() as u64
        }
    }

    pub fn is_dir(&self) -> bool {
        self.kind == InodeKind::Dir
    }
}

/// `uploads`: an upload that has reached a checkpoint but not its end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub id: String,
    pub path: String,
    pub inode: u64,
    /// The node receiving the data.
    pub node: NodeId,
    /// Bytes committed so far: a resumed upload starts here.
    pub durable: u64,
    /// Unix seconds of the last checkpoint.
    pub heartbeat: u64,
    /// Object storage: the S3 multipart upload holding the durable bytes.
    #[serde(default)]
    pub multipart: Option<MultipartState>,
}

/// An upload into object storage, in flight: its S3 multipart upload and
/// how many of its parts are durable (each part's ETag is a row of `parts`,
/// so a checkpoint appends rows instead of rewriting a list). Any node can
/// continue it: a resumption at the durable offset adopts it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartState {
    /// The object it will complete into.
    pub key: String,
    /// The multipart upload's id, as the object store gave it.
    pub id: String,
    /// Durable parts: `parts` rows 0 to `parts − 1`, `durable` bytes.
    pub parts: u64,
    /// SHA-256 state after the durable bytes (hex of its eight words), so
    /// a resumption's `file.uploaded` digest covers the whole file; empty
    /// when the cluster's events carry no digest.
    #[serde(default)]
    pub sha256: String,
}

/// `parts`, key `multipart id ‖ 0 ‖ index (u32, big-endian)`: one durable
/// part of a multipart upload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    /// The part's ETag, which completing the upload names.
    pub etag: String,
    pub len: u64,
}

/// `object_trash`, key `object key ‖ 0 ‖ multipart id` (empty for the
/// object itself): an object, or a multipart upload's parts, that no file
/// keeps any more and that is still to be removed from the bucket. Put in
/// the same entry as the change that let it go (a delete, a rename, an
/// upload replaced); taken out again when a later file records the same key
/// (see `crates/node/src/cluster_fs/trash.rs`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrashEntry {
    pub key: String,
    /// The object's ETag: a key found holding another object (stored
    /// there since, not yet recorded) is not deleted.
    pub etag: String,
    /// A multipart upload to abort; empty: delete the object at `key`.
    pub abort: String,
    /// The file that let it go, as it was then: a `ForgetTrash` removes an
    /// entry only if it still is this one (the same key trashed again by a
    /// later change stays).
    pub inode: u64,
    pub generation: u64,
}

impl TrashEntry {
    /// Its key in `object_trash`.
    pub fn row_key(&self) -> Vec<u8> {
        let mut key = self.key.as_bytes().to_vec();
        key.push(0);
        key.extend_from_slice(self.abort.as_bytes());
        key
    }
}

/// `chunks`: where a chunk's replicas are and how many file positions use it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRecord {
    pub hash: ChunkHash,
    pub len: u64,
    pub replicas: Vec<NodeId>,
    pub refs: u64,
}

/// `usage`: what an account's files take in cluster storage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub bytes: u64,
    pub files: u64,
}

/// Limits checked when a write is applied; 0 = unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub bytes: u64,
    pub files: u64,
}
