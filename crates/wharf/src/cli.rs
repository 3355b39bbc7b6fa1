//! The command line. Every `serve` flag can also come from `WHARF_<FLAG>` in
//! the environment or from the TOML config file; the command line wins, then
//! the environment, then the file, then the built-in default.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use crate::settings::args::ServeArgs;

/// Let's Encrypt's production directory, `wharf cert acme add`'s default.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

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
    /// Upload events: where they go (sinks) and what was recorded.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Where files' contents live: import objects written to the bucket by
    /// something other than Wharf (s3 storage).
    #[command(subcommand)]
    Storage(StorageCommand),
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
pub enum EventsCommand {
    /// Event sinks: webhooks and NATS subjects the leader delivers to.
    #[command(subcommand)]
    Sink(SinkCommand),
    /// Print recorded events as JSON lines, then each new one as it commits
    /// (until interrupted, or with --no-follow once the last is printed).
    Tail {
        /// Start after this event id (default: the last one recorded, so
        /// only new events; 0: every event still kept).
        #[arg(long)]
        from: Option<u64>,
        #[arg(long)]
        no_follow: bool,
        #[command(flatten)]
        target: Target,
    },
    /// How long events stay when a sink does not take them: past either
    /// limit the oldest are dropped (counted in wharf_events_dropped_total
    /// and written to the audit log). Without options, prints the limits.
    Retention {
        /// Most events kept (default 1,000,000).
        #[arg(long)]
        max_count: Option<u64>,
        /// Oldest event kept, in seconds (default 7 days).
        #[arg(long)]
        max_age: Option<u64>,
        #[command(flatten)]
        target: Target,
    },
    /// The content digest file.uploaded events carry: sha256 (the default)
    /// or none, which spares hashing every uploaded byte. Without a value,
    /// prints the cluster's choice.
    Digest {
        digest: Option<String>,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand, Debug)]
pub enum SinkCommand {
    /// Deliver the events recorded from now on to a webhook (one JSON event
    /// per POST) or a NATS subject (one message per event).
    Add {
        name: String,
        /// HTTP or HTTPS URL to POST each event to.
        #[arg(long, conflicts_with = "nats", required_unless_present = "nats")]
        webhook: Option<String>,
        /// File holding the secret that signs each POST
        /// (X-Wharf-Signature: sha256=HMAC-SHA256 of the body, in hex).
        #[arg(long, requires = "webhook")]
        secret_file: Option<PathBuf>,
        /// PEM roots to trust for an https webhook instead of the system's.
        #[arg(long, requires = "webhook")]
        ca_file: Option<PathBuf>,
        /// POSTs at a time. 1 (the default) delivers in commit order, one
        /// round trip per event; more is faster to a distant endpoint but
        /// events may then arrive out of order (each still at least once).
        #[arg(long, requires = "webhook", default_value_t = 1,
              value_parser = clap::value_parser!(u32).range(1..=64))]
        in_flight: u32,
        /// NATS server URL (nats://HOST:PORT).
        #[arg(long, requires = "subject")]
        nats: Option<String>,
        /// Subject to publish to.
        #[arg(long, requires = "nats")]
        subject: Option<String>,
        /// Only these event types (comma-separated; default all).
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
        /// Only events of this user.
        #[arg(long)]
        user: Option<String>,
        /// Only events about paths under this prefix (as the user sees them).
        #[arg(long)]
        path_prefix: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Each sink: target, filter, delivered position, backlog, oldest
    /// undelivered age and last error.
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Stop delivering to a sink.
    Remove {
        name: String,
        #[command(flatten)]
        target: Target,
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
        target: Target,
    },
    /// Change an account's settings.
    Modify {
        name: String,
        /// What the user's data connections must prove: reuse, same-user,
        /// any, or default (the server's --data-tls).
        #[arg(long)]
        data_tls: String,
        #[command(flatten)]
        target: Target,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Change an account's password.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Remove an account.
    Remove {
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand, Debug)]
pub enum CertCommand {
    /// Names, sources, validity and generations.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Ask the leader for a new internal-CA certificate now.
    Rotate {
        /// Certificate name (server name, or "default").
        #[arg(long, default_value = "default")]
        name: String,
        #[command(flatten)]
        target: Target,
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
        target: Target,
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
        #[arg(long, default_value = LETS_ENCRYPT)]
        directory: String,
        /// PEM file of the CA the directory's HTTPS certificate chains to
        /// (a private or test CA such as pebble); default: the system's roots.
        #[arg(long)]
        directory_ca: Option<PathBuf>,
        /// Account contact URL, e.g. mailto:ops@example.com (repeatable).
        #[arg(long)]
        contact: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// ACME certificates, their orders in flight and last errors.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Stop obtaining a certificate by ACME (the certificate stays served
    /// until replaced or removed).
    Remove {
        #[arg(long, default_value = "default")]
        name: String,
        #[command(flatten)]
        target: Target,
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
        target: Target,
    },
    /// Names, fingerprints and validity of the trusted CAs.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Stop trusting a CA.
    Remove {
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand, Debug)]
pub enum StorageCommand {
    /// List the bucket (with this host's credentials) and record every
    /// object the namespace does not have as a file, owned by the user whose
    /// home holds it; missing directories are made. Names the namespace
    /// already has are left alone.
    Scan {
        /// Only objects under this path (as clients see it from the root,
        /// e.g. /home/alice/incoming); default: the whole bucket.
        #[arg(long, default_value = "/")]
        prefix: String,
        /// Credentials in the AWS shared-credentials format ([default]
        /// profile); else AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
        /// AWS_SESSION_TOKEN.
        #[arg(long, env = "WHARF_S3_CREDENTIALS_FILE")]
        s3_credentials_file: Option<PathBuf>,
        /// PEM file of the CA that signed the endpoint's certificate.
        #[arg(long, env = "WHARF_S3_CA_FILE")]
        s3_ca_file: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand, Debug)]
pub enum BanCommand {
    /// Bans in force: address, until (unix seconds), reason.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Lift the ban of an address (or network) on every node.
    Remove {
        address: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Members, roles, leader, term, log indexes, drain state and open sessions.
    Status {
        #[command(flatten)]
        target: Target,
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
        target: Target,
    },
    /// Drain a node before maintenance: it answers new FTPS connections with
    /// 421 and lets open sessions finish (`status` shows how many remain).
    /// Lasts across restarts until `undrain`.
    Drain {
        node_id: u64,
        #[command(flatten)]
        target: Target,
    },
    /// Let a drained node accept FTPS connections again.
    Undrain {
        node_id: u64,
        #[command(flatten)]
        target: Target,
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
        target: Target,
    },
}

/// Which node an admin command talks to, and how it proves it may
/// (`crate::admin`).
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// Data directory of a node on this host (its address and certificate are read from it).
    #[arg(long, env = "WHARF_DATA_DIR", conflicts_with = "cluster")]
    pub data_dir: Option<PathBuf>,
    /// Cluster address of a node (HOST:PORT); needs --token or --admin-cert.
    #[arg(long, env = "WHARF_CLUSTER")]
    pub cluster: Option<String>,
    /// The cluster's admin token (in DATA_DIR/cluster/admin_token on every node).
    #[arg(long, env = "WHARF_ADMIN_TOKEN", conflicts_with = "admin_cert")]
    pub token: Option<String>,
    /// Directory holding an admin client certificate from `wharf cluster admin-cert`.
    #[arg(long, env = "WHARF_ADMIN_CERT")]
    pub admin_cert: Option<PathBuf>,
}
