//! A running cluster member: its Raft instance, its store reader, the gRPC
//! server, and the write path (any node accepts a write and forwards it to the
//! leader; the answer comes only after this node applied it).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, Config, ServerState, SnapshotPolicy};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tonic::Status;
use wharf_store::{ClusterNode, Command, CommandResult, NodeId, Raft, StateReader};

use crate::network::{endpoint, PeerNetwork};
use crate::pb;
use crate::pb::cluster_client::ClusterClient;
use crate::service::{ClusterService, RaftService};

/// Metadata key marking a write forwarded by a peer.
pub(crate) const FORWARDED: &str = "x-wharf-forwarded";
/// How long a write may wait for a leader and a quorum before failing.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const JOIN_TOKEN_SETTING: &str = "join_token";
const ADMIN_TOKEN_SETTING: &str = "admin_token";
/// Files in the data dir where a node keeps the tokens for local operators.
pub const JOIN_TOKEN_FILE: &str = "join_token";
pub const ADMIN_TOKEN_FILE: &str = "admin_token";
/// Where a node records its cluster address for local operators.
pub const CLUSTER_ADDR_FILE: &str = "cluster_addr";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot open the store: {0}")]
    Store(#[from] wharf_store::StoreError),
    #[error("cannot read or write {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} for cluster traffic: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("Raft: {0}")]
    Raft(String),
    #[error("joining through {addr} failed: {reason}")]
    Join { addr: String, reason: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WriteError {
    #[error("no leader with a quorum answered within {0:?}: the cluster cannot accept changes now (are a majority of nodes up?)")]
    NoQuorum(Duration),
    #[error("the write was committed but this node did not apply it in time")]
    NotApplied,
    #[error("the leader refused the write: {0}")]
    Refused(String),
}

pub struct ClusterConfig {
    /// Holds `node_id` and the store (`raft/`).
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Address peers use to reach this node; defaults to `listen`.
    pub advertise: Option<String>,
    /// `(address of a member, join token)` for a node that is not yet a member.
    pub join: Option<(String, String)>,
    /// Log entries between snapshots (older entries are then purged).
    pub snapshot_logs: u64,
}

pub struct ClusterHandle {
    pub node_id: NodeId,
    pub advertise: String,
    pub raft: Raft,
    pub reader: StateReader,
    /// Serialises membership changes made through this node.
    membership_lock: Mutex<()>,
}

pub struct RunningCluster {
    pub handle: Arc<ClusterHandle>,
    pub server: JoinHandle<()>,
    pub local_addr: SocketAddr,
}

fn raft_config(snapshot_logs: u64) -> Config {
    Config {
        cluster_name: "wharf".into(),
        heartbeat_interval: 200,
        election_timeout_min: 800,
        election_timeout_max: 1600,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_logs.max(1)),
        max_in_snapshot_log_to_keep: snapshot_logs / 2,
        purge_batch_size: 1,
        ..Config::default()
    }
}

fn read_node_id(path: &Path) -> Result<Option<NodeId>, ClusterError> {
    match std::fs::read_to_string(path) {
        Ok(s) => s.trim().parse().map(Some).map_err(|_| ClusterError::File {
            path: path.into(),
            source: std::io::Error::other("not a node id"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ClusterError::File {
            path: path.into(),
            source,
        }),
    }
}

/// Starts this node's part of the cluster: opens the store, serves gRPC, and
/// either bootstraps a one-node cluster, joins one, or simply resumes.
pub async fn start(config: ClusterConfig) -> Result<RunningCluster, ClusterError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ClusterError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| ClusterError::Bind {
        addr: config.listen,
        source,
    })?;
    let advertise = config
        .advertise
        .clone()
        .unwrap_or_else(|| local_addr.to_string());
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ClusterError::File {
        path: config.data_dir.clone(),
        source,
    })?;
    let id_path = config.data_dir.join("node_id");
    let (node_id, fresh) = match read_node_id(&id_path)? {
        Some(id) => (id, false),
        None => {
            let id = match &config.join {
                Some((addr, token)) => request_join(addr, token, &advertise).await?,
                None => 1,
            };
            std::fs::write(&id_path, format!("{id}\n")).map_err(|source| ClusterError::File {
                path: id_path.clone(),
                source,
            })?;
            (id, true)
        }
    };
    let store = wharf_store::open(&config.data_dir.join("raft")).await?;
    let raft_config = Arc::new(
        raft_config(config.snapshot_logs)
            .validate()
            .map_err(|e| ClusterError::Raft(e.to_string()))?,
    );
    let raft = Raft::new(
        node_id,
        raft_config,
        PeerNetwork,
        store.log,
        store.state_machine,
    )
    .await
    .map_err(|e| ClusterError::Raft(e.to_string()))?;
    let handle = Arc::new(ClusterHandle {
        node_id,
        advertise: advertise.clone(),
        raft,
        reader: store.reader,
        membership_lock: Mutex::new(()),
    });
    let server = tokio::spawn(serve(handle.clone(), listener));
    if fresh && config.join.is_none() {
        let mut members = BTreeMap::new();
        members.insert(
            node_id,
            ClusterNode {
                cluster_addr: advertise,
            },
        );
        handle
            .raft
            .initialize(members)
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        tracing::info!(
            node_id,
            "initialised a new cluster with this node as its only member"
        );
    }
    tokio::spawn(promote_learners(handle.clone()));
    tokio::spawn(keep_local_files(handle.clone(), config.data_dir.clone()));
    Ok(RunningCluster {
        handle,
        server,
        local_addr,
    })
}

async fn serve(handle: Arc<ClusterHandle>, listener: tokio::net::TcpListener) {
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let result = tonic::transport::Server::builder()
        .add_service(
            pb::raft_server::RaftServer::new(RaftService {
                node: handle.clone(),
            })
            .max_decoding_message_size(64 * 1024 * 1024),
        )
        .add_service(pb::cluster_server::ClusterServer::new(ClusterService {
            node: handle,
        }))
        .serve_with_incoming(incoming)
        .await;
    if let Err(e) = result {
        tracing::error!("cluster gRPC server stopped: {e}");
    }
}

async fn request_join(addr: &str, token: &str, advertise: &str) -> Result<NodeId, ClusterError> {
    let failed = |reason: String| ClusterError::Join {
        addr: addr.to_owned(),
        reason,
    };
    let channel = endpoint(addr)
        .map_err(|e| failed(e.to_string()))?
        .connect()
        .await
        .map_err(|e| failed(format!("cannot connect: {e}")))?;
    let reply = ClusterClient::new(channel)
        .join(pb::JoinRequest {
            token: token.to_owned(),
            cluster_addr: advertise.to_owned(),
        })
        .await
        .map_err(|s| failed(s.message().to_owned()))?;
    let id = reply.get_ref().node_id;
    tracing::info!(node_id = id, via = addr, "joined the cluster as a learner");
    Ok(id)
}

/// Keeps the tokens and this node's address in files of the data dir (0600),
/// so an operator on the host can run admin commands with `--data-dir`.
async fn keep_local_files(handle: Arc<ClusterHandle>, data_dir: PathBuf) {
    let mut changes = handle.reader.changes();
    let write = |name: &str, value: &str| {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = data_dir.join(name);
        if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
            return;
        }
        let result = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{value}"));
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), "cannot write: {e}");
        }
    };
    loop {
        write(CLUSTER_ADDR_FILE, &handle.advertise);
        if let Some(t) = handle.join_token() {
            write(JOIN_TOKEN_FILE, &t);
        }
        if let Some(t) = handle.admin_token() {
            write(ADMIN_TOKEN_FILE, &t);
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Leader job: learners that have caught up become voters.
async fn promote_learners(handle: Arc<ClusterHandle>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let metrics = handle.raft.metrics().borrow().clone();
        if metrics.current_leader != Some(handle.node_id) {
            continue;
        }
        let Some(last) = metrics.last_log_index else {
            continue;
        };
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let replication = metrics.replication.unwrap_or_default();
        let ready: BTreeSet<NodeId> = membership
            .learner_ids()
            .filter(|id| {
                replication
                    .get(id)
                    .and_then(|m| m.as_ref())
                    .is_some_and(|m| m.index + 50 >= last)
            })
            .collect();
        if ready.is_empty() || ready.is_subset(&voters) {
            continue;
        }
        let _guard = handle.membership_lock.lock().await;
        match handle
            .raft
            .change_membership(ChangeMembers::AddVoterIds(ready.clone()), true)
            .await
        {
            Ok(_) => tracing::info!(?ready, "promoted caught-up learners to voters"),
            Err(e) => tracing::warn!(?ready, "cannot promote learners yet: {e}"),
        }
    }
}

impl ClusterHandle {
    fn leader_addr(&self, leader: NodeId) -> Option<String> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.cluster_addr.clone())
    }

    /// Applies `command` through the leader and returns its result once this
    /// node's own state machine has applied it (read-your-writes).
    pub async fn write(&self, command: Command) -> Result<CommandResult, WriteError> {
        self.write_indexed(command).await.map(|(result, _)| result)
    }

    /// `write`, also returning the log index the command was committed at.
    pub async fn write_indexed(
        &self,
        command: Command,
    ) -> Result<(CommandResult, u64), WriteError> {
        let deadline = Instant::now() + WRITE_TIMEOUT;
        let mut last_refusal = None;
        while Instant::now() < deadline {
            let leader = self.raft.current_leader().await;
            let attempt = match leader {
                Some(id) if id == self.node_id => self.write_as_leader(command.clone()).await,
                Some(id) => match self.leader_addr(id) {
                    Some(addr) => {
                        forward(
                            &addr,
                            &command,
                            deadline,
                            &self.admin_token().unwrap_or_default(),
                        )
                        .await
                    }
                    None => Err(Status::unavailable("leader address unknown")),
                },
                None => Err(Status::unavailable("no leader")),
            };
            match attempt {
                Ok((result, index)) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    return match tokio::time::timeout(
                        remaining.max(Duration::from_secs(1)),
                        self.reader.wait_applied(index),
                    )
                    .await
                    {
                        Ok(()) => Ok((result, index)),
                        Err(_) => Err(WriteError::NotApplied),
                    };
                }
                Err(status) if status.code() == tonic::Code::InvalidArgument => {
                    return Err(WriteError::Refused(status.message().to_owned()))
                }
                Err(status) => {
                    last_refusal = Some(status.message().to_owned());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        tracing::warn!(
            reason = last_refusal.as_deref().unwrap_or("none"),
            "write failed: no quorum"
        );
        Err(WriteError::NoQuorum(WRITE_TIMEOUT))
    }

    /// The leader's half of a write: commit through Raft, bounded in time.
    pub async fn write_as_leader(&self, command: Command) -> Result<(CommandResult, u64), Status> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.raft.client_write(command)).await {
            Err(_) => Err(Status::unavailable(
                "no quorum: the write was not committed in time",
            )),
            Ok(Ok(resp)) => Ok((resp.data, resp.log_id.index)),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                Err(Status::unavailable("not the leader"))
            }
            Ok(Err(e)) => Err(Status::unavailable(e.to_string())),
        }
    }

    /// Admits a new node as a learner (leader only); returns its id.
    pub async fn admit(&self, token: &str, cluster_addr: String) -> Result<NodeId, Status> {
        let expected = self
            .reader
            .setting(JOIN_TOKEN_SETTING)
            .map_err(|e| Status::internal(e.to_string()))?;
        if expected
            .as_deref()
            .is_none_or(|t| !constant_time_eq(t.as_bytes(), token.as_bytes()))
        {
            tracing::warn!(%cluster_addr, "refused a join with a wrong token");
            return Err(Status::permission_denied("wrong join token"));
        }
        if self.raft.current_leader().await != Some(self.node_id) {
            let leader = match self.raft.current_leader().await {
                Some(id) => self.leader_addr(id).unwrap_or_default(),
                None => String::new(),
            };
            return Err(Status::failed_precondition(format!(
                "this node is not the leader; join through {leader}"
            )));
        }
        let _guard = self.membership_lock.lock().await;
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        if let Some((id, _)) = membership
            .nodes()
            .find(|(_, n)| n.cluster_addr == cluster_addr)
        {
            return Ok(*id);
        }
        let id = membership.nodes().map(|(id, _)| *id).max().unwrap_or(0) + 1;
        self.raft
            .add_learner(
                id,
                ClusterNode {
                    cluster_addr: cluster_addr.clone(),
                },
                false,
            )
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        tracing::info!(node_id = id, %cluster_addr, "admitted a new node as learner");
        Ok(id)
    }

    pub async fn remove(&self, node_id: NodeId) -> Result<(), Status> {
        let _guard = self.membership_lock.lock().await;
        let ids: BTreeSet<NodeId> = [node_id].into();
        self.raft
            .change_membership(ChangeMembers::RemoveVoters(ids.clone()), false)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        self.raft
            .change_membership(ChangeMembers::RemoveNodes(ids), false)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(())
    }

    /// Makes sure the cluster has its join and admin tokens; the node that
    /// bootstraps the cluster creates them.
    pub async fn ensure_tokens(&self) -> Result<(), WriteError> {
        for key in [JOIN_TOKEN_SETTING, ADMIN_TOKEN_SETTING] {
            if let Ok(Some(_)) = self.reader.setting(key) {
                continue;
            }
            self.write(Command::PutSetting {
                key: key.into(),
                value: random_token(),
            })
            .await?;
        }
        Ok(())
    }

    pub fn join_token(&self) -> Option<String> {
        self.reader.setting(JOIN_TOKEN_SETTING).ok().flatten()
    }

    fn admin_token(&self) -> Option<String> {
        self.reader.setting(ADMIN_TOKEN_SETTING).ok().flatten()
    }

    /// Checks `authorization: Bearer <admin token>`.
    pub fn check_admin(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(), Status> {
        let presented = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match (presented, self.admin_token()) {
            (Some(p), Some(t)) if constant_time_eq(p.as_bytes(), t.as_bytes()) => Ok(()),
            (_, None) => Err(Status::unavailable(
                "this node has not received the admin token yet",
            )),
            _ => Err(Status::unauthenticated("admin token required")),
        }
    }

    pub fn status(&self) -> pb::StatusReply {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let replication = m.replication.clone().unwrap_or_default();
        pb::StatusReply {
            node_id: self.node_id,
            leader_id: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            last_applied_index: m.last_applied.map(|l| l.index),
            committed_index: None,
            state: match m.state {
                ServerState::Leader => "leader",
                ServerState::Follower => "follower",
                ServerState::Candidate => "candidate",
                ServerState::Learner => "learner",
                ServerState::Shutdown => "shutdown",
            }
            .into(),
            members: membership
                .nodes()
                .map(|(id, n)| pb::MemberStatus {
                    node_id: *id,
                    cluster_addr: n.cluster_addr.clone(),
                    role: if voters.contains(id) {
                        "voter"
                    } else {
                        "learner"
                    }
                    .into(),
                    matched_index: replication.get(id).and_then(|l| l.map(|l| l.index)),
                })
                .collect(),
        }
    }
}

async fn forward(
    addr: &str,
    command: &Command,
    deadline: Instant,
    admin_token: &str,
) -> Result<(CommandResult, u64), Status> {
    let channel = endpoint(addr)
        .map_err(|e| Status::unavailable(e.to_string()))?
        .connect()
        .await
        .map_err(|e| Status::unavailable(format!("leader {addr} unreachable: {e}")))?;
    let bytes = wharf_store::encode_value(command).map_err(|e| Status::internal(e.to_string()))?;
    let mut request = tonic::Request::new(pb::ForwardRequest { command: bytes });
    request.set_timeout(
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100)),
    );
    let bearer = format!("Bearer {admin_token}")
        .parse()
        .map_err(|_| Status::internal("admin token is not ASCII"))?;
    request.metadata_mut().insert("authorization", bearer);
    request
        .metadata_mut()
        .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    let reply = ClusterClient::new(channel)
        .forward(request)
        .await?
        .into_inner();
    let result =
        wharf_store::decode_value(&reply.result).map_err(|e| Status::internal(e.to_string()))?;
    Ok((result, reply.log_index))
}

fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
