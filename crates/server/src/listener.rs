//! Accepting control connections on the explicit and implicit listeners, and
//! the graceful drain on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;
use wharf_ftp::Reply;
use wharf_tls::SessionBinding;

use crate::control::ControlConnection;
use crate::defender::Offence;
use crate::guard::{Guard, Refusal};
use crate::session::Session;
use crate::stream::FtpStream;
use crate::{Boundaries, EngineConfig, Shared};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the transfer log: {0}")]
    TransferLog(std::io::Error),
}

/// Addresses actually bound (useful when port 0 was asked for).
#[derive(Clone, Copy, Debug)]
pub struct Listening {
    pub explicit: Option<SocketAddr>,
    pub implicit: Option<SocketAddr>,
}

/// Drain switch and session count of a running engine.
#[derive(Clone)]
pub struct EngineControl {
    guard: Arc<Guard>,
    metrics: Arc<crate::metrics::EngineMetrics>,
}

impl EngineControl {
    /// While draining, new control connections get `421` and open sessions
    /// carry on until they quit or time out.
    pub fn set_draining(&self, on: bool) {
        self.guard.set_draining(on);
    }

    pub fn draining(&self) -> bool {
        self.guard.draining()
    }

    /// Control connections open now.
    pub fn open_sessions(&self) -> usize {
        self.guard.connections()
    }

    /// Logins, transfers and TLS handshakes counted so far.
    pub fn metrics(&self) -> crate::metrics::MetricsSnapshot {
        self.metrics.snapshot()
    }
}

pub struct Engine {
    shared: Arc<Shared>,
    explicit: Option<TcpListener>,
    implicit: Option<TcpListener>,
    shutdown_tx: watch::Sender<bool>,
}

impl Engine {
    /// Binds the listeners; nothing is accepted until `run`.
    pub async fn bind(
        config: EngineConfig,
        tls: wharf_tls::TlsConfigs,
        boundaries: Boundaries,
    ) -> Result<Self, EngineError> {
        let explicit = bind(config.listen).await?;
        let implicit = bind(config.implicit_listen).await?;
        let xferlog = crate::xferlog::TransferLog::open(config.xferlog.as_deref())
            .await
            .map_err(EngineError::TransferLog)?;
        let (shutdown_tx, shutdown) = watch::channel(false);
        let guard = Guard::new(config.limits.clone());
        let defender = Arc::new(crate::defender::Defender::new(config.defender.clone()));
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                tls,
                accounts: boundaries.accounts,
                bans: boundaries.bans,
                storage: boundaries.storage,
                guard,
                defender,
                xferlog,
                metrics: Default::default(),
                logged_in: Default::default(),
                shutdown,
            }),
            explicit,
            implicit,
            shutdown_tx,
        })
    }

    /// A handle the embedding program keeps to drain this engine and watch
    /// its sessions while it runs.
    pub fn control(&self) -> EngineControl {
        EngineControl {
            guard: self.shared.guard.clone(),
            metrics: self.shared.metrics.clone(),
        }
    }

    pub fn listening(&self) -> Listening {
        Listening {
            explicit: self.explicit.as_ref().and_then(|l| l.local_addr().ok()),
            implicit: self.implicit.as_ref().and_then(|l| l.local_addr().ok()),
        }
    }

    /// Serves until `stop` resolves, then drains: no new connections, idle
    /// sessions get `421`, running transfers get up to `shutdown_grace`.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let mut sessions = JoinSet::new();
        let Engine {
            shared,
            explicit,
            implicit,
            shutdown_tx,
        } = self;
        tokio::pin!(stop);
        loop {
            tokio::select! {
                accepted = accept(explicit.as_ref()) => {
                    spawn_session(&shared, &mut sessions, accepted, false);
                }
                accepted = accept(implicit.as_ref()) => {
                    spawn_session(&shared, &mut sessions, accepted, true);
                }
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                _ = &mut stop => break,
            }
        }
        drop(explicit);
        drop(implicit);
        let open = sessions.len();
        tracing::info!(open, grace = ?shared.config.shutdown_grace,
            "shutting down: listeners closed, waiting for running transfers");
        let _ = shutdown_tx.send(true);
        let drained = tokio::time::timeout(shared.config.shutdown_grace, async {
            while sessions.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = sessions.len(),
                "grace period over: closing remaining sessions"
            );
            sessions.shutdown().await;
        }
        tracing::info!("shutdown complete");
    }
}

fn spawn_session(
    shared: &Arc<Shared>,
    sessions: &mut JoinSet<()>,
    accepted: std::io::Result<(TcpStream, SocketAddr)>,
    implicit: bool,
) {
    let (tcp, peer) = match accepted {
        Ok(a) => a,
        Err(e) => {
            // EMFILE and friends: keep serving, but do not spin.
            tracing::warn!("accept failed: {e}");
            return;
        }
    };
    let shared = shared.clone();
    let id = Session::next_id();
    sessions.spawn(async move {
        let mut tcp = tcp;
        let _ = tcp.set_nodelay(true);
        let limit = shared.config.limits.tls_handshake_timeout;
        let proxies = &shared.config.trusted_proxies;
        let Some(client) = proxies
            .client_behind(&mut tcp, peer, limit, "connection")
            .await
        else {
            return;
        };
        serve_connection(shared, tcp, client, implicit, id)
            .instrument(Session::span(id, client))
            .await;
    });
}

async fn bind(addr: Option<SocketAddr>) -> Result<Option<TcpListener>, EngineError> {
    match addr {
        None => Ok(None),
        Some(addr) => TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|source| EngineError::Bind { addr, source }),
    }
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => {
            let r = l.accept().await;
            if r.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            r
        }
        None => std::future::pending().await,
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    implicit: bool,
    id: u64,
) {
    let ip = crate::address_rules::canonical(peer.ip());
    let local = match tcp.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let limits = shared.config.limits.clone();
    let admitted = if !shared.config.sources.permits(ip) {
        Err(Refusal::NotAllowed)
    } else if let Some(remaining) = shared.bans.banned(ip).or(shared.defender.banned(ip)) {
        Err(Refusal::Banned { remaining })
    } else {
        shared.guard.admit(ip)
    };
    let slot = match admitted {
        Ok(slot) => slot,
        Err(refusal) => {
            let text = match refusal {
                Refusal::TooManyConnections => "Too many connections; try again later.".to_owned(),
                Refusal::TooManyFromAddress => {
                    shared.offence(ip, Offence::Flood);
                    "Too many connections from your address.".to_owned()
                }
                Refusal::NotAllowed => "Connections from your address are not allowed.".to_owned(),
                Refusal::Draining => {
                    "This node is draining for maintenance; please connect to another node."
                        .to_owned()
                }
                Refusal::Banned { remaining } => {
                    format!(
                        "Your address is temporarily banned ({} s left).",
                        remaining.as_secs()
                    )
                }
            };
            tracing::info!("refused connection: {text}");
            if !implicit {
                let mut plain = ControlConnection::new(
                    FtpStream::Plain(tcp),
                    limits.max_line,
                    limits.tls_handshake_timeout,
                );
                let _ = plain.send(&Reply::new(421, text)).await;
                plain.close().await;
            }
            return;
        }
    };
    let binding = SessionBinding::new(ip);
    // Known to this node's data connections from the first ticket on.
    let sessions = shared.logged_in.clone();
    let _registered = sessions.connected(&binding);
    let stream = if implicit {
        let acceptor = TlsAcceptor::from(shared.tls.implicit.clone());
        let handshake = acceptor.accept_with(tcp, |c| binding.install(c));
        match tokio::time::timeout(limits.tls_handshake_timeout, handshake).await {
            Ok(Ok(tls)) => {
                let stream = FtpStream::Tls(Box::new(tls));
                shared.metrics.handshake(&stream);
                stream
            }
            Ok(Err(e)) => {
                tracing::info!("implicit TLS handshake failed: {e}");
                if crate::defender::handshake_abuse(&e) {
                    shared.offence(ip, Offence::ProtocolAbuse);
                }
                return;
            }
            Err(_) => {
                tracing::info!("implicit TLS handshake timed out");
                return;
            }
        }
    } else {
        FtpStream::Plain(tcp)
    };
    tracing::debug!(implicit, "connection accepted");
    let control = ControlConnection::new(stream, limits.max_line, limits.data_timeout);
    let conn = crate::state::Connection {
        id,
        control,
        peer,
        local,
        binding,
    };
    Session::new(shared, conn, implicit, slot).run().await;
    tracing::debug!("connection closed");
}
