//! `wharf-chaos`: starts a real Wharf cluster, one node per network
//! namespace, runs concurrent FTPS sessions against it, injects one fault
//! per scenario, heals it, and checks that nothing acknowledged was lost.
//! See chaos/README.md.

mod check;
mod containers;
mod event_sink;
mod model;
mod net;
mod nodes;
mod proxy;
mod scenarios;
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::Serialize;

use scenarios::Scenario;
use workload::{Counts, Shared};

#[derive(Parser, Debug)]
#[command(
    name = "wharf-chaos",
    about = "Faults under load, and a checker that nothing acknowledged is lost"
)]
struct Args {
    /// Scenario to run (repeatable; default: every one).
    #[arg(long = "scenario", value_enum)]
    scenarios: Vec<Scenario>,
    /// Nodes in the cluster (3 or 5).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(3..=5))]
    nodes: u64,
    /// How long each scenario's workload runs, e.g. 20s, 5m, 1h (the fault
    /// lasts the middle half).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Concurrent FTPS sessions.
    #[arg(long, default_value_t = 4)]
    sessions: usize,
    /// Largest file, e.g. 256KiB, 64MiB.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    max_size: u64,
    /// Where histories, node logs and reports go.
    #[arg(long, default_value = "target/chaos")]
    out: PathBuf,
    /// The wharf binary (default: next to this one).
    #[arg(long)]
    wharf: Option<PathBuf>,
    /// Seed of the workload's choices and contents.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where the nodes run (default: namespaces where they work, else
    /// loopback).
    #[arg(long, value_enum)]
    topology: Option<net::Topology>,
    /// Run the nodes on `--storage s3` against the S3 gateway this line
    /// describes (what `tests/support/ceph-rgw.sh start` prints:
    /// `endpoint=… access_key=… secret_key=…`), a bucket per scenario.
    /// Loopback topology only: the gateway listens on 127.0.0.1.
    #[arg(long)]
    s3: Option<String>,
}

/// `"16s"` as `(16, "s")`.
fn number_and_unit<'a>(text: &'a str, example: &str) -> Result<(u64, &'a str), String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n = number
        .parse()
        .map_err(|_| format!("{text:?} is not like {example}"))?;
    Ok((n, unit))
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (n, unit) = number_and_unit(text, "20s, 5m or 1h")?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?}: unit must be s, m or h")),
    };
    Ok(Duration::from_secs(seconds))
}

fn parse_size(text: &str) -> Result<u64, String> {
    let (n, unit) = number_and_unit(text, "256KiB or 64MiB")?;
    let factor = match unit {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        _ => return Err(format!("{text:?}: unit must be B, KiB or MiB")),
    };
    Ok(n * factor)
}

/// What one scenario did and found.
#[derive(Debug, Serialize)]
struct Report {
    scenario: String,
    nodes: usize,
    seconds: f64,
    skipped: Option<String>,
    operations: BTreeMap<&'static str, Counts>,
    attempted: u64,
    acknowledged: u64,
    failed: u64,
    unknown: u64,
    lost: u64,
    corrupted: u64,
    resumed_verified: u64,
    files_checked: u64,
    time_without_leader_ms: u64,
    longest_write_stall_ms: u64,
    terms_with_two_leaders: Vec<u64>,
    events: Vec<String>,
    violations: Vec<String>,
}

impl Report {
    fn skipped(scenario: Scenario, nodes: usize, why: String) -> Report {
        Report {
            scenario: scenario.name(),
            nodes,
            seconds: 0.0,
            skipped: Some(why),
            operations: BTreeMap::new(),
            attempted: 0,
            acknowledged: 0,
            failed: 0,
            unknown: 0,
            lost: 0,
            corrupted: 0,
            resumed_verified: 0,
            files_checked: 0,
            time_without_leader_ms: 0,
            longest_write_stall_ms: 0,
            terms_with_two_leaders: Vec::new(),
            events: Vec::new(),
            violations: Vec::new(),
        }
    }

    fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Leadership as sampled from every node's /metrics.
#[derive(Default)]
struct Leadership {
    leaders: BTreeMap<u64, BTreeSet<usize>>,
    leaderless: Duration,
}

const SAMPLE_EVERY: Duration = Duration::from_millis(250);

async fn sample_leadership(nodes: usize, shared: Arc<Shared>, into: Arc<Mutex<Leadership>>) {
    while !shared.stop.load(Ordering::Relaxed) {
        let seen = tokio::task::spawn_blocking(move || {
            (1..=nodes)
                .filter_map(|i| nodes::metrics(i).map(|m| (i, m)))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        {
            let mut l = into.lock().unwrap();
            let mut any = false;
            for (i, m) in seen {
                if m.is_leader {
                    any = true;
                    l.leaders.entry(m.term).or_default().insert(i);
                }
            }
            if !any {
                l.leaderless += SAMPLE_EVERY;
            }
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

fn longest_gap(mut times: Vec<Duration>, end: Duration) -> Duration {
    times.sort();
    let mut last = Duration::ZERO;
    let mut gap = Duration::ZERO;
    for t in times.into_iter().chain([end]) {
        gap = gap.max(t.saturating_sub(last));
        last = t;
    }
    gap
}

async fn run_scenario(
    args: &Args,
    wharf: &Path,
    image: Option<&containers::Image>,
    scenario: Scenario,
) -> Result<Report> {
    let nodes = args.nodes as usize;
    if let Some(why) = scenario.unavailable() {
        return Ok(Report::skipped(scenario, nodes, why));
    }
    let root = args.out.join(scenario.name());
    if root.exists() {
        std::fs::remove_dir_all(&root)
            .with_context(|| format!("cannot clear {}", root.display()))?;
    }
    std::fs::create_dir_all(&root)?;
    let root = std::fs::canonicalize(&root)?;
    let started = Instant::now();
    let mount = scenario.prepare(&root)?;
    let compose = match image {
        Some(image) => Some(Arc::new(containers::Compose::up(
            image,
            &format!("wharfchaos{}", std::process::id()),
            &root,
            &format!("{}:{}", nodes::USER, nodes::PASSWORD),
            scenario.victim(&root),
        )?)),
        None => None,
    };
    let mut net = net::Network::create(nodes, compose.clone()).await?;
    let storage = match &args.s3 {
        Some(line) => s3_storage(line, &scenario.name(), &root)?,
        None => vec!["--storage".into(), "cluster".into()],
    };
    let mut cluster = nodes::Cluster::start(wharf, &net, &root, nodes, compose, &storage, |i| {
        scenario.node_env(i, &root)
    })
    .await?;

    // The events invariant's sink, on the host (crates/node/src/events).
    let mut setup_notes = Vec::new();
    let receiver = match event_sink::Receiver::start().await {
        Ok(receiver) => match receiver.add_sink(&cluster) {
            Ok(()) => Some(receiver),
            Err(e) => {
                setup_notes.push(format!("events invariant not checked: {e:#}"));
                None
            }
        },
        Err(e) => {
            setup_notes.push(format!("events invariant not checked: {e:#}"));
            None
        }
    };
    let shared = Arc::new(Shared::new(std::fs::File::create(
        root.join("history.jsonl"),
    )?));
    let settings = Arc::new(workload::Settings {
        nodes: cluster.nodes.iter().map(|n| n.ftp()).collect(),
        max_size: args.max_size,
    });
    let leadership = Arc::new(Mutex::new(Leadership::default()));
    let sampler = tokio::spawn(sample_leadership(nodes, shared.clone(), leadership.clone()));
    let sessions: Vec<_> = (0..args.sessions)
        .map(|k| {
            let seed = args.seed.wrapping_mul(1000).wrapping_add(k as u64);
            tokio::spawn(workload::session(
                k + 1,
                seed,
                settings.clone(),
                shared.clone(),
            ))
        })
        .collect();

    let quarter = args.duration / 4;
    tokio::time::sleep(quarter).await;
    let events = scenario
        .inject(&mut cluster, &mut net, &shared, &root, quarter * 2)
        .await;
    tokio::time::sleep(quarter).await;
    shared.stop.store(true, Ordering::Relaxed);
    let workload_end = shared.start.elapsed();
    let mut models = Vec::new();
    for s in sessions {
        models.push(s.await.context("a session task failed")?);
    }
    let _ = sampler.await;
    shared.flush();
    let mut events = events?;
    events.extend(setup_notes);

    for (i, how) in cluster.revive_crashed().await? {
        events.push(format!("node {i} had exited by itself ({how}); restarted"));
    }
    let mut violations = Vec::new();
    if net.proxied_from_nodes() == Some(0) {
        violations.push(
            "no node connected to a peer through the link proxies: network faults would do nothing"
                .into(),
        );
    }
    if let Err(e) = cluster.wait_until_settled(Duration::from_secs(90)).await {
        violations.push(format!("after healing: {e:#}"));
    }
    let sabotaged = if scenario == Scenario::CheckerSelfTest {
        let done = sabotage(&settings, &models).await?;
        events.push(format!("sabotage: {done}"));
        cluster.wait_until_settled(Duration::from_secs(30)).await?;
        true
    } else {
        false
    };
    let mut findings = check::check(&cluster, &models).await;
    if sabotaged {
        if findings.lost > 0 && findings.corrupted > 0 {
            events.push(format!(
                "the checker caught it: {} lost, {} corrupted",
                findings.lost, findings.corrupted
            ));
            findings.violations.clear();
        } else {
            findings.violations.push(format!(
                "the checker missed the sabotage (lost {}, corrupted {})",
                findings.lost, findings.corrupted
            ));
        }
    }
    violations.extend(findings.violations);
    if let Some(receiver) = &receiver {
        let broken = receiver.check(&models).await;
        events.push(format!(
            "events: {} upload events received for {} acknowledged uploads",
            receiver.received(),
            models.iter().map(|m| m.acked_uploads.len()).sum::<usize>()
        ));
        violations.extend(broken);
    }
    let leadership = std::mem::take(&mut *leadership.lock().unwrap());
    let doubled: Vec<u64> = leadership
        .leaders
        .iter()
        .filter(|(_, who)| who.len() > 1)
        .map(|(&term, _)| term)
        .collect();
    for term in &doubled {
        violations.push(format!(
            "term {term} had leaders {:?}",
            leadership.leaders[term]
        ));
    }
    let operations = shared.counts.lock().unwrap().clone();
    let total = |f: fn(&Counts) -> u64| operations.values().map(f).sum::<u64>();
    let acked = shared.acked_writes.lock().unwrap().clone();
    let report = Report {
        scenario: scenario.name(),
        nodes,
        seconds: started.elapsed().as_secs_f64(),
        skipped: None,
        attempted: total(|c| c.attempted),
        acknowledged: total(|c| c.acknowledged),
        failed: total(|c| c.failed),
        unknown: total(|c| c.unknown),
        operations,
        lost: findings.lost,
        corrupted: findings.corrupted,
        resumed_verified: findings.resumed_verified,
        files_checked: findings.files_checked,
        time_without_leader_ms: leadership.leaderless.as_millis() as u64,
        longest_write_stall_ms: longest_gap(acked, workload_end).as_millis() as u64,
        terms_with_two_leaders: doubled,
        events,
        violations,
    };
    std::fs::write(
        root.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    std::fs::write(root.join("model.json"), serde_json::to_string(&models)?)?;
    drop(cluster);
    drop(net);
    drop(mount);
    if report.passed() {
        // Keep the history, logs and report; the nodes' data is not needed.
        for i in 1..=nodes {
            let _ = std::fs::remove_dir_all(root.join(format!("node{i}")));
        }
    }
    Ok(report)
}

/// Deletes one acknowledged file and overwrites another, outside the
/// workload's knowledge.
/// The `serve` flags of object storage on a new bucket of the gateway `line`
/// describes, created here (curl signs the request), its credentials in a
/// file under `root`.
fn s3_storage(line: &str, scenario: &str, root: &Path) -> Result<Vec<String>> {
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
            .with_context(|| format!("--s3 has no {name}=: {line:?}"))
    };
    let (endpoint, access, secret) = (
        field("endpoint")?,
        field("access_key")?,
        field("secret_key")?,
    );
    let bucket = format!("chaos-{scenario}-{}", std::process::id());
    let made = std::process::Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", "30"])
        .args(["--aws-sigv4", "aws:amz:us-east-1:s3"])
        .args(["--user", &format!("{access}:{secret}")])
        .args(["--header", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .args(["--request", "PUT"])
        .arg(format!("{endpoint}/{bucket}"))
        .output()
        .context("run curl to create the bucket")?;
    if !made.status.success() {
        bail!(
            "creating bucket {bucket} at {endpoint}: {}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    let credentials = root.join("s3-credentials");
    std::fs::write(
        &credentials,
        format!("[default]\naws_access_key_id = {access}\naws_secret_access_key = {secret}\n"),
    )?;
    Ok(vec![
        "--storage".into(),
        "s3".into(),
        "--s3-endpoint".into(),
        endpoint,
        "--s3-bucket".into(),
        bucket,
        "--s3-path-style".into(),
        "--s3-credentials-file".into(),
        credentials.display().to_string(),
    ])
}

async fn sabotage(
    settings: &workload::Settings,
    models: &[workload::SessionModel],
) -> Result<String> {
    let mut known = models
        .iter()
        .flat_map(|m| m.files.iter())
        .filter(|(_, s)| s.exact().is_some_and(|c| c.len() > 0))
        .map(|(p, _)| p.clone());
    let (Some(gone), Some(changed)) = (known.next(), known.next()) else {
        bail!("the workload acknowledged fewer than two non-empty files");
    };
    let mut session =
        wharf_client::Session::login_at(settings.nodes[0], nodes::USER, nodes::PASSWORD).await?;
    session.delete(&gone).await?;
    session
        .store(&changed, b"bytes the workload never sent")
        .await?;
    session.quit().await;
    Ok(format!("deleted {gone}, overwrote {changed}"))
}

fn print_report(r: &Report) {
    if let Some(why) = &r.skipped {
        println!("{:<20} skipped: {why}", r.scenario);
        return;
    }
    println!(
        "{:<20} {} in {:.0}s: {} ops, {} acknowledged, {} failed, {} unknown; lost {}, corrupted {}; \
         {} resumed uploads verified; {} files checked; no leader for {} ms; longest write stall {} ms",
        r.scenario,
        if r.passed() { "PASS" } else { "FAIL" },
        r.seconds,
        r.attempted,
        r.acknowledged,
        r.failed,
        r.unknown,
        r.lost,
        r.corrupted,
        r.resumed_verified,
        r.files_checked,
        r.time_without_leader_ms,
        r.longest_write_stall_ms
    );
    for e in &r.events {
        println!("    {e}");
    }
    for v in r.violations.iter().take(20) {
        println!("    VIOLATION {v}");
    }
}

fn default_wharf() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let wharf = me.with_file_name("wharf");
    if !wharf.exists() {
        bail!(
            "no wharf binary next to {} (pass --wharf PATH)",
            me.display()
        );
    }
    Ok(wharf)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let wharf = match &args.wharf {
        Some(p) => p.clone(),
        None => default_wharf()?,
    };
    let topology = match args.topology {
        Some(t) => t,
        None => match net::unavailable() {
            Some(why) => {
                println!("network namespaces unavailable ({why}): nodes run on 127.0.0.x, network faults are done by a proxy");
                net::Topology::Loopback
            }
            None => net::Topology::Namespaces,
        },
    };
    net::set_topology(topology);
    if args.s3.is_some() && topology != net::Topology::Loopback {
        bail!("--s3 needs --topology loopback: the gateway listens on 127.0.0.1");
    }
    let image = if topology == net::Topology::Containers {
        if let Some(why) = containers::unavailable() {
            bail!("the container topology cannot run here: {why}");
        }
        if args.nodes as usize != containers::NODES {
            bail!(
                "deploy/compose.yaml has {} nodes; --nodes {} cannot run as containers",
                containers::NODES,
                args.nodes
            );
        }
        println!(
            "building the image of deploy/Dockerfile with {}",
            wharf.display()
        );
        Some(containers::Image::build(&wharf)?)
    } else {
        None
    };
    let scenarios = if args.scenarios.is_empty() {
        <Scenario as clap::ValueEnum>::value_variants().to_vec()
    } else {
        args.scenarios.clone()
    };
    let mut reports = Vec::new();
    for scenario in scenarios {
        println!(
            "--- {} ({} nodes, {:?}, {:?})",
            scenario.name(),
            args.nodes,
            args.duration,
            topology
        );
        let report = match run_scenario(&args, &wharf, image.as_ref(), scenario).await {
            Ok(r) => r,
            Err(e) => {
                let mut r = Report::skipped(scenario, args.nodes as usize, String::new());
                r.skipped = None;
                r.violations
                    .push(format!("the scenario could not run: {e:#}"));
                r
            }
        };
        print_report(&report);
        reports.push(report);
    }
    std::fs::write(
        args.out.join("summary.json"),
        serde_json::to_string_pretty(&reports)?,
    )?;
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.scenario.as_str())
        .collect();
    if !failed.is_empty() {
        bail!(
            "invariants broken in {failed:?}; histories and node logs are under {}",
            args.out.display()
        );
    }
    println!("every scenario passed: nothing acknowledged was lost");
    Ok(())
}
