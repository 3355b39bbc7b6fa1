//! Python's `ftplib.FTP_TLS` against a real `wharf`: every file operation a client does,
//! byte-identical content, and which Python client needs which policy
//! (see `tests/clients/wharf_client.py`).

use std::fs;

use crate::support::*;

const MIB: u64 = 1024 * 1024;

/// Runs one `ftps_batch.py` session and returns its output, failing the test on error.
fn batch(wharf: &Wharf, tls: &str, extra: &[&str], steps: &[String]) -> std::process::Output {
    let mut cmd = wharf.batch(tls, steps);
    cmd.args(extra);
    let output = run(&mut cmd);
    assert_success(
        &output,
        &format!("ftps_batch.py --tls {tls} {extra:?} {steps:?}"),
    );
    output
}

/// mkdir, upload, list, download, rename across directories, delete, rmdir — each step
/// checked on the server's disk — with one kind of Python client.
fn round_trip(wharf: &Wharf, tls: &str, extra: &[&str], size: u64) {
    let home = wharf.stored();
    let local = wharf.client_dir().join("source.bin");
    let back = wharf.client_dir().join("back.bin");
    write_random_file(&local, size);

    let out = batch(
        wharf,
        tls,
        extra,
        &[
            "mkdir docs".into(),
            format!("put {} docs/data.bin", local.display()),
            "nlst docs".into(),
            "list docs".into(),
            "mlsd docs".into(),
            "size docs/data.bin".into(),
        ],
    );
    assert!(home.is_dir("docs"), "MKD created docs in the home");
    assert_same_file(&local, &home.copy_of("docs/data.bin"));
    let names: Vec<String> = tagged(&out, "NLST")
        .into_iter()
        .map(|f| f[0].clone())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n == "data.bin" || n == "docs/data.bin"),
        "NLST docs lists data.bin: {names:?}"
    );
    let list = tagged(&out, "LIST");
    assert!(
        list.iter()
            .any(|f| f[0].ends_with(" data.bin") && f[0].contains(&size.to_string())),
        "LIST docs shows data.bin with its size {size}: {list:?}"
    );
    let mlsd = tagged(&out, "MLSD");
    assert!(
        mlsd.iter()
            .any(|f| f[0] == "data.bin" && f[1].contains(&format!("size={size}"))),
        "MLSD docs shows data.bin with size={size}: {mlsd:?}"
    );
    assert_eq!(tagged(&out, "SIZE"), vec![vec![size.to_string()]]);

    batch(
        wharf,
        tls,
        extra,
        &[
            format!("get docs/data.bin {}", back.display()),
            "rename docs/data.bin moved.bin".into(),
        ],
    );
    assert_same_file(&local, &back);
    assert!(!home.exists("docs/data.bin"), "RNFR source is gone");
    assert_same_file(&local, &home.copy_of("moved.bin"));

    batch(
        wharf,
        tls,
        extra,
        &["delete moved.bin".into(), "rmdir docs".into()],
    );
    assert!(!home.exists("moved.bin"), "DELE removed the file");
    assert!(!home.exists("docs"), "RMD removed the directory");
}

#[test]
fn ftplib_reusing_session_round_trip_of_100_mib_is_byte_identical() {
    let wharf = Wharf::start_default();
    round_trip(&wharf, "reuse", &[], 100 * MIB);
}

#[test]
fn ftplib_implicit_ftps_round_trip_is_byte_identical() {
    let wharf = Wharf::start_default();
    round_trip(&wharf, "implicit", &[], 3 * MIB + 17);
}

#[test]
fn ftplib_active_mode_round_trip_is_byte_identical() {
    let wharf = Wharf::start_default();
    round_trip(&wharf, "reuse", &["--active"], 2 * MIB + 5);
}

#[test]
fn ftplib_epsv_round_trip_is_byte_identical() {
    let wharf = Wharf::start_default();
    round_trip(&wharf, "reuse", &["--epsv"], 2 * MIB + 3);
}

/// Stock `ftplib.FTP_TLS` opens data connections with a new TLS session, so it needs the
/// relaxed policy; with it, everything works.
#[test]
fn stock_ftp_tls_round_trip_works_with_no_require_ssl_reuse() {
    let wharf = Wharf::start(WharfOptions::default().arg("--no-require-ssl-reuse"));
    round_trip(&wharf, "stock", &[], 5 * MIB + 1);
}

#[test]
fn stock_ftp_tls_data_connection_is_refused_by_default() {
    let wharf = Wharf::start_default();
    let output = run(&mut wharf.batch("stock", &["nlst".into()]));
    assert!(
        !output.status.success(),
        "stock FTP_TLS does not resume the TLS session; LIST must be refused\n{}",
        describe(&output)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("425"),
        "refused with 425\n{}",
        describe(&output)
    );
}

#[test]
fn empty_and_odd_named_files_round_trip() {
    let wharf = Wharf::start_default();
    let home = wharf.stored();
    let empty = wharf.client_dir().join("empty");
    fs::write(&empty, b"").unwrap();
    let odd = wharf.client_dir().join("odd");
    fs::write(&odd, "ünïcødé ✓\n").unwrap();
    let back_empty = wharf.client_dir().join("back-empty");
    let back_odd = wharf.client_dir().join("back-odd");
    batch(
        &wharf,
        "reuse",
        &[],
        &[
            format!("put {} empty.bin", empty.display()),
            format!("put {} ünïcødé-✓.txt", odd.display()),
            format!("get empty.bin {}", back_empty.display()),
            format!("get ünïcødé-✓.txt {}", back_odd.display()),
        ],
    );
    assert_same_file(&empty, &home.copy_of("empty.bin"));
    assert_same_file(&odd, &home.copy_of("ünïcødé-✓.txt"));
    assert_same_file(&empty, &back_empty);
    assert_same_file(&odd, &back_odd);
}
