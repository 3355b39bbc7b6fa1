//! curl (OpenSSL) against a real `wharf`: explicit FTPS with `--ssl-reqd ftp://…` and
//! implicit FTPS with `ftps://…`. curl resumes the control TLS session on data
//! connections, so the default policy applies unchanged.

use std::fs;

use crate::support::*;

const MIB: u64 = 1024 * 1024;

fn curl_ok(wharf: &Wharf, args: &[&str], what: &str) -> String {
    let output = run(wharf.curl().args(args));
    assert_success(&output, what);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn curl_explicit_upload_download_of_100_mib_is_byte_identical() {
    let wharf = Wharf::start_default();
    let home = wharf.stored();
    let local = wharf.client_dir().join("big.bin");
    let back = wharf.client_dir().join("back.bin");
    write_random_file(&local, 100 * MIB);
    let local_arg = local.display().to_string();
    let back_arg = back.display().to_string();

    let url = wharf.explicit_url("incoming/big.bin");
    curl_ok(
        &wharf,
        &["--ftp-create-dirs", "-T", &local_arg, &url],
        "curl upload",
    );
    assert!(home.is_dir("incoming"), "--ftp-create-dirs made MKD");
    assert_same_file(&local, &home.copy_of("incoming/big.bin"));

    curl_ok(&wharf, &["-o", &back_arg, &url], "curl download");
    assert_same_file(&local, &back);
}

#[test]
fn curl_implicit_upload_download_is_byte_identical() {
    let wharf = Wharf::start_default();
    let home = wharf.stored();
    let local = wharf.client_dir().join("implicit.bin");
    let back = wharf.client_dir().join("implicit-back.bin");
    write_random_file(&local, 16 * MIB + 7);
    let local_arg = local.display().to_string();
    let back_arg = back.display().to_string();

    let url = wharf.implicit_url("implicit.bin");
    curl_ok(&wharf, &["-T", &local_arg, &url], "curl ftps:// upload");
    assert_same_file(&local, &home.copy_of("implicit.bin"));
    curl_ok(&wharf, &["-o", &back_arg, &url], "curl ftps:// download");
    assert_same_file(&local, &back);
}

#[test]
fn curl_lists_renames_deletes_makes_and_removes_directories() {
    let wharf = Wharf::start_default();
    let home = wharf.stored();
    let local = wharf.client_dir().join("report.csv");
    fs::write(&local, "id,value\n".repeat(500)).unwrap();
    let size = fs::metadata(&local).unwrap().len();
    let local_arg = local.display().to_string();
    let root = wharf.explicit_url("");

    curl_ok(&wharf, &["-Q", "MKD reports", &root], "curl MKD");
    assert!(home.is_dir("reports"), "MKD through curl -Q");

    let url = wharf.explicit_url("reports/report.csv");
    curl_ok(&wharf, &["-T", &local_arg, &url], "curl upload");
    assert_same_file(&local, &home.copy_of("reports/report.csv"));

    let list = curl_ok(&wharf, &[&wharf.explicit_url("reports/")], "curl LIST");
    assert!(
        list.lines()
            .any(|l| l.ends_with(" report.csv") && l.contains(&size.to_string())),
        "LIST shows report.csv with size {size}:\n{list}"
    );
    let names = curl_ok(
        &wharf,
        &["--list-only", &wharf.explicit_url("reports/")],
        "curl NLST",
    );
    assert_eq!(names.lines().collect::<Vec<_>>(), vec!["report.csv"]);

    let renamed = curl_ok(
        &wharf,
        &[
            "-Q",
            "RNFR reports/report.csv",
            "-Q",
            "RNTO final.csv",
            "--list-only",
            &root,
        ],
        "curl RNFR/RNTO",
    );
    assert!(renamed.lines().any(|l| l == "final.csv"), "NLST: {renamed}");
    assert!(!home.exists("reports/report.csv"));
    assert_same_file(&local, &home.copy_of("final.csv"));

    curl_ok(
        &wharf,
        &[
            "-Q",
            "DELE final.csv",
            "-Q",
            "RMD reports",
            "--list-only",
            &root,
        ],
        "curl DELE + RMD",
    );
    assert!(!home.exists("final.csv"), "DELE through curl -Q");
    assert!(!home.exists("reports"), "RMD through curl -Q");
}

#[test]
fn curl_with_pasv_instead_of_epsv_transfers() {
    let wharf = Wharf::start_default();
    let home = wharf.stored();
    let local = wharf.client_dir().join("pasv.bin");
    let back = wharf.client_dir().join("pasv-back.bin");
    write_random_file(&local, MIB + 1);
    let (local_arg, back_arg) = (local.display().to_string(), back.display().to_string());
    let url = wharf.implicit_url("pasv.bin");
    curl_ok(
        &wharf,
        &["--disable-epsv", "-T", &local_arg, &url],
        "curl PASV upload",
    );
    curl_ok(
        &wharf,
        &["--disable-epsv", "-o", &back_arg, &url],
        "curl PASV download",
    );
    assert_same_file(&local, &home.copy_of("pasv.bin"));
    assert_same_file(&local, &back);
}

// Active mode (PORT/EPRT) is exercised with ftplib, not curl: curl 7.88's active-mode
// FTPS fails on the client side after accepting the data connection ("sa_addr
// inet_ntop() failed with errno 97") and then sends the data without TLS.

#[test]
fn curl_without_ssl_reqd_is_refused_at_login() {
    let wharf = Wharf::start_default();
    // Plain FTP: curl sends USER without AUTH TLS; the server must refuse the login.
    let output = run(std::process::Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "30", "--user"])
        .arg(format!("{}:{}", wharf.user, wharf.password))
        .arg(wharf.explicit_url("")));
    assert!(
        !output.status.success(),
        "a plain-text login must fail\n{}",
        describe(&output)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("530") || stderr.contains("Access denied") || stderr.contains("denied"),
        "curl reports the 530 refusal\n{}",
        describe(&output)
    );
}
