//! `wharf`: the command line. `serve` builds a node's configuration from
//! flags, environment and the config file and runs a `wharf_node::Node`;
//! every other command is an admin client (`admin/`) or a local helper.

mod admin;
mod cli;
mod settings;

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, Result};
use clap::Parser;
use tracing_subscriber::EnvFilter;
use wharf_node::{audit, summary, Node};
use wharf_server::accounts::hash_password;
use wharf_tls::ServerIdentity;

use cli::{Cli, Commands, ConfigCommand};
use settings::schema::LogFormat;
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
            init_logging(settings.log_format, Some(&settings.node.audit_log))?;
            runtime()?.block_on(serve(settings))
        }
        Commands::User(command) => runtime()?.block_on(admin::user::run(command)),
        Commands::Cluster(command) => runtime()?.block_on(admin::cluster::run(command)),
        Commands::Cert(command) => runtime()?.block_on(admin::cert::run(command)),
        Commands::Ban(command) => runtime()?.block_on(admin::ban::run(command)),
        Commands::Events(command) => runtime()?.block_on(admin::events::run(command)),
        Commands::Storage(command) => runtime()?.block_on(admin::storage::run(command)),
        Commands::Config(ConfigCommand::Check { file, mut serve }) => {
            serve.config = Some(file);
            let settings = Settings::from_args(&serve)?;
            init_logging(settings.log_format, None)?;
            check_config(&settings)
        }
        Commands::Health { http: addr, live } => {
            println!("{}", admin::health::probe(&addr, live)?);
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

async fn serve(settings: Settings) -> Result<()> {
    let node = Node::start(settings.node).await?;
    summary::log(node.config(), Some(&node));
    node.run(shutdown_signal()).await;
    Ok(())
}

/// Beyond what parsing checked: an operator's certificate must load.
fn check_config(settings: &Settings) -> Result<()> {
    if let Some((cert, key)) = &settings.node.cert {
        ServerIdentity::from_pem_files(cert, key)?.certified_key()?;
    }
    summary::log(&settings.node, None);
    print!("{}", settings::effective::render(settings)?);
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
