//! The control connection: a plain or TLS stream, framed into command lines.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;
use wharf_ftp::Reply;
use wharf_tls::SessionBinding;

use crate::stream::FtpStream;

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
    /// `None` only while the plain stream is handed to the TLS handshake.
    stream: Option<FtpStream>,
    buf: Vec<u8>,
    max_line: usize,
    /// Dropping the rest of an over-long line.
    discarding: bool,
    write_timeout: Duration,
}

impl ControlConnection {
    pub fn new(stream: FtpStream, max_line: usize, write_timeout: Duration) -> Self {
        Self {
            stream: Some(stream),
            buf: Vec::with_capacity(256),
            max_line,
            discarding: false,
            write_timeout,
        }
    }

    pub fn is_tls(&self) -> bool {
        self.stream.as_ref().is_some_and(FtpStream::is_tls)
    }

    pub fn stream_ref(&self) -> Option<&FtpStream> {
        self.stream.as_ref()
    }

    pub fn client_identity(&self) -> Option<wharf_tls::ClientIdentity> {
        self.stream.as_ref()?.client_identity()
    }

    pub fn tls_description(&self) -> Option<String> {
        self.stream.as_ref()?.tls_description()
    }

    fn stream(&mut self) -> io::Result<&mut FtpStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "control stream detached"))
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
            if self.buf.starts_with(&[0x16, 0x03]) && !self.is_tls() {
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
            let stream = self.stream.as_mut().ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotConnected, "control stream detached")
            })?;
            if stream.read_buf(&mut self.buf).await? == 0 {
                return Ok(Incoming::Closed);
            }
        }
    }

    pub async fn send(&mut self, reply: &Reply) -> io::Result<()> {
        tracing::debug!(code = reply.code, "reply");
        let bytes = reply.encode();
        let write_timeout = self.write_timeout;
        let stream = self.stream()?;
        tokio::time::timeout(write_timeout, async {
            stream.write_all(&bytes).await?;
            stream.flush().await
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
        let tcp = match self.stream.take() {
            Some(FtpStream::Plain(tcp)) => tcp,
            other => {
                self.stream = other;
                return Err(io::Error::other("control connection is already protected"));
            }
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
        self.stream = Some(FtpStream::Tls(Box::new(tls)));
        Ok(())
    }

    pub async fn close(&mut self) {
        if let Some(stream) = self.stream.as_mut() {
            let _ = tokio::time::timeout(Duration::from_secs(2), stream.shutdown()).await;
        }
    }
}
