//! Control-plane benchmark against a real three-node cluster on 127.0.0.1:
//! Raft write latency and throughput through a follower, time to elect a new
//! leader after the leader is SIGKILLed, and TLS handshakes per second, full
//! versus resumed on another node than the one that issued the ticket.
//!
//! `cargo build --release -p wharf -p wharf-benches && target/release/bench-cluster`
//! prints a Markdown report; figures go to `benches/README.md` with the
//! machine they ran on. Everything it starts is stopped when it ends.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use wharf_benches::harness::{ms, percentile, start_cluster, Node};
use wharf_cluster::admin_client::AdminClient;
use wharf_cluster::credentials;

#[derive(Parser, Debug)]
struct Args {
    /// The wharf binary to benchmark (build it with --release).
    #[arg(long, default_value = "target/release/wharf")]
    wharf: PathBuf,
    /// Sequential writes for the latency figures.
    #[arg(long, default_value_t = 1000)]
    latency_writes: usize,
    /// Writes for the throughput figure, spread over --writers tasks.
    #[arg(long, default_value_t = 4000)]
    throughput_writes: usize,
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Leader kills for the election figure.
    #[arg(long, default_value_t = 10)]
    elections: usize,
    /// Seconds each handshake measurement runs.
    #[arg(long, default_value_t = 5)]
    handshake_secs: u64,
    /// Concurrent handshaking clients.
    #[arg(long, default_value_t = 4)]
    handshakers: usize,
}

async fn write(client: &AdminClient, key: String) -> Result<()> {
    let command = wharf_store::Command::PutSetting {
        key,
        value: "x".into(),
    };
    client.write(command).await?;
    Ok(())
}

async fn follower(nodes: &[Node]) -> Result<&Node> {
    for n in nodes {
        let status = n.status().await?;
        if status.leader_id.is_some() && status.leader_id != Some(status.node_id) {
            return Ok(n);
        }
    }
    bail!("no follower found")
}

async fn bench_writes(nodes: &[Node], args: &Args, out: &mut Vec<String>) -> Result<()> {
    let via = follower(nodes).await?;
    let client = via.admin().await?;
    for i in 0..50 {
        write(&client, format!("bench:warm:{i}")).await?;
    }
    let mut latencies = Vec::with_capacity(args.latency_writes);
    for i in 0..args.latency_writes {
        let start = Instant::now();
        write(&client, format!("bench:lat:{i}")).await?;
        latencies.push(start.elapsed());
    }
    latencies.sort();
    let per_writer = args.throughput_writes / args.writers.max(1);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.writers {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                write(&client, format!("bench:tp:{w}:{i}")).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed();
    let total = per_writer * args.writers;
    out.push(format!(
        "| Raft write through a follower, sequential ({} writes) | p50 {} · p99 {} · max {} |",
        latencies.len(),
        ms(percentile(&latencies, 50)),
        ms(percentile(&latencies, 99)),
        ms(*latencies.last().unwrap_or(&Duration::ZERO)),
    ));
    out.push(format!(
        "| Raft writes through a follower, {} concurrent writers ({total} writes) | {:.0} writes/s |",
        args.writers,
        total as f64 / elapsed.as_secs_f64()
    ));
    Ok(())
}

/// One explicit-FTPS connection: greeting, AUTH TLS, handshake, QUIT (whose
/// reply also delivers TLS 1.3 tickets). Returns whether it resumed.
async fn ftps_handshake(port: u16, connector: &tokio_rustls::TlsConnector) -> Result<bool> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let mut tcp = tokio::io::BufReader::new(tcp);
    let mut line = String::new();
    tcp.read_line(&mut line).await?;
    tcp.get_mut().write_all(b"AUTH TLS\r\n").await?;
    line.clear();
    tcp.read_line(&mut line).await?;
    if !line.starts_with("234") {
        bail!("AUTH TLS refused: {line}");
    }
    let name = ServerName::try_from("localhost")?;
    let tls = connector.connect(name, tcp.into_inner()).await?;
    let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    let mut tls = tokio::io::BufReader::new(tls);
    tls.get_mut().write_all(b"QUIT\r\n").await?;
    line.clear();
    tls.read_line(&mut line).await?;
    Ok(resumed)
}

fn client_config(
    ca_pem: &str,
    version: &'static rustls::SupportedProtocolVersion,
    resume: bool,
) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes())?)?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[version])?
    .with_root_certificates(roots)
    .with_no_client_auth();
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// Handshakes per second over `secs` with `clients` concurrent clients,
/// cycling over `ports`; returns (rate, share that resumed).
async fn handshake_rate(
    config: Arc<rustls::ClientConfig>,
    ports: Vec<u16>,
    clients: usize,
    secs: u64,
) -> Result<(f64, f64)> {
    let connector = tokio_rustls::TlsConnector::from(config);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (connector, ports) = (connector.clone(), ports.clone());
        tasks.push(tokio::spawn(async move {
            let (mut done, mut resumed) = (0u64, 0u64);
            let mut i = c;
            while Instant::now() < deadline {
                if ftps_handshake(ports[i % ports.len()], &connector).await? {
                    resumed += 1;
                }
                done += 1;
                i += 1;
            }
            anyhow::Ok((done, resumed))
        }));
    }
    let (mut done, mut resumed) = (0, 0);
    for t in tasks {
        let (d, r) = t.await??;
        done += d;
        resumed += r;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok((done as f64 / elapsed, resumed as f64 / done.max(1) as f64))
}

async fn bench_handshakes(nodes: &[Node], args: &Args, out: &mut Vec<String>) -> Result<()> {
    let ca = std::fs::read_to_string(
        credentials::tls_dir(&nodes[0].data_dir.join("cluster")).join(credentials::CA_FILE),
    )?;
    let ports: Vec<u16> = nodes.iter().map(|n| n.ftp_port).collect();
    for (label, version) in [
        ("TLS 1.3", &rustls::version::TLS13),
        ("TLS 1.2", &rustls::version::TLS12),
    ] {
        let full = client_config(&ca, version, false)?;
        let (full_rate, _) =
            handshake_rate(full, ports.clone(), args.handshakers, args.handshake_secs).await?;
        // Tickets come from node 1; every measured handshake goes to node 2 or 3.
        let resuming = client_config(&ca, version, true)?;
        let primer = tokio_rustls::TlsConnector::from(resuming.clone());
        for _ in 0..args.handshakers * 2 {
            ftps_handshake(ports[0], &primer).await?;
        }
        let (resumed_rate, share) = handshake_rate(
            resuming,
            ports[1..].to_vec(),
            args.handshakers,
            args.handshake_secs,
        )
        .await?;
        out.push(format!(
            "| {label} handshakes/s, {} clients: full | {full_rate:.0}/s |",
            args.handshakers
        ));
        out.push(format!(
            "| {label} handshakes/s, {} clients: resumed on another node | {resumed_rate:.0}/s ({:.0}% resumed; ×{:.2} full) |",
            args.handshakers,
            share * 100.0,
            resumed_rate / full_rate
        ));
    }
    Ok(())
}

async fn bench_elections(
    bin: &Path,
    nodes: &mut [Node],
    args: &Args,
    out: &mut Vec<String>,
) -> Result<()> {
    let mut times = Vec::new();
    for _ in 0..args.elections {
        let status = nodes[0].status().await?;
        let leader = status.leader_id.context("no leader")?;
        let mut victim = None;
        for (i, n) in nodes.iter().enumerate() {
            if n.node_id()? == leader {
                victim = Some(i);
            }
        }
        let victim = victim.context("leader is not one of ours")?;
        nodes[victim].kill_now()?;
        let killed_at = Instant::now();
        'wait: loop {
            for (i, n) in nodes.iter().enumerate() {
                if i == victim {
                    continue;
                }
                if let Ok(s) = n.status().await {
                    if s.leader_id.is_some_and(|l| l != leader) {
                        break 'wait;
                    }
                }
            }
            if killed_at.elapsed() > Duration::from_secs(30) {
                bail!("no new leader 30 s after killing node {leader}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        times.push(killed_at.elapsed());
        nodes[victim].kill();
        nodes[victim].spawn(bin)?;
        // Wait until the restarted node follows the new leader again.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = nodes[victim].status().await?;
            if s.leader_id.is_some_and(|l| l != s.node_id) && s.last_applied_index.is_some() {
                break;
            }
            if Instant::now() > deadline {
                bail!("restarted node did not rejoin: {s:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    times.sort();
    out.push(format!(
        "| New leader after SIGKILL of the leader ({} kills) | median {} · min {} · max {} |",
        times.len(),
        ms(percentile(&times, 50)),
        ms(times[0]),
        ms(*times.last().unwrap_or(&Duration::ZERO)),
    ));
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.wharf.exists(),
        "{} not found: cargo build --release -p wharf",
        args.wharf.display()
    );
    let root = tempfile::Builder::new().prefix("wharf-bench-").tempdir()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let mut out = vec![
        "| measurement | result |".to_owned(),
        "| --- | --- |".to_owned(),
    ];
    runtime.block_on(async {
        let mut nodes = start_cluster(&args.wharf, root.path(), 3, &[]).await?;
        bench_writes(&nodes, &args, &mut out).await?;
        bench_handshakes(&nodes, &args, &mut out).await?;
        bench_elections(&args.wharf, &mut nodes, &args, &mut out).await?;
        anyhow::Ok(())
    })?;
    let mut stdout = std::io::stdout().lock();
    for line in out {
        writeln!(stdout, "{line}")?;
    }
    Ok(())
}
