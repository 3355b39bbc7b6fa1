//! Upload events (issue 24, DESIGN.md §6a): every upload that got `226` is
//! announced at least once to every sink — a webhook checked for its HMAC
//! signature and a NATS subject on a real `nats-server` — across a SIGKILL of
//! the leader; a sink that is down builds a backlog and catches up; filters,
//! removal and `wharf events tail` work.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::cluster::poll_until;
use crate::support::events::{NatsServer, NatsSubscriber, WebhookReceiver};
use crate::support::{
    assert_success, run, sha256_file, write_random_file, Cluster, Wharf, WharfOptions,
};

const SECRET: &str = "hook-Secret-19";
/// How long every acknowledged upload's event may take to reach the sinks
/// once the cluster is whole again.
const DELIVERY_LIMIT: Duration = Duration::from_secs(60);

fn add_webhook(node: &Wharf, name: &str, url: &str, extra: &[&str]) {
    let secret = node.root().join(format!("{name}.secret"));
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let secret = secret.to_string_lossy().into_owned();
    let mut args = vec!["events", "sink", "add", name, "--webhook", url];
    args.extend(["--secret-file", &secret]);
    args.extend(extra);
    assert_success(&node.cli(&args, None), "events sink add (webhook)");
}

fn sink_list(node: &Wharf) -> BTreeMap<String, serde_json::Value> {
    let out = node.cli(&["events", "sink", "list", "--json"], None);
    assert_success(&out, "events sink list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            (v["name"].as_str().unwrap().to_owned(), v)
        })
        .collect()
}

fn curl_put(node: &Wharf, file: &Path, remote: &str) -> bool {
    let mut cmd = node.curl();
    cmd.arg("--ftp-create-dirs")
        .arg("-T")
        .arg(file)
        .arg(node.explicit_url(remote));
    run(&mut cmd).status.success()
}

/// The events a sink received, by path: (distinct ids, size, sha256).
fn uploads_seen(events: &[serde_json::Value]) -> BTreeMap<String, (BTreeSet<u64>, u64, String)> {
    let mut seen: BTreeMap<String, (BTreeSet<u64>, u64, String)> = BTreeMap::new();
    for e in events.iter().filter(|e| e["type"] == "file.uploaded") {
        let entry = seen
            .entry(e["path"].as_str().unwrap().to_owned())
            .or_default();
        entry.0.insert(e["id"].as_u64().unwrap());
        entry.1 = e["size"].as_u64().unwrap();
        entry.2 = e["sha256"].as_str().unwrap().to_owned();
    }
    seen
}

/// Ids in the order a sink first received them must increase: delivery is
/// in commit order (a redelivery after a leader change repeats, never
/// reorders, what came first).
fn assert_commit_order(ids: &[u64], sink: &str) {
    let mut first_seen = Vec::new();
    let mut known = BTreeSet::new();
    for id in ids {
        if known.insert(*id) {
            first_seen.push(*id);
        }
    }
    assert!(
        first_seen.windows(2).all(|w| w[0] < w[1]),
        "{sink} received events out of commit order: {first_seen:?}"
    );
}

#[test]
fn every_acknowledged_upload_reaches_a_webhook_and_nats_across_a_leader_kill() {
    let mut cluster = Cluster::start_with(3, WharfOptions::default().cluster_storage());
    let hook = WebhookReceiver::start(Some(SECRET.as_bytes()));
    let nats = NatsServer::start();
    let subscriber = NatsSubscriber::connect(nats.port(), "wharf.uploads");
    add_webhook(cluster.node(1), "hook", &hook.url(), &[]);
    let out = cluster.node(2).cli(
        &[
            "events",
            "sink",
            "add",
            "bus",
            "--nats",
            &nats.url(),
            "--subject",
            "wharf.uploads",
        ],
        None,
    );
    assert_success(&out, "events sink add (nats)");

    // 200 uploads, 4 at a time, spread over the three nodes; a third of the
    // way through, the leader is SIGKILLed (uploads to it fail from then on,
    // the others go on through the new leader).
    let sources = cluster.node(1).root().join("sources");
    std::fs::create_dir_all(&sources).unwrap();
    let files: Vec<(String, std::path::PathBuf)> = (0..200)
        .map(|i| {
            let local = sources.join(format!("f{i}"));
            write_random_file(&local, 1000 + (i as u64 * 37) % 5000);
            (format!("/in/f{i}.bin"), local)
        })
        .collect();
    let leader = cluster.node(1).cluster_status().leader.unwrap();
    let victim = cluster.position_of(leader);
    let acknowledged = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for worker in 0..4 {
            let (files, acknowledged, next, cluster) = (&files, &acknowledged, &next, &cluster);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((remote, local)) = files.get(i) else {
                    return;
                };
                if curl_put(cluster.node(1 + (i + worker) % 3), local, remote) {
                    acknowledged
                        .lock()
                        .unwrap()
                        .push((remote.clone(), local.clone()));
                }
            });
        }
        poll_until(Duration::from_secs(120), "a third of the uploads", || {
            (next.load(Ordering::SeqCst) >= 70).then_some(())
        });
        let pid = cluster.node(victim).pid().to_string();
        assert_success(
            &run(std::process::Command::new("kill").args(["-9", &pid])),
            "kill -9",
        );
    });
    cluster.node_mut(victim).kill9();
    cluster.node_mut(victim).restart();
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(
        acknowledged.len() >= 120,
        "only {} of 200 uploads got 226",
        acknowledged.len()
    );
    check_delivered(
        &hook,
        &subscriber,
        &acknowledged,
        "after the leader was killed",
    );

    // Every delivery was signed with the sink's secret.
    let received = hook.received();
    assert!(
        received.iter().all(|r| r.signature_valid == Some(true)),
        "unsigned or badly signed deliveries: {:?}",
        received
            .iter()
            .filter(|r| r.signature_valid != Some(true))
            .map(|r| &r.headers)
            .collect::<Vec<_>>()
    );
    let ids: Vec<u64> = received
        .iter()
        .map(|r| r.body["id"].as_u64().unwrap())
        .collect();
    assert_commit_order(&ids, "the webhook");
    let nats_ids: Vec<u64> = subscriber
        .received()
        .iter()
        .map(|m| m.payload["id"].as_u64().unwrap())
        .collect();
    assert_commit_order(&nats_ids, "the NATS subject");
    for m in subscriber.received() {
        assert_eq!(
            m.headers.get("Wharf-Event-Id").map(String::as_str),
            m.payload["id"].as_u64().map(|id| id.to_string()).as_deref(),
            "{m:?}"
        );
    }
}

/// Waits until both sinks hold an event for every acknowledged upload, then
/// checks each has exactly one distinct id, the right size and digest.
fn check_delivered(
    hook: &WebhookReceiver,
    subscriber: &NatsSubscriber,
    acknowledged: &[(String, std::path::PathBuf)],
    when: &str,
) {
    let deadline = Instant::now() + DELIVERY_LIMIT;
    let bodies = |hook: &WebhookReceiver| {
        hook.received()
            .into_iter()
            .map(|r| r.body)
            .collect::<Vec<_>>()
    };
    let payloads = |s: &NatsSubscriber| {
        s.received()
            .into_iter()
            .map(|m| m.payload)
            .collect::<Vec<_>>()
    };
    loop {
        let hook_seen = uploads_seen(&bodies(hook));
        let nats_seen = uploads_seen(&payloads(subscriber));
        let missing: Vec<&String> = acknowledged
            .iter()
            .map(|(remote, _)| remote)
            .filter(|r| !hook_seen.contains_key(*r) || !nats_seen.contains_key(*r))
            .collect();
        if missing.is_empty() {
            for (seen, sink) in [(&hook_seen, "webhook"), (&nats_seen, "nats")] {
                for (remote, local) in acknowledged {
                    let (ids, size, digest) = &seen[remote];
                    assert_eq!(ids.len(), 1, "{sink} {when}: {remote} has ids {ids:?}");
                    assert_eq!(
                        *size,
                        std::fs::metadata(local).unwrap().len(),
                        "{sink}: {remote}"
                    );
                    assert_eq!(digest, &sha256_file(local), "{sink}: {remote}");
                }
            }
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{when}: {} acknowledged uploads have no event at a sink, e.g. {:?}",
            missing.len(),
            missing.iter().take(5).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_failing_sink_backs_up_and_catches_up_and_filters_removal_and_tail_hold() {
    let wharf = Wharf::start(WharfOptions::default().cluster_storage());
    let hook = WebhookReceiver::start(Some(SECRET.as_bytes()));
    let wrong = WebhookReceiver::start(Some(b"another-secret"));
    let deletes = WebhookReceiver::start(None);
    add_webhook(&wharf, "hook", &hook.url(), &[]);
    add_webhook(&wharf, "wrong", &wrong.url(), &[]);
    add_webhook(
        &wharf,
        "deletes",
        &deletes.url(),
        &["--types", "file.deleted", "--path-prefix", "/keep/"],
    );
    let refused = wharf.cli(
        &["events", "sink", "add", "hook", "--webhook", &hook.url()],
        None,
    );
    assert!(
        !refused.status.success(),
        "a second sink named hook was accepted"
    );
    let bad_type = wharf.cli(
        &[
            "events",
            "sink",
            "add",
            "x",
            "--webhook",
            &hook.url(),
            "--types",
            "file.moved",
        ],
        None,
    );
    assert!(!bad_type.status.success());
    assert!(String::from_utf8_lossy(&bad_type.stderr).contains("unknown event type"));

    // The hook is down: events wait, the list says so.
    hook.set_failing(true);
    let file = wharf.root().join("one.bin");
    write_random_file(&file, 4000);
    for name in ["/keep/a.bin", "/keep/b.bin", "/other/c.bin"] {
        assert!(curl_put(&wharf, &file, name), "upload {name}");
    }
    let behind = poll_until(
        Duration::from_secs(20),
        "the hook's failure in the list",
        || {
            let sinks = sink_list(&wharf);
            let hook_state = sinks.get("hook")?.clone();
            (hook_state["state"] == "failing" && hook_state["backlog"].as_u64()? > 0)
                .then_some(hook_state)
        },
    );
    assert!(
        behind["last_error"].as_str().unwrap().contains("503"),
        "{behind}"
    );
    assert!(hook.failed_attempts() > 0);
    assert!(hook.received().is_empty());

    // Deletes and a rename, a directory made and removed.
    let mut del = wharf.curl();
    del.arg(wharf.explicit_url("/"))
        .args(["-Q", "DELE /keep/a.bin", "-Q", "DELE /other/c.bin"])
        .args(["-Q", "RNFR /keep/b.bin", "-Q", "RNTO /keep/d.bin"])
        .args(["-Q", "MKD /made", "-Q", "RMD /made"]);
    assert_success(&run(&mut del), "curl DELE/RNFR/RNTO/MKD/RMD");

    // Back up: the hook receives everything, in order, once: the two
    // directories curl made, three uploads, two deletes, a rename, a
    // directory made and removed.
    hook.set_failing(false);
    assert!(hook.wait_for(10, DELIVERY_LIMIT), "{:?}", hook.received());
    let types: Vec<String> = hook
        .received()
        .iter()
        .map(|r| r.body["type"].as_str().unwrap().to_owned())
        .collect();
    for wanted in [
        "file.uploaded",
        "file.deleted",
        "file.renamed",
        "dir.created",
        "dir.removed",
    ] {
        assert!(
            types.iter().any(|t| t == wanted),
            "no {wanted} in {types:?}"
        );
    }
    let renamed = hook
        .received()
        .into_iter()
        .find(|r| r.body["type"] == "file.renamed")
        .unwrap();
    assert_eq!(renamed.body["from"], "/keep/b.bin");
    assert_eq!(renamed.body["to"], "/keep/d.bin");
    assert_eq!(renamed.body["user"], wharf.user.as_str());
    assert!(hook
        .received()
        .iter()
        .all(|r| r.signature_valid == Some(true)));
    poll_until(Duration::from_secs(10), "the hook current", || {
        let sinks = sink_list(&wharf);
        (sinks["hook"]["state"] == "current" && sinks["hook"]["last_error"] == "").then_some(())
    });

    // A receiver with another secret can tell the signature is not its own.
    assert!(wrong.wait_for(10, DELIVERY_LIMIT));
    assert!(wrong
        .received()
        .iter()
        .all(|r| r.signature_valid == Some(false)));

    // The filtered sink got only the delete under /keep/.
    poll_until(Duration::from_secs(10), "the filtered sink's event", || {
        (deletes.received().len() == 1).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let only = deletes.received();
    assert_eq!(only.len(), 1, "{only:?}");
    assert_eq!(only[0].body["type"], "file.deleted");
    assert_eq!(only[0].body["path"], "/keep/a.bin");

    // Removed, a sink receives nothing more.
    assert_success(
        &wharf.cli(&["events", "sink", "remove", "wrong"], None),
        "events sink remove",
    );
    let before = wrong.received().len();
    assert!(curl_put(&wharf, &file, "/keep/e.bin"));
    assert!(hook.wait_for(11, DELIVERY_LIMIT));
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(wrong.received().len(), before);
    assert!(!sink_list(&wharf).contains_key("wrong"));

    // `tail` prints what is kept, as the sinks received it.
    let out = wharf.cli(&["events", "tail", "--from", "0", "--no-follow"], None);
    assert_success(&out, "events tail");
    let tailed: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(tailed.len(), 11, "{tailed:?}");
    assert_eq!(tailed[0], hook.received()[0].body);
    assert!(tailed
        .iter()
        .all(|e| e["time"].as_str().is_some_and(|t| t.ends_with('Z'))));

    // The metrics name each sink.
    let metrics = run(std::process::Command::new("curl").args([
        "--silent",
        &format!("http://127.0.0.1:{}/metrics", wharf.http_port),
    ]));
    let text = String::from_utf8_lossy(&metrics.stdout);
    assert!(text.contains("wharf_events_recorded_total 11"), "{text}");
    assert!(
        text.contains("wharf_events_backlog{sink=\"hook\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("wharf_events_delivered_total{sink=\"hook\"} 11"),
        "{text}"
    );
    assert!(
        text.contains("wharf_events_failed_total{sink=\"hook\"}"),
        "{text}"
    );
}
