//! What a node is started with: the engine's configuration, the cluster
//! member's, and the node's own choices (storage, certificates, endpoints).
//! The command line (`crates/wharf`) builds it from flags, environment
//! variables and the config file; a test builds it directly.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use wharf_server::EngineConfig;
use wharf_tls::ClientCertMode;

use crate::certificates::CertPolicy;
use crate::error::NodeError;

pub struct NodeConfig {
    pub engine: EngineConfig,
    pub client_certs: ClientCerts,
    /// The HTTP endpoint, and whether the operator chose it (then failing to
    /// bind it is an error; the default address is only tried).
    pub http_listen: Option<(SocketAddr, bool)>,
    /// Answers ACME HTTP-01 challenges only (off unless given).
    pub acme_listen: Option<SocketAddr>,
    pub cluster_listen: SocketAddr,
    pub cluster_advertise: Option<String>,
    pub cluster_source: Option<IpAddr>,
    pub join: Option<Join>,
    pub raft_snapshot_logs: u64,
    pub raft_snapshot_min_log_mib: u64,
    pub raft_snapshot_piece_kib: u64,
    pub store_limits: wharf_store::StoreLimits,
    /// `None`: the cluster's choice (or the default, cluster, when it has none).
    pub storage: Option<StorageMode>,
    /// Object storage (`--storage s3`): what this node was given; the
    /// cluster's recorded bucket and endpoint fill in the rest.
    pub s3: S3Config,
    pub replication: Option<usize>,
    /// `--inline-max`, recorded cluster-wide when given.
    pub inline_max: Option<usize>,
    /// How long a member may stay silent before its chunk replicas are
    /// re-created elsewhere.
    pub repair_after: Duration,
    /// How long an unreferenced chunk file stays before it is deleted.
    pub chunk_grace: Duration,
    /// How long an upload may go without a checkpoint before the leader
    /// ends it (the file keeps its durable prefix).
    pub upload_grace: Duration,
    pub cert_policy: CertPolicy,
    pub data_dir: PathBuf,
    pub audit_log: PathBuf,
    pub secrets_key_file: Option<PathBuf>,
    pub cert: Option<(PathBuf, PathBuf)>,
    /// Accounts imported into the cluster when this node creates it
    /// (`store_accounts::checked_record` checks one).
    pub accounts: Vec<wharf_store::records::UserRecord>,
}

/// Whether each control listener asks for client certificates.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientCerts {
    pub explicit: ClientCertMode,
    pub implicit: ClientCertMode,
}

/// Where file contents live; chosen when the cluster is created.
#[derive(Clone, Copy, Debug, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StorageMode {
    /// Each node's own disk (DATA_DIR/home/NAME), as vsftpd does.
    Local,
    /// The replicated namespace and chunk store: every node serves every file.
    Cluster,
    /// The replicated namespace, with contents as objects of an
    /// S3-compatible bucket.
    S3,
}

/// The `--s3-*` settings a node is started with. The bucket, prefix,
/// endpoint, region and addressing style are recorded when the cluster is
/// created, so joining nodes need only their credentials; the credentials and
/// the endpoint's CA are each node's own, and never recorded or logged.
#[derive(Clone, Debug, Default)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub region: Option<String>,
    pub path_style: Option<bool>,
    /// AWS shared-credentials format; else `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    pub credentials_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    /// MiB per part of a multipart upload (at least 5, S3's minimum).
    pub part_size_mib: Option<u64>,
    /// Objects above this many MiB are copied a range per part (renames,
    /// `MFMT`); at most 5,120, AWS's CopyObject limit.
    pub copy_max_mib: Option<u64>,
}

impl StorageMode {
    pub fn name(self) -> &'static str {
        match self {
            StorageMode::Local => "local",
            StorageMode::Cluster => "cluster",
            StorageMode::S3 => "s3",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "local" => Some(StorageMode::Local),
            "cluster" => Some(StorageMode::Cluster),
            "s3" => Some(StorageMode::S3),
            _ => None,
        }
    }
}

impl std::str::FromStr for StorageMode {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Self::parse(name).ok_or_else(|| format!("{name:?} is not a storage: cluster, local or s3"))
    }
}

/// How a node that is not yet a member joins a cluster.
#[derive(Debug, Clone)]
pub struct Join {
    /// Cluster address of a member.
    pub member: String,
    pub token: JoinToken,
}

#[derive(Debug, Clone)]
pub enum JoinToken {
    Given(String),
    /// Read from a file once it exists (a Kubernetes secret, or a file the
    /// first node writes to a shared volume).
    File(PathBuf),
}

/// How often, and how long, a node waits for its join token file.
const TOKEN_FILE_POLL: Duration = Duration::from_secs(1);
const TOKEN_FILE_WAIT: Duration = Duration::from_secs(600);

impl Join {
    /// The token, waiting for its file to appear when it comes from one.
    pub async fn token(&self) -> Result<String, NodeError> {
        let path = match &self.token {
            JoinToken::Given(t) => return Ok(t.clone()),
            JoinToken::File(path) => path,
        };
        let deadline = tokio::time::Instant::now() + TOKEN_FILE_WAIT;
        let mut told = false;
        loop {
            match tokio::fs::read_to_string(path).await {
                Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(NodeError::file("cannot read the join token file", path)(e)),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(NodeError::NoJoinToken {
                    path: path.clone(),
                    waited: TOKEN_FILE_WAIT.as_secs(),
                });
            }
            if !told {
                tracing::info!(file = %path.display(), "waiting for the join token file");
                told = true;
            }
            tokio::time::sleep(TOKEN_FILE_POLL).await;
        }
    }
}
