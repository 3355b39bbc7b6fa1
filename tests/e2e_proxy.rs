//! PROXY protocol behind a load balancer: headers from a trusted balancer
//! (`--proxy-from`) name the client in logs, bans and the passive data check;
//! the same header from anyone else is not believed; a malformed header
//! closes its own connection only. The last test puts a real HAProxy in front
//! (TCP mode, PROXY v2, the passive range forwarded, layout (b) of DESIGN §7)
//! and drives lftp and curl through it.
//!
//! Loopback addresses stand for hosts: 127.0.0.3 is the balancer, 127.0.0.5
//! and 127.0.0.6 are clients, 127.0.0.2 is the address HAProxy listens on.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::cluster::poll_until;
use crate::support::control::Control;
use crate::support::*;

const BALANCER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const LIMITS: &str =
    "[limits]\nlogin_failure_delay_ms = 50\n[defender]\nthreshold = 2\nlogin_failure = 1\nban_seconds = 120\n";

fn balanced_options(extra: &[&str]) -> WharfOptions {
    WharfOptions::default()
        .args(["--proxy-from", "127.0.0.3/32", "--allow-plain-login"])
        .args(extra.iter().copied())
        .config(LIMITS)
}

fn behind_balancer(extra: &[&str]) -> Wharf {
    Wharf::start(balanced_options(extra))
}

/// A control connection the balancer opens for `client` with a v1 header.
fn via_balancer_v1(wharf: &Wharf, client: &str) -> Control {
    let mut c = Control::connect_from(BALANCER, wharf.explicit_port);
    let header = format!(
        "PROXY TCP4 {client} 127.0.0.1 40000 {}\r\n",
        wharf.explicit_port
    );
    c.send_raw(header.as_bytes())
        .expect("send the PROXY header");
    c
}

/// The same with a v2 header (binary, as HAProxy's `send-proxy-v2`).
fn via_balancer_v2(wharf: &Wharf, client: Ipv4Addr) -> Control {
    let mut c = Control::connect_from(BALANCER, wharf.explicit_port);
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0x00, 12]);
    header.extend_from_slice(&client.octets());
    header.extend_from_slice(&[127, 0, 0, 1]);
    header.extend_from_slice(&41000u16.to_be_bytes());
    header.extend_from_slice(&wharf.explicit_port.to_be_bytes());
    c.send_raw(&header).expect("send the PROXY header");
    c
}

fn login(c: &mut Control, password: &str) -> u16 {
    assert_eq!(c.cmd(&format!("USER {USER}")).code, 331, "{}", c.transcript);
    c.cmd(&format!("PASS {password}")).code
}

#[test]
fn a_trusted_balancer_s_header_names_the_client_in_logs_and_bans() {
    let wharf = behind_balancer(&[]);
    let mut v1 = via_balancer_v1(&wharf, "203.0.113.7");
    assert_eq!(v1.reply().expect("greeting").code, 220);
    assert_eq!(login(&mut v1, "wrong-1"), 530);
    assert_eq!(login(&mut v1, "wrong-2"), 421, "the second failure bans");

    // Banned: the client, not the balancer every connection comes from.
    let mut again = via_balancer_v1(&wharf, "203.0.113.7");
    let greeting = again.reply().expect("greeting");
    assert_eq!(
        greeting.code, 421,
        "the banned client is refused: {greeting}"
    );
    let mut other = via_balancer_v2(&wharf, Ipv4Addr::new(198, 51, 100, 9));
    assert_eq!(other.reply().expect("greeting").code, 220);
    assert_eq!(login(&mut other, PASSWORD), 230, "another client logs in");

    let logs = wharf.logs();
    assert!(logs.contains("peer=203.0.113.7:40000"), "{logs}");
    assert!(logs.contains("peer=198.51.100.9:41000"), "{logs}");
    assert!(
        !logs.contains("peer=127.0.0.3"),
        "no session is attributed to the balancer: {logs}"
    );
    // A header from anyone else is not believed: the line is an unknown
    // command, and the banned address it claims does not stop this client.
    let (mut direct, greeting) = Control::connect(wharf.explicit_port);
    assert_eq!(greeting.code, 220, "{greeting}");
    let reply = direct.cmd("PROXY TCP4 203.0.113.7 127.0.0.1 40000 21");
    assert!(
        (500..600).contains(&reply.code),
        "a PROXY line from an untrusted address is refused: {reply}"
    );
    assert_eq!(login(&mut direct, PASSWORD), 230);
}

#[test]
fn a_balancer_connection_without_a_valid_header_closes_alone() {
    let wharf = behind_balancer(&[]);
    let mut held = via_balancer_v2(&wharf, Ipv4Addr::new(198, 51, 100, 20));
    assert_eq!(held.reply().expect("greeting").code, 220);
    assert_eq!(login(&mut held, PASSWORD), 230);

    let attempts: [&[u8]; 4] = [
        b"USER alice\r\n",                                       // no header at all
        b"PROXY TCP4 203.0.113.7 127.0.0.1 99999 21\r\n",        // bad port
        b"PROXY TCP6 203.0.113.7 127.0.0.1 1 21\r\n",            // family mismatch
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x04\x01\x02\x03\x04", // v2, IPv4 block short
    ];
    for bytes in attempts {
        let mut c = Control::connect_from(BALANCER, wharf.explicit_port);
        c.send_raw(bytes).expect("send");
        let (got, closed) = c.read_until_closed(Duration::from_secs(10));
        assert!(closed, "closed after {bytes:?}");
        assert!(got.is_empty(), "no reply to {bytes:?}: {got:?}");
    }
    // A balancer that opens a connection and says nothing is cut off too.
    let mut silent = Control::connect_from(BALANCER, wharf.explicit_port);
    let (got, closed) = silent.read_until_closed(Duration::from_secs(30));
    assert!(
        closed && got.is_empty(),
        "silent balancer connection: {got:?}"
    );

    assert_eq!(held.cmd("NOOP").code, 200, "the held session is unaffected");
    let logs = wharf.logs();
    assert!(logs.contains("malformed PROXY v1 header"), "{logs}");
    assert!(logs.contains("no PROXY header in time"), "{logs}");
    let mut wharf = wharf;
    wharf.assert_alive();
}

/// A running HAProxy (TCP mode) on 127.0.0.2, its control port `control_port`.
struct Haproxy {
    child: Child,
    control_port: u16,
    log: std::path::PathBuf,
}

impl Haproxy {
    /// HAProxy in front of one node: the control port and every port of the
    /// passive range forwarded with PROXY v2 from the balancer's address.
    fn start(wharf: &Wharf) -> Haproxy {
        let control_port = free_port();
        let (lo, hi) = wharf.pasv_ports;
        let config = format!(
            "global\n  maxconn 200\n\
             defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
             frontend ftp_control\n  bind 127.0.0.2:{control_port}\n  default_backend wharf_control\n\
             backend wharf_control\n  server node1 127.0.0.1:{} send-proxy-v2 source 127.0.0.3\n\
             frontend ftp_passive\n  bind 127.0.0.2:{lo}-{hi}\n  default_backend wharf_passive\n\
             backend wharf_passive\n  server node1 127.0.0.1 send-proxy-v2 source 127.0.0.3\n",
            wharf.explicit_port
        );
        let path = wharf.root().join("haproxy.cfg");
        std::fs::write(&path, config).expect("write haproxy.cfg");
        Haproxy::launch(&path, &[], control_port, wharf.root())
    }

    /// Runs HAProxy on `config` with `env`, logging into `dir`; returns once
    /// `control_port` on 127.0.0.2 accepts.
    fn launch(
        config: &std::path::Path,
        env: &[(String, String)],
        control_port: u16,
        dir: &std::path::Path,
    ) -> Haproxy {
        // Debian installs it in /usr/sbin, which a non-root PATH may lack.
        let binary = ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or_else(|| {
                require_tool("haproxy");
                "haproxy"
            });
        let log = dir.join("haproxy.log");
        let child = Command::new(binary)
            .arg("-db")
            .arg("-f")
            .arg(config)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::from(std::fs::File::create(&log).expect("log")))
            .stderr(Stdio::from(
                std::fs::File::options()
                    .append(true)
                    .open(&log)
                    .expect("log"),
            ))
            .spawn()
            .expect("start haproxy");
        let proxy = Haproxy {
            child,
            control_port,
            log,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.2", control_port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "haproxy did not listen: {}",
                std::fs::read_to_string(&proxy.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        proxy
    }

    fn url(&self, path: &str) -> String {
        format!("ftp://127.0.0.2:{}/{path}", self.control_port)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn lftp_and_curl_transfer_through_haproxy_and_the_node_sees_the_client() {
    let wharf = behind_balancer(&["--pasv-address", "127.0.0.2"]);
    let haproxy = Haproxy::start(&wharf);
    let local = wharf.client_dir().join("through.bin");
    write_random_file(&local, 3 * 1024 * 1024 + 7);

    let out = run(wharf
        .curl()
        .args(["--interface", "127.0.0.5", "-T"])
        .arg(&local)
        .arg(haproxy.url("curl.bin")));
    assert_success(&out, "curl upload through HAProxy");
    let back = wharf.client_dir().join("curl-back.bin");
    let out = run(wharf
        .curl()
        .args(["--interface", "127.0.0.5", "-o"])
        .arg(&back)
        .arg(haproxy.url("curl.bin")));
    assert_success(&out, "curl download through HAProxy");
    assert_same_file(&local, &back);

    let lftp_back = wharf.client_dir().join("lftp-back.bin");
    let url = format!("ftp://127.0.0.2:{}", haproxy.control_port);
    let out = run(&mut wharf.lftp_with(
        &url,
        &["set net:socket-bind-ipv4 127.0.0.6"],
        &[
            &format!("put {} -o lftp.bin", local.display()),
            &format!("get lftp.bin -o {}", lftp_back.display()),
        ],
    ));
    assert_success(&out, "lftp put and get through HAProxy");
    assert_same_file(&local, &lftp_back);
    assert_same_file(&local, &wharf.stored().copy_of("lftp.bin"));

    let logs = wharf.logs();
    assert!(logs.contains("peer=127.0.0.5:"), "curl's address: {logs}");
    assert!(logs.contains("peer=127.0.0.6:"), "lftp's address: {logs}");
    assert!(
        !logs.contains("refused a passive data connection"),
        "data connections through HAProxy pass the peer check: {logs}"
    );
    assert!(!logs.contains("peer=127.0.0.3"), "{logs}");
}

/// The shipped `deploy/haproxy.cfg` in front of a three-node cluster (layout
/// (b)): sessions go to nodes whose /readyz answers 200, each node's passive
/// range is forwarded to it, PROXY v2 throughout. A file stored through the
/// balancer reads back through it; a killed node is taken out by the health
/// check and transfers go on; a client banned through one node is refused by
/// every node.
#[test]
fn the_shipped_haproxy_config_fronts_a_cluster_and_a_ban_reaches_every_node() {
    let options = balanced_options(&["--pasv-address", "127.0.0.2"]).cluster_storage();
    let mut cluster = Cluster::start_with(3, options);
    let control_port = free_port();
    let mut env = vec![
        ("WHARF_LB_ADDR".to_owned(), "127.0.0.2".to_owned()),
        ("WHARF_LB_SOURCE".to_owned(), BALANCER.to_string()),
        ("WHARF_LB_FTP_PORT".to_owned(), control_port.to_string()),
        ("WHARF_LB_FTPS_PORT".to_owned(), free_port().to_string()),
    ];
    for n in 1..=3 {
        let node = cluster.node(n);
        let (lo, hi) = node.pasv_ports;
        for (key, value) in [
            ("ADDR", "127.0.0.1".to_owned()),
            ("FTP_PORT", node.explicit_port.to_string()),
            ("FTPS_PORT", node.implicit_port.to_string()),
            ("HTTP_PORT", node.http_port.to_string()),
            ("PASV", format!("{lo}-{hi}")),
        ] {
            env.push((format!("WHARF_NODE{n}_{key}"), value));
        }
    }
    let config = tests_dir().join("../deploy/haproxy.cfg");
    let haproxy = Haproxy::launch(&config, &env, control_port, cluster.node(1).root());
    let dir = cluster.node(1).client_dir();
    let (user, password) = (
        cluster.node(1).user.clone(),
        cluster.node(1).password.clone(),
    );
    let local = dir.join("lb.bin");
    write_random_file(&local, 5 * 1024 * 1024 + 3);
    let curl = || {
        let mut cmd = curl_ftps(&user, &password);
        cmd.args(["--interface", "127.0.0.5"]);
        cmd
    };
    let round_trip = |name: &str| -> bool {
        let back = dir.join(format!("{name}.back"));
        let put = run(curl().arg("-T").arg(&local).arg(haproxy.url(name)));
        let get = run(curl().arg("-o").arg(&back).arg(haproxy.url(name)));
        let ok = put.status.success()
            && get.status.success()
            && sha256_file(&back) == sha256_file(&local);
        if !ok {
            eprintln!(
                "round trip {name} failed:\n{}\n{}",
                describe(&put),
                describe(&get)
            );
        }
        ok
    };
    poll_until(
        Duration::from_secs(20),
        "a round trip through HAProxy",
        || round_trip("first.bin").then_some(()),
    );

    let leader = cluster.node(1).cluster_status().leader.expect("a leader");
    let down = (1..=3)
        .find(|&n| cluster.node(n).node_id() != leader)
        .expect("a follower");
    cluster.node_mut(down).kill9();
    poll_until(
        Duration::from_secs(20),
        "a round trip once the dead node is out",
        || round_trip("second.bin").then_some(()),
    );
    for n in 0..3 {
        assert!(
            round_trip(&format!("more-{n}.bin")),
            "round trip {n} through HAProxy with a node down\n{}",
            std::fs::read_to_string(&haproxy.log).unwrap_or_default()
        );
    }

    // Two failed logins on one session through the balancer ban 127.0.0.6.
    let lb = std::net::SocketAddr::from(([127, 0, 0, 2], control_port));
    let mut guess = Control::connect_between(Ipv4Addr::new(127, 0, 0, 6), lb);
    assert_eq!(guess.reply().expect("greeting").code, 220);
    assert_eq!(login(&mut guess, "wrong-1"), 530);
    assert_eq!(login(&mut guess, "wrong-2"), 421, "{}", guess.transcript);
    for n in (1..=3).filter(|&n| n != down) {
        let node = cluster.node(n);
        poll_until(
            Duration::from_secs(5),
            &format!("node {n} refuses the banned client"),
            || {
                let mut c = via_balancer_v1(node, "127.0.0.6");
                (c.reply().ok()?.code == 421).then_some(())
            },
        );
    }
    let mut again = Control::connect_between(Ipv4Addr::new(127, 0, 0, 6), lb);
    assert_eq!(again.reply().expect("greeting").code, 421);
}
