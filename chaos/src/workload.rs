//! The workload: concurrent FTPS sessions, each in a directory of its own,
//! uploading, overwriting, appending, cutting uploads short and resuming
//! them on another node, renaming, deleting and listing. Every operation and
//! its outcome goes to the history; each session keeps what its files may
//! hold for the checker.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use wharf_client::{refusal, Session};

use crate::model::{sha256, Content, Expect, Piece, Possible};
use crate::nodes::{PASSWORD, USER};

/// Outcome of one operation, as the client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The server confirmed it.
    Ok,
    /// The server refused it.
    Failed,
    /// The connection broke or the answer did not come in time.
    Unknown,
}

#[derive(Default, Debug, Serialize, Clone)]
pub struct Counts {
    pub attempted: u64,
    pub acknowledged: u64,
    pub failed: u64,
    pub unknown: u64,
}

/// What the sessions share with the scenario and the checker.
pub struct Shared {
    history: Mutex<BufWriter<File>>,
    pub start: Instant,
    pub stop: AtomicBool,
    pub counts: Mutex<BTreeMap<&'static str, Counts>>,
    /// When acknowledged writes completed, since `start`.
    pub acked_writes: Mutex<Vec<Duration>>,
    /// Uploads in flight per node index (from 1), for "kill the node
    /// serving an upload".
    pub uploading: Mutex<BTreeMap<usize, usize>>,
}

impl Shared {
    pub fn new(history: File) -> Shared {
        Shared {
            history: Mutex::new(BufWriter::new(history)),
            start: Instant::now(),
            stop: AtomicBool::new(false),
            counts: Mutex::default(),
            acked_writes: Mutex::default(),
            uploading: Mutex::default(),
        }
    }

    pub fn flush(&self) {
        let _ = self.history.lock().unwrap().flush();
    }

    /// Records an operation in the history and the counts.
    fn record(&self, op: &Op<'_>, outcome: Outcome, detail: &str) {
        let at = self.start.elapsed();
        let line = serde_json::json!({
            "ms": at.as_millis() as u64,
            "session": op.session,
            "op": op.kind,
            "path": op.path,
            "node": op.node,
            "outcome": outcome,
            "detail": detail,
        });
        let _ = writeln!(self.history.lock().unwrap(), "{line}");
        let mut counts = self.counts.lock().unwrap();
        let c = counts.entry(op.kind).or_default();
        c.attempted += 1;
        match outcome {
            Outcome::Ok => c.acknowledged += 1,
            Outcome::Failed => c.failed += 1,
            Outcome::Unknown => c.unknown += 1,
        }
        if outcome == Outcome::Ok && op.writes {
            self.acked_writes.lock().unwrap().push(at);
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

struct Op<'a> {
    session: usize,
    kind: &'static str,
    path: &'a str,
    node: usize,
    writes: bool,
}

/// What one session leaves for the checker.
#[derive(Debug, Default, Serialize)]
pub struct SessionModel {
    pub dir: String,
    pub files: BTreeMap<String, Possible>,
    /// Uploads cut short on one node and finished on another, acknowledged.
    pub resumed: Vec<String>,
    /// Every acknowledged upload (STOR, APPE, a resumption): its path and the
    /// SHA-256 of the whole file it left, which its event must carry.
    pub acked_uploads: Vec<(String, String)>,
}

pub struct Settings {
    pub nodes: Vec<SocketAddr>,
    pub max_size: u64,
}

/// Time allowed for one operation: generous for large files.
fn op_limit(bytes: u64) -> Duration {
    Duration::from_secs(20) + Duration::from_millis(bytes / 2048)
}

fn classify(result: Result<anyhow::Result<()>, tokio::time::error::Elapsed>) -> (Outcome, String) {
    match result {
        Ok(Ok(())) => (Outcome::Ok, String::new()),
        Ok(Err(e)) if refusal(&e).is_some() => (Outcome::Failed, e.to_string()),
        Ok(Err(e)) => (Outcome::Unknown, format!("{e:#}")),
        Err(_) => (Outcome::Unknown, "timed out".into()),
    }
}

struct Worker {
    id: usize,
    rng: StdRng,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    model: SessionModel,
    next_name: u64,
    dir_made: bool,
}

/// Runs session `id` until `shared.stop` is set.
pub async fn session(
    id: usize,
    seed: u64,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
) -> SessionModel {
    let mut w = Worker {
        id,
        rng: StdRng::seed_from_u64(seed),
        settings,
        shared,
        model: SessionModel {
            dir: format!("s{id}"),
            ..SessionModel::default()
        },
        next_name: 0,
        dir_made: false,
    };
    while !w.shared.stopping() {
        let mut node = w.rng.gen_range(0..w.settings.nodes.len());
        let Some(first) = w.login(node).await else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        let mut session = Some(first);
        for _ in 0..w.rng.gen_range(1..=6) {
            if w.shared.stopping() {
                break;
            }
            let Some(s) = session.as_mut() else { break };
            let alive = match w.rng.gen_range(0..100) {
                0..=39 => w.upload(s, node).await,
                40..=49 => w.append(s, node).await,
                50..=59 => w.rename(s, node).await,
                60..=69 => w.delete(s, node).await,
                70..=79 => w.list(s, node).await,
                _ => {
                    let owned = session.take().expect("checked above");
                    match w.cut_and_resume(owned, node).await {
                        Some((next, other)) => {
                            session = Some(next);
                            node = other;
                            true
                        }
                        None => false,
                    }
                }
            };
            if !alive {
                session = None;
            }
        }
        if let Some(s) = session {
            let _ = tokio::time::timeout(Duration::from_secs(5), s.quit()).await;
        }
    }
    w.model
}

impl Worker {
    fn op<'a>(&self, kind: &'static str, path: &'a str, node: usize, writes: bool) -> Op<'a> {
        Op {
            session: self.id,
            kind,
            path,
            node: node + 1,
            writes,
        }
    }

    async fn login(&mut self, node: usize) -> Option<Session> {
        let addr = self.settings.nodes[node];
        let result =
            tokio::time::timeout(op_limit(0), Session::login_at(addr, USER, PASSWORD)).await;
        let op = self.op("login", "", node, false);
        let mut session = match result {
            Ok(Ok(s)) => {
                self.shared.record(&op, Outcome::Ok, "");
                s
            }
            Ok(Err(e)) => {
                let outcome = if refusal(&e).is_some() {
                    Outcome::Failed
                } else {
                    Outcome::Unknown
                };
                self.shared.record(&op, outcome, &format!("{e:#}"));
                return None;
            }
            Err(_) => {
                self.shared.record(&op, Outcome::Unknown, "timed out");
                return None;
            }
        };
        if !self.dir_made {
            let dir = self.model.dir.clone();
            let result = tokio::time::timeout(op_limit(0), session.make_dir(&dir)).await;
            let (outcome, detail) = classify(result);
            self.shared
                .record(&self.op("mkdir", &dir, node, true), outcome, &detail);
            if outcome != Outcome::Ok {
                return None;
            }
            self.dir_made = true;
        }
        Some(session)
    }

    fn size(&mut self) -> u64 {
        let max = self.settings.max_size.max(1);
        match self.rng.gen_range(0..10) {
            0..=1 => self.rng.gen_range(0..=max.min(1024)),
            2..=6 => self.rng.gen_range(0..=(max / 8).max(1)),
            _ => self.rng.gen_range(0..=max),
        }
    }

    fn new_content(&mut self) -> Content {
        let len = self.size();
        Content::of(Piece {
            seed: self.rng.gen(),
            len,
        })
    }

    fn new_name(&mut self) -> String {
        self.next_name += 1;
        format!("{}/f{}", self.model.dir, self.next_name)
    }

    /// A file of this session with one known content.
    fn known_file(&mut self) -> Option<(String, Content)> {
        let known: Vec<(&String, &Content)> = self
            .model
            .files
            .iter()
            .filter_map(|(p, s)| s.exact().map(|c| (p, c)))
            .collect();
        if known.is_empty() {
            return None;
        }
        let (p, c) = known[self.rng.gen_range(0..known.len())];
        Some((p.clone(), c.clone()))
    }

    fn state(&mut self, path: &str) -> &mut Possible {
        self.model
            .files
            .entry(path.to_owned())
            .or_insert_with(|| Possible::known(Expect::Absent))
    }

    fn uploading(&self, node: usize, delta: isize) {
        let mut busy = self.shared.uploading.lock().unwrap();
        let n = busy.entry(node + 1).or_default();
        *n = n.saturating_add_signed(delta);
    }

    /// STOR of a new file, or over one of ours.
    async fn upload(&mut self, s: &mut Session, node: usize) -> bool {
        let path = match self.known_file() {
            Some((p, _)) if self.rng.gen_bool(0.25) => p,
            _ => self.new_name(),
        };
        let content = self.new_content();
        let bytes = content.bytes();
        self.uploading(node, 1);
        let result =
            tokio::time::timeout(op_limit(bytes.len() as u64), s.store(&path, &bytes)).await;
        self.uploading(node, -1);
        let (outcome, detail) = classify(result);
        self.shared
            .record(&self.op("upload", &path, node, true), outcome, &detail);
        let state = self.state(&path);
        match outcome {
            Outcome::Ok => *state = Possible::known(Expect::Exact(content)),
            _ => state.or(Expect::PrefixOf {
                base: Content::default(),
                extra: content,
            }),
        }
        if outcome == Outcome::Ok {
            self.model.acked_uploads.push((path, sha256(&bytes)));
        }
        outcome != Outcome::Unknown
    }

    async fn append(&mut self, s: &mut Session, node: usize) -> bool {
        let Some((path, old)) = self.known_file() else {
            return self.upload(s, node).await;
        };
        let more = self.new_content();
        let bytes = more.bytes();
        let result =
            tokio::time::timeout(op_limit(bytes.len() as u64), s.append(&path, &bytes)).await;
        let (outcome, detail) = classify(result);
        self.shared
            .record(&self.op("append", &path, node, true), outcome, &detail);
        let state = self.state(&path);
        match outcome {
            Outcome::Ok => {
                let whole = old.then(&more);
                let digest = sha256(&whole.bytes());
                *state = Possible::known(Expect::Exact(whole));
                self.model.acked_uploads.push((path, digest));
            }
            _ => state.or(Expect::PrefixOf {
                base: old,
                extra: more,
            }),
        }
        outcome != Outcome::Unknown
    }

    async fn rename(&mut self, s: &mut Session, node: usize) -> bool {
        let Some((from, content)) = self.known_file() else {
            return self.upload(s, node).await;
        };
        let to = self.new_name();
        let result = tokio::time::timeout(op_limit(0), s.rename(&from, &to)).await;
        let (outcome, detail) = classify(result);
        let path = format!("{from} -> {to}");
        self.shared
            .record(&self.op("rename", &path, node, true), outcome, &detail);
        if outcome == Outcome::Ok {
            *self.state(&from) = Possible::known(Expect::Absent);
            *self.state(&to) = Possible::known(Expect::Exact(content));
        } else {
            self.state(&from).or(Expect::Absent);
            self.state(&to).or(Expect::Exact(content));
        }
        outcome != Outcome::Unknown
    }

    async fn delete(&mut self, s: &mut Session, node: usize) -> bool {
        let present: Vec<String> = self
            .model
            .files
            .iter()
            .filter(|(_, st)| !st.is_absent())
            .map(|(p, _)| p.clone())
            .collect();
        if present.is_empty() {
            return self.upload(s, node).await;
        }
        let path = present[self.rng.gen_range(0..present.len())].clone();
        let result = tokio::time::timeout(op_limit(0), s.delete(&path)).await;
        let (outcome, detail) = classify(result);
        self.shared
            .record(&self.op("delete", &path, node, true), outcome, &detail);
        match outcome {
            Outcome::Ok => *self.state(&path) = Possible::known(Expect::Absent),
            _ => self.state(&path).or(Expect::Absent),
        }
        outcome != Outcome::Unknown
    }

    async fn list(&mut self, s: &mut Session, node: usize) -> bool {
        let dir = self.model.dir.clone();
        let result = tokio::time::timeout(op_limit(0), s.names(&dir)).await;
        let (outcome, detail) = match result {
            Ok(Ok(names)) => (Outcome::Ok, format!("{} names", names.len())),
            Ok(Err(e)) if refusal(&e).is_some() => (Outcome::Failed, e.to_string()),
            Ok(Err(e)) => (Outcome::Unknown, format!("{e:#}")),
            Err(_) => (Outcome::Unknown, "timed out".into()),
        };
        self.shared
            .record(&self.op("list", &dir, node, false), outcome, &detail);
        outcome != Outcome::Unknown
    }

    /// Starts an upload, vanishes part way (a client crash), then finishes
    /// it on another node with SIZE and REST, as FTP clients resume. Returns
    /// the session on the other node, if it is usable.
    async fn cut_and_resume(&mut self, s: Session, node: usize) -> Option<(Session, usize)> {
        let path = self.new_name();
        let mut content = self.new_content();
        if content.len() < 2 {
            content.0[0].len = 2 + self.settings.max_size / 4;
        }
        let bytes = content.bytes();
        let sent = self.rng.gen_range(1..bytes.len());
        self.uploading(node, 1);
        let result = tokio::time::timeout(
            op_limit(bytes.len() as u64),
            s.store_and_vanish(&path, &bytes, sent),
        )
        .await;
        self.uploading(node, -1);
        let (outcome, detail) = classify(result);
        let detail = format!("vanished after {sent} of {} bytes {detail}", bytes.len());
        self.shared
            .record(&self.op("cut", &path, node, true), outcome, &detail);
        self.state(&path).or(Expect::PrefixOf {
            base: Content::default(),
            extra: content.clone(),
        });
        // A client takes a moment to notice and reconnect.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let others = self.settings.nodes.len() - 1;
        let other = (node + 1 + self.rng.gen_range(0..others.max(1))) % self.settings.nodes.len();
        let mut s = self.login(other).await?;
        let size = tokio::time::timeout(op_limit(0), s.size(&path)).await;
        let offset = match size {
            Ok(Ok(Some(n))) if n <= bytes.len() as u64 => n,
            Ok(Ok(Some(n))) => {
                let op = self.op("resume", &path, other, true);
                self.shared.record(
                    &op,
                    Outcome::Failed,
                    &format!("SIZE {n} exceeds the {} bytes sent", bytes.len()),
                );
                return Some((s, other));
            }
            Ok(Ok(None)) => 0,
            Ok(Err(e)) if refusal(&e).is_some() => 0,
            _ => {
                let op = self.op("resume", &path, other, true);
                self.shared
                    .record(&op, Outcome::Unknown, "SIZE got no answer");
                return None;
            }
        };
        self.uploading(other, 1);
        let rest = &bytes[offset as usize..];
        let result = tokio::time::timeout(
            op_limit(rest.len() as u64),
            s.store_from(&path, offset, rest),
        )
        .await;
        self.uploading(other, -1);
        let (outcome, detail) = classify(result);
        let detail = format!("REST {offset} {detail}");
        self.shared
            .record(&self.op("resume", &path, other, true), outcome, &detail);
        if outcome == Outcome::Ok {
            *self.state(&path) = Possible::known(Expect::Exact(content));
            self.model
                .acked_uploads
                .push((path.clone(), sha256(&bytes)));
            self.model.resumed.push(path);
        }
        (outcome != Outcome::Unknown).then_some((s, other))
    }
}
