//! The S3 server the storage suites run against (issue 25): Ceph's RADOS
//! Gateway, started from Debian's packages by `tests/support/ceph-rgw.sh`.
//! This checks the harness itself — signed requests, objects byte for byte,
//! ranged reads, refused credentials — so a storage test failing will mean
//! Wharf, not the gateway.

use crate::support::s3::CephGateway;
use crate::support::{run, sha256_bytes};

fn body(out: &std::process::Output) -> Vec<u8> {
    out.stdout.clone()
}

#[test]
fn the_gateway_stores_objects_reads_ranges_and_refuses_strangers() {
    let s3 = CephGateway::start();
    let made = run(s3.curl("PUT", "/harness").arg("--fail"));
    assert!(
        made.status.success(),
        "create bucket: {made:?}\n{}",
        s3.log()
    );

    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &data).unwrap();
    let put = run(s3
        .curl("PUT", "/harness/in/a.bin")
        .arg("--fail")
        .arg("--upload-file")
        .arg(file.path()));
    assert!(put.status.success(), "put: {put:?}");

    let got = run(s3.curl("GET", "/harness/in/a.bin").arg("--fail"));
    assert_eq!(sha256_bytes(&body(&got)), sha256_bytes(&data));
    let range = run(s3.curl("GET", "/harness/in/a.bin").args([
        "--fail",
        "--header",
        "Range: bytes=1000-1999",
    ]));
    assert_eq!(body(&range), data[1000..2000]);

    let missing = run(s3.curl("HEAD", "/harness/in/none").args([
        "--head",
        "--output",
        "/dev/null",
        "--write-out",
        "%{http_code}",
    ]));
    assert_eq!(String::from_utf8_lossy(&missing.stdout), "404");

    let stranger = run(s3
        .curl_signed(&s3.access_key, "not-the-secret", "GET", "/harness/in/a.bin")
        .args(["--output", "/dev/null", "--write-out", "%{http_code}"]));
    assert_eq!(String::from_utf8_lossy(&stranger.stdout), "403");
}
