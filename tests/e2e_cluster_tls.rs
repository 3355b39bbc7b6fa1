//! TLS across the cluster with real clients: a session ticket issued by one node
//! resumes on the others (TLS 1.2 and 1.3), a client that reconnects to another
//! node resumes and transfers, and a certificate rotation reaches every node
//! without disturbing sessions that are already open.

use std::process::Command;
use std::time::Duration;

use crate::support::cluster::{poll_until, HeldSession};
use crate::support::*;

/// `openssl s_client -starttls ftp` against `port`, saving or offering a session.
fn s_client(port: u16, version: &str, session: &std::path::Path, save: bool) -> String {
    let flag = if save { "-sess_out" } else { "-sess_in" };
    let script = format!(
        "(sleep 1; printf 'QUIT\\r\\n'; sleep 1) | openssl s_client -starttls ftp -connect 127.0.0.1:{port} -{version} {flag} {}",
        session.display()
    );
    let out = run(Command::new("sh").arg("-c").arg(script));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn presented_serial(port: u16) -> String {
    let out = run(Command::new("sh").arg("-c").arg(format!(
        "openssl s_client -starttls ftp -connect 127.0.0.1:{port} </dev/null 2>/dev/null | openssl x509 -noout -serial"
    )));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn session_ticket_from_one_node_resumes_on_the_others_with_tls_1_2_and_1_3() {
    let cluster = Cluster::start(3);
    for version in ["tls1_2", "tls1_3"] {
        let session = cluster.node(1).root().join(format!("{version}.session"));
        let first = s_client(cluster.node(1).explicit_port, version, &session, true);
        assert!(
            first.contains("New, TLSv1."),
            "{version} on node 1:\n{first}"
        );
        for n in [2, 3] {
            let again = s_client(cluster.node(n).explicit_port, version, &session, false);
            assert!(
                again.contains("Reused, TLSv1."),
                "{version}: node {n} did not resume node 1's session:\n{again}"
            );
        }
    }
}

#[test]
fn client_reconnecting_to_another_node_resumes_its_session_and_transfers() {
    let cluster = Cluster::start(3);
    for tls in ["1.2", "1.3"] {
        let out = run(python("cross_node.py").args([
            "--first",
            &cluster.node(1).explicit_port.to_string(),
            "--second",
            &cluster.node(3).explicit_port.to_string(),
            "--user",
            &cluster.node(1).user,
            "--password",
            &cluster.node(1).password,
            "--tls",
            tls,
        ]));
        assert_success(&out, "cross-node client");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("REUSED=True"), "TLS {tls}: {stdout}");
        assert!(stdout.contains("TRANSFER-OK"), "TLS {tls}: {stdout}");
    }
}

#[test]
fn certificate_rotation_reaches_every_node_and_open_sessions_keep_working() {
    let cluster = Cluster::start_with(3, WharfOptions::default().args(["--cert-lifetime", "3600"]));
    let before: Vec<String> = (1..=3)
        .map(|n| presented_serial(cluster.node(n).explicit_port))
        .collect();
    assert!(before[0].starts_with("serial="), "{before:?}");
    assert!(
        before.iter().all(|s| s == &before[0]),
        "nodes serve different certificates: {before:?}"
    );

    // A session ticket from before the rotation, and a session held open across it.
    let ticket = cluster.node(1).root().join("before-rotation.session");
    s_client(cluster.node(1).explicit_port, "tls1_3", &ticket, true);
    let held = HeldSession::start(cluster.node(2), cluster.node(2));

    let out = cluster.node(3).cli(&["cert", "rotate"], None);
    assert_success(&out, "wharf cert rotate");
    let after = poll_until(
        Duration::from_secs(15),
        "every node serving the new certificate",
        || {
            let serials: Vec<String> = (1..=3)
                .map(|n| presented_serial(cluster.node(n).explicit_port))
                .collect();
            serials
                .iter()
                .all(|s| s.starts_with("serial=") && s != &before[0] && s == &serials[0])
                .then_some(serials)
        },
    );
    assert_ne!(after[0], before[0]);

    held.release(Duration::from_secs(60));

    let resumed = s_client(cluster.node(3).explicit_port, "tls1_3", &ticket, false);
    assert!(
        resumed.contains("Reused, TLSv1.3"),
        "ticket from before the rotation:\n{resumed}"
    );
}
