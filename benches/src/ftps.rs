//! A small explicit-FTPS client for load generation: one control session
//! (AUTH TLS, login, PROT P), passive data connections that resume the
//! control session's TLS session (as FileZilla and lftp do, and as both
//! Wharf and vsftpd's `require_ssl_reuse` demand). Certificates are not
//! verified: it only ever talks to servers the benchmark started itself.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client configuration with its own session cache, so a session's data
/// connections resume that session and no other. TLS 1.2: rustls hands out
/// each TLS 1.3 ticket only once, while FTPS clients built on OpenSSL or
/// GnuTLS resume every data connection from the control session; with
/// TLS 1.2 session resumption rustls does the same.
fn session_config() -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

pub struct Session {
    control: BufReader<TlsStream<TcpStream>>,
    connector: TlsConnector,
}

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
            bail!("connection closed while waiting for a reply ({text:?})");
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
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .with_context(|| format!("connect to port {port}"))?;
        tcp.set_nodelay(true)?;
        let mut plain = BufReader::new(tcp);
        expect(read_reply(&mut plain).await?, 220)?;
        plain.get_mut().write_all(b"AUTH TLS\r\n").await?;
        expect(read_reply(&mut plain).await?, 234)?;
        let connector = TlsConnector::from(session_config()?);
        let tls = connector.connect(server_name(), plain.into_inner()).await?;
        let mut session = Session {
            control: BufReader::new(tls),
            connector,
        };
        session.command(&format!("USER {user}"), 331).await?;
        session.command(&format!("PASS {password}"), 230).await?;
        session.command("PBSZ 0", 200).await?;
        session.command("PROT P", 200).await?;
        session.command("TYPE I", 200).await?;
        Ok(session)
    }

    async fn command(&mut self, line: &str, want: u16) -> Result<String> {
        self.control
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await?;
        let reply = read_reply(&mut self.control).await?;
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
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }

    /// STOR `name` with `data`; returns once the server answered `226`.
    pub async fn store(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let tcp = self.passive().await?;
        self.command(&format!("STOR {name}"), 150).await?;
        let mut tls = self.connector.connect(server_name(), tcp).await?;
        for piece in data.chunks(256 * 1024) {
            tls.write_all(piece).await?;
        }
        tls.shutdown().await?;
        expect(read_reply(&mut self.control).await?, 226)?;
        Ok(())
    }

    /// RETR `name`; returns the number of bytes received.
    pub async fn retrieve(&mut self, name: &str) -> Result<u64> {
        let tcp = self.passive().await?;
        self.command(&format!("RETR {name}"), 150).await?;
        let mut tls = self.connector.connect(server_name(), tcp).await?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            match tls.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => total += n as u64,
                // Servers that close without close_notify still sent every byte.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e.into()),
            }
        }
        // Answer the server's close_notify with ours: vsftpd waits for it
        // before it reports the transfer.
        let _ = tls.shutdown().await;
        drop(tls);
        expect(read_reply(&mut self.control).await?, 226)?;
        Ok(total)
    }

    pub async fn quit(mut self) {
        let _ = self.command("QUIT", 221).await;
    }
}

fn expect((code, text): (u16, String), want: u16) -> Result<String> {
    if code != want {
        bail!("expected {want}, got {}", text.trim_end());
    }
    Ok(text)
}
