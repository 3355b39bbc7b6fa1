//! Data connections: the passive listener (PASV/EPSV), active connects
//! (PORT/EPRT), and the TLS handshake on them; `transfer` moves the bytes and
//! `listing` produces a directory listing's lines. Outside `session` so that
//! both the control loop and `commands` use it without using each other.

pub mod listing;
pub mod transfer;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;
use wharf_tls::{SessionBinding, SessionClaim, TlsConfigs};

use crate::address_rules::canonical;
use crate::config::PortRange;
use crate::proxy_protocol::TrustedProxies;
use crate::stream::FtpStream;

/// How long a balancer may take to send the PROXY header of a data connection.
const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("the client did not open the data connection in time")]
    Timeout,
    #[error("cannot open the data connection: {0}")]
    Io(#[from] io::Error),
    #[error("TLS handshake on the data connection failed: {0}")]
    Handshake(io::Error),
    #[error("TLS session of data connection not resumed")]
    NotResumed,
    #[error("the data connection is protected but PROT C was set after PASV; send PASV again")]
    ProtectionChanged,
}

/// Where the next data connection comes from.
pub enum DataSetup {
    Passive(PendingPassive),
    Active { target: SocketAddr, local: IpAddr },
}

pub struct PassiveListener {
    listener: TcpListener,
    expected_peer: IpAddr,
    /// Balancers that forward data connections with a PROXY header.
    balancers: TrustedProxies,
}

impl PassiveListener {
    /// Binds a port from `range` on `local`, starting at a random port so that
    /// concurrent sessions rarely collide.
    pub async fn bind(
        local: IpAddr,
        range: PortRange,
        expected_peer: IpAddr,
        balancers: &TrustedProxies,
    ) -> io::Result<Self> {
        let len = range.len();
        let start = rand::thread_rng().gen_range(0..len);
        let mut last_err = None;
        for i in 0..len.min(256) {
            let port = range.first as u32 + (start + i) % len;
            match TcpListener::bind(SocketAddr::new(local, port as u16)).await {
                Ok(listener) => {
                    return Ok(Self {
                        listener,
                        expected_peer,
                        balancers: balancers.clone(),
                    })
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("passive port range exhausted")))
    }

    pub fn port(&self) -> io::Result<u16> {
        Ok(self.listener.local_addr()?.port())
    }

    /// Accepts the client's data connection. Connections from any address other
    /// than the control connection's peer are refused (FTP bounce / data theft,
    /// vsftpd's `pasv_promiscuous=NO`); through a trusted balancer, the address
    /// is the one its PROXY header names.
    async fn accept(self) -> io::Result<TcpStream> {
        loop {
            let (mut stream, peer) = self.listener.accept().await?;
            let behind = self.balancers.client_behind(
                &mut stream,
                peer,
                PROXY_HEADER_TIMEOUT,
                "data connection",
            );
            let Some(client) = behind.await else {
                continue;
            };
            if canonical(client.ip()) == canonical(self.expected_peer) {
                return Ok(stream);
            }
            tracing::warn!(peer = %client, expected = %self.expected_peer,
                "refused a passive data connection from a foreign address");
        }
    }
}

/// A passive listener whose connection is accepted, and under `PROT P` secured,
/// in the background from the moment `PASV`/`EPSV` is answered: some clients
/// (aioftp, older Go clients) finish the data connection's TLS handshake before
/// they send `STOR`/`RETR`, and would wait forever for a server that starts it
/// only after the command. Dropping it (a new PASV, the session's end) stops
/// the background task.
pub struct PendingPassive {
    opened: oneshot::Receiver<io::Result<Opened>>,
    intent: Arc<AtomicU8>,
    _task: AbortOnDrop,
}

/// What the transfer on a data connection does, as far as its TLS tickets go.
const INTENT_UNKNOWN: u8 = 0;
/// An upload: the client may never read from the connection.
const INTENT_UPLOAD: u8 = 1;
/// A download or listing: the client reads to the end.
const INTENT_READ: u8 = 2;
/// An upload whose `150` went out before the client said anything on the
/// data connection: a client that starts TLS only after `150` and then
/// only writes (ftplib, FileZilla) gets no tickets it would never read.
const INTENT_UPLOAD_ANSWERED: u8 = 3;

/// A data connection as the transfer finds it.
pub enum Opened {
    Plain(TcpStream),
    /// The TLS handshake runs (or has run) in the background.
    Securing {
        result: oneshot::Receiver<Result<Secured, DataError>>,
        /// Set once the client sent its first bytes (its ClientHello).
        spoke: Arc<AtomicBool>,
        /// The same socket, to look at what has arrived before the
        /// background task has: a client that sends its ClientHello and then
        /// its command (curl) has both queued by the time the command is
        /// read, whichever task runs first.
        probe: Option<std::net::TcpStream>,
        intent: Arc<AtomicU8>,
        _task: AbortOnDrop,
    },
}

/// A data connection after its TLS handshake, with the session it resumed.
pub struct Secured {
    pub stream: DataStream,
    pub claim: Option<SessionClaim>,
}

/// What the background handshake installs and uses: the session's binding and
/// user go into the tickets this data connection hands out.
#[derive(Clone)]
pub struct DataTlsContext {
    pub configs: TlsConfigs,
    pub binding: SessionBinding,
    pub user: String,
}

pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl PendingPassive {
    /// Starts accepting on `listener`; with `tls`, the handshake follows the
    /// accept at once.
    pub fn start(listener: PassiveListener, tls: Option<DataTlsContext>) -> Self {
        let (opened_tx, opened) = oneshot::channel();
        let intent = Arc::new(AtomicU8::new(INTENT_UNKNOWN));
        let known = intent.clone();
        let task = tokio::spawn(
            async move {
                let tcp = match listener.accept().await {
                    Ok(tcp) => tcp,
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let Some(tls) = tls else {
                    let _ = opened_tx.send(Ok(Opened::Plain(tcp)));
                    return;
                };
                let (result_tx, result) = oneshot::channel();
                let spoke = Arc::new(AtomicBool::new(false));
                let heard = spoke.clone();
                let probe = tcp
                    .as_fd()
                    .try_clone_to_owned()
                    .map(std::net::TcpStream::from)
                    .ok();
                let intent = known.clone();
                let handshake = tokio::spawn(
                    async move {
                        if matches!(tcp.peek(&mut [0u8; 1]).await, Ok(n) if n > 0) {
                            heard.store(true, Ordering::Release);
                        }
                        // A client that speaks before it has its `150`
                        // (curl) reads what is waiting when it closes.
                        let tickets = known.load(Ordering::Acquire) != INTENT_UPLOAD_ANSWERED;
                        let _ = result_tx.send(handshake(tcp, &tls, tickets).await);
                    }
                    .in_current_span(),
                );
                let _ = opened_tx.send(Ok(Opened::Securing {
                    result,
                    spoke,
                    probe,
                    intent,
                    _task: AbortOnDrop(handshake),
                }));
            }
            .in_current_span(),
        );
        Self {
            opened,
            intent,
            _task: AbortOnDrop(task),
        }
    }
}

impl DataSetup {
    /// Tells a passive connection's background handshake what the transfer
    /// does (before `150`, so before a client that waits for it starts).
    pub fn announce(&self, upload: bool) {
        if let DataSetup::Passive(pending) = self {
            let intent = if upload { INTENT_UPLOAD } else { INTENT_READ };
            pending.intent.store(intent, Ordering::Release);
        }
    }

    /// The data connection, accepted or connected within `timeout`.
    pub async fn connect(self, timeout: Duration) -> Result<Opened, DataError> {
        let fut = async {
            match self {
                DataSetup::Passive(pending) => pending
                    .opened
                    .await
                    .unwrap_or_else(|_| Err(io::Error::other("passive listener stopped"))),
                DataSetup::Active { target, local } => {
                    let socket = match target {
                        SocketAddr::V4(_) => TcpSocket::new_v4()?,
                        SocketAddr::V6(_) => TcpSocket::new_v6()?,
                    };
                    if canonical(local).is_ipv4() == target.is_ipv4() {
                        socket.bind(SocketAddr::new(canonical(local), 0))?;
                    }
                    let tcp = socket.connect(target).await?;
                    let _ = tcp.set_nodelay(true);
                    Ok(Opened::Plain(tcp))
                }
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| DataError::Timeout)?
            .map_err(DataError::Io)
    }
}

pub type DataStream = FtpStream;

/// The server side of a data connection's TLS handshake. Its tickets carry the
/// session's binding and user; which session the client resumed is returned
/// for the caller to judge (`crate::data_tls`).
pub async fn handshake(
    tcp: TcpStream,
    tls: &DataTlsContext,
    tickets: bool,
) -> Result<Secured, DataError> {
    let (config, witness) = tls.configs.for_data_connection(tickets);
    let acceptor = TlsAcceptor::from(config);
    let mut stream = acceptor
        .accept_with(tcp, |c| tls.binding.install_for_user(c, &tls.user))
        .await
        .map_err(DataError::Handshake)?;
    // The new session ticket goes out now, not with the first data: a client
    // that only writes (an upload) finds it waiting when it closes.
    stream.flush().await.map_err(DataError::Handshake)?;
    let claim = witness.claim(stream.get_ref().1);
    Ok(Secured {
        stream: DataStream::Tls(Box::new(stream)),
        claim,
    })
}

impl Opened {
    /// Whether the client started the TLS handshake before the server
    /// answered its command (curl, Go, aioftp do).
    pub fn client_spoke_first(&self) -> bool {
        match self {
            Opened::Plain(_) => false,
            Opened::Securing { spoke, probe, .. } => {
                spoke.load(Ordering::Acquire)
                    || probe
                        .as_ref()
                        .is_some_and(|p| matches!(p.peek(&mut [0u8; 1]), Ok(n) if n > 0))
            }
        }
    }

    /// Records, before `150` goes out for an upload, that the client has not
    /// spoken yet: its handshake, when it comes, hands out no tickets.
    pub fn answering_upload_first(&self) {
        if let Opened::Securing { intent, .. } = self {
            intent.store(INTENT_UPLOAD_ANSWERED, Ordering::Release);
        }
    }

    /// The connection secured within `timeout` (counted from now: the client
    /// may have been waiting for `150` to start).
    /// `tickets`: whether a connection handshaken now hands out TLS 1.3
    /// tickets (a background handshake has decided for itself).
    pub async fn secure(
        self,
        tls: &DataTlsContext,
        timeout: Duration,
        tickets: bool,
    ) -> Result<Secured, DataError> {
        let timed_out =
            || DataError::Handshake(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        match self {
            Opened::Plain(tcp) => tokio::time::timeout(timeout, handshake(tcp, tls, tickets))
                .await
                .map_err(|_| timed_out())?,
            Opened::Securing { result, _task, .. } => tokio::time::timeout(timeout, result)
                .await
                .map_err(|_| timed_out())?
                .unwrap_or_else(|_| Err(DataError::Io(io::Error::other("handshake task stopped")))),
        }
    }
}
