//! One transfer on a data connection, run as its own task beside the control
//! loop so that ABOR, STAT and NOOP keep working while bytes move.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use wharf_ftp::ascii::{FromNetwork, ToNetwork};
use wharf_ftp::{Reply, VirtualPath};
use wharf_tls::SessionClaim;

use super::{DataError, DataSetup, DataStream, DataTlsContext, Opened};
use crate::data_tls::{self, Admission, DataTlsRule, LoggedInSessions, Sibling};
use crate::fs::{FileReader, FileSystem, FileWriter, FsError, WriteMode};
use crate::replies;
use crate::throttle::Throttle;

/// The most one step of a transfer moves: throttling and the progress that
/// STAT and ABOR report advance in steps of at most this.
const STEP: usize = 256 * 1024;
/// An upload's first receive buffer. Small files (the ingest case) never
/// need more, so a data connection does not allocate and zero `STEP` bytes
/// for a 4 KiB file; a buffer that fills up doubles, up to `STEP`.
const FIRST_RECEIVE: usize = 16 * 1024;
/// What a refused upload's client may still send, and for how long, before
/// its data connection is closed (`discard_rest`).
const DISCARD_MAX_BYTES: usize = 32 << 20;
const DISCARD_MAX_TIME: Duration = Duration::from_secs(2);

pub enum Payload {
    Download {
        reader: FileReader,
        ascii: bool,
    },
    Upload {
        target: UploadTarget,
        ascii: bool,
    },
    /// The listing's lines as they are read (see `data::listing`).
    Listing(FileReader),
}

/// Where an upload goes. An existing file is opened (and so truncated) only
/// once the data connection is up and verified: a refused data connection
/// must not destroy the file the client meant to replace.
pub enum UploadTarget {
    Opened(Box<dyn FileWriter>),
    Deferred {
        fs: Arc<dyn FileSystem>,
        path: VirtualPath,
        mode: WriteMode,
    },
}

impl UploadTarget {
    async fn open(self) -> Result<Box<dyn FileWriter>, FsError> {
        match self {
            UploadTarget::Opened(w) => Ok(w),
            UploadTarget::Deferred { fs, path, mode } => fs.open_write(&path, mode).await,
        }
    }
}

pub struct TransferJob {
    pub payload: Payload,
    pub setup: DataSetup,
    /// The `150` reply, sent once the data connection is open.
    pub opening: Reply,
    pub rate: u64,
}

/// How the data connection must be protected.
#[derive(Clone)]
pub struct DataProtection {
    pub tls: DataTlsContext,
    pub rule: DataTlsRule,
    pub sessions: Arc<LoggedInSessions>,
    pub relaxation_logged: Arc<AtomicBool>,
    pub metrics: Arc<crate::metrics::EngineMetrics>,
}

pub struct TransferLimits {
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub handshake_timeout: Duration,
}

pub enum TransferEvent {
    Opened(Reply),
    Finished(TransferOutcome),
}

pub struct TransferOutcome {
    pub reply: Reply,
    pub bytes: u64,
    pub complete: bool,
}

enum PumpError {
    Network(std::io::Error),
    Idle,
    Storage(crate::fs::FsError),
}

pub async fn run(
    job: TransferJob,
    protection: Option<DataProtection>,
    limits: TransferLimits,
    progress: Arc<AtomicU64>,
    events: mpsc::Sender<TransferEvent>,
) {
    let outcome = match open(job, protection, &limits, &events).await {
        Err(e) => TransferOutcome {
            reply: data_error_reply(&e),
            bytes: 0,
            complete: false,
        },
        Ok((stream, payload, rate)) => pump(stream, payload, rate, &limits, &progress).await,
    };
    let _ = events.send(TransferEvent::Finished(outcome)).await;
}

/// TCP first, then `150`, then TLS: most clients (ftplib, FileZilla) start
/// the data connection's handshake only after they have read the `150`;
/// those that start it earlier find a passive connection's handshake already
/// running (`PendingPassive`).
async fn open(
    job: TransferJob,
    protection: Option<DataProtection>,
    limits: &TransferLimits,
    events: &mpsc::Sender<TransferEvent>,
) -> Result<(DataStream, Payload, u64), DataError> {
    let upload = matches!(job.payload, Payload::Upload { .. });
    job.setup.announce(upload);
    let opened = job.setup.connect(limits.connect_timeout).await?;
    let stream = match (protection, opened) {
        (None, Opened::Plain(tcp)) => {
            let _ = events.send(TransferEvent::Opened(job.opening)).await;
            DataStream::Plain(tcp)
        }
        (None, Opened::Securing { .. }) => return Err(DataError::ProtectionChanged),
        (Some(p), opened) => {
            // A client that started the handshake first gets `150` once it
            // is over: the new ticket is then on the wire before the client
            // can finish an upload and close (curl keeps only that ticket
            // for its next data connection, and reads it on close).
            let early = opened.client_spoke_first();
            if !early && upload {
                opened.answering_upload_first();
            }
            if !early {
                let _ = events
                    .send(TransferEvent::Opened(job.opening.clone()))
                    .await;
            }
            let secured = opened
                .secure(&p.tls, limits.handshake_timeout, !upload)
                .await;
            if early {
                let _ = events.send(TransferEvent::Opened(job.opening)).await;
            }
            let secured = secured?;
            p.metrics.handshake(&secured.stream);
            admit(&p, secured.claim.as_ref()).await?;
            secured.stream
        }
    };
    Ok((stream, job.payload, job.rate))
}

/// Applies the session's data-connection rule to the session the client
/// resumed (`crate::data_tls`). A sibling control connection that has not
/// logged in yet (parallel clients connect all at once and share their
/// tickets) is given a moment to do so.
async fn admit(p: &DataProtection, claim: Option<&SessionClaim>) -> Result<(), DataError> {
    let judge = || data_tls::admit(p.rule, &p.tls.binding, &p.tls.user, claim, &p.sessions);
    let mut verdict = judge();
    if verdict.is_none() && p.rule != DataTlsRule::Reuse {
        let deadline = tokio::time::Instant::now() + data_tls::SIBLING_LOGIN_WAIT;
        while verdict.is_none()
            && claim.is_some_and(|c| p.sessions.sibling(&c.binding()) == Sibling::Pending)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            verdict = judge();
        }
    }
    match verdict {
        Some(Admission::Relaxed) => {
            if !p.relaxation_logged.swap(true, Ordering::Relaxed) {
                tracing::info!(
                    rule = p.rule.as_str(),
                    resumed = claim.is_some(),
                    "data connections of this session are accepted without a resumed TLS \
                     session of this user (relaxed for this user or network)"
                );
            }
            Ok(())
        }
        Some(admission) => {
            tracing::debug!(?admission, "data connection TLS established");
            Ok(())
        }
        None => {
            tracing::info!(
                rule = p.rule.as_str(),
                resumed = claim.is_some(),
                "data connection refused: its TLS session is not one this cluster issued to \
                 this user at this address (the client must reuse TLS sessions, as FileZilla, \
                 lftp, curl and rclone do; relax with wharf user modify --data-tls any or \
                 [policy] data_tls_any_from)"
            );
            Err(DataError::NotResumed)
        }
    }
}

fn data_error_reply(e: &DataError) -> Reply {
    match e {
        DataError::NotResumed => Reply::new(
            425,
            "Unable to build data connection: TLS session of data connection not resumed.",
        ),
        DataError::Handshake(err) => Reply::new(
            425,
            format!("Unable to build data connection: TLS handshake failed ({err})."),
        ),
        other => Reply::new(425, format!("Unable to build data connection: {other}.")),
    }
}

async fn pump(
    mut stream: DataStream,
    payload: Payload,
    rate: u64,
    limits: &TransferLimits,
    progress: &AtomicU64,
) -> TransferOutcome {
    let mut throttle = Throttle::new(rate);
    let result = match payload {
        Payload::Listing(mut lines) => {
            send_all(
                &mut stream,
                &mut lines,
                None,
                &mut throttle,
                limits,
                progress,
            )
            .await
        }
        Payload::Download { mut reader, ascii } => {
            let mut conv = ascii.then(ToNetwork::new);
            send_all(
                &mut stream,
                &mut reader,
                conv.as_mut(),
                &mut throttle,
                limits,
                progress,
            )
            .await
        }
        Payload::Upload { target, ascii } => match target.open().await {
            Ok(writer) => {
                receive_all(&mut stream, writer, ascii, &mut throttle, limits, progress).await
            }
            Err(e) => Err(PumpError::Storage(e)),
        },
    };
    let bytes = progress.load(Ordering::Relaxed);
    match result {
        Ok(()) => TransferOutcome {
            reply: Reply::new(226, format!("Transfer complete ({bytes} bytes).")),
            bytes,
            complete: true,
        },
        Err(PumpError::Idle) => TransferOutcome {
            reply: Reply::new(426, "Data connection timed out; transfer aborted."),
            bytes,
            complete: false,
        },
        Err(PumpError::Network(e)) => TransferOutcome {
            reply: Reply::new(
                426,
                format!("Data connection closed; transfer aborted ({e})."),
            ),
            bytes,
            complete: false,
        },
        Err(PumpError::Storage(e)) => TransferOutcome {
            reply: replies::fs_error(&e),
            bytes,
            complete: false,
        },
    }
}

async fn send_all<R: AsyncBufRead + Unpin + ?Sized>(
    stream: &mut DataStream,
    source: &mut R,
    mut conv: Option<&mut ToNetwork>,
    throttle: &mut Throttle,
    limits: &TransferLimits,
    progress: &AtomicU64,
) -> Result<(), PumpError> {
    let mut converted = Vec::new();
    loop {
        // Straight from the reader's buffer (a whole chunk of a cluster file)
        // into TLS: no copy into a transfer buffer of our own.
        let available = source
            .fill_buf()
            .await
            .map_err(|e| PumpError::Storage(e.into()))?;
        if available.is_empty() {
            break;
        }
        let taken = available.len().min(STEP);
        let out = match conv.as_deref_mut() {
            Some(c) => {
                converted.clear();
                c.convert(available.get(..taken).unwrap_or_default(), &mut converted);
                &converted[..]
            }
            None => available.get(..taken).unwrap_or_default(),
        };
        with_idle_limit(limits.idle_timeout, stream.write_all(out)).await?;
        let sent = out.len();
        source.consume(taken);
        progress.fetch_add(sent as u64, Ordering::Relaxed);
        throttle.consume(sent).await;
    }
    // close_notify, then FIN: the client knows the file is complete.
    with_idle_limit(limits.idle_timeout, stream.shutdown()).await
}

async fn receive_all(
    stream: &mut DataStream,
    mut writer: Box<dyn FileWriter>,
    ascii: bool,
    throttle: &mut Throttle,
    limits: &TransferLimits,
    progress: &AtomicU64,
) -> Result<(), PumpError> {
    let mut buf = vec![0u8; FIRST_RECEIVE];
    let mut conv = ascii.then(FromNetwork::new);
    let mut converted = Vec::new();
    let mut close_notify = true;
    loop {
        stream.acknowledge_promptly();
        let n = match tokio::time::timeout(limits.idle_timeout, stream.read(&mut buf)).await {
            Err(_) => return Err(PumpError::Idle),
            Ok(Ok(n)) => n,
            // A client that closes TCP without TLS close_notify may have sent
            // the whole file; vsftpd accepts this by default
            // (strict_ssl_read_eof=NO) and so do we. But it may as well have
            // been cut off and have retried meanwhile: the end is fenced.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                tracing::info!(
                    "upload ended without TLS close_notify; kept unless the file \
                     changed since it began"
                );
                close_notify = false;
                0
            }
            Ok(Err(e)) => return Err(PumpError::Network(e)),
        };
        if n == 0 {
            break;
        }
        let filled = n == buf.len();
        progress.fetch_add(n as u64, Ordering::Relaxed);
        let data = match conv.as_mut() {
            Some(c) => {
                converted.clear();
                c.convert(buf.get(..n).unwrap_or_default(), &mut converted);
                &converted[..]
            }
            None => buf.get(..n).unwrap_or_default(),
        };
        if let Err(e) = writer.write(data).await {
            discard_rest(stream).await;
            return Err(PumpError::Storage(e));
        }
        throttle.consume(n).await;
        if filled && buf.len() < STEP {
            buf.resize(buf.len() * 2, 0);
        }
    }
    if let Some(c) = conv.as_mut() {
        converted.clear();
        c.finish(&mut converted);
        writer.write(&converted).await.map_err(PumpError::Storage)?;
    }
    // Answer the client's close_notify with ours (Python's `unwrap()` waits
    // for it); a client that already went away is no error at this point.
    let _ = with_idle_limit(limits.idle_timeout, stream.shutdown()).await;
    let committed = match close_notify {
        true => writer.commit().await,
        false => writer.commit_unconfirmed().await,
    };
    committed.map_err(PumpError::Storage)?;
    Ok(())
}

/// After a refusal mid-upload (quota, storage), reads and discards what the
/// client is still sending, for a moment: closing with unread data resets
/// the connection, and a client such as curl then reports the reset instead
/// of the refusal the control connection carries.
async fn discard_rest(stream: &mut DataStream) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = DISCARD_MAX_BYTES;
    let _ = tokio::time::timeout(DISCARD_MAX_TIME, async {
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

async fn with_idle_limit<F>(limit: Duration, fut: F) -> Result<(), PumpError>
where
    F: std::future::Future<Output = std::io::Result<()>>,
{
    match tokio::time::timeout(limit, fut).await {
        Err(_) => Err(PumpError::Idle),
        Ok(r) => r.map_err(PumpError::Network),
    }
}
