//! The command line. Every `serve` flag can also come from `WHARF_<FLAG>` in
//! the environment or from the TOML config file; the command line wins, then
//! the environment, then the file, then the built-in default.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
pub use wharf_node::StorageMode;

#[derive(Parser, Debug)]
#[command(
    name = "wharf",
    version,
    about = "Wharf: a clustered, highly available FTPS server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Commands,
}

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Run the FTPS server.
    Serve(Box<ServeArgs>),
    /// Manage accounts (stored in the cluster; any node accepts changes).
    #[command(subcommand)]
    User(UserCommand),
    /// Certificates served by every node.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Inspect and change cluster membership.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Addresses banned after failed logins (cluster-wide).
    #[command(subcommand)]
    Ban(BanCommand),
    /// Check a configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Exit 0 when the node's HTTP endpoint says it is ready (for container
    /// health checks); print why not and exit 1 otherwise.
    Health {
        /// The node's --http-listen address.
        #[arg(long, env = "WHARF_HEALTH_ADDR", default_value = "127.0.0.1:9180")]
        http: String,
        /// Only check that the process answers (/healthz), not /readyz.
        #[arg(long)]
        live: bool,
    },
    /// Print an argon2id hash of a password for a `[[user]]` entry in the config file.
    HashPassword {
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate FILE (with any `serve` flags and WHARF_* variables on top) and
    /// print the effective configuration, defaults filled in and secrets
    /// redacted. Exits non-zero, naming the problem, when it is not valid.
    Check {
        file: PathBuf,
        #[command(flatten)]
        serve: Box<ServeArgs>,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add an account.
    Add {
        name: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Home directory; a relative path is taken under each node's data dir (default home/NAME).
        #[arg(long)]
        home: Option<String>,
        /// Only list and download.
        #[arg(long)]
        read_only: bool,
        /// Source network allowed to log in (repeatable; default any).
        #[arg(long = "allow")]
        allow: Vec<String>,
        /// Source network refused even when --allow names it (repeatable).
        #[arg(long = "deny")]
        deny: Vec<String>,
        /// Commands the account may send, e.g. STOR,SIZE (comma-separated or
        /// repeated; login, PASV, TYPE and the like are always allowed; default all).
        #[arg(long = "commands", value_delimiter = ',')]
        commands: Vec<String>,
        /// What the user proves to log in: password, certificate (a trusted
        /// client certificate, no password) or both.
        #[arg(long, default_value = "password")]
        login: String,
        /// How a client certificate maps to the user: cn:NAME, san:NAME or
        /// sha256:FINGERPRINT (repeatable; default: the subject CN is the user name).
        #[arg(long = "cert-match")]
        cert_match: Vec<String>,
        /// Bytes the user's files may take (cluster storage; default unlimited).
        #[arg(long, default_value_t = 0)]
        quota_bytes: u64,
        /// Number of files the user may have (cluster storage; default unlimited).
        #[arg(long, default_value_t = 0)]
        quota_files: u64,
        /// What the user's data connections must prove: reuse, same-user or
        /// any (default: the server's --data-tls).
        #[arg(long)]
        data_tls: Option<String>,
        #[command(flatten)]
        target: crate::admin::Target,
    },
    /// Change an account's settings.
    Modify {
        name: String,
        /// What the user's data connections must prove: reuse, same-user,
        /// any, or default (the server's --data-tls).
        #[arg(long)]
        data_tls: String,
        #[command(flatten)]
        target: crate::admin::Target,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        target: crate::admin::Target,
    },
    /// Change an account's password.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        target: crate::admin::Target,
    },
    /// Remove an account.
    Remove {
        name: String,
        #[command(flatten)]
        target: crate::admin::Target,
    },
}

#[derive(Subcommand, Debug)]
pub enum CertCommand {
    /// Names, sources, validity and generations.
    List {
        #[command(flatten)]
        target: crate::admin::Target,
    },
    /// Ask the leader for a new internal-CA certificate now.
    Rotate {
        /// Certificate name (server name, or "default").
        #[arg(long, default_value = "default")]
        name: String,
        #[command(flatten)]
        target: crate::admin::Target,
    },
    /// Serve a PEM chain and key for a server name (or "default") on every node.
    Import {
        #[arg(long)]
        name: String,
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: PathBuf,
        #[command(flatten)]
        target: crate::admin::Target,
    },
    /// CA certificates that client certificates (mutual TLS) may chain to.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Certificates the leader obtains and renews from an ACME directory.
    #[command(subcommand)]
    Acme(AcmeCommand),
}

#[derive(Subcommand, Debug)]
pub enum AcmeCommand {
    /// Obtain a certificate by ACME (HTTP-01) and keep it renewed; every node
    /// serves it and answers the CA's challenges on its HTTP endpoint
    /// (`--http-listen`), which must be what port 80 of each domain reaches.
    Add {
        /// The certificate's name: a server name (SNI) or "default".
        #[arg(long, default_value = "default")]
        name: String,
        /// A DNS name the certificate covers (repeatable).
        #[arg(long = "domain", required = true)]
        domains: Vec<String>,
        /// The ACME directory URL.
        #[arg(long, default_value = crate::admin::acme::LETS_ENCRYPT)]
        directory: String,
        /// PEM file of the CA the directory's HTTPS certificate chains to
        /// (a private or test CA such as pebble); default: the system's roots.
        #[arg(long)]
        directory_ca: Option<PathBuf>,
        /// Account contact URL, e.g. mailto:ops@example.com (repeatable).
        #[arg(long)]
        contact: Vec<String>,
        #[command(flatten)]
        target: crate::admin::Target,
    },
    /// ACME certificates, their orders in flight and last errors.
    List {
        #[command(flatten)]
        target: crate::admin::Target,
    },
    /// Stop obtaining a certificate by ACME (the certificate stays served
    /// until replaced or removed).
    Remove {
        #[arg(long, default_value = "default")]
        name: String,
        #[command(flatten)]
        target: crate::admin::Target,
    },
}

#[derive(Subcommand, Debug)]
pub enum TrustCommand {
    /// Trust client certificates issued by the CA in a PEM file, on every node.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        cert: PathBuf,
        #[command(flatten)]
        target: crate::admin::Target,
    },
    /// Names, fingerprints and validity of the trusted CAs.
    List {
        #[command(flatten)]
        target: crate::admin::Target,
    },
    /// Stop trusting a CA.
    Remove {
        name: String,
        #[command(flatten)]
        target: crate::admin::Target,
    },
}

#[derive(Subcommand, Debug)]
pub enum BanCommand {
    /// Bans in force: address, until (unix seconds), reason.
    List {
        #[command(flatten)]
        target: crate::admin::Target,
    },
    /// Lift the ban of an address (or network) on every node.
    Remove {
        address: String,
        #[command(flatten)]
        target: crate::admin::Target,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Members, roles, leader, term, log indexes, drain state and open sessions.
    Status {
        #[command(flatten)]
        target: crate::admin::Target,
    },
    /// Print the join token new nodes pass with --join-token.
    Token {
        /// Data directory of a node on this host.
        #[arg(long, env = "WHARF_DATA_DIR", default_value = "wharf-data")]
        data_dir: PathBuf,
    },
    /// Remove a node from the cluster.
    Remove {
        node_id: u64,
        #[command(flatten)]
        target: crate::admin::Target,
    },
    /// Drain a node before maintenance: it answers new FTPS connections with
    /// 421 and lets open sessions finish (`status` shows how many remain).
    /// Lasts across restarts until `undrain`.
    Drain {
        node_id: u64,
        #[command(flatten)]
        target: crate::admin::Target,
    },
    /// Let a drained node accept FTPS connections again.
    Undrain {
        node_id: u64,
        #[command(flatten)]
        target: crate::admin::Target,
    },
    /// Get an admin client certificate from the cluster CA, for `--admin-cert`
    /// on machines that are not nodes (writes ca.pem, admin.pem, admin.key).
    AdminCert {
        /// Directory to write the three files to (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Validity in days (at most 365).
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=365))]
        days: u64,
        #[command(flatten)]
        target: crate::admin::Target,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "WHARF_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for the generated certificate, home directories of quick-start users and logs.
    #[arg(long, env = "WHARF_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Explicit FTPS control address (AUTH TLS); standard port 21. "off" disables it.
    #[arg(long, env = "WHARF_LISTEN")]
    pub listen: Option<String>,
    /// HTTP endpoint for /metrics, /healthz and /readyz (default
    /// 127.0.0.1:9180; "off" disables it).
    #[arg(long, env = "WHARF_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// HTTP address answering only ACME HTTP-01 challenges (e.g. 0.0.0.0:80),
    /// for exposing port 80 without the metrics (default off; the
    /// --http-listen endpoint answers them too).
    #[arg(long, env = "WHARF_ACME_LISTEN")]
    pub acme_listen: Option<String>,
    /// Implicit FTPS control address (TLS from the first byte); standard port 990. "off" disables it.
    #[arg(long, env = "WHARF_IMPLICIT_LISTEN")]
    pub implicit_listen: Option<String>,
    /// Passive data port range, LO-HI.
    #[arg(long, env = "WHARF_PASV_PORTS")]
    pub pasv_ports: Option<String>,
    /// Address advertised in PASV replies (the public address behind NAT).
    #[arg(long, env = "WHARF_PASV_ADDRESS")]
    pub pasv_address: Option<String>,
    /// Load balancer network (CIDR, repeatable) whose control and passive data
    /// connections start with a PROXY protocol v1/v2 header naming the client;
    /// from there the header is required.
    #[arg(long = "proxy-from", env = "WHARF_PROXY_FROM", value_delimiter = ',')]
    pub proxy_from: Vec<ipnet::IpNet>,
    /// Only these source networks may connect (CIDR, repeatable; default any).
    #[arg(long = "allow-from", env = "WHARF_ALLOW_FROM", value_delimiter = ',')]
    pub allow_from: Vec<ipnet::IpNet>,
    /// Source networks refused even when --allow-from names them (CIDR, repeatable).
    #[arg(long = "deny-from", env = "WHARF_DENY_FROM", value_delimiter = ',')]
    pub deny_from: Vec<ipnet::IpNet>,
    /// PEM certificate chain (leaf first, then intermediates).
    #[arg(long, env = "WHARF_CERT", requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM private key for --cert.
    #[arg(long, env = "WHARF_KEY", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Cluster address for Raft and the admin API.
    #[arg(long, env = "WHARF_CLUSTER_LISTEN")]
    pub cluster_listen: Option<String>,
    /// Address other nodes use to reach this one (default: --cluster-listen).
    #[arg(long, env = "WHARF_CLUSTER_ADVERTISE")]
    pub cluster_advertise: Option<String>,
    /// Local address connections to other nodes leave from (a multi-homed
    /// host's cluster interface; default: the system's choice).
    #[arg(long, env = "WHARF_CLUSTER_SOURCE")]
    pub cluster_source: Option<std::net::IpAddr>,
    /// Join the cluster of the node at this cluster address.
    #[arg(long, env = "WHARF_JOIN")]
    pub join: Option<String>,
    /// Join token printed by `wharf cluster token` on a member.
    #[arg(long, env = "WHARF_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: Option<String>,
    /// File holding the join token (a mounted secret); the node waits for it
    /// to appear, up to 10 minutes, on its first start.
    #[arg(long, env = "WHARF_JOIN_TOKEN_FILE", conflicts_with = "join_token")]
    pub join_token_file: Option<PathBuf>,
    /// Server name for the internal-CA certificate (repeatable; default localhost and 127.0.0.1).
    #[arg(long = "server-name", env = "WHARF_SERVER_NAME")]
    pub server_names: Vec<String>,
    /// Lifetime of internal-CA certificates in seconds (renewed at 2/3).
    #[arg(long, env = "WHARF_CERT_LIFETIME")]
    pub cert_lifetime: Option<u64>,
    /// Where file contents live, fixed when the cluster is created: `cluster`
    /// (replicated; the default) or `local` (each node's disk). Joining nodes
    /// follow the cluster.
    #[arg(long, env = "WHARF_STORAGE", value_parser = storage_mode)]
    pub storage: Option<StorageMode>,
    /// Copies of every chunk with cluster storage (default: 3, or the number
    /// of voters when fewer). Applies cluster-wide.
    #[arg(long, env = "WHARF_REPLICATION", value_parser = clap::value_parser!(u64).range(1..=16))]
    pub replication: Option<u64>,
    /// Seconds a member may stay silent before the leader re-creates its chunk
    /// replicas on other members (default 600).
    #[arg(long, env = "WHARF_REPAIR_AFTER")]
    pub repair_after: Option<u64>,
    /// Seconds an unreferenced chunk file stays on disk before it is deleted
    /// (default 3600). Must exceed the time an upload takes between two
    /// checkpoints (about a second), or its newest chunks could go.
    #[arg(long, env = "WHARF_CHUNK_GRACE", value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_grace: Option<u64>,
    /// Also build a Raft snapshot every N log entries (0: only when the log
    /// since the last snapshot outweighs the state, the default).
    #[arg(long, env = "WHARF_RAFT_SNAPSHOT_LOGS")]
    pub raft_snapshot_logs: Option<u64>,
    /// MiB of Raft log below which no snapshot is built, however small the state.
    #[arg(long, env = "WHARF_RAFT_SNAPSHOT_MIN_LOG_MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub raft_snapshot_min_log_mib: Option<u64>,
    /// KiB per piece when a snapshot is sent to a follower.
    #[arg(long, env = "WHARF_RAFT_SNAPSHOT_PIECE_KIB", value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub raft_snapshot_piece_kib: Option<u64>,
    /// MiB of RocksDB write-ahead log, all column families together.
    #[arg(long, env = "WHARF_STORE_WAL_MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub store_wal_mib: Option<u64>,
    /// MiB of RocksDB memtables, all column families together.
    #[arg(long, env = "WHARF_STORE_WRITE_BUFFER_MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub store_write_buffer_mib: Option<u64>,
    /// MiB of RocksDB block cache (index and filter blocks included).
    #[arg(long, env = "WHARF_STORE_BLOCK_CACHE_MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub store_block_cache_mib: Option<u64>,
    /// Quick-start account NAME:PASSWORD (repeatable); home is DATA_DIR/home/NAME.
    #[arg(long = "user", env = "WHARF_USER")]
    pub users: Vec<String>,
    #[arg(long, env = "WHARF_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Seconds a logged-in control connection may stay silent.
    #[arg(long, env = "WHARF_IDLE_TIMEOUT")]
    pub idle_timeout: Option<u64>,
    /// Seconds a data connection may take to open or stay stalled.
    #[arg(long, env = "WHARF_DATA_TIMEOUT")]
    pub data_timeout: Option<u64>,
    #[arg(long, env = "WHARF_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    #[arg(long, env = "WHARF_MAX_PER_IP")]
    pub max_per_ip: Option<usize>,
    /// Relax: allow USER/PASS before AUTH TLS (passwords cross the network in clear).
    #[arg(long, env = "WHARF_ALLOW_PLAIN_LOGIN")]
    pub allow_plain_login: bool,
    /// Relax: allow unencrypted data connections (PROT C).
    #[arg(long, env = "WHARF_ALLOW_PLAIN_DATA")]
    pub allow_plain_data: bool,
    /// Relax: accept data connections that do not resume a TLS session
    /// (the same as --data-tls any).
    #[arg(long, env = "WHARF_NO_REQUIRE_SSL_REUSE")]
    pub no_require_ssl_reuse: bool,
    /// What a data connection's TLS session must prove: `reuse` (a session of
    /// its own control connection), `same-user` (one this cluster issued to
    /// the same user at the same address; default) or `any`.
    #[arg(long, env = "WHARF_DATA_TLS")]
    pub data_tls: Option<String>,
    /// Client networks (CIDR) whose data connections need not resume a TLS
    /// session at all, for clients that cannot; logged once per session.
    #[arg(
        long = "data-tls-any-from",
        env = "WHARF_DATA_TLS_ANY_FROM",
        value_delimiter = ','
    )]
    pub data_tls_any_from: Vec<String>,
    /// Refuse active mode (PORT/EPRT).
    #[arg(long, env = "WHARF_NO_ACTIVE")]
    pub no_active: bool,
    /// xferlog-format transfer log (default DATA_DIR/xferlog).
    #[arg(long, env = "WHARF_XFERLOG")]
    pub xferlog: Option<PathBuf>,
    /// Audit log, JSON lines of logins, bans, admin actions and certificate
    /// changes (default DATA_DIR/audit.log).
    #[arg(long, env = "WHARF_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,
    /// File holding the key (64 hex digits, `openssl rand -hex 32`) that seals
    /// private keys and ticket keys in the store; the same on every node. The
    /// key may also come as WHARF_SECRETS_KEY itself.
    #[arg(long, env = "WHARF_SECRETS_KEY_FILE")]
    pub secrets_key_file: Option<PathBuf>,
    /// Client certificates on the explicit listener: off, optional or required
    /// (trusted CAs from `wharf cert trust add`).
    #[arg(long, env = "WHARF_CLIENT_CERTS")]
    pub client_certs: Option<String>,
    /// Client certificates on the implicit listener: off, optional or required.
    #[arg(long, env = "WHARF_IMPLICIT_CLIENT_CERTS")]
    pub implicit_client_certs: Option<String>,
    /// Seconds SIGTERM waits for running transfers.
    #[arg(long, env = "WHARF_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<u64>,
    /// Print the effective configuration and exit (as `wharf config check`).
    #[arg(long)]
    pub check_config: bool,
}

/// `--storage cluster|local`.
fn storage_mode(name: &str) -> Result<StorageMode, String> {
    name.parse()
}
