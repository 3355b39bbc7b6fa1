//! Events (DESIGN.md §6a): what a namespace change announces downstream,
//! recorded by the state machine in the same log entry as the change, so an
//! acknowledged upload cannot lose its event however nodes fail. Ids are
//! unique in the cluster and increase in commit order. Sinks (webhooks, NATS
//! subjects) and how far each has been delivered live here too, so a new
//! leader continues where the old one stopped.

use serde::{Deserialize, Serialize};

use crate::table::CodecError;
use crate::NodeId;

/// The table of events, keyed by id (big-endian), and of sinks, by name.
pub(crate) const EVENTS: &str = "events";
pub(crate) const SINKS: &str = "sinks";
/// Uploads whose `file.uploaded` is recorded (upload id → event id): a
/// completion committed twice (the answer lost in a leader change, the
/// write retried) is announced once. Forgotten with its event.
pub(crate) const ANNOUNCED: &str = "announced";
/// Settings holding the next event id and the count of events dropped
/// before every sink had them.
pub(crate) const NEXT_EVENT: &[u8] = b"events.next_id";
pub(crate) const DROPPED: &[u8] = b"events.dropped";

/// How long events stay when a sink does not take them (`wharf events
/// retention`): past either limit the oldest go, delivered or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub max_count: u64,
    pub max_age: std::time::Duration,
}

impl Retention {
    /// When the cluster's settings say nothing.
    pub const DEFAULT: Retention = Retention {
        max_count: 1_000_000,
        max_age: std::time::Duration::from_secs(7 * 24 * 3600),
    };
    /// Cluster settings holding the limits.
    pub const MAX_COUNT_SETTING: &'static str = "events.max_count";
    pub const MAX_AGE_SETTING: &'static str = "events.max_age_secs";
}

/// The content digest `file.uploaded` events carry (`wharf events digest`):
/// SHA-256 of the whole file unless the cluster turns it off for consumers
/// that check files otherwise — hashing is about a quarter of the server's
/// CPU per uploaded byte (benches/RESULTS.md, session 18).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EventDigest {
    #[default]
    Sha256,
    None,
}

impl EventDigest {
    /// The cluster setting holding the choice.
    pub const SETTING: &'static str = "events.digest";

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "sha256" => Ok(Self::Sha256),
            "none" => Ok(Self::None),
            other => Err(format!("event digest {other:?}: expected sha256 or none")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::None => "none",
        }
    }
}

/// Who made a change, and where from: carried by a command that announces
/// one (`FsCommand::Announced`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub user: String,
    /// The user's home in the namespace: paths in events are the user's own
    /// (what the client saw), this prefix removed.
    pub home: String,
    /// The node the client was connected to.
    pub node: NodeId,
    pub session: String,
    /// The client's address (after PROXY protocol).
    pub client: String,
    /// Unix milliseconds on the receiving node when the change was asked for.
    pub time_ms: u64,
}

impl Origin {
    /// The event of a change this origin made.
    pub fn event(self, id: u64, kind: EventKind) -> EventRecord {
        EventRecord {
            id,
            time_ms: self.time_ms,
            node: self.node,
            user: self.user,
            session: self.session,
            client: self.client,
            kind,
        }
    }
}

/// What a completed upload adds to its event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadFacts {
    /// SHA-256 of the whole file, lowercase hex.
    pub sha256: String,
    /// A file was at the path before the upload began.
    pub replaced: bool,
}

/// `events`: one announced change, by id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: u64,
    pub time_ms: u64,
    pub node: NodeId,
    /// Empty for what the cluster did on its own (an abandoned upload).
    pub user: String,
    pub session: String,
    pub client: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventKind {
    #[serde(rename = "file.uploaded")]
    FileUploaded {
        path: String,
        size: u64,
        /// Lower-case hex; absent when the cluster computes no digest
        /// (`EventDigest::None`).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        sha256: String,
        /// Unix seconds, as `MDTM` reports.
        mtime: u64,
        replaced: bool,
        /// The upload's id: a resumption on another node continues it.
        #[serde(default)]
        upload: String,
    },
    #[serde(rename = "file.deleted")]
    FileDeleted { path: String },
    /// A file or a directory moved.
    #[serde(rename = "file.renamed")]
    FileRenamed { from: String, to: String },
    #[serde(rename = "dir.created")]
    DirCreated { path: String },
    #[serde(rename = "dir.removed")]
    DirRemoved { path: String },
    /// An upload whose client went away and did not come back within the
    /// grace period: the file keeps its first `durable_offset` bytes.
    #[serde(rename = "upload.abandoned")]
    UploadAbandoned { path: String, durable_offset: u64 },
}

/// Every event type, as sinks filter them.
pub const EVENT_TYPES: [&str; 6] = [
    "file.uploaded",
    "file.deleted",
    "file.renamed",
    "dir.created",
    "dir.removed",
    "upload.abandoned",
];

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::FileUploaded { .. } => "file.uploaded",
            EventKind::FileDeleted { .. } => "file.deleted",
            EventKind::FileRenamed { .. } => "file.renamed",
            EventKind::DirCreated { .. } => "dir.created",
            EventKind::DirRemoved { .. } => "dir.removed",
            EventKind::UploadAbandoned { .. } => "upload.abandoned",
        }
    }

    /// The paths the event is about (both of a rename).
    pub fn paths(&self) -> Vec<&str> {
        match self {
            EventKind::FileUploaded { path, .. }
            | EventKind::FileDeleted { path }
            | EventKind::DirCreated { path }
            | EventKind::DirRemoved { path }
            | EventKind::UploadAbandoned { path, .. } => vec![path],
            EventKind::FileRenamed { from, to } => vec![from, to],
        }
    }
}

/// `sinks`: where events go, which of them, and how far delivery got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkRecord {
    pub name: String,
    pub target: SinkTarget,
    pub filter: EventFilter,
    /// Every event up to this id has been delivered or filtered out. A new
    /// sink starts at the last event recorded before it.
    pub delivered: u64,
    /// Unix milliseconds of the last successful delivery (0: none yet).
    #[serde(default)]
    pub delivered_at_ms: u64,
    /// The last failure, empty once a delivery succeeds again.
    #[serde(default)]
    pub last_error: String,
    /// Failed attempts since the last success.
    #[serde(default)]
    pub failures: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SinkTarget {
    /// One JSON event per POST; signed with HMAC-SHA256 when `secret` is set.
    Webhook {
        url: String,
        #[serde(default)]
        secret: String,
        /// PEM roots trusted for an `https` URL instead of the system's.
        #[serde(default)]
        ca_pem: String,
        /// Requests at a time: 0 or 1 delivers in commit order; more gives
        /// that order up for throughput (a distant endpoint, one round trip
        /// per event otherwise).
        #[serde(default)]
        in_flight: u32,
    },
    /// One NATS core message per event on `subject`.
    Nats { url: String, subject: String },
}

impl SinkRecord {
    /// A sink as `wharf events sink add` creates it, nothing delivered yet;
    /// refused when its URL has the wrong scheme or a filter names a type
    /// that does not exist (it would silently never match).
    pub fn new(name: String, target: SinkTarget, filter: EventFilter) -> Result<Self, String> {
        match &target {
            SinkTarget::Webhook { url, .. }
                if !(url.starts_with("http://") || url.starts_with("https://")) =>
            {
                return Err(format!(
                    "webhook {url:?} must be an http:// or https:// URL"
                ));
            }
            SinkTarget::Nats { url, .. } if !url.starts_with("nats://") => {
                return Err(format!(
                    "NATS server {url:?} must be a nats://HOST:PORT URL"
                ));
            }
            _ => {}
        }
        if let Some(unknown) = filter
            .types
            .iter()
            .find(|t| !EVENT_TYPES.contains(&t.as_str()))
        {
            return Err(format!(
                "unknown event type {unknown:?}; the types are {}",
                EVENT_TYPES.join(", ")
            ));
        }
        Ok(Self {
            name,
            target,
            filter,
            delivered: 0,
            delivered_at_ms: 0,
            last_error: String::new(),
            failures: 0,
        })
    }
}

/// A sink's delivery in one word, as `wharf events sink list` shows it.
pub fn sink_state(last_error: &str, backlog: u64) -> &'static str {
    if !last_error.is_empty() {
        "failing"
    } else if backlog > 0 {
        "behind"
    } else {
        "current"
    }
}

impl SinkTarget {
    /// How `wharf events sink list` names the target (no secret).
    pub fn describe(&self) -> String {
        match self {
            SinkTarget::Webhook { url, in_flight, .. } if *in_flight > 1 => {
                format!("webhook {url} ({in_flight} in flight, unordered)")
            }
            SinkTarget::Webhook { url, .. } => format!("webhook {url}"),
            SinkTarget::Nats { url, subject } => format!("nats {url} {subject}"),
        }
    }
}

/// Which events a sink wants; empty parts match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFilter {
    #[serde(default)]
    pub types: Vec<String>,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub path_prefix: String,
}

impl EventFilter {
    pub fn matches(&self, event: &EventRecord) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t == event.kind.name()))
            && (self.user.is_empty() || self.user == event.user)
            && (self.path_prefix.is_empty()
                || event
                    .kind
                    .paths()
                    .iter()
                    .any(|p| p.starts_with(&self.path_prefix)))
    }
}

impl EventRecord {
    /// The event as sinks and `wharf events tail` see it: the record, plus
    /// its time in RFC 3339.
    pub fn to_json(&self) -> Vec<u8> {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            let time = chrono::DateTime::from_timestamp_millis(self.time_ms as i64)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default();
            object.insert("time".into(), time.into());
        }
        serde_json::to_vec(&value).unwrap_or_default()
    }
}

impl crate::compact::Record for EventRecord {
    fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        crate::table::encode(self)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        crate::table::decode(bytes)
    }
}

/// The id of the last event recorded (0: none yet).
pub(crate) fn last_event_id(db: &rocksdb::DB) -> Result<u64, crate::StoreError> {
    let next: Option<String> = crate::table::get(db, "settings", NEXT_EVENT)?;
    Ok(next
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(0, |n| n.saturating_sub(1)))
}

/// Up to `limit` events after `after`, in id order.
pub(crate) fn after(
    db: &rocksdb::DB,
    after: u64,
    limit: usize,
) -> Result<Vec<EventRecord>, crate::StoreError> {
    let from = after.saturating_add(1).to_be_bytes();
    let mode = rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward);
    let mut out = Vec::new();
    for item in db
        .iterator_cf(crate::table::cf(db, EVENTS)?, mode)
        .take(limit)
    {
        let (_, value) = item?;
        out.push(crate::table::decode(&value)?);
    }
    Ok(out)
}

/// A home directory (`home/alice`, `/srv/bob`) as the namespace names it
/// (`/home/alice`, `/srv/bob`).
pub fn home_path(home: &str) -> String {
    let parts: Vec<&str> = home
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// A path of the namespace as the user sees it: `home` removed, always
/// starting with `/`.
pub fn user_path(home: &str, path: &str) -> String {
    let home = home.trim_end_matches('/');
    match path.strip_prefix(home) {
        Some(rest) if home.is_empty() => rest.to_owned(),
        Some("") => "/".to_owned(),
        Some(rest) if rest.starts_with('/') => rest.to_owned(),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uploaded(user: &str, path: &str) -> EventRecord {
        EventRecord {
            id: 7,
            time_ms: 1,
            node: 2,
            user: user.into(),
            session: "s".into(),
            client: "127.0.0.1".into(),
            kind: EventKind::FileUploaded {
                path: path.into(),
                size: 3,
                sha256: "ab".into(),
                mtime: 4,
                replaced: false,
                upload: "u".into(),
            },
        }
    }

    #[test]
    fn an_event_is_flat_json_with_its_type() {
        let json = serde_json::to_value(uploaded("alice", "/in/a.csv")).unwrap();
        assert_eq!(json["type"], "file.uploaded");
        assert_eq!(json["path"], "/in/a.csv");
        assert_eq!(json["size"], 3);
        assert_eq!(json["id"], 7);
    }

    #[test]
    fn filters_match_types_users_and_path_prefixes() {
        let event = uploaded("alice", "/incoming/a.csv");
        assert!(EventFilter::default().matches(&event));
        let by_type = |t: &str| EventFilter {
            types: vec![t.into()],
            ..EventFilter::default()
        };
        assert!(by_type("file.uploaded").matches(&event));
        assert!(!by_type("file.deleted").matches(&event));
        let by_user = |u: &str| EventFilter {
            user: u.into(),
            ..EventFilter::default()
        };
        assert!(by_user("alice").matches(&event));
        assert!(!by_user("bob").matches(&event));
        let by_prefix = |p: &str| EventFilter {
            path_prefix: p.into(),
            ..EventFilter::default()
        };
        assert!(by_prefix("/incoming/").matches(&event));
        assert!(!by_prefix("/outgoing/").matches(&event));
    }

    #[test]
    fn a_new_sink_checks_its_url_scheme_and_filter_types() {
        let webhook = |url: &str| SinkTarget::Webhook {
            url: url.into(),
            secret: String::new(),
            ca_pem: String::new(),
            in_flight: 0,
        };
        let nats = |url: &str| SinkTarget::Nats {
            url: url.into(),
            subject: "uploads".into(),
        };
        let any = EventFilter::default;
        let sink = SinkRecord::new("s".into(), webhook("https://h/x"), any()).unwrap();
        assert_eq!((sink.delivered, sink.failures), (0, 0));
        assert!(SinkRecord::new("s".into(), nats("nats://127.0.0.1:4222"), any()).is_ok());
        for (target, word) in [
            (webhook("ftp://h/x"), "http:// or https://"),
            (nats("tcp://127.0.0.1:4222"), "nats://"),
        ] {
            let error = SinkRecord::new("s".into(), target, any()).unwrap_err();
            assert!(error.contains(word), "{error}");
        }
        let typo = EventFilter {
            types: vec!["file.upload".into()],
            ..any()
        };
        let error = SinkRecord::new("s".into(), webhook("http://h"), typo).unwrap_err();
        assert!(
            error.contains("unknown event type \"file.upload\""),
            "{error}"
        );
    }

    #[test]
    fn a_sink_state_is_failing_before_behind_before_current() {
        assert_eq!(sink_state("503", 9), "failing");
        assert_eq!(sink_state("", 9), "behind");
        assert_eq!(sink_state("", 0), "current");
    }

    #[test]
    fn user_paths_drop_the_home() {
        assert_eq!(user_path("/home/alice", "/home/alice/a/b"), "/a/b");
        assert_eq!(user_path("/home/alice", "/home/alice"), "/");
        assert_eq!(user_path("/home/alice/", "/home/alice/x"), "/x");
        assert_eq!(user_path("/", "/x"), "/x");
        assert_eq!(user_path("/home/al", "/home/alice/x"), "/home/alice/x");
    }
}
