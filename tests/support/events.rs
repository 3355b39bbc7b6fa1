//! The far ends of upload-event sinks for the end-to-end tests: a webhook
//! receiver (plain HTTP/1.1 over std threads), a real `nats-server` process,
//! and a minimal NATS subscriber.
//!
//! They are written against the wire protocols rather than Wharf's own code,
//! so a test checks what a third-party receiver would actually see.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How often the worker threads look up from a blocking read to see whether
/// they were asked to stop; bounds how long a Drop takes.
const POLL: Duration = Duration::from_millis(50);
/// A request head larger than this is not something Wharf sends.
const MAX_HEAD: usize = 64 * 1024;
/// Nor is a body (one event) larger than this.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// A keep-alive connection with nothing to say for this long is closed.
const IDLE_CLOSE: Duration = Duration::from_secs(60);
/// A request that has started must arrive completely within this.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);

/// The `X-Wharf-Signature` value for `body` under `secret`: `sha256=<hex HMAC-SHA256>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Polls `done` every 20 ms until it holds or `limit` has passed.
fn poll_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking worker thread must not hide what was recorded before it.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// Webhook
// ---------------------------------------------------------------------------

/// One POST the webhook receiver accepted (answered 200).
#[derive(Clone, Debug)]
pub struct ReceivedEvent {
    /// `X-Wharf-Event-Id`, the key a receiver deduplicates retries by.
    pub event_id: Option<String>,
    /// `X-Wharf-Event-Type`.
    pub event_type: Option<String>,
    /// Whether `X-Wharf-Signature` is the HMAC of the body under the receiver's
    /// secret; `None` when the receiver has no secret or the header is absent.
    pub signature_valid: Option<bool>,
    /// Every header, names lower-cased (repeated headers joined with ", ").
    pub headers: BTreeMap<String, String>,
    /// The body, parsed as JSON (a body that is not JSON is answered 400 and
    /// shows up in [`WebhookReceiver::rejections`] instead).
    pub body: serde_json::Value,
}

struct WebhookShared {
    secret: Option<Vec<u8>>,
    received: Mutex<Vec<ReceivedEvent>>,
    rejections: Mutex<Vec<String>>,
    failed: AtomicUsize,
    failing: AtomicBool,
    /// How long each request is held before it is answered, in milliseconds.
    delay_ms: AtomicUsize,
    /// Requests being handled right now, and the most there ever were.
    handling: AtomicUsize,
    most_at_once: AtomicUsize,
    stop: AtomicBool,
}

/// An HTTP/1.1 endpoint standing in for a customer's webhook: records every
/// delivery, checks its signature, and can be told to fail (503) to make the
/// sender retry.
pub struct WebhookReceiver {
    addr: SocketAddr,
    shared: Arc<WebhookShared>,
    acceptor: Option<JoinHandle<()>>,
}

impl WebhookReceiver {
    /// Listens on 127.0.0.1 on a port the kernel picks. With a `secret`, each
    /// request's `X-Wharf-Signature` is checked against it.
    pub fn start(secret: Option<&[u8]>) -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the webhook receiver");
        listener
            .set_nonblocking(true)
            .expect("make the webhook listener non-blocking");
        let addr = listener.local_addr().expect("webhook listener address");
        let shared = Arc::new(WebhookShared {
            secret: secret.map(<[u8]>::to_vec),
            received: Mutex::new(Vec::new()),
            rejections: Mutex::new(Vec::new()),
            failed: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
            delay_ms: AtomicUsize::new(0),
            handling: AtomicUsize::new(0),
            most_at_once: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("webhook-accept".into())
                .spawn(move || accept_loop(&listener, &shared))
                .expect("spawn the webhook acceptor")
        };
        WebhookReceiver {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT/hook`, the URL to configure the sink with.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// While `true`, every request is answered 503 and only counted in
    /// [`failed_attempts`](Self::failed_attempts), as a receiver that is down would.
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// Holds each request this long before answering it, as a slow or
    /// distant endpoint would.
    pub fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as usize, Ordering::SeqCst);
    }

    /// The most requests that were ever being handled at the same time.
    pub fn most_at_once(&self) -> usize {
        self.shared.most_at_once.load(Ordering::SeqCst)
    }

    /// The requests answered 200, in arrival order (retries included).
    pub fn received(&self) -> Vec<ReceivedEvent> {
        lock(&self.shared.received).clone()
    }

    /// Requests answered 503 because of [`set_failing`](Self::set_failing).
    pub fn failed_attempts(&self) -> usize {
        self.shared.failed.load(Ordering::SeqCst)
    }

    /// Why requests were refused (wrong method or path, no `Content-Length`,
    /// body not JSON, …): a test can show them when an event is missing.
    pub fn rejections(&self) -> Vec<String> {
        lock(&self.shared.rejections).clone()
    }

    /// Waits until `n` distinct event ids have been received (answered 200).
    pub fn wait_for(&self, n: usize, limit: Duration) -> bool {
        poll_until(limit, || self.distinct_ids() >= n)
    }

    /// How many distinct `X-Wharf-Event-Id`s arrived; retries of one event count once.
    pub fn distinct_ids(&self) -> usize {
        lock(&self.shared.received)
            .iter()
            .filter_map(|e| e.event_id.clone())
            .collect::<BTreeSet<_>>()
            .len()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<WebhookShared>) {
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let shared = Arc::clone(shared);
                let handle = std::thread::Builder::new()
                    .name("webhook-conn".into())
                    .spawn(move || {
                        let _ = serve_connection(stream, &shared);
                    })
                    .expect("spawn a webhook connection thread");
                connections.push(handle);
                connections.retain(|h| !h.is_finished());
            }
            Err(e) if is_timeout(&e) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    for handle in connections {
        let _ = handle.join();
    }
}

/// One parsed request head.
struct Head {
    method: String,
    path: String,
    version: String,
    headers: BTreeMap<String, String>,
}

fn parse_head(bytes: &[u8]) -> Result<Head, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "request head is not UTF-8".to_string())?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("bad request line {request_line:?}"));
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(format!("unsupported version {version:?}"));
    }
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("bad header line {line:?}"));
        };
        if name.is_empty() || name.trim() != name {
            return Err(format!("bad header name {name:?}"));
        }
        let name = name.to_ascii_lowercase();
        let value = value.trim().to_string();
        headers
            .entry(name)
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    Ok(Head {
        method: method.to_string(),
        path: path.to_string(),
        version: version.to_string(),
        headers,
    })
}

/// Reads into `buf` until it holds at least `want` bytes. `Ok(false)` when the
/// peer closed, the receiver is stopping, or (for a request not yet begun,
/// `idle`) the connection sat unused too long.
fn fill(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    want: usize,
    shared: &WebhookShared,
    deadline: Instant,
) -> io::Result<bool> {
    let mut chunk = [0u8; 16 * 1024];
    while buf.len() < want {
        if shared.stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
            return Ok(false);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn respond(stream: &mut TcpStream, status: &str, close: bool) -> io::Result<()> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: 0\r\n{connection}\r\n"
    )?;
    stream.flush()
}

/// Answers `status` and closes the connection. What the client still sends is
/// read and dropped first (for up to a second): closing with unread bytes
/// would reset the connection and the client might never see the answer.
fn reject(stream: &mut TcpStream, shared: &WebhookShared, status: &str, why: String) {
    lock(&shared.rejections).push(format!("{status}: {why}"));
    let _ = respond(stream, status, true);
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut sink = [0u8; 16 * 1024];
    while Instant::now() < deadline && !shared.stop.load(Ordering::SeqCst) {
        match stream.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => break,
        }
    }
}

/// Serves requests on one connection until the peer closes it, a request is
/// odd (answered with an error and closed), or the receiver stops.
fn serve_connection(mut stream: TcpStream, shared: &WebhookShared) -> io::Result<()> {
    stream.set_read_timeout(Some(POLL))?;
    stream.set_write_timeout(Some(REQUEST_LIMIT))?;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // The head: wait while idle, then it must complete within the request limit.
        let idle_deadline = Instant::now() + IDLE_CLOSE;
        let mut request_deadline = None;
        let head_end = loop {
            if let Some(pos) = find(&buf, b"\r\n\r\n") {
                break pos;
            }
            if buf.len() > MAX_HEAD {
                reject(
                    &mut stream,
                    shared,
                    "431 Request Header Fields Too Large",
                    "head too large".into(),
                );
                return Ok(());
            }
            if !buf.is_empty() && request_deadline.is_none() {
                request_deadline = Some(Instant::now() + REQUEST_LIMIT);
            }
            let deadline = request_deadline.unwrap_or(idle_deadline);
            let want = buf.len() + 1;
            if !fill(&mut stream, &mut buf, want, shared, deadline)? {
                return Ok(());
            }
        };
        let request_deadline = request_deadline.unwrap_or_else(|| Instant::now() + REQUEST_LIMIT);
        let head = match parse_head(&buf[..head_end]) {
            Ok(head) => head,
            Err(why) => {
                reject(&mut stream, shared, "400 Bad Request", why);
                return Ok(());
            }
        };
        buf.drain(..head_end + 4);

        if head.method != "POST" {
            reject(
                &mut stream,
                shared,
                "405 Method Not Allowed",
                format!("{} {}", head.method, head.path),
            );
            return Ok(());
        }
        if head.path != "/hook" {
            reject(
                &mut stream,
                shared,
                "404 Not Found",
                format!("POST {}", head.path),
            );
            return Ok(());
        }
        if head.headers.contains_key("transfer-encoding") {
            reject(
                &mut stream,
                shared,
                "501 Not Implemented",
                "Transfer-Encoding".into(),
            );
            return Ok(());
        }
        let Some(length) = head.headers.get("content-length") else {
            reject(
                &mut stream,
                shared,
                "411 Length Required",
                "no Content-Length".into(),
            );
            return Ok(());
        };
        let length = match length.parse::<usize>() {
            Ok(n) if n <= MAX_BODY => n,
            _ => {
                reject(
                    &mut stream,
                    shared,
                    "413 Content Too Large",
                    format!("Content-Length {length:?}"),
                );
                return Ok(());
            }
        };
        if head
            .headers
            .get("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        {
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        if !fill(&mut stream, &mut buf, length, shared, request_deadline)? {
            return Ok(());
        }
        let body: Vec<u8> = buf.drain(..length).collect();
        let now = shared.handling.fetch_add(1, Ordering::SeqCst) + 1;
        shared.most_at_once.fetch_max(now, Ordering::SeqCst);
        let delay = shared.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay as u64));
        }
        let answered = answer(&mut stream, shared, &head, &body);
        shared.handling.fetch_sub(1, Ordering::SeqCst);
        if !answered? {
            return Ok(());
        }
    }
}

/// Records and answers one complete request; `Ok(false)` when the connection
/// is done with (closed or rejected).
fn answer(
    stream: &mut TcpStream,
    shared: &WebhookShared,
    head: &Head,
    body: &[u8],
) -> io::Result<bool> {
    let close = head.version == "HTTP/1.0"
        || head
            .headers
            .get("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));

    if shared.failing.load(Ordering::SeqCst) {
        shared.failed.fetch_add(1, Ordering::SeqCst);
        respond(stream, "503 Service Unavailable", close)?;
    } else {
        let signature_valid = match (&shared.secret, head.headers.get("x-wharf-signature")) {
            (Some(secret), Some(given)) => {
                Some(given.eq_ignore_ascii_case(&signature(secret, body)))
            }
            _ => None,
        };
        let body = match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(body) => body,
            Err(e) => {
                let why = format!("body is not JSON: {e}");
                reject(stream, shared, "400 Bad Request", why);
                return Ok(false);
            }
        };
        lock(&shared.received).push(ReceivedEvent {
            event_id: head.headers.get("x-wharf-event-id").cloned(),
            event_type: head.headers.get("x-wharf-event-type").cloned(),
            signature_valid,
            headers: head.headers.clone(),
            body,
        });
        respond(stream, "200 OK", close)?;
    }
    if close {
        let _ = stream.shutdown(Shutdown::Both);
        return Ok(false);
    }
    Ok(true)
}

// ---------------------------------------------------------------------------
// NATS
// ---------------------------------------------------------------------------

/// Where Debian installs the server; `/usr/sbin` is not on every user's PATH.
const NATS_SERVER_PATHS: [&str; 2] = ["/usr/sbin/nats-server", "/usr/bin/nats-server"];
/// How long `nats-server` may take to accept connections (it needs ~0.1 s).
const NATS_READY: Duration = Duration::from_secs(10);

fn nats_server_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
    });
    on_path
        .or_else(|| {
            NATS_SERVER_PATHS
                .iter()
                .map(PathBuf::from)
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "`nats-server` is required by the upload-event tests but is not installed; \
                 run `bash .ci/deps` (it installs the Debian package `nats-server`)"
            )
        })
}

/// A real `nats-server` on 127.0.0.1, for the NATS event sink to publish to.
/// It can be stopped and started again on the same port to simulate an outage.
pub struct NatsServer {
    port: u16,
    binary: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts `nats-server` on a free port and waits until it accepts
    /// connections. Panics (naming `.ci/deps`) when the binary is missing.
    pub fn start() -> NatsServer {
        let binary = nats_server_binary();
        let dir = tempfile::Builder::new()
            .prefix("wharf-nats-")
            .tempdir()
            .expect("create a directory for nats-server's log");
        let mut dir = dir;
        // A free port may be taken by another test process before the server
        // binds it; such a start is retried on a new port.
        for attempt in 0..3 {
            let mut server = NatsServer {
                port: crate::support::free_port(),
                binary: binary.clone(),
                dir,
                child: None,
            };
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(why) if attempt < 2 => {
                    eprintln!("nats-server did not start ({why}); trying another port");
                    dir = server.take_dir();
                }
                Err(why) => panic!("nats-server did not start: {why}"),
            }
        }
        unreachable!("the last attempt panics")
    }

    fn take_dir(mut self) -> tempfile::TempDir {
        self.kill();
        // Swap in a throwaway directory so Drop has something to remove.
        let replacement = tempfile::tempdir().expect("create a temporary directory");
        std::mem::replace(&mut self.dir, replacement)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    /// nats-server's output so far, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("open the log: {e}"))?;
        let log_err = log.try_clone().map_err(|e| format!("clone the log: {e}"))?;
        let child = Command::new(&self.binary)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + NATS_READY;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("it exited ({status}):\n{}", self.log()));
                }
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!(
                    "port {} not accepting after {NATS_READY:?}:\n{}",
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (the sink's outage); connected clients see the connection drop.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is
    /// read or answered, as with a hung broker.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("nats-server is running");
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} nats-server");
    }

    /// Starts the server again on the same port, after [`stop`](Self::stop).
    pub fn start_again(&mut self) {
        self.kill();
        if let Err(why) = self.spawn_and_wait() {
            panic!(
                "nats-server did not start again on port {}: {why}",
                self.port
            );
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One message the subscriber received.
#[derive(Clone, Debug)]
pub struct NatsMessage {
    pub subject: String,
    /// Headers of an `HMSG` (empty for a plain `MSG`); a repeated key's values
    /// are joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// The payload parsed as JSON; `Null` when it is not JSON (see `raw`).
    pub payload: serde_json::Value,
    pub raw: Vec<u8>,
}

struct SubscriberShared {
    subject: String,
    messages: Mutex<Vec<NatsMessage>>,
    /// How many times a subscription has been confirmed (by the `PONG` after `SUB`).
    subscriptions: AtomicUsize,
    /// The last connection error, for the message of a failed wait.
    last_error: Mutex<Option<String>>,
    stop: AtomicBool,
}

/// A minimal NATS core client that subscribes to one subject and records
/// what arrives. It reconnects and resubscribes every 100 ms while the server
/// is away, as a consumer outliving a broker restart would.
pub struct NatsSubscriber {
    shared: Arc<SubscriberShared>,
    worker: Option<JoinHandle<()>>,
}

impl NatsSubscriber {
    /// Connects to the server on `port` and subscribes to `subject` (wildcards
    /// allowed); returns once the server has confirmed the subscription, so
    /// anything published afterwards is received.
    pub fn connect(port: u16, subject: &str) -> NatsSubscriber {
        let shared = Arc::new(SubscriberShared {
            subject: subject.to_string(),
            messages: Mutex::new(Vec::new()),
            subscriptions: AtomicUsize::new(0),
            last_error: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let worker = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("nats-subscriber".into())
                .spawn(move || subscriber_loop(port, &shared))
                .expect("spawn the NATS subscriber")
        };
        let subscriber = NatsSubscriber {
            shared,
            worker: Some(worker),
        };
        assert!(
            subscriber.wait_subscribed(1, NATS_READY),
            "could not subscribe to {subject:?} on 127.0.0.1:{port}: {}",
            subscriber.last_error()
        );
        subscriber
    }

    /// The messages received, in order.
    pub fn received(&self) -> Vec<NatsMessage> {
        lock(&self.shared.messages).clone()
    }

    /// Waits until at least `n` messages have been received.
    pub fn wait_for(&self, n: usize, limit: Duration) -> bool {
        poll_until(limit, || lock(&self.shared.messages).len() >= n)
    }

    /// How many times the subscription has been (re)established; 1 after
    /// [`connect`](Self::connect), one more after each server restart.
    pub fn subscriptions(&self) -> usize {
        self.shared.subscriptions.load(Ordering::SeqCst)
    }

    /// Waits until the subscription has been established `n` times. Core NATS
    /// keeps nothing for absent subscribers, so after a restart a test waits
    /// for this before anything is published.
    pub fn wait_subscribed(&self, n: usize, limit: Duration) -> bool {
        poll_until(limit, || self.subscriptions() >= n)
    }

    /// The last connection or protocol error seen, for assertion messages.
    pub fn last_error(&self) -> String {
        lock(&self.shared.last_error)
            .clone()
            .unwrap_or_else(|| "none".into())
    }
}

impl Drop for NatsSubscriber {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn subscriber_loop(port: u16, shared: &SubscriberShared) {
    while !shared.stop.load(Ordering::SeqCst) {
        let outcome = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(1),
        )
        .map_err(|e| format!("connect: {e}"))
        .and_then(|stream| NatsConnection::new(stream, shared).run());
        if let Err(why) = outcome {
            *lock(&shared.last_error) = Some(why);
        }
        if !shared.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One connection of the subscriber: its socket and the bytes read but not yet parsed.
struct NatsConnection<'a> {
    stream: TcpStream,
    buf: Vec<u8>,
    shared: &'a SubscriberShared,
}

impl<'a> NatsConnection<'a> {
    fn new(stream: TcpStream, shared: &'a SubscriberShared) -> NatsConnection<'a> {
        NatsConnection {
            stream,
            buf: Vec::new(),
            shared,
        }
    }

    /// Reads one `\r\n`-terminated control line (without the terminator).
    /// `Ok(None)` when the subscriber is stopping.
    fn line(&mut self) -> Result<Option<String>, String> {
        loop {
            if let Some(pos) = find(&self.buf, b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).take(pos).collect();
                return String::from_utf8(line)
                    .map(Some)
                    .map_err(|_| "control line is not UTF-8".to_string());
            }
            if self.buf.len() > MAX_HEAD {
                return Err("control line too long".into());
            }
            if !self.fill(self.buf.len() + 1)? {
                return Ok(None);
            }
        }
    }

    /// Reads until `want` bytes are buffered; `Ok(false)` when stopping.
    fn fill(&mut self, want: usize) -> Result<bool, String> {
        let mut chunk = [0u8; 16 * 1024];
        while self.buf.len() < want {
            if self.shared.stop.load(Ordering::SeqCst) {
                return Ok(false);
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("server closed the connection".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        Ok(true)
    }

    fn send(&mut self, text: &str) -> Result<(), String> {
        self.stream
            .write_all(text.as_bytes())
            .map_err(|e| format!("write: {e}"))
    }

    fn run(mut self) -> Result<(), String> {
        self.stream
            .set_read_timeout(Some(POLL))
            .map_err(|e| e.to_string())?;
        self.stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let Some(info) = self.line()? else {
            return Ok(());
        };
        if !info.starts_with("INFO ") {
            return Err(format!("expected INFO, got {info:?}"));
        }
        let subject = self.shared.subject.clone();
        self.send(&format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"headers\":true,\"protocol\":1}}\r\n\
             SUB {subject} 1\r\nPING\r\n"
        ))?;
        loop {
            let Some(line) = self.line()? else {
                return Ok(());
            };
            let mut words = line.split_ascii_whitespace();
            let op = words.next().unwrap_or_default().to_ascii_uppercase();
            let args: Vec<&str> = words.collect();
            match op.as_str() {
                "PING" => self.send("PONG\r\n")?,
                // Our PING, sent after SUB: the server has processed the subscription.
                "PONG" => {
                    self.shared.subscriptions.fetch_add(1, Ordering::SeqCst);
                }
                "+OK" | "INFO" => {}
                "-ERR" => return Err(format!("server error: {line}")),
                "MSG" => {
                    // MSG <subject> <sid> [reply-to] <#bytes>
                    let (total, subject) = match args.as_slice() {
                        [subject, _sid, total] | [subject, _sid, _, total] => {
                            (parse_size(total)?, subject.to_string())
                        }
                        _ => return Err(format!("bad MSG line {line:?}")),
                    };
                    let raw = self.payload(total)?;
                    self.record(subject, BTreeMap::new(), raw);
                }
                "HMSG" => {
                    // HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>
                    let (header_len, total, subject) = match args.as_slice() {
                        [subject, _sid, h, t] | [subject, _sid, _, h, t] => {
                            (parse_size(h)?, parse_size(t)?, subject.to_string())
                        }
                        _ => return Err(format!("bad HMSG line {line:?}")),
                    };
                    if header_len > total {
                        return Err(format!("header size exceeds total in {line:?}"));
                    }
                    let mut block = self.payload(total)?;
                    let raw = block.split_off(header_len);
                    let headers = parse_nats_headers(&block)?;
                    self.record(subject, headers, raw);
                }
                _ => return Err(format!("unexpected line {line:?}")),
            }
        }
    }

    /// Reads `len` bytes of message body and the `\r\n` after them.
    fn payload(&mut self, len: usize) -> Result<Vec<u8>, String> {
        if len > MAX_BODY {
            return Err(format!("message of {len} bytes is too large"));
        }
        if !self.fill(len + 2)? {
            return Err("stopping".into());
        }
        if &self.buf[len..len + 2] != b"\r\n" {
            return Err("message body not followed by CRLF".into());
        }
        let body: Vec<u8> = self.buf.drain(..len + 2).take(len).collect();
        Ok(body)
    }

    fn record(&self, subject: String, headers: BTreeMap<String, String>, raw: Vec<u8>) {
        let payload = serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null);
        lock(&self.shared.messages).push(NatsMessage {
            subject,
            headers,
            payload,
            raw,
        });
    }
}

fn parse_size(text: &str) -> Result<usize, String> {
    text.parse()
        .map_err(|_| format!("bad size {text:?} in a message line"))
}

/// Parses `NATS/1.0[ status]\r\nKey: Value\r\n…\r\n\r\n`.
fn parse_nats_headers(block: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let text = std::str::from_utf8(block).map_err(|_| "headers are not UTF-8".to_string())?;
    let Some(rest) = text.strip_prefix("NATS/1.0") else {
        return Err(format!("headers do not start with NATS/1.0: {text:?}"));
    };
    let Some(rest) = rest.strip_suffix("\r\n\r\n") else {
        return Err(format!("headers do not end with an empty line: {text:?}"));
    };
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    // The first line is the rest of the version line (an optional status).
    for line in rest.split("\r\n").skip(1) {
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!("bad header line {line:?}"));
        };
        let value = value.trim().to_string();
        headers
            .entry(key.trim().to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    Ok(headers)
}
