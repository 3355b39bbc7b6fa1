//! `wharf`: the command-line entry point.

mod cli;
mod settings;

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use tracing_subscriber::EnvFilter;
use wharf_server::accounts::{hash_password, StaticAccounts};
use wharf_server::Engine;
use wharf_tls::{ServerIdentity, TlsConfigs};

use cli::{Cli, Commands, LogFormat};
use settings::Settings;

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Commands::Serve(args) => {
            let settings = Settings::from_args(&args)?;
            init_logging(settings.log_format);
            if args.check_config {
                print_summary(&settings, None);
                return Ok(());
            }
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(serve(settings))
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

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("WHARF_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(settings: Settings) -> Result<()> {
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "cannot create data directory {}",
            settings.data_dir.display()
        )
    })?;
    let identity = match &settings.cert {
        Some((cert, key)) => ServerIdentity::from_pem_files(cert, key)?,
        None => ServerIdentity::self_signed_in(
            &settings.data_dir.join("tls"),
            &["localhost".to_owned(), "127.0.0.1".to_owned()],
        )?,
    };
    let tls = TlsConfigs::new(&identity)?;
    for account in &settings.accounts {
        std::fs::create_dir_all(&account.user.home).with_context(|| {
            format!(
                "cannot create home directory {}",
                account.user.home.display()
            )
        })?;
    }
    let accounts = Arc::new(StaticAccounts::new(settings.accounts.clone()));
    if accounts.is_empty() {
        tracing::warn!("no accounts configured: nobody can log in (add --user NAME:PASSWORD or [[user]] entries)");
    }
    let engine = Engine::bind(settings.engine.clone(), tls, accounts).await?;
    print_summary(&settings, Some((&engine, &identity)));
    engine.run(shutdown_signal()).await;
    Ok(())
}

fn print_summary(settings: &Settings, running: Option<(&Engine, &ServerIdentity)>) {
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
    if let Some((_, identity)) = running {
        tracing::info!(source = %identity.source, "certificate SHA-256 fingerprint {}", identity.fingerprint());
    }
    let p = &e.policy;
    if !p.require_tls_login {
        tracing::warn!("policy relaxed: logins allowed before AUTH TLS (passwords may cross the network in clear)");
    }
    if !p.require_prot_p {
        tracing::warn!("policy relaxed: unencrypted data connections (PROT C) allowed");
    }
    if !p.require_ssl_reuse {
        tracing::warn!("policy relaxed: data connections need not resume the control TLS session");
    }
    if !p.allow_active {
        tracing::info!("active mode (PORT/EPRT) disabled");
    }
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
