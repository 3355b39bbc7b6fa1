//! The merged settings, checked and turned into the node's configuration:
//! addresses parsed, durations and sizes in their units, names of rules
//! resolved. Defaults are already in place (`super::layers`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use wharf_server::address_rules::AddressRules;
use wharf_server::data_tls::DataTlsRule;
use wharf_server::defender::DefenderConfig;
use wharf_server::proxy_protocol::TrustedProxies;
use wharf_server::{EngineConfig, Limits, PortRange, TlsPolicy};
use wharf_tls::ClientCertMode;

use wharf_node::certificates::CertPolicy;
use wharf_node::{ClientCerts, Join, JoinToken, NodeConfig};

use super::schema::{DefenderSettings, LimitSettings, Policy, ServeSettings};

/// The most copies of a chunk `--replication` may ask for.
const MAX_REPLICATION: u64 = 16;

/// Fills in the defaults that follow from other settings (the logs live in
/// the data directory unless placed elsewhere) and spells old keys as
/// today's (`require_ssl_reuse = false` is `data_tls = "any"`).
pub fn normalize(s: &mut ServeSettings) {
    if s.policy.require_ssl_reuse.take() == Some(false) {
        s.policy.data_tls = Some(DataTlsRule::Any.as_str().to_owned());
    }
    let data_dir = s.data_dir.clone().unwrap_or_default();
    s.xferlog.get_or_insert_with(|| data_dir.join("xferlog"));
    s.audit_log
        .get_or_insert_with(|| data_dir.join("audit.log"));
}

/// `s` holds every default (`super::layers`); `http_given` says whether the
/// HTTP address was chosen rather than defaulted, which decides whether
/// failing to bind it stops the node.
pub fn node_config(s: &ServeSettings, http_given: bool) -> Result<NodeConfig> {
    let data_dir = s.data_dir.clone().unwrap_or_default();
    let listen = listen_address(s.listen.as_deref())?;
    let implicit_listen = listen_address(s.implicit_listen.as_deref())?;
    if listen.is_none() && implicit_listen.is_none() {
        bail!("both listeners are off: nothing to serve");
    }
    let passive_address = s.pasv_address.as_deref().map(resolve_host).transpose()?;
    let replication = match s.replication {
        Some(r) if !(1..=MAX_REPLICATION).contains(&r) => {
            bail!("replication {r} is not between 1 and {MAX_REPLICATION}")
        }
        r => r.map(|r| r as usize),
    };
    let inline_max = match s.inline_max {
        Some(n) if n > wharf_cluster::chunks::MAX_INLINE as u64 => {
            bail!(
                "inline_max {n} is above {} bytes",
                wharf_cluster::chunks::MAX_INLINE
            )
        }
        n => n.map(|n| n as usize),
    };
    if s.chunk_grace == Some(0) {
        bail!("chunk_grace must be at least 1 second");
    }
    if s.upload_grace == Some(0) {
        bail!("upload_grace must be at least 1 second");
    }
    let secs = |v: Option<u64>| Duration::from_secs(v.unwrap_or_default());
    Ok(NodeConfig {
        client_certs: ClientCerts {
            explicit: cert_mode(&s.policy.client_certs)?,
            implicit: cert_mode(&s.policy.implicit_client_certs)?,
        },
        cluster_listen: {
            let addr = s.cluster_listen.as_deref().unwrap_or_default();
            addr.parse()
                .with_context(|| format!("--cluster-listen {addr:?} is not HOST:PORT"))?
        },
        cluster_advertise: s.cluster_advertise.clone(),
        cluster_source: s.cluster_source,
        join: choose_join(
            s.join.clone(),
            s.join_token.clone(),
            s.join_token_file.clone(),
        )?,
        raft_snapshot_logs: s.raft_snapshot_logs.unwrap_or_default(),
        raft_snapshot_min_log_mib: s.raft_snapshot_min_log_mib.unwrap_or_default(),
        raft_snapshot_piece_kib: s.raft_snapshot_piece_kib.unwrap_or_default(),
        store_limits: wharf_store::StoreLimits {
            wal_bytes: mib(s.store_wal_mib),
            write_buffer_bytes: mib(s.store_write_buffer_mib) as usize,
            block_cache_bytes: mib(s.store_block_cache_mib) as usize,
        },
        storage: s.storage,
        s3: wharf_node::S3Config {
            endpoint: s.s3.endpoint.clone(),
            bucket: s.s3.bucket.clone(),
            prefix: s.s3.prefix.clone(),
            region: s.s3.region.clone(),
            path_style: s.s3.path_style,
            credentials_file: s.s3.credentials_file.clone(),
            ca_file: s.s3.ca_file.clone(),
            part_size_mib: s.s3.part_size_mib,
            copy_max_mib: s.s3.copy_max_mib,
        },
        replication,
        inline_max,
        repair_after: secs(s.repair_after),
        chunk_grace: secs(s.chunk_grace),
        upload_grace: secs(s.upload_grace),
        cert_policy: CertPolicy {
            server_names: s.server_names.clone(),
            lifetime: secs(s.cert_lifetime),
        },
        http_listen: listen_address(s.http_listen.as_deref())?.map(|a| (a, http_given)),
        acme_listen: listen_address(s.acme_listen.as_deref())?,
        engine: EngineConfig {
            listen,
            implicit_listen,
            passive_ports: PortRange::parse(s.pasv_ports.as_deref().unwrap_or_default())
                .map_err(anyhow::Error::msg)?,
            passive_address,
            trusted_proxies: TrustedProxies::new(s.proxy_from.clone()),
            policy: tls_policy(&s.policy)?,
            limits: limits(&s.limits),
            sources: AddressRules {
                allow: s.access.allow.clone(),
                deny: s.access.deny.clone(),
            },
            defender: defender(&s.defender),
            xferlog: s.xferlog.clone(),
            shutdown_grace: secs(s.shutdown_grace),
        },
        audit_log: s
            .audit_log
            .clone()
            .unwrap_or_else(|| data_dir.join("audit.log")),
        data_dir,
        secrets_key_file: s.secrets_key_file.clone(),
        cert: match (&s.cert, &s.key) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            _ => bail!("--cert and --key go together"),
        },
        accounts: Vec::new(),
    })
}

fn tls_policy(p: &Policy) -> Result<TlsPolicy> {
    let data_tls = DataTlsRule::parse(p.data_tls.as_deref().unwrap_or_default())
        .map_err(anyhow::Error::msg)?;
    let d = TlsPolicy::default();
    Ok(TlsPolicy {
        require_tls_login: p.require_tls_login.unwrap_or(d.require_tls_login),
        require_prot_p: p.require_prot_p.unwrap_or(d.require_prot_p),
        data_tls,
        data_tls_any_from: p.data_tls_any_from.clone(),
        allow_active: p.allow_active.unwrap_or(d.allow_active),
    })
}

fn limits(l: &LimitSettings) -> Limits {
    let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
    let d = Limits::default();
    Limits {
        max_connections: l.max_connections.unwrap_or(d.max_connections),
        max_per_ip: l.max_per_ip.unwrap_or(d.max_per_ip),
        idle_timeout: secs(l.idle_timeout, d.idle_timeout),
        data_timeout: secs(l.data_timeout, d.data_timeout),
        login_timeout: secs(l.login_timeout, d.login_timeout),
        login_failure_delay: l
            .login_failure_delay_ms
            .map_or(d.login_failure_delay, Duration::from_millis),
        ..d
    }
}

fn defender(s: &DefenderSettings) -> DefenderConfig {
    let d = DefenderConfig::default();
    let secs = Duration::from_secs;
    DefenderConfig {
        threshold: s.threshold.unwrap_or(d.threshold),
        observation: s.observation_seconds.map_or(d.observation, secs),
        ban_duration: s.ban_seconds.map_or(d.ban_duration, secs),
        login_failure: s.login_failure.unwrap_or(d.login_failure),
        protocol_abuse: s.protocol_abuse.unwrap_or(d.protocol_abuse),
        flood: s.flood.unwrap_or(d.flood),
        allow: s.allow.clone(),
        ..d
    }
}

fn cert_mode(name: &Option<String>) -> Result<ClientCertMode> {
    name.as_deref()
        .map_or(Ok(ClientCertMode::Off), ClientCertMode::parse)
        .map_err(anyhow::Error::msg)
}

fn mib(value: Option<u64>) -> u64 {
    value.unwrap_or_default().saturating_mul(1 << 20)
}

/// An address to listen on, or `None` for "off".
fn listen_address(value: Option<&str>) -> Result<Option<SocketAddr>> {
    let v = value.unwrap_or("off");
    if v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .with_context(|| format!("{v:?} is not an address like 127.0.0.1:2121 (or \"off\")"))
}

/// How a node joins, from `--join`, `--join-token` and `--join-token-file`.
pub fn choose_join(
    member: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
) -> Result<Option<Join>> {
    let token = match (token, token_file) {
        (Some(_), Some(_)) => bail!("give the join token or a file holding it, not both"),
        (Some(t), None) => Some(JoinToken::Given(t)),
        (None, Some(f)) => Some(JoinToken::File(f)),
        (None, None) => None,
    };
    match (member, token) {
        (Some(member), Some(token)) => Ok(Some(Join { member, token })),
        (None, None) => Ok(None),
        (Some(_), None) => {
            bail!("--join needs --join-token or --join-token-file (`wharf cluster token` on a member prints it)")
        }
        (None, Some(_)) => bail!("a join token was given without --join MEMBER_ADDRESS"),
    }
}

fn resolve_host(host: &str) -> Result<IpAddr> {
    if let Ok(ip) = host.parse() {
        return Ok(ip);
    }
    use std::net::ToSocketAddrs;
    (host, 0)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve passive address {host:?}"))?
        .find(|a| a.is_ipv4())
        .map(|a| a.ip())
        .with_context(|| format!("passive address {host:?} has no IPv4 address"))
}
