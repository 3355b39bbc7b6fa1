//! What a node tells the operator as it starts: where it listens, which
//! certificate it serves, and every policy relaxed from the secure defaults.

use wharf_server::data_tls::DataTlsRule;

use crate::{Node, NodeConfig};

/// Logs the summary; `running` is `None` when only the configuration is
/// checked (`wharf config check`).
pub fn log(config: &NodeConfig, running: Option<&Node>) {
    let e = &config.engine;
    let (explicit, implicit) = match running {
        Some(node) => (node.listening().explicit, node.listening().implicit),
        None => (e.listen, e.implicit_listen),
    };
    let show = |a: Option<std::net::SocketAddr>| a.map_or("off".to_owned(), |a| a.to_string());
    tracing::info!(
        explicit = %show(explicit),
        implicit = %show(implicit),
        passive_ports = %e.passive_ports,
        passive_address = %e.passive_address.map_or("(control connection address)".to_owned(), |a| a.to_string()),
        data_dir = %config.data_dir.display(),
        users = config.accounts.len(),
        "wharf {} listening: explicit FTPS on {}, implicit FTPS on {}",
        env!("CARGO_PKG_VERSION"), show(explicit), show(implicit)
    );
    if let Some(certs) = running.map(Node::certificates) {
        if let Some(key) = certs.get(wharf_tls::DEFAULT_NAME) {
            let fingerprint = key.cert.first().map(|c| {
                use sha2::Digest;
                sha2::Sha256::digest(c.as_ref())
                    .iter()
                    .map(|b| format!("{b:02X}"))
                    .collect::<Vec<_>>()
                    .join(":")
            });
            tracing::info!(names = ?certs.names(), "default certificate SHA-256 fingerprint {}", fingerprint.unwrap_or_default());
        }
    }
    let p = &e.policy;
    if !p.require_tls_login {
        tracing::warn!("policy relaxed: logins allowed before AUTH TLS (passwords may cross the network in clear)");
    }
    if !p.require_prot_p {
        tracing::warn!("policy relaxed: unencrypted data connections (PROT C) allowed");
    }
    match p.data_tls {
        DataTlsRule::Any => tracing::warn!(
            "policy relaxed: data connections need not resume a TLS session (--data-tls any)"
        ),
        DataTlsRule::Reuse => tracing::info!(
            "data connections must resume a TLS session of their own control connection"
        ),
        DataTlsRule::SameUser => {}
    }
    if !p.data_tls_any_from.is_empty() {
        tracing::warn!(networks = ?p.data_tls_any_from,
            "policy relaxed: data connections from these networks need not resume a TLS session");
    }
    if !p.allow_active {
        tracing::info!("active mode (PORT/EPRT) disabled");
    }
}
