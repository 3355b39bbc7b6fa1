//! `wharf-bench`: the load generator of the peer comparison
//! (`benches/compare.sh`). It speaks explicit FTPS with PROT P to whatever
//! server listens on the ports it is given, so every server meets the same
//! client: rustls, TLS 1.3 by default, data connections resuming the
//! control session. Each scenario prints its figures as tab-separated lines
//! `label scenario metric value` on stdout (what `report` turns into a
//! table) and a readable summary on stderr.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};
use tokio::sync::Semaphore;
use wharf_benches::harness::percentile;
use wharf_benches::payload::payload;
use wharf_benches::{cpu, memory, report};
use wharf_client::{refusal, Connector, Session, TlsVersion};

#[derive(Parser, Debug)]
#[command(
    name = "wharf-bench",
    about = "FTPS load generator for the peer comparison"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One client downloads one large file (uploaded first when missing).
    RetrLarge {
        #[command(flatten)]
        target: Target,
        /// Size of the file, MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: usize,
    },
    /// One client uploads one large file.
    StorLarge {
        #[command(flatten)]
        target: Target,
        /// Size of the file, MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: usize,
    },
    /// Concurrent clients loop connect, AUTH TLS, login, PWD, QUIT.
    Sessions {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// How long the clients loop, seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Every control connection does a full handshake (no tickets, no
        /// session IDs kept).
        #[arg(long)]
        no_resumption: bool,
    },
    /// Concurrent clients, one session each, upload small files.
    IngestSmall {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Files each client uploads.
        #[arg(long, default_value_t = 32)]
        files: usize,
        #[arg(long, default_value_t = 4)]
        size_kib: usize,
    },
    /// Opens logged-in TLS control sessions, holds them, and measures the
    /// server's memory (its process and all its descendants).
    Idle {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 10_000)]
        sessions: usize,
        /// The server's top process.
        #[arg(long)]
        server_pid: u32,
        /// How long the sessions are held before they are checked, seconds.
        #[arg(long, default_value_t = 10)]
        hold: u64,
        /// Sessions being opened at once (vsftpd listens with a backlog
        /// of 32: more connects at once than that get lost).
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Stop opening sessions when the machine has less memory available, MiB.
        #[arg(long, default_value_t = 2048)]
        min_available_mib: u64,
    },
    /// Clients upload small files of distinct contents into a growing
    /// namespace; per step it reports the rate, p99 and each node's disk
    /// and memory.
    Namespace {
        #[command(flatten)]
        target: Target,
        /// Files in all.
        #[arg(long, default_value_t = 1_000_000)]
        files: usize,
        /// Files per reported step.
        #[arg(long, default_value_t = 100_000)]
        step: usize,
        #[arg(long, default_value_t = 8)]
        clients: usize,
        #[arg(long, default_value_t = 1)]
        size_kib: usize,
        /// Files per directory (`ns/d0`, `ns/d1`, …).
        #[arg(long, default_value_t = 200_000)]
        per_dir: usize,
        /// The nodes' data directories, measured after every step.
        #[arg(long, value_delimiter = ',')]
        data_dir: Vec<PathBuf>,
        /// The nodes' processes, whose RSS is read after every step.
        #[arg(long, value_delimiter = ',')]
        node_pid: Vec<u32>,
        /// No new step starts after this many seconds (0: no limit).
        #[arg(long, default_value_t = 0)]
        max_seconds: u64,
        /// The first file's number: a run that adds to a namespace an
        /// earlier run left (its directories must exist).
        #[arg(long, default_value_t = 0)]
        first: usize,
        /// After each step, DELE this many of the files stored so far,
        /// spread over all of them (never the same file twice).
        #[arg(long, default_value_t = 0)]
        deletes: usize,
        /// Processes beside the server whose CPU is reported per file too
        /// (an object store's gateway and OSD).
        #[arg(long, value_delimiter = ',')]
        gateway_pid: Vec<u32>,
    },
    /// Times one listing of a directory (on the first node), sampling the
    /// server's RSS while it runs.
    ListDir {
        #[command(flatten)]
        target: Target,
        dir: String,
        #[arg(long, default_value = "MLSD")]
        verb: String,
        #[arg(long)]
        server_pid: u32,
    },
    /// Judges the targets of DESIGN.md §10 on the lines the scenarios printed.
    Targets {
        results: PathBuf,
        #[arg(long, default_value = "vsftpd")]
        baseline: String,
        /// The label of Wharf on one node.
        #[arg(long, default_value = "wharf")]
        single: String,
        /// The label of Wharf on three nodes.
        #[arg(long, default_value = "wharf-3")]
        cluster: String,
    },
    /// Renders the lines the scenarios printed as Markdown tables.
    Report {
        /// The scenarios' output lines.
        results: PathBuf,
        /// The label every ratio is taken against.
        #[arg(long, default_value = "vsftpd")]
        baseline: String,
    },
}

#[derive(ClapArgs, Debug, Clone)]
struct Target {
    /// The server's FTP control port(s) on --host; with several (a
    /// cluster's nodes) uploads go to the first, downloads to the last and
    /// concurrent clients are spread over all.
    #[arg(long, value_delimiter = ',', required = true)]
    port: Vec<u16>,
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    #[arg(long, default_value = "bench")]
    user: String,
    #[arg(long, default_value = "bench")]
    password: String,
    #[arg(long, value_enum, default_value_t = Tls::Tls13)]
    tls: Tls,
    /// Names the server in the output lines.
    #[arg(long, default_value = "server")]
    label: String,
    /// The server's processes (each with its descendants: a cluster's
    /// nodes, a forking server's top process): their CPU time during the
    /// scenario is reported per unit of work.
    #[arg(long, value_delimiter = ',')]
    cpu_of: Vec<u32>,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum Tls {
    Tls12,
    Tls13,
}

impl Target {
    fn version(&self) -> TlsVersion {
        match self.tls {
            Tls::Tls12 => TlsVersion::Tls12,
            Tls::Tls13 => TlsVersion::Tls13,
        }
    }

    fn node(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.host, self.port[i % self.port.len()])
    }

    fn last(&self) -> SocketAddr {
        self.node(self.port.len() - 1)
    }

    /// A logged-in session ready for transfers, with a connector of its own.
    async fn session(&self, node: SocketAddr) -> Result<Session> {
        let connector = Connector::new(self.version(), true)?;
        let mut session = Session::open(node, &self.user, &self.password, &connector).await?;
        session.prepare_transfers().await?;
        Ok(session)
    }

    fn emit(&self, scenario: &str, metric: &str, value: f64) {
        println!("{}\t{scenario}\t{metric}\t{value:.3}", self.label);
    }

    /// The server's CPU seconds so far (nothing without `--cpu-of`).
    fn server_cpu(&self) -> Result<Option<f64>> {
        if self.cpu_of.is_empty() {
            return Ok(None);
        }
        cpu::of_trees(&self.cpu_of).map(Some)
    }

    /// Emits the server's CPU since `before` (seconds, times `scale`) per
    /// unit of work, as `metric`.
    fn emit_cpu(
        &self,
        scenario: &str,
        before: Option<f64>,
        metric: &str,
        scale: f64,
        units: f64,
    ) -> Result<()> {
        let (Some(before), Some(now)) = (before, self.server_cpu()?) else {
            return Ok(());
        };
        if units > 0.0 {
            self.emit(scenario, metric, (now - before) * scale / units);
        }
        Ok(())
    }
}

const LARGE_NAME: &str = "wharf-bench-large.bin";

const CPU_PER_GIB: &str = "server CPU s/GiB";

fn gib(mib: usize) -> f64 {
    mib as f64 / 1024.0
}

fn mib_per_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / took.as_secs_f64()
}

async fn stor_large(target: &Target, size_mib: usize) -> Result<()> {
    let data = payload(size_mib << 20, 42);
    let mut session = target.session(target.node(0)).await?;
    let cpu = target.server_cpu()?;
    let start = Instant::now();
    session.store(LARGE_NAME, &data).await?;
    let rate = mib_per_s(data.len(), start.elapsed());
    target.emit_cpu("stor-large", cpu, CPU_PER_GIB, 1.0, gib(size_mib))?;
    session.quit().await;
    eprintln!("{}: STOR {size_mib} MiB at {rate:.1} MiB/s", target.label);
    target.emit("stor-large", "MiB/s", rate);
    Ok(())
}

async fn retr_large(target: &Target, size_mib: usize) -> Result<()> {
    let len = size_mib << 20;
    let mut session = target.session(target.last()).await?;
    if session.size(LARGE_NAME).await? != Some(len as u64) {
        eprintln!("{}: uploading the {size_mib} MiB file first", target.label);
        let mut up = target.session(target.node(0)).await?;
        up.store(LARGE_NAME, &payload(len, 42)).await?;
        up.quit().await;
    }
    let cpu = target.server_cpu()?;
    let start = Instant::now();
    let got = session.retrieve(LARGE_NAME).await?;
    let took = start.elapsed();
    target.emit_cpu("retr-large", cpu, CPU_PER_GIB, 1.0, gib(size_mib))?;
    session.quit().await;
    if got != len as u64 {
        bail!("RETR returned {got} bytes, expected {len}");
    }
    let rate = mib_per_s(len, took);
    eprintln!("{}: RETR {size_mib} MiB at {rate:.1} MiB/s", target.label);
    target.emit("retr-large", "MiB/s", rate);
    Ok(())
}

/// What the clients of a looping scenario saw.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    resumed: usize,
    errors: usize,
    first_error: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.resumed += other.resumed;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// The clients' tallies merged; an error when not one step succeeded.
    async fn gather(tasks: Vec<tokio::task::JoinHandle<Tally>>, nothing: &str) -> Result<Tally> {
        let mut tally = Tally::default();
        for task in tasks {
            tally.merge(task.await?);
        }
        if tally.latencies.is_empty() {
            bail!("{nothing}: {}", tally.first_error.unwrap_or_default());
        }
        Ok(tally)
    }

    /// A logged-in session on `node`, or the failure counted.
    async fn session(&mut self, target: &Target, node: SocketAddr) -> Option<Session> {
        match target.session(node).await {
            Ok(session) => Some(session),
            Err(e) => {
                self.failed(e);
                None
            }
        }
    }

    /// Awaits one operation on `path` and counts it; false when client `c`
    /// must stop (a refusal leaves the session usable; a timeout or a
    /// broken connection does not).
    async fn count(
        &mut self,
        path: &str,
        c: usize,
        op: impl std::future::Future<Output = Result<()>>,
    ) -> bool {
        let t = Instant::now();
        match op.await {
            Ok(()) => self.latencies.push(t.elapsed()),
            Err(e) if refusal(&e).is_some() => self.failed(e),
            Err(e) => {
                self.failed(e.context(format!("client {c} stopped at {path}")));
                return false;
            }
        }
        true
    }

    fn failed(&mut self, e: anyhow::Error) {
        self.errors += 1;
        self.first_error.get_or_insert_with(|| format!("{e:#}"));
    }

    fn emit_latencies(&mut self, target: &Target, scenario: &str) {
        self.latencies.sort();
        if self.latencies.is_empty() {
            return;
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        target.emit(scenario, "p50 ms", ms(percentile(&self.latencies, 50)));
        target.emit(scenario, "p99 ms", ms(percentile(&self.latencies, 99)));
        target.emit(scenario, "errors", self.errors as f64);
        if let Some(e) = &self.first_error {
            eprintln!(
                "{}: {scenario}: {} errors, first: {e}",
                target.label, self.errors
            );
        }
    }
}

async fn one_session(target: &Target, node: SocketAddr, connector: &Connector) -> Result<bool> {
    let mut session = Session::open(node, &target.user, &target.password, connector).await?;
    session.pwd().await?;
    let resumed = session.resumed();
    session.quit().await;
    Ok(resumed)
}

async fn sessions(target: &Target, clients: usize, seconds: u64, resumption: bool) -> Result<()> {
    let scenario = if resumption {
        "sessions-resumed"
    } else {
        "sessions-full"
    };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let cpu = target.server_cpu()?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (target, node) = (target.clone(), target.node(c));
        let connector = Connector::new(target.version(), resumption)?;
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                let t = Instant::now();
                match one_session(&target, node, &connector).await {
                    Ok(resumed) => {
                        tally.latencies.push(t.elapsed());
                        tally.resumed += usize::from(resumed);
                    }
                    Err(e) => {
                        tally.failed(e);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            tally
        }));
    }
    let mut tally = Tally::gather(tasks, "no session completed").await?;
    let done = tally.latencies.len();
    target.emit_cpu(scenario, cpu, "server CPU ms/session", 1000.0, done as f64)?;
    let rate = done as f64 / start.elapsed().as_secs_f64();
    let resumed = 100.0 * tally.resumed as f64 / done as f64;
    eprintln!(
        "{}: {scenario}: {done} sessions, {rate:.0}/s, {resumed:.0}% resumed",
        target.label
    );
    target.emit(scenario, "sessions/s", rate);
    target.emit(scenario, "resumed %", resumed);
    tally.emit_latencies(target, scenario);
    Ok(())
}

async fn ingest_small(
    target: &Target,
    clients: usize,
    files: usize,
    size_kib: usize,
) -> Result<()> {
    let data = Arc::new(payload(size_kib * 1024, 7));
    let cpu = target.server_cpu()?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (target, node, data) = (target.clone(), target.node(c), data.clone());
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let Some(mut session) = tally.session(&target, node).await else {
                return tally;
            };
            for f in 0..files {
                let path = format!("wharf-bench-{c}-{f}.bin");
                if !tally.count(&path, c, session.store(&path, &data)).await {
                    return tally;
                }
            }
            session.quit().await;
            tally
        }));
    }
    let mut tally = Tally::gather(tasks, "no file was stored").await?;
    let done = tally.latencies.len();
    target.emit_cpu(
        "ingest-small",
        cpu,
        "server CPU ms/file",
        1000.0,
        done as f64,
    )?;
    let rate = done as f64 / start.elapsed().as_secs_f64();
    eprintln!(
        "{}: ingest-small: {done} files of {size_kib} KiB from {clients} clients, {rate:.0} files/s",
        target.label
    );
    target.emit("ingest-small", "files/s", rate);
    tally.emit_latencies(target, "ingest-small");
    Ok(())
}

struct IdleSettings {
    sessions: usize,
    server_pid: u32,
    hold: Duration,
    concurrency: usize,
    min_available_kib: u64,
}

async fn idle(target: &Target, settings: IdleSettings) -> Result<()> {
    memory::raise_open_files(settings.sessions as u64 + 256)?;
    let before = memory::of_tree(settings.server_pid)?;
    let gate = Arc::new(Semaphore::new(settings.concurrency));
    let mut tasks = Vec::with_capacity(settings.sessions);
    let mut stopped_early = None;
    for i in 0..settings.sessions {
        let permit = gate.clone().acquire_owned().await?;
        if i % 256 == 0 {
            let available = memory::available_kib()?;
            if available < settings.min_available_kib {
                stopped_early = Some(available);
                break;
            }
        }
        let (target, node) = (target.clone(), target.node(0));
        tasks.push(tokio::spawn(async move {
            let session = target.session(node).await;
            drop(permit);
            session
        }));
    }
    let mut held = Vec::with_capacity(tasks.len());
    let mut tally = Tally::default();
    for task in tasks {
        match task.await? {
            Ok(session) => held.push(session),
            Err(e) => tally.failed(e),
        }
    }
    if let Some(available) = stopped_early {
        eprintln!(
            "{}: idle: stopped opening at {} sessions: {} MiB available",
            target.label,
            held.len(),
            available / 1024
        );
    }
    if held.is_empty() {
        bail!(
            "no session opened: {}",
            tally.first_error.unwrap_or_default()
        );
    }
    tokio::time::sleep(settings.hold).await;
    let after = memory::of_tree(settings.server_pid)?;
    let mut alive = 0usize;
    let mut checks = Vec::with_capacity(held.len());
    for mut session in held.drain(..) {
        let permit = gate.clone().acquire_owned().await?;
        checks.push(tokio::spawn(async move {
            let ok = session.noop().await.is_ok();
            drop(permit);
            (ok, session)
        }));
    }
    for check in checks {
        let (ok, session) = check.await?;
        alive += usize::from(ok);
        held.push(session);
    }
    let n = held.len();
    let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / n as f64;
    let rss = per(after.rss_kib, before.rss_kib);
    let pss = per(after.pss_kib, before.pss_kib);
    eprintln!(
        "{}: idle: {n} sessions held {:?}, {alive} answered NOOP after; server {} processes, \
         RSS {} → {} MiB ({rss:.1} KiB/session), PSS {} → {} MiB ({pss:.1} KiB/session); {} failed to open",
        target.label,
        settings.hold,
        after.processes,
        before.rss_kib / 1024,
        after.rss_kib / 1024,
        before.pss_kib / 1024,
        after.pss_kib / 1024,
        tally.errors,
    );
    target.emit("idle", "sessions held", n as f64);
    target.emit("idle", "alive after hold", alive as f64);
    target.emit("idle", "server RSS MiB", after.rss_kib as f64 / 1024.0);
    target.emit("idle", "RSS KiB/session", rss);
    target.emit("idle", "PSS KiB/session", pss);
    target.emit("idle", "server processes", after.processes as f64);
    target.emit("idle", "errors", tally.errors as f64);
    if let Some(e) = tally.first_error {
        eprintln!("{}: idle: first error: {e}", target.label);
    }
    drop(held);
    Ok(())
}

struct NamespaceSettings {
    /// No step starts after it.
    deadline: Option<Instant>,
    files: usize,
    step: usize,
    clients: usize,
    size: usize,
    per_dir: usize,
    data_dirs: Vec<PathBuf>,
    pids: Vec<u32>,
    /// The first file's number.
    first: usize,
    /// Files deleted after each step.
    deletes: usize,
    gateway_pids: Vec<u32>,
}

const MIB: f64 = 1024.0 * 1024.0;

/// File `i` of the namespace scenario: its directory and path, relative to
/// where a session starts (the root of a Wharf account, the home directory
/// of a peer server that does not chroot).
fn namespace_path(i: usize, per_dir: usize) -> (String, String) {
    let dir = format!("ns/d{}", i / per_dir);
    let path = format!("{dir}/f{i:08}");
    (dir, path)
}

/// What the namespace scenario's clients do to each file they take.
#[derive(Clone, Copy)]
enum FileOp {
    Store { size: usize },
    Delete,
}

/// `clients` sessions spread over the nodes take the files `items` names
/// in turn and do `op` to each.
async fn file_phase(
    target: &Target,
    clients: usize,
    per_dir: usize,
    items: Vec<usize>,
    op: FileOp,
) -> Result<Tally> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (items, next) = (Arc::new(items), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (target, node) = (target.clone(), target.node(c));
        let (items, next) = (items.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let Some(mut session) = tally.session(&target, node).await else {
                return tally;
            };
            while let Some(&i) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                let (_, path) = namespace_path(i, per_dir);
                let go_on = match op {
                    FileOp::Store { size } => {
                        // `payload` ors its seed with 1: odd seeds are all distinct.
                        let data = payload(size, 2 * i as u64 + 1);
                        tally.count(&path, c, session.store(&path, &data)).await
                    }
                    FileOp::Delete => tally.count(&path, c, session.delete(&path)).await,
                };
                if !go_on {
                    return tally;
                }
            }
            session.quit().await;
            tally
        }));
    }
    Tally::gather(tasks, "no file was done").await
}

/// `count` files spread evenly over the first `end`, none of them in
/// `deleted` (which they join).
fn spread_deletes(end: usize, count: usize, deleted: &mut HashSet<usize>) -> Vec<usize> {
    let count = count.min(end.saturating_sub(deleted.len()));
    let stride = (end / count.max(1)).max(1);
    // Each round starts one file further on.
    let offset = (deleted.len() / count.max(1)) % stride;
    let mut picked = Vec::with_capacity(count);
    for j in 0..count {
        let mut i = (j * stride + offset) % end;
        while !deleted.insert(i) {
            i = (i + 1) % end;
        }
        picked.push(i);
    }
    picked
}

/// CPU seconds so far of the server (`--cpu-of`) and of `others`.
fn cpu_now(target: &Target, others: &[u32]) -> Result<(Option<f64>, Option<f64>)> {
    let others = if others.is_empty() {
        None
    } else {
        Some(cpu::of_trees(others)?)
    };
    Ok((target.server_cpu()?, others))
}

/// What one phase of the namespace scenario measured.
struct PhaseFigures {
    rate: f64,
    p99_ms: f64,
    errors: usize,
    /// The server's and the gateway's CPU ms per file done.
    cpu_ms: Option<f64>,
    gateway_cpu_ms: Option<f64>,
}

impl PhaseFigures {
    /// Its cells in the Markdown row: rate, p99, CPU, errors.
    fn row(&self) -> String {
        let show = |ms: Option<f64>| ms.map_or_else(|| "-".to_string(), |ms| format!("{ms:.2}"));
        format!(
            "{:.0} | {:.1} | {}, {} | {}",
            self.rate,
            self.p99_ms,
            show(self.cpu_ms),
            show(self.gateway_cpu_ms),
            self.errors
        )
    }
}

/// Runs one phase of the namespace scenario on `items` and emits its
/// figures, their names led by `name` and followed by `at`'s step.
async fn measured_phase(
    target: &Target,
    s: &NamespaceSettings,
    items: Vec<usize>,
    op: FileOp,
    name: &str,
    at: &dyn Fn(&str) -> String,
) -> Result<PhaseFigures> {
    let start = Instant::now();
    let before = cpu_now(target, &s.gateway_pids)?;
    let mut tally = file_phase(target, s.clients, s.per_dir, items, op).await?;
    let after = cpu_now(target, &s.gateway_pids)?;
    let done = tally.latencies.len();
    tally.latencies.sort();
    let per_file = |before: Option<f64>, after: Option<f64>| {
        Some((after? - before?) * 1000.0 / done.max(1) as f64)
    };
    let figures = PhaseFigures {
        rate: done as f64 / start.elapsed().as_secs_f64(),
        p99_ms: percentile(&tally.latencies, 99).as_secs_f64() * 1000.0,
        errors: tally.errors,
        cpu_ms: per_file(before.0, after.0),
        gateway_cpu_ms: per_file(before.1, after.1),
    };
    let emit =
        |metric: &str, value: f64| target.emit("namespace", &at(&format!("{name}{metric}")), value);
    emit("files/s", figures.rate);
    emit("p99 ms", figures.p99_ms);
    emit("errors", figures.errors as f64);
    if let Some(cpu) = figures.cpu_ms {
        emit("CPU ms/file", cpu);
    }
    if let Some(cpu) = figures.gateway_cpu_ms {
        emit("gateway CPU ms/file", cpu);
    }
    if let Some(e) = &tally.first_error {
        eprintln!("{}: namespace: {name}first error: {e}", target.label);
    }
    Ok(figures)
}

async fn namespace(target: &Target, s: NamespaceSettings) -> Result<()> {
    use wharf_benches::footprint::{node_disk, rss_kib};
    if s.first == 0 {
        let mut setup = target.session(target.node(0)).await?;
        setup.make_dir("ns").await?;
        for d in 0..s.files.div_ceil(s.per_dir) {
            setup
                .make_dir(&namespace_path(d * s.per_dir, s.per_dir).0)
                .await?;
        }
        setup.quit().await;
    }
    let deletes_header = if s.deletes > 0 {
        " DELE/s | DELE p99 ms | DELE CPU ms, gateway's | DELE errors |"
    } else {
        ""
    };
    eprintln!(
        "| files | files/s | p99 ms | CPU ms/file, gateway's | errors |{deletes_header} {} |",
        (1..=s.data_dirs.len().max(s.pids.len()))
            .map(|n| format!("node {n}: store MiB, snapshot MiB, chunks MiB, RSS MiB"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let mut deleted = HashSet::new();
    let mut done = s.first;
    while done < s.files {
        if s.deadline.is_some_and(|d| Instant::now() >= d) {
            eprintln!(
                "{}: namespace: stopped at {done} files (--max-seconds)",
                target.label
            );
            break;
        }
        let end = (done + s.step).min(s.files);
        let at = |metric: &str| format!("{metric} @{end}");
        let op = FileOp::Store { size: s.size };
        let stored = measured_phase(target, &s, (done..end).collect(), op, "", &at).await?;
        let mut deletes_row = String::new();
        if s.deletes > 0 {
            // Among this run's files (an earlier run's deletes are not known).
            let picked = spread_deletes(end - s.first, s.deletes, &mut deleted)
                .into_iter()
                .map(|i| i + s.first)
                .collect();
            let gone = measured_phase(target, &s, picked, FileOp::Delete, "DELE ", &at).await?;
            deletes_row = format!(" {} |", gone.row());
        }
        let mut nodes = Vec::new();
        for n in 0..s.data_dirs.len().max(s.pids.len()) {
            let disk = s.data_dirs.get(n).map(|d| node_disk(d)).unwrap_or_default();
            let rss = s.pids.get(n).map_or(0, |&pid| rss_kib(pid));
            let node = |metric: &str| at(&format!("node {} {metric}", n + 1));
            target.emit("namespace", &node("store MiB"), disk.store as f64 / MIB);
            target.emit(
                "namespace",
                &node("snapshot MiB"),
                disk.snapshots as f64 / MIB,
            );
            target.emit("namespace", &node("chunks MiB"), disk.chunks as f64 / MIB);
            target.emit("namespace", &node("RSS MiB"), rss as f64 / 1024.0);
            target.emit(
                "namespace",
                &node("store bytes/file"),
                (disk.store + disk.snapshots) as f64 / end as f64,
            );
            nodes.push(format!(
                "{:.0}, {:.0}, {:.0}, {:.0}",
                disk.store as f64 / MIB,
                disk.snapshots as f64 / MIB,
                disk.chunks as f64 / MIB,
                rss as f64 / 1024.0
            ));
        }
        eprintln!(
            "| {end} | {} |{deletes_row} {} |",
            stored.row(),
            nodes.join(" | ")
        );
        done = end;
    }
    Ok(())
}

async fn list_dir(target: &Target, dir: &str, verb: &str, server_pid: u32) -> Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use wharf_benches::footprint::rss_kib;
    let mut session = target.session(target.node(0)).await?;
    let (stop, peak) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(server_pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let before = rss_kib(server_pid);
    let start = Instant::now();
    let lines = session.listing(verb, dir).await;
    let took = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let lines = lines?;
    session.quit().await;
    let peak = peak.load(Ordering::Relaxed);
    eprintln!(
        "{}: {verb} {dir}: {} entries in {:.2} s, server RSS {:.0} MiB before, {:.0} MiB at its peak",
        target.label,
        lines.len(),
        took.as_secs_f64(),
        before as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    target.emit("list-dir", "entries", lines.len() as f64);
    target.emit("list-dir", "seconds", took.as_secs_f64());
    target.emit("list-dir", "RSS MiB before", before as f64 / 1024.0);
    target.emit("list-dir", "peak RSS MiB", peak as f64 / 1024.0);
    Ok(())
}

/// Runs a scenario; only the scenarios need a runtime, the reports read a file.
fn run(scenario: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    tokio::runtime::Runtime::new()?.block_on(scenario)
}

fn main() -> Result<()> {
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    };
    match Cli::parse().command {
        Command::Report { results, baseline } => {
            print!("{}", report::render(&read(&results)?, &baseline)?);
            Ok(())
        }
        Command::Targets {
            results,
            baseline,
            single,
            cluster,
        } => {
            let roles = report::Roles {
                baseline: &baseline,
                single: &single,
                cluster: &cluster,
            };
            print!("{}", report::render_goals(&read(&results)?, &roles)?);
            Ok(())
        }
        Command::RetrLarge { target, size_mib } => {
            run(async move { retr_large(&target, size_mib).await })
        }
        Command::StorLarge { target, size_mib } => {
            run(async move { stor_large(&target, size_mib).await })
        }
        Command::Sessions {
            target,
            clients,
            seconds,
            no_resumption,
        } => run(async move { sessions(&target, clients, seconds, !no_resumption).await }),
        Command::IngestSmall {
            target,
            clients,
            files,
            size_kib,
        } => run(async move { ingest_small(&target, clients, files, size_kib).await }),
        Command::Namespace {
            target,
            files,
            step,
            clients,
            size_kib,
            per_dir,
            data_dir,
            node_pid,
            max_seconds,
            first,
            deletes,
            gateway_pid,
        } => {
            let settings = NamespaceSettings {
                deadline: (max_seconds > 0)
                    .then(|| Instant::now() + Duration::from_secs(max_seconds)),
                files,
                step: step.max(1),
                clients: clients.max(1),
                size: size_kib * 1024,
                per_dir: per_dir.max(1),
                data_dirs: data_dir,
                pids: node_pid,
                first,
                deletes,
                gateway_pids: gateway_pid,
            };
            run(async move { namespace(&target, settings).await })
        }
        Command::ListDir {
            target,
            dir,
            verb,
            server_pid,
        } => run(async move { list_dir(&target, &dir, &verb, server_pid).await }),
        Command::Idle {
            target,
            sessions,
            server_pid,
            hold,
            concurrency,
            min_available_mib,
        } => {
            let settings = IdleSettings {
                sessions,
                server_pid,
                hold: Duration::from_secs(hold),
                concurrency,
                min_available_kib: min_available_mib * 1024,
            };
            run(async move { idle(&target, settings).await })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletes_are_spread_and_never_repeat() {
        let mut deleted = HashSet::new();
        let mut end = 0;
        for _ in 0..10 {
            end += 1000;
            let picked = spread_deletes(end, 50, &mut deleted);
            assert_eq!(picked.len(), 50);
            assert!(picked.iter().all(|&i| i < end));
            // Spread: the last pick lies in the step's last twentieth.
            assert!(*picked.iter().max().unwrap() >= end - end / 20);
        }
        assert_eq!(deleted.len(), 500);
        // More than is left: what is left.
        let rest = spread_deletes(end, 20_000, &mut deleted);
        assert_eq!(rest.len(), end - 500);
        assert_eq!(deleted.len(), end);
        assert!(spread_deletes(end, 5, &mut deleted).is_empty());
    }
}
