//! The faults, one per scenario. Each is injected in the middle of a
//! workload, lasts about `window`, and is healed before the check.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;

use crate::containers::Victim;
use crate::net::{topology, Network, Topology};
use crate::nodes::Cluster;
use crate::workload::Shared;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// SIGKILL the leader; restart it later.
    KillLeader,
    /// SIGKILL a follower; restart it later.
    KillFollower,
    /// SIGKILL a node while it receives an upload; restart it later.
    KillUploading,
    /// SIGSTOP the leader for longer than the election timeout, then SIGCONT.
    PauseLeader,
    /// Cut a minority of followers off from the rest.
    PartitionMinority,
    /// Leave the leader on the minority side (3 nodes: alone; 5: with one follower).
    PartitionMajority,
    /// Cut the leader off from every other node.
    IsolateLeader,
    /// Drop 20% of the packets between nodes (on loopback: delay 20% of
    /// the segments by a retransmission timeout, and every one by 40 ms).
    FlakyLinks,
    /// Fill the disk of one node (its data dir is a small tmpfs).
    DiskFull,
    /// SIGTERM and restart every node in turn.
    RollingRestart,
    /// Step one node's wall clock an hour ahead, later back (libfaketime).
    ClockJump,
    /// No fault; afterwards one acknowledged file is deleted and another
    /// overwritten behind the workload's back. Passes only if the checker
    /// reports both, so a checker that sees nothing cannot pass.
    CheckerSelfTest,
}

const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
/// The node whose disk fills or whose clock jumps.
const VICTIM: usize = 2;
const TMPFS_SIZE: &str = "512m";

impl Scenario {
    pub fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }

    /// Why this scenario cannot run on this machine, if it cannot.
    pub fn unavailable(self) -> Option<String> {
        // SAFETY: geteuid has no preconditions.
        if self == Scenario::DiskFull && unsafe { libc::geteuid() } != 0 {
            return Some("mounting the tmpfs that fills needs root".into());
        }
        match self {
            Scenario::ClockJump if !Path::new(FAKETIME).exists() => Some(format!(
                "libfaketime is not installed ({FAKETIME}; apt-get install faketime)"
            )),
            _ => None,
        }
    }

    /// Before the cluster starts: the tmpfs for the disk that fills (the
    /// container topology gives the node a tmpfs volume instead).
    pub fn prepare(self, root: &Path) -> Result<Option<Mount>> {
        if self != Scenario::DiskFull || topology() == Topology::Containers {
            return Ok(None);
        }
        let dir = root.join(format!("node{VICTIM}"));
        std::fs::create_dir_all(&dir)?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_SIZE}"), "tmpfs"])
            .arg(&dir)
            .status()?;
        if !status.success() {
            bail!("cannot mount a tmpfs on {}", dir.display());
        }
        Ok(Some(Mount(dir)))
    }

    /// Extra environment for node `i`.
    pub fn node_env(self, i: usize, root: &Path) -> Vec<(String, String)> {
        if self != Scenario::ClockJump || i != VICTIM {
            return Vec::new();
        }
        let file = clock_file(root);
        let _ = std::fs::write(&file, "+0\n");
        [
            ("LD_PRELOAD", FAKETIME.to_owned()),
            ("FAKETIME_TIMESTAMP_FILE", file.display().to_string()),
            ("FAKETIME_CACHE_DURATION", "1".into()),
            ("DONT_FAKE_MONOTONIC", "1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// What the container of the scenario's victim needs: the same as
    /// `prepare` and `node_env` give a process.
    pub fn victim(self, root: &Path) -> Option<Victim> {
        match self {
            Scenario::DiskFull => Some(Victim {
                node: VICTIM,
                tmpfs: Some(TMPFS_SIZE),
                ..Victim::default()
            }),
            Scenario::ClockJump => Some(Victim {
                node: VICTIM,
                env: self.node_env(VICTIM, root),
                mounts: vec![Path::new(FAKETIME).parent()?.to_owned(), root.to_owned()],
                ..Victim::default()
            }),
            _ => None,
        }
    }

    /// Injects the fault, keeps it for `window`, heals it. Returns what was
    /// done, for the report.
    pub async fn inject(
        self,
        cluster: &mut Cluster,
        net: &mut Network,
        shared: &Shared,
        root: &Path,
        window: Duration,
    ) -> Result<Vec<String>> {
        let mut events = Vec::new();
        let mut note = |text: String| {
            events.push(format!(
                "{:>7.1}s {text}",
                shared.start.elapsed().as_secs_f64()
            ));
        };
        let n = cluster.nodes.len();
        match self {
            Scenario::KillLeader | Scenario::KillFollower | Scenario::KillUploading => {
                let victim = match self {
                    Scenario::KillLeader => leader(cluster).await?,
                    Scenario::KillFollower => cluster.followers()[0],
                    _ => uploading_node(cluster, shared, window).await,
                };
                let during = if self == Scenario::KillUploading {
                    " during an upload"
                } else {
                    ""
                };
                cluster.kill(victim)?;
                note(format!("SIGKILL node {victim}{during}"));
                tokio::time::sleep(window).await;
                cluster.restart(victim).await?;
                note(format!("node {victim} restarted and ready"));
            }
            Scenario::PauseLeader => {
                let victim = leader(cluster).await?;
                cluster.pause(victim)?;
                note(format!("SIGSTOP node {victim}"));
                tokio::time::sleep(window.max(Duration::from_secs(5))).await;
                cluster.resume(victim)?;
                note(format!("SIGCONT node {victim}"));
            }
            Scenario::PartitionMinority | Scenario::PartitionMajority | Scenario::IsolateLeader => {
                let lead = leader(cluster).await?;
                let followers = cluster.followers();
                let minority = (n - 1) / 2;
                let side: Vec<usize> = match self {
                    Scenario::PartitionMinority => followers[..minority].to_vec(),
                    Scenario::PartitionMajority => std::iter::once(lead)
                        .chain(followers[..minority.saturating_sub(1)].iter().copied())
                        .collect(),
                    _ => vec![lead],
                };
                let rest: Vec<usize> = (1..=n).filter(|i| !side.contains(i)).collect();
                net.partition(&side, &rest)?;
                note(format!("partition {side:?} | {rest:?} (leader was {lead})"));
                tokio::time::sleep(window).await;
                net.heal()?;
                note("partition healed".into());
            }
            Scenario::FlakyLinks => {
                let what = net.flaky(20, Duration::from_millis(40))?;
                note(what);
                tokio::time::sleep(window).await;
                net.heal()?;
                note("links healed".into());
            }
            Scenario::DiskFull => {
                cluster.fill_disk(VICTIM)?;
                note(format!("disk of node {VICTIM} full"));
                tokio::time::sleep(window).await;
                cluster.free_disk(VICTIM)?;
                note(format!("disk of node {VICTIM} freed"));
            }
            Scenario::RollingRestart => {
                for i in 1..=n {
                    cluster.terminate(i).await?;
                    note(format!("SIGTERM node {i}: exited"));
                    cluster.restart(i).await?;
                    note(format!("node {i} restarted and ready"));
                }
            }
            Scenario::CheckerSelfTest => {
                tokio::time::sleep(window).await;
                note("no fault".into());
            }
            Scenario::ClockJump => {
                std::fs::write(clock_file(root), "+1h\n")?;
                note(format!("wall clock of node {VICTIM} one hour ahead"));
                tokio::time::sleep(window).await;
                std::fs::write(clock_file(root), "+0\n")?;
                note(format!("wall clock of node {VICTIM} back"));
            }
        }
        for (i, how) in cluster.revive_crashed().await? {
            note(format!("node {i} had exited by itself ({how}); restarted"));
        }
        Ok(events)
    }
}

/// The leader, asked for up to ten seconds (a loaded node may answer
/// /metrics slowly, and an election may be under way).
async fn leader(cluster: &Cluster) -> Result<usize> {
    for _ in 0..20 {
        if let Some(i) = cluster.leader() {
            return Ok(i);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    cluster.leader().context("no node says it leads")
}

/// A node receiving an upload, waited for up to `limit` (else a follower).
async fn uploading_node(cluster: &Cluster, shared: &Shared, limit: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let busy = shared
            .uploading
            .lock()
            .unwrap()
            .iter()
            .find(|(_, &c)| c > 0)
            .map(|(&i, _)| i);
        if let Some(i) = busy {
            return i;
        }
        if tokio::time::Instant::now() > deadline {
            return cluster.followers()[0];
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn clock_file(root: &Path) -> PathBuf {
    root.join("faketime")
}

/// A tmpfs mounted for a scenario; unmounted when dropped.
pub struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}
