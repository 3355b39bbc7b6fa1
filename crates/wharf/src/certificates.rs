//! Certificates across the cluster (DESIGN.md §5): the `certs` table is the
//! source of truth; every node hot-swaps its `CertificateSet` when the table
//! changes, and the leader issues and renews internal-CA certificates at 2/3
//! of their lifetime (or when an operator asks with `wharf cert rotate`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use rustls::sign::CertifiedKey;
use wharf_cluster::ClusterHandle;
use wharf_store::records::{CaRecord, CertRecord, CertSource};
use wharf_store::Command;
use wharf_tls::{CertificateSet, ClusterCa, LeafUsage, DEFAULT_NAME};

/// Settings key prefix an operator writes (value: the generation to replace)
/// to ask for a new certificate.
pub const ROTATE_PREFIX: &str = "rotate_cert:";

#[derive(Clone, Debug)]
pub struct CertPolicy {
    /// Names (DNS or IP) the default certificate is issued for.
    pub server_names: Vec<String>,
    pub lifetime: Duration,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// On the bootstrapping node: create the cluster CA and the default
/// certificate (imported from `--cert/--key`, else issued by the CA).
pub async fn bootstrap(
    node: &ClusterHandle,
    imported: Option<(String, String)>,
    policy: &CertPolicy,
) -> Result<()> {
    if node.reader.ca()?.is_none() {
        let ca = ClusterCa::generate("wharf")?;
        node.write(Command::PutCa(CaRecord {
            cert_pem: ca.cert_pem().to_owned(),
            key_pem: ca.key_pem().to_owned(),
        }))
        .await?;
        tracing::info!("created the cluster certificate authority");
    }
    if node.reader.certs()?.iter().any(|c| c.name == DEFAULT_NAME) {
        return Ok(());
    }
    let record = match imported {
        Some((chain_pem, key_pem)) => CertRecord {
            name: DEFAULT_NAME.into(),
            chain_pem,
            key_pem,
            not_before: 0,
            not_after: 0,
            source: CertSource::Imported,
            generation: 1,
        },
        None => issue(node, DEFAULT_NAME, &policy.server_names, policy.lifetime, 1)?,
    };
    node.write(Command::PutCert(record)).await?;
    Ok(())
}

fn issue(
    node: &ClusterHandle,
    name: &str,
    names: &[String],
    lifetime: Duration,
    generation: u64,
) -> Result<CertRecord> {
    let ca = node.reader.ca()?.context("the cluster has no CA yet")?;
    let ca = ClusterCa::from_pem(&ca.cert_pem, &ca.key_pem)?;
    let issued = ca.issue(names, lifetime, LeafUsage::Server)?;
    Ok(CertRecord {
        name: name.to_owned(),
        chain_pem: issued.chain_pem.clone(),
        key_pem: issued.key_pem.clone(),
        not_before: now(),
        not_after: issued.not_after,
        source: CertSource::InternalCa,
        generation,
    })
}

/// Keeps `set` equal to the table on this node; `fallback` (the node's own
/// self-signed certificate) serves until the table has a default.
pub async fn follow_table(
    node: Arc<ClusterHandle>,
    set: Arc<CertificateSet>,
    fallback: Arc<CertifiedKey>,
) {
    let mut changes = node.reader.changes();
    let mut seen: HashMap<String, u64> = HashMap::new();
    loop {
        match node.reader.certs() {
            Ok(records) => {
                let generations: HashMap<String, u64> = records
                    .iter()
                    .map(|r| (r.name.clone(), r.generation))
                    .collect();
                if generations != seen {
                    let mut map = HashMap::new();
                    for r in &records {
                        match wharf_tls::certified_key(r.chain_pem.as_bytes(), r.key_pem.as_bytes())
                        {
                            Ok(key) => {
                                map.insert(r.name.clone(), key);
                            }
                            Err(e) => {
                                tracing::error!(name = %r.name, "unusable certificate in the cluster: {e}")
                            }
                        }
                    }
                    map.entry(DEFAULT_NAME.to_owned())
                        .or_insert_with(|| fallback.clone());
                    set.replace(map);
                    tracing::info!(certificates = ?generations, "serving certificates from the cluster");
                    seen = generations;
                }
            }
            Err(e) => tracing::error!("cannot read certificates: {e}"),
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Leader job: renew internal-CA certificates at 2/3 of their lifetime, or
/// when `rotate_cert:<name>` asks for it. Idempotent across leader changes.
pub async fn renew_while_leader(node: Arc<ClusterHandle>, policy: CertPolicy) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if node.raft.current_leader().await != Some(node.node_id) {
            continue;
        }
        if let Err(e) = renew_once(&node, &policy).await {
            tracing::warn!("certificate renewal postponed: {e}");
        }
    }
}

async fn renew_once(node: &ClusterHandle, policy: &CertPolicy) -> Result<()> {
    let now = now();
    for cert in node.reader.certs()? {
        // A request names the generation it wants replaced, so it is served
        // exactly once whichever node leads.
        let requested = node
            .reader
            .setting(&format!("{ROTATE_PREFIX}{}", cert.name))?
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|generation| generation == cert.generation);
        let internal = cert.source == CertSource::InternalCa;
        let lifetime = cert.not_after.saturating_sub(cert.not_before);
        let due = internal && cert.not_after > 0 && now >= cert.not_before + lifetime * 2 / 3;
        if !(due || requested) {
            continue;
        }
        if !internal {
            tracing::warn!(name = %cert.name, "rotation asked for an imported certificate: import a new one with `wharf cert import`");
            continue;
        }
        let names = if cert.name == DEFAULT_NAME {
            policy.server_names.clone()
        } else {
            vec![cert.name.clone()]
        };
        let lifetime = if lifetime > 0 {
            Duration::from_secs(lifetime)
        } else {
            policy.lifetime
        };
        let renewed = issue(node, &cert.name, &names, lifetime, cert.generation + 1)?;
        tracing::info!(name = %cert.name, generation = renewed.generation, not_after = renewed.not_after,
            "issued a new certificate from the cluster CA");
        node.write(Command::PutCert(renewed)).await?;
    }
    Ok(())
}
