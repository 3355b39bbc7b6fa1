//! Every `wharf serve` setting, defined once: its flag and environment
//! variable (clap), its config-file key (serde) and its help text are one
//! field here. The layers — defaults, the config file, then flags and
//! environment — are merged by figment (`super::layers`); `super::node_config`
//! turns the result into the node's configuration.
//!
//! Every field is optional so that a layer that does not give a value leaves
//! the one below it in place (`skip_serializing_none`; `super::layers` drops
//! the command line's empty lists). Keys that only make sense in a file
//! (`[defender]`, `[[user]]`) carry `#[arg(skip)]`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use wharf_node::StorageMode;

#[skip_serializing_none]
#[derive(Args, Deserialize, Serialize, Clone, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct ServeSettings {
    /// Directory for the generated certificate, home directories of quick-start users and logs.
    #[arg(long, env = "WHARF_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Explicit FTPS control address (AUTH TLS); standard port 21. "off" disables it.
    #[arg(long, env = "WHARF_LISTEN")]
    pub listen: Option<String>,
    /// Implicit FTPS control address (TLS from the first byte); standard port 990. "off" disables it.
    #[arg(long, env = "WHARF_IMPLICIT_LISTEN")]
    pub implicit_listen: Option<String>,
    /// HTTP endpoint for /metrics, /healthz and /readyz (default
    /// 127.0.0.1:9180; "off" disables it).
    #[arg(long, env = "WHARF_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// HTTP address answering only ACME HTTP-01 challenges (e.g. 0.0.0.0:80),
    /// for exposing port 80 without the metrics (default off; the
    /// --http-listen endpoint answers them too).
    #[arg(long, env = "WHARF_ACME_LISTEN")]
    pub acme_listen: Option<String>,
    /// Passive data port range, LO-HI.
    #[arg(long, env = "WHARF_PASV_PORTS")]
    pub pasv_ports: Option<String>,
    /// Address advertised in PASV replies (the public address behind NAT).
    #[arg(long, env = "WHARF_PASV_ADDRESS")]
    pub pasv_address: Option<String>,
    /// Load balancer network (CIDR, repeatable) whose control and passive data
    /// connections start with a PROXY protocol v1/v2 header naming the client;
    /// from there the header is required.
    #[arg(long = "proxy-from", env = "WHARF_PROXY_FROM", value_delimiter = ',')]
    #[serde(default)]
    pub proxy_from: Vec<IpNet>,
    /// PEM certificate chain (leaf first, then intermediates).
    #[arg(long, env = "WHARF_CERT")]
    pub cert: Option<PathBuf>,
    /// PEM private key for --cert.
    #[arg(long, env = "WHARF_KEY")]
    pub key: Option<PathBuf>,
    #[arg(long, env = "WHARF_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// xferlog-format transfer log (default DATA_DIR/xferlog).
    #[arg(long, env = "WHARF_XFERLOG")]
    pub xferlog: Option<PathBuf>,
    /// Audit log, JSON lines of logins, bans, admin actions and certificate
    /// changes (default DATA_DIR/audit.log).
    #[arg(long, env = "WHARF_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,
    /// File holding the key (64 hex digits, `openssl rand -hex 32`) that seals
    /// private keys and ticket keys in the store; the same on every node. The
    /// key may also come as WHARF_SECRETS_KEY itself.
    #[arg(long, env = "WHARF_SECRETS_KEY_FILE")]
    pub secrets_key_file: Option<PathBuf>,
    /// Seconds SIGTERM waits for running transfers.
    #[arg(long, env = "WHARF_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<u64>,
    /// Cluster address for Raft and the admin API.
    #[arg(long, env = "WHARF_CLUSTER_LISTEN")]
    pub cluster_listen: Option<String>,
    /// Address other nodes use to reach this one (default: --cluster-listen).
    #[arg(long, env = "WHARF_CLUSTER_ADVERTISE")]
    pub cluster_advertise: Option<String>,
    /// Local address connections to other nodes leave from (a multi-homed
    /// host's cluster interface; default: the system's choice).
    #[arg(long, env = "WHARF_CLUSTER_SOURCE")]
    pub cluster_source: Option<IpAddr>,
    /// Join the cluster of the node at this cluster address (first start only).
    #[arg(long, env = "WHARF_JOIN")]
    pub join: Option<String>,
    /// Join token printed by `wharf cluster token` on a member.
    #[arg(long, env = "WHARF_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: Option<String>,
    /// File holding the join token (a mounted secret); the node waits for it
    /// to appear, up to 10 minutes, on its first start.
    #[arg(long, env = "WHARF_JOIN_TOKEN_FILE", conflicts_with = "join_token")]
    pub join_token_file: Option<PathBuf>,
    /// Also build a Raft snapshot every N log entries (0: only when the log
    /// since the last snapshot outweighs the state, the default).
    #[arg(long, env = "WHARF_RAFT_SNAPSHOT_LOGS")]
    pub raft_snapshot_logs: Option<u64>,
    /// MiB of Raft log below which no snapshot is built, however small the state.
    #[arg(long, env = "WHARF_RAFT_SNAPSHOT_MIN_LOG_MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub raft_snapshot_min_log_mib: Option<u64>,
    /// KiB per piece when a snapshot is sent to a follower.
    #[arg(long, env = "WHARF_RAFT_SNAPSHOT_PIECE_KIB", value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub raft_snapshot_piece_kib: Option<u64>,
    /// MiB of RocksDB write-ahead log, all column families together.
    #[arg(long, env = "WHARF_STORE_WAL_MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub store_wal_mib: Option<u64>,
    /// MiB of RocksDB memtables, all column families together.
    #[arg(long, env = "WHARF_STORE_WRITE_BUFFER_MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub store_write_buffer_mib: Option<u64>,
    /// MiB of RocksDB block cache (index and filter blocks included).
    #[arg(long, env = "WHARF_STORE_BLOCK_CACHE_MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub store_block_cache_mib: Option<u64>,
    /// Server name for the internal-CA certificate (repeatable; default localhost and 127.0.0.1).
    #[arg(long = "server-name", env = "WHARF_SERVER_NAME")]
    #[serde(default)]
    pub server_names: Vec<String>,
    /// Lifetime of internal-CA certificates in seconds (renewed at 2/3).
    #[arg(long, env = "WHARF_CERT_LIFETIME")]
    pub cert_lifetime: Option<u64>,
    /// Where file contents live, fixed when the cluster is created: `cluster`
    /// (replicated; the default), `local` (each node's disk) or `s3` (objects
    /// of an S3-compatible bucket, `--s3-*`). Joining nodes follow the cluster.
    #[arg(long, env = "WHARF_STORAGE", value_parser = storage_mode)]
    pub storage: Option<StorageMode>,
    /// Copies of every chunk with cluster storage (default: 3, or the number
    /// of voters when fewer; at most 16). Applies cluster-wide.
    #[arg(long, env = "WHARF_REPLICATION")]
    pub replication: Option<u64>,
    /// With cluster storage, the largest last chunk of a file (in bytes) that
    /// travels inside the upload's Raft entry instead of being placed on
    /// replicas before it: one fsync per small upload instead of three, but
    /// `226` then means the bytes are durable on a quorum of voters, as every
    /// namespace change is, and on the rest of the replicas moments later
    /// (default 65536; 0: never, so `226` waits for every replica; at most
    /// 1048576). Applies cluster-wide.
    #[arg(long, env = "WHARF_INLINE_MAX")]
    pub inline_max: Option<u64>,
    /// Seconds a member may stay silent before the leader re-creates its chunk
    /// replicas on other members (default 600).
    #[arg(long, env = "WHARF_REPAIR_AFTER")]
    pub repair_after: Option<u64>,
    /// Seconds an unreferenced chunk file stays on disk before it is deleted
    /// (default 3600). Must exceed the time an upload takes between two
    /// checkpoints (about a second), or its newest chunks could go.
    #[arg(long, env = "WHARF_CHUNK_GRACE")]
    pub chunk_grace: Option<u64>,
    /// Seconds an upload may go without a checkpoint before it counts as
    /// abandoned (default 86400): the leader then ends it, and the file keeps
    /// its durable prefix (on s3, its multipart upload completed with its
    /// durable parts).
    #[arg(long, env = "WHARF_UPLOAD_GRACE")]
    pub upload_grace: Option<u64>,
    #[command(flatten)]
    #[serde(default)]
    pub s3: S3Settings,
    #[command(flatten)]
    #[serde(default)]
    pub policy: Policy,
    #[command(flatten)]
    #[serde(default)]
    pub limits: LimitSettings,
    #[command(flatten)]
    #[serde(default)]
    pub access: Access,
    /// Config file only: `[defender]`.
    #[arg(skip)]
    #[serde(default)]
    pub defender: DefenderSettings,
    /// Config file only: `[[user]]` tables.
    #[arg(skip)]
    #[serde(default, rename = "user")]
    pub users: Vec<FileUser>,
}

/// `[policy]`: what clients must do. The relaxing flags of the command line
/// (`--allow-plain-login` and the like, `cli::Relaxations`) set these too.
#[skip_serializing_none]
#[derive(Args, Deserialize, Serialize, Clone, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[arg(skip)]
    pub require_tls_login: Option<bool>,
    #[arg(skip)]
    pub require_prot_p: Option<bool>,
    /// `false` is the old spelling of `data_tls = "any"`.
    #[arg(skip)]
    pub require_ssl_reuse: Option<bool>,
    /// What a data connection's TLS session must prove: `reuse` (a session of
    /// its own control connection), `same-user` (one this cluster issued to
    /// the same user at the same address; default) or `any`.
    #[arg(long, env = "WHARF_DATA_TLS")]
    pub data_tls: Option<String>,
    /// Client networks (CIDR) whose data connections need not resume a TLS
    /// session at all, for clients that cannot; logged once per session.
    #[arg(
        long = "data-tls-any-from",
        env = "WHARF_DATA_TLS_ANY_FROM",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub data_tls_any_from: Vec<IpNet>,
    #[arg(skip)]
    pub allow_active: Option<bool>,
    /// Client certificates on the explicit listener: off, optional or required
    /// (trusted CAs from `wharf cert trust add`).
    #[arg(long, env = "WHARF_CLIENT_CERTS")]
    pub client_certs: Option<String>,
    /// Client certificates on the implicit listener: off, optional or required.
    #[arg(long, env = "WHARF_IMPLICIT_CLIENT_CERTS")]
    pub implicit_client_certs: Option<String>,
}

/// `[s3]`: the bucket of `--storage s3`. Endpoint, bucket, prefix, region and
/// addressing style are recorded when the cluster is created (joining nodes
/// need only credentials); credentials are each node's own and never logged.
#[skip_serializing_none]
#[derive(Args, Deserialize, Serialize, Clone, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// S3 endpoint URL, e.g. https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:7480.
    #[arg(id = "s3_endpoint", long = "s3-endpoint", env = "WHARF_S3_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Bucket holding the files (it must exist).
    #[arg(id = "s3_bucket", long = "s3-bucket", env = "WHARF_S3_BUCKET")]
    pub bucket: Option<String>,
    /// Key prefix: alice's /in/a.csv is the object PREFIX/alice/in/a.csv.
    #[arg(id = "s3_prefix", long = "s3-prefix", env = "WHARF_S3_PREFIX")]
    pub prefix: Option<String>,
    /// Region used to sign requests (default us-east-1).
    #[arg(id = "s3_region", long = "s3-region", env = "WHARF_S3_REGION")]
    pub region: Option<String>,
    /// Path-style requests (endpoint/bucket/key), as Ceph, MinIO and Garage want.
    #[arg(id = "s3_path_style", long = "s3-path-style", env = "WHARF_S3_PATH_STYLE",
          num_args = 0..=1, default_missing_value = "true")]
    pub path_style: Option<bool>,
    /// Credentials in the AWS shared-credentials format ([default] profile);
    /// else AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
    #[arg(
        id = "s3_credentials_file",
        long = "s3-credentials-file",
        env = "WHARF_S3_CREDENTIALS_FILE"
    )]
    pub credentials_file: Option<PathBuf>,
    /// PEM file of the CA that signed the endpoint's certificate.
    #[arg(id = "s3_ca_file", long = "s3-ca-file", env = "WHARF_S3_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// MiB per part of a multipart upload (default 8, at least 5).
    #[arg(
        id = "s3_part_size_mib",
        long = "s3-part-size-mib",
        env = "WHARF_S3_PART_SIZE_MIB"
    )]
    pub part_size_mib: Option<u64>,
    /// Objects above this many MiB are copied a range per part, not in one
    /// CopyObject (default and most 5120, AWS's limit; least 5).
    #[arg(
        id = "s3_copy_max_mib",
        long = "s3-copy-max-mib",
        env = "WHARF_S3_COPY_MAX_MIB"
    )]
    pub copy_max_mib: Option<u64>,
}

/// `[limits]`.
#[skip_serializing_none]
#[derive(Args, Deserialize, Serialize, Clone, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    #[arg(long, env = "WHARF_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    #[arg(long, env = "WHARF_MAX_PER_IP")]
    pub max_per_ip: Option<usize>,
    /// Seconds a logged-in control connection may stay silent.
    #[arg(long, env = "WHARF_IDLE_TIMEOUT")]
    pub idle_timeout: Option<u64>,
    /// Seconds a data connection may take to open or stay stalled.
    #[arg(long, env = "WHARF_DATA_TIMEOUT")]
    pub data_timeout: Option<u64>,
    /// Seconds a connection may take to log in.
    #[arg(long, env = "WHARF_LOGIN_TIMEOUT")]
    pub login_timeout: Option<u64>,
    /// Milliseconds before a failed login is answered.
    #[arg(long, env = "WHARF_LOGIN_FAILURE_DELAY_MS")]
    pub login_failure_delay_ms: Option<u64>,
}

/// `[access]`: the global source lists.
#[derive(Args, Deserialize, Serialize, Clone, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// Only these source networks may connect (CIDR, repeatable; default any).
    #[arg(long = "allow-from", env = "WHARF_ALLOW_FROM", value_delimiter = ',')]
    #[serde(default)]
    pub allow: Vec<IpNet>,
    /// Source networks refused even when --allow-from names them (CIDR, repeatable).
    #[arg(long = "deny-from", env = "WHARF_DENY_FROM", value_delimiter = ',')]
    #[serde(default)]
    pub deny: Vec<IpNet>,
}

/// `[defender]`: scores per offence, the threshold that bans, its allow list.
#[skip_serializing_none]
#[derive(Deserialize, Serialize, Clone, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct DefenderSettings {
    pub threshold: Option<u32>,
    pub observation_seconds: Option<u64>,
    pub ban_seconds: Option<u64>,
    pub login_failure: Option<u32>,
    pub protocol_abuse: Option<u32>,
    pub flood: Option<u32>,
    #[serde(default)]
    pub allow: Vec<IpNet>,
}

/// A `[[user]]` table: an account imported when this node creates the cluster.
#[skip_serializing_none]
#[derive(Deserialize, Serialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileUser {
    pub name: String,
    pub password_hash: String,
    pub home: PathBuf,
    #[serde(default = "all_permissions")]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub allow: Vec<IpNet>,
    #[serde(default)]
    pub deny: Vec<IpNet>,
    /// Commands the user may send beyond the session basics; empty = all.
    #[serde(default)]
    pub commands: Vec<String>,
    /// password (default), certificate or both.
    pub login: Option<String>,
    /// What this user's data connections must prove: reuse, same-user or any
    /// (default: the server's `policy.data_tls`).
    pub data_tls: Option<String>,
    /// cn:NAME, san:NAME or sha256:FINGERPRINT; default: the CN is the name.
    #[serde(default)]
    pub certificates: Vec<String>,
    #[serde(default)]
    pub max_sessions: usize,
    #[serde(default)]
    pub upload_rate: u64,
    #[serde(default)]
    pub download_rate: u64,
    /// Cluster storage only; 0 = unlimited.
    #[serde(default)]
    pub quota_bytes: u64,
    #[serde(default)]
    pub quota_files: u64,
}

fn all_permissions() -> Vec<String> {
    vec!["all".into()]
}

/// `--storage cluster|local|s3`.
fn storage_mode(name: &str) -> Result<StorageMode, String> {
    name.parse()
}

#[derive(Clone, Copy, Debug, ValueEnum, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}
