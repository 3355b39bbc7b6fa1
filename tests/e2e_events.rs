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
    assert_success, run, sha256_bytes, sha256_file, write_random_file, Cluster, Wharf, WharfOptions,
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

fn add_nats(node: &Wharf, name: &str, nats: &NatsServer, subject: &str) {
    let url = nats.url();
    let args = [
        "events",
        "sink",
        "add",
        name,
        "--nats",
        &url,
        "--subject",
        subject,
    ];
    assert_success(&node.cli(&args, None), "events sink add (nats)");
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
    add_nats(cluster.node(2), "bus", &nats, "wharf.uploads");

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
    let kept = tailed(&wharf);
    assert_eq!(kept.len(), 11, "{kept:?}");
    assert_eq!(kept[0], hook.received()[0].body);
    assert!(kept
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

/// The body of every event a webhook received, in order of receipt.
fn bodies(hook: &WebhookReceiver) -> Vec<serde_json::Value> {
    hook.received().into_iter().map(|r| r.body).collect()
}

/// Uploads `file` as `/{prefix}{i}.bin` for each `i` of `range`.
fn put_numbered(node: &Wharf, file: &Path, prefix: &str, range: std::ops::Range<usize>) {
    for i in range {
        let name = format!("{prefix}{i}.bin");
        assert!(curl_put(node, file, &name), "upload {name}");
    }
}

/// Every event the cluster keeps, as `wharf events tail` prints them.
fn tailed(node: &Wharf) -> Vec<serde_json::Value> {
    let out = node.cli(&["events", "tail", "--from", "0", "--no-follow"], None);
    assert_success(&out, "events tail");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn wait_dropped(node: &Wharf, total: u64) {
    poll_until(Duration::from_secs(30), "events dropped", || {
        (node.metric("wharf_events_dropped_total ")? == total).then_some(())
    });
}

#[test]
fn local_storage_announces_uploads_appends_resumptions_and_changes() {
    let wharf = Wharf::start(WharfOptions::default().local_storage());
    let hook = WebhookReceiver::start(Some(SECRET.as_bytes()));
    add_webhook(&wharf, "hook", &hook.url(), &[]);
    let dir = wharf.root();
    let a = dir.join("a.bin");
    let more = dir.join("more.bin");
    let whole = dir.join("whole.bin");
    let half = dir.join("half.bin");
    write_random_file(&a, 70_000);
    write_random_file(&more, 33_333);
    write_random_file(&whole, 300_000);
    let whole_bytes = std::fs::read(&whole).unwrap();
    std::fs::write(&half, &whole_bytes[..120_000]).unwrap();
    let appended = [std::fs::read(&a).unwrap(), std::fs::read(&more).unwrap()].concat();
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let steps = [
        "mkdir /in".to_owned(),
        format!("put {} /in/a.bin", path(&a)),
        format!("put {} /in/a.bin", path(&a)),
        format!("append {} /in/a.bin", path(&more)),
        format!("put {} /in/b.bin", path(&half)),
        format!("resume {} /in/b.bin 120000", path(&whole)),
        "rename /in/b.bin /in/c.bin".to_owned(),
        "delete /in/a.bin".to_owned(),
        "mkdir /gone".to_owned(),
        "rmdir /gone".to_owned(),
    ];
    assert_success(&run(&mut wharf.batch("reuse", &steps)), "ftplib steps");
    // What the client sent is what is on disk.
    let on_disk = wharf.home(&wharf.user).join("in/c.bin");
    assert_eq!(sha256_file(&on_disk), sha256_file(&whole));

    assert!(hook.wait_for(10, DELIVERY_LIMIT), "{:?}", bodies(&hook));
    std::thread::sleep(Duration::from_millis(500));
    let events = bodies(&hook);
    let summary: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            let path = e["path"].as_str().or(e["from"].as_str()).unwrap_or("");
            (e["type"].as_str().unwrap().to_owned(), path.to_owned())
        })
        .collect();
    let expected = [
        ("dir.created", "/in"),
        ("file.uploaded", "/in/a.bin"),
        ("file.uploaded", "/in/a.bin"),
        ("file.uploaded", "/in/a.bin"),
        ("file.uploaded", "/in/b.bin"),
        ("file.uploaded", "/in/b.bin"),
        ("file.renamed", "/in/b.bin"),
        ("file.deleted", "/in/a.bin"),
        ("dir.created", "/gone"),
        ("dir.removed", "/gone"),
    ]
    .map(|(t, p)| (t.to_owned(), p.to_owned()));
    assert_eq!(summary, expected, "{events:?}");
    let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_commit_order(&ids, "the webhook");
    let digest = |i: usize| events[i]["sha256"].as_str().unwrap().to_owned();
    let size = |i: usize| events[i]["size"].as_u64().unwrap();
    let replaced = |i: usize| events[i]["replaced"].as_bool().unwrap();
    // STOR, STOR over it, APPE: each event digests the whole file.
    assert_eq!(
        (digest(1), size(1), replaced(1)),
        (sha256_file(&a), 70_000, false)
    );
    assert_eq!((digest(2), replaced(2)), (sha256_file(&a), true));
    assert_eq!(
        (digest(3), size(3)),
        (sha256_bytes(&appended), appended.len() as u64)
    );
    // A partial STOR, then REST + STOR of the rest: the digest covers the
    // kept part too.
    assert_eq!((digest(4), size(4)), (sha256_file(&half), 120_000));
    assert_eq!((digest(5), size(5)), (sha256_file(&whole), 300_000));
    assert_eq!(events[6]["to"], "/in/c.bin");
    let uploads: BTreeSet<&str> = (1..6)
        .map(|i| events[i]["upload"].as_str().unwrap())
        .collect();
    assert_eq!(uploads.len(), 5, "upload ids are distinct");
    for e in &events {
        assert_eq!(e["user"], wharf.user.as_str());
        assert_eq!(e["client"], "127.0.0.1");
        assert!(e["session"].as_str().is_some_and(|s| !s.is_empty()), "{e}");
    }
    assert!(hook
        .received()
        .iter()
        .all(|r| r.signature_valid == Some(true)));
}

#[test]
fn events_past_the_retention_limits_are_dropped_counted_and_audited() {
    let wharf = Wharf::start(WharfOptions::default());
    let hook = WebhookReceiver::start(Some(SECRET.as_bytes()));
    add_webhook(&wharf, "hook", &hook.url(), &[]);
    hook.set_failing(true);
    assert_success(
        &wharf.cli(&["events", "retention", "--max-count", "3"], None),
        "events retention --max-count",
    );
    let shown = wharf.cli(&["events", "retention"], None);
    assert_success(&shown, "events retention");
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("at most 3 events or 604800 s"),
        "{}",
        String::from_utf8_lossy(&shown.stdout)
    );

    // Eight uploads while the only sink refuses them: the five oldest go.
    let file = wharf.root().join("f.bin");
    write_random_file(&file, 1000);
    put_numbered(&wharf, &file, "f", 0..8);
    wait_dropped(&wharf, 5);
    let kept = tailed(&wharf);
    let kept_paths: Vec<&str> = kept.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(kept_paths, ["/f5.bin", "/f6.bin", "/f7.bin"]);
    assert_eq!(wharf.metric("wharf_events_retained "), Some(3));
    let audited: u64 = wharf
        .audit_lines()
        .iter()
        .filter(|l| l["fields"]["action"] == "events.dropped")
        .filter_map(|l| l["fields"]["dropped"].as_u64())
        .sum();
    assert_eq!(audited, 5, "{:?}", wharf.audit_lines());

    // Back, the sink gets what was kept, and nothing it never could.
    hook.set_failing(false);
    assert!(hook.wait_for(3, DELIVERY_LIMIT));
    std::thread::sleep(Duration::from_millis(500));
    let got: Vec<String> = bodies(&hook)
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, ["/f5.bin", "/f6.bin", "/f7.bin"]);

    // By age: events older than a second go, delivered or not.
    hook.set_failing(true);
    assert_success(
        &wharf.cli(
            &[
                "events",
                "retention",
                "--max-count",
                "1000",
                "--max-age",
                "1",
            ],
            None,
        ),
        "events retention --max-age",
    );
    put_numbered(&wharf, &file, "f", 8..10);
    wait_dropped(&wharf, 7);
    assert_eq!(tailed(&wharf), Vec::<serde_json::Value>::new());
    assert_eq!(wharf.metric("wharf_events_retained "), Some(0));
}

#[test]
fn a_nats_server_that_hangs_or_restarts_builds_a_backlog_that_drains_when_it_returns() {
    let wharf = Wharf::start(WharfOptions::default());
    let mut nats = NatsServer::start();
    let subscriber = NatsSubscriber::connect(nats.port(), "wharf.in");
    add_nats(&wharf, "bus", &nats, "wharf.in");
    let file = wharf.root().join("n.bin");
    write_random_file(&file, 2000);
    let upload = |range| put_numbered(&wharf, &file, "n", range);
    let paths = || -> BTreeSet<String> {
        subscriber
            .received()
            .iter()
            .filter_map(|m| Some(m.payload["path"].as_str()?.to_owned()))
            .collect()
    };
    let has = |range: std::ops::Range<usize>| {
        let seen = paths();
        range
            .into_iter()
            .all(|i| seen.contains(&format!("/n{i}.bin")))
    };
    upload(0..3);
    poll_until(DELIVERY_LIMIT, "the first three", || {
        has(0..3).then_some(())
    });

    // Hung: the messages may sit in a socket, but nothing confirms them.
    nats.pause();
    upload(3..6);
    let behind = poll_until(Duration::from_secs(40), "the bus failing", || {
        let bus = sink_list(&wharf).get("bus")?.clone();
        (bus["state"] == "failing" && bus["backlog"].as_u64()? > 0).then_some(bus)
    });
    assert!(
        behind["oldest_undelivered_secs"].as_u64().is_some(),
        "{behind}"
    );
    assert!(
        wharf
            .metric("wharf_events_backlog{sink=\"bus\"} ")
            .is_some_and(|n| n > 0),
        "the backlog metric"
    );
    nats.resume();
    poll_until(DELIVERY_LIMIT, "the three sent while hung", || {
        has(3..6).then_some(())
    });
    poll_until(DELIVERY_LIMIT, "the bus current", || {
        let bus = sink_list(&wharf).get("bus")?.clone();
        (bus["backlog"].as_u64()? == 0 && bus["state"] == "current").then_some(())
    });

    // Restarted: Wharf connects again once it is back.
    nats.stop();
    nats.start_again();
    assert!(
        subscriber.wait_subscribed(2, DELIVERY_LIMIT),
        "{}",
        subscriber.last_error()
    );
    upload(6..9);
    poll_until(DELIVERY_LIMIT, "the three after the restart", || {
        has(6..9).then_some(())
    });
    // At least once: every event id arrived, some perhaps twice.
    let ids: BTreeSet<String> = subscriber
        .received()
        .iter()
        .filter_map(|m| m.headers.get("Wharf-Event-Id").cloned())
        .collect();
    assert_eq!(ids.len(), 9, "{ids:?}");
}

#[test]
fn a_webhook_with_requests_in_flight_overlaps_them_and_an_ordered_one_never_does() {
    let wharf = Wharf::start(WharfOptions::default());
    let ordered = WebhookReceiver::start(Some(SECRET.as_bytes()));
    let wide = WebhookReceiver::start(Some(SECRET.as_bytes()));
    // A distant endpoint: every answer takes 100 ms.
    ordered.set_delay(Duration::from_millis(100));
    wide.set_delay(Duration::from_millis(100));
    add_webhook(&wharf, "ordered", &ordered.url(), &[]);
    add_webhook(&wharf, "wide", &wide.url(), &["--in-flight", "8"]);
    let zero = wharf.cli(
        &[
            "events",
            "sink",
            "add",
            "z",
            "--webhook",
            &wide.url(),
            "--in-flight",
            "0",
        ],
        None,
    );
    assert!(!zero.status.success(), "--in-flight 0 was accepted");
    let listed = sink_list(&wharf);
    assert!(
        listed["wide"]["target"]
            .as_str()
            .is_some_and(|t| t.ends_with("(8 in flight, unordered)")),
        "{listed:?}"
    );

    let file = wharf.root().join("w.bin");
    write_random_file(&file, 1500);
    let uploads = 24;
    let mut steps = vec!["mkdir /w".to_owned()];
    steps.extend((0..uploads).map(|i| format!("put {} /w/{i}.bin", file.display())));
    assert_success(&run(&mut wharf.batch("reuse", &steps)), "uploads");
    for (hook, name) in [(&wide, "wide"), (&ordered, "ordered")] {
        assert!(
            hook.wait_for(uploads + 1, DELIVERY_LIMIT),
            "{name}: {} of {}",
            hook.distinct_ids(),
            uploads + 1
        );
        assert!(hook
            .received()
            .iter()
            .all(|r| r.signature_valid == Some(true)));
    }
    assert!(wide.most_at_once() > 1, "the wide sink never overlapped");
    assert_eq!(ordered.most_at_once(), 1, "the ordered sink overlapped");
    let ids: Vec<u64> = ordered
        .received()
        .iter()
        .map(|r| r.event_id.as_deref().unwrap().parse().unwrap())
        .collect();
    assert_commit_order(&ids, "the ordered webhook");
    poll_until(Duration::from_secs(10), "both sinks current", || {
        let sinks = sink_list(&wharf);
        (sinks["wide"]["backlog"] == 0 && sinks["ordered"]["backlog"] == 0).then_some(())
    });
}

/// `wharf events digest none`: uploads and resumptions are announced
/// without a digest (a resumption on cluster storage keeps its whole 4 MiB
/// chunks without reading them back); `sha256` brings the digest back. On
/// both storages.
#[test]
fn an_event_digest_of_none_leaves_it_out_and_sha256_brings_it_back() {
    for options in [
        WharfOptions::default().cluster_storage(),
        WharfOptions::default().local_storage(),
    ] {
        let wharf = Wharf::start(options);
        let shown = |args: &[&str]| {
            let out = wharf.cli(&[&["events", "digest"][..], args].concat(), None);
            assert_success(&out, "events digest");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        assert_eq!(shown(&[]), "file.uploaded events carry digest: sha256");
        assert_eq!(shown(&["none"]), "file.uploaded events carry digest: none");
        let bad = wharf.cli(&["events", "digest", "md5"], None);
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stderr).contains("expected sha256 or none"));

        let dir = wharf.root();
        let whole = dir.join("whole.bin");
        let half = dir.join("half.bin");
        write_random_file(&whole, 10_000_000);
        let whole_bytes = std::fs::read(&whole).unwrap();
        std::fs::write(&half, &whole_bytes[..9_000_000]).unwrap();
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let steps = [
            format!("put {} /b.bin", path(&half)),
            format!("resume {} /b.bin 9000000", path(&whole)),
        ];
        assert_success(&run(&mut wharf.batch("reuse", &steps)), "put, resume");
        assert_eq!(
            shown(&["sha256"]),
            "file.uploaded events carry digest: sha256"
        );
        assert_success(
            &run(&mut wharf.batch("reuse", &[format!("put {} /c.bin", path(&whole))])),
            "put",
        );

        let uploads: Vec<serde_json::Value> = tailed(&wharf)
            .into_iter()
            .filter(|e| e["type"] == "file.uploaded")
            .collect();
        let facts: Vec<(u64, Option<&str>)> = uploads
            .iter()
            .map(|e| (e["size"].as_u64().unwrap(), e["sha256"].as_str()))
            .collect();
        let digest = sha256_file(&whole);
        assert_eq!(
            facts,
            [
                (9_000_000, None),
                (10_000_000, None),
                (10_000_000, Some(digest.as_str()))
            ],
            "{uploads:?}"
        );
        // The resumption without a digest kept its first part whole.
        let back = dir.join("b.out");
        let get = format!("get /b.bin {}", path(&back));
        assert_success(&run(&mut wharf.batch("reuse", &[get])), "get");
        assert_eq!(sha256_file(&back), digest);
    }
}
