//! The checker: after the faults are healed and the workload has stopped,
//! every node is asked for every file of every session. An acknowledged
//! upload must be there with its exact content on every node; every file
//! must hold something the workload could have left (never bytes it did not
//! send); deleted and renamed-away paths must be gone; all nodes must show
//! the same namespace. Leadership samples must show one leader per term.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use wharf_client::Session;

use crate::model::{sha256, Possible};
use crate::nodes::{Cluster, PASSWORD, USER};
use crate::workload::SessionModel;

#[derive(Debug, Default, Serialize)]
pub struct Findings {
    pub files_checked: u64,
    /// Files whose acknowledged content is missing on some node.
    pub lost: u64,
    /// Files holding content the workload never sent, or files it never made.
    pub corrupted: u64,
    /// Acknowledged resumed uploads found byte-identical on every node.
    pub resumed_verified: u64,
    pub violations: Vec<String>,
}

const LIMIT: Duration = Duration::from_secs(120);

/// What node `i` holds for every path of every session: its SHA-256, or
/// `None` when absent. Content is checked against the model as it is read.
async fn view_of(
    node: usize,
    address: std::net::SocketAddr,
    models: &[SessionModel],
    findings: &mut Findings,
) -> anyhow::Result<BTreeMap<String, Option<String>>> {
    let mut session =
        tokio::time::timeout(LIMIT, Session::login_at(address, USER, PASSWORD)).await??;
    let mut view = BTreeMap::new();
    for model in models {
        let listed: BTreeSet<String> = tokio::time::timeout(LIMIT, session.names(&model.dir))
            .await??
            .into_iter()
            .map(|name| format!("{}/{name}", model.dir))
            .collect();
        let paths: BTreeSet<&String> = model.files.keys().chain(listed.iter()).collect();
        for path in paths {
            let content = if listed.contains(path) {
                Some(tokio::time::timeout(LIMIT, session.retrieve_bytes(path)).await??)
            } else {
                None
            };
            findings.files_checked += 1;
            judge(
                node,
                path,
                model.files.get(path),
                content.as_deref(),
                findings,
            );
            view.insert(path.clone(), content.as_deref().map(sha256));
        }
    }
    session.quit().await;
    Ok(view)
}

fn judge(
    node: usize,
    path: &str,
    expected: Option<&Possible>,
    actual: Option<&[u8]>,
    f: &mut Findings,
) {
    let Some(expected) = expected else {
        f.corrupted += 1;
        f.violations.push(format!(
            "node {node}: {path} exists but the workload never made it"
        ));
        return;
    };
    if expected.admits(actual) {
        return;
    }
    match (expected.exact(), actual) {
        (Some(c), None) => {
            f.lost += 1;
            f.violations.push(format!(
                "node {node}: acknowledged {path} ({} bytes) is missing",
                c.len()
            ));
        }
        (_, None) => {
            f.lost += 1;
            f.violations.push(format!(
                "node {node}: {path} is missing, though no operation could have removed it"
            ));
        }
        (_, Some(bytes)) if expected.is_absent() => {
            f.corrupted += 1;
            f.violations.push(format!(
                "node {node}: {path} was deleted or renamed away (acknowledged) but holds {} bytes",
                bytes.len()
            ));
        }
        (_, Some(bytes)) => {
            f.corrupted += 1;
            f.violations.push(format!(
                "node {node}: {path} holds {} bytes (SHA-256 {}) that match no state the workload could have left: {}",
                bytes.len(),
                sha256(bytes),
                describe(expected)
            ));
        }
    }
}

fn describe(p: &Possible) -> String {
    p.0.iter()
        .map(|e| match e {
            crate::model::Expect::Absent => "absent".to_owned(),
            crate::model::Expect::Exact(c) => format!("exactly {} bytes", c.len()),
            crate::model::Expect::PrefixOf { base, extra } => {
                format!("{} bytes then up to {} more", base.len(), extra.len())
            }
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

pub async fn check(cluster: &Cluster, models: &[SessionModel]) -> Findings {
    let mut findings = Findings::default();
    let mut views = Vec::new();
    for node in &cluster.nodes {
        match view_of(node.index, node.ftp(), models, &mut findings).await {
            Ok(view) => views.push((node.index, view)),
            Err(e) => findings.violations.push(format!(
                "node {}: the checker could not read it: {e:#}",
                node.index
            )),
        }
    }
    if let Some(((first, reference), rest)) = views.split_first() {
        for (other, view) in rest {
            for (path, hash) in reference {
                if view.get(path) != Some(hash) {
                    findings.violations.push(format!(
                        "namespaces differ: {path} is {hash:?} on node {first}, {:?} on node {other}",
                        view.get(path)
                    ));
                }
            }
        }
        let resumed: BTreeSet<&String> = models.iter().flat_map(|m| &m.resumed).collect();
        findings.resumed_verified = resumed
            .iter()
            .filter(|p| {
                let expected = models
                    .iter()
                    .find_map(|m| m.files.get(p.as_str()))
                    .and_then(|s| s.exact())
                    .map(|c| sha256(&c.bytes()));
                expected.is_some()
                    && views
                        .iter()
                        .all(|(_, v)| v.get(p.as_str()).cloned().flatten() == expected)
            })
            .count() as u64;
    }
    findings
}
