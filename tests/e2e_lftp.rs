//! lftp (GnuTLS) against a real `wharf`, explicit FTPS forced on control and data
//! (`set ftp:ssl-force true; set ftp:ssl-protect-data true`). lftp resumes the control
//! TLS session on data connections, so the default policy applies unchanged.

use std::fs;

use crate::support::*;

const MIB: u64 = 1024 * 1024;

fn lftp_ok(cmd: &mut std::process::Command, what: &str) -> String {
    let output = run(cmd);
    assert_success(&output, what);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn lftp_explicit_upload_download_of_100_mib_is_byte_identical() {
    let wharf = Wharf::start_default();
    let home = wharf.stored();
    let local = wharf.client_dir().join("big.bin");
    let back = wharf.client_dir().join("back.bin");
    write_random_file(&local, 100 * MIB);

    let put = format!("put {} -o docs/big.bin", local.display());
    lftp_ok(&mut wharf.lftp(&["mkdir docs", &put]), "lftp mkdir + put");
    assert_same_file(&local, &home.copy_of("docs/big.bin"));

    let get = format!("get docs/big.bin -o {}", back.display());
    lftp_ok(&mut wharf.lftp(&[&get]), "lftp get");
    assert_same_file(&local, &back);
}

#[test]
fn lftp_lists_renames_deletes_and_removes_directories() {
    let wharf = Wharf::start_default();
    let home = wharf.stored();
    let local = wharf.client_dir().join("note.txt");
    fs::write(&local, "a small note\n".repeat(1000)).unwrap();
    let size = fs::metadata(&local).unwrap().len();

    let put = format!("put {} -o inbox/note.txt", local.display());
    lftp_ok(&mut wharf.lftp(&["mkdir inbox", &put]), "lftp mkdir + put");
    assert!(home.is_dir("inbox"));
    assert_same_file(&local, &home.copy_of("inbox/note.txt"));

    // `cls` makes lftp parse the listing (MLSD or LIST) itself; `ls` prints it raw.
    let listing = lftp_ok(
        &mut wharf.lftp(&["cls -1 inbox/", "cls -l inbox/"]),
        "lftp cls",
    );
    assert!(
        listing.contains("note.txt"),
        "cls lists the file:\n{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.contains("note.txt") && l.contains(&size.to_string())),
        "cls -l shows the size {size}:\n{listing}"
    );
    let raw = lftp_ok(&mut wharf.lftp(&["ls inbox"]), "lftp ls");
    assert!(raw.contains("note.txt"), "ls shows the file:\n{raw}");

    lftp_ok(
        &mut wharf.lftp(&["mv inbox/note.txt archived.txt"]),
        "lftp mv",
    );
    assert!(!home.exists("inbox/note.txt"));
    assert_same_file(&local, &home.copy_of("archived.txt"));

    lftp_ok(
        &mut wharf.lftp(&["rm archived.txt", "rmdir inbox"]),
        "lftp rm + rmdir",
    );
    assert!(!home.exists("archived.txt"));
    assert!(!home.exists("inbox"));
}

#[test]
fn lftp_mirror_of_a_tree_is_byte_identical_both_ways() {
    let wharf = Wharf::start_default();
    let home = wharf.stored();
    let tree = wharf.client_dir().join("tree");
    for (name, size) in [
        ("a.bin", 1000),
        ("sub/b.bin", 200_000),
        ("sub/deeper/c.bin", 3),
        ("empty.bin", 0),
    ] {
        write_random_file(&tree.join(name), size);
    }
    let up = format!("mirror -R {} uploaded", tree.display());
    lftp_ok(&mut wharf.lftp(&[&up]), "lftp mirror -R");
    let down_dir = wharf.client_dir().join("down");
    let down = format!("mirror uploaded {}", down_dir.display());
    lftp_ok(&mut wharf.lftp(&[&down]), "lftp mirror");
    for name in ["a.bin", "sub/b.bin", "sub/deeper/c.bin", "empty.bin"] {
        assert_same_file(&tree.join(name), &home.copy_of(&format!("uploaded/{name}")));
        assert_same_file(&tree.join(name), &down_dir.join(name));
    }
}

#[test]
fn lftp_implicit_ftps_round_trip_is_byte_identical() {
    let wharf = Wharf::start_default();
    let home = wharf.stored();
    let local = wharf.client_dir().join("implicit.bin");
    let back = wharf.client_dir().join("implicit-back.bin");
    write_random_file(&local, 4 * MIB + 11);
    let url = format!("ftps://127.0.0.1:{}", wharf.implicit_port);
    let put = format!("put {} -o implicit.bin", local.display());
    let get = format!("get implicit.bin -o {}", back.display());
    lftp_ok(
        &mut wharf.lftp_with(&url, &[], &[&put, &get]),
        "lftp ftps://",
    );
    assert_same_file(&local, &home.copy_of("implicit.bin"));
    assert_same_file(&local, &back);
}

#[test]
fn lftp_over_tls_1_2_resumes_sessions_and_transfers() {
    let wharf = Wharf::start_default();
    let home = wharf.stored();
    let local = wharf.client_dir().join("tls12.bin");
    let back = wharf.client_dir().join("tls12-back.bin");
    write_random_file(&local, 3 * MIB);
    let put = format!("put {} -o tls12.bin", local.display());
    let get = format!("get tls12.bin -o {}", back.display());
    let url = format!("ftp://127.0.0.1:{}", wharf.explicit_port);
    lftp_ok(
        &mut wharf.lftp_with(
            &url,
            &["set ssl:priority NORMAL:-VERS-ALL:+VERS-TLS1.2"],
            &[&put, "cls -l", &get],
        ),
        "lftp over TLS 1.2",
    );
    assert_same_file(&local, &home.copy_of("tls12.bin"));
    assert_same_file(&local, &back);
}

#[test]
fn lftp_parallel_segmented_download_is_byte_identical() {
    let wharf = Wharf::start_default();
    let original = wharf.client_dir().join("original.bin");
    write_random_file(&original, 24 * MIB + 123);
    wharf.stored().put("segmented.bin", &original);
    let back = wharf.client_dir().join("segmented.bin");
    let pget = format!("pget -n 4 segmented.bin -o {}", back.display());
    lftp_ok(&mut wharf.lftp(&[&pget]), "lftp pget -n 4");
    assert_same_file(&original, &back);
}
