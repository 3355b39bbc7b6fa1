//! Harness shared by the end-to-end tests: a real `wharf` process per test, the external
//! clients that talk to it, and helpers that keep every test bounded in time.
//!
//! `tests/e2e.rs` includes it once for every suite (`crate::support`).
//! Not every test file uses every helper, hence the `dead_code`/`unused_imports` allowance.
#![allow(dead_code, unused_imports)]

pub mod cluster;
pub mod control;
pub mod events;
pub mod process;
pub mod s3;

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use sha2::{Digest, Sha256};

pub use cluster::{Cluster, ClusterStatus, Member};
pub use control::{Control, Reply};
pub use process::{
    assert_success, describe, require_tool, run, run_for, run_with_input, run_with_timeout,
    RunOutcome,
};

/// The quick-start account every server gets unless a test asks otherwise.
pub const USER: &str = "alice";
pub const PASSWORD: &str = "wonder-Land-42";

/// How long a server may take from spawn to answering `220`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Width of the passive port range each server instance gets.
const PASV_RANGE_WIDTH: u16 = 40;
/// The server's output, in the test's temporary directory (kept across restarts).
const STDOUT_LOG: &str = "wharf.stdout.log";
const STDERR_LOG: &str = "wharf.stderr.log";

/// curl logging in as `user` with the options every test uses: TLS required,
/// certificate not verified, bounded connect and total time.
pub fn curl_ftps(user: &str, password: &str) -> Command {
    let mut cmd = Command::new("curl");
    cmd.args([
        "--silent",
        "--show-error",
        "--insecure",
        "--ssl-reqd",
        "--connect-timeout",
        "10",
        "--max-time",
        "600",
        "--user",
    ])
    .arg(format!("{user}:{password}"));
    cmd
}

/// A random passive range that no other server of this test process has, so
/// the nodes of a cluster can each be forwarded their own range (layout (b)).
fn pasv_range() -> (u16, u16) {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let low = rand::thread_rng().gen_range(40000..=(44999 - PASV_RANGE_WIDTH));
        if given
            .iter()
            .all(|&other| low.abs_diff(other) >= PASV_RANGE_WIDTH)
        {
            given.push(low);
            return (low, low + PASV_RANGE_WIDTH - 1);
        }
    }
}

/// How to start one `wharf serve` process.
#[derive(Clone, Debug)]
pub struct WharfOptions {
    users: Vec<(String, String)>,
    args: Vec<String>,
    config: Option<String>,
    join: Option<(String, String)>,
    storage: String,
    /// The bucket of `--storage s3`.
    s3: Option<s3::S3Bucket>,
    data_archive: Option<PathBuf>,
}

/// The storage tests run on unless they choose: `WHARF_E2E_STORAGE=cluster` runs the
/// engine's tests on cluster storage, `=s3` on object storage (a fresh bucket of the
/// gateway `WHARF_E2E_S3` names); `.ci/run` runs them on all three.
fn default_storage() -> String {
    std::env::var("WHARF_E2E_STORAGE").unwrap_or_else(|_| "local".to_owned())
}

fn default_bucket(storage: &str) -> Option<s3::S3Bucket> {
    (storage == "s3").then(|| {
        s3::S3Bucket::from_env()
            .expect("WHARF_E2E_STORAGE=s3 needs WHARF_E2E_S3, the line `ceph-rgw.sh start` prints")
    })
}

impl Default for WharfOptions {
    fn default() -> Self {
        WharfOptions {
            users: vec![(USER.to_string(), PASSWORD.to_string())],
            args: Vec::new(),
            config: None,
            join: None,
            storage: default_storage(),
            s3: default_bucket(&default_storage()),
            data_archive: None,
        }
    }
}

impl WharfOptions {
    /// Adds one command-line argument after the harness's own (e.g. `--no-require-ssl-reuse`).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds several command-line arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds another `--user NAME:PASSWORD` quick-start account.
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.to_string(), password.to_string()));
        self
    }

    /// No `--user` accounts at all (a joining node gets its accounts from the cluster).
    pub fn no_users(mut self) -> Self {
        self.users.clear();
        self
    }

    /// Joins the cluster of the member at `address` (`--join ADDR --join-token TOKEN`) on
    /// the first start.
    pub fn join(mut self, address: &str, token: &str) -> Self {
        self.join = Some((address.to_string(), token.to_string()));
        self
    }

    /// `--storage cluster`: files in the replicated namespace and chunk store (the
    /// harness passes `--storage local` otherwise, so files can be checked on disk).
    pub fn cluster_storage(mut self) -> Self {
        self.storage = "cluster".to_owned();
        self.s3 = None;
        self
    }

    /// `--storage local` whatever `WHARF_E2E_STORAGE` says.
    pub fn local_storage(mut self) -> Self {
        self.storage = "local".to_owned();
        self.s3 = None;
        self
    }

    /// `--storage s3` on `bucket` (created on each start, as a node's first
    /// start needs it to exist).
    pub fn s3_storage(mut self, bucket: &s3::S3Bucket) -> Self {
        self.storage = "s3".to_owned();
        self.s3 = Some(bucket.clone());
        self
    }

    /// Starts from the data directory in `archive` (a `.tar.gz` holding `data/`), e.g. one
    /// an earlier release wrote.
    pub fn data_from_archive(mut self, archive: PathBuf) -> Self {
        self.data_archive = Some(archive);
        self
    }

    /// Writes `toml` to a file in the test's temporary directory and passes `--config FILE`.
    pub fn config(mut self, toml: impl Into<String>) -> Self {
        self.config = Some(toml.into());
        self
    }
}

/// A running `wharf serve` process with its own data directory and ports.
///
/// Dropping it kills the process; when the test is panicking, the server's captured
/// stdout and stderr are printed first so the failure can be read from the test output.
pub struct Wharf {
    pub explicit_port: u16,
    pub implicit_port: u16,
    /// Raft and admin API port (`--cluster-listen 127.0.0.1:<port>`).
    pub cluster_port: u16,
    /// `/metrics`, `/healthz`, `/readyz` (`--http-listen 127.0.0.1:<port>`).
    pub http_port: u16,
    pub pasv_ports: (u16, u16),
    pub data_dir: PathBuf,
    pub user: String,
    pub password: String,
    root: tempfile::TempDir,
    child: Child,
    options: WharfOptions,
    stdout_log: PathBuf,
    stderr_log: PathBuf,
}

impl Wharf {
    /// Spawns the binary under test and waits until its explicit port greets (`220`, or
    /// `421` when the node is drained).
    pub fn start(options: WharfOptions) -> Wharf {
        // Ports are drawn free but bound only when the server starts: another
        // test process may take one in between. Such a start is tried again
        // from scratch (new directory, new ports), twice at most.
        for _ in 0..2 {
            let mut wharf = Wharf::spawn_fresh(options.clone());
            if wharf.ready_unless_port_taken() {
                return wharf;
            }
            eprintln!(
                "a port of this server was taken before it bound it; starting it again:\n{}",
                wharf.logs()
            );
        }
        let mut wharf = Wharf::spawn_fresh(options);
        wharf.wait_until_ready();
        wharf
    }

    fn spawn_fresh(options: WharfOptions) -> Wharf {
        let root = tempfile::Builder::new()
            .prefix("wharf-e2e-")
            .tempdir()
            .expect("create a temporary directory for the server");
        let data_dir = root.path().join("data");
        if let Some(archive) = &options.data_archive {
            let out = run(Command::new("tar")
                .arg("-xzf")
                .arg(archive)
                .arg("-C")
                .arg(root.path()));
            assert_success(&out, &format!("unpack {}", archive.display()));
        }
        fs::create_dir_all(&data_dir).expect("create the data directory");
        fs::create_dir_all(root.path().join("client")).expect("create the client directory");

        let explicit_port = free_port();
        let implicit_port = free_port();
        let cluster_port = free_port();
        let http_port = free_port();
        let pasv_ports = pasv_range();

        let stdout_log = root.path().join(STDOUT_LOG);
        let stderr_log = root.path().join(STDERR_LOG);
        let (user, password) = options.users.first().cloned().unwrap_or_default();
        let child = Wharf::spawn(
            root.path(),
            &data_dir,
            [explicit_port, implicit_port, cluster_port, http_port],
            pasv_ports,
            &options,
            true,
        );
        Wharf {
            explicit_port,
            implicit_port,
            cluster_port,
            http_port,
            pasv_ports,
            data_dir,
            user,
            password,
            root,
            child,
            options,
            stdout_log,
            stderr_log,
        }
    }

    /// Spawns `wharf serve` with its output appended to the logs in `root`.
    /// `--join` is passed only on the first start: a restarted member finds its cluster
    /// in its data directory.
    fn spawn(
        root: &Path,
        data_dir: &Path,
        [explicit_port, implicit_port, cluster_port, http_port]: [u16; 4],
        pasv_ports: (u16, u16),
        options: &WharfOptions,
        first_start: bool,
    ) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wharf"));
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{explicit_port}"))
            .arg("--implicit-listen")
            .arg(format!("127.0.0.1:{implicit_port}"))
            .arg("--pasv-ports")
            .arg(format!("{}-{}", pasv_ports.0, pasv_ports.1))
            .arg("--cluster-listen")
            .arg(format!("127.0.0.1:{cluster_port}"))
            .arg("--http-listen")
            .arg(format!("127.0.0.1:{http_port}"))
            .arg("--storage")
            .arg(&options.storage);
        for (name, password) in &options.users {
            cmd.arg("--user").arg(format!("{name}:{password}"));
        }
        if let Some(toml) = &options.config {
            let path = root.join("wharf.toml");
            fs::write(&path, toml).expect("write the configuration file");
            cmd.arg("--config").arg(path);
        }
        if let Some((address, token)) = options.join.as_ref().filter(|_| first_start) {
            cmd.arg("--join")
                .arg(address)
                .arg("--join-token")
                .arg(token);
        }
        if let Some(bucket) = &options.s3 {
            bucket.create();
            cmd.args(bucket.args(&root.join("s3-credentials")));
        }
        cmd.args(&options.args);
        remove_wharf_environment(&mut cmd);
        // `WHARF_E2E_LOG=debug cargo test …` raises the server's log level.
        let log_filter = std::env::var("WHARF_E2E_LOG").unwrap_or_else(|_| "info".to_string());
        let append = |name: &str| {
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(root.join(name))
                .unwrap_or_else(|e| panic!("open the server log {name}: {e}"))
        };
        cmd.env("WHARF_LOG", log_filter)
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(append(STDOUT_LOG))
            .stderr(append(STDERR_LOG));
        cmd.spawn().expect("spawn the wharf binary")
    }

    /// Kills the process with SIGKILL — no drain, no flush — and waits for it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the binary again on the same data directory and ports, after `kill9` or an
    /// exit, and waits for its greeting. The server's logs continue in the same files.
    pub fn restart(&mut self) {
        assert!(
            !self.is_running(),
            "restart() needs a stopped server; call kill9() first"
        );
        self.child = Wharf::spawn(
            self.root.path(),
            &self.data_dir,
            [
                self.explicit_port,
                self.implicit_port,
                self.cluster_port,
                self.http_port,
            ],
            self.pasv_ports,
            &self.options,
            false,
        );
        self.wait_until_ready();
    }

    /// `127.0.0.1:<cluster port>`, the address other nodes join through.
    pub fn cluster_addr(&self) -> String {
        format!("127.0.0.1:{}", self.cluster_port)
    }

    /// The Raft node id this member was given (`DATA_DIR/cluster/node_id`).
    pub fn node_id(&self) -> u64 {
        let path = self.data_dir.join("cluster").join("node_id");
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        text.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{} holds {text:?}: {e}", path.display()))
    }

    /// Runs `wharf ARGS… --data-dir DATA_DIR` (an admin command against this node),
    /// with `stdin` as its input.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let data_dir = self.data_dir.to_string_lossy().into_owned();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--data-dir", &data_dir]);
        wharf_cli(&all, stdin)
    }

    /// Whether any file of this node's Raft store (log, state machine,
    /// snapshots) holds `needle`: how tests see that a secret is sealed.
    pub fn store_contains(&self, needle: &[u8]) -> bool {
        fn walk(dir: &Path, needle: &[u8]) -> bool {
            fs::read_dir(dir).unwrap().flatten().any(|entry| {
                let path = entry.path();
                if path.is_dir() {
                    return walk(&path, needle);
                }
                let bytes = fs::read(&path).unwrap_or_default();
                bytes.windows(needle.len()).any(|w| w == needle)
            })
        }
        walk(&self.data_dir.join("cluster").join("raft"), needle)
    }

    /// The audit log's events (`DATA_DIR/audit.log`), one JSON object each.
    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        let text = fs::read_to_string(self.data_dir.join("audit.log")).unwrap_or_default();
        text.lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("audit line {line:?}: {e}"))
            })
            .collect()
    }

    /// The audit events whose fields include every `(key, value)` of `wanted`.
    pub fn audited(&self, wanted: &[(&str, &str)]) -> Vec<serde_json::Value> {
        self.audit_lines()
            .into_iter()
            .filter(|line| {
                wanted
                    .iter()
                    .all(|(k, v)| line["fields"][k].as_str() == Some(v))
            })
            .collect()
    }

    /// Starts a server with the default options: one account, default policies.
    pub fn start_default() -> Wharf {
        Wharf::start(WharfOptions::default())
    }

    fn wait_until_ready(&mut self) {
        self.ready_or_port_taken(false);
    }

    /// Waits for the server; false when it stopped at start-up because one
    /// of its ports was in use.
    fn ready_unless_port_taken(&mut self) -> bool {
        self.ready_or_port_taken(true)
    }

    fn ready_or_port_taken(&mut self, port_taken_is_an_answer: bool) -> bool {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                if port_taken_is_an_answer && self.logs().contains("Address already in use") {
                    return false;
                }
                panic!(
                    "wharf exited during start-up with {status}\n{}",
                    self.logs()
                );
            }
            if greets(self.explicit_port) {
                break;
            }
            if Instant::now() > deadline {
                panic!(
                    "wharf did not answer 220 on 127.0.0.1:{} within {:?}\n{}",
                    self.explicit_port,
                    READY_TIMEOUT,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The implicit listener has no plain greeting; it is ready once it accepts.
        while TcpStream::connect(("127.0.0.1", self.implicit_port)).is_err() {
            if Instant::now() > deadline {
                panic!(
                    "wharf did not accept on the implicit port {} within {:?}\n{}",
                    self.implicit_port,
                    READY_TIMEOUT,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        true
    }

    /// `DATA_DIR/home/<user>`, where quick-start accounts live.
    pub fn home(&self, user: &str) -> PathBuf {
        self.data_dir.join("home").join(user)
    }

    /// The first account's home, created if the server has not done so yet, so tests can
    /// put files there before the first login.
    pub fn user_home(&self) -> PathBuf {
        let home = self.home(&self.user);
        fs::create_dir_all(&home).expect("create the user's home");
        home
    }

    /// The first account's files as the server stores them, whatever the storage.
    pub fn stored(&self) -> Stored<'_> {
        if self.options.storage == "local" {
            fs::create_dir_all(self.home(&self.user)).expect("create the user's home");
        }
        Stored { wharf: self }
    }

    /// A scratch directory for client-side files (outside the data directory).
    pub fn client_dir(&self) -> PathBuf {
        self.root.path().join("client")
    }

    /// The test's temporary directory; the data directory is `root()/data`.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Panics unless the process is still running and a fresh connection is greeted.
    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("wharf is no longer running: {status}\n{}", self.logs());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !greets(self.explicit_port) {
            assert!(
                Instant::now() < deadline,
                "wharf is running but a new connection got no greeting within 10 s\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The server's process id, for sending it signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `limit` for the process to exit on its own.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The value of the `/metrics` sample whose line starts with
    /// `line_start` (name, labels and the space), if there is one.
    pub fn metric(&self, line_start: &str) -> Option<u64> {
        let out = run(Command::new("curl").args([
            "--silent",
            &format!("http://127.0.0.1:{}/metrics", self.http_port),
        ]));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
    }

    /// The server's stderr so far (where its tracing output goes).
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// The server's stdout and stderr, trimmed to their last lines.
    pub fn logs(&self) -> String {
        let stdout = fs::read_to_string(&self.stdout_log).unwrap_or_default();
        let stderr = fs::read_to_string(&self.stderr_log).unwrap_or_default();
        format!(
            "----- wharf stdout ({}) -----\n{}\n----- wharf stderr ({}) -----\n{}\n-----",
            self.stdout_log.display(),
            tail_lines(&stdout, 200),
            self.stderr_log.display(),
            tail_lines(&stderr, 400)
        )
    }

    /// Arguments every script in `tests/clients` understands.
    pub fn client_args(&self) -> Vec<String> {
        vec![
            "--port".into(),
            self.explicit_port.to_string(),
            "--implicit-port".into(),
            self.implicit_port.to_string(),
            "--user".into(),
            self.user.clone(),
            "--password".into(),
            self.password.clone(),
        ]
    }

    /// `python3 tests/clients/<script> --port … --user … --password …`.
    pub fn python(&self, script: &str) -> Command {
        let mut cmd = python(script);
        cmd.args(self.client_args());
        cmd
    }

    /// A session with `tests/clients/ftps_batch.py`: one login, then `steps` in order.
    pub fn batch(&self, tls: &str, steps: &[String]) -> Command {
        let mut cmd = self.python("ftps_batch.py");
        cmd.arg("--tls").arg(tls);
        for step in steps {
            cmd.arg("--step").arg(step);
        }
        cmd
    }

    /// `ftp://127.0.0.1:<explicit>/<path>` for curl.
    pub fn explicit_url(&self, path: &str) -> String {
        format!("ftp://127.0.0.1:{}/{}", self.explicit_port, path)
    }

    /// `ftps://127.0.0.1:<implicit>/<path>` for curl.
    pub fn implicit_url(&self, path: &str) -> String {
        format!("ftps://127.0.0.1:{}/{}", self.implicit_port, path)
    }

    /// curl with the options every test uses: TLS required, certificate not verified,
    /// bounded connect and total time.
    pub fn curl(&self) -> Command {
        self.curl_as(&self.user, &self.password)
    }

    /// `curl()` logging in as another account.
    pub fn curl_as(&self, user: &str, password: &str) -> Command {
        curl_ftps(user, password)
    }

    /// lftp running `commands` after an `open` of the explicit port, with FTPS forced on
    /// control and data connections.
    pub fn lftp(&self, commands: &[&str]) -> Command {
        let url = format!("ftp://127.0.0.1:{}", self.explicit_port);
        self.lftp_with(&url, &[], commands)
    }

    /// lftp opening `url` after the standard settings plus `settings`, then running
    /// `commands`. The script goes through a file so no shell quoting is involved.
    pub fn lftp_with(&self, url: &str, settings: &[&str], commands: &[&str]) -> Command {
        require_tool("lftp");
        let mut script = String::new();
        let standard = [
            "set ftp:ssl-force true",
            "set ftp:ssl-protect-data true",
            "set ftp:ssl-protect-list true",
            "set ssl:verify-certificate no",
            "set ssl:check-hostname no",
            "set cmd:fail-exit yes",
            "set net:max-retries 2",
            "set net:timeout 30",
            "set net:reconnect-interval-base 1",
            "set xfer:clobber on",
        ];
        for line in standard.iter().chain(settings) {
            script.push_str(line);
            script.push('\n');
        }
        script.push_str(&format!("open -u {},{} {url}\n", self.user, self.password));
        for command in commands {
            script.push_str(command);
            script.push('\n');
        }
        let path = self
            .root
            .path()
            .join(format!("lftp-{}.script", rand::random::<u32>()));
        fs::write(&path, script).expect("write the lftp script");
        let mut cmd = Command::new("lftp");
        cmd.arg("-f").arg(path);
        cmd
    }

    /// Connects a raw control connection to the explicit port and checks the greeting.
    pub fn control(&self) -> Control {
        let (control, greeting) = Control::connect(self.explicit_port);
        assert_eq!(greeting.code, 220, "greeting: {greeting}");
        control
    }
}

impl Drop for Wharf {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// Runs `wharf ARGS…` (an admin command) with `stdin` as its input, killed after 30 s.
/// Error messages come without a backtrace, as an operator would see them.
pub fn wharf_cli(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wharf"));
    cmd.args(args)
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0");
    remove_wharf_environment(&mut cmd);
    let limit = Duration::from_secs(30);
    if let Some(input) = stdin {
        return run_with_input(&mut cmd, input.as_bytes(), limit);
    }
    let outcome = run_with_timeout(&mut cmd, limit);
    assert!(
        !outcome.killed,
        "wharf {args:?} did not finish within {limit:?}\n{}",
        describe(&outcome.output)
    );
    outcome.output
}

/// The environment must not leak settings into the binary under test.
fn remove_wharf_environment(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WHARF_") {
            cmd.env_remove(key);
        }
    }
}

/// Whether the server on `port` greets: `220`, or the `421` of a node drained by the
/// operator (it is up, and turns connections away on purpose).
fn greets(port: u16) -> bool {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    let ok = BufReader::new(&stream).read_line(&mut line).is_ok()
        && (line.starts_with("220") || (line.starts_with("421") && line.contains("draining")));
    let _ = stream.shutdown(Shutdown::Both);
    ok
}

/// A port on 127.0.0.1 that is free now, chosen below the kernel's ephemeral
/// range (32768-60999): a port handed out by `bind(0)` comes from that range,
/// and outgoing connections (clients, gRPC between nodes) may take it again
/// before the server under test binds it.
pub fn free_port() -> u16 {
    // Never the same port twice in one test process: a node's ports are
    // drawn one after the other, each free when drawn, and two equal draws
    // made a node fail to start now and then.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = rand::thread_rng();
    for _ in 0..1000 {
        let port = rng.gen_range(20000..32000);
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free port between 20000 and 32000 on 127.0.0.1");
}

/// `tests/` in the source tree.
pub fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests")
}

/// `python3 tests/clients/<script>` with byte-code caching off (keeps the tree clean)
/// and unbuffered output (so a killed script still shows what it did).
pub fn python(script: &str) -> Command {
    require_tool("python3");
    let mut cmd = Command::new("python3");
    cmd.arg(tests_dir().join("clients").join(script))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1");
    cmd
}

/// Hex SHA-256 of a file's content.
pub fn sha256_file(path: &Path) -> String {
    let mut file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex::encode(hasher.finalize())
}

/// Hex SHA-256 of bytes.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes `size` random bytes to `path` (from the kernel, fast even in debug builds).
pub fn write_random_file(path: &Path, size: u64) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create the parent directory");
    }
    let mut out = File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let mut random = File::open("/dev/urandom").expect("open /dev/urandom");
    let copied = io::copy(&mut (&mut random).take(size), &mut out).expect("write random bytes");
    assert_eq!(copied, size);
    out.flush().expect("flush the random file");
}

/// Asserts two files have the same length and SHA-256, naming both on failure.
pub fn assert_same_file(expected: &Path, actual: &Path) {
    let expected_len = fs::metadata(expected).map(|m| m.len());
    let actual_len = fs::metadata(actual).map(|m| m.len());
    assert!(
        actual_len.is_ok(),
        "{} does not exist (expected a copy of {})",
        actual.display(),
        expected.display()
    );
    assert_eq!(
        expected_len.ok(),
        actual_len.ok(),
        "sizes differ: {} vs {}",
        expected.display(),
        actual.display()
    );
    assert_eq!(
        sha256_file(expected),
        sha256_file(actual),
        "SHA-256 differs: {} vs {}",
        expected.display(),
        actual.display()
    );
}

/// A view of the first account's stored files. With local storage it reads the home
/// directory on disk; with cluster storage, where files are chunks on several nodes, it
/// goes through a separate FTPS session as that account.
pub struct Stored<'a> {
    wharf: &'a Wharf,
}

impl Stored<'_> {
    /// The home directory on disk, when the files are kept there (local storage).
    pub fn on_disk(&self) -> Option<PathBuf> {
        (self.wharf.options.storage == "local").then(|| self.wharf.home(&self.wharf.user))
    }

    /// `MLST path` through a fresh session: `None` when it is not there.
    fn mlst(&self, path: &str) -> Option<String> {
        let out = run(&mut self.wharf.batch("reuse", &[format!("raw MLST {path}")]));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("RAW\t250").then_some(text)
    }

    pub fn exists(&self, path: &str) -> bool {
        match self.on_disk() {
            Some(home) => home.join(path).exists(),
            None => self.mlst(path).is_some(),
        }
    }

    pub fn is_dir(&self, path: &str) -> bool {
        match self.on_disk() {
            Some(home) => home.join(path).is_dir(),
            None => self.mlst(path).is_some_and(|t| t.contains("type=dir")),
        }
    }

    /// The stored file's size, `None` when it is not there.
    pub fn size(&self, path: &str) -> Option<u64> {
        match self.on_disk() {
            Some(home) => fs::metadata(home.join(path)).ok().map(|m| m.len()),
            None => self.mlst(path).and_then(|text| {
                let facts = text
                    .split(';')
                    .find_map(|f| f.trim().strip_prefix("size="))?;
                facts.parse().ok()
            }),
        }
    }

    /// Polls the stored file's size until it is there and stays the same for `quiet`,
    /// at most `limit`. Used after a client was killed mid-transfer, while the server
    /// may still be storing what it received (on cluster storage the file appears
    /// only once the cut upload is committed).
    pub fn wait_for_stable_size(&self, path: &str, quiet: Duration, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        let size = || self.size(path).unwrap_or(0);
        let mut last = size();
        let mut since = Instant::now();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            let now = size();
            if now != last {
                last = now;
                since = Instant::now();
            } else if now > 0 && since.elapsed() >= quiet {
                break;
            }
        }
        last
    }

    /// A local path holding the stored file's bytes: the file itself on disk, or a copy
    /// downloaded through a fresh session. Panics when the file is not there.
    pub fn copy_of(&self, path: &str) -> PathBuf {
        if let Some(home) = self.on_disk() {
            return home.join(path);
        }
        let copy = self
            .wharf
            .client_dir()
            .join(format!("stored-{}", rand::random::<u32>()));
        let out = run(self
            .wharf
            .curl()
            .arg("-o")
            .arg(&copy)
            .arg(self.wharf.explicit_url(path)));
        assert_success(&out, &format!("download the stored {path}"));
        copy
    }

    /// Puts `source` at `path` before a test's clients look for it (parents created).
    pub fn put(&self, path: &str, source: &Path) {
        match self.on_disk() {
            Some(home) => {
                let target = home.join(path);
                fs::create_dir_all(target.parent().expect("a parent")).expect("create parents");
                fs::copy(source, &target).expect("copy into the home");
            }
            None => {
                let out = run(self
                    .wharf
                    .curl()
                    .arg("--ftp-create-dirs")
                    .arg("-T")
                    .arg(source)
                    .arg(self.wharf.explicit_url(path)));
                assert_success(&out, &format!("store {path} through FTPS"));
            }
        }
    }
}

/// The last `n` lines of `text`.
pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    let mut out = String::new();
    if start > 0 {
        out.push_str(&format!("[… {start} earlier lines …]\n"));
    }
    out.push_str(&lines[start..].join("\n"));
    out
}

/// A normal client session (login, upload, download, SHA-256 comparison) run on a thread
/// while a test abuses the server; `finish` panics if any round failed.
pub struct NormalSession {
    handle: std::thread::JoinHandle<Result<(), String>>,
}

impl NormalSession {
    /// Runs `rounds` upload/download round trips of a `size`-byte file, one login each.
    pub fn start(wharf: &Wharf, rounds: usize, size: u64) -> NormalSession {
        let dir = wharf
            .client_dir()
            .join(format!("normal-{}", rand::random::<u32>()));
        fs::create_dir_all(&dir).expect("create the normal session's directory");
        // On disk the stored copy is checked too; on cluster storage the download
        // is the stored copy.
        let home = wharf.stored().on_disk();
        let batch_base = wharf.batch("reuse", &[]);
        let program = batch_base.get_program().to_owned();
        let args: Vec<_> = batch_base.get_args().map(|a| a.to_owned()).collect();
        let handle = std::thread::spawn(move || {
            for round in 0..rounds {
                let local = dir.join(format!("up-{round}.bin"));
                let back = dir.join(format!("down-{round}.bin"));
                let remote = format!("normal-{}-{round}.bin", rand::random::<u32>());
                write_random_file(&local, size);
                let mut cmd = Command::new(&program);
                cmd.args(&args)
                    .env("PYTHONDONTWRITEBYTECODE", "1")
                    .env("PYTHONUNBUFFERED", "1")
                    .arg("--step")
                    .arg(format!("put {} {remote}", local.display()))
                    .arg("--step")
                    .arg(format!("get {remote} {}", back.display()));
                let outcome = run_with_timeout(&mut cmd, Duration::from_secs(120));
                if !outcome.output.status.success() {
                    return Err(format!(
                        "normal session round {round} failed\n{}",
                        describe(&outcome.output)
                    ));
                }
                let sent = sha256_file(&local);
                if let Some(stored) = home.as_ref().map(|h| h.join(&remote)) {
                    if !stored.exists() || sha256_file(&stored) != sent {
                        return Err(format!(
                            "round {round}: the server's copy {} differs from what was sent",
                            stored.display()
                        ));
                    }
                }
                if sha256_file(&back) != sent {
                    return Err(format!("round {round}: the downloaded copy differs"));
                }
            }
            Ok(())
        });
        NormalSession { handle }
    }

    /// Waits for the session and panics with its failure, if any.
    pub fn finish(self) {
        match self.handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(message)) => panic!("{message}"),
            Err(_) => panic!("the normal session thread panicked"),
        }
    }
}

/// The fields of every stdout line `ftps_batch.py` tagged with `tag` (`NLST`, `LIST`, …).
pub fn tagged(output: &std::process::Output, tag: &str) -> Vec<Vec<String>> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            (fields.next() == Some(tag)).then(|| fields.map(str::to_string).collect())
        })
        .collect()
}
