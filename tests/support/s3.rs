//! A real S3 server for end-to-end tests: Ceph's RADOS Gateway over one
//! monitor and one memstore OSD on 127.0.0.1, started by
//! `tests/support/ceph-rgw.sh` (about 4 s on this machine) in a directory of
//! its own and stopped when dropped. Path-style addressing, any region.

use std::process::Command;

use super::tests_dir;

pub struct CephGateway {
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
}

fn script() -> std::path::PathBuf {
    tests_dir().join("support").join("ceph-rgw.sh")
}

impl CephGateway {
    pub fn start() -> CephGateway {
        let dir = tempfile::Builder::new()
            .prefix("wharf-s3-")
            .tempdir()
            .expect("a directory for the gateway");
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(dir.path())
            .output()
            .expect("run ceph-rgw.sh");
        assert!(
            out.status.success(),
            "the Ceph gateway did not start:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let field = |name: &str| {
            line.split(' ')
                .find_map(|f| f.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .to_owned()
        };
        CephGateway {
            endpoint: field("endpoint"),
            access_key: field("access_key"),
            secret_key: field("secret_key"),
            dir,
        }
    }

    /// curl signing its request for this gateway (SigV4) with `key:secret`;
    /// `path` is `/bucket[/key]`.
    pub fn curl_signed(&self, key: &str, secret: &str, method: &str, path: &str) -> Command {
        let mut cmd = Command::new("curl");
        cmd.args(["--silent", "--show-error", "--max-time", "60"])
            .args(["--aws-sigv4", "aws:amz:us-east-1:s3"])
            .args(["--user", &format!("{key}:{secret}")])
            // curl signs the headers; S3 wants the payload's hash stated.
            .args(["--header", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
            .args(["--request", method])
            .arg(format!("{}{path}", self.endpoint));
        cmd
    }

    /// [`curl_signed`](Self::curl_signed) with the gateway's own user.
    pub fn curl(&self, method: &str, path: &str) -> Command {
        self.curl_signed(&self.access_key, &self.secret_key, method, path)
    }

    /// The gateway's logs, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log").join("client.rgw.wharf.log"))
            .unwrap_or_default()
    }
}

impl Drop for CephGateway {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}
