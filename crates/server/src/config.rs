//! What the engine needs to know to run: addresses, policy and limits. The
//! binary builds this from the command line and the config file.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Explicit FTPS (AUTH TLS) control listener; `None` disables it.
    pub listen: Option<SocketAddr>,
    /// Implicit FTPS (TLS from the first byte) control listener.
    pub implicit_listen: Option<SocketAddr>,
    pub passive_ports: PortRange,
    /// Address advertised in PASV replies instead of the control connection's
    /// local address (NAT, load balancers).
    pub passive_address: Option<IpAddr>,
    /// Load balancers whose connections (control and passive data) start with a
    /// PROXY protocol header naming the client.
    pub trusted_proxies: crate::proxy_protocol::TrustedProxies,
    pub policy: TlsPolicy,
    pub limits: Limits,
    /// Source networks allowed and denied for every connection (global list).
    pub sources: crate::address_rules::AddressRules,
    pub defender: crate::defender::DefenderConfig,
    /// xferlog-format transfer log; `None` logs transfers only through tracing.
    pub xferlog: Option<PathBuf>,
    /// How long SIGTERM waits for running transfers before exiting.
    pub shutdown_grace: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (lo, hi) = s
            .split_once('-')
            .ok_or_else(|| format!("passive port range {s:?} must look like 50000-50999"))?;
        let first: u16 = lo.trim().parse().map_err(|_| format!("bad port {lo:?}"))?;
        let last: u16 = hi.trim().parse().map_err(|_| format!("bad port {hi:?}"))?;
        if first == 0 || first > last {
            return Err(format!(
                "passive port range {s:?} must be non-empty and above 0"
            ));
        }
        Ok(Self { first, last })
    }

    pub fn len(&self) -> u32 {
        u32::from(self.last - self.first) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// The TLS rules of DESIGN.md §2. Every relaxation is logged at start-up.
#[derive(Clone, Debug)]
pub struct TlsPolicy {
    /// USER/PASS only after AUTH TLS (530 otherwise).
    pub require_tls_login: bool,
    /// Data transfers only with PROT P (521 otherwise).
    pub require_prot_p: bool,
    /// What a data connection's TLS session must prove, unless the user has a
    /// rule of their own (`crate::data_tls`).
    pub data_tls: crate::data_tls::DataTlsRule,
    /// Client networks whose data connections need not resume a session
    /// (clients that cannot); each such session is logged once.
    pub data_tls_any_from: Vec<ipnet::IpNet>,
    /// PORT and EPRT allowed (always only to the control peer, ports >= 1024).
    pub allow_active: bool,
}

impl Default for TlsPolicy {
    fn default() -> Self {
        Self {
            require_tls_login: true,
            require_prot_p: true,
            data_tls: crate::data_tls::DataTlsRule::SameUser,
            data_tls_any_from: Vec::new(),
            allow_active: true,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_per_ip: usize,
    pub idle_timeout: Duration,
    pub data_timeout: Duration,
    /// Time allowed from connect to a successful login (slowloris guard).
    pub login_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    /// Longest command line accepted, in bytes (RFC 959 sets none; vsftpd uses 4096).
    pub max_line: usize,
    /// Over-long or undecodable lines tolerated before the connection is closed.
    pub max_bad_lines: u32,
    pub login_failure_delay: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1000,
            max_per_ip: 64,
            idle_timeout: Duration::from_secs(600),
            data_timeout: Duration::from_secs(300),
            login_timeout: Duration::from_secs(60),
            tls_handshake_timeout: Duration::from_secs(15),
            max_line: 4096,
            max_bad_lines: 3,
            login_failure_delay: Duration::from_secs(1),
        }
    }
}
