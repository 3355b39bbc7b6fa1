//! What the benchmarks share: real `wharf` processes started on 127.0.0.1
//! (one node or a cluster), and figures formatted for the README.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use wharf_cluster::admin_client::{AdminAccess, AdminClient};
use wharf_cluster::pb;

/// One `wharf serve` process and what is needed to restart it.
pub struct Node {
    pub args: Vec<String>,
    pub data_dir: PathBuf,
    pub ftp_port: u16,
    pub cluster_addr: String,
    child: Option<Child>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Node {
    pub fn spawn(&mut self, bin: &Path) -> Result<()> {
        let log = std::fs::File::create(self.data_dir.with_extension("log"))?;
        let child = Command::new(bin)
            .args(&self.args)
            .env("WHARF_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        self.child = Some(child);
        wait_for_greeting(self.ftp_port)
    }

    /// Sends SIGKILL and returns at once (the clock of an election starts here).
    pub fn kill_now(&mut self) -> Result<()> {
        self.child
            .as_mut()
            .context("node not running")?
            .kill()
            .context("cannot kill the node")
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn node_id(&self) -> Result<u64> {
        let path = self.data_dir.join("cluster").join("node_id");
        Ok(std::fs::read_to_string(&path)?.trim().parse()?)
    }

    pub async fn admin(&self) -> Result<AdminClient> {
        let data_dir = self.data_dir.clone();
        Ok(AdminClient::connect(AdminAccess::Local { data_dir }).await?)
    }

    pub async fn status(&self) -> Result<pb::StatusReply> {
        Ok(self.admin().await?.status().await?)
    }
}

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn wait_for_greeting(port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
            let mut line = String::new();
            if BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("220") {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("no FTP greeting on port {port} within 60 s")
}

/// Node `n` of a benchmark cluster under `root`, with `extra` arguments.
pub fn node(root: &Path, n: usize, join: Option<(&str, &str)>, extra: &[&str]) -> Result<Node> {
    let data_dir = root.join(format!("node{n}"));
    let (ftp_port, implicit, cluster) = (free_port()?, free_port()?, free_port()?);
    let pasv = 46000 + 100 * n as u16;
    let cluster_addr = format!("127.0.0.1:{cluster}");
    let mut args: Vec<String> = [
        "serve",
        "--data-dir",
        &data_dir.display().to_string(),
        "--listen",
        &format!("127.0.0.1:{ftp_port}"),
        "--implicit-listen",
        &format!("127.0.0.1:{implicit}"),
        "--pasv-ports",
        &format!("{pasv}-{}", pasv + 99),
        "--cluster-listen",
        &cluster_addr,
        "--max-per-ip",
        "1000",
        "--http-listen",
        "off",
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect();
    match join {
        Some((addr, token)) => args.extend([
            "--join".into(),
            addr.into(),
            "--join-token".into(),
            token.into(),
        ]),
        None => args.extend(["--user".into(), "bench:bench".into()]),
    }
    Ok(Node {
        args,
        data_dir,
        ftp_port,
        cluster_addr,
        child: None,
    })
}

/// Starts `size` nodes (the first bootstraps, the others join) and waits
/// until all of them vote.
pub async fn start_cluster(
    bin: &Path,
    root: &Path,
    size: usize,
    extra: &[&str],
) -> Result<Vec<Node>> {
    let mut first = node(root, 1, None, extra)?;
    first.spawn(bin)?;
    let token_file = first.data_dir.join("cluster").join("join_token");
    let token = std::fs::read_to_string(&token_file)?.trim().to_owned();
    let mut nodes = vec![first];
    for n in 2..=size {
        let mut joiner = node(root, n, Some((&nodes[0].cluster_addr, &token)), extra)?;
        joiner.spawn(bin)?;
        // After its first start a node rejoins by its data dir alone.
        joiner.args.truncate(joiner.args.len() - 4);
        nodes.push(joiner);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = nodes[0].status().await?;
        if status.members.iter().filter(|m| m.role == "voter").count() == size {
            return Ok(nodes);
        }
        if Instant::now() > deadline {
            bail!("the cluster did not reach {size} voters: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
