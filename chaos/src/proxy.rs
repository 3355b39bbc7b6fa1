//! The fault-injecting TCP proxy of the loopback topology. Every node's
//! cluster port is reached through a proxy at the node's advertised address;
//! nodes make their cluster connections from their own address
//! (`--cluster-source`), so the proxy knows which link a connection is on
//! and applies that link's faults to it:
//!
//! - a cut link forwards nothing (held, as a blackholed route holds TCP
//!   segments) until it heals; connections then carry on if neither end gave
//!   up, as TCP does after a short partition;
//! - a lossy link delays a share of the segments by a retransmission timeout,
//!   which is what a dropped packet costs a TCP stream;
//! - every link can add a fixed one-way delay.
//!
//! Connections from addresses that are not nodes (a joining node's first
//! call, the operator's CLI) pass unharmed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What a retransmitted segment costs: Linux's minimum RTO.
const RETRANSMIT: Duration = Duration::from_millis(200);
/// How often a held stream looks whether its link has healed.
const HELD_POLL: Duration = Duration::from_millis(50);

/// The faults of one direction of one link, from node to node.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkFaults {
    pub cut: bool,
    /// Share of segments (0–100) that arrive a retransmission late.
    pub loss_percent: u32,
    pub delay: Duration,
}

/// Faults by `(from, to)` node index; links not named are healthy.
#[derive(Clone, Default)]
pub struct Faults(Arc<Mutex<HashMap<(usize, usize), LinkFaults>>>);

impl Faults {
    pub fn change(&self, from: usize, to: usize, change: impl FnOnce(&mut LinkFaults)) {
        let mut links = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut faults = links.get(&(from, to)).copied().unwrap_or_default();
        change(&mut faults);
        if faults == LinkFaults::default() {
            links.remove(&(from, to));
        } else {
            links.insert((from, to), faults);
        }
    }

    pub fn heal(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The faults of `link`; none for a connection not between nodes.
    fn get(&self, link: Option<(usize, usize)>) -> LinkFaults {
        let Some(link) = link else {
            return LinkFaults::default();
        };
        let links = self.0.lock().unwrap_or_else(|e| e.into_inner());
        links.get(&link).copied().unwrap_or_default()
    }
}

/// One proxy per node: listens at the node's advertised cluster address and
/// forwards to where the node really listens.
pub struct Proxies {
    tasks: Vec<JoinHandle<()>>,
    /// Connections whose source named a node: if none, the faults touched
    /// nothing (the nodes did not connect from their own addresses).
    pub from_nodes: Arc<AtomicU64>,
}

/// Where each node's proxy listens and forwards to, and how a connection's
/// source address names the node it comes from.
pub struct Layout {
    /// `(node index, proxy address, node's real cluster address)`.
    pub nodes: Vec<(usize, SocketAddr, SocketAddr)>,
    pub node_of_source: fn(IpAddr) -> Option<usize>,
}

impl Proxies {
    pub async fn start(layout: Layout, faults: Faults) -> Result<Proxies> {
        let mut tasks = Vec::new();
        let from_nodes = Arc::new(AtomicU64::new(0));
        for (to, listen, target) in layout.nodes {
            let listener = bind(listen).await?;
            let faults = faults.clone();
            let node_of = layout.node_of_source;
            let counted = from_nodes.clone();
            tasks.push(tokio::spawn(async move {
                while let Ok((inbound, peer)) = listener.accept().await {
                    let from = node_of(peer.ip());
                    if from.is_some() {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::spawn(relay(inbound, target, from, to, faults.clone()));
                }
            }));
        }
        Ok(Proxies { tasks, from_nodes })
    }
}

/// Binds `listen`, waiting up to 10 s for the previous scenario's proxy
/// (its task aborted, its listener dropped a moment later) to let go.
async fn bind(listen: SocketAddr) -> Result<TcpListener> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(listen).await {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                // Who holds it, for the report.
                let holder = std::process::Command::new("ss")
                    .args(["-ltnp", &format!("src {listen}")])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                    .unwrap_or_default();
                return Err(e).context(format!(
                    "proxy cannot listen on {listen} (held by: {holder})"
                ));
            }
        }
    }
}

impl Drop for Proxies {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// One proxied connection from node `from` (if a node) to node `to`.
async fn relay(
    inbound: TcpStream,
    target: SocketAddr,
    from: Option<usize>,
    to: usize,
    faults: Faults,
) {
    let forward = from.map(|from| (from, to));
    let backward = from.map(|from| (to, from));
    // A cut link does not even let the connection through.
    wait_while_cut(&faults, forward).await;
    let Ok(outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    tokio::join!(
        pipe(in_read, out_write, forward, faults.clone()),
        pipe(out_read, in_write, backward, faults),
    );
}

async fn wait_while_cut(faults: &Faults, link: Option<(usize, usize)>) {
    while faults.get(link).cut {
        tokio::time::sleep(HELD_POLL).await;
    }
}

/// Bytes one way: a reader stamps each segment with the time it may leave,
/// a writer sends it then, so delay adds latency without cutting throughput.
async fn pipe(
    mut read: OwnedReadHalf,
    mut write: OwnedWriteHalf,
    link: Option<(usize, usize)>,
    faults: Faults,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let reader = {
        let faults = faults.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let now = faults.get(link);
                let mut due = Instant::now() + now.delay;
                if now.loss_percent > 0 && rand::thread_rng().gen_range(0..100) < now.loss_percent {
                    due += RETRANSMIT;
                }
                if tx.send((due, buf[..n].to_vec())).await.is_err() {
                    break;
                }
            }
        }
    };
    let writer = async move {
        let mut last = Instant::now();
        while let Some((due, segment)) = rx.recv().await {
            // Segments stay in order: none leaves before the one ahead of it.
            last = last.max(due);
            tokio::time::sleep_until(last).await;
            wait_while_cut(&faults, link).await;
            if write.write_all(&segment).await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
    };
    tokio::join!(reader, writer);
}
