//! Certificates from an ACME directory (RFC 8555; Let's Encrypt, or pebble
//! in the tests), obtained and renewed by the Raft leader (DESIGN.md §5).
//!
//! What the operator configures (`wharf cert acme add`) and every order in
//! flight live in the replicated `acme` table, so:
//! - whichever node the CA's validator reaches answers the HTTP-01 challenge
//!   from its own store (`http.rs`);
//! - a new leader continues the order its predecessor placed (same account,
//!   same certificate key, same order URL) instead of starting over;
//! - a deposed leader cannot overwrite its successor's progress: each change
//!   names the order it started from (`SetAcmeOrder`, `CompleteAcmeOrder`).

mod client;
mod error;
mod order;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wharf_cluster::ClusterHandle;
use wharf_store::records::{AcmeCertRecord, CertRecord, CertSource};

pub use error::AcmeError;

use crate::certificates::ROTATE_PREFIX;
use crate::clock::unix_now as now;
use crate::leader::LeaderJob;

/// How often the leader looks at the ACME certificates.
const TICK: Duration = Duration::from_secs(2);
/// The most one attempt may take, a CA that stops answering included (the
/// HTTP client has no timeout of its own): validation and issuance polls
/// take 90 s each at the most, the rest is a handful of requests.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(300);
/// Renew this long before expiry at the most (certbot's habit for 90-day
/// certificates), and at 2/3 of the lifetime for shorter ones.
const RENEW_BEFORE: u64 = 30 * 24 * 3600;

/// Why a certificate needs a new order, if it does.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    /// No certificate of that name yet, or not one from ACME.
    Missing,
    /// The certificate does not cover the configured domains.
    DomainsChanged,
    /// Within the renewal window.
    Expiring,
    /// `wharf cert rotate` asked for it.
    Requested,
}

/// Whether `current` (the `certs` entry for `acme.name`) must be replaced.
/// `rotate` is the generation an operator asked to replace, if any.
pub fn due(
    acme: &AcmeCertRecord,
    current: Option<&CertRecord>,
    rotate: Option<u64>,
    now: u64,
) -> Option<Due> {
    let Some(cert) = current.filter(|c| c.source == CertSource::Acme) else {
        return Some(Due::Missing);
    };
    if rotate == Some(cert.generation) {
        return Some(Due::Requested);
    }
    let covered = wharf_tls::inspect_leaf_pem(&cert.chain_pem)
        .map(|facts| facts.dns_names)
        .unwrap_or_default();
    let mut wanted: Vec<String> = acme.domains.iter().map(|d| d.to_lowercase()).collect();
    let mut covered: Vec<String> = covered.iter().map(|d| d.to_lowercase()).collect();
    wanted.sort();
    covered.sort();
    if wanted != covered {
        return Some(Due::DomainsChanged);
    }
    let lifetime = cert.not_after.saturating_sub(cert.not_before);
    let window = RENEW_BEFORE.min(lifetime / 3);
    (now + window >= cert.not_after).then_some(Due::Expiring)
}

/// Wait after `failures` failed attempts in a row: 10 s doubling, at most
/// an hour (a CA's rate limits count failed validations).
pub fn backoff(failures: u32) -> Duration {
    let secs = 10u64.saturating_mul(1 << failures.min(10).saturating_sub(1));
    Duration::from_secs(secs.min(3600))
}

/// Leader job: for each ACME certificate, continue the order in flight or
/// place one when the certificate is due.
#[derive(Default)]
pub struct Orders {
    /// Certificates whose last attempt failed, and when to try again.
    not_before: HashMap<String, Instant>,
}

#[async_trait::async_trait]
impl LeaderJob for Orders {
    fn name(&self) -> &'static str {
        "ACME orders"
    }

    fn every(&self) -> Duration {
        TICK
    }

    async fn turn(&mut self, node: &Arc<ClusterHandle>) {
        let records = match node.reader().acme_certs() {
            Ok(records) => records,
            Err(e) => {
                tracing::error!("cannot read the ACME certificates: {e}");
                return;
            }
        };
        for acme in records {
            if self
                .not_before
                .get(&acme.name)
                .is_some_and(|t| Instant::now() < *t)
            {
                continue;
            }
            let attempt = tokio::time::timeout(ATTEMPT_LIMIT, step(node, &acme)).await;
            let outcome = attempt.unwrap_or_else(|_| Err(AcmeError::Timeout(ATTEMPT_LIMIT)));
            if let Err(e) = outcome {
                let failures = acme.failures.saturating_add(1);
                let wait = backoff(failures);
                tracing::warn!(name = %acme.name, failures, retry_in = ?wait,
                    "ACME certificate {} not obtained: {e}", acme.name);
                order::record_failure(node, &acme.name, &e).await;
                self.not_before
                    .insert(acme.name.clone(), Instant::now() + wait);
            }
        }
    }

    fn not_leading(&mut self) {
        self.not_before.clear();
    }
}

/// One look at one certificate: continue its order, or place a new one if due.
async fn step(node: &ClusterHandle, acme: &AcmeCertRecord) -> Result<(), AcmeError> {
    let current = node
        .reader()
        .certs()?
        .into_iter()
        .find(|c| c.name.eq_ignore_ascii_case(&acme.name));
    if acme.order.is_none() {
        let rotate = node
            .reader()
            .setting(&format!("{ROTATE_PREFIX}{}", acme.name))?
            .and_then(|v| v.parse().ok());
        let Some(why) = due(acme, current.as_ref(), rotate, now()) else {
            return Ok(());
        };
        tracing::info!(name = %acme.name, reason = ?why, domains = ?acme.domains,
            "ordering a certificate from {}", acme.directory);
    }
    order::advance(node, acme, current.map_or(1, |c| c.generation + 1)).await
}

#[cfg(test)]
mod tests;
