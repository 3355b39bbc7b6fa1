//! The operator's HTTP endpoint (`--http-listen`): `/metrics` in Prometheus
//! text format, `/healthz` (the process answers) and `/readyz` (a balancer may
//! send clients here: a leader is known, this node has caught up with it, it
//! is not draining; the endpoint starts only once the FTPS listeners are
//! bound, so an answer also means they are up), and ACME HTTP-01 answers
//! under `/.well-known/acme-challenge/`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use wharf_cluster::ClusterHandle;
use wharf_server::EngineControl;

/// What the endpoint reports on.
pub struct Observed {
    pub node: Arc<ClusterHandle>,
    pub engine: EngineControl,
    /// Chunks short of replicas as the leader's repair job last counted them.
    pub repair_backlog: Arc<AtomicU64>,
    /// Events this node handed to sinks while it led.
    pub deliveries: Arc<crate::events::DeliveryCounts>,
    /// `--storage s3`: the object trash is reported.
    pub object_storage: bool,
}

pub async fn serve(listener: TcpListener, observed: Arc<Observed>) {
    let challenges = challenges(observed.node.clone());
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(observed)
        .merge(challenges);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("the HTTP endpoint stopped: {e}");
    }
}

/// `--acme-listen`: the ACME challenges alone, for a port 80 open to the
/// world that should not show the metrics.
pub async fn serve_challenges(listener: TcpListener, node: Arc<ClusterHandle>) {
    if let Err(e) = axum::serve(listener, challenges(node)).await {
        tracing::error!("the ACME challenge endpoint stopped: {e}");
    }
}

fn challenges(node: Arc<ClusterHandle>) -> Router {
    Router::new()
        .route("/.well-known/acme-challenge/{token}", get(acme_challenge))
        .with_state(node)
}

/// HTTP-01 (RFC 8555 §8.3): the key authorisation of a pending challenge,
/// from the replicated store, so whichever node the validator reaches
/// answers for the leader that placed the order.
async fn acme_challenge(
    State(node): State<Arc<ClusterHandle>>,
    Path(token): Path<String>,
) -> impl IntoResponse {
    match node.reader().acme_key_authorization(&token) {
        Ok(Some(answer)) => {
            tracing::info!(token = %token, "answered an ACME HTTP-01 challenge");
            (StatusCode::OK, answer)
        }
        Ok(None) => (StatusCode::NOT_FOUND, "no such challenge\n".to_owned()),
        Err(e) => {
            tracing::error!("cannot read ACME challenges: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "store unavailable\n".to_owned(),
            )
        }
    }
}

async fn readyz(State(o): State<Arc<Observed>>) -> impl IntoResponse {
    let mut missing = Vec::new();
    if !o.node.has_leader().await {
        missing.push("no leader known");
    } else if !o.node.catch_up().await {
        missing.push("not caught up with the leader");
    }
    if o.engine.draining() {
        missing.push("draining");
    }
    if missing.is_empty() {
        (StatusCode::OK, "ready\n".to_owned())
    } else {
        let why = format!("not ready: {}\n", missing.join(", "));
        (StatusCode::SERVICE_UNAVAILABLE, why)
    }
}

async fn metrics(State(o): State<Arc<Observed>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        exposition(&o),
    )
}

/// One metric family: `# HELP`, `# TYPE`, then a sample per label set.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn start<'a>(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family { out }
    }

    fn sample(self, name: &str, labels: &[(&str, &str)], value: u64) -> Self {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let _ = if labels.is_empty() {
            writeln!(self.out, "{name} {value}")
        } else {
            writeln!(self.out, "{name}{{{}}} {value}", labels.join(","))
        };
        self
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    Family::start(out, name, "gauge", help).sample(name, &[], value);
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    Family::start(out, name, "counter", help).sample(name, &[], value);
}

fn exposition(o: &Observed) -> String {
    let mut out = String::new();
    let engine = o.engine.metrics();
    gauge(
        &mut out,
        "wharf_sessions",
        "Open FTPS control connections.",
        o.engine.open_sessions() as u64,
    );
    gauge(
        &mut out,
        "wharf_draining",
        "1 while this node refuses new sessions (wharf cluster drain).",
        u64::from(o.engine.draining()),
    );
    let n = "wharf_logins_total";
    Family::start(&mut out, n, "counter", "Logins by result.")
        .sample(n, &[("result", "ok")], engine.logins_ok)
        .sample(n, &[("result", "failed")], engine.logins_failed);
    let n = "wharf_transfer_bytes_total";
    Family::start(&mut out, n, "counter", "File bytes received and sent.")
        .sample(n, &[("direction", "in")], engine.bytes_in)
        .sample(n, &[("direction", "out")], engine.bytes_out);
    let n = "wharf_transfers_total";
    Family::start(&mut out, n, "counter", "File transfers by result.")
        .sample(n, &[("result", "complete")], engine.transfers_complete)
        .sample(n, &[("result", "incomplete")], engine.transfers_incomplete);
    let n = "wharf_tls_handshakes_total";
    let mut family = Family::start(
        &mut out,
        n,
        "counter",
        "TLS handshakes (control and data) by version and kind.",
    );
    for (version, counts) in ["1.2", "1.3"].into_iter().zip(engine.handshakes) {
        for (kind, count) in ["full", "resumed"].into_iter().zip(counts) {
            family = family.sample(n, &[("version", version), ("kind", kind)], count);
        }
    }
    raft(&mut out, o);
    certificates(&mut out, o);
    events(&mut out, o);
    object_trash(&mut out, o);
    out
}

fn raft(out: &mut String, o: &Observed) {
    let m = o.node.raft_metrics();
    let is_leader = m.current_leader == Some(o.node.node_id());
    gauge(out, "wharf_raft_term", "Current Raft term.", m.current_term);
    gauge(
        out,
        "wharf_raft_leader",
        "Node id of the leader this node knows (0: none).",
        m.current_leader.unwrap_or(0),
    );
    gauge(
        out,
        "wharf_raft_is_leader",
        "1 on the leader.",
        u64::from(is_leader),
    );
    gauge(
        out,
        "wharf_raft_last_log_index",
        "Last Raft log index on this node.",
        m.last_log_index.unwrap_or(0),
    );
    gauge(
        out,
        "wharf_raft_applied_index",
        "Last Raft log index applied to this node's state machine.",
        m.last_applied.map_or(0, |l| l.index),
    );
    let stats = o.node.store_stats();
    counter(
        out,
        "wharf_raft_log_bytes_written_total",
        "Bytes of Raft log entries this node's store wrote since it started.",
        stats.log_bytes_written(),
    );
    gauge(
        out,
        "wharf_raft_log_bytes_since_snapshot",
        "Raft log bytes written since this node's last snapshot.",
        stats.log_bytes_since_snapshot(),
    );
    gauge(
        out,
        "wharf_raft_snapshot_bytes",
        "Size of this node's newest snapshot file.",
        stats.snapshot_bytes(),
    );
    counter(
        out,
        "wharf_raft_snapshots_total",
        "Snapshots this node built or installed since it started.",
        stats.snapshots(),
    );
    if let (true, Some(replication)) = (is_leader, m.replication.as_ref()) {
        let n = "wharf_raft_replication_lag";
        let last = m.last_log_index.unwrap_or(0);
        let mut family = Family::start(
            out,
            n,
            "gauge",
            "Log entries a follower is behind the leader (on the leader).",
        );
        let followers = replication
            .iter()
            .filter(|(id, _)| **id != o.node.node_id());
        for (peer, matched) in followers {
            let lag = last.saturating_sub(matched.map_or(0, |l| l.index));
            family = family.sample(n, &[("peer", &peer.to_string())], lag);
        }
        gauge(
            out,
            "wharf_chunk_repair_backlog",
            "Chunks short of live replicas, as the leader last counted them.",
            o.repair_backlog.load(Ordering::Relaxed),
        );
    }
}

/// The most trash entries a scrape counts.
const TRASH_COUNT_MAX: usize = 10_000;

/// Objects whose files went and which are not yet known to be gone from
/// the bucket (`--storage s3`; the same on every node). Near 0 but for the
/// moment between a `DELE` and its removal; growing while the bucket
/// refuses deletes or does not answer.
fn object_trash(out: &mut String, o: &Observed) {
    const PAGE: usize = 1000;
    if !o.object_storage {
        return;
    }
    let reader = o.node.reader();
    let (mut count, mut after) = (0, None);
    while count < TRASH_COUNT_MAX {
        let Ok(page) = reader.trash_page(after.as_ref(), PAGE) else {
            return;
        };
        count += page.len();
        if page.len() < PAGE {
            break;
        }
        after = page.into_iter().last();
    }
    gauge(
        out,
        "wharf_object_trash_entries",
        "Objects of deleted or replaced files waiting to be removed from the bucket (counted up to 10000).",
        count as u64,
    );
}

fn certificates(out: &mut String, o: &Observed) {
    let Ok(certs) = o.node.reader().certs() else {
        return;
    };
    let n = "wharf_certificate_not_after_seconds";
    let mut family = Family::start(
        out,
        n,
        "gauge",
        "Expiry of each served certificate (Unix time).",
    );
    for cert in certs {
        family = family.sample(n, &[("name", &cert.name)], cert.not_after);
    }
}

/// Events recorded and dropped (the same on every node), each sink's
/// backlog and oldest undelivered age (from the replicated positions), and
/// what this node delivered while it led.
fn events(out: &mut String, o: &Observed) {
    let reader = o.node.reader();
    let (Ok(last), Ok(dropped), Ok(sinks)) = (
        reader.last_event_id(),
        reader.events_dropped(),
        reader.sinks(),
    ) else {
        return;
    };
    counter(
        out,
        "wharf_events_recorded_total",
        "Events recorded by the cluster (the last event id).",
        last,
    );
    counter(
        out,
        "wharf_events_dropped_total",
        "Events forgotten before every sink had them (retention).",
        dropped,
    );
    // Ids are consecutive and only the oldest are ever forgotten, so the
    // table holds the ids from its first to the last.
    let retained = match reader.events_after(0, 1).map(|e| e.first().map(|e| e.id)) {
        Ok(Some(first)) => last.saturating_sub(first) + 1,
        _ => 0,
    };
    gauge(
        out,
        "wharf_events_retained",
        "Events held in the replicated store (delivered ones stay 10 minutes).",
        retained,
    );
    let now = crate::clock::unix_now_ms();
    let n = "wharf_events_backlog";
    let mut family = Family::start(out, n, "gauge", "Events a sink has not been handed yet.");
    for sink in &sinks {
        family = family.sample(
            n,
            &[("sink", &sink.name)],
            last.saturating_sub(sink.delivered),
        );
    }
    let n = "wharf_events_oldest_undelivered_seconds";
    let mut family = Family::start(
        out,
        n,
        "gauge",
        "Age of the oldest event a sink has not been handed (0: none).",
    );
    for sink in &sinks {
        let age = reader
            .events_after(sink.delivered, 1)
            .ok()
            .and_then(|e| e.first().map(|e| now.saturating_sub(e.time_ms) / 1000))
            .unwrap_or(0);
        family = family.sample(n, &[("sink", &sink.name)], age);
    }
    let counts = o.deliveries.snapshot();
    for (n, help, pick) in [
        (
            "wharf_events_delivered_total",
            "Events this node handed to a sink while it led.",
            (|(_, d, _): &(String, u64, u64)| *d) as fn(&(String, u64, u64)) -> u64,
        ),
        (
            "wharf_events_failed_total",
            "Failed delivery attempts by this node while it led.",
            |(_, _, f): &(String, u64, u64)| *f,
        ),
    ] {
        let mut family = Family::start(out, n, "counter", help);
        for entry in &counts {
            family = family.sample(n, &[("sink", &entry.0)], pick(entry));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_have_help_type_and_escaped_labels() {
        let mut out = String::new();
        Family::start(&mut out, "x_total", "counter", "Things.")
            .sample("x_total", &[("name", "a\"b\\c")], 3)
            .sample("x_total", &[], 4);
        assert_eq!(
            out,
            "# HELP x_total Things.\n# TYPE x_total counter\n\
             x_total{name=\"a\\\"b\\\\c\"} 3\nx_total 4\n"
        );
    }
}
