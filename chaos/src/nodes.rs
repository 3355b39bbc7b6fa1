//! The `wharf` processes of a chaos run, one per namespace, and what the
//! faults do to them: SIGKILL, SIGSTOP/SIGCONT, SIGTERM and restart. Their
//! state is read from each node's `/metrics`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::net::{node_ip, Network};

pub const USER: &str = "chaos";
pub const PASSWORD: &str = "chaos-Monkey-7";
const FTP_PORT: u16 = 2121;
const HTTP_PORT: u16 = 9180;
const CLUSTER_PORT: u16 = 7000;

pub struct Node {
    pub index: usize,
    pub data_dir: PathBuf,
    args: Vec<String>,
    prefix: Vec<String>,
    /// Environment for the process (libfaketime for the clock scenario).
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Node {
    pub fn ftp(&self) -> SocketAddr {
        SocketAddr::from((node_ip(self.index), FTP_PORT))
    }

    pub fn log(&self) -> PathBuf {
        self.data_dir.with_extension("log")
    }

    fn spawn(&mut self, wharf: &Path) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())?;
        let mut command = match self.prefix.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(wharf);
                c
            }
            None => Command::new(wharf),
        };
        let child = command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            // The nodes' log level: WHARF_LOG as given to wharf-chaos, if set.
            .env(
                "WHARF_LOG",
                std::env::var("WHARF_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start node {}", self.index))?;
        self.child = Some(child);
        Ok(())
    }

    fn signal(&self, signal: libc::c_int) -> Result<()> {
        let child = self.child.as_ref().context("node is not running")?;
        // SAFETY: kill(2) on our own child's pid; `ip netns exec` execs the
        // program, so the pid is wharf's.
        if unsafe { libc::kill(child.id() as libc::pid_t, signal) } != 0 {
            bail!("cannot signal node {}", self.index);
        }
        Ok(())
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn ready(&self) -> bool {
        ready(self.index)
    }

    pub fn metrics(&self) -> Option<Metrics> {
        metrics(self.index)
    }
}

/// `GET path` on node `i`'s HTTP endpoint: (status, body).
pub fn http_get(i: usize, path: &str) -> Result<(u16, String)> {
    let wait = Duration::from_secs(1);
    let address = SocketAddr::from((node_ip(i), HTTP_PORT));
    let mut stream = TcpStream::connect_timeout(&address, wait)?;
    stream.set_read_timeout(Some(wait))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: node\r\n\r\n")?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status")?;
    Ok((status, body.to_owned()))
}

pub fn ready(i: usize) -> bool {
    http_get(i, "/readyz").is_ok_and(|(s, _)| s == 200)
}

pub fn metrics(i: usize) -> Option<Metrics> {
    let (status, body) = http_get(i, "/metrics").ok()?;
    (status == 200).then(|| Metrics::parse(&body))
}

/// What the chaos checker reads off `/metrics`.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    pub term: u64,
    pub is_leader: bool,
    pub applied: u64,
}

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let value = |name: &str| {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(name)?
                        .strip_prefix(' ')?
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
                .unwrap_or(0.0) as u64
        };
        Metrics {
            term: value("wharf_raft_term"),
            is_leader: value("wharf_raft_is_leader") == 1,
            applied: value("wharf_raft_applied_index"),
        }
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    wharf: PathBuf,
}

async fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !ok() {
        if Instant::now() > deadline {
            bail!("{what}: not within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

impl Cluster {
    /// Starts `size` nodes under `root`: node 1 creates the cluster with the
    /// workload's account, the others join it; returns once all are ready.
    /// `env_of(i)` gives extra environment for node i.
    pub async fn start(
        wharf: &Path,
        net: &Network,
        root: &Path,
        size: usize,
        env_of: impl Fn(usize) -> Vec<(String, String)>,
    ) -> Result<Cluster> {
        let mut cluster = Cluster {
            nodes: Vec::new(),
            wharf: wharf.to_owned(),
        };
        for i in 1..=size {
            let data_dir = root.join(format!("node{i}"));
            std::fs::create_dir_all(&data_dir)?;
            let ip = node_ip(i);
            let mut args: Vec<String> = [
                "serve".to_owned(),
                "--data-dir".into(),
                data_dir.display().to_string(),
                "--listen".into(),
                format!("{ip}:{FTP_PORT}"),
                "--implicit-listen".into(),
                "off".into(),
                "--http-listen".into(),
                format!("{ip}:{HTTP_PORT}"),
                "--cluster-listen".into(),
                format!("{ip}:{CLUSTER_PORT}"),
                "--pasv-ports".into(),
                "50000-50199".into(),
                "--storage".into(),
                "cluster".into(),
                "--max-per-ip".into(),
                "1000".into(),
                "--server-name".into(),
                ip.to_string(),
            ]
            .into();
            if i == 1 {
                args.extend(["--user".into(), format!("{USER}:{PASSWORD}")]);
            } else {
                let token_file = cluster.nodes[0].data_dir.join("cluster").join("join_token");
                args.extend([
                    "--join".into(),
                    format!("{}:{CLUSTER_PORT}", node_ip(1)),
                    "--join-token-file".into(),
                    token_file.display().to_string(),
                ]);
            }
            let mut node = Node {
                index: i,
                data_dir,
                args,
                prefix: net.exec_in(i),
                env: env_of(i),
                child: None,
            };
            node.spawn(wharf)?;
            wait_for(&format!("node {i} ready"), Duration::from_secs(60), || {
                node.ready()
            })
            .await?;
            cluster.nodes.push(node);
        }
        cluster.wait_until_settled(Duration::from_secs(60)).await?;
        Ok(cluster)
    }

    fn node(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i - 1]
    }

    /// The index of the node that says it leads, if one does.
    pub fn leader(&self) -> Option<usize> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .find(|n| n.metrics().is_some_and(|m| m.is_leader))
            .map(|n| n.index)
    }

    pub fn followers(&self) -> Vec<usize> {
        let leader = self.leader();
        self.nodes
            .iter()
            .map(|n| n.index)
            .filter(|&i| Some(i) != leader)
            .collect()
    }

    pub fn kill(&mut self, i: usize) -> Result<()> {
        let node = self.node(i);
        if let Some(mut child) = node.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    pub fn pause(&mut self, i: usize) -> Result<()> {
        self.node(i).signal(libc::SIGSTOP)
    }

    pub fn resume(&mut self, i: usize) -> Result<()> {
        self.node(i).signal(libc::SIGCONT)
    }

    /// SIGTERM, then wait for the process to exit (transfers finish first).
    pub async fn terminate(&mut self, i: usize) -> Result<()> {
        let node = self.node(i);
        node.signal(libc::SIGTERM)?;
        let mut child = node.child.take().context("not running")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                child.kill()?;
                bail!("node {i} did not exit within 60 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Starts a stopped node again and waits until it is ready.
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        let wharf = self.wharf.clone();
        let node = self.node(i);
        node.spawn(&wharf)?;
        let node = &self.nodes[i - 1];
        wait_for(
            &format!("node {i} ready after restart"),
            Duration::from_secs(90),
            || node.ready(),
        )
        .await
    }

    /// Restarts nodes whose process exited on its own (a crash); returns
    /// them with how they exited.
    pub async fn revive_crashed(&mut self) -> Result<Vec<(usize, String)>> {
        let mut crashed = Vec::new();
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    node.child = None;
                    crashed.push((node.index, status.to_string()));
                }
            }
        }
        for (i, _) in &crashed {
            self.restart(*i).await?;
        }
        Ok(crashed)
    }

    /// Every node ready and at the same applied index.
    pub async fn wait_until_settled(&self, limit: Duration) -> Result<()> {
        wait_for("every node ready and caught up", limit, || {
            let applied: Option<Vec<u64>> = self
                .nodes
                .iter()
                .map(|n| n.ready().then(|| n.metrics().map(|m| m.applied)).flatten())
                .collect();
            applied.is_some_and(|a| a.windows(2).all(|w| w[0] == w[1]))
        })
        .await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                // A paused process must be continued to die of SIGKILL promptly.
                // SAFETY: signals to our own child.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGCONT) };
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
