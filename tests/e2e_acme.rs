//! ACME end to end against pebble (Let's Encrypt's test CA, Debian's `pebble`):
//! a three-node cluster obtains a certificate by HTTP-01, the CA's validator
//! is answered by a follower from the replicated store, the leader is killed
//! in the middle of the order and its successor finishes that same order;
//! every node then serves the certificate (verified against pebble's root),
//! an operator's rotation renews it, and a domain the validator cannot reach
//! fails with the reason recorded and nothing else disturbed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::support::cluster::poll_until;
use crate::support::*;

const DOMAIN: &str = "ftp.wharf.test";
const SECRETS_KEY: &str = "9a1c2e8e4b7d19c3a6e0f4b2d8c1a7e95b3f0d6c2e8a4b1f7d3c9e5a0b6f2d11";
/// How long the validator's connections are held for the leader change.
const HOLD_LIMIT: Duration = Duration::from_secs(12);

/// pebble and pebble-challtestsrv (its DNS: every name is 127.0.0.1, so the
/// validator reaches the `Relay` on pebble's `httpPort`).
struct Pebble {
    dir: tempfile::TempDir,
    children: Vec<Child>,
    directory: String,
    management: u16,
    dns_management: u16,
}

impl Pebble {
    fn start(http_port: u16) -> Pebble {
        require_tool("pebble");
        require_tool("pebble-challtestsrv");
        let dir = tempfile::tempdir().expect("temporary directory");
        write_directory_certificate(dir.path());
        let (acme, management, tls, dns, dns_management) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        let config = format!(
            r#"{{"pebble": {{"listenAddress": "127.0.0.1:{acme}",
                "managementListenAddress": "127.0.0.1:{management}",
                "certificate": "{d}/pebble.pem", "privateKey": "{d}/pebble.key",
                "httpPort": {http_port}, "tlsPort": {tls}, "ocspResponderURL": "",
                "externalAccountBindingRequired": false}}}}"#,
            d = dir.path().display()
        );
        std::fs::write(dir.path().join("pebble.json"), config).expect("pebble config");
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).expect("log file");
        let dns_server = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(log("challtestsrv.log"))
            .stderr(Stdio::from(log("challtestsrv.err")))
            .spawn()
            .expect("start pebble-challtestsrv");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(dir.path().join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            // Deterministic: no random validation delay, no rejected nonces,
            // and every order validated afresh.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(Stdio::from(log("pebble.err")))
            .spawn()
            .expect("start pebble");
        let started = Pebble {
            dir,
            children: vec![dns_server, pebble],
            directory: format!("https://localhost:{acme}/dir"),
            management,
            dns_management,
        };
        poll_until(Duration::from_secs(20), "pebble's directory", || {
            TcpStream::connect(("127.0.0.1", acme)).ok()
        });
        poll_until(Duration::from_secs(20), "challtestsrv's DNS", || {
            TcpStream::connect(("127.0.0.1", dns_management)).ok()
        });
        started
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// pebble's issuing root (made afresh at each start), for verification.
    fn root(&self) -> PathBuf {
        let path = self.dir.path().join("root.pem");
        let out = run(Command::new("curl")
            .args(["--silent", "--show-error", "--fail", "--cacert"])
            .arg(self.ca_file())
            .arg(format!("https://localhost:{}/roots/0", self.management))
            .arg("-o")
            .arg(&path));
        assert_success(&out, "fetch pebble's root");
        path
    }

    /// Points `host` at `address` in challtestsrv's DNS.
    fn set_address(&self, host: &str, address: &str) {
        let out = run(Command::new("curl")
            .args(["--silent", "--show-error", "--fail", "-X", "POST", "-d"])
            .arg(format!(r#"{{"host":"{host}","addresses":["{address}"]}}"#))
            .arg(format!("http://127.0.0.1:{}/add-a", self.dns_management)));
        assert_success(&out, "set an A record");
    }

    fn logs(&self) -> String {
        ["pebble.log", "pebble.err", "challtestsrv.err"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
                format!("--- {name}\n{text}")
            })
            .collect()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A CA (`ca.pem`, what `--directory-ca` trusts) and the leaf pebble's
/// HTTPS listeners serve (`pebble.pem`, `pebble.key`) for localhost.
fn write_directory_certificate(dir: &Path) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "e2e ACME directory CA");
    let ca = ca.self_signed(&ca_key).expect("CA certificate");
    let key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("leaf params")
        .signed_by(&key, &ca, &ca_key)
        .expect("leaf certificate");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write ca.pem");
    std::fs::write(dir.join("pebble.pem"), leaf.pem()).expect("write pebble.pem");
    std::fs::write(dir.join("pebble.key"), key.serialize_pem()).expect("write pebble.key");
}

/// Where the validator's connections go: held until the test names a node's
/// HTTP port, then relayed to it.
#[derive(Default)]
struct Route {
    target: Mutex<Option<u16>>,
    changed: Condvar,
}

/// The validator's way in (pebble's `httpPort`): tells the test of every
/// connection, holds it until `Route` has a target, then relays it there.
struct Relay {
    port: u16,
    route: Arc<Route>,
    connections: mpsc::Receiver<()>,
}

impl Relay {
    fn start() -> Relay {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind the relay");
        let port = listener.local_addr().expect("relay address").port();
        let route = Arc::new(Route::default());
        let (tell, connections) = mpsc::channel();
        let shared = route.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let _ = tell.send(());
                let route = shared.clone();
                std::thread::spawn(move || relay_one(client, &route));
            }
        });
        Relay {
            port,
            route,
            connections,
        }
    }

    fn send_to(&self, port: Option<u16>) {
        *self.route.target.lock().unwrap() = port;
        self.route.changed.notify_all();
    }
}

fn relay_one(client: TcpStream, route: &Route) {
    let target = route.target.lock().unwrap();
    let (target, _) = route
        .changed
        .wait_timeout_while(target, HOLD_LIMIT, |t| t.is_none())
        .unwrap();
    let Some(port) = *target else { return };
    let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let pump = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Write);
        })
    };
    let up = pump(client.try_clone().unwrap(), server.try_clone().unwrap());
    let down = pump(server, client);
    let _ = (up.join(), down.join());
}

/// `wharf cert list` on `node`: (source, generation) of `name`.
fn served(node: &Wharf, name: &str) -> Option<(String, u64)> {
    let out = node.cli(&["cert", "list"], None);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().find_map(|line| {
        let mut fields = line.split('\t');
        (fields.next()? == name).then_some(())?;
        let source = fields.next()?.strip_prefix("source=")?.to_owned();
        let generation = fields.next()?.strip_prefix("generation=")?.parse().ok()?;
        Some((source, generation))
    })
}

fn acme_list(node: &Wharf) -> String {
    let out = node.cli(&["cert", "acme", "list"], None);
    assert_success(&out, "wharf cert acme list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The certificate `node` presents, verified against `root` for DOMAIN:
/// its SHA-256 fingerprint, or the verification failure.
fn verified_fingerprint(node: &Wharf, root: &Path) -> Result<String, String> {
    let script = format!(
        "openssl s_client -starttls ftp -connect 127.0.0.1:{} -servername {DOMAIN} \
         -verify_hostname {DOMAIN} -CAfile {} -verify_return_error </dev/null 2>&1 \
         | tee /dev/stderr | openssl x509 -noout -fingerprint -sha256",
        node.explicit_port,
        root.display()
    );
    let out = run(Command::new("sh").arg("-c").arg(script));
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match text.split_once('=') {
        Some((_, fingerprint)) => Ok(fingerprint.to_owned()),
        None => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

#[test]
fn cluster_obtains_and_renews_an_acme_certificate_across_a_leader_change() {
    let relay = Relay::start();
    let pebble = Pebble::start(relay.port);
    // Sealed secrets: the account and certificate keys never reach a store
    // in clear, and a new leader opens what its predecessor sealed.
    let key_file = pebble.dir.path().join("secrets.key");
    std::fs::write(&key_file, SECRETS_KEY).expect("write the secrets key");
    let key_file = key_file.to_string_lossy().into_owned();
    let mut cluster = Cluster::start_with(
        3,
        WharfOptions::default().args(["--secrets-key-file", &key_file]),
    );
    let ca = pebble.ca_file().to_string_lossy().into_owned();

    // Names HTTP-01 cannot validate and a plain-HTTP directory are refused.
    for (args, why) in [
        (vec!["--domain", "*.wharf.test"], "wildcard"),
        (vec!["--domain", "127.0.0.1"], "addresses"),
        (
            vec!["--domain", DOMAIN, "--directory", "http://localhost/dir"],
            "https://",
        ),
    ] {
        let mut all = vec!["cert", "acme", "add"];
        all.extend(args);
        let out = cluster.node(1).cli(&all, None);
        assert!(!out.status.success(), "{all:?} accepted");
        assert!(describe(&out).contains(why), "{all:?}: {}", describe(&out));
    }

    let out = cluster.node(2).cli(
        &[
            "cert",
            "acme",
            "add",
            "--domain",
            DOMAIN,
            "--directory",
            &pebble.directory,
            "--directory-ca",
            &ca,
            "--contact",
            "mailto:ops@wharf.test",
        ],
        None,
    );
    assert_success(&out, "wharf cert acme add");

    // The validator's first connection: the leader has placed the order,
    // stored its challenge and asked pebble to validate. Kill that leader now.
    relay
        .connections
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            panic!(
                "pebble never came to validate\n{}",
                acme_list(cluster.node(1))
            )
        });
    let leader = cluster
        .node(1)
        .cluster_status()
        .leader
        .expect("a leader placed the order");
    let killed = cluster.position_of(leader);
    let order_before = acme_list(cluster.node(killed));
    assert!(
        order_before.contains("order=https://localhost"),
        "the order is in the store: {order_before}"
    );
    cluster.node_mut(killed).kill9();
    eprintln!("killed the leader, node {leader}, with the order in flight: {order_before}");
    let survivors: Vec<usize> = (1..=3).filter(|&n| n != killed).collect();
    // The validator's requests reach a follower, which answers from the store.
    relay.send_to(Some(cluster.node(survivors[0]).http_port));

    let (source, generation) = poll_until(Duration::from_secs(90), "an ACME certificate", || {
        served(cluster.node(survivors[1]), "default").filter(|(s, _)| s == "Acme")
    });
    assert_eq!(source, "Acme");
    let successor_logs: String = survivors.iter().map(|&n| cluster.node(n).logs()).collect();
    assert!(
        successor_logs.contains(&format!(
            "continuing the ACME order placed by node {leader}"
        )),
        "the new leader finished the killed leader's order"
    );
    assert!(
        successor_logs.contains("answered an ACME HTTP-01 challenge"),
        "a follower answered the validator"
    );
    let listed = acme_list(cluster.node(survivors[0]));
    assert!(
        listed.contains("order=none") && listed.contains("failures=0"),
        "{listed}"
    );
    // The audit logs: the killed leader placed the order, a survivor stored
    // the certificate.
    assert_eq!(
        cluster
            .node(killed)
            .audited(&[("event", "acme_order")])
            .len(),
        1,
        "{:?}",
        cluster.node(killed).audit_lines()
    );
    let issued: usize = survivors
        .iter()
        .map(|&n| {
            cluster
                .node(n)
                .audited(&[("event", "cert"), ("source", "Acme")])
                .len()
        })
        .sum();
    assert_eq!(issued, 1, "one certificate stored, by the new leader");

    // Every node serves it, the killed one once back; it chains to pebble's root.
    let root = pebble.root();
    cluster.node_mut(killed).restart();
    let fingerprint = verified_fingerprint(cluster.node(survivors[0]), &root)
        .unwrap_or_else(|e| panic!("not verified against pebble's root: {e}"));
    eprintln!("served, verified against pebble's root: {fingerprint}");
    for n in 1..=3 {
        poll_until(Duration::from_secs(20), "every node serves it", || {
            verified_fingerprint(cluster.node(n), &root)
                .ok()
                .filter(|f| *f == fingerprint)
        });
    }

    // An operator's rotation renews it through the same account.
    let out = cluster.node(killed).cli(&["cert", "rotate"], None);
    assert_success(&out, "wharf cert rotate");
    poll_until(Duration::from_secs(60), "a renewed certificate", || {
        served(cluster.node(1), "default").filter(|(_, g)| *g == generation + 1)
    });
    for n in 1..=3 {
        poll_until(
            Duration::from_secs(20),
            "every node serves the renewal",
            || {
                verified_fingerprint(cluster.node(n), &root)
                    .ok()
                    .filter(|f| *f != fingerprint)
            },
        );
    }

    // A domain the validator cannot reach: the failure is recorded with
    // pebble's reason and the served certificate stays.
    pebble.set_address("unreachable.wharf.test", "127.0.0.2");
    let out = cluster.node(1).cli(
        &[
            "cert",
            "acme",
            "add",
            "--name",
            "unreachable.wharf.test",
            "--domain",
            "unreachable.wharf.test",
            "--directory",
            &pebble.directory,
            "--directory-ca",
            &ca,
        ],
        None,
    );
    assert_success(&out, "wharf cert acme add (unreachable)");
    let line = poll_until(Duration::from_secs(60), "a recorded failure", || {
        acme_list(cluster.node(3))
            .lines()
            .find(|l| l.starts_with("unreachable.wharf.test") && l.contains("failures=1"))
            .map(str::to_owned)
    });
    eprintln!("recorded failure: {line}");
    assert!(
        line.contains("order=none"),
        "the failed order is dropped: {line}"
    );
    // Pebble reports the refused connection either while the order is
    // polled or, when its validation finished first, in its answer to
    // the challenge itself.
    assert!(
        (line.contains("the CA did not validate the domains")
            || line.contains("cannot start the validation of unreachable.wharf.test"))
            && line.contains("refused"),
        "the CA's reason is recorded: {line}"
    );
    assert_eq!(
        served(cluster.node(1), "default"),
        Some(("Acme".to_owned(), generation + 1))
    );
    assert_eq!(served(cluster.node(1), "unreachable.wharf.test"), None);
    let out = cluster.node(2).cli(
        &["cert", "acme", "remove", "--name", "unreachable.wharf.test"],
        None,
    );
    assert_success(&out, "wharf cert acme remove");
    let listed = poll_until(Duration::from_secs(10), "the removal on node 3", || {
        Some(acme_list(cluster.node(3))).filter(|l| !l.contains("unreachable.wharf.test"))
    });
    assert!(listed.starts_with("default\t"), "the other stays: {listed}");
    for n in 1..=3 {
        let node = cluster.node(n);
        assert!(
            node.store_contains(b"sealed:v1:"),
            "node {n}: nothing sealed"
        );
        for secret in [&b"PRIVATE KEY"[..], b"key_pkcs8"] {
            assert!(
                !node.store_contains(secret),
                "node {n}: {} in clear in the store",
                String::from_utf8_lossy(secret)
            );
        }
    }
}
