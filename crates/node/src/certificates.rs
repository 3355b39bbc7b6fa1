//! Certificates across the cluster (DESIGN.md §5): the `certs` table is the
//! source of truth; every node hot-swaps its `CertificateSet` when the table
//! changes, and the leader issues and renews internal-CA certificates at 2/3
//! of their lifetime (or when an operator asks with `wharf cert rotate`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::unix_now as now;
use crate::follow::follow;
use crate::leader::LeaderJob;

use crate::error::NodeError;
use rustls::sign::CertifiedKey;
use wharf_cluster::ClusterHandle;
use wharf_store::records::{CertRecord, CertSource};
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

/// On the bootstrapping node: create the cluster CA and the default
/// certificate (imported from `--cert/--key`, else issued by the CA).
pub async fn bootstrap(
    node: &ClusterHandle,
    imported: Option<(String, String)>,
    policy: &CertPolicy,
) -> Result<(), NodeError> {
    if node
        .reader()
        .certs()?
        .iter()
        .any(|c| c.name == DEFAULT_NAME)
    {
        return Ok(());
    }
    let record = match imported {
        Some((chain_pem, key_pem)) => imported_record(DEFAULT_NAME, chain_pem, key_pem, 1),
        None => issue(node, DEFAULT_NAME, &policy.server_names, policy.lifetime, 1)?,
    };
    tracing::info!(target: "audit", event = "cert", name = DEFAULT_NAME, source = ?record.source,
        not_after = record.not_after, "the cluster's first default certificate");
    node.write(Command::PutCert(record)).await?;
    Ok(())
}

/// The record of an operator's PEM chain and key, its validity read from
/// the leaf (0 when unreadable: such a certificate is never warned about).
pub fn imported_record(
    name: &str,
    chain_pem: String,
    key_pem: String,
    generation: u64,
) -> CertRecord {
    let facts = wharf_tls::inspect_leaf_pem(&chain_pem);
    CertRecord {
        name: name.to_owned(),
        not_before: facts.as_ref().map_or(0, |f| f.not_before),
        not_after: facts.as_ref().map_or(0, |f| f.not_after),
        chain_pem,
        key_pem,
        source: CertSource::Imported,
        generation,
    }
}

fn issue(
    node: &ClusterHandle,
    name: &str,
    names: &[String],
    lifetime: Duration,
    generation: u64,
) -> Result<CertRecord, NodeError> {
    let ca = node.reader().ca()?.ok_or(NodeError::NoCa)?;
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
    let mut seen: HashMap<String, u64> = HashMap::new();
    follow(node, move |node| {
        match node.reader().certs() {
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
        None
    })
    .await
}

/// Leader job: renew internal-CA certificates at 2/3 of their lifetime, or
/// when `rotate_cert:<name>` asks for it (ACME certificates: `acme/`).
/// Idempotent across leader changes. Also warns about certificates nobody
/// here renews (imported) as they near their end.
pub struct Renewal {
    policy: CertPolicy,
    /// Warnings given, so each threshold is crossed once per leadership.
    warned: HashMap<(String, u64), u64>,
}

impl Renewal {
    pub fn new(policy: CertPolicy) -> Self {
        Self {
            policy,
            warned: HashMap::new(),
        }
    }
}

#[async_trait::async_trait]
impl LeaderJob for Renewal {
    fn name(&self) -> &'static str {
        "certificate renewal"
    }

    fn every(&self) -> Duration {
        Duration::from_secs(1)
    }

    async fn turn(&mut self, node: &Arc<ClusterHandle>) {
        if let Ok(certs) = node.reader().certs() {
            warn_expiring(&certs, now(), &mut self.warned);
        }
        if let Err(e) = renew_once(node, &self.policy).await {
            tracing::warn!("certificate renewal postponed: {e}");
        }
    }

    fn not_leading(&mut self) {
        self.warned.clear();
    }
}

const DAY: u64 = 24 * 3600;
/// Days before expiry at which the leader warns, tightest first (DESIGN.md §5).
const WARN_DAYS: [u64; 2] = [7, 30];

/// The tightest warning threshold, in days, a certificate has crossed.
fn expiry_threshold(now: u64, not_after: u64) -> Option<u64> {
    if not_after == 0 {
        return None;
    }
    let left = not_after.saturating_sub(now);
    WARN_DAYS.into_iter().find(|days| left <= days * DAY)
}

/// Logs once per certificate generation and threshold.
fn warn_expiring(certs: &[CertRecord], now: u64, warned: &mut HashMap<(String, u64), u64>) {
    // Internal-CA certificates are renewed long before; ACME ones 30 days
    // before expiry, so only the last week says their renewal is failing.
    for cert in certs.iter().filter(|c| c.source != CertSource::InternalCa) {
        let Some(threshold) = expiry_threshold(now, cert.not_after) else {
            continue;
        };
        let acme = cert.source == CertSource::Acme;
        if acme && threshold > 7 {
            continue;
        }
        let key = (cert.name.clone(), cert.generation);
        if warned.insert(key, threshold) == Some(threshold) {
            continue;
        }
        let days_left = cert.not_after.saturating_sub(now) / DAY;
        let remedy = if acme {
            "its ACME renewal is failing: see `wharf cert acme list`"
        } else {
            "import a new one with `wharf cert import`"
        };
        tracing::warn!(
            name = %cert.name,
            generation = cert.generation,
            days_left,
            not_after = cert.not_after,
            "certificate {} expires within {threshold} days: {remedy}",
            cert.name
        );
    }
}

async fn renew_once(node: &ClusterHandle, policy: &CertPolicy) -> Result<(), NodeError> {
    let now = now();
    for cert in node.reader().certs()? {
        // A request names the generation it wants replaced, so it is served
        // exactly once whichever node leads.
        let requested = node
            .reader()
            .setting(&format!("{ROTATE_PREFIX}{}", cert.name))?
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|generation| generation == cert.generation);
        let internal = cert.source == CertSource::InternalCa;
        let lifetime = cert.not_after.saturating_sub(cert.not_before);
        let due = internal && cert.not_after > 0 && now >= cert.not_before + lifetime * 2 / 3;
        if !(due || requested) || cert.source == CertSource::Acme {
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
        tracing::info!(target: "audit", event = "cert", name = %cert.name,
            generation = renewed.generation, not_after = renewed.not_after,
            "issued a new certificate from the cluster CA");
        node.write(Command::PutCert(renewed)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_at_thirty_then_seven_days() {
        let now = 1_000_000_000;
        assert_eq!(expiry_threshold(now, 0), None);
        assert_eq!(expiry_threshold(now, now + 31 * DAY), None);
        assert_eq!(expiry_threshold(now, now + 30 * DAY), Some(30));
        assert_eq!(expiry_threshold(now, now + 8 * DAY), Some(30));
        assert_eq!(expiry_threshold(now, now + 7 * DAY), Some(7));
        assert_eq!(expiry_threshold(now, now - DAY), Some(7));
    }

    #[test]
    fn each_threshold_is_reported_once_per_generation() {
        let now = 1_000_000_000;
        let mut cert = imported_record("default", String::new(), String::new(), 1);
        cert.not_after = now + 20 * DAY;
        let mut warned = HashMap::new();
        warn_expiring(std::slice::from_ref(&cert), now, &mut warned);
        assert_eq!(warned.get(&("default".to_owned(), 1)), Some(&30));
        cert.not_after = now + 5 * DAY;
        warn_expiring(std::slice::from_ref(&cert), now, &mut warned);
        assert_eq!(warned.get(&("default".to_owned(), 1)), Some(&7));
        cert.source = CertSource::InternalCa;
        cert.generation = 2;
        warn_expiring(std::slice::from_ref(&cert), now, &mut warned);
        assert_eq!(warned.len(), 1, "internal-CA certificates renew themselves");
        cert.source = CertSource::Acme;
        cert.generation = 3;
        cert.not_after = now + 20 * DAY;
        warn_expiring(std::slice::from_ref(&cert), now, &mut warned);
        assert_eq!(warned.len(), 1, "an ACME certificate renews 30 days ahead");
        cert.not_after = now + 6 * DAY;
        warn_expiring(std::slice::from_ref(&cert), now, &mut warned);
        assert_eq!(
            warned.get(&("default".to_owned(), 3)),
            Some(&7),
            "a week before expiry its renewal is failing"
        );
    }
}
