//! The HTTP endpoint (`--http-listen`): `/metrics` read by a Prometheus
//! text-format parser (below) whose values move with real sessions and
//! transfers, `/healthz`, and `/readyz` that turns false while the node drains.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::cluster::poll_until;
use crate::support::control::Control;
use crate::support::*;

/// `(status, body)` of `GET path` on the node's HTTP endpoint.
fn get(wharf: &Wharf, path: &str) -> (u16, String) {
    get_at(wharf.http_port, path)
}

/// `(status, body)` of `GET path` on 127.0.0.1:`port`.
fn get_at(port: u16, path: &str) -> (u16, String) {
    let out = run(std::process::Command::new("curl").args([
        "--silent",
        "--show-error",
        "--max-time",
        "10",
        "--write-out",
        "\n%{http_code}",
        &format!("http://127.0.0.1:{port}{path}"),
    ]));
    assert_success(&out, &format!("GET {path}"));
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let (body, status) = text.rsplit_once('\n').expect("a status line");
    (
        status.trim().parse().expect("a status code"),
        body.to_owned(),
    )
}

/// A sample's identity: metric name and its labels in order, `name{k="v",…}`.
type Samples = BTreeMap<String, f64>;

/// Parses the Prometheus text exposition format (version 0.0.4): `# HELP` and
/// `# TYPE` lines, then samples `name{label="value",…} number`. Panics on
/// anything else, on a sample whose family has no `# TYPE`, on a family typed
/// twice, and on labels that are not `name="escaped value"`.
fn parse_exposition(text: &str) -> Samples {
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Samples::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            let (keyword, name) = (words.next().unwrap(), words.next().expect("a name"));
            let value = words.next().unwrap_or_default();
            match keyword {
                "HELP" => assert!(!value.is_empty(), "empty HELP: {line}"),
                "TYPE" => {
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&value),
                        "bad TYPE: {line}"
                    );
                    assert!(
                        typed.insert(name.to_owned(), value.to_owned()).is_none(),
                        "typed twice: {name}"
                    );
                }
                _ => panic!("unknown comment line: {line}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        assert!(typed.contains_key(name), "sample before its # TYPE: {line}");
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("bad label block: {line}"));
            check_labels(inner, line);
        }
        if typed[name] == "counter" {
            assert!(value >= 0.0, "negative counter: {line}");
        }
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "duplicate series: {line}"
        );
    }
    samples
}

/// `k="v",k2="v2"` with `\\`, `\"` and `\n` escapes inside values.
fn check_labels(mut rest: &str, line: &str) {
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad label: {line}"));
        assert!(
            key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad label name: {line}"
        );
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => {
                    let escaped = chars.next().map(|(_, c)| c);
                    assert!(
                        matches!(escaped, Some('\\' | '"' | 'n')),
                        "bad escape: {line}"
                    );
                }
                Some((i, '"')) => break i,
                Some(_) => {}
                None => panic!("unterminated label value: {line}"),
            }
        };
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn metrics(wharf: &Wharf) -> Samples {
    let (status, body) = get(wharf, "/metrics");
    assert_eq!(status, 200, "{body}");
    parse_exposition(&body)
}

fn value(samples: &Samples, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in {samples:#?}"))
}

#[test]
fn metrics_move_with_sessions_logins_and_transfers() {
    let wharf = Wharf::start_default();
    let before = metrics(&wharf);
    assert_eq!(value(&before, "wharf_raft_is_leader"), 1.0);
    assert_eq!(value(&before, "wharf_raft_leader"), wharf.node_id() as f64);
    assert!(value(&before, "wharf_raft_term") >= 1.0);
    assert!(value(&before, "wharf_raft_applied_index") >= 1.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    let not_after = value(
        &before,
        "wharf_certificate_not_after_seconds{name=\"default\"}",
    );
    assert!(
        not_after > now,
        "the default certificate is valid: {not_after}"
    );

    let local = wharf.client_dir().join("m.bin");
    write_random_file(&local, 300_000);
    let out = run(wharf
        .curl()
        .arg("-T")
        .arg(&local)
        .arg(wharf.explicit_url("m.bin")));
    assert_success(&out, "upload");
    let back = wharf.client_dir().join("m.back");
    let out = run(wharf
        .curl()
        .arg("-o")
        .arg(&back)
        .arg(wharf.explicit_url("m.bin")));
    assert_success(&out, "download");
    let out = run(wharf
        .curl_as(&wharf.user, "not-the-password")
        .arg(wharf.explicit_url("")));
    assert!(!out.status.success(), "a wrong password fails");
    let (_held, greeting) = Control::connect(wharf.explicit_port);
    assert_eq!(greeting.code, 220);

    let after = metrics(&wharf);
    let grew = |series: &str| value(&after, series) - value(&before, series);
    assert!(
        value(&after, "wharf_sessions") >= 1.0,
        "the held connection counts"
    );
    assert_eq!(grew("wharf_logins_total{result=\"ok\"}"), 2.0);
    assert_eq!(grew("wharf_logins_total{result=\"failed\"}"), 1.0);
    assert_eq!(grew("wharf_transfers_total{result=\"complete\"}"), 2.0);
    assert_eq!(
        grew("wharf_transfer_bytes_total{direction=\"in\"}"),
        300_000.0
    );
    assert_eq!(
        grew("wharf_transfer_bytes_total{direction=\"out\"}"),
        300_000.0
    );
    let handshakes = |kind: &str| {
        ["1.2", "1.3"]
            .iter()
            .map(|v| {
                grew(&format!(
                    "wharf_tls_handshakes_total{{version=\"{v}\",kind=\"{kind}\"}}"
                ))
            })
            .sum::<f64>()
    };
    assert!(handshakes("full") >= 3.0, "three control connections");
    assert!(
        handshakes("resumed") >= 2.0,
        "two data connections resume them"
    );
}

#[test]
fn healthz_answers_and_readyz_is_false_while_draining() {
    let wharf = Wharf::start_default();
    assert_eq!(get(&wharf, "/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(get(&wharf, "/readyz"), (200, "ready\n".to_owned()));
    let id = wharf.node_id().to_string();
    assert_success(&wharf.cli(&["cluster", "drain", &id], None), "drain");
    let (status, body) = poll_until(Duration::from_secs(10), "/readyz turns 503", || {
        let answer = get(&wharf, "/readyz");
        (answer.0 == 503).then_some(answer)
    });
    assert_eq!((status, body.trim()), (503, "not ready: draining"));
    assert_eq!(value(&metrics(&wharf), "wharf_draining"), 1.0);
    assert_success(&wharf.cli(&["cluster", "undrain", &id], None), "undrain");
    poll_until(Duration::from_secs(10), "/readyz back to 200", || {
        (get(&wharf, "/readyz").0 == 200).then_some(())
    });
    assert_eq!(get(&wharf, "/nothing-here").0, 404);
}

#[test]
fn acme_listen_answers_challenges_and_nothing_else() {
    let port = free_port();
    let wharf =
        Wharf::start(WharfOptions::default().args(["--acme-listen", &format!("127.0.0.1:{port}")]));
    let challenge = "/.well-known/acme-challenge/no-such-token";
    let unknown = (404, "no such challenge\n".to_owned());
    assert_eq!(get_at(port, challenge), unknown);
    assert_eq!(get(&wharf, challenge), unknown, "--http-listen answers too");
    for private in ["/metrics", "/readyz", "/healthz"] {
        assert_eq!(get_at(port, private).0, 404, "{private} on --acme-listen");
    }
}

#[test]
fn readyz_is_false_on_a_member_without_a_leader() {
    let mut cluster = Cluster::start(3);
    let status = cluster.node(1).cluster_status();
    let leader = cluster.position_of(status.leader.expect("a leader"));
    let followers: Vec<usize> = (1..=3).filter(|&n| n != leader).collect();
    assert_eq!(get(cluster.node(followers[0]), "/readyz").0, 200);
    // The leader and one follower gone: the last one has no quorum, no leader.
    cluster.node_mut(leader).kill9();
    cluster.node_mut(followers[1]).kill9();
    let (status, body) = poll_until(Duration::from_secs(20), "/readyz turns 503", || {
        let answer = get(cluster.node(followers[0]), "/readyz");
        (answer.0 == 503).then_some(answer)
    });
    assert_eq!(status, 503);
    assert!(
        body.contains("no leader known") || body.contains("not caught up"),
        "{body}"
    );
    let (status, _) = get(cluster.node(followers[0]), "/healthz");
    assert_eq!(status, 200, "alive all the same");
}

/// On a three-node cluster the leader reports each follower's replication lag
/// and the chunk repair backlog; followers report neither, and every node
/// names the same leader.
#[test]
fn the_leader_reports_replication_lag_per_follower_and_the_repair_backlog() {
    let cluster = Cluster::start_with(3, WharfOptions::default().cluster_storage());
    let leader = cluster.node(1).cluster_status().leader.expect("a leader");
    let local = cluster.node(1).client_dir().join("r.bin");
    write_random_file(&local, 9 * 1024 * 1024);
    let out = run(cluster
        .node(1)
        .curl()
        .arg("-T")
        .arg(&local)
        .arg(cluster.node(1).explicit_url("r.bin")));
    assert_success(&out, "upload");
    for n in 1..=3 {
        let node = cluster.node(n);
        let samples = metrics(node);
        assert_eq!(value(&samples, "wharf_raft_leader"), leader as f64);
        let lags: Vec<&String> = samples
            .keys()
            .filter(|k| k.starts_with("wharf_raft_replication_lag{"))
            .collect();
        if node.node_id() == leader {
            assert_eq!(lags.len(), 2, "one lag per follower: {lags:?}");
            // Every follower catches up with the leader's log.
            poll_until(Duration::from_secs(10), "lags back to 0", || {
                let samples = metrics(node);
                let behind: f64 = samples
                    .iter()
                    .filter(|(k, _)| k.starts_with("wharf_raft_replication_lag{"))
                    .map(|(_, v)| v)
                    .sum();
                (behind == 0.0).then_some(())
            });
            // The repair job runs every 5 s; three chunks, three copies each.
            poll_until(Duration::from_secs(15), "a backlog of 0", || {
                let samples = metrics(node);
                (samples.get("wharf_chunk_repair_backlog") == Some(&0.0)).then_some(())
            });
        } else {
            assert!(lags.is_empty(), "followers report no lag: {lags:?}");
            assert!(!samples.contains_key("wharf_chunk_repair_backlog"));
        }
    }
}
