//! `wharf cert trust`: the trust anchors for client certificates (mutual
//! TLS) in the replicated `trust` table (every node follows it:
//! `wharf_node::trust`).

use anyhow::{Context, Result};
use wharf_store::records::TrustAnchorRecord;
use wharf_store::Command;

use crate::admin::{connect, expect_done};
use crate::cli::TrustCommand;

pub async fn command(command: TrustCommand) -> Result<()> {
    match command {
        TrustCommand::Add { name, cert, target } => {
            let cert_pem = std::fs::read_to_string(&cert)
                .with_context(|| format!("cannot read {}", cert.display()))?;
            // The same check every node makes before it trusts the anchor.
            wharf_tls::TrustAnchors::new()
                .replace(&[(name.clone(), cert_pem.clone())])
                .with_context(|| format!("{} is not a usable CA certificate", cert.display()))?;
            let record = TrustAnchorRecord {
                name: name.clone(),
                cert_pem,
                added: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            };
            let admin = connect(&target).await?;
            expect_done(
                admin.write(Command::PutTrustAnchor(record)).await?,
                "trust anchor",
            )?;
            println!("every node trusts client certificates issued by {name} within seconds");
        }
        TrustCommand::List { target } => {
            for t in connect(&target).await?.trust_anchors().await? {
                println!(
                    "{}\tnot_after={}\tsha256={}",
                    t.name, t.not_after, t.fingerprint
                );
            }
        }
        TrustCommand::Remove { name, target } => {
            let admin = connect(&target).await?;
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
