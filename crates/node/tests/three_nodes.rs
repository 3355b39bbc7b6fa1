//! Three `Node`s in one process, as the library assembles them for the
//! `wharf` binary: a file uploaded through one node is read, byte for byte,
//! through another, and the third sees it in its listing.

// Test code: a failed unwrap is the test failing (the workspace denies these
// lints outside tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use rand::Rng;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wharf_client::Session;
use wharf_node::certificates::CertPolicy;
use wharf_node::store_accounts::unrestricted_record;
use wharf_node::{ClientCerts, Join, JoinToken, Node, NodeConfig, StorageMode};
use wharf_server::accounts::hash_password;
use wharf_server::{EngineConfig, Limits, PortRange, TlsPolicy};

const USER: &str = "alice";
const PASSWORD: &str = "in-process-42";

/// A port on 127.0.0.1 free now, below the kernel's ephemeral range.
fn free_port() -> u16 {
    let mut rng = rand::thread_rng();
    loop {
        let port = rng.gen_range(20000..32000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn account() -> wharf_store::records::UserRecord {
    unrestricted_record(USER, hash_password(PASSWORD).expect("hash"))
}

/// A node's configuration: loopback ports of its own, cluster storage,
/// the engine's defaults.
fn config(dir: &Path, join: Option<Join>) -> NodeConfig {
    let passive = rand::thread_rng().gen_range(45000..46900);
    NodeConfig {
        engine: EngineConfig {
            listen: Some(local(free_port())),
            implicit_listen: None,
            passive_ports: PortRange {
                first: passive,
                last: passive + 49,
            },
            passive_address: None,
            trusted_proxies: Default::default(),
            policy: TlsPolicy::default(),
            limits: Limits::default(),
            sources: Default::default(),
            defender: Default::default(),
            xferlog: None,
            shutdown_grace: Duration::from_secs(2),
        },
        client_certs: ClientCerts::default(),
        http_listen: None,
        acme_listen: None,
        cluster_listen: local(free_port()),
        cluster_advertise: None,
        cluster_source: None,
        join,
        raft_snapshot_logs: 0,
        raft_snapshot_min_log_mib: 32,
        raft_snapshot_piece_kib: 256,
        store_limits: Default::default(),
        storage: Some(StorageMode::Cluster),
        s3: Default::default(),
        replication: None,
        inline_max: None,
        repair_after: Duration::from_secs(600),
        chunk_grace: Duration::from_secs(3600),
        upload_grace: Duration::from_secs(24 * 3600),
        cert_policy: CertPolicy {
            server_names: vec!["localhost".into(), "127.0.0.1".into()],
            lifetime: Duration::from_secs(90 * 24 * 3600),
        },
        data_dir: dir.to_owned(),
        audit_log: dir.join("audit.log"),
        secrets_key_file: None,
        cert: None,
        accounts: vec![account()],
    }
}

/// A started node serving on a task of its own until told to stop.
struct Running {
    ftps: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

fn run(node: Node) -> Running {
    let ftps = node.listening().explicit.expect("explicit listener");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(node.run(async {
        let _ = stopped.await;
    }));
    Running { ftps, stop, task }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_in_one_process_serve_one_namespace() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let first = Node::start(config(dirs[0].path(), None))
        .await
        .expect("first node starts and creates the cluster");
    let member = first.cluster_addr().to_string();
    let token = first.cluster().join_token().expect("a join token");
    let mut nodes = vec![run(first)];
    for dir in &dirs[1..] {
        let join = Join {
            member: member.clone(),
            token: JoinToken::Given(token.clone()),
        };
        let node = Node::start(config(dir.path(), Some(join)))
            .await
            .expect("node joins the cluster");
        assert!(node.cluster().member_ids().len() >= 2);
        nodes.push(run(node));
    }

    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut uploader = Session::login_at(nodes[1].ftps, USER, PASSWORD)
        .await
        .expect("login on the second node");
    uploader
        .store("through-two.bin", &payload)
        .await
        .expect("upload through the second node");
    uploader.quit().await;

    let mut reader = Session::login_at(nodes[2].ftps, USER, PASSWORD)
        .await
        .expect("login on the third node");
    let read = reader
        .retrieve_bytes("through-two.bin")
        .await
        .expect("download through the third node");
    assert_eq!(read.len(), payload.len());
    assert!(read == payload, "the third node served other bytes");
    reader.quit().await;

    let mut lister = Session::login_at(nodes[0].ftps, USER, PASSWORD)
        .await
        .expect("login on the first node");
    let names = lister.names("/").await.expect("NLST on the first node");
    assert!(
        names.iter().any(|n| n.ends_with("through-two.bin")),
        "the first node lists {names:?}"
    );
    lister.quit().await;

    for node in nodes {
        let _ = node.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), node.task)
            .await
            .expect("the node stops within 30 s")
            .expect("the node's task ends cleanly");
    }
}
