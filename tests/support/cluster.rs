//! Several `wharf` processes forming one Raft cluster, and what `wharf cluster status`
//! and `wharf user list` print, parsed so tests can wait on it.

use std::io::{BufRead, BufReader, Lines};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use super::process::wait_or_kill;
use super::{describe, python, Wharf, WharfOptions};

/// How long a cluster may take until every joined node is a voter.
const FORMATION_TIMEOUT: Duration = Duration::from_secs(20);

/// One line of `wharf cluster status` below the header:
/// `  node N\tADDR\tvoter|learner[\tlag K]\tsessions S|unreachable[\tdraining]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub address: String,
    pub voter: bool,
    /// Only the leader knows its followers' lag.
    pub lag: Option<u64>,
    /// Open FTPS sessions the member reported; `None` when it did not answer.
    pub sessions: Option<u64>,
    pub draining: bool,
}

/// `wharf cluster status` as seen by one node.
#[derive(Clone, Debug)]
pub struct ClusterStatus {
    pub node: u64,
    /// `leader`, `follower`, `candidate`, `learner`, …
    pub role: String,
    pub term: u64,
    pub leader: Option<u64>,
    pub last_log: u64,
    pub applied: u64,
    pub members: Vec<Member>,
    pub storage: StorageStatus,
}

/// The `storage:` line: chunks in use, copies wanted, chunks short of copies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageStatus {
    pub chunks: u64,
    pub replication: u64,
    pub under_replicated: u64,
}

impl ClusterStatus {
    /// Parses `node N (ROLE), term T, leader L|none, last log X, applied Y` and the
    /// member lines that follow; `None` if the header does not have that shape.
    pub fn parse(text: &str) -> Option<ClusterStatus> {
        let mut lines = text.lines();
        let header = lines.next()?;
        let (node_part, rest) = header.split_once(" (")?;
        let (role, rest) = rest.split_once("), ")?;
        let mut fields = rest.split(", ");
        let term = fields.next()?.strip_prefix("term ")?.parse().ok()?;
        let leader = fields.next()?.strip_prefix("leader ")?.parse().ok();
        let last_log = number_or_zero(fields.next()?.strip_prefix("last log ")?);
        let applied = number_or_zero(fields.next()?.strip_prefix("applied ")?);
        let mut members = Vec::new();
        let mut storage = StorageStatus::default();
        for line in lines.filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("storage: ") {
                for field in rest.split(", ") {
                    let (name, value) = field.rsplit_once(' ')?;
                    let value = value.parse().ok()?;
                    match name {
                        "chunks" => storage.chunks = value,
                        "replication" => storage.replication = value,
                        "under-replicated" => storage.under_replicated = value,
                        _ => {}
                    }
                }
                continue;
            }
            let mut columns = line.trim().split('\t');
            let id = columns.next()?.strip_prefix("node ")?.parse().ok()?;
            let address = columns.next()?.to_string();
            let voter = columns.next()? == "voter";
            let (mut lag, mut sessions, mut draining) = (None, None, false);
            for column in columns {
                if let Some(n) = column.strip_prefix("lag ") {
                    lag = n.parse().ok();
                } else if let Some(n) = column.strip_prefix("sessions ") {
                    sessions = n.parse().ok();
                } else if column == "draining" {
                    draining = true;
                }
            }
            members.push(Member {
                id,
                address,
                voter,
                lag,
                sessions,
                draining,
            });
        }
        Some(ClusterStatus {
            node: node_part.strip_prefix("node ")?.parse().ok()?,
            role: role.to_string(),
            term,
            leader,
            last_log,
            applied,
            members,
            storage,
        })
    }

    pub fn member(&self, id: u64) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// Whether the cluster has exactly `count` members and all of them vote.
    pub fn has_voters(&self, count: usize) -> bool {
        self.members.len() == count && self.members.iter().all(|m| m.voter)
    }
}

fn number_or_zero(text: &str) -> u64 {
    text.trim().parse().unwrap_or(0)
}

impl Wharf {
    /// This node's `wharf cluster status`, or `None` if the command failed (node down).
    pub fn try_cluster_status(&self) -> Option<ClusterStatus> {
        let output = self.cli(&["cluster", "status"], None);
        if !output.status.success() {
            return None;
        }
        ClusterStatus::parse(&String::from_utf8_lossy(&output.stdout))
    }

    /// This node's `wharf cluster status`; panics if the command fails or prints
    /// something unexpected.
    pub fn cluster_status(&self) -> ClusterStatus {
        let output = self.cli(&["cluster", "status"], None);
        let text = String::from_utf8_lossy(&output.stdout);
        match (output.status.success(), ClusterStatus::parse(&text)) {
            (true, Some(status)) => status,
            _ => panic!(
                "wharf cluster status on node {} failed or is unreadable\n{}",
                self.node_id(),
                describe(&output)
            ),
        }
    }

    /// Account names in this node's copy of the store (`wharf user list`, a local read).
    pub fn user_names(&self) -> Vec<String> {
        let output = self.cli(&["user", "list"], None);
        super::assert_success(&output, "wharf user list");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split('\t').next())
            .filter(|name| !name.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The join token new members pass with `--join-token` (`wharf cluster token`).
    pub fn join_token(&self) -> String {
        let output = self.cli(&["cluster", "token"], None);
        super::assert_success(&output, "wharf cluster token");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Waits until this node has applied log index `index` (the index a write through
    /// another node reached), so a read or login here sees that write.
    pub fn wait_until_applied(&self, index: u64, limit: Duration) {
        poll_until(
            limit,
            &format!("node {} applies {index}", self.node_id()),
            || {
                self.try_cluster_status()
                    .filter(|status| status.applied >= index)
                    .map(|_| ())
            },
        );
    }
}

/// `n` members of one cluster: the first one initialised it, the others joined it.
/// Dropping it kills every process.
pub struct Cluster {
    pub nodes: Vec<Wharf>,
}

impl Cluster {
    /// Starts a cluster of `size` nodes with the quick-start account on the first.
    pub fn start(size: usize) -> Cluster {
        Cluster::start_with(size, WharfOptions::default())
    }

    /// Starts node 1 with `options`, then `size - 1` nodes that join it with the same
    /// options minus the `--user` accounts, and waits until all of them vote. Every
    /// node's `user`/`password` is the first node's account, which is cluster-wide.
    pub fn start_with(size: usize, options: WharfOptions) -> Cluster {
        let first = Wharf::start(options.clone());
        let (address, token) = (first.cluster_addr(), first.join_token());
        let mut nodes = vec![first];
        for _ in 1..size {
            let mut node = Wharf::start(options.clone().no_users().join(&address, &token));
            node.user = nodes[0].user.clone();
            node.password = nodes[0].password.clone();
            nodes.push(node);
        }
        let cluster = Cluster { nodes };
        cluster.wait_for_voters(size, FORMATION_TIMEOUT);
        cluster
    }

    /// The `n`th node started, counting from 1.
    pub fn node(&self, n: usize) -> &Wharf {
        &self.nodes[n - 1]
    }

    pub fn node_mut(&mut self, n: usize) -> &mut Wharf {
        &mut self.nodes[n - 1]
    }

    /// The position (for `node`) of the node with Raft id `id`.
    pub fn position_of(&self, id: u64) -> usize {
        self.nodes
            .iter()
            .position(|node| node.node_id() == id)
            .map(|index| index + 1)
            .unwrap_or_else(|| panic!("no node has Raft id {id}"))
    }

    /// Waits until node 1 reports `count` members, all voters, and a leader.
    pub fn wait_for_voters(&self, count: usize, limit: Duration) -> ClusterStatus {
        poll_until(limit, &format!("{count} voters and a leader"), || {
            self.node(1)
                .try_cluster_status()
                .filter(|status| status.has_voters(count) && status.leader.is_some())
        })
    }
}

/// Calls `check` every 100 ms until it returns `Some`, at most `limit`; panics naming
/// `what` otherwise.
pub fn poll_until<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A logged-in FTPS session (`cross_node.py --hold`) that connects to `first`, moves to
/// `second`, transfers once and then waits, control connection open, until `release`.
pub struct HeldSession {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    flag: PathBuf,
    /// What the client printed up to `HOLDING`.
    pub seen: Vec<String>,
}

impl HeldSession {
    /// Starts the session and returns once it holds; panics if it failed before.
    pub fn start(first: &Wharf, second: &Wharf) -> HeldSession {
        let flag = first
            .root()
            .join(format!("release-{}.flag", rand::random::<u32>()));
        let mut child = python("cross_node.py")
            .args([
                "--first",
                &first.explicit_port.to_string(),
                "--second",
                &second.explicit_port.to_string(),
                "--user",
                &first.user,
                "--password",
                &first.password,
                "--hold",
            ])
            .arg(&flag)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the held session");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.expect("read the held session's output");
            seen.push(line.clone());
            if line == "HOLDING" {
                break;
            }
        }
        assert!(
            seen.iter().any(|l| l == "TRANSFER-OK"),
            "the held session did not transfer before holding: {seen:?}"
        );
        HeldSession {
            child,
            lines,
            flag,
            seen,
        }
    }

    /// Lets the session transfer again on its open control connection and quit;
    /// panics unless that succeeded.
    pub fn release(mut self, limit: Duration) {
        std::fs::write(&self.flag, b"go").expect("write the release flag");
        let rest: Vec<String> = self.lines.by_ref().map_while(Result::ok).collect();
        let (status, killed) = wait_or_kill(&mut self.child, limit);
        assert!(
            !killed && status.success() && rest.iter().any(|l| l == "AFTER-OK"),
            "the held session failed after its release ({status}, killed: {killed}): {rest:?}"
        );
    }
}
