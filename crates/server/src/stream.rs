//! A TCP connection that is plain or TLS: the control connection before and
//! after AUTH TLS, and a data connection with PROT C or PROT P.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

pub enum FtpStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl FtpStream {
    pub fn is_tls(&self) -> bool {
        matches!(self, FtpStream::Tls(_))
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            FtpStream::Plain(s) => s,
            FtpStream::Tls(s) => s.get_ref().0,
        }
    }

    /// Asks the kernel to acknowledge what arrives next at once rather than
    /// after the delayed-ACK timer (TCP_QUICKACK lasts only a while, so a
    /// receiver sets it before each read). A client whose socket still runs
    /// Nagle's algorithm (Python's ftplib) holds its small TLS close_notify
    /// until the last data is acknowledged: with delayed ACKs every upload
    /// then ends with a 40 ms stall before the client can close.
    pub fn acknowledge_promptly(&self) {
        #[cfg(target_os = "linux")]
        let _ = self.tcp().set_quickack(true);
    }

    /// Negotiated TLS version and cipher suite, for logs and STAT.
    /// What the client's certificate says, when it presented one over TLS.
    pub fn client_identity(&self) -> Option<wharf_tls::ClientIdentity> {
        match self {
            FtpStream::Tls(s) => {
                let der = s.get_ref().1.peer_certificates()?.first()?;
                wharf_tls::ClientIdentity::from_der(der)
            }
            FtpStream::Plain(_) => None,
        }
    }

    pub fn tls_description(&self) -> Option<String> {
        match self {
            FtpStream::Tls(s) => {
                let conn = s.get_ref().1;
                Some(format!(
                    "{:?} {:?}",
                    conn.protocol_version()?,
                    conn.negotiated_cipher_suite()?.suite()
                ))
            }
            FtpStream::Plain(_) => None,
        }
    }
}

impl AsyncRead for FtpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            FtpStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            FtpStream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for FtpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            FtpStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            FtpStream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            FtpStream::Plain(s) => Pin::new(s).poll_flush(cx),
            FtpStream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            FtpStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            FtpStream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
