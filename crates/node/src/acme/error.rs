//! Why an attempt at an ACME certificate failed; recorded in the `acme`
//! table (`wharf cert acme list` shows it) and retried after a back-off.

use std::time::Duration;

use wharf_cluster::WriteError;
use wharf_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The CA, or the way to it, failed while Wharf was `doing` something.
    #[error("{doing}: {error}")]
    Ca {
        doing: String,
        error: instant_acme::Error,
    },
    #[error("the ACME protocol: {0}")]
    Protocol(#[from] instant_acme::Error),
    /// The CA answered, but not with what an order needs next.
    #[error("{0}")]
    Refused(String),
    /// The operator's `--directory-ca` file.
    #[error("the directory's CA file {0}")]
    Roots(String),
    #[error("TLS to the directory: {0}")]
    Tls(#[from] rustls::Error),
    #[error("the order's key or signing request: {0}")]
    Key(#[from] rcgen::Error),
    #[error("the CA's certificate does not go with the order's key: {0}")]
    Mismatch(wharf_tls::CertificateError),
    #[error("the stored ACME account: {0}")]
    Account(#[from] serde_json::Error),
    #[error("no answer from the CA within {0:?}")]
    Timeout(Duration),
    #[error("the node's store: {0}")]
    Store(#[from] StoreError),
    #[error("cluster write: {0}")]
    Write(#[from] WriteError),
}

/// Names what Wharf was doing when the CA failed.
pub trait AtCa<T> {
    fn at_ca(self, doing: impl Into<String>) -> Result<T, AcmeError>;
}

impl<T> AtCa<T> for Result<T, instant_acme::Error> {
    fn at_ca(self, doing: impl Into<String>) -> Result<T, AcmeError> {
        self.map_err(|error| AcmeError::Ca {
            doing: doing.into(),
            error,
        })
    }
}
