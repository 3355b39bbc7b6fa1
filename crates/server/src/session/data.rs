//! Data connections: the passive listener (PASV/EPSV), active connects
//! (PORT/EPRT), and the TLS layer with its session-reuse check.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand::Rng;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::TlsAcceptor;
use wharf_tls::{SessionBinding, TlsConfigs};

use super::stream::FtpStream;
use crate::config::PortRange;
use crate::proxy_protocol::TrustedProxies;

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
}

/// Where the next data connection comes from.
pub enum DataSetup {
    Passive(PassiveListener),
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

/// IPv4-mapped IPv6 addresses compare equal to their IPv4 form.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl DataSetup {
    /// The TCP connection, before any TLS.
    pub async fn connect(self, timeout: Duration) -> Result<TcpStream, DataError> {
        let fut = async {
            match self {
                DataSetup::Passive(listener) => listener.accept().await,
                DataSetup::Active { target, local } => {
                    let socket = match target {
                        SocketAddr::V4(_) => TcpSocket::new_v4()?,
                        SocketAddr::V6(_) => TcpSocket::new_v6()?,
                    };
                    if canonical(local).is_ipv4() == target.is_ipv4() {
                        socket.bind(SocketAddr::new(canonical(local), 0))?;
                    }
                    socket.connect(target).await
                }
            }
        };
        let stream = tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| DataError::Timeout)??;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

pub type DataStream = FtpStream;

/// Runs the server side of the data connection's TLS handshake. With
/// `require_reuse`, the client must resume a session carrying `binding`.
pub async fn secure(
    tcp: TcpStream,
    configs: &TlsConfigs,
    binding: &SessionBinding,
    require_reuse: bool,
    timeout: Duration,
) -> Result<DataStream, DataError> {
    let (config, witness) = configs.for_data_connection(binding);
    let acceptor = TlsAcceptor::from(config);
    let tls = tokio::time::timeout(timeout, acceptor.accept_with(tcp, |c| binding.install(c)))
        .await
        .map_err(|_| DataError::Handshake(io::Error::new(io::ErrorKind::TimedOut, "timed out")))?
        .map_err(DataError::Handshake)?;
    let resumed = witness.resumed_by(tls.get_ref().1);
    tracing::debug!(resumed, "data connection TLS established");
    if require_reuse && !resumed {
        tracing::info!(
            "data connection refused: its TLS session does not resume the control connection's \
             (the client must reuse TLS sessions, as FileZilla, lftp and curl do; \
             legacy clients need --no-require-ssl-reuse)"
        );
        return Err(DataError::NotResumed);
    }
    Ok(DataStream::Tls(Box::new(tls)))
}
