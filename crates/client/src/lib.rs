//! A small explicit-FTPS client for the benchmarks and the chaos suite: one
//! control session (AUTH TLS, login, PROT P), passive data connections that
//! resume the control session's TLS session (as FileZilla and lftp do, and
//! as both Wharf and vsftpd's `require_ssl_reuse` demand). Certificates are
//! not verified: it only ever talks to servers its caller started itself.
//!
//! Errors tell a refusal (the server answered with another code: nothing
//! happened, or the server says what did) from a broken connection (the
//! outcome is unknown), which the chaos checker needs.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Which TLS version a client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// What one client brings to its connections: a TLS configuration with its
/// own session cache, so its data connections resume its sessions and no
/// other client's. Sessions opened one after another with the same
/// connector resume each other when `resumption` is on.
///
/// rustls hands out each TLS 1.3 ticket only once, so with TLS 1.3 every
/// data connection needs a fresh ticket from the server: the client asks
/// for one per resumed connection (RFC 9149; Wharf answers it, OpenSSL
/// servers send one anyway). With TLS 1.2 a session is resumed as often as
/// the client likes, as OpenSSL and GnuTLS clients do.
#[derive(Clone)]
pub struct Connector {
    tls: TlsConnector,
}

/// A rustls client configuration as any rustls-based FTP client has it
/// (default session cache, no ticket request), speaking `version` and
/// accepting any server certificate: what the end-to-end tests hand to
/// third-party rustls clients such as suppaftp.
pub fn stock_rustls_config(version: TlsVersion) -> Result<ClientConfig> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    // ECDHE on P-256 only: the OpenSSL-based peers of the benchmark are
    // held to it (vsftpd cannot be told otherwise), and a client whose
    // first key share is another group costs them a retry.
    provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::SECP256R1];
    let provider = Arc::new(provider);
    let versions: &[&rustls::SupportedProtocolVersion] = match version {
        TlsVersion::Tls12 => &[&rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    Ok(ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(wharf_tls::AnyServerCertificate::new(provider)))
        .with_no_client_auth())
}

impl Connector {
    pub fn new(version: TlsVersion, resumption: bool) -> Result<Self> {
        let mut config = stock_rustls_config(version)?;
        if resumption {
            // One new ticket per resumed connection (RFC 9149): rustls uses
            // each ticket once, and every data connection must resume.
            config.send_ticket_request = Some(rustls::client::TicketRequest {
                new_session_count: 2,
                resumption_count: 1,
            });
        } else {
            config.resumption = rustls::client::Resumption::disabled();
        }
        Ok(Self {
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    /// TLS 1.2 with resumption: what the chaos suite and the storage
    /// benchmark use.
    pub fn tls12() -> Result<Self> {
        Self::new(TlsVersion::Tls12, true)
    }
}

pub struct Session {
    control: BufReader<TlsStream<TcpStream>>,
    connector: TlsConnector,
    /// Whether the control connection resumed an earlier session.
    resumed: bool,
    /// Where passive data connections go: the control connection's server.
    server: IpAddr,
}

/// The server answered with a code other than the one the step needs.
#[derive(Debug)]
pub struct Refused {
    pub code: u16,
    pub text: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.text.trim_end())
    }
}

impl std::error::Error for Refused {}

/// Whether `error` is the server's answer (then the connection was fine).
pub fn refusal(error: &anyhow::Error) -> Option<&Refused> {
    error.downcast_ref::<Refused>()
}

#[allow(clippy::expect_used)] // a constant that is a valid DNS name
fn server_name() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("a valid name")
}

/// How long a reply may take (a 1 GiB transfer's `226` included).
const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Result<(u16, String)> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        let read = tokio::time::timeout(REPLY_TIMEOUT, r.read_line(&mut line))
            .await
            .with_context(|| format!("no reply within {REPLY_TIMEOUT:?} ({text:?})"))??;
        if read == 0 {
            anyhow::bail!("connection closed while waiting for a reply ({text:?})");
        }
        text.push_str(&line);
        let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
        if let (Some(code), Some(b' ')) = (code, line.as_bytes().get(3)) {
            return Ok((code, text));
        }
    }
}

impl Session {
    /// Connects to 127.0.0.1:`port`, secures the control connection and logs in.
    pub async fn login(port: u16, user: &str, password: &str) -> Result<Session> {
        Self::login_at(SocketAddr::from(([127, 0, 0, 1], port)), user, password).await
    }

    /// Connects to `server`, secures the control connection and logs in,
    /// ready for transfers (TLS 1.2, a connector of its own).
    pub async fn login_at(server: SocketAddr, user: &str, password: &str) -> Result<Session> {
        let mut session = Self::open(server, user, password, &Connector::tls12()?).await?;
        session.prepare_transfers().await?;
        Ok(session)
    }

    /// Connects to `server`, secures the control connection with
    /// `connector` and logs in (no PBSZ, PROT or TYPE yet).
    pub async fn open(
        server: SocketAddr,
        user: &str,
        password: &str,
        connector: &Connector,
    ) -> Result<Session> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(server))
            .await
            .with_context(|| format!("connect to {server}: timed out"))?
            .with_context(|| format!("connect to {server}"))?;
        tcp.set_nodelay(true)?;
        let mut plain = BufReader::new(tcp);
        expect(read_reply(&mut plain).await?, 220)?;
        plain.get_mut().write_all(b"AUTH TLS\r\n").await?;
        expect(read_reply(&mut plain).await?, 234)?;
        let connector = connector.tls.clone();
        let tls = connector.connect(server_name(), plain.into_inner()).await?;
        let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        let mut session = Session {
            control: BufReader::new(tls),
            connector,
            resumed,
            server: server.ip(),
        };
        session.command(&format!("USER {user}"), 331).await?;
        session.command(&format!("PASS {password}"), 230).await?;
        Ok(session)
    }

    /// PBSZ 0, PROT P and TYPE I: what a session needs before transfers.
    pub async fn prepare_transfers(&mut self) -> Result<()> {
        self.command("PBSZ 0", 200).await?;
        self.command("PROT P", 200).await?;
        self.command("TYPE I", 200).await?;
        Ok(())
    }

    /// Whether the control connection's handshake resumed an earlier session.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// PWD: the current directory's reply text.
    pub async fn pwd(&mut self) -> Result<String> {
        self.command("PWD", 257).await
    }

    /// NOOP: whether the session still answers.
    pub async fn noop(&mut self) -> Result<()> {
        self.command("NOOP", 200).await.map(drop)
    }

    async fn command(&mut self, line: &str, want: u16) -> Result<String> {
        let control = self.control.get_mut();
        control.write_all(format!("{line}\r\n").as_bytes()).await?;
        // tokio-rustls may keep the end of what it was given until flushed
        // (when the socket was not writable); only a flush guarantees the
        // server sees the command we then wait for a reply to.
        control.flush().await?;
        let verb = line.split(' ').next().unwrap_or_default();
        let reply = read_reply(&mut self.control)
            .await
            .with_context(|| format!("waiting for the reply to {verb}"))?;
        expect(reply, want)
    }

    /// EPSV, then a TCP connection to the port it names.
    async fn passive(&mut self) -> Result<TcpStream> {
        let text = self.command("EPSV", 229).await?;
        let port: u16 = text
            .split("|||")
            .nth(1)
            .and_then(|rest| rest.split('|').next())
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("unreadable EPSV reply {text:?}"))?;
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((self.server, port)))
            .await
            .context("passive connection timed out")??;
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }

    /// The TLS handshake of a data connection, within CONNECT_TIMEOUT (a
    /// server that never answers it must not hold the client forever).
    async fn secure(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.connector.connect(server_name(), tcp))
            .await
            .context("data connection TLS handshake timed out")?
            .context("data connection TLS handshake")
    }

    /// STOR `name` with `data`; returns once the server answered `226`.
    pub async fn store(&mut self, name: &str, data: &[u8]) -> Result<()> {
        self.upload("STOR", name, None, data).await
    }

    /// APPE `name` with `data`.
    pub async fn append(&mut self, name: &str, data: &[u8]) -> Result<()> {
        self.upload("APPE", name, None, data).await
    }

    /// REST `offset`, then STOR `name` with `data` (the rest of the file).
    pub async fn store_from(&mut self, name: &str, offset: u64, data: &[u8]) -> Result<()> {
        self.upload("STOR", name, Some(offset), data).await
    }

    /// Starts STOR `name` and sends only `data[..sent]`, then drops the data
    /// and control connections at once, as a client that crashed would.
    pub async fn store_and_vanish(mut self, name: &str, data: &[u8], sent: usize) -> Result<()> {
        let tcp = self.passive().await?;
        self.command(&format!("STOR {name}"), 150).await?;
        let mut tls = self.secure(tcp).await?;
        for piece in data.get(..sent).unwrap_or(data).chunks(256 * 1024) {
            tls.write_all(piece).await?;
        }
        tls.flush().await?;
        Ok(())
    }

    async fn upload(
        &mut self,
        verb: &str,
        name: &str,
        rest: Option<u64>,
        data: &[u8],
    ) -> Result<()> {
        let tcp = self.passive().await?;
        if let Some(offset) = rest {
            self.command(&format!("REST {offset}"), 350).await?;
        }
        self.command(&format!("{verb} {name}"), 150).await?;
        let mut tls = self.secure(tcp).await?;
        for piece in data.chunks(256 * 1024) {
            tls.write_all(piece).await?;
        }
        tls.shutdown().await?;
        // Read what the server still sends (a TLS 1.3 ticket, its
        // close_notify) while the 226 is on its way: unread bytes would turn
        // our close into a reset, and the ticket resumes the next transfer.
        let drain = async {
            let mut sink = [0u8; 4096];
            while let Ok(1..) = tls.read(&mut sink).await {}
            std::future::pending::<()>().await
        };
        // Drain first: when the 226 is already there, what the server sent
        // before it (the ticket) must still be read.
        tokio::select! {
            biased;
            _ = drain => unreachable!("the drain never ends"),
            reply = self.transfer_reply() => reply,
        }
    }

    /// RETR `name`; returns the number of bytes received.
    pub async fn retrieve(&mut self, name: &str) -> Result<u64> {
        let mut total = 0u64;
        self.download(name, |piece| total += piece.len() as u64)
            .await?;
        Ok(total)
    }

    /// RETR `name` into memory.
    pub async fn retrieve_bytes(&mut self, name: &str) -> Result<Vec<u8>> {
        let mut content = Vec::new();
        self.download(name, |piece| content.extend_from_slice(piece))
            .await?;
        Ok(content)
    }

    async fn download(&mut self, name: &str, mut take: impl FnMut(&[u8])) -> Result<()> {
        let tcp = self.passive().await?;
        self.command(&format!("RETR {name}"), 150).await?;
        let mut tls = self.secure(tcp).await?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => take(buf.get(..n).unwrap_or_default()),
                // Servers that close without close_notify still sent every byte.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e.into()),
            }
        }
        // Answer the server's close_notify with ours: vsftpd waits for it
        // before it reports the transfer.
        let _ = tls.shutdown().await;
        drop(tls);
        self.transfer_reply().await?;
        Ok(())
    }

    /// The `226` that ends a transfer.
    async fn transfer_reply(&mut self) -> Result<()> {
        let reply = read_reply(&mut self.control)
            .await
            .context("waiting for the end of a transfer")?;
        expect(reply, 226).map(drop)
    }

    /// SIZE `name`: `None` when the server has no such file (550).
    pub async fn size(&mut self, name: &str) -> Result<Option<u64>> {
        match self.command(&format!("SIZE {name}"), 213).await {
            Ok(text) => Ok(text.get(4..).and_then(|n| n.trim().parse().ok())),
            Err(e) if refusal(&e).is_some_and(|r| r.code == 550) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        self.command(&format!("RNFR {from}"), 350).await?;
        self.command(&format!("RNTO {to}"), 250).await?;
        Ok(())
    }

    pub async fn delete(&mut self, name: &str) -> Result<()> {
        self.command(&format!("DELE {name}"), 250).await?;
        Ok(())
    }

    /// MKD `name`; an existing directory (550) is fine.
    pub async fn make_dir(&mut self, name: &str) -> Result<()> {
        match self.command(&format!("MKD {name}"), 257).await {
            Err(e) if refusal(&e).is_some_and(|r| r.code == 550) => Ok(()),
            other => other.map(drop),
        }
    }

    /// NLST `dir`: the names in it (an empty or missing directory: none).
    pub async fn names(&mut self, dir: &str) -> Result<Vec<String>> {
        Ok(self
            .listing("NLST", dir)
            .await?
            .into_iter()
            .map(|l| l.rsplit('/').next().unwrap_or(&l).to_owned())
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// The lines of a `verb` (`NLST`, `LIST`, `MLSD`) listing of `dir` (an empty
    /// or missing directory: none).
    pub async fn listing(&mut self, verb: &str, dir: &str) -> Result<Vec<String>> {
        let tcp = self.passive().await?;
        match self.command(&format!("{verb} {dir}"), 150).await {
            Err(e) if refusal(&e).is_some_and(|r| r.code == 550 || r.code == 450) => {
                return Ok(Vec::new())
            }
            other => other?,
        };
        let mut tls = self.secure(tcp).await?;
        let mut listing = Vec::new();
        match tls.read_to_end(&mut listing).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(e.into()),
        }
        let _ = tls.shutdown().await;
        drop(tls);
        self.transfer_reply().await?;
        Ok(String::from_utf8_lossy(&listing)
            .lines()
            .map(str::to_owned)
            .collect())
    }

    pub async fn quit(mut self) {
        let _ = self.command("QUIT", 221).await;
    }
}

/// How long a TCP connection may take to open.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn expect((code, text): (u16, String), want: u16) -> Result<String> {
    if code != want {
        return Err(Refused { code, text }.into());
    }
    Ok(text)
}
