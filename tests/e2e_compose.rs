//! `deploy/compose.yaml` for real: the image of `deploy/Dockerfile` is built
//! (on a base made by `deploy/docker/local-base.sh`, as on any machine without
//! a registry, packaging the binary under test), three nodes and HAProxy come
//! up, files go through HAProxy to every node's passive range, one node
//! container is stopped and files still go in and come out.
//!
//! Needs a Docker engine and docker-compose; without them the test says it
//! is skipped and why.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

/// The base image both Dockerfile stages and HAProxy run on.
const BASE_IMAGE: &str = "wharf-local/debian:bookworm";
const NODES: [&str; 3] = ["wharf1", "wharf2", "wharf3"];
const PASV_WIDTH: u16 = 20;

/// Why Docker cannot be used here, if it cannot.
fn docker_missing() -> Option<String> {
    let works = |cmd: &mut Command| {
        run_with_timeout(cmd, Duration::from_secs(30))
            .output
            .status
            .success()
    };
    if !works(Command::new("docker").arg("info")) {
        return Some("no Docker engine answers `docker info`".into());
    }
    if !works(Command::new("docker-compose").arg("version")) {
        return Some("docker-compose is not installed".into());
    }
    None
}

/// A compose project of its own; taken down with its volumes when dropped.
struct Project {
    name: String,
    image: String,
    env: Vec<(&'static str, String)>,
    _context: tempfile::TempDir,
}

impl Project {
    fn compose(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.arg("--project-name")
            .arg(&self.name)
            .arg("--file")
            .arg(repo_root().join("deploy/compose.yaml"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        cmd
    }

    fn exec(&self, node: &str, args: &[&str]) -> Command {
        let mut all = vec!["exec", "-T", node];
        all.extend_from_slice(args);
        self.compose(&all)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        // A failure is explained by what the nodes logged, not by the
        // assertion alone.
        if std::thread::panicking() {
            let logs = run_with_timeout(
                &mut self.compose(&["logs", "--no-color", "--timestamps"]),
                Duration::from_secs(60),
            );
            eprintln!(
                "the project's logs:\n{}",
                tail_lines(&String::from_utf8_lossy(&logs.output.stdout), 400)
            );
        }
        let _ = run_with_timeout(
            &mut self.compose(&["down", "--volumes", "--timeout", "5"]),
            Duration::from_secs(120),
        );
        let _ = run_with_timeout(
            Command::new("docker").args(["image", "rm", "--force", &self.image]),
            Duration::from_secs(60),
        );
        // The legacy builder keeps the build stage as an untagged image.
        let _ = run_with_timeout(
            Command::new("docker").args([
                "image",
                "prune",
                "--force",
                "--filter",
                "label=wharf.stage=build",
            ]),
            Duration::from_secs(60),
        );
    }
}

fn repo_root() -> PathBuf {
    tests_dir()
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// Builds the image from deploy/Dockerfile, packaging the binary under test.
fn build_image(tag: &str) -> tempfile::TempDir {
    let base = run_with_timeout(
        Command::new(repo_root().join("deploy/docker/local-base.sh")).arg(BASE_IMAGE),
        Duration::from_secs(900),
    );
    assert_success(&base.output, "making the base image with debootstrap");
    let context = tempfile::tempdir().unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_wharf"), context.path().join("wharf")).unwrap();
    let out = run_with_timeout(
        Command::new("docker")
            .args(["build", "--tag", tag, "--file"])
            .arg(repo_root().join("deploy/Dockerfile"))
            .args(["--build-arg", &format!("BUILDER_IMAGE={BASE_IMAGE}")])
            .args(["--build-arg", &format!("RUNTIME_IMAGE={BASE_IMAGE}")])
            .args(["--build-arg", "PREBUILT=wharf"])
            .arg(context.path()),
        Duration::from_secs(600),
    );
    assert_success(&out.output, "docker build of deploy/Dockerfile");
    context
}

/// Three passive ranges whose ports are all free here, outside the ranges
/// the other suites use.
fn free_ranges() -> [(u16, u16); 3] {
    let free = |low: u16| {
        (low..low + PASV_WIDTH).all(|p| std::net::TcpListener::bind(("0.0.0.0", p)).is_ok())
    };
    let mut found = Vec::new();
    let mut low = 46000;
    while found.len() < 3 {
        assert!(low < 48000, "no three free passive ranges in 46000-48000");
        if free(low) {
            found.push((low, low + PASV_WIDTH - 1));
        }
        low += PASV_WIDTH;
    }
    [found[0], found[1], found[2]]
}

fn poll(what: &str, limit: Duration, mut ok: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + limit;
    loop {
        match ok() {
            Ok(()) => return,
            Err(why) if Instant::now() >= deadline => {
                panic!("{what}: still failing after {limit:?}: {why}")
            }
            Err(why) => {
                eprintln!("{what}: {why}; again in a second");
                std::thread::sleep(Duration::from_secs(1))
            }
        }
    }
}

fn attempt(cmd: &mut Command) -> Result<(), String> {
    let outcome = run_with_timeout(cmd, Duration::from_secs(120));
    if outcome.output.status.success() {
        Ok(())
    } else {
        Err(describe(&outcome.output))
    }
}

struct Balancer {
    port: u16,
}

impl Balancer {
    fn url(&self, path: &str) -> String {
        format!("ftp://127.0.0.1:{}/{path}", self.port)
    }

    /// Upload through PASV, so the address the nodes advertise is used.
    fn put(&self, local: &Path, path: &str) -> Result<(), String> {
        attempt(
            curl_ftps(USER, PASSWORD)
                .arg("--disable-epsv")
                .arg("--upload-file")
                .arg(local)
                .arg(self.url(path)),
        )
    }

    /// Download through EPSV (the client dials the balancer it knows).
    fn get(&self, path: &str, local: &Path) -> Result<(), String> {
        attempt(
            curl_ftps(USER, PASSWORD)
                .arg("--output")
                .arg(local)
                .arg(self.url(path)),
        )
    }
}

#[test]
fn compose_cluster_serves_through_haproxy_and_survives_a_stopped_node() {
    if let Some(why) = docker_missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let id = std::process::id();
    let image = format!("wharf-e2e:{id}");
    let context = build_image(&image);
    let ranges = free_ranges();
    let octet = 100 + id % 100;
    let gateway = format!("172.30.{octet}.1");
    let balancer = Balancer { port: free_port() };
    let project = Project {
        name: format!("wharfe2e{id}"),
        image: image.clone(),
        env: vec![
            ("WHARF_IMAGE", image),
            ("HAPROXY_IMAGE", BASE_IMAGE.into()),
            ("WHARF_PUBLIC_ADDRESS", "127.0.0.1".into()),
            ("WHARF_FTP_PORT", balancer.port.to_string()),
            ("WHARF_FTPS_PORT", free_port().to_string()),
            (
                "WHARF_NODE1_PASV",
                format!("{}-{}", ranges[0].0, ranges[0].1),
            ),
            (
                "WHARF_NODE2_PASV",
                format!("{}-{}", ranges[1].0, ranges[1].1),
            ),
            (
                "WHARF_NODE3_PASV",
                format!("{}-{}", ranges[2].0, ranges[2].1),
            ),
            ("WHARF_SUBNET", format!("172.30.{octet}.0/24")),
            ("WHARF_LB_IP", format!("172.30.{octet}.10")),
        ],
        _context: context,
    };
    let up = run_with_timeout(
        &mut project.compose(&["up", "--detach"]),
        Duration::from_secs(300),
    );
    assert_success(&up.output, "docker-compose up");

    for node in NODES {
        poll(
            &format!("{node} ready (`wharf health` in the container)"),
            Duration::from_secs(120),
            || attempt(&mut project.exec(node, &["wharf", "health"])),
        );
    }
    let added = run_with_input(
        &mut project.exec(
            "wharf1",
            &[
                "wharf",
                "user",
                "add",
                USER,
                "--password-stdin",
                "--data-dir",
                "/var/lib/wharf",
            ],
        ),
        format!("{PASSWORD}\n").as_bytes(),
        Duration::from_secs(60),
    );
    assert_success(&added, "wharf user add inside the wharf1 container");

    // Several sessions, so the balancer spreads them over the nodes and each
    // node's passive range is crossed.
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for round in 0..4 {
        let local = dir.path().join(format!("before-{round}.bin"));
        write_random_file(&local, 1_500_000 + round * 100_000);
        let name = format!("before-{round}.bin");
        poll(
            &format!("upload {name} through HAProxy"),
            Duration::from_secs(60),
            || balancer.put(&local, &name),
        );
        files.push((local, name));
    }
    for (local, name) in &files {
        let back = dir.path().join(format!("{name}.back"));
        balancer
            .get(name, &back)
            .unwrap_or_else(|e| panic!("download {name}: {e}"));
        assert_same_file(local, &back);
    }

    let logs = run(&mut project.compose(&["logs", "--no-color", "wharf1", "wharf2", "wharf3"]));
    let logs = String::from_utf8_lossy(&logs.stdout);
    let sessions_from_client = NODES
        .iter()
        .filter(|node| {
            logs.lines()
                .any(|l| l.starts_with(*node) && l.contains(&gateway) && l.contains(USER))
        })
        .count();
    assert!(
        sessions_from_client >= 2,
        "the nodes log the client's own address {gateway} (from PROXY v2) for logins, on \
         at least two of the three nodes:\n{}",
        tail_lines(&logs, 80)
    );

    let stopped = run(&mut project.compose(&["stop", "--timeout", "5", "wharf1"]));
    assert_success(&stopped, "docker-compose stop wharf1");
    for (local, name) in &files {
        let back = dir.path().join(format!("{name}.after"));
        poll(
            &format!("download {name} with wharf1 stopped"),
            Duration::from_secs(90),
            || balancer.get(name, &back),
        );
        assert_same_file(local, &back);
    }
    let later = dir.path().join("after.bin");
    write_random_file(&later, 2_000_000);
    poll(
        "upload with wharf1 stopped",
        Duration::from_secs(90),
        || balancer.put(&later, "after.bin"),
    );
    let back = dir.path().join("after.back");
    balancer
        .get("after.bin", &back)
        .expect("download after.bin");
    assert_same_file(&later, &back);
}
