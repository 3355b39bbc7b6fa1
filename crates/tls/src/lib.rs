//! TLS for Wharf: server identity (certificate chain and key), the rustls
//! configuration used on control and data connections, and the session binding
//! that ties a data connection's TLS session to its control connection.

mod binding;
mod config;
mod identity;

pub use binding::{ResumptionWitness, SessionBinding};
pub use config::{TlsConfigs, TlsError};
pub use identity::{IdentityError, ServerIdentity};
pub use tokio_rustls;
