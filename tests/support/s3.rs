//! A real S3 server for end-to-end tests: Ceph's RADOS Gateway over one
//! monitor and one memstore OSD on 127.0.0.1, started by
//! `tests/support/ceph-rgw.sh` (about 4 s on this machine) in a directory of
//! its own and stopped when dropped. Path-style addressing, any region.

use std::process::Command;

use super::tests_dir;

pub struct CephGateway {
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT` (`https://` with `start_tls`).
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    /// The CA of an HTTPS gateway's certificate.
    pub ca: Option<String>,
}

fn script() -> std::path::PathBuf {
    tests_dir().join("support").join("ceph-rgw.sh")
}

impl CephGateway {
    pub fn start() -> CephGateway {
        Self::start_with(false)
    }

    /// A gateway that speaks HTTPS only, its certificate from a CA of its own (`ca`).
    pub fn start_tls() -> CephGateway {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> CephGateway {
        let dir = tempfile::Builder::new()
            .prefix("wharf-s3-")
            .tempdir()
            .expect("a directory for the gateway");
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(dir.path())
            .env("TLS", if tls { "1" } else { "0" })
            .output()
            .expect("run ceph-rgw.sh");
        assert!(
            out.status.success(),
            "the Ceph gateway did not start:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let find = |name: &str| {
            line.split(' ')
                .find_map(|f| f.strip_prefix(&format!("{name}=")))
                .map(str::to_owned)
        };
        let field = |name: &str| find(name).unwrap_or_else(|| panic!("no {name} in {line:?}"));
        CephGateway {
            endpoint: field("endpoint"),
            access_key: field("access_key"),
            secret_key: field("secret_key"),
            ca: find("ca"),
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
            .args(self.ca.iter().flat_map(|ca| ["--cacert", ca.as_str()]))
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

    /// Stops the gateway answering (SIGSTOP): connections are accepted and
    /// then nothing, as from an overloaded or cut-off endpoint.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused gateway answer again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = std::fs::read_to_string(self.dir.path().join("pids").join("rgw.pid"))
            .expect("the gateway's pid file");
        let out = super::run(Command::new("kill").arg(signal).arg(pid.trim()));
        assert!(out.status.success(), "kill {signal} radosgw: {out:?}");
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

/// One bucket of an S3 server, as a Wharf node is given it
/// (`WharfOptions::s3_storage`).
#[derive(Clone, Debug)]
pub struct S3Bucket {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub name: String,
    /// The CA of an HTTPS endpoint (`--s3-ca-file`).
    pub ca: Option<String>,
}

/// A bucket name no other test of this run has.
fn fresh_name() -> String {
    format!("wharf-{:08x}", rand::random::<u32>())
}

impl CephGateway {
    /// A new bucket of this gateway, created.
    pub fn bucket(&self) -> S3Bucket {
        let bucket = S3Bucket {
            endpoint: self.endpoint.clone(),
            access_key: self.access_key.clone(),
            secret_key: self.secret_key.clone(),
            name: fresh_name(),
            ca: self.ca.clone(),
        };
        bucket.create();
        bucket
    }
}

impl S3Bucket {
    /// A new bucket of the gateway that `WHARF_E2E_S3` describes (the line
    /// `ceph-rgw.sh start` prints): how `.ci/run` runs the engine's suites on
    /// s3 storage against one gateway.
    pub fn from_env() -> Option<S3Bucket> {
        let line = std::env::var("WHARF_E2E_S3").ok()?;
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("WHARF_E2E_S3 has no {name}: {line:?}"))
                .to_owned()
        };
        Some(S3Bucket {
            endpoint: field("endpoint"),
            access_key: field("access_key"),
            secret_key: field("secret_key"),
            name: fresh_name(),
            ca: line
                .split_whitespace()
                .find_map(|f| f.strip_prefix("ca="))
                .map(str::to_owned),
        })
    }

    /// curl signing its request (SigV4); `path` is the key, or "" for the bucket.
    pub fn curl(&self, method: &str, path: &str) -> Command {
        let mut cmd = Command::new("curl");
        cmd.args(["--silent", "--show-error", "--max-time", "60"])
            .args(["--aws-sigv4", "aws:amz:us-east-1:s3"])
            .args([
                "--user",
                &format!("{}:{}", self.access_key, self.secret_key),
            ])
            .args(["--header", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
            .args(self.ca.iter().flat_map(|ca| ["--cacert", ca.as_str()]))
            .args(["--request", method])
            .arg(format!("{}/{}{path}", self.endpoint, self.name));
        cmd
    }

    /// Creates the bucket (again is fine).
    pub fn create(&self) {
        let out = super::run(&mut self.curl("PUT", ""));
        assert!(out.status.success(), "create bucket {}: {out:?}", self.name);
    }

    /// The `--s3-*` arguments of a node using this bucket, its credentials
    /// written to `credentials` (a file in the node's directory).
    pub fn args(&self, credentials: &std::path::Path) -> Vec<String> {
        std::fs::write(
            credentials,
            format!(
                "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                self.access_key, self.secret_key
            ),
        )
        .expect("write the S3 credentials file");
        let mut args = vec![
            "--s3-endpoint".into(),
            self.endpoint.clone(),
            "--s3-bucket".into(),
            self.name.clone(),
            "--s3-path-style".into(),
            "--s3-credentials-file".into(),
            credentials.display().to_string(),
        ];
        if let Some(ca) = &self.ca {
            args.extend(["--s3-ca-file".into(), ca.clone()]);
        }
        args
    }

    /// The object at `key`, or `None` when the bucket has none there.
    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        let path = format!("/{}", encode_key(key));
        let out = super::run(
            self.curl("GET", &path)
                .args(["--write-out", "\n%{http_code}"]),
        );
        let mut body = out.stdout;
        let split = body.iter().rposition(|&b| b == b'\n')?;
        let code = String::from_utf8_lossy(&body[split + 1..]).into_owned();
        body.truncate(split);
        match code.as_str() {
            "200" => Some(body),
            "404" => None,
            other => panic!(
                "GET {key}: HTTP {other}: {}",
                String::from_utf8_lossy(&body)
            ),
        }
    }

    /// Stores `file` at `key`, as an S3 tool writing the bucket would.
    pub fn put(&self, key: &str, file: &std::path::Path) {
        let path = format!("/{}", encode_key(key));
        // Not --upload-file, which names a key ending in `/` after the file.
        let body = format!("@{}", file.display());
        let out = super::run(
            self.curl("PUT", &path)
                .args(["--fail", "--data-binary", &body]),
        );
        assert!(out.status.success(), "PUT {key}: {out:?}");
    }

    /// The headers of a HEAD of `key` (names as the gateway sends them).
    pub fn head(&self, key: &str) -> String {
        let path = format!("/{}", encode_key(key));
        let out = super::run(self.curl("HEAD", &path).args(["--fail", "--head"]));
        assert!(out.status.success(), "HEAD {key}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The header `name` (any case) of a HEAD of `key`.
    pub fn header(&self, key: &str, name: &str) -> Option<String> {
        self.head(key).lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    /// With `deny`, a bucket policy refusing every object delete; without,
    /// no policy.
    pub fn deny_deletes(&self, deny: bool) {
        let out = if deny {
            let policy = format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::{}/*"}}]}}"#,
                self.name
            );
            super::run(
                self.curl("PUT", "?policy=")
                    .args(["--fail", "--data-binary", &policy]),
            )
        } else {
            super::run(self.curl("DELETE", "?policy=").arg("--fail"))
        };
        assert!(out.status.success(), "bucket policy (deny {deny}): {out:?}");
    }

    /// Deletes the object at `key`.
    pub fn delete(&self, key: &str) {
        let path = format!("/{}", encode_key(key));
        let out = super::run(self.curl("DELETE", &path).arg("--fail"));
        assert!(out.status.success(), "DELETE {key}: {out:?}");
    }

    /// Every object's key and size, as boto3 lists them (AWS's own SDK for
    /// Python, path-style), sorted by key.
    pub fn boto3_listing(&self) -> Vec<(String, u64)> {
        let script = r#"
import sys, boto3, botocore.config
endpoint, key, secret, bucket = sys.argv[1:5]
ca = sys.argv[5] if len(sys.argv) > 5 else None
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key,
                  aws_secret_access_key=secret, region_name="us-east-1", verify=ca,
                  config=botocore.config.Config(s3={"addressing_style": "path"}))
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
    for o in page.get("Contents", []):
        print(f"{o['Size']}\t{o['Key']}")
"#;
        let mut cmd = Command::new("python3");
        cmd.arg("-c")
            .arg(script)
            .args([
                &self.endpoint,
                &self.access_key,
                &self.secret_key,
                &self.name,
            ])
            .args(self.ca.iter());
        let out = super::run(&mut cmd);
        assert!(out.status.success(), "boto3 list_objects_v2: {out:?}");
        let mut listing: Vec<(String, u64)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| {
                let (size, key) = line.split_once('\t')?;
                Some((key.to_owned(), size.parse().ok()?))
            })
            .collect();
        listing.sort();
        listing
    }

    /// Every key in the bucket, sorted.
    pub fn keys(&self) -> Vec<String> {
        let out = super::run(self.curl("GET", "?list-type=2&max-keys=1000").arg("--fail"));
        let text = String::from_utf8_lossy(&out.stdout);
        let mut keys: Vec<String> = text
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split("</Key>").next())
            .map(|k| {
                k.replace("&amp;", "&")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
            })
            .collect();
        keys.sort();
        keys
    }
}

/// `key` for a URL path: its bytes percent-encoded except the unreserved
/// ones and `/`.
fn encode_key(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
