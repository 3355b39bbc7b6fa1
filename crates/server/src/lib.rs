//! The Wharf FTPS engine: listeners, control sessions, data channels, limits
//! and the transfer log. It reaches accounts, TLS material and files only
//! through the boundaries in `accounts`, `wharf_tls` and `fs` (DESIGN.md §3).

pub mod accounts;
pub mod address_rules;
pub mod bans;
mod commands;
pub mod config;
mod control;
mod data;
pub mod data_tls;
pub mod defender;
pub mod fs;
mod guard;
mod listener;
pub mod metrics;
pub mod proxy_protocol;
mod replies;
mod session;
mod state;
mod stream;
mod throttle;
pub mod verified;
pub mod xferlog;

use std::sync::Arc;

use tokio::sync::watch;

pub use accounts::{Accounts, User};
pub use config::{EngineConfig, Limits, PortRange, TlsPolicy};
pub use listener::{Engine, EngineControl, EngineError, Listening};

/// The engine's boundaries (DESIGN.md §3): where accounts, bans and files
/// come from.
pub struct Boundaries {
    pub accounts: Arc<dyn Accounts>,
    pub bans: Arc<dyn bans::BanList>,
    pub storage: Arc<dyn fs::Storage>,
}

/// What every session shares.
pub struct Shared {
    pub config: EngineConfig,
    pub tls: wharf_tls::TlsConfigs,
    pub accounts: Arc<dyn Accounts>,
    pub bans: Arc<dyn bans::BanList>,
    pub storage: Arc<dyn fs::Storage>,
    guard: Arc<guard::Guard>,
    defender: Arc<defender::Defender>,
    xferlog: xferlog::TransferLog,
    metrics: Arc<metrics::EngineMetrics>,
    /// This node's logged-in control connections, for the data-connection rule.
    logged_in: Arc<data_tls::LoggedInSessions>,
    /// Flips to true on SIGTERM: sessions finish their transfer, then close.
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    /// Scores an offence of `ip`; when that bans the address, the ban is
    /// audited and offered to the cluster's ban list (the node's own copy
    /// holds until the cluster has recorded it). True when `ip` is now banned.
    pub(crate) fn offence(&self, ip: std::net::IpAddr, offence: defender::Offence) -> bool {
        let defender::Verdict::Banned(duration) = self.defender.record(ip, offence) else {
            return false;
        };
        let reason = offence.describe();
        tracing::warn!(target: "audit", event = "ban", %ip, reason, seconds = duration.as_secs(),
            "address banned");
        let bans = self.bans.clone();
        let local = self.defender.clone();
        tokio::spawn(async move {
            if bans.ban(ip, duration, reason).await {
                local.lift_ban(ip);
            }
        });
        true
    }
}
