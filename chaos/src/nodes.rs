//! The `wharf` nodes of a chaos run, processes (one per namespace, or on
//! loopback) or containers, and what the faults do to them: SIGKILL,
//! SIGSTOP/SIGCONT (a container's freezer), SIGTERM and restart. Their state
//! is read from each node's `/metrics`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::containers::{docker, Compose};
use crate::net::{node_ip, Network, CLUSTER_PORT};

pub const USER: &str = "chaos";
pub const PASSWORD: &str = "chaos-Monkey-7";
const FTP_PORT: u16 = 2121;
const HTTP_PORT: u16 = 9180;

pub struct Node {
    pub index: usize,
    pub data_dir: PathBuf,
    runner: Runner,
}

enum Runner {
    Process {
        args: Vec<String>,
        prefix: Vec<String>,
        /// Environment for the process (libfaketime for the clock scenario).
        env: Vec<(String, String)>,
        child: Option<Child>,
    },
    Container {
        compose: Arc<Compose>,
        running: bool,
    },
}

impl Node {
    pub fn ftp(&self) -> SocketAddr {
        SocketAddr::from((node_ip(self.index), FTP_PORT))
    }

    pub fn log(&self) -> PathBuf {
        self.data_dir.with_extension("log")
    }

    fn spawn(&mut self, wharf: &Path) -> Result<()> {
        let log_file = self.log();
        let (args, prefix, env, child) = match &mut self.runner {
            Runner::Container { compose, running } => {
                docker(&["start", compose.id(self.index)])?;
                *running = true;
                return Ok(());
            }
            Runner::Process {
                args,
                prefix,
                env,
                child,
            } => (args, prefix, env, child),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_file)?;
        let mut command = match prefix.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(wharf);
                c
            }
            None => Command::new(wharf),
        };
        let spawned = command
            .args(args.iter())
            .envs(env.iter().map(|(k, v)| (k, v)))
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
        *child = Some(spawned);
        Ok(())
    }

    fn signal(&self, signal: libc::c_int) -> Result<()> {
        let child = match &self.runner {
            Runner::Process { child, .. } => child.as_ref().context("node is not running")?,
            Runner::Container { compose, .. } => {
                let verb = match signal {
                    libc::SIGSTOP => "pause",
                    libc::SIGCONT => "unpause",
                    libc::SIGTERM => "stop",
                    _ => "kill",
                };
                let mut args = vec![verb];
                if verb == "stop" {
                    args.extend(["--time", "60"]);
                }
                args.push(compose.id(self.index));
                docker(&args)?;
                return Ok(());
            }
        };
        // SAFETY: kill(2) on our own child's pid; `ip netns exec` execs the
        // program, so the pid is wharf's.
        if unsafe { libc::kill(child.id() as libc::pid_t, signal) } != 0 {
            bail!("cannot signal node {}", self.index);
        }
        Ok(())
    }

    pub fn is_running(&self) -> bool {
        match &self.runner {
            Runner::Process { child, .. } => child.is_some(),
            Runner::Container { running, .. } => *running,
        }
    }

    /// Stops the node at once (SIGKILL) and waits until it is gone.
    fn kill(&mut self) -> Result<()> {
        match &mut self.runner {
            Runner::Process { child, .. } => {
                if let Some(mut child) = child.take() {
                    child.kill()?;
                    child.wait()?;
                }
            }
            Runner::Container { compose, running } => {
                if std::mem::take(running) {
                    docker(&["kill", "--signal", "KILL", compose.id(self.index)])?;
                }
            }
        }
        Ok(())
    }

    /// Whether the node exited by itself, and how.
    fn exited(&mut self) -> Result<Option<String>> {
        match &mut self.runner {
            Runner::Process { child, .. } => {
                let Some(c) = child.as_mut() else {
                    return Ok(None);
                };
                let status = c.try_wait()?;
                if status.is_some() {
                    *child = None;
                }
                Ok(status.map(|s| s.to_string()))
            }
            Runner::Container { compose, running } => {
                if !*running {
                    return Ok(None);
                }
                let how = compose.state(self.index)?.err();
                if how.is_some() {
                    *running = false;
                }
                Ok(how)
            }
        }
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
        containers: Option<Arc<Compose>>,
        storage: &[String],
        env_of: impl Fn(usize) -> Vec<(String, String)>,
    ) -> Result<Cluster> {
        let mut cluster = Cluster {
            nodes: Vec::new(),
            wharf: wharf.to_owned(),
        };
        if let Some(compose) = containers {
            for i in 1..=size {
                let node = Node {
                    index: i,
                    data_dir: root.join(format!("node{i}")),
                    runner: Runner::Container {
                        compose: compose.clone(),
                        running: true,
                    },
                };
                wait_for(&format!("node {i} ready"), Duration::from_secs(120), || {
                    node.ready()
                })
                .await?;
                cluster.nodes.push(node);
            }
            cluster.wait_until_settled(Duration::from_secs(60)).await?;
            return Ok(cluster);
        }
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
                "--pasv-ports".into(),
                "50000-50199".into(),
                "--max-per-ip".into(),
                "1000".into(),
                "--server-name".into(),
                ip.to_string(),
            ]
            .into();
            args.extend(net.cluster_args(i));
            args.extend(storage.iter().cloned());
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
                runner: Runner::Process {
                    args,
                    prefix: net.exec_in(i),
                    env: env_of(i),
                    child: None,
                },
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
        self.node(i).kill()
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
        let child = match &mut node.runner {
            Runner::Process { child, .. } => child.take(),
            Runner::Container { running, .. } => {
                // `docker stop` returns once the container has exited.
                *running = false;
                return Ok(());
            }
        };
        let mut child = child.context("not running")?;
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
            if let Some(how) = node.exited()? {
                crashed.push((node.index, how));
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

    /// Runs `wharf ARGS --data-dir DIR` on node 1's data directory: on the
    /// host, or in its container with containers.
    pub fn admin(&self, args: &[&str]) -> Result<std::process::Output> {
        let node = &self.nodes[0];
        match &node.runner {
            Runner::Process { .. } => Ok(Command::new(&self.wharf)
                .args(args)
                .arg("--data-dir")
                .arg(&node.data_dir)
                .output()
                .context("cannot run wharf")?),
            Runner::Container { compose, .. } => {
                let quoted: Vec<String> = args
                    .iter()
                    .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
                    .collect();
                let script = format!("wharf {} --data-dir /var/lib/wharf", quoted.join(" "));
                compose.exec(1, "wharf", &script)
            }
        }
    }

    /// Fills node `i`'s disk (a tmpfs) with a file of zeros.
    pub fn fill_disk(&self, i: usize) -> Result<()> {
        let node = &self.nodes[i - 1];
        match &node.runner {
            Runner::Process { .. } => fill(&node.data_dir.join(FILLER)),
            Runner::Container { compose, .. } => {
                // `cat` ends with "No space left on device", as it should.
                let _ = compose.exec(
                    i,
                    "wharf",
                    &format!("cat /dev/zero > /var/lib/wharf/{FILLER}"),
                )?;
                Ok(())
            }
        }
    }

    pub fn free_disk(&self, i: usize) -> Result<()> {
        let node = &self.nodes[i - 1];
        match &node.runner {
            Runner::Process { .. } => Ok(std::fs::remove_file(node.data_dir.join(FILLER))?),
            Runner::Container { compose, .. } => {
                let out = compose.exec(i, "wharf", &format!("rm /var/lib/wharf/{FILLER}"))?;
                if !out.status.success() {
                    bail!(
                        "cannot remove the filler: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                Ok(())
            }
        }
    }
}

const FILLER: &str = "filler";

/// Writes zeros to `path` until the file system is full.
fn fill(path: &Path) -> Result<()> {
    let mut file = std::fs::File::create(path)?;
    let block = vec![0u8; 1 << 20];
    loop {
        match file.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            match &mut node.runner {
                Runner::Process { child, .. } => {
                    if let Some(mut child) = child.take() {
                        // A paused process must be continued to die of SIGKILL promptly.
                        // SAFETY: signals to our own child.
                        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGCONT) };
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                }
                Runner::Container { compose, .. } => {
                    // The project comes down with its last handle; a paused
                    // container would hold it up.
                    let _ = docker(&["unpause", compose.id(node.index)]);
                }
            }
        }
    }
}
