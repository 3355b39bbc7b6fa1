//! Trust anchors for client certificates (mutual TLS): the replicated `trust`
//! table, followed by every node's listeners, and `wharf cert trust`.

use std::sync::Arc;

use anyhow::{Context, Result};
use wharf_cluster::ClusterHandle;
use wharf_store::records::TrustAnchorRecord;
use wharf_store::Command;
use wharf_tls::TrustAnchors;

use crate::admin::{expect_done, Admin};
use crate::cli::TrustCommand;

/// Keeps `anchors` equal to the `trust` table on this node.
pub async fn follow_table(node: Arc<ClusterHandle>, anchors: Arc<TrustAnchors>) {
    let mut changes = node.reader.changes();
    let mut seen: Option<Vec<(String, String)>> = None;
    loop {
        match node.reader.trust_anchors() {
            Ok(records) => {
                let current: Vec<(String, String)> =
                    records.into_iter().map(|r| (r.name, r.cert_pem)).collect();
                if seen.as_ref() != Some(&current) {
                    match anchors.replace(&current) {
                        Ok(count) => {
                            let names: Vec<&str> =
                                current.iter().map(|(n, _)| n.as_str()).collect();
                            tracing::info!(
                                ?names,
                                certificates = count,
                                "trust anchors for client certificates"
                            );
                        }
                        Err(e) => tracing::error!("trust anchors not changed: {e}"),
                    }
                    seen = Some(current);
                }
            }
            Err(e) => tracing::error!("cannot read the trust anchors: {e}"),
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

pub async fn command(command: TrustCommand) -> Result<()> {
    match command {
        TrustCommand::Add { name, cert, target } => {
            let cert_pem = std::fs::read_to_string(&cert)
                .with_context(|| format!("cannot read {}", cert.display()))?;
            // The same check every node makes before it trusts the anchor.
            TrustAnchors::new()
                .replace(&[(name.clone(), cert_pem.clone())])
                .with_context(|| format!("{} is not a usable CA certificate", cert.display()))?;
            let record = TrustAnchorRecord {
                name: name.clone(),
                cert_pem,
                added: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            };
            let mut admin = Admin::connect(&target).await?;
            expect_done(
                admin.write(Command::PutTrustAnchor(record)).await?,
                "trust anchor",
            )?;
            println!("every node trusts client certificates issued by {name} within seconds");
        }
        TrustCommand::List { target } => {
            for t in Admin::connect(&target).await?.trust_anchors().await? {
                println!(
                    "{}\tnot_after={}\tsha256={}",
                    t.name, t.not_after, t.fingerprint
                );
            }
        }
        TrustCommand::Remove { name, target } => {
            let mut admin = Admin::connect(&target).await?;
            expect_done(
                admin
                    .write(Command::RemoveTrustAnchor { name: name.clone() })
                    .await?,
                &format!("trust anchor {name}"),
            )?;
            println!("no node trusts client certificates from {name} any more");
        }
    }
    Ok(())
}
