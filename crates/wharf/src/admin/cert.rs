//! `wharf cert list|rotate|import|trust|acme`: the certificates the cluster
//! serves.

use anyhow::{Context, Result};

use wharf_node::certificates;

use crate::admin::{connect, expect_done};
use crate::cli::CertCommand;

pub async fn run(command: CertCommand) -> Result<()> {
    match command {
        CertCommand::Trust(command) => super::trust::command(command).await?,
        CertCommand::Acme(command) => super::acme::run(command).await?,
        CertCommand::List { target } => {
            for c in connect(&target).await?.certs().await? {
                println!(
                    "{}\tsource={}\tgeneration={}\tnot_after={}\tsha256={}",
                    c.name,
                    c.source,
                    c.generation,
                    if c.not_after == 0 {
                        "unknown".to_owned()
                    } else {
                        c.not_after.to_string()
                    },
                    c.fingerprint
                );
            }
        }
        CertCommand::Rotate { name, target } => {
            let admin = connect(&target).await?;
            let name = name.to_ascii_lowercase();
            let current = admin
                .certs()
                .await?
                .into_iter()
                .find(|c| c.name == name)
                .with_context(|| format!("no certificate named {name:?}"))?;
            anyhow::ensure!(
                current.source == "InternalCa" || current.source == "Acme",
                "{name} is {}: only internal-CA and ACME certificates rotate; import a new one with `wharf cert import`",
                current.source
            );
            expect_done(
                admin
                    .write(wharf_store::Command::PutSetting {
                        key: format!("{}{name}", certificates::ROTATE_PREFIX),
                        value: current.generation.to_string(),
                    })
                    .await?,
                "rotation request",
            )?;
            println!(
                "asked the leader to replace {name} generation {}",
                current.generation
            );
        }
        CertCommand::Import {
            name,
            cert,
            key,
            target,
        } => {
            let chain_pem = std::fs::read_to_string(&cert)
                .with_context(|| format!("cannot read {}", cert.display()))?;
            let key_pem = std::fs::read_to_string(&key)
                .with_context(|| format!("cannot read {}", key.display()))?;
            wharf_tls::certified_key(chain_pem.as_bytes(), key_pem.as_bytes()).with_context(
                || {
                    format!(
                        "{} and {} are not a usable certificate and key",
                        cert.display(),
                        key.display()
                    )
                },
            )?;
            let admin = connect(&target).await?;
            let name = name.to_ascii_lowercase();
            let generation = admin
                .certs()
                .await?
                .iter()
                .find(|c| c.name == name)
                .map_or(1, |c| c.generation + 1);
            expect_done(
                admin
                    .write(wharf_store::Command::PutCert(
                        certificates::imported_record(&name, chain_pem, key_pem, generation),
                    ))
                    .await?,
                "certificate import",
            )?;
            println!(
                "imported {name} (generation {generation}); every node serves it within seconds"
            );
        }
    }
    Ok(())
}
