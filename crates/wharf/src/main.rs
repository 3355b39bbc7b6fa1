//! `wharf`: the command-line entry point.

mod acme;
mod admin;
mod audit;
mod certificates;
mod cli;
mod cluster_bans;
mod cluster_fs;
mod drain;
mod effective;
mod http;
mod settings;
mod storage;
mod store_accounts;
mod ticket_keys;
mod trust;

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use tracing_subscriber::EnvFilter;
use wharf_server::accounts::{hash_password, Account, LoginMethod, Permissions};
use wharf_server::data_tls::DataTlsRule;
use wharf_server::Engine;
use wharf_store::secrets::SecretsKey;
use wharf_tls::{ServerIdentity, TlsConfigs};

use cli::{
    BanCommand, CertCommand, Cli, ClusterCommand, Commands, ConfigCommand, LogFormat, UserCommand,
};
use settings::Settings;

fn main() -> Result<()> {
    let cli = Cli::parse();
    // One process-wide TLS provider, for clients built without naming one
    // (the ACME client's default roots); an error means one is set already.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match cli.command {
        Commands::Serve(args) => {
            let settings = Settings::from_args(&args)?;
            if args.check_config {
                init_logging(settings.log_format, None)?;
                return check_config(&settings);
            }
            // Files and directories the node creates are its own alone:
            // keys, the store, the audit log, uploaded files (vsftpd's
            // local_umask 077).
            // SAFETY: umask only swaps the process's file-creation mask.
            unsafe { libc::umask(0o077) };
            raise_open_file_limit();
            limit_malloc_arenas();
            init_logging(settings.log_format, Some(&settings.audit_log))?;
            runtime()?.block_on(serve(settings))
        }
        Commands::User(command) => runtime()?.block_on(user_command(command)),
        Commands::Cluster(command) => runtime()?.block_on(cluster_command(command)),
        Commands::Cert(command) => runtime()?.block_on(cert_command(command)),
        Commands::Ban(command) => runtime()?.block_on(ban_command(command)),
        Commands::Config(ConfigCommand::Check { file, mut serve }) => {
            serve.config = Some(file);
            let settings = Settings::from_args(&serve)?;
            init_logging(settings.log_format, None)?;
            check_config(&settings)
        }
        Commands::Health { http: addr, live } => {
            println!("{}", http::probe(&addr, live)?);
            Ok(())
        }
        Commands::HashPassword { password_stdin } => {
            let password = read_password(password_stdin)?;
            println!(
                "{}",
                hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?
            );
            Ok(())
        }
    }
}

/// Beyond what parsing checked: an operator's certificate must load.
fn check_config(settings: &Settings) -> Result<()> {
    if let Some((cert, key)) = &settings.cert {
        ServerIdentity::from_pem_files(cert, key)?.certified_key()?;
    }
    print_summary(settings, None);
    print!("{}", effective::render(settings)?);
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn read_password(from_stdin: bool) -> Result<String> {
    if !from_stdin && std::io::stdin().is_terminal() {
        eprint!("Password (input is echoed): ");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!password.is_empty(), "empty password");
    Ok(password)
}

/// The operator's key sealing private keys and ticket keys in the store:
/// from `--secrets-key-file`, else from `WHARF_SECRETS_KEY` (hex, 32 bytes).
fn secrets_key(settings: &Settings) -> Result<Option<Arc<SecretsKey>>> {
    let (text, from) = match &settings.secrets_key_file {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the secrets key file {}", path.display()))?,
            path.display().to_string(),
        ),
        None => match std::env::var("WHARF_SECRETS_KEY") {
            Ok(text) => (text, "WHARF_SECRETS_KEY".to_owned()),
            Err(_) => {
                tracing::info!("no secrets key: private keys and ticket keys are stored in clear (protected by the data directory's mode only)");
                return Ok(None);
            }
        },
    };
    let key = SecretsKey::from_hex(&text).with_context(|| format!("secrets key from {from}"))?;
    tracing::info!(
        key_id = key.id(),
        "private keys and ticket keys in the store are sealed"
    );
    Ok(Some(Arc::new(key)))
}

/// Every connection is a file descriptor: take the hard limit as the soft one
/// (often 1024 by default), so `--max-connections` in the thousands holds.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct given, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// glibc gives each thread that allocates its own arena, up to eight per core,
/// and each arena keeps what it once held: after a million files a node with
/// two arenas held 207 MiB where its twin with the default held 349 MiB
/// (`benches/RESULTS.md`, session 14). `MALLOC_ARENA_MAX` in the environment
/// still decides when it is set.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only changes a malloc tunable; called before the
        // runtime starts its threads.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
    }
}

/// Creates the data directory, or makes an existing one private (0700): it
/// holds keys, the store and users' files.
fn private_data_dir(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make the data directory {} private", dir.display()))?;
        tracing::info!(dir = %dir.display(), was = %format!("{mode:o}"), "data directory made private (0700)");
    }
    Ok(())
}

/// The operational log on stderr, and with `audit` the audit log's file.
fn init_logging(format: LogFormat, audit: Option<&std::path::Path>) -> Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = EnvFilter::try_from_env("WHARF_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
    let stderr = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let stderr = match format {
        LogFormat::Human => stderr.boxed(),
        LogFormat::Json => stderr.json().boxed(),
    };
    let audit = audit.map(audit::layer).transpose()?;
    // rustls warns about every ClientHello whose SNI is an IP address (lftp
    // sends one on each connection) or otherwise malformed; the handshake
    // goes on without a server name, as it should, so the line tells an
    // operator nothing and fills the log.
    let sni_noise = tracing_subscriber::filter::filter_fn(|meta| {
        !(meta.target() == "rustls::msgs::handshake" && *meta.level() == tracing::Level::WARN)
    });
    tracing_subscriber::registry()
        .with(stderr.with_filter(filter).with_filter(sni_noise))
        .with(audit)
        .init();
    Ok(())
}

async fn serve(settings: Settings) -> Result<()> {
    private_data_dir(&settings.data_dir)?;
    let identity = match &settings.cert {
        Some((cert, key)) => ServerIdentity::from_pem_files(cert, key)?,
        None => ServerIdentity::self_signed_in(
            &settings.data_dir.join("tls"),
            &["localhost".to_owned(), "127.0.0.1".to_owned()],
        )?,
    };
    let fallback_key = identity.certified_key()?;
    let certificates = wharf_tls::CertificateSet::new();
    certificates.replace(
        [(wharf_tls::DEFAULT_NAME.to_owned(), fallback_key.clone())]
            .into_iter()
            .collect(),
    );
    let ticket_ring = wharf_tls::TicketKeyRing::new(ticket_keys::TICKET_LIFETIME);
    let client_auth = wharf_tls::ClientAuth {
        anchors: wharf_tls::TrustAnchors::new(),
        explicit: settings.client_certs.explicit,
        implicit: settings.client_certs.implicit,
    };
    let tls = TlsConfigs::from_parts(certificates.clone(), ticket_ring.clone(), &client_auth)?;
    let cluster_dir = settings.data_dir.join("cluster");
    let join = match &settings.join {
        Some(join) if !wharf_cluster::is_member(&cluster_dir) => {
            Some((join.member.clone(), join.token().await?))
        }
        _ => None,
    };
    let cluster = wharf_cluster::start(wharf_cluster::ClusterConfig {
        data_dir: cluster_dir,
        listen: settings.cluster_listen,
        advertise: settings.cluster_advertise.clone(),
        source: settings.cluster_source,
        join,
        snapshot: wharf_cluster::SnapshotSettings {
            every_entries: settings.raft_snapshot_logs,
            min_log_bytes: settings.raft_snapshot_min_log_mib.saturating_mul(1 << 20),
            piece_bytes: settings.raft_snapshot_piece_kib.saturating_mul(1 << 10),
        },
        store_limits: settings.store_limits,
        chunk_store: Arc::new(
            wharf_blob::ChunkStore::open(settings.data_dir.join("chunks"))
                .context("cannot open the chunk store")?,
        ),
        secrets: secrets_key(&settings)?,
    })
    .await?;
    let node = cluster.handle.clone();
    node.reader
        .check_secrets()
        .context("cannot open the secrets in this node's store")?;
    tracing::info!(node_id = node.node_id, cluster = %cluster.local_addr, "cluster member started");
    tokio::spawn(ticket_keys::follow_table(node.clone(), ticket_ring.clone()));
    tokio::spawn(ticket_keys::rotate_while_leader(node.clone()));
    tokio::spawn(trust::follow_table(
        node.clone(),
        client_auth.anchors.clone(),
    ));
    tokio::spawn(certificates::follow_table(
        node.clone(),
        certificates.clone(),
        fallback_key,
    ));
    tokio::spawn(certificates::renew_while_leader(
        node.clone(),
        settings.cert_policy.clone(),
    ));
    tokio::spawn(acme::obtain_while_leader(node.clone()));
    if settings.join.is_none() {
        bootstrap(&node, &settings.accounts).await?;
        let imported = match &settings.cert {
            Some((cert, key)) => Some((
                std::fs::read_to_string(cert)
                    .with_context(|| format!("cannot read {}", cert.display()))?,
                std::fs::read_to_string(key)
                    .with_context(|| format!("cannot read {}", key.display()))?,
            )),
            None => None,
        };
        certificates::bootstrap(&node, imported, &settings.cert_policy).await?;
    }
    wait_for_cluster_certificate(&node).await;
    ticket_keys::wait_for_active_key(&ticket_ring, std::time::Duration::from_secs(15)).await;
    let mode = storage::settle(
        &node,
        settings.storage,
        settings.replication,
        settings.join.is_none(),
    )
    .await?;
    tracing::info!(
        storage = mode.name(),
        "users' files are served from {} storage",
        mode.name()
    );
    let (storage, home_root) = storage::boundary(mode, &node, &settings.data_dir);
    let repair_backlog = Arc::new(std::sync::atomic::AtomicU64::new(0));
    if mode == cli::StorageMode::Cluster {
        tokio::spawn(cluster_fs::upkeep::repair_while_leader(
            node.clone(),
            settings.repair_after,
            repair_backlog.clone(),
        ));
        tokio::spawn(cluster_fs::upkeep::collect_local_chunks(
            node.clone(),
            settings.chunk_grace,
        ));
    }
    let accounts = Arc::new(store_accounts::StoreAccounts::new(
        node.reader.clone(),
        &home_root,
    ));
    tokio::spawn(cluster_bans::expire_while_leader(node.clone()));
    let bans = Arc::new(cluster_bans::ClusterBans { node: node.clone() });
    let boundaries = wharf_server::Boundaries {
        accounts,
        bans,
        storage,
    };
    let engine = Engine::bind(settings.engine.clone(), tls, boundaries).await?;
    let control = engine.control();
    node.count_sessions_with({
        let control = control.clone();
        move || control.open_sessions()
    });
    drain::follow_setting(node.clone(), control.clone());
    if let Some((addr, chosen)) = settings.http_listen {
        let observed = Arc::new(http::Observed {
            node: node.clone(),
            engine: control,
            repair_backlog,
        });
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                tracing::info!(%addr, "HTTP endpoint: /metrics /healthz /readyz");
                tokio::spawn(http::serve(listener, observed));
            }
            Err(e) if chosen => anyhow::bail!("cannot listen on --http-listen {addr}: {e}"),
            Err(e) => tracing::warn!(%addr,
                "no HTTP endpoint (/metrics, /readyz): cannot listen on the default address: {e}; \
                 set --http-listen"),
        }
    }
    if let Some(addr) = settings.acme_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on --acme-listen {addr}"))?;
        tracing::info!(%addr, "ACME HTTP-01 endpoint: /.well-known/acme-challenge/");
        tokio::spawn(http::serve_challenges(listener, node.clone()));
    }
    print_summary(&settings, Some((&engine, &certificates)));
    engine.run(shutdown_signal()).await;
    Ok(())
}

fn print_summary(settings: &Settings, running: Option<(&Engine, &wharf_tls::CertificateSet)>) {
    let e = &settings.engine;
    let (explicit, implicit) = match running {
        Some((engine, _)) => (engine.listening().explicit, engine.listening().implicit),
        None => (e.listen, e.implicit_listen),
    };
    let show = |a: Option<std::net::SocketAddr>| a.map_or("off".to_owned(), |a| a.to_string());
    tracing::info!(
        explicit = %show(explicit),
        implicit = %show(implicit),
        passive_ports = %e.passive_ports,
        passive_address = %e.passive_address.map_or("(control connection address)".to_owned(), |a| a.to_string()),
        data_dir = %settings.data_dir.display(),
        users = settings.accounts.len(),
        "wharf {} listening: explicit FTPS on {}, implicit FTPS on {}",
        env!("CARGO_PKG_VERSION"), show(explicit), show(implicit)
    );
    if let Some((_, certs)) = running {
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

/// On the node that bootstraps a cluster (and on every restart of it): wait
/// for a leader, make sure the tokens exist, import `--user` and `[[user]]`
/// accounts that the cluster does not know yet.
async fn bootstrap(node: &wharf_cluster::ClusterHandle, accounts: &[Account]) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while node.raft.current_leader().await.is_none() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "no cluster leader after 30 s: are a majority of the members up?"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    node.ensure_tokens().await?;
    ticket_keys::rotate_once(node).await?;
    for account in accounts {
        let user = &account.user;
        let record = wharf_store::records::UserRecord {
            name: user.name.clone(),
            password_hash: account.password_hash.clone(),
            home: user.home.display().to_string(),
            permissions: user.permissions.names(),
            allow: user.allow.iter().map(|n| n.to_string()).collect(),
            deny: user.deny.iter().map(|n| n.to_string()).collect(),
            commands: user.commands.clone(),
            login: user.login.as_str().to_owned(),
            certificates: user.certificates.iter().map(|m| m.to_string()).collect(),
            max_sessions: user.max_sessions as u64,
            upload_rate: user.upload_rate,
            download_rate: user.download_rate,
            enabled: true,
            quota_bytes: user.quota.bytes,
            quota_files: user.quota.files,
            data_tls: user
                .data_tls
                .map(|r| r.as_str().to_owned())
                .unwrap_or_default(),
        };
        let result = node
            .write(wharf_store::Command::PutUser {
                user: record,
                create_only: true,
            })
            .await?;
        if result == wharf_store::CommandResult::Done {
            tracing::info!(user = %user.name, "imported account into the cluster");
        }
    }
    Ok(())
}

/// A quota as `wharf user list` shows it.
/// `\tKEY=a,b` for a non-empty list, nothing otherwise.
fn listed(key: &str, values: &[String]) -> String {
    if values.is_empty() {
        String::new()
    } else {
        format!("\t{key}={}", values.join(","))
    }
}

fn limit(quota: u64) -> String {
    if quota == 0 {
        "unlimited".to_owned()
    } else {
        quota.to_string()
    }
}

async fn user_command(command: UserCommand) -> Result<()> {
    use admin::{expect_done, Admin};
    match command {
        UserCommand::Add {
            name,
            password_stdin,
            home,
            read_only,
            allow,
            deny,
            commands,
            login,
            cert_match,
            quota_bytes,
            quota_files,
            data_tls,
            target,
        } => {
            if let Some(rule) = &data_tls {
                DataTlsRule::parse(rule).map_err(anyhow::Error::msg)?;
            }
            for (flag, net) in allow
                .iter()
                .map(|n| ("--allow", n))
                .chain(deny.iter().map(|n| ("--deny", n)))
            {
                net.parse::<ipnet::IpNet>()
                    .with_context(|| format!("{flag} {net:?} is not a CIDR network"))?;
            }
            let commands =
                wharf_server::accounts::command_list(&commands).map_err(anyhow::Error::msg)?;
            let login = LoginMethod::parse(&login).map_err(anyhow::Error::msg)?;
            for rule in &cert_match {
                wharf_tls::CertMatch::parse(rule).map_err(anyhow::Error::msg)?;
            }
            // A certificate-only account has no usable password: a random one,
            // never shown, fills the hash.
            let password = if login == LoginMethod::Certificate && !password_stdin {
                format!("{:032x}", rand::random::<u128>())
            } else {
                read_password(password_stdin)?
            };
            let hash = hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
            let permissions = if read_only {
                vec!["list".to_owned(), "read".to_owned()]
            } else {
                Permissions::all().names()
            };
            let user = wharf_store::records::UserRecord {
                home: home.unwrap_or_else(|| format!("home/{name}")),
                name: name.clone(),
                password_hash: hash,
                permissions,
                allow,
                deny,
                commands,
                login: login.as_str().to_owned(),
                certificates: cert_match,
                max_sessions: 0,
                upload_rate: 0,
                download_rate: 0,
                enabled: true,
                quota_bytes,
                quota_files,
                data_tls: data_tls.unwrap_or_default(),
            };
            let mut admin = Admin::connect(&target).await?;
            expect_done(
                admin
                    .write(wharf_store::Command::PutUser {
                        user,
                        create_only: true,
                    })
                    .await?,
                &format!("user {name}"),
            )?;
            println!("added user {name}");
        }
        UserCommand::List { target } => {
            for u in Admin::connect(&target).await?.users().await? {
                println!(
                    "{}\thome={}\tpermissions={}\tallow={}\tused={}B/{}\tfiles={}/{}{}{}",
                    u.name,
                    u.home,
                    u.permissions.join(","),
                    if u.allow.is_empty() {
                        "any".to_owned()
                    } else {
                        u.allow.join(",")
                    },
                    u.used_bytes,
                    limit(u.quota_bytes),
                    u.used_files,
                    limit(u.quota_files),
                    listed("deny", &u.deny)
                        + &listed("commands", &u.commands)
                        + &listed(
                            "login",
                            &[u.login]
                                .into_iter()
                                .filter(|l| !l.is_empty() && l != "password")
                                .collect::<Vec<_>>()
                        )
                        + &listed("cert_match", &u.certificates)
                        + &listed(
                            "data_tls",
                            &[u.data_tls]
                                .into_iter()
                                .filter(|r| !r.is_empty())
                                .collect::<Vec<_>>()
                        ),
                    if u.enabled { "" } else { "\tdisabled" }
                );
            }
        }
        UserCommand::Passwd {
            name,
            password_stdin,
            target,
        } => {
            let password = read_password(password_stdin)?;
            let password_hash = hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut admin = Admin::connect(&target).await?;
            expect_done(
                admin
                    .write(wharf_store::Command::SetPassword {
                        name: name.clone(),
                        password_hash,
                    })
                    .await?,
                &format!("user {name}"),
            )?;
            println!("password of {name} changed");
        }
        UserCommand::Modify {
            name,
            data_tls,
            target,
        } => {
            let rule = match data_tls.as_str() {
                "default" => String::new(),
                rule => DataTlsRule::parse(rule)
                    .map_err(anyhow::Error::msg)?
                    .as_str()
                    .to_owned(),
            };
            let mut admin = Admin::connect(&target).await?;
            expect_done(
                admin
                    .write(wharf_store::Command::SetDataTls {
                        name: name.clone(),
                        rule,
                    })
                    .await?,
                &format!("user {name}"),
            )?;
            println!("user {name}: data connections must prove {data_tls}");
        }
        UserCommand::Remove { name, target } => {
            let mut admin = Admin::connect(&target).await?;
            expect_done(
                admin
                    .write(wharf_store::Command::RemoveUser { name: name.clone() })
                    .await?,
                &format!("user {name}"),
            )?;
            println!("removed user {name}");
        }
    }
    Ok(())
}

/// Waits (bounded) until this node serves the cluster's default certificate.
async fn wait_for_cluster_certificate(node: &wharf_cluster::ClusterHandle) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        if node
            .reader
            .certs()
            .is_ok_and(|c| c.iter().any(|c| c.name == wharf_tls::DEFAULT_NAME))
        {
            // follow_table swaps on the same change notification.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tracing::warn!(
        "no cluster certificate replicated yet: serving this node's own until one arrives"
    );
}

async fn cert_command(command: CertCommand) -> Result<()> {
    match command {
        CertCommand::Trust(command) => trust::command(command).await?,
        CertCommand::Acme(command) => acme::command::run(command).await?,
        CertCommand::List { target } => {
            for c in admin::Admin::connect(&target).await?.certs().await? {
                println!(
                    "{}\tsource={}\tgeneration={}\tnot_after={}\tsha256={}",
                    c.name,
                    c.source,
                    c.generation,
                    if c.not_after == 0 {
                        "unknown".to_owned()
                    } else {
                        c.not_after.to_string()
                    },
                    c.fingerprint
                );
            }
        }
        CertCommand::Rotate { name, target } => {
            let mut admin = admin::Admin::connect(&target).await?;
            let name = name.to_ascii_lowercase();
            let current = admin
                .certs()
                .await?
                .into_iter()
                .find(|c| c.name == name)
                .with_context(|| format!("no certificate named {name:?}"))?;
            anyhow::ensure!(
                current.source == "InternalCa" || current.source == "Acme",
                "{name} is {}: only internal-CA and ACME certificates rotate; import a new one with `wharf cert import`",
                current.source
            );
            admin::expect_done(
                admin
                    .write(wharf_store::Command::PutSetting {
                        key: format!("{}{name}", certificates::ROTATE_PREFIX),
                        value: current.generation.to_string(),
                    })
                    .await?,
                "rotation request",
            )?;
            println!(
                "asked the leader to replace {name} generation {}",
                current.generation
            );
        }
        CertCommand::Import {
            name,
            cert,
            key,
            target,
        } => {
            let chain_pem = std::fs::read_to_string(&cert)
                .with_context(|| format!("cannot read {}", cert.display()))?;
            let key_pem = std::fs::read_to_string(&key)
                .with_context(|| format!("cannot read {}", key.display()))?;
            wharf_tls::certified_key(chain_pem.as_bytes(), key_pem.as_bytes()).with_context(
                || {
                    format!(
                        "{} and {} are not a usable certificate and key",
                        cert.display(),
                        key.display()
                    )
                },
            )?;
            let mut admin = admin::Admin::connect(&target).await?;
            let name = name.to_ascii_lowercase();
            let generation = admin
                .certs()
                .await?
                .iter()
                .find(|c| c.name == name)
                .map_or(1, |c| c.generation + 1);
            admin::expect_done(
                admin
                    .write(wharf_store::Command::PutCert(
                        certificates::imported_record(&name, chain_pem, key_pem, generation),
                    ))
                    .await?,
                "certificate import",
            )?;
            println!(
                "imported {name} (generation {generation}); every node serves it within seconds"
            );
        }
    }
    Ok(())
}

async fn cluster_command(command: ClusterCommand) -> Result<()> {
    match command {
        ClusterCommand::Token { data_dir } => {
            let path = data_dir
                .join("cluster")
                .join(wharf_cluster::JOIN_TOKEN_FILE);
            let token = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "cannot read {}: is a node running with --data-dir {}?",
                    path.display(),
                    data_dir.display()
                )
            })?;
            println!("{}", token.trim());
        }
        ClusterCommand::Status { target } => {
            let s = admin::Admin::connect(&target).await?.status().await?;
            println!(
                "node {} ({}), term {}, leader {}, last log {}, applied {}",
                s.node_id,
                s.state,
                s.term,
                s.leader_id.map_or("none".to_owned(), |l| l.to_string()),
                s.last_log_index.map_or("-".to_owned(), |i| i.to_string()),
                s.last_applied_index
                    .map_or("-".to_owned(), |i| i.to_string()),
            );
            println!(
                "storage: chunks {}, replication {}, under-replicated {}",
                s.chunks, s.replication, s.under_replicated
            );
            for m in s.members {
                let lag = match (s.last_log_index, m.matched_index) {
                    (Some(last), Some(matched)) => {
                        format!("\tlag {}", last.saturating_sub(matched))
                    }
                    _ => String::new(),
                };
                let sessions = match m.open_sessions {
                    Some(n) => format!("\tsessions {n}"),
                    None => "\tunreachable".to_owned(),
                };
                let drain = if m.draining { "\tdraining" } else { "" };
                println!(
                    "  node {}\t{}\t{}{lag}{sessions}{drain}",
                    m.node_id, m.cluster_addr, m.role
                );
            }
        }
        ClusterCommand::AdminCert { out, days, target } => {
            let (chain_pem, key_pem) = admin::Admin::connect(&target)
                .await?
                .admin_certificate(days)
                .await?;
            let ca_der = {
                use rustls_pki_types::pem::PemObject;
                rustls_pki_types::CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                    .last()
                    .context("the node returned no certificate")??
            };
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let write = |name: &str, text: &str| {
                wharf_cluster::credentials::write_private(&out.join(name), text)
            };
            write(admin::ADMIN_KEY_FILE, &key_pem)?;
            write(admin::ADMIN_CERT_FILE, &chain_pem)?;
            write(admin::ADMIN_CA_FILE, &wharf_tls::certificate_pem(&ca_der))?;
            println!(
                "wrote an admin certificate valid for {days} days to {}; use it with --cluster ADDR --admin-cert {}",
                out.display(),
                out.display()
            );
        }
        ClusterCommand::Drain { node_id, target } => {
            admin::Admin::connect(&target)
                .await?
                .drain(node_id, true)
                .await?;
            println!("node {node_id} is draining: new connections get 421; see `wharf cluster status` for its open sessions");
        }
        ClusterCommand::Undrain { node_id, target } => {
            admin::Admin::connect(&target)
                .await?
                .drain(node_id, false)
                .await?;
            println!("node {node_id} accepts connections again");
        }
        ClusterCommand::Remove { node_id, target } => {
            admin::Admin::connect(&target)
                .await?
                .remove_node(node_id)
                .await?;
            println!("removed node {node_id}");
        }
    }
    Ok(())
}

async fn ban_command(command: BanCommand) -> Result<()> {
    match command {
        BanCommand::List { target } => {
            for b in admin::Admin::connect(&target).await?.bans().await? {
                println!("{}\tuntil={}\treason={}", b.address, b.until, b.reason);
            }
        }
        BanCommand::Remove { address, target } => {
            let mut admin = admin::Admin::connect(&target).await?;
            admin::expect_done(
                admin
                    .write(wharf_store::Command::RemoveBan {
                        address: address.clone(),
                    })
                    .await?,
                &format!("ban of {address}"),
            )?;
            println!("lifted the ban of {address} on every node");
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
    }
}
