//! `--storage s3` (issue 25) against a real S3 server: Ceph's RADOS Gateway
//! (`tests/support/ceph-rgw.sh`). Files are objects of the bucket under
//! `<prefix>/<home>/<path>`, complete before `226`; the namespace and the
//! multipart uploads' checkpoints stay in Raft, so every node serves every
//! file and resumes every upload.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cluster::{poll_until, Cluster};
use crate::support::s3::{CephGateway, S3Bucket};
use crate::support::{
    assert_same_file, assert_success, describe, free_port, run, run_for, write_random_file, Wharf,
    WharfOptions,
};

const MIB: u64 = 1 << 20;
const PREFIX: &str = "ftp";
/// The metric of objects waiting in the trash.
const TRASH: &str = "wharf_object_trash_entries ";

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

/// Three nodes on `bucket`, their keys under `PREFIX`.
fn three_nodes_on(bucket: &S3Bucket) -> Cluster {
    Cluster::start_with(
        3,
        WharfOptions::default()
            .s3_storage(bucket)
            .args(["--s3-prefix", PREFIX]),
    )
}

#[test]
fn three_nodes_keep_files_as_objects_under_their_paths() {
    let s3 = CephGateway::start();
    let bucket = s3.bucket();
    let cluster = three_nodes_on(&bucket);
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
    // Their trash entries are forgotten right after (the leader's sweep,
    // a minute or more away here, is not needed), on every node.
    for node in [one, two, three] {
        poll_until(Duration::from_secs(10), "the trash emptied", || {
            (node.metric(TRASH)? == 0).then_some(())
        });
    }
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

/// `MFMT` reaches the object as `x-amz-meta-mtime` (a copy onto itself,
/// in parts above the copy limit), and an object above `--s3-copy-max-mib`
/// is renamed a range per part (UploadPartCopy); both read back whole, so
/// the namespace recorded the copies' ETags.
#[test]
fn mfmt_sets_the_objects_mtime_and_large_objects_are_copied_in_parts() {
    let s3 = CephGateway::start();
    let bucket = s3.bucket();
    let node = Wharf::start(WharfOptions::default().s3_storage(&bucket).args([
        "--s3-prefix",
        PREFIX,
        "--s3-copy-max-mib",
        "5",
    ]));
    let dir = node.client_dir();
    let small = dir.join("small.bin");
    let large = dir.join("large.bin");
    write_random_file(&small, 100_000);
    // Two 8 MiB upload parts; three 5 MiB copy parts.
    write_random_file(&large, 13 * MIB);
    for (file, name) in [(&small, "small.bin"), (&large, "large.bin")] {
        let out = run(node.curl().arg("-T").arg(file).arg(node.explicit_url(name)));
        assert_success(&out, &format!("upload {name}"));
    }
    let etag = |name: &str| {
        let etag = bucket.header(&key(&node, name), "etag").unwrap_or_default();
        etag.trim_matches('"').to_owned()
    };
    let mtime = |name: &str| bucket.header(&key(&node, name), "x-amz-meta-mtime");
    assert!(etag("large.bin").ends_with("-2"), "uploaded in two parts");
    let out = run(&mut node.batch("reuse", &["rename large.bin moved.bin".to_owned()]));
    assert_success(&out, "RNFR/RNTO above the copy limit");
    // Copied a range per part (one CopyObject would keep the ETag), with
    // the file's time.
    assert!(
        etag("moved.bin").ends_with("-3"),
        "the moved object is not three copied parts: ETag {}",
        etag("moved.bin")
    );
    assert!(
        mtime("moved.bin").is_some(),
        "the copy has no x-amz-meta-mtime"
    );

    let steps = [
        "raw MFMT 20200102030405 small.bin",
        "raw MFMT 20210304050607 moved.bin",
        "raw MDTM small.bin",
        "raw MDTM moved.bin",
    ]
    .map(String::from);
    let out = run(&mut node.batch("reuse", &steps));
    assert_success(&out, "MFMT and MDTM");
    let replies = String::from_utf8_lossy(&out.stdout);
    for reply in ["213 20200102030405", "213 20210304050607"] {
        assert!(replies.contains(reply), "no {reply:?} in:\n{replies}");
    }
    // A copy onto itself (small) and one in parts (large).
    assert_eq!(mtime("small.bin").as_deref(), Some("1577934245"));
    assert_eq!(mtime("moved.bin").as_deref(), Some("1614834367"));
    assert_eq!(
        bucket.keys(),
        [key(&node, "moved.bin"), key(&node, "small.bin")]
    );
    assert_object(&bucket, &key(&node, "moved.bin"), &large);
    for (name, local) in [("small.bin", &small), ("moved.bin", &large)] {
        let back = dir.join(format!("back-{name}"));
        download(&node, name, &back);
        assert_same_file(local, &back);
    }
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

/// A `DELE` whose object the bucket refuses to delete for now (a bucket
/// policy denying `s3:DeleteObject`) is still committed and answered, and
/// the object goes once the bucket allows it again: the delete put it in
/// the trash, and the leader's upkeep retries it.
#[test]
fn an_object_the_bucket_would_not_delete_goes_once_it_may() {
    let s3 = CephGateway::start();
    let bucket = s3.bucket();
    // The upkeep turns every 5 s with a 5 s grace.
    let node = Wharf::start(WharfOptions::default().s3_storage(&bucket).args([
        "--s3-prefix",
        PREFIX,
        "--upload-grace",
        "5",
    ]));
    let local = node.client_dir().join("gone.bin");
    write_random_file(&local, 100_000);
    let out = run(node
        .curl()
        .arg("-T")
        .arg(&local)
        .arg(node.explicit_url("gone.bin")));
    assert_success(&out, "upload");
    let gone = key(&node, "gone.bin");
    assert!(bucket.object(&gone).is_some());

    bucket.deny_deletes(true);
    let out = run(&mut node.batch("reuse", &["delete gone.bin".to_owned(), "nlst".to_owned()]));
    assert_success(&out, "DELE while the bucket refuses deletes");
    assert!(
        !String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|line| line == "NLST\tgone.bin"),
        "the file is still listed: {}",
        describe(&out)
    );
    std::thread::sleep(Duration::from_secs(12));
    assert!(
        bucket.object(&gone).is_some(),
        "the bucket deleted the object against its policy"
    );
    assert_eq!(node.metric(TRASH), Some(1), "the object waits in the trash");
    bucket.deny_deletes(false);
    let deadline = Instant::now() + Duration::from_secs(60);
    while bucket.object(&gone).is_some() {
        assert!(
            Instant::now() < deadline,
            "the object is still in the bucket a minute after deletes were allowed again"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    poll_until(Duration::from_secs(10), "the trash emptied", || {
        (node.metric(TRASH)? == 0).then_some(())
    });
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

/// The bucket holding another object at a file's key than the one recorded
/// (written by an S3 tool, or by an upload whose node died between storing
/// the object and recording it) no longer fails every read: the file becomes
/// the bucket's object (its size with it) and is served as S3 readers see it.
/// An object deleted behind Wharf's back fails its reads with 451, and
/// nothing else.
#[test]
fn an_object_replaced_in_the_bucket_is_served_and_recorded() {
    let s3 = CephGateway::start();
    let bucket = s3.bucket();
    let node = Wharf::start(WharfOptions::default().s3_storage(&bucket));
    let dir = node.client_dir();
    let (first, other) = (dir.join("first.bin"), dir.join("other.bin"));
    write_random_file(&first, MIB);
    write_random_file(&other, 300 * 1024 + 7);
    for name in ["a.bin", "b.bin"] {
        assert_success(
            &run(node
                .curl()
                .arg("-T")
                .arg(&first)
                .arg(node.explicit_url(name))),
            &format!("upload {name}"),
        );
    }
    let empty = dir.join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    assert_success(
        &run(node
            .curl()
            .arg("-T")
            .arg(&empty)
            .arg(node.explicit_url("empty.bin"))),
        "upload empty.bin",
    );
    // Unchanged, it reads as it is and nothing is recorded.
    let filled = dir.join("filled.bin");
    let steps = [format!("get empty.bin {}", filled.display())];
    assert_success(
        &run(&mut node.batch("reuse", &steps)),
        "ftplib get empty.bin",
    );
    assert_eq!(std::fs::metadata(&filled).unwrap().len(), 0);
    assert!(!node.stderr().contains("the file is now that object"));
    bucket.put(&format!("home/{}/a.bin", node.user), &other);
    bucket.put(&format!("home/{}/empty.bin", node.user), &other);
    // A zero-byte file sends no GET: its read still notices the new object.
    assert_success(
        &run(&mut node.batch("reuse", &steps)),
        "ftplib get empty.bin",
    );
    assert_same_file(&other, &filled);
    // ftplib's RETR (no SIZE first: a client that asked SIZE before has
    // the old size, and its first download ends short).
    let back = dir.join("back.bin");
    let steps = [format!("get a.bin {}", back.display())];
    assert_success(&run(&mut node.batch("reuse", &steps)), "ftplib get");
    assert_same_file(&other, &back);
    assert_eq!(node.stored().size("a.bin"), Some(300 * 1024 + 7));
    assert!(
        node.stderr().contains("the file is now that object"),
        "no record of the replaced object in the log"
    );
    bucket.delete(&format!("home/{}/b.bin", node.user));
    let gone = run(node
        .curl()
        .arg("-o")
        .arg(dir.join("gone.bin"))
        .arg(node.explicit_url("b.bin")));
    assert!(!gone.status.success(), "{}", describe(&gone));
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("451"),
        "{}",
        describe(&gone)
    );
    std::fs::remove_file(&back).unwrap();
    download(&node, "a.bin", &back);
    assert_same_file(&other, &back);
}

/// Objects written to the bucket by an S3 tool, not through Wharf, become
/// files once `wharf storage scan` has run (on any node, with the operator's
/// own credentials): in existing and new directories, a folder marker as a
/// directory; a name the namespace has is left alone (its replaced object is
/// taken up at its next read), and a second scan imports nothing.
#[test]
fn storage_scan_records_objects_written_beside_wharf() {
    let s3 = CephGateway::start();
    let bucket = s3.bucket();
    let cluster = three_nodes_on(&bucket);
    let (one, two, three) = (cluster.node(1), cluster.node(2), cluster.node(3));
    let dir = one.client_dir();
    let (known, new, deep) = (
        dir.join("known.bin"),
        dir.join("new.bin"),
        dir.join("x.csv"),
    );
    write_random_file(&known, 200_000);
    write_random_file(&new, 3 * MIB + 1);
    write_random_file(&deep, 12_345);
    let out = run(one
        .curl()
        .arg("--ftp-create-dirs")
        .arg("-T")
        .arg(&known)
        .arg(one.explicit_url("in/known.bin")));
    assert_success(&out, "curl STOR");
    // Beside Wharf: a new file, one in new directories, a folder marker and
    // another object at the known file's key.
    bucket.put(&key(one, "in/new.bin"), &new);
    bucket.put(&key(one, "drop/deep/x.csv"), &deep);
    let marker = dir.join("marker");
    std::fs::write(&marker, b"").unwrap();
    bucket.put(&format!("{}/", key(one, "empty")), &marker);
    bucket.put(&key(one, "in/known.bin"), &new);
    let credentials = dir.join("operator.credentials");
    bucket.args(&credentials);
    let scan = |node: &crate::support::Wharf| {
        let out = node.cli(
            &[
                "storage",
                "scan",
                "--s3-credentials-file",
                &credentials.to_string_lossy(),
            ],
            None,
        );
        assert_success(&out, "wharf storage scan");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = scan(two);
    assert!(
        first.contains(
            "2 imported, 1 already known, 1 directories made from folder markers, 0 skipped"
        ),
        "{first}"
    );
    let stored = three.stored();
    assert_eq!(stored.size("in/new.bin"), Some(3 * MIB + 1));
    assert_eq!(stored.size("drop/deep/x.csv"), Some(12_345));
    for (path, local) in [("in/new.bin", &new), ("drop/deep/x.csv", &deep)] {
        let back = three.client_dir().join("back");
        download(three, path, &back);
        assert_same_file(local, &back);
    }
    let listing = run(three.curl().arg(three.explicit_url("empty/")));
    assert_success(&listing, "list the folder marker's directory");
    // The known file takes up its replaced object when read.
    let back = three.client_dir().join("known-back");
    let steps = [format!("get in/known.bin {}", back.display())];
    assert_success(&run(&mut three.batch("reuse", &steps)), "ftplib get");
    assert_same_file(&new, &back);
    let again = scan(one);
    assert!(again.contains(" 0 imported, 3 already known"), "{again}");
    // Only under a prefix; a prefix that is not a path is refused.
    let under = |prefix: &str| {
        let credentials = credentials.to_string_lossy();
        let args = [
            "storage",
            "scan",
            "--s3-credentials-file",
            &credentials,
            "--prefix",
            prefix,
        ];
        one.cli(&args, None)
    };
    let drop = under(&format!("/home/{}/drop", one.user));
    assert_success(&drop, "wharf storage scan --prefix");
    let drop = String::from_utf8_lossy(&drop.stdout);
    assert!(drop.starts_with("scanned 1 objects"), "{drop}");
    assert!(!under("drop").status.success());
}

/// Sends `file` as `name` with curl at `rate`, cut off by its client after
/// `after`; then waits until the node's log has said `outcome` `times` times.
fn cut_upload(
    node: &Wharf,
    (file, name, rate, after): (&Path, &str, &str, Duration),
    outcome: &str,
    times: usize,
) {
    let cut = run_for(
        node.curl()
            .args(["--limit-rate", rate, "-T"])
            .arg(file)
            .arg(node.explicit_url(name)),
        after,
    );
    assert!(cut.killed, "{name}: not cut\n{}", describe(&cut.output));
    crate::support::cluster::poll_until(
        Duration::from_secs(30),
        &format!("{name}: {outcome}"),
        || (node.stderr().matches(outcome).count() >= times).then_some(()),
    );
}

/// A cut small upload is finished for its vanished client with one PUT that
/// cannot be fenced through Raft, so it replaces only what the upload found:
/// nothing (`If-None-Match: *`), or the file's object (`If-Match` its ETag).
/// An object put at the key meanwhile (by the client's resumption on another
/// node; here by an S3 tool) stays.
#[test]
fn a_cut_upload_finished_late_does_not_replace_what_was_stored_meanwhile() {
    let s3 = CephGateway::start();
    let bucket = s3.bucket();
    let node = Wharf::start(WharfOptions::default().s3_storage(&bucket));
    let dir = node.client_dir();
    let (sent, there, first) = (
        dir.join("sent.bin"),
        dir.join("there.bin"),
        dir.join("first.bin"),
    );
    write_random_file(&sent, 6 * MIB);
    write_random_file(&there, 100 * 1024);
    write_random_file(&first, 50 * 1024);
    assert_success(
        &run(node
            .curl()
            .arg("-T")
            .arg(&first)
            .arg(node.explicit_url("over.bin"))),
        "the file to overwrite",
    );
    for (round, name) in ["late.bin", "over.bin"].into_iter().enumerate() {
        let key = format!("home/{}/{name}", node.user);
        bucket.put(&key, &there);
        let cut_off = (sent.as_path(), name, "1M", Duration::from_secs(2));
        cut_upload(
            &node,
            cut_off,
            "upload cut off; a newer upload has the file",
            round + 1,
        );
        assert!(
            bucket.object(&key).as_deref() == Some(&std::fs::read(&there).unwrap()[..]),
            "{name}: the object stored meanwhile was replaced"
        );
    }
    assert_eq!(node.stored().size("late.bin"), None);
    // The overwritten file takes up the object stored meanwhile when read.
    let back = dir.join("back.bin");
    let steps = [format!("get over.bin {}", back.display())];
    assert_success(&run(&mut node.batch("reuse", &steps)), "ftplib get");
    assert_same_file(&there, &back);
}

/// A cut upload is finished on its client's behalf with every byte
/// received, as on the other storages: a small one (one PUT) and a large one
/// (its multipart upload completed with the tail as its last part); `curl -C -`
/// then sends the rest, byte-identical.
#[test]
fn a_cut_upload_keeps_what_was_received_and_curl_sends_the_rest() {
    let s3 = CephGateway::start();
    let bucket = s3.bucket();
    let node = Wharf::start(WharfOptions::default().s3_storage(&bucket));
    let dir = node.client_dir();
    let old = dir.join("old.bin");
    let new = dir.join("new.bin");
    write_random_file(&old, 3 * MIB);
    write_random_file(&new, 40 * MIB + 5);
    assert_success(
        &run(node
            .curl()
            .arg("-T")
            .arg(&old)
            .arg(node.explicit_url("f.bin"))),
        "the old file",
    );
    // About 6 MiB (below a part), then about 18 MiB (two parts and a tail).
    for (round, (name, rate)) in [("f.bin", "2M"), ("fresh.bin", "6M")]
        .into_iter()
        .enumerate()
    {
        let cut_off = (new.as_path(), name, rate, Duration::from_secs(3));
        cut_upload(&node, cut_off, "what was received is kept", round + 1);
        let stored = node.stored();
        let kept = stored.size(name).expect("SIZE after the cut");
        assert!(kept > MIB && kept < 40 * MIB, "{name}: {kept} bytes kept");
        let head = bucket
            .object(&format!("home/{}/{name}", node.user))
            .expect("the cut file's object");
        assert_eq!(head.len() as u64, kept);
        assert!(
            head == std::fs::read(&new).unwrap()[..kept as usize],
            "{name}: not a prefix"
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
}

/// The receiving node is killed half-way through a 200 MiB upload: its
/// checkpointed parts are durable, `SIZE` on another node shows their end,
/// and `curl -C -` (then `lftp put -c`) there continues the same multipart
/// upload to a byte-identical object.
#[test]
fn an_upload_whose_node_is_killed_resumes_its_multipart_upload_on_another() {
    use crate::e2e_storage::{download_sha, size_on, slow_upload};
    let s3 = CephGateway::start();
    let bucket = s3.bucket();
    let mut cluster = Cluster::start_with(3, WharfOptions::default().s3_storage(&bucket));
    let local = cluster.node(1).client_dir().join("resume.bin");
    write_random_file(&local, 200 * MIB + 777);
    let sent = crate::support::sha256_file(&local);
    const PART: u64 = 8 * MIB;
    for (round, client) in ["curl", "lftp"].into_iter().enumerate() {
        let name = format!("resume-{client}.bin");
        let (victim, rescuer, witness) = if round == 0 { (1, 2, 3) } else { (2, 3, 1) };
        let mut upload = slow_upload(cluster.node(victim), &local, &name);
        let durable =
            crate::support::cluster::poll_until(Duration::from_secs(60), "durable parts", || {
                size_on(cluster.node(witness), &name).filter(|&s| s >= 3 * PART)
            });
        cluster.node_mut(victim).kill9();
        let _ = crate::support::process::wait_or_kill(&mut upload, Duration::from_secs(30));
        let gap = size_on(cluster.node(witness), &name).expect("SIZE after the kill");
        assert!(
            gap >= durable && gap.is_multiple_of(PART) && gap < 200 * MIB,
            "durable offset {gap} (was {durable})"
        );
        let key = format!("home/{}/{name}", cluster.node(1).user);
        assert!(
            bucket.object(&key).is_none(),
            "no object before the upload ends"
        );

        let rescue = cluster.node(rescuer);
        let out = match client {
            "curl" => run(rescue
                .curl()
                .args(["-C", "-", "-T"])
                .arg(&local)
                .arg(rescue.explicit_url(&name))),
            _ => run(&mut rescue.lftp(&[&format!("put -c {} -o {name}", local.display())])),
        };
        assert_success(&out, &format!("{client} resumes on node {rescuer}"));
        assert!(
            rescue
                .stderr()
                .contains("resuming an upload's multipart upload"),
            "node {rescuer} did not adopt the upload\n{}",
            rescue.logs()
        );
        assert_eq!(download_sha(cluster.node(witness), &name), sent, "{client}");
        assert_object(&bucket, &key, &local);
        cluster.node_mut(victim).restart();
    }
}

/// The endpoint stops answering in the middle of a multipart upload: the
/// client gets 451, the parts checkpointed before stay, and once the endpoint
/// is back `curl -C -` continues the same multipart upload.
#[test]
fn an_upload_cut_by_an_endpoint_outage_resumes_once_it_returns() {
    let s3 = CephGateway::start();
    let bucket = s3.bucket();
    let node = Wharf::start(WharfOptions::default().s3_storage(&bucket));
    let local = node.client_dir().join("outage.bin");
    write_random_file(&local, 60 * MIB + 3);
    let mut upload = crate::e2e_storage::slow_upload(&node, &local, "outage.bin");
    crate::support::cluster::poll_until(Duration::from_secs(60), "durable parts", || {
        crate::e2e_storage::size_on(&node, "outage.bin").filter(|&s| s >= 16 * MIB)
    });
    s3.pause();
    let (status, killed) =
        crate::support::process::wait_or_kill(&mut upload, Duration::from_secs(90));
    s3.resume();
    assert!(
        !killed && !status.success(),
        "the upload should fail: {status:?}"
    );
    let durable = crate::e2e_storage::size_on(&node, "outage.bin").expect("SIZE");
    assert!(
        durable >= 16 * MIB && durable.is_multiple_of(8 * MIB),
        "{durable}"
    );
    assert_success(
        &run(node
            .curl()
            .args(["-C", "-", "-T"])
            .arg(&local)
            .arg(node.explicit_url("outage.bin"))),
        "curl -C - once the endpoint is back",
    );
    assert!(
        node.stderr()
            .contains("resuming an upload's multipart upload"),
        "{}",
        node.logs()
    );
    assert_object(&bucket, &format!("home/{}/outage.bin", node.user), &local);
}

/// An upload nobody resumes — its node killed and back, no client coming
/// back — is finished by the leader once `--upload-grace` has passed without
/// a checkpoint: its multipart upload is completed with the durable parts, so
/// the file keeps its durable prefix, as on cluster storage. (The client sends
/// three parts, then a byte at a time: every part that reached the store is
/// checkpointed when the node dies. Ceph refuses to complete an upload with
/// fewer parts than it holds; the leader then discards it.)
#[test]
fn an_abandoned_upload_is_finished_by_the_leader_with_its_durable_parts() {
    let s3 = CephGateway::start();
    let bucket = s3.bucket();
    let mut node = Wharf::start(
        WharfOptions::default()
            .s3_storage(&bucket)
            .args(["--upload-grace", "5"]),
    );
    let local = node.client_dir().join("abandoned.bin");
    write_random_file(&local, 40 * MIB);
    let three_parts = 24 * MIB;
    let mut client = node
        .python("partial_upload.py")
        .args(["--bytes", &three_parts.to_string(), "--trickle", "60"])
        .arg(&local)
        .arg("abandoned.bin")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start partial_upload.py");
    crate::support::cluster::poll_until(Duration::from_secs(60), "three durable parts", || {
        (crate::e2e_storage::size_on(&node, "abandoned.bin") == Some(three_parts)).then_some(())
    });
    node.kill9();
    let _ = client.kill();
    let _ = client.wait();
    node.restart();
    let key = format!("home/{}/abandoned.bin", node.user);
    let kept = crate::support::cluster::poll_until(
        Duration::from_secs(60),
        "the abandoned upload finished",
        || bucket.object(&key),
    );
    assert_eq!(kept.len() as u64, three_parts);
    assert!(
        kept == std::fs::read(&local).unwrap()[..three_parts as usize],
        "not the file's head"
    );
    assert_eq!(
        crate::e2e_storage::size_on(&node, "abandoned.bin"),
        Some(three_parts)
    );
    assert!(
        node.stderr().contains("finished an abandoned upload"),
        "{}",
        node.logs()
    );
}

#[test]
fn an_upload_ended_without_close_notify_does_not_replace_a_newer_object() {
    let s3 = CephGateway::start();
    let bucket = s3.bucket();
    let node = Wharf::start(
        WharfOptions::default()
            .s3_storage(&bucket)
            .args(["--s3-prefix", PREFIX]),
    );
    crate::e2e_storage::an_upload_ended_without_close_notify_does_not_replace_a_newer_file(&node);
    assert_object(
        &bucket,
        &key(&node, "late.bin"),
        &node.client_dir().join("whole.bin"),
    );
}
