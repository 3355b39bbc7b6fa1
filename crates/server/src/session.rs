//! One control session: the command loop, and the transfer it runs beside
//! it. The session's state is in `crate::state`; commands are applied in
//! `crate::commands`, one module per area.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;
use wharf_ftp::{Command, Reply};

use crate::accounts::User;
use crate::control::Incoming;
use crate::data::transfer::{self, TransferEvent};
use crate::defender::Offence;
use crate::guard::ConnectionSlot;
use crate::state::{Connection, Outcome, PendingTransfer, SessionState};
use crate::xferlog::{Direction, TransferRecord};
use crate::Shared;

/// Commands a client may pipeline while a transfer runs; more closes the session.
const MAX_QUEUED: usize = 32;

struct RunningTransfer {
    task: JoinHandle<()>,
    events: mpsc::Receiver<TransferEvent>,
    progress: Arc<AtomicU64>,
    started: Instant,
    path: String,
    direction: Direction,
    logged: bool,
}

/// One control session: its state, group by group (`crate::state`), and what
/// only the loop itself keeps: the running transfer, the lines queued behind
/// it, and the count of malformed lines.
pub struct Session {
    shared: Arc<Shared>,
    state: SessionState,
    bad_lines: u32,
    /// Set once the session's first relaxed data connection has been logged.
    relaxation_logged: Arc<std::sync::atomic::AtomicBool>,
    running: Option<RunningTransfer>,
    queued: VecDeque<Vec<u8>>,
    connected_at: Instant,
    _slot: ConnectionSlot,
}

static SESSION_IDS: AtomicU64 = AtomicU64::new(1);

impl Session {
    pub fn new(
        shared: Arc<Shared>,
        conn: Connection,
        implicit: bool,
        slot: ConnectionSlot,
    ) -> Self {
        Self {
            shared,
            state: SessionState::new(conn, implicit),
            bad_lines: 0,
            relaxation_logged: Arc::default(),
            running: None,
            queued: VecDeque::new(),
            connected_at: Instant::now(),
            _slot: slot,
        }
    }

    pub fn next_id() -> u64 {
        SESSION_IDS.fetch_add(1, Ordering::Relaxed)
    }

    pub fn user(&self) -> Option<&User> {
        self.state.login.user()
    }

    pub fn transfer_running(&self) -> bool {
        self.running.is_some()
    }

    /// Bytes moved so far by the running transfer.
    pub fn transfer_progress(&self) -> Option<(String, u64)> {
        self.running
            .as_ref()
            .map(|t| (t.path.clone(), t.progress.load(Ordering::Relaxed)))
    }

    /// Runs the session to its end. Errors on the control connection end it
    /// quietly: the peer is gone or misbehaving, and only this session suffers.
    pub async fn run(mut self) {
        let greeting = Reply::new(220, "Wharf FTPS server ready.");
        if self.state.conn.control.send(&greeting).await.is_err() {
            return;
        }
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            let line = if let Some(line) = self.next_queued() {
                Incoming::Line(line)
            } else {
                let deadline = self.read_deadline();
                tokio::select! {
                    incoming = self.state.conn.control.next_line() => match incoming {
                        Ok(i) => i,
                        Err(e) => {
                            tracing::debug!("control connection error: {e}");
                            break;
                        }
                    },
                    event = next_event(&mut self.running) => {
                        if !self.on_transfer_event(event).await {
                            break;
                        }
                        continue;
                    }
                    _ = tokio::time::sleep_until(deadline.into()) => {
                        let text = if self.state.login.account.is_none() {
                            "Login timeout: closing control connection."
                        } else {
                            "Idle timeout: closing control connection."
                        };
                        tracing::info!("{text}");
                        let _ = self.state.conn.control.send(&Reply::new(421, text)).await;
                        break;
                    }
                    _ = shutdown.changed(), if !self.transfer_running() => {
                        let _ = self.state.conn.control.send(&Reply::new(421, "Server shutting down; please reconnect later.")).await;
                        break;
                    }
                }
            };
            match line {
                Incoming::Closed => break,
                Incoming::TlsHandshake => {
                    tracing::info!("client started TLS on the explicit port; it needs the implicit port or AUTH TLS");
                    let reply = Reply::new(
                        500,
                        "This is the explicit FTPS port: send AUTH TLS first, or connect to the implicit FTPS port.",
                    );
                    let _ = self.state.conn.control.send(&reply).await;
                    break;
                }
                Incoming::TooLong => {
                    self.bad_lines += 1;
                    let reply = Reply::new(500, "Command line too long.");
                    if self.state.conn.control.send(&reply).await.is_err()
                        || self.too_many_bad_lines().await
                    {
                        break;
                    }
                }
                Incoming::Line(bytes) => {
                    if self.transfer_running() {
                        if !self.during_transfer(bytes).await {
                            break;
                        }
                        continue;
                    }
                    if !self.handle_line(&bytes).await {
                        break;
                    }
                }
            }
        }
        if let Some(t) = self.running.take() {
            t.task.abort();
        }
        self.state.conn.control.close().await;
    }

    fn next_queued(&mut self) -> Option<Vec<u8>> {
        if self.running.is_some() {
            None
        } else {
            self.queued.pop_front()
        }
    }

    fn read_deadline(&self) -> Instant {
        let limits = &self.shared.config.limits;
        if self.transfer_running() {
            // The data connection has its own timeout; the control connection
            // is legitimately silent during a long transfer.
            Instant::now() + std::time::Duration::from_secs(365 * 24 * 3600)
        } else if self.state.login.account.is_none() {
            self.connected_at + limits.login_timeout
        } else {
            Instant::now() + limits.idle_timeout
        }
    }

    async fn too_many_bad_lines(&mut self) -> bool {
        if self.bad_lines >= self.shared.config.limits.max_bad_lines {
            tracing::warn!("closing a connection that keeps sending malformed command lines");
            self.shared
                .offence(self.state.conn.client_ip(), Offence::ProtocolAbuse);
            let _ = self
                .state
                .conn
                .control
                .send(&Reply::new(
                    421,
                    "Too many malformed commands; closing connection.",
                ))
                .await;
            return true;
        }
        false
    }

    /// Parses and applies one line. Returns false when the session must end.
    async fn handle_line(&mut self, bytes: &[u8]) -> bool {
        let command = match Command::parse(bytes) {
            Ok(c) => c,
            Err(e) => {
                use wharf_ftp::ParseError::*;
                if matches!(e, InvalidUtf8 | NulByte) {
                    self.bad_lines += 1;
                }
                tracing::debug!("unparsable command: {e}");
                if self.state.conn.control.send(&e.reply()).await.is_err() {
                    return false;
                }
                return !self.too_many_bad_lines().await;
            }
        };
        tracing::debug!(command = command.verb(), "command");
        // The limit is on consecutive malformed lines: a client that sends an
        // odd bad line among good ones is not cut off.
        self.bad_lines = 0;
        let outcome = crate::commands::apply(&self.shared, &mut self.state, command).await;
        self.carry_out(outcome).await
    }

    async fn carry_out(&mut self, outcome: Outcome) -> bool {
        match outcome {
            Outcome::Reply(r) => self.state.conn.control.send(&r).await.is_ok(),
            Outcome::Close(r) => {
                let _ = self.state.conn.control.send(&r).await;
                false
            }
            Outcome::Upgrade(r) => {
                if self.state.conn.control.send(&r).await.is_err() {
                    return false;
                }
                let acceptor = tokio_rustls::TlsAcceptor::from(self.shared.tls.control.clone());
                let timeout = self.shared.config.limits.tls_handshake_timeout;
                match self
                    .state
                    .conn
                    .control
                    .upgrade(acceptor, &self.state.conn.binding, timeout)
                    .await
                {
                    Ok(()) => {
                        tracing::info!(
                            tls = self
                                .state
                                .conn
                                .control
                                .tls_description()
                                .unwrap_or_default(),
                            "control connection protected"
                        );
                        if let Some(stream) = self.state.conn.control.stream_ref() {
                            self.shared.metrics.handshake(stream);
                        }
                        true
                    }
                    Err(e) => {
                        tracing::info!("TLS handshake on the control connection failed: {e}");
                        if crate::defender::handshake_abuse(&e) {
                            self.shared
                                .offence(self.state.conn.client_ip(), Offence::ProtocolAbuse);
                        }
                        false
                    }
                }
            }
            Outcome::Transfer(pending) => {
                self.start_transfer(*pending);
                true
            }
        }
    }

    fn start_transfer(&mut self, pending: PendingTransfer) {
        let (tx, rx) = mpsc::channel(4);
        let progress = Arc::new(AtomicU64::new(0));
        let limits = &self.shared.config.limits;
        let protection = self
            .state
            .settings
            .private()
            .then(|| transfer::DataProtection {
                tls: self.state.data_tls_context(&self.shared),
                rule: self.data_tls_rule(),
                sessions: self.shared.logged_in.clone(),
                relaxation_logged: self.relaxation_logged.clone(),
                metrics: self.shared.metrics.clone(),
            });
        let transfer_limits = transfer::TransferLimits {
            connect_timeout: limits.data_timeout,
            idle_timeout: limits.data_timeout,
            handshake_timeout: limits.tls_handshake_timeout,
        };
        let span = tracing::info_span!("transfer", path = %pending.path);
        let task = tokio::spawn(
            transfer::run(
                pending.job,
                protection,
                transfer_limits,
                progress.clone(),
                tx,
            )
            .instrument(span),
        );
        self.running = Some(RunningTransfer {
            task,
            events: rx,
            progress,
            started: Instant::now(),
            path: pending.path,
            direction: pending.direction,
            logged: pending.logged,
        });
    }

    /// Returns false when the session must end.
    async fn on_transfer_event(&mut self, event: Option<TransferEvent>) -> bool {
        match event {
            Some(TransferEvent::Opened(reply)) => {
                self.state.conn.control.send(&reply).await.is_ok()
            }
            Some(TransferEvent::Finished(outcome)) => {
                self.finish_transfer(outcome.bytes, outcome.complete).await;
                self.state.conn.control.send(&outcome.reply).await.is_ok()
            }
            None => {
                // The task ended without a result (it panicked): report it.
                self.finish_transfer(0, false).await;
                let reply = Reply::new(451, "Transfer failed: internal error; see the server log.");
                self.state.conn.control.send(&reply).await.is_ok()
            }
        }
    }

    async fn finish_transfer(&mut self, bytes: u64, complete: bool) {
        let Some(t) = self.running.take() else { return };
        if !t.logged {
            return;
        }
        let incoming = matches!(t.direction, crate::xferlog::Direction::Incoming);
        self.shared.metrics.transfer(incoming, bytes, complete);
        let user = self.user().map(|u| u.name.clone()).unwrap_or_default();
        self.shared
            .xferlog
            .record(&TransferRecord {
                peer: self.state.conn.peer.ip(),
                user: &user,
                path: &t.path,
                bytes,
                duration: t.started.elapsed(),
                direction: t.direction,
                ascii: self.state.settings.ascii(),
                complete,
            })
            .await;
    }

    /// A line that arrived while a transfer runs: ABOR, STAT and NOOP act at
    /// once; anything else waits until the transfer's reply has been sent.
    async fn during_transfer(&mut self, bytes: Vec<u8>) -> bool {
        match Command::parse(&bytes) {
            Ok(Command::Abor) => self.abort_transfer().await,
            Ok(Command::Noop) => self
                .state
                .conn
                .control
                .send(&Reply::new(200, "NOOP ok; transfer in progress."))
                .await
                .is_ok(),
            Ok(Command::Stat(None)) => {
                let (path, done) = self.transfer_progress().unwrap_or_default();
                let reply = Reply::multi(
                    213,
                    vec![
                        "Status of the running transfer:".into(),
                        format!("{path}: {done} bytes transferred"),
                        "End of status.".into(),
                    ],
                );
                self.state.conn.control.send(&reply).await.is_ok()
            }
            _ if self.queued.len() >= MAX_QUEUED => {
                let _ = self
                    .state
                    .conn
                    .control
                    .send(&Reply::new(
                        421,
                        "Too many commands queued during a transfer.",
                    ))
                    .await;
                false
            }
            _ => {
                self.queued.push_back(bytes);
                true
            }
        }
    }

    async fn abort_transfer(&mut self) -> bool {
        if let Some(t) = self.running.as_mut() {
            t.task.abort();
            let _ = (&mut t.task).await;
        }
        let bytes = self
            .running
            .as_ref()
            .map(|t| t.progress.load(Ordering::Relaxed))
            .unwrap_or(0);
        self.finish_transfer(bytes, false).await;
        if self
            .state
            .conn
            .control
            .send(&Reply::new(426, "Connection closed; transfer aborted."))
            .await
            .is_err()
        {
            return false;
        }
        self.state
            .conn
            .control
            .send(&Reply::new(226, "ABOR command successful."))
            .await
            .is_ok()
    }

    /// What this session's data connections must prove (`crate::data_tls`).
    fn data_tls_rule(&self) -> crate::data_tls::DataTlsRule {
        let policy = &self.shared.config.policy;
        crate::data_tls::rule_for(
            policy.data_tls,
            self.user().and_then(|u| u.data_tls),
            &policy.data_tls_any_from,
            self.state.conn.client_ip(),
        )
    }

    pub fn span(id: u64, peer: SocketAddr) -> tracing::Span {
        tracing::info_span!("session", id, %peer, user = tracing::field::Empty)
    }
}

async fn next_event(running: &mut Option<RunningTransfer>) -> Option<TransferEvent> {
    match running {
        Some(t) => t.events.recv().await,
        None => std::future::pending().await,
    }
}
