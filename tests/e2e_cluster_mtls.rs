//! The cluster port of real `wharf` processes speaks mutual TLS only: plaintext
//! gRPC gets nowhere, Raft calls need a node certificate from the cluster CA,
//! admin calls need the admin token or a cluster client certificate, and
//! tokens name the CA so a client never sends a secret to an impostor.

use std::path::Path;
use std::process::Command;

use crate::support::*;
use wharf_cluster::pb;
use wharf_cluster::pb::cluster_client::ClusterClient;
use wharf_cluster::pb::raft_client::RaftClient;
use wharf_cluster::transport::client_endpoint;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn tls_dir(node: &Wharf) -> std::path::PathBuf {
    node.data_dir.join("cluster").join("tls")
}

/// A vote request that changes nothing: a term no node has reached yet is
/// avoided by asking for term 0, which every member rejects.
fn harmless_vote() -> pb::VoteRequest {
    pb::VoteRequest {
        vote: Some(pb::Vote {
            term: 0,
            node_id: 99,
            committed: false,
        }),
        last_log_id: None,
    }
}

/// Calls Raft.RequestVote and Cluster.Status at `addr` with the given client
/// identity (None: a TLS client without a certificate); returns the two gRPC codes.
fn call_both(
    addr: &str,
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> (tonic::Code, tonic::Code) {
    runtime().block_on(async {
        let channel = client_endpoint(addr, ca_pem, identity)
            .expect("endpoint")
            .connect()
            .await
            .expect("a TLS connection with the cluster CA");
        let vote = RaftClient::new(channel.clone())
            .request_vote(harmless_vote())
            .await
            .map_or_else(|s| s.code(), |_| tonic::Code::Ok);
        let status = ClusterClient::new(channel)
            .status(pb::Empty {})
            .await
            .map_or_else(|s| s.code(), |_| tonic::Code::Ok);
        (vote, status)
    })
}

#[test]
fn plaintext_grpc_is_refused_on_the_cluster_port() {
    let mut node = Wharf::start_default();
    let addr = node.cluster_addr();
    let result = runtime().block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect_timeout(std::time::Duration::from_secs(3))
            .connect()
            .await?;
        ClusterClient::new(channel)
            .status(pb::Empty {})
            .await
            .map(|_| ())
            .map_err(|s| Box::new(s) as Box<dyn std::error::Error>)?;
        Ok::<(), Box<dyn std::error::Error>>(())
    });
    assert!(result.is_err(), "a plaintext gRPC call must fail");
    // What it does serve: a certificate from the cluster CA, asking for a client one.
    let out = run(Command::new("sh").arg("-c").arg(format!(
        "openssl s_client -connect {addr} -servername wharf-node -alpn h2 </dev/null 2>&1"
    )));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Wharf cluster CA") && text.contains("Acceptable client certificate CA names"),
        "the cluster port presents a cluster-CA certificate and asks for a client certificate\n{text}"
    );
    node.assert_alive();
}

#[test]
fn raft_needs_a_node_certificate_and_admin_calls_need_a_credential() {
    let node = Wharf::start_default();
    let addr = node.cluster_addr();
    let dir = tls_dir(&node);
    let ca = read(&dir.join("ca.pem"));

    let (vote, status) = call_both(&addr, &ca, None);
    assert_eq!(
        vote,
        tonic::Code::Unauthenticated,
        "Raft without a certificate"
    );
    assert_eq!(
        status,
        tonic::Code::Unauthenticated,
        "admin call without credentials"
    );

    let admin_dir = node.root().join("admin-cert");
    let out = node.cli(
        &[
            "cluster",
            "admin-cert",
            "--out",
            &admin_dir.display().to_string(),
        ],
        None,
    );
    assert_success(&out, "wharf cluster admin-cert");
    let (cert, key) = (
        read(&admin_dir.join("admin.pem")),
        read(&admin_dir.join("admin.key")),
    );
    assert_eq!(
        read(&admin_dir.join("ca.pem")).trim(),
        ca.trim(),
        "the CA handed out is the cluster's"
    );
    let (vote, status) = call_both(&addr, &ca, Some((&cert, &key)));
    assert_eq!(
        vote,
        tonic::Code::PermissionDenied,
        "Raft with an admin certificate"
    );
    assert_eq!(
        status,
        tonic::Code::Ok,
        "admin call with an admin certificate"
    );

    let (node_cert, node_key) = (read(&dir.join("node.pem")), read(&dir.join("node.key")));
    let (vote, status) = call_both(&addr, &ca, Some((&node_cert, &node_key)));
    assert_eq!(
        vote,
        tonic::Code::Ok,
        "Raft with a node certificate reaches Raft"
    );
    assert_eq!(status, tonic::Code::Ok);

    // A certificate from another CA is refused by the TLS layer itself.
    let other_node = Wharf::start_default();
    let foreign = tls_dir(&other_node);
    let refused = runtime().block_on(async {
        let channel = client_endpoint(
            &addr,
            &ca,
            Some((
                &read(&foreign.join("node.pem")),
                &read(&foreign.join("node.key")),
            )),
        )
        .expect("endpoint")
        .connect()
        .await;
        match channel {
            Err(_) => true,
            Ok(channel) => RaftClient::new(channel)
                .request_vote(harmless_vote())
                .await
                .is_err(),
        }
    });
    assert!(
        refused,
        "a node certificate from another cluster's CA must not reach Raft"
    );
}

#[test]
fn admin_commands_from_elsewhere_use_the_token_or_an_admin_certificate() {
    let node = Wharf::start_default();
    let addr = node.cluster_addr();
    let token = read(&node.data_dir.join("cluster").join("admin_token"));
    let token = token.trim();
    assert!(
        token.starts_with("wharf1."),
        "the admin token names the CA: {token}"
    );

    let with_token = wharf_cli(
        &["user", "list", "--cluster", &addr, "--token", token],
        None,
    );
    assert_success(&with_token, "wharf user list --cluster --token");
    assert!(String::from_utf8_lossy(&with_token.stdout).contains(&node.user));

    // The same secret with another CA's fingerprint: the node is not trusted.
    let (head, _) = token.rsplit_once('.').expect("three parts");
    let impostor = format!("{head}.{}", "ab".repeat(32));
    let out = wharf_cli(
        &["user", "list", "--cluster", &addr, "--token", &impostor],
        None,
    );
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("does not present the cluster CA"),
        "a token naming another CA is not sent\n{}",
        describe(&out)
    );

    let out = wharf_cli(&["user", "list", "--cluster", &addr], None);
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("--token or --admin-cert"),
        "{}",
        describe(&out)
    );

    let admin_dir = node.root().join("operator");
    let admin_dir = admin_dir.display().to_string();
    assert_success(
        &node.cli(
            &["cluster", "admin-cert", "--out", &admin_dir, "--days", "2"],
            None,
        ),
        "wharf cluster admin-cert",
    );
    let mode = std::fs::metadata(Path::new(&admin_dir).join("admin.key"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .expect("admin.key");
    assert_eq!(mode, 0o600, "the admin key is private");
    let out = wharf_cli(
        &[
            "user",
            "add",
            "carol",
            "--password-stdin",
            "--cluster",
            &addr,
            "--admin-cert",
            &admin_dir,
        ],
        Some("carol-pw\n"),
    );
    assert_success(&out, "wharf user add --admin-cert");
    assert!(node.user_names().contains(&"carol".to_owned()));
}

#[test]
fn node_credentials_are_private_and_the_bootstrap_ca_copy_is_gone() {
    let node = Wharf::start_default();
    let dir = tls_dir(&node);
    for name in ["node.key", "node.pem", "ca.pem"] {
        let mode = std::fs::metadata(dir.join(name))
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(mode, 0o600, "{name}");
    }
    assert!(
        !dir.join("pending-ca.pem").exists(),
        "the CA key lives in the replicated store once committed, not in a loose file"
    );
}
