//! `--storage s3` (issue 25, stage 1) against a real S3 server: Ceph's RADOS
//! Gateway (`tests/support/ceph-rgw.sh`). Files are objects of the bucket
//! under `<prefix>/<home>/<path>`, written whole before `226`; the namespace
//! stays in Raft, so every node serves every file.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cluster::Cluster;
use crate::support::s3::{CephGateway, S3Bucket};
use crate::support::{
    assert_same_file, assert_success, describe, free_port, run, run_for, write_random_file, Wharf,
    WharfOptions,
};

const MIB: u64 = 1 << 20;
const PREFIX: &str = "ftp";

/// The object key of the first account's `path`.
fn key(wharf: &Wharf, path: &str) -> String {
    format!("{PREFIX}/home/{}/{path}", wharf.user)
}

fn assert_object(bucket: &S3Bucket, key: &str, local: &Path) {
    let object = bucket
        .object(key)
        .unwrap_or_else(|| panic!("no object {key}; the bucket has {:?}", bucket.keys()));
    assert!(
        object == std::fs::read(local).unwrap(),
        "object {key} differs from {}",
        local.display()
    );
}

fn download(wharf: &Wharf, path: &str, to: &Path) {
    let out = run(wharf.curl().arg("-o").arg(to).arg(wharf.explicit_url(path)));
    assert_success(&out, &format!("download {path}"));
}

#[test]
fn three_nodes_keep_files_as_objects_under_their_paths() {
    let s3 = CephGateway::start();
    let bucket = s3.bucket();
    let cluster = Cluster::start_with(
        3,
        WharfOptions::default()
            .s3_storage(&bucket)
            .args(["--s3-prefix", PREFIX]),
    );
    let (one, two, three) = (cluster.node(1), cluster.node(2), cluster.node(3));
    let dir = one.client_dir();
    let small = dir.join("small.bin");
    let large = dir.join("large.bin");
    let third = dir.join("third.bin");
    write_random_file(&small, 100_000);
    // Three parts of 8 MiB and a last one: a multipart upload.
    write_random_file(&large, 26 * MIB + 12_345);
    write_random_file(&third, 3 * MIB);

    // curl on node 1, lftp on node 2, ftplib on node 3.
    let out = run(one
        .curl()
        .arg("--ftp-create-dirs")
        .arg("-T")
        .arg(&small)
        .arg(one.explicit_url("in/small.bin")));
    assert_success(&out, "curl STOR");
    let put = format!("put {} -o in/large.bin", large.display());
    assert_success(&run(&mut two.lftp(&[&put])), "lftp put");
    let out = run(&mut three.batch("reuse", &[format!("put {} in/third.bin", third.display())]));
    assert_success(&out, "ftplib STOR");

    // Each readable from another node and from the bucket, byte for byte.
    for (node, name, local) in [
        (three, "small.bin", &small),
        (one, "large.bin", &large),
        (two, "third.bin", &third),
    ] {
        let back = dir.join(format!("back-{name}"));
        download(node, &format!("in/{name}"), &back);
        assert_same_file(local, &back);
        assert_object(&bucket, &key(one, &format!("in/{name}")), local);
    }
    // A download from an offset (REST) streams the object's tail.
    let out = run(one
        .curl()
        .args(["-C", "1000000"])
        .arg(one.explicit_url("in/large.bin")));
    assert_success(&out, "curl -C 1000000");
    assert!(out.stdout == std::fs::read(&large).unwrap()[1_000_000..]);

    // Overwrite: the object is replaced.
    let newer = dir.join("newer.bin");
    write_random_file(&newer, 54_321);
    let out = run(two
        .curl()
        .arg("-T")
        .arg(&newer)
        .arg(two.explicit_url("in/small.bin")));
    assert_success(&out, "overwrite");
    assert_object(&bucket, &key(one, "in/small.bin"), &newer);

    // Resume onto a complete file (curl -C -): the head is kept from the
    // bucket, the rest appended.
    let head = dir.join("head.bin");
    std::fs::write(&head, &std::fs::read(&third).unwrap()[..1_000_000]).unwrap();
    assert_success(
        &run(one
            .curl()
            .arg("-T")
            .arg(&head)
            .arg(one.explicit_url("in/resumed.bin"))),
        "upload the head",
    );
    assert_success(
        &run(three
            .curl()
            .args(["-C", "-", "-T"])
            .arg(&third)
            .arg(three.explicit_url("in/resumed.bin"))),
        "curl -C - onto the head",
    );
    assert_object(&bucket, &key(one, "in/resumed.bin"), &third);

    // A directory rename moves every object under it.
    let out = run(&mut three.batch("reuse", &["rename in out".to_owned()]));
    assert_success(&out, "RNFR/RNTO of a directory");
    let expected: Vec<String> = ["large.bin", "resumed.bin", "small.bin", "third.bin"]
        .iter()
        .map(|name| key(one, &format!("out/{name}")))
        .collect();
    assert_eq!(bucket.keys(), expected);
    assert_object(&bucket, &key(one, "out/large.bin"), &large);
    let back = dir.join("moved.bin");
    download(two, "out/large.bin", &back);
    assert_same_file(&large, &back);

    // A file rename, then deletes: the objects go with the files.
    let out = run(&mut one.batch(
        "reuse",
        &[
            "rename out/third.bin out/renamed.bin".to_owned(),
            "delete out/large.bin".to_owned(),
            "delete out/resumed.bin".to_owned(),
        ],
    ));
    assert_success(&out, "rename and delete");
    assert_eq!(
        bucket.keys(),
        [key(one, "out/renamed.bin"), key(one, "out/small.bin")]
    );
    assert_object(&bucket, &key(one, "out/renamed.bin"), &third);
    assert!(!cluster.node(2).stored().exists("out/large.bin"));
    // What AWS's SDK sees in the bucket: the same keys, the files' sizes.
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    assert_eq!(
        bucket.boto3_listing(),
        [
            (key(one, "out/renamed.bin"), size(&third)),
            (key(one, "out/small.bin"), size(&newer)),
        ]
    );
}

#[test]
fn a_quota_refuses_the_upload_that_would_pass_it_and_stores_nothing() {
    let s3 = CephGateway::start();
    let bucket = s3.bucket();
    let node = Wharf::start(WharfOptions::default().s3_storage(&bucket));
    let out = node.cli(
        &[
            "user",
            "add",
            "carol",
            "--password-stdin",
            "--quota-bytes",
            &(10 * MIB).to_string(),
        ],
        Some("carol-Secret-1\n"),
    );
    assert_success(&out, "wharf user add --quota-bytes");
    let local = node.client_dir().join("six.bin");
    write_random_file(&local, 6 * MIB);
    let put = |name: &str| {
        run(node
            .curl_as("carol", "carol-Secret-1")
            .arg("-T")
            .arg(&local)
            .arg(node.explicit_url(name)))
    };
    assert_success(&put("one.bin"), "first upload within the quota");
    let refused = put("two.bin");
    // curl turns a 552 reply into exit code 70.
    assert_eq!(refused.status.code(), Some(70), "{}", describe(&refused));
    assert_eq!(bucket.keys(), ["home/carol/one.bin"]);
    // Overwriting within the quota is fine.
    assert_success(&put("one.bin"), "overwrite within the quota");
}

/// Starts `wharf serve` on `bucket` expecting it to stop by itself at
/// start-up; returns what it printed on stderr.
fn start_fails(dir: &Path, name: &str, bucket: &S3Bucket) -> String {
    let data = dir.join(name);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wharf"));
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .args(["--implicit-listen", "off", "--http-listen", "off"])
        .arg("--cluster-listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .args(["--storage", "s3"])
        .args(bucket.args(&dir.join(format!("{name}.credentials"))))
        .env("RUST_BACKTRACE", "0")
        .env_remove("AWS_ACCESS_KEY_ID")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn wharf");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{name}: the node is still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "{name}: exited {status}:\n{stderr}");
    stderr
}

/// A node given a bucket that does not exist, or credentials S3 refuses,
/// stops at start-up with a message that names the problem.
#[test]
fn start_up_stops_on_a_missing_bucket_or_refused_credentials() {
    let s3 = CephGateway::start();
    let bucket = s3.bucket();
    let dir = tempfile::tempdir().unwrap();
    let serve = |name: &str, bucket: &S3Bucket| start_fails(dir.path(), name, bucket);
    let missing = S3Bucket {
        name: "no-such-bucket".into(),
        ..bucket.clone()
    };
    let stderr = serve("missing", &missing);
    assert!(
        stderr.contains("bucket no-such-bucket does not exist at"),
        "{stderr}"
    );
    let refused = S3Bucket {
        secret_key: "not-the-secret".into(),
        ..bucket.clone()
    };
    let stderr = serve("refused", &refused);
    assert!(
        stderr.contains("refused the credentials (access key …"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-secret"), "{stderr}");
}

/// An endpoint that stops answering fails uploads and downloads with `451`
/// within the bound (not the client's timeout), commits nothing, and the
/// node serves again once it answers.
#[test]
fn an_endpoint_that_stops_answering_gets_451_and_nothing_changes() {
    let s3 = CephGateway::start();
    let bucket = s3.bucket();
    let node = Wharf::start(WharfOptions::default().s3_storage(&bucket));
    let dir = node.client_dir();
    let first = dir.join("first.bin");
    write_random_file(&first, 200_000);
    assert_success(
        &run(node
            .curl()
            .arg("-T")
            .arg(&first)
            .arg(node.explicit_url("first.bin"))),
        "upload before the outage",
    );

    s3.pause();
    let started = Instant::now();
    let refused = run(node
        .curl()
        .arg("-T")
        .arg(&first)
        .arg(node.explicit_url("during.bin")));
    let waited = started.elapsed();
    s3.resume();
    // curl: "server did not report OK, got 451".
    assert_eq!(refused.status.code(), Some(18), "{}", describe(&refused));
    assert!(waited < Duration::from_secs(50), "451 after {waited:?}");
    assert!(
        node.stderr().contains("object storage: storing"),
        "{}",
        node.logs()
    );
    assert!(!node.stored().exists("during.bin"));

    let back = dir.join("back.bin");
    download(&node, "first.bin", &back);
    assert_same_file(&first, &back);
    assert_success(
        &run(node
            .curl()
            .arg("-T")
            .arg(&first)
            .arg(node.explicit_url("after.bin"))),
        "upload after the outage",
    );
    assert_object(&bucket, &format!("home/{}/after.bin", node.user), &first);
}

/// An HTTPS endpoint whose certificate comes from a private CA: trusted
/// through `--s3-ca-file`; without it the node stops at start-up saying so.
#[test]
fn an_https_endpoint_is_trusted_through_its_ca_file_and_refused_without() {
    let s3 = CephGateway::start_tls();
    let bucket = s3.bucket();
    let node = Wharf::start(WharfOptions::default().s3_storage(&bucket));
    let dir = node.client_dir();
    let local = dir.join("over-tls.bin");
    write_random_file(&local, 9 * MIB + 7);
    assert_success(
        &run(node
            .curl()
            .arg("-T")
            .arg(&local)
            .arg(node.explicit_url("over-tls.bin"))),
        "upload over an HTTPS endpoint",
    );
    assert_object(&bucket, &format!("home/{}/over-tls.bin", node.user), &local);
    let back = dir.join("back.bin");
    download(&node, "over-tls.bin", &back);
    assert_same_file(&local, &back);

    let untrusted = S3Bucket {
        ca: None,
        ..bucket.clone()
    };
    let stderr = start_fails(&dir, "untrusted", &untrusted);
    assert!(
        stderr.contains("TLS certificate is not trusted (give its CA with --s3-ca-file)"),
        "{stderr}"
    );
}

/// Nothing of a cut upload is durable on s3 yet (stage 1), so a cut leaves
/// the file empty, not the file it was replacing: a client resuming from
/// `SIZE` (`curl -C -`) then sends the whole file again, and never appends
/// the new file's tail to the old one's head.
#[test]
fn a_cut_upload_leaves_an_empty_file_that_curl_resumes_whole() {
    let s3 = CephGateway::start();
    let bucket = s3.bucket();
    let node = Wharf::start(WharfOptions::default().s3_storage(&bucket));
    let dir = node.client_dir();
    let old = dir.join("old.bin");
    let new = dir.join("new.bin");
    write_random_file(&old, 3 * MIB);
    write_random_file(&new, 12 * MIB + 5);
    assert_success(
        &run(node
            .curl()
            .arg("-T")
            .arg(&old)
            .arg(node.explicit_url("f.bin"))),
        "the old file",
    );
    for name in ["f.bin", "fresh.bin"] {
        let cut = run_for(
            node.curl()
                .args(["--limit-rate", "2M", "-T"])
                .arg(&new)
                .arg(node.explicit_url(name)),
            Duration::from_secs(3),
        );
        assert!(cut.killed, "{name}: not cut\n{}", describe(&cut.output));
        let stored = node.stored();
        crate::support::cluster::poll_until(
            Duration::from_secs(20),
            &format!("{name} left empty by the cut"),
            || (stored.size(name) == Some(0)).then_some(()),
        );
        assert_success(
            &run(node
                .curl()
                .args(["-C", "-", "-T"])
                .arg(&new)
                .arg(node.explicit_url(name))),
            &format!("curl -C - {name}"),
        );
        let back = dir.join(format!("back-{name}"));
        download(&node, name, &back);
        assert_same_file(&new, &back);
        assert_object(&bucket, &format!("home/{}/{name}", node.user), &new);
    }
    assert!(
        node.stderr().contains("the file is left empty"),
        "{}",
        node.logs()
    );
}
