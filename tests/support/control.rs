//! A raw, plain-text FTP control connection: exact bytes in, exact replies out. Used for
//! what must happen before TLS (greeting, `USER` refused, `FEAT`) and for bad input.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// How long a reply may take before the test fails.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// One FTP reply, possibly multi-line, with the exact bytes it arrived as.
#[derive(Clone, Debug)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
    pub raw: Vec<u8>,
}

impl Reply {
    /// The reply text as received, lines joined with `\n`.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.raw))
    }
}

pub struct Control {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    /// Everything sent and received, for failure messages.
    pub transcript: String,
}

impl Control {
    /// Connects to `127.0.0.1:port` and reads the greeting.
    pub fn connect(port: u16) -> (Control, Reply) {
        let mut control = Control::connect_silent(port);
        let greeting = control
            .reply()
            .unwrap_or_else(|e| panic!("no greeting on port {port}: {e}"));
        (control, greeting)
    }

    /// Connects without reading anything.
    pub fn connect_silent(port: u16) -> Control {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
        Control::over(stream)
    }

    /// Connects to `127.0.0.1:port` from `source` (another loopback address, as
    /// a load balancer or a second client would), without reading anything.
    pub fn connect_from(source: std::net::Ipv4Addr, port: u16) -> Control {
        Control::connect_between(source, (std::net::Ipv4Addr::LOCALHOST, port).into())
    }

    /// Connects to `target` from `source`, without reading anything.
    pub fn connect_between(source: std::net::Ipv4Addr, target: std::net::SocketAddr) -> Control {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("a runtime to connect with");
        let stream = runtime
            .block_on(async {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind((source, 0).into())?;
                socket.connect(target).await
            })
            .and_then(|s| s.into_std())
            .unwrap_or_else(|e| panic!("connect from {source} to {target}: {e}"));
        stream.set_nonblocking(false).expect("blocking socket");
        Control::over(stream)
    }

    fn over(stream: TcpStream) -> Control {
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .expect("set read timeout");
        stream
            .set_write_timeout(Some(REPLY_TIMEOUT))
            .expect("set write timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone the stream"));
        Control {
            stream,
            reader,
            transcript: String::new(),
        }
    }

    /// Sends `line` followed by CRLF.
    pub fn send(&mut self, line: &str) {
        self.transcript.push_str(&format!("> {line}\n"));
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("send {line:?}: {e}\n{}", self.transcript));
    }

    /// Sends bytes exactly as given.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned();
        self.transcript
            .push_str(&format!("> [{} raw bytes] {shown:?}\n", bytes.len()));
        self.stream.write_all(bytes)
    }

    /// Sends `line` and reads the reply, panicking with the transcript on failure.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(line);
        self.reply()
            .unwrap_or_else(|e| panic!("no reply to {line:?}: {e}\n{}", self.transcript))
    }

    /// Reads one complete reply (RFC 959 §4.2: `ddd-` opens a multi-line reply that ends
    /// with a line starting `ddd `).
    pub fn reply(&mut self) -> io::Result<Reply> {
        let mut raw = Vec::new();
        let mut lines = Vec::new();
        let first = self.read_line(&mut raw)?;
        let code = parse_code(&first)?;
        lines.push(first.clone());
        if first.as_bytes().get(3) == Some(&b'-') {
            let terminator = format!("{code} ");
            loop {
                let line = self.read_line(&mut raw)?;
                let done = line.starts_with(&terminator);
                lines.push(line);
                if done {
                    break;
                }
            }
        }
        let reply = Reply { code, lines, raw };
        self.transcript.push_str(&format!("< {reply}\n"));
        Ok(reply)
    }

    fn read_line(&mut self, raw: &mut Vec<u8>) -> io::Result<String> {
        let mut line = Vec::new();
        let n = self.reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        raw.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line);
        Ok(text.trim_end_matches(['\r', '\n']).to_string())
    }

    /// Reads until the server closes the connection or `limit` passes; returns the bytes
    /// read and whether the connection was closed (EOF or reset) within the limit.
    pub fn read_until_closed(&mut self, limit: Duration) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + limit;
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (received, false);
            }
            let _ = self
                .reader
                .get_ref()
                .set_read_timeout(Some(left.min(Duration::from_millis(500))));
            match self.reader.read(&mut buf) {
                Ok(0) => return (received, true),
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut => {}
                Err(_) => return (received, true),
            }
        }
    }

    /// Closes both directions.
    pub fn close(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

fn parse_code(line: &str) -> io::Result<u16> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not an FTP reply line: {line:?}"),
        )
    };
    let digits = line.get(..3).ok_or_else(bad)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if !matches!(line.as_bytes().get(3), None | Some(b' ') | Some(b'-')) {
        return Err(bad());
    }
    digits.parse().map_err(|_| bad())
}
