//! The cluster's ACME account with a directory: made once, kept (sealed) in
//! the store, so every leader speaks to the CA as the same account and can
//! continue the orders of the others.

use std::sync::Arc;

use bytes::Bytes;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{Account, AccountCredentials, BodyWrapper, NewAccount};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use wharf_cluster::ClusterHandle;
use wharf_store::records::{AcmeAccountRecord, AcmeCertRecord};
use wharf_store::Command;

use super::error::{AcmeError, AtCa};

/// An HTTPS client that trusts only `roots_pem` (a test CA such as pebble's,
/// or a private ACME server's).
fn client_trusting(roots_pem: &str) -> Result<Box<dyn instant_acme::HttpClient>, AcmeError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(roots_pem.as_bytes()) {
        let cert =
            cert.map_err(|e| AcmeError::Roots(format!("holds a malformed certificate: {e}")))?;
        roots.add(cert).map_err(|e| {
            AcmeError::Roots(format!("holds a certificate not usable as a root: {e}"))
        })?;
    }
    if roots.is_empty() {
        return Err(AcmeError::Roots("holds no certificate".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    Ok(Box::new(
        Client::builder(TokioExecutor::new()).build::<_, BodyWrapper<Bytes>>(https),
    ))
}

fn builder(acme: &AcmeCertRecord) -> Result<instant_acme::AccountBuilder, AcmeError> {
    if acme.directory_roots_pem.is_empty() {
        Ok(Account::builder()?)
    } else {
        Ok(Account::builder_with_http(client_trusting(
            &acme.directory_roots_pem,
        )?))
    }
}

/// The cluster's account with `acme.directory`: from the store, or made now
/// and stored for the next leader.
pub async fn account(node: &ClusterHandle, acme: &AcmeCertRecord) -> Result<Account, AcmeError> {
    if let Some(stored) = node.reader().acme_account(&acme.directory)? {
        let credentials: AccountCredentials = serde_json::from_str(&stored.credentials)?;
        return builder(acme)?
            .from_credentials(credentials)
            .await
            .at_ca(format!(
                "cannot reach the ACME directory {}",
                acme.directory
            ));
    }
    let contact: Vec<&str> = acme.contact.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contact,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (account, credentials) = builder(acme)?
        .create(&new, acme.directory.clone(), None)
        .await
        .at_ca(format!("cannot open an account with {}", acme.directory))?;
    let record = AcmeAccountRecord {
        directory: acme.directory.clone(),
        credentials: serde_json::to_string(&credentials)?,
    };
    // Sealed by the leader when the cluster has a secrets key.
    node.write(Command::PutAcmeAccount(record)).await?;
    tracing::info!(target: "audit", event = "acme_account", directory = %acme.directory,
        account = %account.id(), "opened an ACME account");
    Ok(account)
}
