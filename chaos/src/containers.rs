//! The container topology: the three nodes of deploy/compose.yaml, from an
//! image of deploy/Dockerfile that packages the wharf binary under test (on
//! a base made by deploy/docker/local-base.sh, as on any machine without a
//! registry). A small override file gives the chaos run what the deployment
//! leaves open: fixed addresses, the workload's account, no restart policy
//! (the suite restarts what it kills), and for the victim of a scenario a
//! tmpfs data volume or libfaketime. The balancer is not started: the
//! workload picks the node of every session itself.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::net::{node_ip, CONTAINER_LB_IP, CONTAINER_SUBNET};

const BASE_IMAGE: &str = "wharf-local/debian:bookworm";
/// Nodes in compose.yaml.
pub const NODES: usize = 3;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default()
}

fn output(command: &mut Command, limit: Duration) -> Result<Output> {
    let program = format!("{:?}", command.get_program());
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    let deadline = Instant::now() + limit;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("{program} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(child.wait_with_output()?)
}

/// Runs `command` to its end (killed after `limit`); its standard output, or
/// an error with its standard error when it failed.
pub fn checked(command: &mut Command, limit: Duration) -> Result<String> {
    let what = format!("{command:?}");
    let out = output(command, limit)?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub fn docker(args: &[&str]) -> Result<String> {
    checked(Command::new("docker").args(args), Duration::from_secs(120))
}

/// Why containers cannot be used here, if they cannot.
pub fn unavailable() -> Option<String> {
    let works = |program: &str, arg: &str| {
        output(Command::new(program).arg(arg), Duration::from_secs(30))
            .is_ok_and(|o| o.status.success())
    };
    if !works("docker", "info") {
        return Some("no Docker engine answers `docker info`".into());
    }
    if !works("docker-compose", "version") {
        return Some("docker-compose is not installed".into());
    }
    if !works("nsenter", "--version") {
        return Some("nsenter is not installed".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("entering the containers' network namespaces needs root".into());
    }
    None
}

/// The image of deploy/Dockerfile with `wharf` packaged; removed on drop.
pub struct Image {
    pub tag: String,
}

impl Image {
    pub fn build(wharf: &Path) -> Result<Image> {
        checked(
            Command::new(repo_root().join("deploy/docker/local-base.sh")).arg(BASE_IMAGE),
            Duration::from_secs(900),
        )
        .context("making the base image with debootstrap")?;
        let context =
            std::env::temp_dir().join(format!("wharf-chaos-image-{}", std::process::id()));
        std::fs::create_dir_all(&context)?;
        std::fs::copy(wharf, context.join("wharf"))?;
        let tag = format!("wharf-chaos:{}", std::process::id());
        let built = checked(
            Command::new("docker")
                .args(["build", "--tag", &tag, "--file"])
                .arg(repo_root().join("deploy/Dockerfile"))
                .args(["--build-arg", &format!("BUILDER_IMAGE={BASE_IMAGE}")])
                .args(["--build-arg", &format!("RUNTIME_IMAGE={BASE_IMAGE}")])
                .args(["--build-arg", "PREBUILT=wharf"])
                .arg(&context),
            Duration::from_secs(600),
        );
        let _ = std::fs::remove_dir_all(&context);
        built.context("docker build of deploy/Dockerfile")?;
        Ok(Image { tag })
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = docker(&["image", "rm", "--force", &self.tag]);
        let _ = docker(&[
            "image",
            "prune",
            "--force",
            "--filter",
            "label=wharf.stage=build",
        ]);
    }
}

/// What a scenario changes about one node's container.
#[derive(Default)]
pub struct Victim {
    pub node: usize,
    /// Its data volume a tmpfs of this size.
    pub tmpfs: Option<&'static str>,
    /// Environment, and host directories mounted read-only at the same path.
    pub env: Vec<(String, String)>,
    pub mounts: Vec<PathBuf>,
}

/// One compose project: the three nodes of one scenario.
pub struct Compose {
    project: String,
    files: [PathBuf; 2],
    env: Vec<(&'static str, String)>,
    /// Container ids by node index (from 1).
    ids: Vec<String>,
    logs: PathBuf,
}

impl Compose {
    /// Starts wharf1..3 of compose.yaml under project `name`; node logs go
    /// to `root`/nodeN.log when the project is taken down.
    pub fn up(
        image: &Image,
        name: &str,
        root: &Path,
        account: &str,
        victim: Option<Victim>,
    ) -> Result<Compose> {
        let overrides = root.join("compose.chaos.yaml");
        std::fs::write(&overrides, override_file(account, victim.as_ref()))?;
        let mut compose = Compose {
            project: name.to_owned(),
            files: [repo_root().join("deploy/compose.yaml"), overrides],
            env: vec![
                ("WHARF_IMAGE", image.tag.clone()),
                ("HAPROXY_IMAGE", BASE_IMAGE.into()),
                ("WHARF_SUBNET", CONTAINER_SUBNET.into()),
                ("WHARF_LB_IP", CONTAINER_LB_IP.into()),
            ],
            ids: Vec::new(),
            logs: root.to_owned(),
        };
        // Leftovers of a run that was killed before it took its project down.
        let _ = compose.compose(&["down", "--volumes", "--timeout", "1"]);
        compose.compose(&["up", "--detach", "wharf1", "wharf2", "wharf3"])?;
        for i in 1..=NODES {
            let id = compose.compose(&["ps", "-q", &format!("wharf{i}")])?;
            if id.is_empty() {
                bail!("no container for wharf{i}");
            }
            compose.ids.push(id);
        }
        Ok(compose)
    }

    fn compose(&self, args: &[&str]) -> Result<String> {
        let mut command = Command::new("docker-compose");
        command.arg("--project-name").arg(&self.project);
        for file in &self.files {
            command.arg("--file").arg(file);
        }
        command
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        checked(&mut command, Duration::from_secs(300))
    }

    /// Node `i`'s container id.
    pub fn id(&self, i: usize) -> &str {
        &self.ids[i - 1]
    }

    /// The host pid of node `i`'s process (its network namespace).
    pub fn pid(&self, i: usize) -> Result<u32> {
        let pid: u32 = docker(&["inspect", "--format", "{{.State.Pid}}", self.id(i)])?
            .parse()
            .context("unreadable pid from docker inspect")?;
        if pid == 0 {
            bail!("node {i}'s container is not running");
        }
        Ok(pid)
    }

    /// Whether node `i`'s container runs, and if not how it exited.
    pub fn state(&self, i: usize) -> Result<Result<(), String>> {
        let state = docker(&[
            "inspect",
            "--format",
            "{{.State.Running}} {{.State.ExitCode}}",
            self.id(i),
        ])?;
        Ok(match state.split_once(' ') {
            Some(("true", _)) => Ok(()),
            Some((_, code)) => Err(format!("exit code {code}")),
            None => Err(state),
        })
    }

    /// `docker exec` in node `i`'s container, as `user`.
    pub fn exec(&self, i: usize, user: &str, script: &str) -> Result<Output> {
        output(
            Command::new("docker").args(["exec", "--user", user, self.id(i), "sh", "-c", script]),
            Duration::from_secs(120),
        )
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        for (i, id) in self.ids.iter().enumerate() {
            if let Ok(out) = output(
                Command::new("docker").args(["logs", id]),
                Duration::from_secs(60),
            ) {
                let mut log = out.stdout;
                log.extend_from_slice(&out.stderr);
                let _ = std::fs::write(self.logs.join(format!("node{}.log", i + 1)), log);
            }
        }
        let _ = self.compose(&["down", "--volumes", "--timeout", "5"]);
    }
}

/// The chaos run's additions to compose.yaml.
fn override_file(account: &str, victim: Option<&Victim>) -> String {
    let log = std::env::var("WHARF_LOG").unwrap_or_else(|_| "info,openraft=warn".into());
    let mut yaml = String::from("services:\n");
    for i in 1..=NODES {
        let _ = write!(
            yaml,
            "  wharf{i}:\n    restart: \"no\"\n    networks:\n      wharf:\n        ipv4_address: {ip}\n    environment:\n      WHARF_LOG: \"{log}\"\n      WHARF_MAX_PER_IP: \"1000\"\n      WHARF_LOG_FORMAT: human\n",
            ip = node_ip(i),
        );
        if i == 1 {
            let _ = writeln!(yaml, "      WHARF_USER: \"{account}\"");
        }
        if let Some(v) = victim.filter(|v| v.node == i) {
            for (k, value) in &v.env {
                let _ = writeln!(yaml, "      {k}: \"{value}\"");
            }
            if !v.mounts.is_empty() {
                yaml.push_str("    volumes:\n");
                for m in &v.mounts {
                    let _ = writeln!(yaml, "      - {0}:{0}:ro", m.display());
                }
            }
        }
    }
    if let Some(Victim {
        node,
        tmpfs: Some(size),
        ..
    }) = victim
    {
        let _ = write!(
            yaml,
            "volumes:\n  wharf{node}:\n    driver_opts:\n      type: tmpfs\n      device: tmpfs\n      o: \"size={size},uid=10001,gid=10001,mode=0750\"\n"
        );
    }
    yaml
}
