//! The control connection: a plain or TLS stream, framed into command lines.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use wharf_ftp::Reply;
use wharf_tls::SessionBinding;

/// Plain until AUTH TLS, then TLS; or TLS from the start on the implicit port.
pub enum ControlStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only between taking the plain stream for a handshake and putting the TLS
    /// one back; every operation on it fails.
    Detached,
}

impl ControlStream {
    pub fn is_tls(&self) -> bool {
        matches!(self, ControlStream::Tls(_))
    }

    /// Negotiated TLS version and cipher suite, for logs and STAT.
    pub fn tls_description(&self) -> Option<String> {
        match self {
            ControlStream::Tls(s) => {
                let conn = s.get_ref().1;
                Some(format!(
                    "{:?} {:?}",
                    conn.protocol_version()?,
                    conn.negotiated_cipher_suite()?.suite()
                ))
            }
            _ => None,
        }
    }
}

fn detached() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "control stream detached")
}

impl AsyncRead for ControlStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ControlStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ControlStream::Tls(s) => Pin::new(s).poll_read(cx, buf),
            ControlStream::Detached => Poll::Ready(Err(detached())),
        }
    }
}

impl AsyncWrite for ControlStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ControlStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ControlStream::Tls(s) => Pin::new(s).poll_write(cx, buf),
            ControlStream::Detached => Poll::Ready(Err(detached())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ControlStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ControlStream::Tls(s) => Pin::new(s).poll_flush(cx),
            ControlStream::Detached => Poll::Ready(Err(detached())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ControlStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ControlStream::Tls(s) => Pin::new(s).poll_shutdown(cx),
            ControlStream::Detached => Poll::Ready(Err(detached())),
        }
    }
}

/// What reading the next line produced.
#[derive(Debug)]
pub enum Incoming {
    Line(Vec<u8>),
    /// The line exceeded the limit; its bytes up to the next newline are dropped.
    TooLong,
    /// A TLS ClientHello arrived where plain FTP was expected: the client
    /// speaks implicit FTPS to the explicit port.
    TlsHandshake,
    Closed,
}

pub struct ControlConnection {
    stream: ControlStream,
    buf: Vec<u8>,
    max_line: usize,
    /// Dropping the rest of an over-long line.
    discarding: bool,
    write_timeout: Duration,
}

impl ControlConnection {
    pub fn new(stream: ControlStream, max_line: usize, write_timeout: Duration) -> Self {
        Self {
            stream,
            buf: Vec::with_capacity(256),
            max_line,
            discarding: false,
            write_timeout,
        }
    }

    pub fn stream(&self) -> &ControlStream {
        &self.stream
    }

    /// Cancel-safe: partial lines stay in `self.buf` between calls, so the
    /// session can race this against transfer events in `select!`.
    pub async fn next_line(&mut self) -> io::Result<Incoming> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if std::mem::take(&mut self.discarding) {
                    continue; // tail of an over-long line, already answered
                }
                if line.len() > self.max_line {
                    return Ok(Incoming::TooLong);
                }
                return Ok(Incoming::Line(line));
            }
            if self.buf.starts_with(&[0x16, 0x03]) && !self.stream.is_tls() {
                return Ok(Incoming::TlsHandshake);
            }
            if self.buf.len() > self.max_line {
                self.buf.clear();
                if !self.discarding {
                    self.discarding = true;
                    return Ok(Incoming::TooLong);
                }
            }
            if self.buf.capacity() - self.buf.len() < 512 {
                self.buf.reserve(4096);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Ok(Incoming::Closed);
            }
        }
    }

    pub async fn send(&mut self, reply: &Reply) -> io::Result<()> {
        let bytes = reply.encode();
        tokio::time::timeout(self.write_timeout, async {
            self.stream.write_all(&bytes).await?;
            self.stream.flush().await
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client does not read replies"))?
    }

    /// Runs the TLS handshake on the control connection after `234` (AUTH TLS).
    /// Plaintext the client sent after AUTH is discarded, never interpreted as
    /// protected commands (the STARTTLS command-injection flaw).
    pub async fn upgrade(
        &mut self,
        acceptor: TlsAcceptor,
        binding: &SessionBinding,
        timeout: Duration,
    ) -> io::Result<()> {
        let ControlStream::Plain(tcp) =
            std::mem::replace(&mut self.stream, ControlStream::Detached)
        else {
            return Err(io::Error::other("control connection is already protected"));
        };
        if !self.buf.is_empty() {
            tracing::warn!(
                bytes = self.buf.len(),
                "discarding plaintext the client pipelined after AUTH"
            );
            self.buf.clear();
        }
        let tls = tokio::time::timeout(timeout, acceptor.accept_with(tcp, |c| binding.install(c)))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        self.stream = ControlStream::Tls(Box::new(tls));
        Ok(())
    }

    pub async fn close(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.shutdown()).await;
    }
}
