//! `wharf cert acme add|list|remove`.

use anyhow::{bail, Context, Result};
use wharf_store::records::AcmeCertRecord;
use wharf_store::Command;

use crate::admin::{connect, expect_done};
use crate::cli::AcmeCommand;

/// A name HTTP-01 can validate: a DNS name, not an IP address or a wildcard.
fn check_domain(domain: &str) -> Result<String> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if domain.starts_with("*.") {
        bail!("{domain}: wildcard names need DNS-01 validation, which Wharf does not do");
    }
    if domain.parse::<std::net::IpAddr>().is_ok() {
        bail!("{domain}: ACME certificates here are for DNS names, not addresses");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if domain.len() > 253 || !domain.contains('.') || !domain.split('.').all(label_ok) {
        bail!("{domain:?} is not a fully qualified DNS name");
    }
    Ok(domain)
}

pub async fn run(command: AcmeCommand) -> Result<()> {
    match command {
        AcmeCommand::Add {
            name,
            domains,
            directory,
            directory_ca,
            contact,
            target,
        } => {
            let domains = domains
                .iter()
                .map(|d| check_domain(d))
                .collect::<Result<Vec<_>>>()?;
            if !directory.starts_with("https://") {
                bail!("the ACME directory must be an https:// URL, not {directory:?}");
            }
            let directory_roots_pem = match &directory_ca {
                Some(path) => {
                    let pem = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    if !pem.contains("-----BEGIN CERTIFICATE-----") {
                        bail!("{} holds no PEM certificate", path.display());
                    }
                    pem
                }
                None => String::new(),
            };
            let name = name.to_ascii_lowercase();
            let mut record = AcmeCertRecord::new(&name, domains.clone(), &directory);
            record.directory_roots_pem = directory_roots_pem;
            record.contact = contact;
            let admin = connect(&target).await?;
            expect_done(
                admin.write(Command::PutAcmeCert(record)).await?,
                "ACME certificate",
            )?;
            println!(
                "the leader now obtains {name} for {} from {directory}; `wharf cert acme list` shows progress",
                domains.join(", ")
            );
        }
        AcmeCommand::List { target } => {
            for a in connect(&target).await?.acme().await? {
                let order = if a.order_url.is_empty() {
                    "none".to_owned()
                } else {
                    format!(
                        "{} (since {}, node {})",
                        a.order_url, a.order_started, a.order_started_by
                    )
                };
                println!(
                    "{}\tdomains={}\tdirectory={}\torder={}\tfailures={}\tlast_error={}",
                    a.name,
                    a.domains.join(","),
                    a.directory,
                    order,
                    a.failures,
                    if a.last_error.is_empty() {
                        "-"
                    } else {
                        &a.last_error
                    }
                );
            }
        }
        AcmeCommand::Remove { name, target } => {
            let name = name.to_ascii_lowercase();
            let admin = connect(&target).await?;
            expect_done(
                admin
                    .write(Command::RemoveAcmeCert { name: name.clone() })
                    .await?,
                &format!("ACME certificate {name}"),
            )?;
            println!("{name} is no longer obtained by ACME; the current certificate stays served");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_domain;

    #[test]
    fn only_names_http_01_can_validate_are_taken() {
        assert_eq!(check_domain("FTP.Example.com.").unwrap(), "ftp.example.com");
        for bad in [
            "*.example.com",
            "192.0.2.1",
            "localhost",
            "a..b",
            "-a.example.com",
            "a b.example.com",
        ] {
            assert!(check_domain(bad).is_err(), "{bad} accepted");
        }
    }
}
