//! The events invariant: a webhook sink on the host receives the cluster's
//! upload events, and after the run every acknowledged upload must have a
//! `file.uploaded` event with its path and the digest of the file it left —
//! whatever node died, paused or was cut off meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::net::{topology, Topology};
use crate::nodes::Cluster;
use crate::workload::SessionModel;

/// How long the sink may take to receive every event once the cluster has
/// settled.
const DELIVERY_LIMIT: Duration = Duration::from_secs(60);
/// The largest event a receiver accepts.
const MAX_BODY: usize = 64 * 1024;

/// `(path, sha256)` of every `file.uploaded` received, with its event id.
type Seen = Arc<Mutex<BTreeMap<(String, String), BTreeSet<u64>>>>;

pub struct Receiver {
    addr: SocketAddr,
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where the nodes reach the host: the bridge's address with namespaces,
/// the compose network's gateway with containers, loopback otherwise.
fn host_ip() -> IpAddr {
    IpAddr::V4(match topology() {
        Topology::Namespaces => Ipv4Addr::new(10, 77, 0, 1),
        Topology::Loopback => Ipv4Addr::LOCALHOST,
        Topology::Containers => Ipv4Addr::new(172, 30, 77, 1),
    })
}

impl Receiver {
    pub async fn start() -> Result<Receiver> {
        let listener = TcpListener::bind((host_ip(), 0))
            .await
            .with_context(|| format!("cannot listen for events on {}", host_ip()))?;
        let addr = listener.local_addr()?;
        let seen = Seen::default();
        let task = tokio::spawn({
            let seen = seen.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, seen.clone()));
                }
            }
        });
        Ok(Receiver { addr, seen, task })
    }

    /// Adds the sink through node 1's data directory.
    pub fn add_sink(&self, cluster: &Cluster) -> Result<()> {
        let url = format!("http://{}/events", self.addr);
        let out = cluster.admin(&["events", "sink", "add", "chaos", "--webhook", &url])?;
        if !out.status.success() {
            bail!(
                "wharf events sink add failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Violations: acknowledged uploads without their event, or with more
    /// than one event id, once the sink has had time to receive them.
    pub async fn check(&self, models: &[SessionModel]) -> Vec<String> {
        let wanted: BTreeSet<(String, String)> = models
            .iter()
            .flat_map(|m| &m.acked_uploads)
            .map(|(path, digest)| (format!("/{}", path.trim_start_matches('/')), digest.clone()))
            .collect();
        let deadline = Instant::now() + DELIVERY_LIMIT;
        loop {
            let missing: Vec<(String, String)> = {
                let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                wanted
                    .iter()
                    .filter(|key| !seen.contains_key(*key))
                    .cloned()
                    .collect()
            };
            if missing.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                return vec![format!(
                    "{} of {} acknowledged uploads have no event at the sink after {:?}, e.g. {:?}",
                    missing.len(),
                    wanted.len(),
                    DELIVERY_LIMIT,
                    missing.iter().take(3).collect::<Vec<_>>()
                )];
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        // One upload, one event: the same content may be uploaded twice to
        // a path, so only an upload seen once in the model is checked.
        let mut counts: BTreeMap<&(String, String), usize> = BTreeMap::new();
        for model in models {
            for (path, digest) in &model.acked_uploads {
                let key =
                    wanted.get(&(format!("/{}", path.trim_start_matches('/')), digest.clone()));
                if let Some(key) = key {
                    *counts.entry(key).or_default() += 1;
                }
            }
        }
        counts
            .into_iter()
            .filter(|(key, n)| *n == 1 && seen.get(*key).is_some_and(|ids| ids.len() > 1))
            .map(|(key, _)| {
                format!(
                    "upload of {} announced under several ids {:?}",
                    key.0,
                    seen.get(key)
                )
            })
            .collect()
    }

    pub fn received(&self) -> usize {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.values().map(BTreeSet::len).sum()
    }
}

/// One connection: HTTP/1.1 POSTs, kept alive, each answered 200.
async fn serve(stream: tokio::net::TcpStream, seen: Seen) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let mut length = None;
        let mut line = String::new();
        loop {
            line.clear();
            match read.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse::<usize>().ok();
                }
            }
        }
        let Some(length) = length.filter(|n| *n <= MAX_BODY) else {
            return;
        };
        let mut body = vec![0; length];
        if read.read_exact(&mut body).await.is_err() {
            return;
        }
        if let Ok(event) = serde_json::from_slice::<serde_json::Value>(&body) {
            let field = |k: &str| event.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            if field("type").as_deref() == Some("file.uploaded") {
                if let (Some(path), Some(digest), Some(id)) = (
                    field("path"),
                    field("sha256"),
                    event.get("id").and_then(|v| v.as_u64()),
                ) {
                    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                    seen.entry((path, digest)).or_default().insert(id);
                }
            }
        }
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        if write.write_all(ok).await.is_err() {
            return;
        }
    }
}
