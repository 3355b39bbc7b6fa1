//! Self-test of the upload-event receivers in `tests/support/events.rs`
//! against real peers: curl posting to the webhook receiver, and a raw
//! publisher going through a real `nats-server` to the NATS subscriber.
//!
//! The events suites trust these receivers to tell a missing or forged event
//! from a present one, so they are proven here first, with nothing of Wharf's.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::events::{signature, NatsServer, NatsSubscriber, WebhookReceiver};
use crate::support::*;

const SECRET: &[u8] = b"hook-secret-for-tests";
const WAIT: Duration = Duration::from_secs(5);

/// `curl` arguments for one POST of `body` to `url`, with `headers`. Each
/// transfer prints `<status> <new connections>` on its own line.
fn post_args(url: &str, headers: &[(&str, String)], body: &str) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--silent".into(),
        "--show-error".into(),
        "--max-time".into(),
        "10".into(),
        "--output".into(),
        "/dev/null".into(),
        "--write-out".into(),
        "%{http_code} %{num_connects}\\n".into(),
        "--header".into(),
        "Content-Type: application/json".into(),
    ];
    for (name, value) in headers {
        args.push("--header".into());
        args.push(format!("{name}: {value}"));
    }
    args.push("--data-binary".into());
    args.push(body.into());
    args.push(url.into());
    args
}

/// Runs one curl with the transfers given (joined by `--next`, so they share
/// a connection when the server keeps it alive); returns its output lines.
fn curl_transfers(transfers: &[Vec<String>]) -> Vec<String> {
    require_tool("curl");
    let mut cmd = std::process::Command::new("curl");
    for (i, transfer) in transfers.iter().enumerate() {
        if i > 0 {
            cmd.arg("--next");
        }
        cmd.args(transfer);
    }
    let outcome = run_with_timeout(&mut cmd, Duration::from_secs(20));
    assert!(!outcome.killed, "curl hung\n{}", describe(&outcome.output));
    assert_success(&outcome.output, "curl POST");
    String::from_utf8_lossy(&outcome.output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn event_headers(id: &str, signature: Option<String>) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("X-Wharf-Event-Id", id.to_string()),
        ("X-Wharf-Event-Type", "upload.completed".to_string()),
    ];
    if let Some(signature) = signature {
        headers.push(("X-Wharf-Signature", signature));
    }
    headers
}

#[test]
fn webhook_checks_signatures_and_keeps_connections_alive() {
    let hook = WebhookReceiver::start(Some(SECRET));
    assert!(hook.url().starts_with("http://127.0.0.1:") && hook.url().ends_with("/hook"));
    let good = r#"{"id":"ev-1","path":"/incoming/a.bin","size":3}"#;
    let forged = r#"{"id":"ev-2","path":"/incoming/b.bin","size":4}"#;
    let unsigned = r#"{"id":"ev-3"}"#;
    // Over 1 KiB, so curl sends `Expect: 100-continue` first.
    let large = format!(r#"{{"id":"ev-4","pad":"{}"}}"#, "x".repeat(100_000));
    let lines = curl_transfers(&[
        post_args(
            &hook.url(),
            &event_headers("ev-1", Some(signature(SECRET, good.as_bytes()))),
            good,
        ),
        // Signed with the wrong secret.
        post_args(
            &hook.url(),
            &event_headers("ev-2", Some(signature(b"wrong", forged.as_bytes()))),
            forged,
        ),
        post_args(&hook.url(), &event_headers("ev-3", None), unsigned),
        post_args(
            &hook.url(),
            &event_headers("ev-4", Some(signature(SECRET, large.as_bytes()))),
            &large,
        ),
        // A retry of ev-1: a second request, one distinct id.
        post_args(
            &hook.url(),
            &event_headers("ev-1", Some(signature(SECRET, good.as_bytes()))),
            good,
        ),
    ]);
    // One connection for all five: the receiver keeps it alive.
    assert_eq!(
        lines,
        ["200 1", "200 0", "200 0", "200 0", "200 0"],
        "{:?}",
        hook.rejections()
    );

    assert!(hook.wait_for(4, WAIT));
    let got = hook.received();
    assert_eq!(got.len(), 5);
    assert_eq!(hook.distinct_ids(), 4);
    let ids: Vec<_> = got.iter().map(|e| e.event_id.as_deref().unwrap()).collect();
    assert_eq!(ids, ["ev-1", "ev-2", "ev-3", "ev-4", "ev-1"]);
    assert!(got
        .iter()
        .all(|e| e.event_type.as_deref() == Some("upload.completed")));
    let valid: Vec<_> = got.iter().map(|e| e.signature_valid).collect();
    assert_eq!(
        valid,
        [Some(true), Some(false), None, Some(true), Some(true)]
    );
    assert_eq!(got[0].body["path"], "/incoming/a.bin");
    assert_eq!(got[0].body["size"], 3);
    assert_eq!(got[3].body["pad"].as_str().unwrap().len(), 100_000);
    assert_eq!(got[0].headers["content-type"], "application/json");
    assert_eq!(hook.failed_attempts(), 0);
    assert!(hook.rejections().is_empty(), "{:?}", hook.rejections());
}

#[test]
fn webhook_answers_503_while_failing_and_refuses_odd_requests() {
    let hook = WebhookReceiver::start(None);
    let body = r#"{"id":"ev-9"}"#;
    hook.set_failing(true);
    let lines = curl_transfers(&[
        post_args(&hook.url(), &event_headers("ev-9", None), body),
        post_args(&hook.url(), &event_headers("ev-9", None), body),
    ]);
    assert_eq!(lines, ["503 1", "503 0"]);
    assert_eq!(hook.failed_attempts(), 2);
    assert!(hook.received().is_empty());
    assert!(!hook.wait_for(1, Duration::from_millis(100)));

    hook.set_failing(false);
    let lines = curl_transfers(&[post_args(
        &hook.url(),
        &event_headers("ev-9", Some(signature(SECRET, body.as_bytes()))),
        body,
    )]);
    assert_eq!(lines, ["200 1"]);
    assert!(hook.wait_for(1, WAIT));
    let got = hook.received();
    assert_eq!(got.len(), 1);
    // No secret configured: the signature is not judged.
    assert_eq!(got[0].signature_valid, None);
    assert_eq!(got[0].body["id"], "ev-9");
    assert_eq!(hook.failed_attempts(), 2);

    // Nothing odd is recorded as an event: a GET, another path, a body that
    // is not JSON, a chunked body.
    let url = hook.url();
    let other_path = url.replace("/hook", "/other");
    let get: Vec<String> = ["--silent", "--max-time", "10", "--output", "/dev/null"]
        .into_iter()
        .chain(["--write-out", "%{http_code} %{num_connects}\\n", &url])
        .map(str::to_string)
        .collect();
    let mut chunked = post_args(&url, &[("Transfer-Encoding", "chunked".into())], body);
    chunked.insert(0, "--http1.1".into());
    let lines = curl_transfers(&[
        get,
        post_args(&other_path, &[], body),
        post_args(&url, &[], "not json"),
        chunked,
    ]);
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines
            .iter()
            .map(|l| l.split(' ').next().unwrap())
            .collect::<Vec<_>>(),
        ["405", "404", "400", "501"]
    );
    assert_eq!(hook.received().len(), 1);
    assert_eq!(hook.rejections().len(), 4, "{:?}", hook.rejections());
}

/// A raw NATS publisher: one connection, one `PUB` (or `HPUB` with `headers`),
/// then `PING` and waiting for `PONG`, after which the server has routed it.
fn publish(port: u16, subject: &str, headers: &[(&str, &str)], payload: &[u8]) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut frame =
        b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"protocol\":1}\r\n"
            .to_vec();
    if headers.is_empty() {
        frame.extend(format!("PUB {subject} {}\r\n", payload.len()).bytes());
    } else {
        let mut block = "NATS/1.0\r\n".to_string();
        for (key, value) in headers {
            block.push_str(&format!("{key}: {value}\r\n"));
        }
        block.push_str("\r\n");
        let total = block.len() + payload.len();
        frame.extend(format!("HPUB {subject} {} {total}\r\n{block}", block.len()).bytes());
    }
    frame.extend_from_slice(payload);
    frame.extend_from_slice(b"\r\nPING\r\n");
    stream.write_all(&frame).unwrap();
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("PONG\r\n") {
        assert!(Instant::now() < deadline, "no PONG from nats-server");
        let n = stream.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "nats-server closed: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&chunk[..n]);
        assert!(
            !String::from_utf8_lossy(&seen).contains("-ERR"),
            "{}",
            String::from_utf8_lossy(&seen)
        );
    }
}

#[test]
fn nats_subscriber_receives_hpub_and_pub_and_resubscribes_after_a_restart() {
    let mut server = NatsServer::start();
    assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));
    let subscriber = NatsSubscriber::connect(server.port(), "wharf.events.>");
    assert_eq!(subscriber.subscriptions(), 1);

    publish(
        server.port(),
        "wharf.events.upload",
        &[
            ("Nats-Msg-Id", "ev-1"),
            ("X-Wharf-Event-Type", "upload.completed"),
        ],
        br#"{"id":"ev-1","size":3}"#,
    );
    publish(
        server.port(),
        "wharf.events.delete",
        &[],
        br#"{"id":"ev-2"}"#,
    );
    assert!(subscriber.wait_for(2, WAIT), "{}", subscriber.last_error());
    let got = subscriber.received();
    assert_eq!(got[0].subject, "wharf.events.upload");
    assert_eq!(got[0].headers["Nats-Msg-Id"], "ev-1");
    assert_eq!(got[0].headers["X-Wharf-Event-Type"], "upload.completed");
    assert_eq!(got[0].payload["size"], 3);
    assert_eq!(got[1].subject, "wharf.events.delete");
    assert!(got[1].headers.is_empty());
    assert_eq!(got[1].payload["id"], "ev-2");

    // The sink's outage: the subscriber keeps trying and subscribes again.
    server.stop();
    assert!(TcpStream::connect(("127.0.0.1", server.port())).is_err());
    server.start_again();
    assert!(
        subscriber.wait_subscribed(2, WAIT),
        "no resubscription: {}\n{}",
        subscriber.last_error(),
        server.log()
    );
    // A subject outside the subscription, then one inside it: only the second arrives.
    publish(server.port(), "other.subject", &[], br#"{"id":"nope"}"#);
    publish(
        server.port(),
        "wharf.events.upload",
        &[("Nats-Msg-Id", "ev-3")],
        br#"{"id":"ev-3"}"#,
    );
    assert!(subscriber.wait_for(3, WAIT), "{}", subscriber.last_error());
    let got = subscriber.received();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].headers["Nats-Msg-Id"], "ev-3");
    assert_eq!(got[2].payload["id"], "ev-3");
}
