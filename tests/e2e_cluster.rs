//! Several real `wharf` processes as one Raft cluster on 127.0.0.1: accounts written
//! through any node reach every node, a killed leader is replaced, a node that was down
//! catches up (from the log or from a snapshot), a minority refuses writes with a clear
//! error but keeps serving logins, and joining needs the right token.
//!
//! Each node still has its own file tree (the replicated file store comes later), so
//! transfers are checked per node.

use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::cluster::{poll_until, HeldSession};
use crate::support::*;

const MIB: u64 = 1024 * 1024;
/// How long a committed write may take to reach another node's state machine.
const REPLICATION_LIMIT: Duration = Duration::from_secs(5);

/// `wharf user add NAME --password-stdin` through `node`; panics unless it succeeded.
fn add_user(node: &Wharf, name: &str, password: &str) {
    let output = node.cli(
        &["user", "add", name, "--password-stdin"],
        Some(&format!("{password}\n")),
    );
    assert_success(&output, &format!("wharf user add {name}"));
}

/// The index `node` has applied: after a write through `node` returned, the write's.
fn applied_index(node: &Wharf) -> u64 {
    node.cluster_status().applied
}

/// A directory listing as `user` over explicit FTPS (curl), i.e. a complete login.
fn list_as(node: &Wharf, user: &str, password: &str) -> Output {
    run(node.curl_as(user, password).arg(node.explicit_url("")))
}

fn assert_login_accepted(node: &Wharf, user: &str, password: &str) {
    let output = list_as(node, user, password);
    assert_success(
        &output,
        &format!("login of {user} on node {}", node.node_id()),
    );
}

/// curl exits with 67 ("access denied") and shows the server's `530`.
fn assert_login_refused(node: &Wharf, user: &str, password: &str) {
    let output = list_as(node, user, password);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("530"),
        "login of {user} on node {} should be refused with 530\n{}",
        node.node_id(),
        describe(&output)
    );
}

/// Uploads a fresh file to `node` as `user`, checks the copy on the node's disk, then
/// downloads it and compares the bytes.
fn round_trip(node: &Wharf, user: &str, password: &str, size: u64) {
    let name = format!("node{}-{}.bin", node.node_id(), rand::random::<u32>());
    let local = node.client_dir().join(&name);
    let back = node.client_dir().join(format!("{name}.back"));
    write_random_file(&local, size);
    let url = node.explicit_url(&name);
    let upload = run(node.curl_as(user, password).arg("-T").arg(&local).arg(&url));
    assert_success(&upload, &format!("upload to node {}", node.node_id()));
    assert_same_file(&local, &node.home(user).join(&name));
    let download = run(node.curl_as(user, password).arg("-o").arg(&back).arg(&url));
    assert_success(&download, &format!("download from node {}", node.node_id()));
    assert_same_file(&local, &back);
}

#[test]
fn user_added_through_node_1_logs_in_and_transfers_on_nodes_2_and_3() {
    let cluster = Cluster::start(3);
    add_user(cluster.node(1), "bob", "bob-Secret-77");
    let added = Instant::now();
    for n in [2, 3] {
        let node = cluster.node(n);
        poll_until(REPLICATION_LIMIT, &format!("bob on node {n}"), || {
            node.user_names().iter().any(|u| u == "bob").then_some(())
        });
    }
    eprintln!("bob reached nodes 2 and 3 in {:?}", added.elapsed());
    for n in [2, 3] {
        round_trip(cluster.node(n), "bob", "bob-Secret-77", MIB + 13);
    }
}

#[test]
fn leader_killed_a_new_one_is_elected_and_the_restarted_node_catches_up() {
    let mut cluster = Cluster::start(3);
    let old_leader = cluster
        .node(1)
        .cluster_status()
        .leader
        .expect("a formed cluster has a leader");
    let killed = cluster.position_of(old_leader);
    let survivors: Vec<usize> = (1..=3).filter(|&n| n != killed).collect();

    cluster.node_mut(killed).kill9();
    let killed_at = Instant::now();
    let new_leader = poll_until(Duration::from_secs(10), "a new leader", || {
        let status = cluster.node(survivors[0]).try_cluster_status()?;
        status.leader.filter(|&id| id != old_leader)
    });
    let election = killed_at.elapsed();
    assert!(
        election <= Duration::from_secs(6),
        "a new leader took {election:?} (election timeout is 0.7–1.0 s, leader lease 1.0 s)"
    );

    // Write through the survivor that is not the leader, so the write is forwarded.
    let via = *survivors
        .iter()
        .find(|&&n| cluster.node(n).node_id() != new_leader)
        .expect("two survivors, one leader");
    add_user(cluster.node(via), "carol", "carol-Secret-77");
    let index = applied_index(cluster.node(via));
    for &n in &survivors {
        cluster.node(n).wait_until_applied(index, REPLICATION_LIMIT);
        assert_login_accepted(cluster.node(n), "carol", "carol-Secret-77");
    }

    cluster.node_mut(killed).restart();
    let restarted = cluster.node(killed);
    restarted.wait_until_applied(index, Duration::from_secs(10));
    assert_login_accepted(restarted, "carol", "carol-Secret-77");
    let status = restarted.cluster_status();
    assert_eq!(status.leader, Some(new_leader), "{status:?}");
    assert!(status.has_voters(3), "{status:?}");
}

#[test]
fn node_down_while_the_log_was_compacted_catches_up_through_a_snapshot() {
    let options = WharfOptions::default().args(["--raft-snapshot-logs", "10"]);
    let mut cluster = Cluster::start_with(3, options);
    cluster.node_mut(3).kill9();

    let users: Vec<String> = (0..30).map(|i| format!("batch{i:02}")).collect();
    for user in &users {
        add_user(cluster.node(1), user, &format!("{user}-Secret"));
    }
    let index = applied_index(cluster.node(1));

    cluster.node_mut(3).restart();
    let node3 = cluster.node(3);
    node3.wait_until_applied(index, Duration::from_secs(15));
    let names = node3.user_names();
    for user in &users {
        assert!(names.contains(user), "{user} missing on node 3: {names:?}");
    }
    for user in [&users[0], &users[15], &users[29]] {
        assert_login_accepted(node3, user, &format!("{user}-Secret"));
    }
    assert!(
        node3.stderr().contains("installed a snapshot"),
        "node 3 caught up without installing a snapshot\n{}",
        node3.logs()
    );
}

/// Pieces a snapshot travels in for the streamed-snapshot test (`--raft-snapshot-piece-kib`).
const SNAPSHOT_PIECE_KIB: u64 = 4;

#[test]
fn a_follower_far_behind_installs_a_streamed_snapshot_even_when_killed_during_it() {
    let options = WharfOptions::default().cluster_storage().args([
        "--raft-snapshot-logs",
        "200",
        "--raft-snapshot-piece-kib",
        &SNAPSHOT_PIECE_KIB.to_string(),
    ]);
    let mut cluster = Cluster::start_with(3, options);
    cluster.node_mut(3).kill9();

    // A namespace whose snapshot takes many pieces, written while node 3 is down.
    const DIRS: usize = 2000;
    let steps: Vec<String> = (0..DIRS).map(|i| format!("mkdir /d{i:05}")).collect();
    assert_success(
        &run(&mut cluster.node(1).batch("reuse", &steps)),
        "2,000 MKD through node 1",
    );
    let index = applied_index(cluster.node(1));

    // Killed once it has started to receive the snapshot (during the transfer or the
    // install, whichever the moment falls on), then started again.
    let log_before = cluster.node(3).stderr().len();
    cluster.node_mut(3).restart();
    poll_until(
        Duration::from_secs(30),
        "node 3 receiving a snapshot",
        || {
            cluster.node(3).stderr()[log_before..]
                .contains("receiving a snapshot from the leader")
                .then_some(())
        },
    );
    cluster.node_mut(3).kill9();
    let log_killed = cluster.node(3).stderr().len();
    let phase = if cluster.node(3).stderr()[log_before..].contains("loading a snapshot") {
        "while loading the tables"
    } else {
        "during the transfer"
    };
    eprintln!("node 3 was killed {phase}");
    cluster.node_mut(3).restart();
    let node3 = cluster.node(3);
    node3.wait_until_applied(index, Duration::from_secs(60));

    // Installed before the kill (it fell after the last batch), or after the restart:
    // received again, or finished from the checked file the node kept.
    let log = node3.stderr()[log_before..].to_owned();
    let installed = log
        .lines()
        .find(|l| l.contains("installed a snapshot from the leader"))
        .unwrap_or_else(|| panic!("node 3 caught up without a snapshot\n{}", node3.logs()));
    let after = &node3.stderr()[log_killed..];
    if phase == "while loading the tables"
        && !log[..log_killed - log_before].contains("installed a snapshot")
    {
        assert!(
            after.contains("a snapshot install was interrupted; finishing it"),
            "killed while loading, yet not finished from the kept file:\n{after}"
        );
    }
    let bytes: u64 = installed
        .split_whitespace()
        .find_map(|word| word.strip_prefix("bytes=")?.parse().ok())
        .unwrap_or_else(|| panic!("no size in {installed:?}"));
    assert!(
        bytes > 10 * SNAPSHOT_PIECE_KIB * 1024,
        "a snapshot of {bytes} bytes does not need several {SNAPSHOT_PIECE_KIB} KiB pieces"
    );

    // Listed a page at a time (1,000 entries a page): every name once, in order.
    let steps = ["nlst /".to_owned(), "mlsd /".to_owned()];
    let listing = run(&mut node3.batch("reuse", &steps));
    assert_success(&listing, "NLST and MLSD / on node 3");
    let expected: Vec<String> = (0..DIRS).map(|i| format!("d{i:05}")).collect();
    let first = |tag: &str| -> Vec<String> {
        tagged(&listing, tag)
            .into_iter()
            .filter_map(|n| Some(n.first()?.trim_start_matches('/').to_owned()))
            .collect()
    };
    assert_eq!(first("NLST"), expected, "NLST / on node 3");
    assert_eq!(first("MLSD"), expected, "MLSD / on node 3");

    // One snapshot file, nothing half-written left behind.
    let snapshots = node3.data_dir.join("cluster/raft/snapshots");
    let files: Vec<String> = std::fs::read_dir(&snapshots)
        .unwrap_or_else(|e| panic!("{}: {e}", snapshots.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["current.snap"], "in {}", snapshots.display());
}

/// Kills the two nodes at `victims`, then checks the survivor: a write fails in bounded
/// time with the quorum message and changes nothing; existing accounts still log in.
fn minority_refuses_writes_and_serves_logins(victims: [usize; 2]) {
    let mut cluster = Cluster::start(3);
    add_user(cluster.node(1), "dora", "dora-Secret-77");
    let index = applied_index(cluster.node(1));
    let survivor = (1..=3)
        .find(|n| !victims.contains(n))
        .expect("one survivor");
    cluster
        .node(survivor)
        .wait_until_applied(index, REPLICATION_LIMIT);
    for n in victims {
        cluster.node_mut(n).kill9();
    }

    let node = cluster.node(survivor);
    let started = Instant::now();
    let output = node.cli(
        &["user", "add", "eve", "--password-stdin"],
        Some("eve-Secret-77\n"),
    );
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("no leader with a quorum"),
        "a write on a minority must fail with the quorum message\n{}",
        describe(&output)
    );
    assert!(
        took <= Duration::from_secs(15),
        "the failing write took {took:?}"
    );
    assert!(
        !node.user_names().iter().any(|u| u == "eve"),
        "a write refused for lack of quorum must not be applied"
    );

    assert_login_accepted(node, USER, PASSWORD);
    assert_login_accepted(node, "dora", "dora-Secret-77");
}

#[test]
fn minority_leader_refuses_writes_clearly_and_still_serves_logins() {
    // Node 1 initialised the cluster and leads it; its two followers die.
    minority_refuses_writes_and_serves_logins([2, 3]);
}

#[test]
fn minority_follower_refuses_writes_clearly_and_still_serves_logins() {
    // The leader and one follower die; the other follower is left alone.
    minority_refuses_writes_and_serves_logins([1, 2]);
}

/// `wharf serve --join` to `first` with `token`, in a fresh data dir; returns its output.
fn try_join(first: &Wharf, token: &str) -> Output {
    let dir = tempfile::Builder::new()
        .prefix("wharf-e2e-joiner-")
        .tempdir()
        .expect("joiner directory");
    let data_dir = dir.path().join("data").display().to_string();
    let cluster_addr = format!("127.0.0.1:{}", free_port());
    wharf_cli(
        &[
            "serve",
            "--data-dir",
            &data_dir,
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--implicit-listen",
            &format!("127.0.0.1:{}", free_port()),
            "--pasv-ports",
            "45100-45110",
            "--cluster-listen",
            &cluster_addr,
            "--join",
            &first.cluster_addr(),
            "--join-token",
            token,
        ],
        None,
    )
}

#[test]
fn joining_with_a_wrong_token_exits_with_an_error() {
    let first = Wharf::start_default();
    let token = first.join_token();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "wharf1.SECRET.CA-FINGERPRINT: {token}");
    let flip = |s: &str| {
        let mut s = s.to_owned();
        let last = s.pop().expect("non-empty");
        s.push(if last == '0' { '1' } else { '0' });
        s
    };

    let wrong_secret = format!("{}.{}.{}", parts[0], flip(parts[1]), parts[2]);
    let output = try_join(&first, &wrong_secret);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("wrong join token"),
        "a joiner with a wrong token must exit with an error\n{}",
        describe(&output)
    );
    assert!(
        first.stderr().contains("wrong join token"),
        "the member logs the refused request"
    );

    // The right secret but another CA: the joiner does not trust the member
    // and never sends the secret.
    let wrong_ca = format!("{}.{}.{}", parts[0], parts[1], flip(parts[2]));
    let output = try_join(&first, &wrong_ca);
    assert!(
        !output.status.success()
            && String::from_utf8_lossy(&output.stderr).contains("does not present the cluster CA"),
        "a joiner whose token names another CA must stop before joining\n{}",
        describe(&output)
    );

    let output = try_join(&first, "not-a-token");
    assert!(
        !output.status.success()
            && String::from_utf8_lossy(&output.stderr).contains("not a Wharf token"),
        "{}",
        describe(&output)
    );
    let status = first.cluster_status();
    assert_eq!(status.members.len(), 1, "{status:?}");
}

#[test]
fn joining_node_waits_for_its_token_file_then_joins() {
    let first = Wharf::start_default();
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("join_token");
    // The file appears after the joiner has started, as a secret mounted
    // later would.
    let writer = {
        let (path, token) = (token_file.clone(), first.join_token());
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(3));
            std::fs::write(path, format!("{token}\n")).unwrap();
        })
    };
    let second = Wharf::start(WharfOptions::default().no_users().args([
        "--join".to_owned(),
        first.cluster_addr(),
        "--join-token-file".to_owned(),
        token_file.display().to_string(),
    ]));
    writer.join().unwrap();
    assert!(
        second.stderr().contains("waiting for the join token file"),
        "{}",
        second.stderr()
    );
    assert_login_accepted(&second, USER, PASSWORD);
    assert_eq!(first.cluster_status().members.len(), 2);
}

#[test]
fn password_change_and_removal_through_node_2_take_effect_on_node_3() {
    let cluster = Cluster::start(3);
    let (node2, node3) = (cluster.node(2), cluster.node(3));
    add_user(cluster.node(1), "frank", "old-Secret-77");
    node3.wait_until_applied(applied_index(cluster.node(1)), REPLICATION_LIMIT);
    assert_login_accepted(node3, "frank", "old-Secret-77");

    let output = node2.cli(
        &["user", "passwd", "frank", "--password-stdin"],
        Some("new-Secret-88\n"),
    );
    assert_success(&output, "wharf user passwd through node 2");
    node3.wait_until_applied(applied_index(node2), REPLICATION_LIMIT);
    assert_login_refused(node3, "frank", "old-Secret-77");
    assert_login_accepted(node3, "frank", "new-Secret-88");

    let output = node2.cli(&["user", "remove", "frank"], None);
    assert_success(&output, "wharf user remove through node 2");
    node3.wait_until_applied(applied_index(node2), REPLICATION_LIMIT);
    assert!(!node3.user_names().iter().any(|u| u == "frank"));
    assert_login_refused(node3, "frank", "new-Secret-88");
}

#[test]
fn cluster_status_on_every_node_shows_three_voters_and_the_same_leader() {
    let cluster = Cluster::start(3);
    let statuses: Vec<ClusterStatus> = cluster.nodes.iter().map(Wharf::cluster_status).collect();
    let mut addresses: Vec<String> = cluster.nodes.iter().map(Wharf::cluster_addr).collect();
    addresses.sort();

    for (node, status) in cluster.nodes.iter().zip(&statuses) {
        assert_eq!(status.node, node.node_id(), "{status:?}");
        assert!(status.has_voters(3), "{status:?}");
        let mut ids: Vec<u64> = status.members.iter().map(|m| m.id).collect();
        ids.sort();
        assert_eq!(ids, [1, 2, 3], "{status:?}");
        let mut listed: Vec<String> = status.members.iter().map(|m| m.address.clone()).collect();
        listed.sort();
        assert_eq!(listed, addresses, "{status:?}");
    }
    let leader = statuses[0].leader.expect("node 1 knows a leader");
    assert!(
        statuses
            .iter()
            .all(|s| s.leader == Some(leader) && s.term == statuses[0].term),
        "nodes disagree on the leader or term: {statuses:?}"
    );
    let leaders: Vec<u64> = statuses
        .iter()
        .filter(|s| s.role == "leader")
        .map(|s| s.node)
        .collect();
    assert_eq!(leaders, [leader], "{statuses:?}");
}

#[test]
fn address_banned_after_failed_logins_on_one_node_is_refused_by_the_others() {
    let limits =
        "[limits]\nlogin_failure_delay_ms = 50\n[defender]\nthreshold = 3\nlogin_failure = 1\nban_seconds = 120\n";
    let cluster = Cluster::start_with(
        3,
        WharfOptions::default()
            .config(limits)
            .arg("--allow-plain-login"),
    );
    let mut c = cluster.node(1).control();
    for attempt in 1..=3 {
        assert_eq!(c.cmd(&format!("USER {}", cluster.node(1).user)).code, 331);
        let reply = c.cmd(&format!("PASS wrong-{attempt}"));
        let expected = if attempt < 3 { 530 } else { 421 };
        assert_eq!(reply.code, expected, "attempt {attempt}: {reply}");
    }
    // Every node refuses the address within a second of the ban.
    let banned_at = Instant::now();
    for n in [2, 3] {
        let port = cluster.node(n).explicit_port;
        let greeting = poll_until(Duration::from_secs(5), "the ban to reach the node", || {
            let (_, greeting) = Control::connect(port);
            (greeting.code == 421).then_some(greeting)
        });
        assert!(greeting.text().contains("banned"), "node {n}: {greeting}");
    }
    let reached = banned_at.elapsed();
    assert!(
        reached < Duration::from_secs(1),
        "the ban took {reached:?} to reach every node"
    );

    // The operator sees the ban on any node and lifts it everywhere, the node
    // that saw the failures included.
    let list = cluster.node(2).cli(&["ban", "list"], None);
    assert_success(&list, "wharf ban list");
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        listed.starts_with("127.0.0.1\t") && listed.contains("failed logins"),
        "{listed}"
    );
    assert_success(
        &cluster.node(3).cli(&["ban", "remove", "127.0.0.1"], None),
        "wharf ban remove",
    );
    for n in [1, 2, 3] {
        let port = cluster.node(n).explicit_port;
        poll_until(
            Duration::from_secs(5),
            "the lifted ban to reach the node",
            || {
                let (_, greeting) = Control::connect(port);
                (greeting.code == 220).then_some(())
            },
        );
    }
    let again = cluster.node(1).cli(&["ban", "remove", "127.0.0.1"], None);
    assert!(
        !again.status.success() && String::from_utf8_lossy(&again.stderr).contains("not found"),
        "{}",
        describe(&again)
    );
}

/// The greeting a fresh control connection to `node` gets.
fn greeting(node: &Wharf) -> crate::support::control::Reply {
    crate::support::control::Control::connect(node.explicit_port).1
}

#[test]
fn drained_node_turns_new_connections_away_and_lets_open_sessions_finish() {
    let mut cluster = Cluster::start(3);
    let drained = cluster.node(2).node_id();
    let held = HeldSession::start(cluster.node(2), cluster.node(2));

    let out = cluster
        .node(1)
        .cli(&["cluster", "drain", &drained.to_string()], None);
    assert_success(&out, "wharf cluster drain");
    let refused = poll_until(REPLICATION_LIMIT, "node 2 refusing connections", || {
        let reply = greeting(cluster.node(2));
        (reply.code == 421).then_some(reply)
    });
    assert!(refused.text().contains("draining"), "{refused}");
    assert_eq!(greeting(cluster.node(3)).code, 220, "node 3 is not drained");
    // Probe connections that were greeted before the drain close by themselves.
    let status = poll_until(REPLICATION_LIMIT, "node 2: draining, 1 session", || {
        let status = cluster.node(1).cluster_status();
        let member = status.member(drained)?;
        (member.draining && member.sessions == Some(1)).then_some(status)
    });
    assert!(!status.member(cluster.node(3).node_id()).unwrap().draining);

    // The session open before the drain transfers again, then quits; the node is empty.
    held.release(Duration::from_secs(60));
    poll_until(REPLICATION_LIMIT, "node 2 reported empty", || {
        let status = cluster.node(3).cluster_status();
        (status.member(drained)?.sessions == Some(0)).then_some(())
    });
    poll_until(REPLICATION_LIMIT, "the 'drained' log line", || {
        cluster
            .node(2)
            .logs()
            .contains("drained: no FTPS sessions left")
            .then_some(())
    });

    // The drain is replicated state: it holds across a restart until lifted.
    cluster.node_mut(2).kill9();
    cluster.node_mut(2).restart();
    assert_eq!(greeting(cluster.node(2)).code, 421, "drained after restart");
    let out = cluster
        .node(3)
        .cli(&["cluster", "undrain", &drained.to_string()], None);
    assert_success(&out, "wharf cluster undrain");
    poll_until(REPLICATION_LIMIT, "node 2 greeting again", || {
        (greeting(cluster.node(2)).code == 220).then_some(())
    });
    assert_login_accepted(
        cluster.node(2),
        &cluster.node(1).user,
        &cluster.node(1).password,
    );

    let out = cluster.node(1).cli(&["cluster", "drain", "99"], None);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not a member"),
        "draining an unknown node must fail clearly\n{}",
        describe(&out)
    );
}

/// A TCP relay that notes the source address of every connection it takes and
/// forwards it to `target` once that is known.
struct SourceRecorder {
    address: std::net::SocketAddr,
    sources: std::sync::Arc<std::sync::Mutex<Vec<std::net::IpAddr>>>,
    target: std::sync::Arc<std::sync::OnceLock<String>>,
}

impl SourceRecorder {
    fn start() -> SourceRecorder {
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let recorder = SourceRecorder {
            address: listener.local_addr().unwrap(),
            sources: Default::default(),
            target: Default::default(),
        };
        let (sources, target) = (recorder.sources.clone(), recorder.target.clone());
        std::thread::spawn(move || {
            for inbound in listener.incoming().flatten() {
                if let Ok(peer) = inbound.peer_addr() {
                    sources.lock().unwrap().push(peer.ip());
                }
                let Some(Ok(outbound)) = target.get().map(TcpStream::connect) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (inbound.try_clone().unwrap(), outbound.try_clone().unwrap()),
                    (outbound, inbound),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        recorder
    }
}

#[test]
fn a_node_connects_to_its_peers_from_its_cluster_source_address() {
    // Node 1 advertises the recorder, so every connection a peer makes to it
    // passes there; node 2 makes its connections from 127.0.0.2.
    let recorder = SourceRecorder::start();
    let first = Wharf::start(
        WharfOptions::default().args(["--cluster-advertise".into(), recorder.address.to_string()]),
    );
    recorder.target.set(first.cluster_addr()).unwrap();
    let mut second = Wharf::start(
        WharfOptions::default()
            .no_users()
            .join(&first.cluster_addr(), &first.join_token())
            .args(["--cluster-source", "127.0.0.2"]),
    );
    second.user = first.user.clone();
    second.password = first.password.clone();
    let cluster = Cluster {
        nodes: vec![first, second],
    };
    cluster.wait_for_voters(2, Duration::from_secs(30));

    // A write through node 2 goes to the leader, node 1, through the recorder.
    add_user(cluster.node(2), "sourced", "Source-Pass-91");
    cluster
        .node(1)
        .wait_until_applied(applied_index(cluster.node(2)), REPLICATION_LIMIT);
    assert_login_accepted(cluster.node(1), "sourced", "Source-Pass-91");
    let sources = recorder.sources.lock().unwrap().clone();
    let expected: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    assert!(
        sources.contains(&expected),
        "node 2's connections to node 1 came from {sources:?}, not from its --cluster-source {expected}"
    );
}
