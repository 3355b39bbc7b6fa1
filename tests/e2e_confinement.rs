//! Every path-taking command tries `..`, absolute paths, a symlink to `/`, a symlink to a
//! file outside the home, NUL bytes and over-long paths. Replies must refuse (550, or
//! 501 for NUL) — checked by `tests/clients/confinement.py` — and nothing outside the
//! home may be read, created or changed — checked here on disk. On cluster storage there
//! are no symlinks in the namespace; every other attempt runs the same.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::support::*;

/// What must not change outside the home.
#[derive(Debug, PartialEq)]
struct Outside {
    sentinel: Vec<u8>,
    sentinel_mtime: SystemTime,
    outside_dir_entries: Vec<String>,
    passwd_len: u64,
    passwd_mtime: SystemTime,
}

impl Outside {
    fn take(sentinel: &Path, outside_dir: &Path) -> Outside {
        let passwd = fs::metadata("/etc/passwd").expect("stat /etc/passwd");
        Outside {
            sentinel: fs::read(sentinel).expect("the sentinel still exists"),
            sentinel_mtime: fs::metadata(sentinel).unwrap().modified().unwrap(),
            outside_dir_entries: fs::read_dir(outside_dir)
                .expect("the outside directory still exists")
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            passwd_len: passwd.len(),
            passwd_mtime: passwd.modified().unwrap(),
        }
    }
}

/// Paths whose name contains `token`, under `dir` (recursively, skipping `skip`).
fn find_token(dir: &Path, token: &str, skip: &Path, depth: usize, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path == skip {
            continue;
        }
        if entry.file_name().to_string_lossy().contains(token) {
            found.push(path.clone());
        }
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir && depth > 0 {
            find_token(&path, token, skip, depth - 1, found);
        }
    }
}

fn traversal_stays_inside_the_home(tls: &str) {
    let wharf = Wharf::start_default();
    let stored = wharf.stored();
    let token = format!("wharf-escape-{}", rand::random::<u32>());
    let marker = format!("WHARF-SENTINEL-{}", rand::random::<u64>());
    let sentinel = wharf.data_dir.join("sentinel.txt");
    fs::write(&sentinel, &marker).unwrap();
    let outside_dir = wharf
        .data_dir
        .join(format!("outside-{}", rand::random::<u32>()));
    fs::create_dir(&outside_dir).unwrap();
    // Symbolic links exist only in a home on disk; cluster storage has none to follow.
    if let Some(home) = stored.on_disk() {
        symlink("/", home.join("rootlink")).unwrap();
        symlink(&sentinel, home.join("sentlink")).unwrap();
    }
    let inside = wharf.client_dir().join("inside.txt");
    fs::create_dir_all(wharf.client_dir()).unwrap();
    fs::write(&inside, b"inside").unwrap();
    stored.put("inside.txt", &inside);
    let before = Outside::take(&sentinel, &outside_dir);

    let mut cmd = wharf.python("confinement.py");
    cmd.arg("--sentinel")
        .arg(&sentinel)
        .arg("--outside-dir")
        .arg(&outside_dir)
        .args(["--marker", &marker, "--token", &token, "--tls", tls]);
    match stored.on_disk() {
        Some(home) => cmd.arg("--home").arg(home),
        None => cmd.arg("--no-symlinks"),
    };
    let output = run(&mut cmd);

    let after = Outside::take(&sentinel, &outside_dir);
    assert_eq!(before, after, "something outside the home changed");
    let mut escaped = Vec::new();
    let home = stored
        .on_disk()
        .unwrap_or_else(|| wharf.data_dir.join("chunks"));
    find_token(wharf.root(), &token, &home, 6, &mut escaped);
    find_token(Path::new("/tmp"), &token, &home, 0, &mut escaped);
    find_token(Path::new("/"), &token, &home, 0, &mut escaped);
    assert!(escaped.is_empty(), "created outside the home: {escaped:?}");
    assert_eq!(fs::read(stored.copy_of("inside.txt")).unwrap(), b"inside");
    if let Some(home) = stored.on_disk() {
        assert_eq!(
            fs::read_link(home.join("rootlink")).unwrap(),
            Path::new("/"),
            "the symlink itself is untouched"
        );
    }
    assert_success(
        &output,
        "confinement.py (every attempt refused with the right code)",
    );
    let mut wharf = wharf;
    wharf.assert_alive();
}

#[test]
fn traversal_in_every_path_command_stays_inside_the_home() {
    traversal_stays_inside_the_home("reuse");
}

#[test]
fn traversal_over_implicit_ftps_stays_inside_the_home() {
    traversal_stays_inside_the_home("implicit");
}

/// The issue asks for `550` on `..` that climbs above the home. A chroot-style server
/// (vsftpd, ProFTPD) instead reads `/..` as `/` and answers 250; this test holds the
/// issue's reading, the traversal tests above accept both as long as nothing escapes.
#[test]
fn climbing_above_the_home_root_is_refused_with_550() {
    let wharf = Wharf::start_default();
    let steps: Vec<String> = [
        "CWD ..",
        "CWD ../../..",
        "CWD /..",
        "XCWD /../../..",
        "MLST ../../..",
        "STAT ../..",
    ]
    .iter()
    .map(|c| format!("raw {c}"))
    .chain(["pwd".to_string()])
    .collect();
    let output = run(&mut wharf.batch("reuse", &steps));
    assert_success(&output, "ftps_batch.py");
    let replies = tagged(&output, "RAW");
    assert_eq!(tagged(&output, "PWD"), vec![vec!["/".to_string()]]);
    let wrong: Vec<_> = steps
        .iter()
        .zip(&replies)
        .filter(|(_, reply)| !reply[0].starts_with("550"))
        .collect();
    assert!(wrong.is_empty(), "expected 550 for each, got: {wrong:?}");
}

#[test]
fn homes_of_two_users_are_isolated_from_each_other() {
    let wharf = Wharf::start(WharfOptions::default().user("mallory", "mallory-Pass-1"));
    let private = wharf.client_dir().join("private.txt");
    fs::create_dir_all(wharf.client_dir()).unwrap();
    fs::write(&private, b"alice only").unwrap();
    wharf.stored().put("private.txt", &private);
    if let Some(alice_home) = wharf.stored().on_disk() {
        fs::create_dir_all(alice_home.with_file_name("mallory")).unwrap();
    }
    let stolen = wharf.client_dir().join("stolen.txt");
    let mut cmd = python("ftps_batch.py");
    cmd.args(["--port", &wharf.explicit_port.to_string()])
        .args(["--user", "mallory", "--password", "mallory-Pass-1"])
        .args(["--step", "raw SIZE ../alice/private.txt"])
        .args(["--step", "raw CWD ../alice"])
        .args(["--step", "raw CWD /../alice"])
        .args(["--step", "raw DELE ../alice/private.txt"])
        .args(["--step", "raw RNFR ../alice/private.txt"])
        .args([
            "--step",
            &format!("get ../alice/private.txt {}", stolen.display()),
        ]);
    let output = run(&mut cmd);
    for fields in tagged(&output, "RAW") {
        assert!(
            fields[0].starts_with("550"),
            "mallory is refused: {fields:?}\n{}",
            describe(&output)
        );
    }
    assert!(!output.status.success(), "RETR of alice's file is refused");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("550"),
        "{}",
        describe(&output)
    );
    assert!(
        fs::read(&stolen).map(|b| b.is_empty()).unwrap_or(true),
        "no byte of alice's file reached mallory"
    );
    assert_eq!(
        fs::read(wharf.stored().copy_of("private.txt")).unwrap(),
        b"alice only"
    );
}
