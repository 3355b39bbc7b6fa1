//! The config file and its merge with the command line into the engine's
//! configuration and the account list.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use wharf_server::accounts::{
    command_list, hash_password, Account, LoginMethod, Permissions, Quota, User,
};
use wharf_server::address_rules::AddressRules;
use wharf_server::data_tls::DataTlsRule;
use wharf_server::defender::DefenderConfig;
use wharf_server::{EngineConfig, Limits, PortRange, TlsPolicy};
use wharf_tls::{CertMatch, ClientCertMode};

use wharf_node::certificates::CertPolicy;
use wharf_node::{ClientCerts, Join, JoinToken, NodeConfig};

use crate::cli::{LogFormat, ServeArgs, StorageMode};

#[derive(Deserialize, Serialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub implicit_listen: Option<String>,
    pub http_listen: Option<String>,
    /// HTTP address answering only ACME HTTP-01 challenges.
    pub acme_listen: Option<String>,
    pub pasv_ports: Option<String>,
    pub pasv_address: Option<String>,
    #[serde(default)]
    pub proxy_from: Vec<IpNet>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub xferlog: Option<PathBuf>,
    /// JSON lines of logins, bans, admin actions and certificate changes.
    pub audit_log: Option<PathBuf>,
    /// 32 bytes in hex sealing private keys and ticket keys in the store.
    pub secrets_key_file: Option<PathBuf>,
    pub shutdown_grace: Option<u64>,
    pub cluster_listen: Option<String>,
    pub cluster_advertise: Option<String>,
    pub cluster_source: Option<std::net::IpAddr>,
    /// Cluster address of a member to join through (first start only).
    pub join: Option<String>,
    pub join_token: Option<String>,
    /// A file holding the join token (a mounted secret); waited for.
    pub join_token_file: Option<PathBuf>,
    pub raft_snapshot_logs: Option<u64>,
    pub raft_snapshot_min_log_mib: Option<u64>,
    pub raft_snapshot_piece_kib: Option<u64>,
    pub store_wal_mib: Option<u64>,
    pub store_write_buffer_mib: Option<u64>,
    pub store_block_cache_mib: Option<u64>,
    #[serde(default)]
    pub server_names: Vec<String>,
    pub cert_lifetime: Option<u64>,
    pub storage: Option<StorageMode>,
    pub replication: Option<usize>,
    pub repair_after: Option<u64>,
    pub chunk_grace: Option<u64>,
    #[serde(default)]
    pub policy: FilePolicy,
    #[serde(default)]
    pub limits: FileLimits,
    #[serde(default)]
    pub access: FileAccess,
    #[serde(default)]
    pub defender: FileDefender,
    #[serde(default, rename = "user")]
    pub users: Vec<FileUser>,
}

#[derive(Deserialize, Serialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct FilePolicy {
    pub require_tls_login: Option<bool>,
    pub require_prot_p: Option<bool>,
    /// `false` is the old spelling of `data_tls = "any"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_ssl_reuse: Option<bool>,
    /// What a data connection's TLS session must prove: reuse, same-user, any.
    pub data_tls: Option<String>,
    /// Client networks whose data connections need not resume a session.
    pub data_tls_any_from: Option<Vec<String>>,
    pub allow_active: Option<bool>,
    /// Client certificates on the explicit listener: off, optional, required.
    pub client_certs: Option<String>,
    pub implicit_client_certs: Option<String>,
}

#[derive(Deserialize, Serialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    pub max_connections: Option<usize>,
    pub max_per_ip: Option<usize>,
    pub idle_timeout: Option<u64>,
    pub data_timeout: Option<u64>,
    pub login_timeout: Option<u64>,
    pub login_failure_delay_ms: Option<u64>,
}

/// The global source lists: `[access]`.
#[derive(Deserialize, Serialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileAccess {
    #[serde(default)]
    pub allow: Vec<IpNet>,
    #[serde(default)]
    pub deny: Vec<IpNet>,
}

/// `[defender]`: scores per offence, the threshold that bans, its allow list.
#[derive(Deserialize, Serialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileDefender {
    pub threshold: Option<u32>,
    pub observation_seconds: Option<u64>,
    pub ban_seconds: Option<u64>,
    pub login_failure: Option<u32>,
    pub protocol_abuse: Option<u32>,
    pub flood: Option<u32>,
    #[serde(default)]
    pub allow: Vec<IpNet>,
}

impl FileDefender {
    fn config(&self) -> DefenderConfig {
        let d = DefenderConfig::default();
        let secs = Duration::from_secs;
        DefenderConfig {
            threshold: self.threshold.unwrap_or(d.threshold),
            observation: self.observation_seconds.map(secs).unwrap_or(d.observation),
            ban_duration: self.ban_seconds.map(secs).unwrap_or(d.ban_duration),
            login_failure: self.login_failure.unwrap_or(d.login_failure),
            protocol_abuse: self.protocol_abuse.unwrap_or(d.protocol_abuse),
            flood: self.flood.unwrap_or(d.flood),
            allow: self.allow.clone(),
            ..d
        }
    }
}

#[derive(Deserialize, Serialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileUser {
    pub name: String,
    pub password_hash: String,
    pub home: PathBuf,
    #[serde(default = "all_permissions")]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub allow: Vec<IpNet>,
    #[serde(default)]
    pub deny: Vec<IpNet>,
    /// Commands the user may send beyond the session basics; empty = all.
    #[serde(default)]
    pub commands: Vec<String>,
    /// password (default), certificate or both.
    pub login: Option<String>,
    /// What this user's data connections must prove: reuse, same-user or any
    /// (default: the server's `policy.data_tls`).
    pub data_tls: Option<String>,
    /// cn:NAME, san:NAME or sha256:FINGERPRINT; default: the CN is the name.
    #[serde(default)]
    pub certificates: Vec<String>,
    #[serde(default)]
    pub max_sessions: usize,
    #[serde(default)]
    pub upload_rate: u64,
    #[serde(default)]
    pub download_rate: u64,
    /// Cluster storage only; 0 = unlimited.
    #[serde(default)]
    pub quota_bytes: u64,
    #[serde(default)]
    pub quota_files: u64,
}

fn all_permissions() -> Vec<String> {
    vec!["all".into()]
}

/// What `wharf serve` runs with: the node's configuration, and how the
/// binary logs.
pub struct Settings {
    pub node: NodeConfig,
    pub log_format: LogFormat,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }
}

fn parse_listen(value: Option<&str>, default: &str) -> Result<Option<SocketAddr>> {
    let v = value.unwrap_or(default);
    if v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .with_context(|| format!("{v:?} is not an address like 127.0.0.1:2121 (or \"off\")"))
}

impl Settings {
    pub fn from_args(args: &ServeArgs) -> Result<Self> {
        let file = match &args.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("wharf-data"));
        let listen = parse_listen(
            args.listen.as_deref().or(file.listen.as_deref()),
            "127.0.0.1:2121",
        )?;
        let implicit_listen = parse_listen(
            args.implicit_listen
                .as_deref()
                .or(file.implicit_listen.as_deref()),
            "127.0.0.1:2990",
        )?;
        if listen.is_none() && implicit_listen.is_none() {
            bail!("both listeners are off: nothing to serve");
        }
        let http_choice = args.http_listen.as_deref().or(file.http_listen.as_deref());
        let http_listen =
            parse_listen(http_choice, "127.0.0.1:9180")?.map(|addr| (addr, http_choice.is_some()));
        let acme_listen = parse_listen(
            args.acme_listen.as_deref().or(file.acme_listen.as_deref()),
            "off",
        )?;
        let passive_ports = PortRange::parse(
            args.pasv_ports
                .as_deref()
                .or(file.pasv_ports.as_deref())
                .unwrap_or("50000-50999"),
        )
        .map_err(anyhow::Error::msg)?;
        let passive_address = match args
            .pasv_address
            .as_deref()
            .or(file.pasv_address.as_deref())
        {
            None => None,
            Some(a) => Some(resolve_host(a)?),
        };
        let defaults = TlsPolicy::default();
        let fp = &file.policy;
        let policy = TlsPolicy {
            require_tls_login: !args.allow_plain_login
                && fp.require_tls_login.unwrap_or(defaults.require_tls_login),
            require_prot_p: !args.allow_plain_data
                && fp.require_prot_p.unwrap_or(defaults.require_prot_p),
            data_tls: if args.no_require_ssl_reuse || fp.require_ssl_reuse == Some(false) {
                DataTlsRule::Any
            } else {
                match args.data_tls.as_deref().or(fp.data_tls.as_deref()) {
                    Some(rule) => DataTlsRule::parse(rule).map_err(anyhow::Error::msg)?,
                    None => defaults.data_tls,
                }
            },
            data_tls_any_from: if args.data_tls_any_from.is_empty() {
                fp.data_tls_any_from.clone().unwrap_or_default()
            } else {
                args.data_tls_any_from.clone()
            }
            .iter()
            .map(|net| {
                net.parse::<IpNet>()
                    .with_context(|| format!("data_tls_any_from {net:?} is not a CIDR network"))
            })
            .collect::<Result<_>>()?,
            allow_active: !args.no_active && fp.allow_active.unwrap_or(defaults.allow_active),
        };
        let d = Limits::default();
        let fl = &file.limits;
        let secs = Duration::from_secs;
        let limits = Limits {
            max_connections: args
                .max_connections
                .or(fl.max_connections)
                .unwrap_or(d.max_connections),
            max_per_ip: args.max_per_ip.or(fl.max_per_ip).unwrap_or(d.max_per_ip),
            idle_timeout: args
                .idle_timeout
                .or(fl.idle_timeout)
                .map(secs)
                .unwrap_or(d.idle_timeout),
            data_timeout: args
                .data_timeout
                .or(fl.data_timeout)
                .map(secs)
                .unwrap_or(d.data_timeout),
            login_timeout: fl.login_timeout.map(secs).unwrap_or(d.login_timeout),
            login_failure_delay: fl
                .login_failure_delay_ms
                .map(Duration::from_millis)
                .unwrap_or(d.login_failure_delay),
            ..d
        };
        let cert = match (
            args.cert.clone().or(file.cert.clone()),
            args.key.clone().or(file.key.clone()),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => bail!("--cert and --key go together"),
        };
        let xferlog = args
            .xferlog
            .clone()
            .or(file.xferlog.clone())
            .unwrap_or_else(|| data_dir.join("xferlog"));
        let audit_log = args
            .audit_log
            .clone()
            .or(file.audit_log.clone())
            .unwrap_or_else(|| data_dir.join("audit.log"));
        let mut accounts = Vec::new();
        for u in &file.users {
            accounts.push(file_account(u)?);
        }
        for spec in &args.users {
            accounts.push(quick_start_account(spec)?);
        }
        let cluster_listen = args
            .cluster_listen
            .as_deref()
            .or(file.cluster_listen.as_deref())
            .unwrap_or("127.0.0.1:7000");
        let cluster_listen: SocketAddr = cluster_listen
            .parse()
            .with_context(|| format!("--cluster-listen {cluster_listen:?} is not HOST:PORT"))?;
        let join = choose_join(
            args.join.clone().or(file.join.clone()),
            args.join_token.clone().or(file.join_token.clone()),
            args.join_token_file
                .clone()
                .or(file.join_token_file.clone()),
        )?;
        let mode = |given: &Option<String>, file: &Option<String>| -> Result<ClientCertMode> {
            given
                .as_deref()
                .or(file.as_deref())
                .map_or(Ok(ClientCertMode::Off), ClientCertMode::parse)
                .map_err(anyhow::Error::msg)
        };
        let client_certs = ClientCerts {
            explicit: mode(&args.client_certs, &fp.client_certs)?,
            implicit: mode(&args.implicit_client_certs, &fp.implicit_client_certs)?,
        };
        let node = NodeConfig {
            client_certs,
            cluster_listen,
            cluster_advertise: args
                .cluster_advertise
                .clone()
                .or(file.cluster_advertise.clone()),
            cluster_source: args.cluster_source.or(file.cluster_source),
            join,
            raft_snapshot_logs: args
                .raft_snapshot_logs
                .or(file.raft_snapshot_logs)
                .unwrap_or(0),
            raft_snapshot_min_log_mib: args
                .raft_snapshot_min_log_mib
                .or(file.raft_snapshot_min_log_mib)
                .unwrap_or(DEFAULT_SNAPSHOT_MIN_LOG_MIB),
            raft_snapshot_piece_kib: args
                .raft_snapshot_piece_kib
                .or(file.raft_snapshot_piece_kib)
                .unwrap_or(DEFAULT_SNAPSHOT_PIECE_KIB),
            store_limits: store_limits(args, &file),
            storage: args.storage.or(file.storage),
            replication: args.replication.map(|r| r as usize).or(file.replication),
            repair_after: Duration::from_secs(
                args.repair_after.or(file.repair_after).unwrap_or(600),
            ),
            chunk_grace: Duration::from_secs(
                args.chunk_grace.or(file.chunk_grace).unwrap_or(3600).max(1),
            ),
            cert_policy: CertPolicy {
                server_names: if !args.server_names.is_empty() {
                    args.server_names.clone()
                } else if !file.server_names.is_empty() {
                    file.server_names.clone()
                } else {
                    vec!["localhost".into(), "127.0.0.1".into()]
                },
                lifetime: Duration::from_secs(
                    args.cert_lifetime
                        .or(file.cert_lifetime)
                        .unwrap_or(90 * 24 * 3600),
                ),
            },
            http_listen,
            acme_listen,
            engine: EngineConfig {
                listen,
                implicit_listen,
                passive_ports,
                passive_address,
                trusted_proxies: wharf_server::proxy_protocol::TrustedProxies::new(pick(
                    &args.proxy_from,
                    &file.proxy_from,
                )),
                policy,
                limits,
                sources: AddressRules {
                    allow: pick(&args.allow_from, &file.access.allow),
                    deny: pick(&args.deny_from, &file.access.deny),
                },
                defender: file.defender.config(),
                xferlog: Some(xferlog),
                shutdown_grace: secs(args.shutdown_grace.or(file.shutdown_grace).unwrap_or(30)),
            },
            data_dir,
            audit_log,
            secrets_key_file: args
                .secrets_key_file
                .clone()
                .or(file.secrets_key_file.clone()),
            cert,
            accounts,
        };
        Ok(Settings {
            node,
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Human),
        })
    }
}

/// How a node joins, from `--join`, `--join-token` and `--join-token-file`.
fn choose_join(
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

/// The command line's list when it gives one, else the config file's.
fn pick(given: &[IpNet], file: &[IpNet]) -> Vec<IpNet> {
    if given.is_empty() { file } else { given }.to_vec()
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

fn file_account(u: &FileUser) -> Result<Account> {
    if argon2::PasswordHash::new(&u.password_hash).is_err() {
        bail!(
            "user {:?}: password_hash is not a PHC string; create one with `wharf hash-password`",
            u.name
        );
    }
    let permissions = Permissions::from_names(&u.permissions)
        .map_err(|e| anyhow::anyhow!("user {:?}: {e}", u.name))?;
    Ok(Account {
        user: User {
            name: u.name.clone(),
            home: u.home.clone(),
            permissions,
            allow: u.allow.clone(),
            deny: u.deny.clone(),
            commands: command_list(&u.commands)
                .map_err(|e| anyhow::anyhow!("user {:?}: {e}", u.name))?,
            login: LoginMethod::parse(u.login.as_deref().unwrap_or("password"))
                .map_err(|e| anyhow::anyhow!("user {:?}: {e}", u.name))?,
            certificates: u
                .certificates
                .iter()
                .map(|rule| CertMatch::parse(rule))
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("user {:?}: {e}", u.name))?,
            max_sessions: u.max_sessions,
            upload_rate: u.upload_rate,
            download_rate: u.download_rate,
            quota: Quota {
                bytes: u.quota_bytes,
                files: u.quota_files,
            },
            data_tls: u
                .data_tls
                .as_deref()
                .map(DataTlsRule::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!("user {:?}: {e}", u.name))?,
        },
        password_hash: u.password_hash.clone(),
    })
}

fn quick_start_account(spec: &str) -> Result<Account> {
    let Some((name, password)) = spec.split_once(':') else {
        bail!("--user {spec:?} must be NAME:PASSWORD");
    };
    if name.is_empty() || name.contains(['/', '\\', '\0']) || name == "." || name == ".." {
        bail!("--user {name:?}: not a usable user name");
    }
    Ok(Account {
        user: User::unrestricted(name, PathBuf::from("home").join(name)),
        password_hash: hash_password(password)
            .map_err(|e| anyhow::anyhow!("cannot hash the password of {name}: {e}"))?,
    })
}

/// MiB of Raft log written before a snapshot is worth building at all.
pub const DEFAULT_SNAPSHOT_MIN_LOG_MIB: u64 = 32;
/// KiB per piece of a snapshot sent to a follower (openraft's default).
pub const DEFAULT_SNAPSHOT_PIECE_KIB: u64 = 3 << 10;

fn store_limits(args: &ServeArgs, file: &FileConfig) -> wharf_store::StoreLimits {
    let defaults = wharf_store::StoreLimits::default();
    let mib = |flag: Option<u64>, key: Option<u64>, default: u64| {
        flag.or(key).map_or(default, |m| m.saturating_mul(1 << 20))
    };
    wharf_store::StoreLimits {
        wal_bytes: mib(args.store_wal_mib, file.store_wal_mib, defaults.wal_bytes),
        write_buffer_bytes: mib(
            args.store_write_buffer_mib,
            file.store_write_buffer_mib,
            defaults.write_buffer_bytes as u64,
        ) as usize,
        block_cache_bytes: mib(
            args.store_block_cache_mib,
            file.store_block_cache_mib,
            defaults.block_cache_bytes as u64,
        ) as usize,
    }
}
