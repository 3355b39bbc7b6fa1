//! The chaos network and the faults done to it. Three topologies:
//!
//! - namespaces (root and `ip netns`): every node in a network namespace of
//!   its own, on a bridge with the workload's clients in the host namespace;
//! - containers (`--topology containers`): the nodes of deploy/compose.yaml,
//!   each container its own network namespace, entered with nsenter;
//! - loopback (anywhere): nodes on 127.0.0.(10+i), every cluster link
//!   through a fault proxy (proxy.rs).
//!
//! In the first two, partitions are blackhole routes inside the nodes'
//! namespaces (clients still reach both sides, as they would through their
//! own routes) and lossy links random drops with iptables.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::ValueEnum;

use crate::containers::{checked, Compose};
use crate::proxy::{Faults, Layout, Proxies};

const BRIDGE: &str = "wch-br";
/// The host's address on the bridge, where the clients are.
const HOST: &str = "10.77.0.1/24";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Topology {
    /// One network namespace per node (needs root and `ip netns`).
    Namespaces,
    /// Nodes on loopback addresses, faults by a proxy on every cluster link.
    Loopback,
    /// The containers of deploy/compose.yaml (needs a Docker engine,
    /// docker-compose and root; 3 nodes).
    Containers,
}

static TOPOLOGY: AtomicU8 = AtomicU8::new(0);

pub fn topology() -> Topology {
    match TOPOLOGY.load(Ordering::Relaxed) {
        0 => Topology::Namespaces,
        1 => Topology::Loopback,
        _ => Topology::Containers,
    }
}

/// Chooses the topology of this run.
pub fn set_topology(t: Topology) {
    TOPOLOGY.store(t as u8, Ordering::Relaxed);
}

/// The subnet the container topology gives compose.yaml's network.
pub const CONTAINER_SUBNET: &str = "172.30.77.0/24";
/// compose.yaml's balancer address on it.
pub const CONTAINER_LB_IP: &str = "172.30.77.10";

/// Node `i` (from 1) lives at 10.77.0.(10 + i), 127.0.0.(10 + i) or
/// 172.30.77.(10 + i).
pub fn node_ip(i: usize) -> Ipv4Addr {
    let host = 10 + i as u8;
    match topology() {
        Topology::Namespaces => Ipv4Addr::new(10, 77, 0, host),
        Topology::Loopback => Ipv4Addr::new(127, 0, 0, host),
        Topology::Containers => Ipv4Addr::new(172, 30, 77, host),
    }
}

fn namespace(i: usize) -> String {
    format!("wch-n{i}")
}

fn run(args: &[&str]) -> Result<()> {
    let (program, rest) = args.split_first().context("nothing to run")?;
    checked(Command::new(program).args(rest), Duration::from_secs(60)).map(drop)
}

/// Why namespaces cannot be used here, if they cannot.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("network namespaces need root".into());
    }
    for tool in ["ip", "iptables"] {
        if run(&["sh", "-c", &format!("command -v {tool} >/dev/null")]).is_err() {
            return Some(format!("{tool} is not installed"));
        }
    }
    let probe = "wch-probe";
    let works = run(&["ip", "netns", "add", probe]).is_ok();
    let _ = run(&["ip", "netns", "del", probe]);
    (!works).then(|| "`ip netns add` does not work here".into())
}

pub struct Network {
    nodes: usize,
    kind: Kind,
}

enum Kind {
    /// Partitions are blackhole routes `(node, address cut off)` in the
    /// nodes' namespaces; lossy links iptables rules.
    Namespaces {
        containers: Option<Arc<Compose>>,
        cuts: Vec<(usize, Ipv4Addr)>,
        lossy: bool,
    },
    /// Every cluster link runs through a proxy that does the faults.
    Loopback { faults: Faults, proxies: Proxies },
}

/// The cluster port, on every node's address.
pub const CLUSTER_PORT: u16 = 7000;

/// Where node `i` really listens for cluster traffic on loopback (its
/// advertised address is its proxy's), and the address it connects from.
fn loopback_inner_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, 10 + i as u8)
}

fn loopback_node_of(source: IpAddr) -> Option<usize> {
    match source {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            ((a, b, c) == (127, 0, 1) && d > 10).then(|| usize::from(d - 10))
        }
        IpAddr::V6(_) => None,
    }
}

impl Network {
    /// Namespaces wch-n1..wch-nN with veth pairs on bridge wch-br (leftovers
    /// of an earlier run that did not clean up are removed first); on
    /// loopback, a fault proxy in front of each node's cluster port.
    pub async fn create(nodes: usize, containers: Option<Arc<Compose>>) -> Result<Network> {
        if containers.is_some() {
            return Ok(Network {
                nodes,
                kind: Kind::Namespaces {
                    containers,
                    cuts: Vec::new(),
                    lossy: false,
                },
            });
        }
        if topology() == Topology::Loopback {
            let faults = Faults::default();
            let layout = Layout {
                nodes: (1..=nodes)
                    .map(|i| {
                        (
                            i,
                            SocketAddr::from((node_ip(i), CLUSTER_PORT)),
                            SocketAddr::from((loopback_inner_ip(i), CLUSTER_PORT)),
                        )
                    })
                    .collect(),
                node_of_source: loopback_node_of,
            };
            let proxies = Proxies::start(layout, faults.clone()).await?;
            return Ok(Network {
                nodes,
                kind: Kind::Loopback { faults, proxies },
            });
        }
        remove(nodes.max(5));
        run(&["ip", "link", "add", BRIDGE, "type", "bridge"])?;
        run(&["ip", "addr", "add", HOST, "dev", BRIDGE])?;
        run(&["ip", "link", "set", BRIDGE, "up"])?;
        // Docker's FORWARD policy drops bridged traffic when br_netfilter is loaded.
        run(&[
            "iptables", "-I", "FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT",
        ])?;
        for i in 1..=nodes {
            let ns = namespace(i);
            let (host_end, node_end) = (format!("wch-h{i}"), format!("wch-p{i}"));
            run(&["ip", "netns", "add", &ns])?;
            run(&[
                "ip", "link", "add", &host_end, "type", "veth", "peer", "name", &node_end,
            ])?;
            run(&["ip", "link", "set", &host_end, "master", BRIDGE, "up"])?;
            run(&["ip", "link", "set", &node_end, "netns", &ns])?;
            let address = format!("{}/24", node_ip(i));
            run(&["ip", "-n", &ns, "addr", "add", &address, "dev", &node_end])?;
            run(&["ip", "-n", &ns, "link", "set", &node_end, "up"])?;
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(Network {
            nodes,
            kind: Kind::Namespaces {
                containers: None,
                cuts: Vec::new(),
                lossy: false,
            },
        })
    }

    /// The command prefix that runs a program in node `i`'s namespace.
    pub fn exec_in(&self, i: usize) -> Vec<String> {
        match self.kind {
            Kind::Namespaces {
                containers: None, ..
            } => vec!["ip".into(), "netns".into(), "exec".into(), namespace(i)],
            _ => Vec::new(),
        }
    }

    /// Node `i`'s cluster flags: where it listens, what it advertises, where
    /// its connections to peers come from.
    pub fn cluster_args(&self, i: usize) -> Vec<String> {
        let public = format!("{}:{CLUSTER_PORT}", node_ip(i));
        match self.kind {
            Kind::Namespaces { .. } => vec!["--cluster-listen".into(), public],
            Kind::Loopback { .. } => {
                let inner = loopback_inner_ip(i);
                vec![
                    "--cluster-listen".into(),
                    format!("{inner}:{CLUSTER_PORT}"),
                    "--cluster-advertise".into(),
                    public,
                    "--cluster-source".into(),
                    inner.to_string(),
                ]
            }
        }
    }

    /// The command prefix that runs a program in node `i`'s network
    /// namespace (a named one, or a container's).
    fn netns_of(&self, i: usize) -> Result<Vec<String>> {
        match &self.kind {
            Kind::Namespaces {
                containers: Some(compose),
                ..
            } => Ok(vec![
                "nsenter".into(),
                "-t".into(),
                compose.pid(i)?.to_string(),
                "-n".into(),
            ]),
            _ => Ok(vec![
                "ip".into(),
                "netns".into(),
                "exec".into(),
                namespace(i),
            ]),
        }
    }

    /// `args` run in node `i`'s network namespace.
    fn run_in(&self, i: usize, args: &[&str]) -> Result<()> {
        let prefix = self.netns_of(i)?;
        let mut all: Vec<&str> = prefix.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        run(&all)
    }

    /// On loopback: how many connections the link proxies took from nodes.
    pub fn proxied_from_nodes(&self) -> Option<u64> {
        match &self.kind {
            Kind::Loopback { proxies, .. } => Some(proxies.from_nodes.load(Ordering::Relaxed)),
            Kind::Namespaces { .. } => None,
        }
    }

    /// Cuts every link between a node of `a` and a node of `b`, both ways.
    pub fn partition(&mut self, a: &[usize], b: &[usize]) -> Result<()> {
        for &x in a {
            for &y in b {
                for (from, to) in [(x, y), (y, x)] {
                    if let Kind::Loopback { faults, .. } = &self.kind {
                        faults.change(from, to, |f| f.cut = true);
                        continue;
                    }
                    let target = format!("{}/32", node_ip(to));
                    self.run_in(from, &["ip", "route", "add", "blackhole", &target])?;
                    if let Kind::Namespaces { cuts, .. } = &mut self.kind {
                        cuts.push((from, node_ip(to)));
                    }
                }
            }
        }
        Ok(())
    }

    /// Makes every link between nodes (not those to clients) lose packets:
    /// `percent` of them dropped, and on loopback also a one-way `delay`
    /// (network namespaces here have no netem to delay with). Returns what
    /// was done, for the report.
    pub fn flaky(&mut self, percent: u32, delay: Duration) -> Result<String> {
        let nodes = self.nodes;
        let pairs =
            (1..=nodes).flat_map(|i| (1..=nodes).filter(move |&j| j != i).map(move |j| (i, j)));
        match &self.kind {
            Kind::Loopback { faults, .. } => {
                for (i, j) in pairs {
                    faults.change(i, j, |f| {
                        f.loss_percent = percent;
                        f.delay = delay;
                    });
                }
                Ok(format!(
                    "{percent}% of segments a retransmission late and {delay:?} delay between nodes"
                ))
            }
            Kind::Namespaces { .. } => {
                let probability = format!("{:.2}", f64::from(percent) / 100.0);
                for (i, j) in pairs {
                    let peer = node_ip(j).to_string();
                    self.run_in(
                        i,
                        &[
                            "iptables",
                            "-A",
                            "OUTPUT",
                            "-d",
                            &peer,
                            "-m",
                            "statistic",
                            "--mode",
                            "random",
                            "--probability",
                            &probability,
                            "-j",
                            "DROP",
                        ],
                    )?;
                }
                if let Kind::Namespaces { lossy, .. } = &mut self.kind {
                    *lossy = true;
                }
                Ok(format!("{percent}% packet loss between nodes"))
            }
        }
    }

    /// Undoes every partition and flaky link.
    pub fn heal(&mut self) -> Result<()> {
        let (cuts, lossy) = match &mut self.kind {
            Kind::Loopback { faults, .. } => {
                faults.heal();
                return Ok(());
            }
            Kind::Namespaces { cuts, lossy, .. } => (std::mem::take(cuts), std::mem::take(lossy)),
        };
        for (from, to) in cuts {
            let target = format!("{to}/32");
            self.run_in(from, &["ip", "route", "del", "blackhole", &target])?;
        }
        if lossy {
            for i in 1..=self.nodes {
                self.run_in(i, &["iptables", "-F", "OUTPUT"])?;
            }
        }
        Ok(())
    }
}

fn remove(nodes: usize) {
    for i in 1..=nodes {
        let _ = run(&["ip", "netns", "del", &namespace(i)]);
        let _ = run(&["ip", "link", "del", &format!("wch-h{i}")]);
    }
    while run(&[
        "iptables", "-D", "FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT",
    ])
    .is_ok()
    {}
    let _ = run(&["ip", "link", "del", BRIDGE]);
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Kind::Namespaces {
            containers: None, ..
        } = self.kind
        {
            remove(self.nodes);
        }
    }
}
