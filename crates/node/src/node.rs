//! `Node`: one Wharf node put together — the cluster member (Raft store and
//! gRPC), the FTPS engine over the storage the cluster chose, the tables the
//! node follows, the leader jobs and the HTTP endpoints — and every task it
//! spawned, so stopping the node stops them all.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use wharf_cluster::ClusterHandle;
use wharf_server::{Engine, Listening};
use wharf_store::secrets::SecretsKey;
use wharf_tls::{CertificateSet, ServerIdentity, TlsConfigs};

use crate::config::{NodeConfig, StorageMode};
use crate::error::NodeError;
use crate::{
    certificates, cluster_bans, cluster_fs, drain, http, leader, storage, store_accounts,
    ticket_keys, trust,
};

pub struct Node {
    config: NodeConfig,
    cluster: Arc<ClusterHandle>,
    cluster_addr: SocketAddr,
    engine: Engine,
    certificates: Arc<CertificateSet>,
    /// The cluster's gRPC server, the followers, the leader jobs, the HTTP
    /// endpoints: aborted when the node stops.
    tasks: Vec<JoinHandle<()>>,
}

impl Node {
    /// Starts the cluster member (joining or bootstrapping a cluster), waits
    /// until the node holds the cluster's certificate and a ticket key, binds
    /// the FTPS listeners and the HTTP endpoints. Nothing is accepted on the
    /// FTPS listeners until [`Node::run`].
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        private_data_dir(&config.data_dir)?;
        let identity = match &config.cert {
            Some((cert, key)) => ServerIdentity::from_pem_files(cert, key)?,
            None => ServerIdentity::self_signed_in(
                &config.data_dir.join("tls"),
                &["localhost".to_owned(), "127.0.0.1".to_owned()],
            )?,
        };
        let fallback_key = identity.certified_key()?;
        let certificates = CertificateSet::new();
        certificates.replace(
            [(wharf_tls::DEFAULT_NAME.to_owned(), fallback_key.clone())]
                .into_iter()
                .collect(),
        );
        let ticket_ring = wharf_tls::TicketKeyRing::new(ticket_keys::TICKET_LIFETIME);
        let client_auth = wharf_tls::ClientAuth {
            anchors: wharf_tls::TrustAnchors::new(),
            explicit: config.client_certs.explicit,
            implicit: config.client_certs.implicit,
        };
        let tls = TlsConfigs::from_parts(certificates.clone(), ticket_ring.clone(), &client_auth)?;
        let cluster_dir = config.data_dir.join("cluster");
        let join = match &config.join {
            Some(join) if !wharf_cluster::is_member(&cluster_dir) => {
                Some((join.member.clone(), join.token().await?))
            }
            _ => None,
        };
        let chunk_store = wharf_blob::ChunkStore::open(config.data_dir.join("chunks"))
            .map_err(NodeError::ChunkStore)?;
        let running = wharf_cluster::start(wharf_cluster::ClusterConfig {
            data_dir: cluster_dir,
            listen: config.cluster_listen,
            advertise: config.cluster_advertise.clone(),
            source: config.cluster_source,
            join,
            snapshot: wharf_cluster::SnapshotSettings {
                every_entries: config.raft_snapshot_logs,
                min_log_bytes: config.raft_snapshot_min_log_mib.saturating_mul(1 << 20),
                piece_bytes: config.raft_snapshot_piece_kib.saturating_mul(1 << 10),
            },
            store_limits: config.store_limits,
            chunk_store: Arc::new(chunk_store),
            secrets: secrets_key(&config)?,
        })
        .await?;
        let node = running.handle.clone();
        let mut tasks = vec![running.server];
        node.reader().check_secrets().map_err(NodeError::Secrets)?;
        tracing::info!(node_id = node.node_id(), cluster = %running.local_addr, "cluster member started");

        tasks.push(tokio::spawn(ticket_keys::follow_table(
            node.clone(),
            ticket_ring.clone(),
        )));
        tasks.push(tokio::spawn(trust::follow_table(
            node.clone(),
            client_auth.anchors.clone(),
        )));
        tasks.push(tokio::spawn(certificates::follow_table(
            node.clone(),
            certificates.clone(),
            fallback_key,
        )));
        tasks.push(lead(&node, ticket_keys::Rotation));
        tasks.push(lead(
            &node,
            certificates::Renewal::new(config.cert_policy.clone()),
        ));
        tasks.push(lead(&node, crate::acme::Orders::default()));
        tasks.push(lead(&node, cluster_bans::Expiry));
        let deliveries = Arc::new(crate::events::DeliveryCounts::default());
        tasks.push(lead(
            &node,
            crate::events::Delivery::new(deliveries.clone()),
        ));
        if config.join.is_none() {
            bootstrap(&node, &config).await?;
        }
        wait_for_cluster_certificate(&node).await;
        ticket_keys::wait_for_active_key(&ticket_ring, Duration::from_secs(15)).await;

        let mode = storage::settle(
            &node,
            config.storage,
            config.replication,
            config.inline_max,
            config.join.is_none(),
        )
        .await?;
        tracing::info!(
            storage = mode.name(),
            "users' files are served from {} storage",
            mode.name()
        );
        let objects = match mode {
            StorageMode::S3 => {
                Some(storage::connect_objects(&node, &config.s3, config.join.is_none()).await?)
            }
            _ => None,
        };
        if let Some(objects) = &objects {
            tasks.push(lead(
                &node,
                cluster_fs::object_upkeep::ObjectUpkeep::new(objects.clone(), config.upload_grace),
            ));
        }
        let (files, home_root) = storage::boundary(mode, &node, &config.data_dir, objects);
        let repair_backlog = Arc::new(AtomicU64::new(0));
        if mode == StorageMode::Cluster {
            tasks.push(lead(
                &node,
                cluster_fs::upkeep::Repair::new(
                    config.repair_after,
                    config.upload_grace,
                    repair_backlog.clone(),
                ),
            ));
            tasks.push(tokio::spawn(cluster_fs::upkeep::collect_local_chunks(
                node.clone(),
                config.chunk_grace,
            )));
            tasks.push(tokio::spawn(cluster_fs::spill::spill_inline_chunks(
                node.clone(),
            )));
        }
        let boundaries = wharf_server::Boundaries {
            accounts: Arc::new(store_accounts::StoreAccounts::new(
                node.reader().clone(),
                &home_root,
            )),
            bans: Arc::new(cluster_bans::ClusterBans { node: node.clone() }),
            storage: files,
        };
        let engine = Engine::bind(config.engine.clone(), tls, boundaries).await?;
        let control = engine.control();
        node.count_sessions_with({
            let control = control.clone();
            move || control.open_sessions()
        });
        tasks.push(drain::follow_setting(node.clone(), control.clone()));
        if let Some((addr, chosen)) = config.http_listen {
            let observed = Arc::new(http::Observed {
                node: node.clone(),
                engine: control,
                repair_backlog,
                deliveries,
                object_storage: mode == StorageMode::S3,
            });
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => {
                    tracing::info!(%addr, "HTTP endpoint: /metrics /healthz /readyz");
                    tasks.push(tokio::spawn(http::serve(listener, observed)));
                }
                Err(error) if chosen => {
                    return Err(NodeError::Listen {
                        flag: "--http-listen",
                        addr,
                        error,
                    })
                }
                Err(e) => tracing::warn!(%addr,
                    "no HTTP endpoint (/metrics, /readyz): cannot listen on the default address: {e}; \
                     set --http-listen"),
            }
        }
        if let Some(addr) = config.acme_listen {
            let listener =
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|error| NodeError::Listen {
                        flag: "--acme-listen",
                        addr,
                        error,
                    })?;
            tracing::info!(%addr, "ACME HTTP-01 endpoint: /.well-known/acme-challenge/");
            tasks.push(tokio::spawn(http::serve_challenges(listener, node.clone())));
        }
        Ok(Node {
            config,
            cluster: node,
            cluster_addr: running.local_addr,
            engine,
            certificates,
            tasks,
        })
    }

    /// What the node was started with.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The cluster member: the replicated store, writes, membership.
    pub fn cluster(&self) -> &Arc<ClusterHandle> {
        &self.cluster
    }

    /// Where the cluster's gRPC service listens.
    pub fn cluster_addr(&self) -> SocketAddr {
        self.cluster_addr
    }

    /// Where the FTPS listeners are bound.
    pub fn listening(&self) -> Listening {
        self.engine.listening()
    }

    /// The certificates the node serves now, by name.
    pub fn certificates(&self) -> &Arc<CertificateSet> {
        &self.certificates
    }

    /// Serves FTPS until `shutdown` completes and the sessions have ended
    /// (or the engine's grace period ran out), then stops every task of the
    /// node and the Raft member.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Node {
            cluster,
            engine,
            tasks,
            ..
        } = self;
        engine.run(shutdown).await;
        for task in &tasks {
            task.abort();
        }
        cluster.shutdown().await;
    }
}

fn lead(node: &Arc<ClusterHandle>, job: impl leader::LeaderJob) -> JoinHandle<()> {
    tokio::spawn(leader::run(node.clone(), job))
}

/// Creates the data directory, or makes an existing one private (0700): it
/// holds keys, the store and users' files.
fn private_data_dir(dir: &Path) -> Result<(), NodeError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(NodeError::file("cannot create data directory", dir))?;
    let mode = std::fs::metadata(dir)
        .map_err(NodeError::file("cannot read the data directory", dir))?
        .permissions()
        .mode()
        & 0o777;
    if mode != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
            NodeError::file("cannot make the data directory private:", dir),
        )?;
        tracing::info!(dir = %dir.display(), was = %format!("{mode:o}"), "data directory made private (0700)");
    }
    Ok(())
}

/// The operator's key sealing private keys and ticket keys in the store:
/// from `--secrets-key-file`, else from `WHARF_SECRETS_KEY` (hex, 32 bytes).
fn secrets_key(config: &NodeConfig) -> Result<Option<Arc<SecretsKey>>, NodeError> {
    let (text, from) = match &config.secrets_key_file {
        Some(path) => (
            std::fs::read_to_string(path)
                .map_err(NodeError::file("cannot read the secrets key file", path))?,
            path.display().to_string(),
        ),
        None => match std::env::var("WHARF_SECRETS_KEY") {
            Ok(text) => (text, "WHARF_SECRETS_KEY".to_owned()),
            Err(_) => {
                tracing::info!("no secrets key: private keys and ticket keys are stored in clear (protected by the data directory's mode only)");
                return Ok(None);
            }
        },
    };
    let key = SecretsKey::from_hex(&text).map_err(|error| NodeError::SecretsKey { from, error })?;
    tracing::info!(
        key_id = key.id(),
        "private keys and ticket keys in the store are sealed"
    );
    Ok(Some(Arc::new(key)))
}

/// On the node that bootstraps a cluster (and on every restart of it): wait
/// for a leader, make sure the tokens, a ticket key and the default
/// certificate exist, import the configured accounts the cluster does not
/// know yet.
async fn bootstrap(node: &ClusterHandle, config: &NodeConfig) -> Result<(), NodeError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !node.has_leader().await {
        if Instant::now() >= deadline {
            return Err(NodeError::NoLeader);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node.ensure_tokens().await?;
    ticket_keys::rotate_once(node).await?;
    for user in &config.accounts {
        let result = node
            .write(wharf_store::Command::PutUser {
                user: user.clone(),
                create_only: true,
            })
            .await?;
        if result == wharf_store::CommandResult::Done {
            tracing::info!(user = %user.name, "imported account into the cluster");
        }
    }
    let imported = match &config.cert {
        Some((cert, key)) => Some((
            std::fs::read_to_string(cert).map_err(NodeError::file("cannot read", cert))?,
            std::fs::read_to_string(key).map_err(NodeError::file("cannot read", key))?,
        )),
        None => None,
    };
    certificates::bootstrap(node, imported, &config.cert_policy).await
}

/// Waits (bounded) until this node serves the cluster's default certificate.
async fn wait_for_cluster_certificate(node: &ClusterHandle) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if node
            .reader()
            .certs()
            .is_ok_and(|c| c.iter().any(|c| c.name == wharf_tls::DEFAULT_NAME))
        {
            // follow_table swaps on the same change notification.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::warn!(
        "no cluster certificate replicated yet: serving this node's own until one arrives"
    );
}
