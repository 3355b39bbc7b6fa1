//! The chaos network: every node in a network namespace of its own, on a
//! bridge with the workload's clients in the host namespace, and the faults
//! done to it: partitions as blackhole routes inside the namespaces (clients
//! still reach both sides, as they would through their own routes), lossy
//! links as random drops with iptables. Needs root and `ip netns`; without
//! them nodes run on loopback addresses 127.0.0.(10+i), where only the
//! faults done to processes are possible.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};

const BRIDGE: &str = "wch-br";
/// The host's address on the bridge, where the clients are.
const HOST: &str = "10.77.0.1/24";

/// Whether this run has nodes on loopback addresses (no namespaces).
static ON_LOOPBACK: AtomicBool = AtomicBool::new(false);

pub fn on_loopback() -> bool {
    ON_LOOPBACK.load(Ordering::Relaxed)
}

/// Node `i` (from 1) lives at 10.77.0.(10 + i), or 127.0.0.(10 + i).
pub fn node_ip(i: usize) -> Ipv4Addr {
    if on_loopback() {
        Ipv4Addr::new(127, 0, 0, 10 + i as u8)
    } else {
        Ipv4Addr::new(10, 77, 0, 10 + i as u8)
    }
}

fn namespace(i: usize) -> String {
    format!("wch-n{i}")
}

fn run(args: &[&str]) -> Result<()> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("cannot run {}", args[0]))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
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
    /// 0 on loopback: nothing to set up or remove.
    nodes: usize,
    /// Blackhole routes in place: (namespace of node, address cut off).
    cuts: Vec<(usize, Ipv4Addr)>,
    lossy: bool,
}

impl Network {
    /// Namespaces wch-n1..wch-nN with veth pairs on bridge wch-br. Leftovers
    /// of an earlier run that did not clean up are removed first.
    pub fn create(nodes: usize) -> Result<Network> {
        if on_loopback() {
            return Ok(Network {
                nodes: 0,
                cuts: Vec::new(),
                lossy: false,
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
            cuts: Vec::new(),
            lossy: false,
        })
    }

    /// The command prefix that runs a program in node `i`'s namespace.
    pub fn exec_in(&self, i: usize) -> Vec<String> {
        if on_loopback() {
            return Vec::new();
        }
        vec!["ip".into(), "netns".into(), "exec".into(), namespace(i)]
    }

    /// From here on, nodes live on loopback addresses.
    pub fn use_loopback() {
        ON_LOOPBACK.store(true, Ordering::Relaxed);
    }

    /// Cuts every link between a node of `a` and a node of `b`, both ways.
    pub fn partition(&mut self, a: &[usize], b: &[usize]) -> Result<()> {
        if on_loopback() {
            bail!("partitions need network namespaces");
        }
        for &x in a {
            for &y in b {
                for (from, to) in [(x, y), (y, x)] {
                    let target = format!("{}/32", node_ip(to));
                    run(&[
                        "ip",
                        "-n",
                        &namespace(from),
                        "route",
                        "add",
                        "blackhole",
                        &target,
                    ])?;
                    self.cuts.push((from, node_ip(to)));
                }
            }
        }
        Ok(())
    }

    /// Drops `percent` of the packets between nodes (not those to clients).
    pub fn lossy(&mut self, percent: u32) -> Result<()> {
        if on_loopback() {
            bail!("lossy links need network namespaces");
        }
        let probability = format!("{:.2}", f64::from(percent) / 100.0);
        for i in 1..=self.nodes {
            for j in (1..=self.nodes).filter(|&j| j != i) {
                let peer = node_ip(j).to_string();
                iptables_in(
                    i,
                    &[
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
        }
        self.lossy = true;
        Ok(())
    }

    /// Undoes every partition and lossy link.
    pub fn heal(&mut self) -> Result<()> {
        for (from, to) in std::mem::take(&mut self.cuts) {
            let target = format!("{to}/32");
            run(&[
                "ip",
                "-n",
                &namespace(from),
                "route",
                "del",
                "blackhole",
                &target,
            ])?;
        }
        if std::mem::take(&mut self.lossy) {
            for i in 1..=self.nodes {
                iptables_in(i, &["-F", "OUTPUT"])?;
            }
        }
        Ok(())
    }
}

/// iptables inside node `i`'s namespace.
fn iptables_in(i: usize, args: &[&str]) -> Result<()> {
    let ns = namespace(i);
    let mut all = vec!["ip", "netns", "exec", &ns, "iptables"];
    all.extend_from_slice(args);
    run(&all)
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
        remove(self.nodes);
    }
}
