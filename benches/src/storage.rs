//! Storage benchmark: one large file up and down, and many small files from
//! many concurrent clients, against Wharf with local storage on one node,
//! cluster storage on one node, cluster storage on three nodes (R=3), and
//! vsftpd on one node when it is installed — the same client, same run.
//!
//! `cargo build --release -p wharf -p wharf-benches && target/release/bench-storage`
//! prints a Markdown report for `benches/README.md`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use wharf_benches::harness::{free_port, ms, percentile, start_cluster, wait_for_greeting, Node};
use wharf_benches::payload::payload;
use wharf_client::Session;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = "target/release/wharf")]
    wharf: PathBuf,
    /// vsftpd binary for the peer column; skipped when absent.
    #[arg(long, default_value = "/usr/sbin/vsftpd")]
    vsftpd: PathBuf,
    /// Size of the large file, MiB.
    #[arg(long, default_value_t = 1024)]
    large_mib: usize,
    /// Concurrent clients for the small-file ingestion.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Files each client uploads (one session per client).
    #[arg(long, default_value_t = 16)]
    files: usize,
    /// Size of each small file, KiB.
    #[arg(long, default_value_t = 4)]
    file_kib: usize,
    /// Which servers to measure.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "local,cluster-1,cluster-3,vsftpd"
    )]
    servers: Vec<String>,
}

/// How long one server's measurements may take before it is reported failed.
const SERVER_TIMEOUT: Duration = Duration::from_secs(900);

const USER: &str = "bench";
const PASSWORD: &str = "bench";

/// A server under test: its FTP ports (one per node) and what to stop.
struct Deployment {
    name: String,
    ports: Vec<u16>,
    _nodes: Vec<Node>,
    peer: Option<Child>,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if let Some(mut child) = self.peer.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn wharf(bin: &Path, root: &Path, nodes: usize, storage: &str) -> Result<Deployment> {
    let dir = root.join(format!("wharf-{storage}-{nodes}"));
    std::fs::create_dir_all(&dir)?;
    let extra = ["--storage", storage, "--max-connections", "1000"];
    let nodes = start_cluster(bin, &dir, nodes, &extra).await?;
    Ok(Deployment {
        name: format!(
            "wharf {storage}, {} node{}",
            nodes.len(),
            if nodes.len() > 1 { "s, R=3" } else { "" }
        ),
        ports: nodes.iter().map(|n| n.ftp_port).collect(),
        _nodes: nodes,
        peer: None,
    })
}

/// vsftpd with TLS required for logins and data, session reuse required,
/// logging in a local system user made for the run.
fn vsftpd(bin: &Path, root: &Path) -> Result<Deployment> {
    let dir = root.join("vsftpd");
    let home = dir.join("home");
    std::fs::create_dir_all(&home)?;
    let ok = |cmd: &mut Command| cmd.status().map(|s| s.success()).unwrap_or(false);
    let exists = ok(Command::new("id").arg(USER).stdout(Stdio::null()));
    let useradd = ["--no-create-home", "--shell", "/bin/sh", USER];
    if !exists && !ok(Command::new("useradd").args(useradd)) {
        bail!("cannot create the system user {USER} (needs root)");
    }
    let mut chpasswd = Command::new("chpasswd").stdin(Stdio::piped()).spawn()?;
    std::io::Write::write_all(
        chpasswd.stdin.as_mut().context("chpasswd stdin")?,
        format!("{USER}:{PASSWORD}\n").as_bytes(),
    )?;
    chpasswd.wait()?;
    ok(Command::new("chown").arg(USER).arg(&home));
    ok(Command::new("usermod").args(["-d"]).arg(&home).arg(USER));
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if !ok(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null()))
    {
        bail!("openssl could not make a certificate for vsftpd");
    }
    std::fs::create_dir_all("/var/run/vsftpd/empty")?;
    let port = free_port()?;
    let config = dir.join("vsftpd.conf");
    std::fs::write(
        &config,
        format!(
            "listen=YES\nlisten_address=127.0.0.1\nlisten_port={port}\nbackground=NO\n\
             anonymous_enable=NO\nlocal_enable=YES\nwrite_enable=YES\nlocal_umask=022\n\
             ssl_enable=YES\nrsa_cert_file={}\nrsa_private_key_file={}\n\
             force_local_logins_ssl=YES\nforce_local_data_ssl=YES\nrequire_ssl_reuse=YES\n\
             pasv_enable=YES\npasv_min_port=47000\npasv_max_port=47999\n\
             max_clients=1000\nmax_per_ip=1000\nseccomp_sandbox=NO\n\
             secure_chroot_dir=/var/run/vsftpd/empty\npam_service_name=vsftpd\n\
             xferlog_enable=NO\nconnect_from_port_20=NO\n",
            cert.display(),
            key.display()
        ),
    )?;
    let child = Command::new(bin)
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("vsftpd.log"))?)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let deployment = Deployment {
        name: "vsftpd, 1 node".into(),
        ports: vec![port],
        _nodes: Vec::new(),
        peer: Some(child),
    };
    wait_for_greeting(port)?;
    Ok(deployment)
}

fn mib_per_s(bytes: usize, took: Duration) -> String {
    format!(
        "{:.1} MiB/s",
        bytes as f64 / (1024.0 * 1024.0) / took.as_secs_f64()
    )
}

/// STOR through the first node, RETR through the last (another node when
/// there are several). Returns the two table cells.
async fn large(d: &Deployment, data: &[u8]) -> Result<(String, String)> {
    let mut up = Session::login(d.ports[0], USER, PASSWORD).await?;
    let start = Instant::now();
    up.store("large.bin", data).await?;
    let stored = start.elapsed();
    up.quit().await;
    let mut down = Session::login(*d.ports.last().expect("a port"), USER, PASSWORD).await?;
    let start = Instant::now();
    let got = down.retrieve("large.bin").await?;
    let fetched = start.elapsed();
    down.quit().await;
    if got != data.len() as u64 {
        bail!("RETR returned {got} bytes, expected {}", data.len());
    }
    Ok((
        mib_per_s(data.len(), stored),
        mib_per_s(data.len(), fetched),
    ))
}

/// `clients` sessions spread over the nodes, each storing `files` files.
/// Returns files/s and the per-STOR latencies.
async fn small(d: &Deployment, args: &Args) -> Result<(f64, Vec<Duration>)> {
    let data = Arc::new(payload(args.file_kib * 1024, 7));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let port = d.ports[c % d.ports.len()];
        let (data, files) = (data.clone(), args.files);
        tasks.push(tokio::spawn(async move {
            let mut session = Session::login(port, USER, PASSWORD).await?;
            let mut latencies = Vec::with_capacity(files);
            for f in 0..files {
                let t = Instant::now();
                session.store(&format!("small-{c}-{f}.bin"), &data).await?;
                latencies.push(t.elapsed());
            }
            session.quit().await;
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let rate = all.len() as f64 / start.elapsed().as_secs_f64();
    all.sort();
    Ok((rate, all))
}

async fn measure(d: &Deployment, args: &Args, large_data: &[u8], rows: &mut Vec<String>) {
    eprintln!("measuring {} ...", d.name);
    let both = async {
        let (stor, retr) = large(d, large_data).await?;
        let (rate, latencies) = small(d, args).await?;
        anyhow::Ok((stor, retr, rate, latencies))
    };
    let (stor, retr, rate, latencies) = match tokio::time::timeout(SERVER_TIMEOUT, both).await {
        Ok(Ok(figures)) => figures,
        Ok(Err(e)) => return rows.push(format!("| {} | failed: {e:#} | | | | |", d.name)),
        Err(_) => return rows.push(format!("| {} | timed out | | | | |", d.name)),
    };
    rows.push(format!(
        "| {} | {stor} | {retr} | {rate:.0} files/s | {} | {} |",
        d.name,
        ms(percentile(&latencies, 50)),
        ms(percentile(&latencies, 99)),
    ));
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let root = tempfile::Builder::new().prefix("wharf-bench-storage-").tempdir()?;
        let large_data = payload(args.large_mib * 1024 * 1024, 42);
        let mut rows = vec![
            format!(
                "| server | STOR {0} MiB | RETR {0} MiB | {1} clients × {2} files of {3} KiB | p50 per file | p99 per file |",
                args.large_mib, args.clients, args.files, args.file_kib
            ),
            "| --- | --- | --- | --- | --- | --- |".to_owned(),
        ];
        let wanted = |name: &str| args.servers.iter().any(|s| s == name);
        for (name, nodes, storage) in [("local", 1, "local"), ("cluster-1", 1, "cluster"), ("cluster-3", 3, "cluster")] {
            if wanted(name) {
                let d = wharf(&args.wharf, root.path(), nodes, storage).await?;
                measure(&d, &args, &large_data, &mut rows).await;
            }
        }
        if !wanted("vsftpd") {
        } else if args.vsftpd.exists() {
            match vsftpd(&args.vsftpd, root.path()) {
                Ok(d) => measure(&d, &args, &large_data, &mut rows).await,
                Err(e) => rows.push(format!("| vsftpd | skipped: {e} | | | | |")),
            }
        } else {
            rows.push(format!("| vsftpd | skipped: {} not installed | | | | |", args.vsftpd.display()));
        }
        println!("{}", rows.join("\n"));
        anyhow::Ok(())
    })
}
