//! Transfers cut half-way and resumed: uploads with `curl -C -` and lftp `put -c`
//! (SIZE + APPE / REST + STOR), downloads with `curl -C -` and lftp `get -c`
//! (REST + RETR). The result must be byte-identical to the source. On cluster storage
//! a cut upload keeps whole chunks (the durable offset), still a prefix of the source.

use std::fs::{self, File};
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use crate::support::*;

const MIB: u64 = 1024 * 1024;
const SIZE: u64 = 24 * MIB + 4321;

/// SHA-256 of the first `len` bytes of `path`.
fn sha256_prefix(path: &Path, len: u64) -> String {
    let mut bytes = Vec::new();
    File::open(path)
        .unwrap()
        .take(len)
        .read_to_end(&mut bytes)
        .unwrap();
    assert_eq!(bytes.len() as u64, len);
    sha256_bytes(&bytes)
}

/// Asserts `partial` is a strict, non-empty prefix of `full`; returns its length.
fn assert_strict_prefix(full: &Path, partial: &Path) -> u64 {
    let len = fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
    let total = fs::metadata(full).unwrap().len();
    assert!(
        len > 0 && len < total,
        "the cut left {len} of {total} bytes in {}; the test needs a partial file",
        partial.display()
    );
    assert_eq!(
        sha256_prefix(full, len),
        sha256_file(partial),
        "the partial file is not a prefix of the source"
    );
    len
}

/// Starts a rate-limited curl upload and kills it after a few seconds.
fn cut_upload_with_curl(wharf: &Wharf, local: &Path, remote: &str) -> u64 {
    let local_arg = local.display().to_string();
    let url = wharf.explicit_url(remote);
    let outcome = run_for(
        wharf
            .curl()
            .args(["--limit-rate", "2M", "-T", &local_arg, &url]),
        Duration::from_secs(4),
    );
    assert!(
        outcome.killed,
        "the limited upload should still be running when cut\n{}",
        describe(&outcome.output)
    );
    let stored = wharf.stored();
    stored.wait_for_stable_size(remote, Duration::from_secs(1), Duration::from_secs(20));
    assert_strict_prefix(local, &stored.copy_of(remote))
}

/// Starts a rate-limited curl download and kills it after a few seconds.
fn cut_download_with_curl(wharf: &Wharf, remote: &str, local: &Path) -> u64 {
    let local_arg = local.display().to_string();
    let url = wharf.explicit_url(remote);
    let outcome = run_for(
        wharf
            .curl()
            .args(["--limit-rate", "2M", "-o", &local_arg, &url]),
        Duration::from_secs(4),
    );
    assert!(
        outcome.killed,
        "the limited download should still be running when cut\n{}",
        describe(&outcome.output)
    );
    assert_strict_prefix(&wharf.stored().copy_of(remote), local)
}

#[test]
fn curl_resumes_a_cut_upload_to_a_byte_identical_file() {
    let wharf = Wharf::start_default();
    let local = wharf.client_dir().join("upload.bin");
    write_random_file(&local, SIZE);
    cut_upload_with_curl(&wharf, &local, "upload.bin");

    let local_arg = local.display().to_string();
    let output = run(wharf.curl().args([
        "-C",
        "-",
        "-T",
        &local_arg,
        &wharf.explicit_url("upload.bin"),
    ]));
    assert_success(&output, "curl -C - upload");
    assert_same_file(&local, &wharf.stored().copy_of("upload.bin"));
}

#[test]
fn lftp_put_c_resumes_a_cut_upload_to_a_byte_identical_file() {
    let wharf = Wharf::start_default();
    let local = wharf.client_dir().join("upload.bin");
    write_random_file(&local, SIZE);
    cut_upload_with_curl(&wharf, &local, "upload.bin");

    let put = format!("put -c {} -o upload.bin", local.display());
    let output = run(&mut wharf.lftp(&[&put]));
    assert_success(&output, "lftp put -c");
    assert_same_file(&local, &wharf.stored().copy_of("upload.bin"));
}

#[test]
fn curl_resumes_an_upload_cut_by_a_network_failure() {
    let wharf = Wharf::start_default();
    let local = wharf.client_dir().join("dropped.bin");
    write_random_file(&local, 8 * MIB + 99);
    let half = (8 * MIB / 2).to_string();
    let local_arg = local.display().to_string();
    let mut cmd = wharf.python("partial_upload.py");
    cmd.args(["--bytes", &half, &local_arg, "dropped.bin"]);
    assert_success(&run(&mut cmd), "partial_upload.py");
    let stored = wharf.stored();
    stored.wait_for_stable_size(
        "dropped.bin",
        Duration::from_secs(1),
        Duration::from_secs(20),
    );
    let kept = assert_strict_prefix(&local, &stored.copy_of("dropped.bin"));
    assert!(kept <= 8 * MIB / 2, "no more than was sent: {kept}");

    let output = run(wharf.curl().args([
        "-C",
        "-",
        "-T",
        &local_arg,
        &wharf.explicit_url("dropped.bin"),
    ]));
    assert_success(&output, "curl -C - upload after a cut");
    assert_same_file(&local, &stored.copy_of("dropped.bin"));
}

#[test]
fn curl_resumes_a_cut_download_to_a_byte_identical_file() {
    let wharf = Wharf::start_default();
    let remote = wharf.client_dir().join("source.bin");
    write_random_file(&remote, SIZE);
    wharf.stored().put("download.bin", &remote);
    let local = wharf.client_dir().join("download.bin");
    cut_download_with_curl(&wharf, "download.bin", &local);

    let local_arg = local.display().to_string();
    let output = run(wharf.curl().args([
        "-C",
        "-",
        "-o",
        &local_arg,
        &wharf.explicit_url("download.bin"),
    ]));
    assert_success(&output, "curl -C - download");
    assert_same_file(&remote, &local);
}

#[test]
fn lftp_get_c_resumes_a_cut_download_to_a_byte_identical_file() {
    let wharf = Wharf::start_default();
    let remote = wharf.client_dir().join("source.bin");
    write_random_file(&remote, SIZE);
    wharf.stored().put("download.bin", &remote);
    let local = wharf.client_dir().join("download.bin");
    cut_download_with_curl(&wharf, "download.bin", &local);

    let get = format!("get -c download.bin -o {}", local.display());
    let output = run(&mut wharf.lftp(&[&get]));
    assert_success(&output, "lftp get -c");
    assert_same_file(&remote, &local);
}
