//! TLS for Wharf: server identity (certificate chain and key), the rustls
//! configuration used on control and data connections, the session binding
//! that ties a data connection's TLS session to its control connection, and
//! the cluster-wide pieces: shared ticket keys, certificates by SNI swapped at
//! run time, and the internal CA.

mod binding;
mod ca;
mod client_auth;
mod config;
mod der;
mod identity;
mod inspect;
mod resolver;
#[cfg(test)]
mod test_support;
mod ticketer;
mod unverified;

pub use binding::{ResumptionWitness, SessionBinding, SessionClaim};
pub use ca::{certificate_request, CaError, ClusterCa, IssuedCert, LeafUsage, SignedCert};
pub use client_auth::{
    CertMatch, ClientAuth, ClientCertMode, ClientIdentity, TrustAnchors, TrustError,
};
pub use config::{TlsConfigs, TlsError};
pub use identity::{IdentityError, ServerIdentity};
pub use inspect::{
    certificate_pem, fingerprint, inspect, inspect_leaf_pem, leaf_fingerprint, CertificateFacts,
};
pub use resolver::{certified_key, CertificateError, CertificateSet, DEFAULT_NAME};
pub use ticketer::{TicketKey, TicketKeyError, TicketKeyRing};
pub use tokio_rustls;
pub use unverified::AnyServerCertificate;
