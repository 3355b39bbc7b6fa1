//! The commands carried in the Raft log. Applying one is deterministic: every
//! node reaches the same tables from the same log.

use serde::{Deserialize, Serialize};

use crate::events::{EventKind, Origin, SinkRecord, UploadFacts};
use crate::inline::InlineBytes;
use crate::records::{
    AcmeAccountRecord, AcmeCertRecord, AcmeOrder, BanRecord, CaRecord, CertRecord, ChunkHash,
    ChunkRef, ObjectRef, PartRecord, Quota, TicketKeyRecord, TrashEntry, TrustAnchorRecord,
    UserRecord,
};
use crate::NodeId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Adds or replaces a user. With `create_only`, an existing user is left
    /// untouched and the result is `AlreadyExists`.
    PutUser {
        user: UserRecord,
        create_only: bool,
    },
    RemoveUser {
        name: String,
    },
    /// Replaces a user's password hash; `NotFound` for an unknown user.
    SetPassword {
        name: String,
        password_hash: String,
    },
    /// Sets what a user's data connections must prove (`reuse`, `same-user`,
    /// `any`, or empty for the server's rule); `NotFound` for an unknown user.
    SetDataTls {
        name: String,
        rule: String,
    },
    PutCert(CertRecord),
    RemoveCert {
        name: String,
    },
    PutCa(CaRecord),
    PutTicketKey(TicketKeyRecord),
    RemoveTicketKey {
        id: u32,
    },
    PutTrustAnchor(TrustAnchorRecord),
    RemoveTrustAnchor {
        name: String,
    },
    PutBan(BanRecord),
    RemoveBan {
        address: String,
    },
    /// Configures (or reconfigures, dropping any order) an ACME certificate.
    PutAcmeCert(AcmeCertRecord),
    RemoveAcmeCert {
        name: String,
    },
    PutAcmeAccount(AcmeAccountRecord),
    /// The leader's progress on an ACME certificate: applied only while the
    /// record's current order URL is `expected` (`None`: no order), so a
    /// deposed leader cannot overwrite its successor's order; `Superseded`
    /// otherwise. `error` records a failed attempt.
    SetAcmeOrder {
        name: String,
        expected: Option<String>,
        order: Option<AcmeOrder>,
        error: Option<String>,
    },
    /// The certificate an order produced: stored in `certs` and the order
    /// cleared in one step, only while `order_url` is still the order.
    CompleteAcmeOrder {
        cert: CertRecord,
        order_url: String,
    },
    PutSetting {
        key: String,
        value: String,
    },
    /// A change to the cluster file system (`namespace`).
    Fs(FsCommand),
    /// Several namespace changes in one log entry (group commit: concurrent
    /// uploads share one append). Applied in order as one atomic write, each
    /// seeing the ones before it; the result is `Batch` with one result each.
    FsBatch(Vec<FsCommand>),
    /// Adds an event sink, delivering the events recorded from now on;
    /// `AlreadyExists` when the name is taken.
    PutSink(SinkRecord),
    RemoveSink {
        name: String,
    },
    /// How far the leader delivered a sink's events, and the error that
    /// stopped it (empty: none). Never moves a sink back.
    SinkProgress {
        name: String,
        delivered: u64,
        /// Unix milliseconds of the delivery; 0 when nothing was delivered.
        at_ms: u64,
        error: String,
    },
    /// Forgets the events up to `through`; `dropped` of them had not reached
    /// every sink (retention).
    PruneEvents {
        through: u64,
        dropped: u64,
    },
}

impl FsCommand {
    /// How many bytes of file content the change carries (a small file's
    /// last chunk, `FileWrite::inline`): group commit bounds an entry by it.
    pub fn inline_len(&self) -> usize {
        match self {
            FsCommand::Write(w) => w.inline.as_ref().map_or(0, |b| b.0.len()),
            FsCommand::Announced(a) => a.change.inline_len(),
            _ => 0,
        }
    }
}

impl Command {
    /// What the command does, for the audit log: names and addresses, never
    /// a password hash, key or token.
    pub fn audit_summary(&self) -> String {
        match self {
            Command::PutUser { user, create_only } => format!(
                "{} user {}",
                if *create_only { "add" } else { "replace" },
                user.name
            ),
            Command::RemoveUser { name } => format!("remove user {name}"),
            Command::SetPassword { name, .. } => format!("set the password of user {name}"),
            Command::SetDataTls { name, rule } => {
                format!("set the data-connection TLS rule of user {name} to {rule:?}")
            }
            Command::PutCert(c) => format!(
                "put certificate {} ({:?}, generation {})",
                c.name, c.source, c.generation
            ),
            Command::RemoveCert { name } => format!("remove certificate {name}"),
            Command::PutCa(_) => "put the cluster CA".to_owned(),
            Command::PutTicketKey(k) => format!("put ticket key {}", k.id),
            Command::RemoveTicketKey { id } => format!("remove ticket key {id}"),
            Command::PutTrustAnchor(t) => format!("trust client certificates from {}", t.name),
            Command::RemoveTrustAnchor { name } => {
                format!("stop trusting client certificates from {name}")
            }
            Command::PutBan(b) => format!("ban {} until {} ({})", b.address, b.until, b.reason),
            Command::RemoveBan { address } => format!("lift the ban of {address}"),
            Command::PutAcmeCert(a) => format!(
                "obtain certificate {} for {} from {}",
                a.name,
                a.domains.join(","),
                a.directory
            ),
            Command::RemoveAcmeCert { name } => {
                format!("stop obtaining certificate {name} by ACME")
            }
            Command::PutAcmeAccount(a) => format!("put the ACME account for {}", a.directory),
            Command::SetAcmeOrder { name, order, .. } => match order {
                Some(o) => format!("ACME order {} for certificate {name}", o.url),
                None => format!("no ACME order for certificate {name}"),
            },
            Command::CompleteAcmeOrder { cert, .. } => format!(
                "put certificate {} from ACME (generation {})",
                cert.name, cert.generation
            ),
            Command::PutSetting { key, value } => format!("set {key} = {value}"),
            Command::Fs(_) => "change the namespace".to_owned(),
            Command::FsBatch(changes) => format!("{} namespace changes", changes.len()),
            Command::PutSink(sink) => {
                format!("add event sink {} ({})", sink.name, sink.target.describe())
            }
            Command::RemoveSink { name } => format!("remove event sink {name}"),
            Command::SinkProgress {
                name, delivered, ..
            } => format!("event sink {name} delivered up to {delivered}"),
            Command::PruneEvents { through, dropped } => {
                format!("forget events up to {through} ({dropped} undelivered)")
            }
        }
    }
}

/// Namespace changes. Paths are absolute (`/home/alice/file`), already
/// normalised by the caller; they are resolved when the entry is applied, so
/// concurrent changes through different nodes are ordered by the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FsCommand {
    /// With `parents`, missing ancestors are created and an existing directory
    /// is fine (homes); without, the parent must exist and the name must not.
    Mkdir {
        path: String,
        parents: bool,
        mtime: u64,
    },
    Rmdir {
        path: String,
    },
    /// Removes a file.
    Remove {
        path: String,
    },
    /// Moves a file or directory; an existing file at `to` is replaced.
    Rename {
        from: String,
        to: String,
        /// Object storage: the objects copied to their new keys before the
        /// rename, one per file moved; each file's record switches to its
        /// copy. A file changed since its copy was made refuses the whole
        /// rename (`Superseded`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        objects: Vec<ObjectMove>,
    },
    SetMtime {
        path: String,
        mtime: u64,
    },
    /// A checkpoint (`done: false`) or the end (`done: true`) of an upload:
    /// the file's content becomes its first `from` chunks followed by
    /// `chunks`. With `from: 0` the list is whole (the entry is idempotent
    /// and the last writer's complete list wins); later checkpoints of the
    /// same upload send only the chunks since the previous one, so a
    /// checkpoint costs the same at the start and at the end of a big file.
    Write(FileWrite),
    /// Forgets an abandoned upload (the file keeps its durable prefix) and
    /// records `upload.abandoned`.
    ForgetUpload {
        id: String,
        /// Unix milliseconds when the leader gave up on it.
        #[serde(default)]
        time_ms: u64,
    },
    /// A change made for a client, and the event it announces: the event is
    /// recorded (`events`) in the same entry when the change succeeds.
    Announced(Box<Announced>),
    /// A change made outside the namespace (a node's local storage): only
    /// its event is recorded. Its paths are the user's own already.
    Happened(Box<Happened>),
    /// Records where a chunk's replicas are (repair).
    SetReplicas {
        hash: ChunkHash,
        replicas: Vec<NodeId>,
    },
    /// Drops the record of a chunk no file uses any more.
    ForgetChunk {
        hash: ChunkHash,
    },
    /// Object storage: these objects are gone from the bucket (or were
    /// found in use again); each entry of `object_trash` still equal to one
    /// of them goes.
    ForgetTrash {
        entries: Vec<TrashEntry>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announced {
    pub change: FsCommand,
    pub origin: Origin,
    /// With the last write of an upload (`done`): what its event adds.
    #[serde(default)]
    pub upload: Option<UploadFacts>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Happened {
    pub origin: Origin,
    pub kind: EventKind,
}

/// `FileWrite::node` of an object recorded by `wharf storage scan`: no node
/// received it. Such a write is refused for a key still in `object_trash`
/// (its file was deleted, the bucket has not let the object go yet).
pub const IMPORTED: NodeId = 0;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileWrite {
    pub upload: String,
    pub path: String,
    /// The chunks from position `from` on.
    pub chunks: Vec<ChunkRef>,
    /// Chunks of the file kept before `chunks`. More than 0 only when this
    /// upload's own last checkpoint left the file with exactly that many;
    /// otherwise the write is answered `Resend` and changes nothing, and the
    /// upload sends its whole list.
    #[serde(default)]
    pub from: u64,
    /// Unix seconds.
    pub mtime: u64,
    /// The node receiving the upload; `IMPORTED` for an object written
    /// beside Wharf that `wharf storage scan` records.
    pub node: NodeId,
    /// Nodes that hold each chunk written since the last checkpoint.
    pub placed: Vec<(ChunkHash, Vec<NodeId>)>,
    pub done: bool,
    /// STOU: refused with `AlreadyExists` if another upload made the name.
    pub create_new: bool,
    /// The account charged for the file.
    #[serde(default)]
    pub owner: String,
    /// The owner's limits; a write that would pass them is refused with
    /// `QuotaExceeded` and changes nothing.
    #[serde(default)]
    pub quota: Quota,
    /// The file as the upload found it when it began, sent by an upload
    /// whose client vanished and which is finished on its behalf. Unless the
    /// upload still owns the file (an earlier checkpoint of its own, not
    /// overtaken since), a file that no longer matches means another upload
    /// or change came after it: the write is refused with `Superseded` and
    /// changes nothing, so an abandoned upload finishing late cannot
    /// overwrite a newer file (its own resumption on another node, say).
    /// Live uploads send `Unchecked`: the last writer wins.
    #[serde(default)]
    pub found: Found,
    /// Object storage: the file's content is this object (`chunks` empty,
    /// `from` 0), uploaded whole before the write.
    #[serde(default)]
    pub object: Option<ObjectRef>,
    /// Object storage, an upload of more than one part: its multipart
    /// upload. A checkpoint (`done` false) records the parts durable since
    /// the last one; the last write (`done`, with `object`) must still own
    /// the multipart upload, or it is refused with `Superseded`.
    #[serde(default)]
    pub multipart: Option<Box<PartsWrite>>,
    /// A small last chunk's bytes (the last of `chunks`), carried in the
    /// entry instead of placed on replicas before it (see `inline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<Box<InlineBytes>>,
}

/// The parts of a multipart upload a checkpoint adds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartsWrite {
    /// The object the upload will complete into.
    pub key: String,
    /// The multipart upload's id.
    pub id: String,
    /// Parts recorded before `parts`: the upload's own record must hold
    /// exactly that many (else `Resend`, and the upload sends every part
    /// from 0); 0 for the first checkpoint of an upload.
    pub from: u64,
    pub parts: Vec<PartRecord>,
    /// SHA-256 state after the last of `parts` (`MultipartState::sha256`).
    pub sha256: String,
    /// A resumption on any node taking over upload `adopt`, which must
    /// still be writing this file with this multipart upload and exactly
    /// `from` durable parts (else `Superseded`): the parts stay, the record
    /// becomes this upload's.
    pub adopt: Option<String>,
}

/// A file's object copied to the key of its new path (a rename on object
/// storage).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMove {
    pub inode: u64,
    /// The file's generation when its object was copied.
    pub generation: u64,
    /// The copy.
    pub object: ObjectRef,
    /// The key copied from: the file must still record it (a rename of
    /// the same file committed meanwhile refuses this one).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from_key: String,
}

/// What an upload found at its path when it began.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Found {
    /// Not checked (live uploads: the last writer wins).
    #[default]
    Unchecked,
    /// No file; `removals` counts the names that had left directory `dir`
    /// by then, so a file made and removed meanwhile is noticed.
    Absent {
        dir: u64,
        removals: u64,
    },
    File {
        inode: u64,
        generation: u64,
    },
}

impl Found {
    /// From the file at the path (if any) and its directory.
    pub fn of(
        existing: Option<&crate::records::InodeRecord>,
        dir: Option<&crate::records::InodeRecord>,
    ) -> Found {
        match existing {
            None => Found::Absent {
                dir: dir.map_or(0, |d| d.id),
                removals: dir.map_or(0, |d| d.generation),
            },
            Some(i) => Found::File {
                inode: i.id,
                generation: i.generation,
            },
        }
    }

    /// Whether the path (`current` file in directory `dir`) is still as found.
    pub fn matches(
        self,
        current: Option<&crate::records::InodeRecord>,
        dir: Option<&crate::records::InodeRecord>,
    ) -> bool {
        match self {
            Found::Unchecked => true,
            other => other == Found::of(current, dir),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    Done,
    NotFound,
    AlreadyExists,
    NotADirectory,
    IsADirectory,
    NotEmpty,
    /// The command makes no sense in the current state (e.g. a directory
    /// moved into itself).
    Invalid(String),
    /// The owner's quota does not allow the write.
    QuotaExceeded,
    /// The file changed since the upload began (see `FileWrite::found`).
    Superseded,
    /// A checkpoint sent the chunks since its last one, but the file no
    /// longer ends where that checkpoint left it: send the whole list.
    Resend,
    /// The results of an `FsBatch`, in its order.
    Batch(Vec<CommandResult>),
}
