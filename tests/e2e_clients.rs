//! The clients people script against FTPS servers, each against a real `wharf`: curl
//! batches, rclone's parallel transfers, a rustls client (suppaftp), clients that finish
//! the data connection's TLS handshake before sending the command (aioftp, Go's
//! jlaffaye/ftp), Apache Commons Net, wget and gftp, lftp's IP-address SNI; and what a
//! data connection must prove (the same user at the same address), with its relaxations.
//! The drivers and their command lines are in `tests/clients/` (README-clients.md).

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use crate::support::*;

const BOB: &str = "bob";
const BOB_PASSWORD: &str = "builder-Can-We-9";

/// `count` random files of different sizes in `dir`, named `prefix0`, `prefix1`, …
fn random_files(dir: &Path, prefix: &str, count: usize) -> Vec<PathBuf> {
    fs::create_dir_all(dir).unwrap();
    (0..count)
        .map(|i| {
            let path = dir.join(format!("{prefix}{i}"));
            write_random_file(&path, 1000 + 7919 * i as u64);
            path
        })
        .collect()
}

/// Every file of `sent` is stored under `remote_dir` with the same bytes.
fn assert_stored(wharf: &Wharf, remote_dir: &str, sent: &[PathBuf]) {
    for file in sent {
        let name = file.file_name().unwrap().to_string_lossy();
        assert_same_file(
            file,
            &wharf.stored().copy_of(&format!("{remote_dir}/{name}")),
        );
    }
}

fn data_connection_refusals(wharf: &Wharf) -> usize {
    wharf.stderr().matches("data connection refused").count()
}

#[test]
fn curl_batch_of_twenty_files_stores_all_of_them_on_tls13_and_tls12() {
    // On the default storage (cluster): its commands take long enough for
    // curl's ClientHello and STOR to be read in either order.
    let wharf = Wharf::start(WharfOptions::default().cluster_storage());
    // Twenty: each data connection must hand curl the ticket for the next
    // (curl sends its ClientHello and then STOR at once, so the server must
    // see the ClientHello first whichever of its tasks runs first).
    let files = random_files(&wharf.client_dir(), "batch", 20);
    let list = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    for (dir, version) in [
        ("tls13", ["--tlsv1.3", "--tls-max", "1.3"]),
        ("tls12", ["--tlsv1.2", "--tls-max", "1.2"]),
    ] {
        let output = run(wharf
            .curl()
            .args(version)
            .args(["--ftp-create-dirs", "-T"])
            .arg(format!("{{{list}}}"))
            .arg(wharf.explicit_url(&format!("{dir}/"))));
        assert_success(&output, &format!("curl -T {{…twenty files}} on {dir}"));
        assert_stored(&wharf, dir, &files);
    }
    assert_eq!(data_connection_refusals(&wharf), 0, "{}", wharf.logs());
}

fn rclone_remote(wharf: &Wharf, implicit: bool) -> String {
    let obscured = run(Command::new("rclone").args(["obscure", &wharf.password]));
    assert_success(&obscured, "rclone obscure");
    let pass = String::from_utf8_lossy(&obscured.stdout).trim().to_owned();
    let (port, tls) = if implicit {
        (wharf.implicit_port, "tls=true")
    } else {
        (wharf.explicit_port, "explicit_tls=true")
    };
    format!(
        ":ftp,host=127.0.0.1,port={port},user={},pass={pass},{tls},no_check_certificate=true:",
        wharf.user
    )
}

fn rclone_copy(from: &str, to: &str) {
    let output = run(Command::new("rclone").args([
        "copy",
        "--config",
        "/dev/null",
        "--contimeout",
        "30s",
        "--timeout",
        "30s",
        "--retries",
        "1",
        "--low-level-retries",
        "1",
        from,
        to,
    ]));
    assert_success(&output, &format!("rclone copy {from} {to}"));
}

/// rclone's default: four transfers, four control connections sharing one TLS session
/// cache, so data connections resume their siblings' sessions.
#[test]
fn rclone_copies_up_and_back_with_default_parallelism_explicit_and_implicit() {
    require_tool("rclone");
    let wharf = Wharf::start_default();
    for implicit in [false, true] {
        let name = if implicit { "implicit" } else { "explicit" };
        let up = wharf.client_dir().join(format!("{name}-up"));
        let files = random_files(&up, "r", 20);
        let remote = format!("{}{name}", rclone_remote(&wharf, implicit));
        rclone_copy(&up.display().to_string(), &remote);
        assert_stored(&wharf, name, &files);
        let back = wharf.client_dir().join(format!("{name}-back"));
        rclone_copy(&remote, &back.display().to_string());
        for file in &files {
            assert_same_file(file, &back.join(file.file_name().unwrap()));
        }
    }
    assert_eq!(data_connection_refusals(&wharf), 0, "{}", wharf.logs());
}

/// A suppaftp session over rustls (its default session cache, TLS 1.3),
/// logged in, binary.
fn suppaftp_session(wharf: &Wharf) -> suppaftp::RustlsFtpStream {
    use suppaftp::{RustlsConnector, RustlsFtpStream};
    let config = wharf_client::stock_rustls_config(wharf_client::TlsVersion::Tls13).unwrap();
    let connector = RustlsConnector::from(Arc::new(config));
    let plain = RustlsFtpStream::connect(("127.0.0.1", wharf.explicit_port)).unwrap();
    let mut ftp = plain.into_secure(connector, "localhost").unwrap();
    ftp.login(&wharf.user, &wharf.password).unwrap();
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .unwrap();
    ftp
}

/// suppaftp over rustls with its default session cache: rustls offers each TLS 1.3
/// ticket once, and an upload never reads the tickets its data connection could hand
/// out. Each download hands out two tickets (one replaces its own, one is for the next
/// upload). Fifty files, each uploaded then downloaded.
#[test]
fn suppaftp_with_rustls_moves_fifty_files_up_and_down_on_tls13() {
    let wharf = Wharf::start_default();
    let mut ftp = suppaftp_session(&wharf);
    let contents: Vec<Vec<u8>> = (0..50)
        .map(|i| (0..(4096 + i * 131)).map(|b| (b * 7 + i) as u8).collect())
        .collect();
    for (i, bytes) in contents.iter().enumerate() {
        ftp.put_file(format!("s{i}"), &mut Cursor::new(bytes))
            .unwrap_or_else(|e| panic!("upload {i}: {e}\n{}", wharf.logs()));
        let back = ftp
            .retr_as_buffer(&format!("s{i}"))
            .unwrap_or_else(|e| panic!("download {i}: {e}\n{}", wharf.logs()));
        assert!(back.into_inner() == *bytes, "s{i} came back different");
    }
    ftp.quit().unwrap();
    assert_eq!(data_connection_refusals(&wharf), 0, "{}", wharf.logs());
}

/// A run of uploads with nothing read in between: each upload's data
/// connection spends a ticket and cannot hand one back, so the control
/// connection's eight tickets carry seven uploads in a row and the download
/// after them (with two tickets, one upload was all a download could follow);
/// each download hands out two tickets again.
#[test]
fn suppaftp_with_rustls_uploads_seven_files_in_a_row_on_tls13() {
    let wharf = Wharf::start_default();
    let mut ftp = suppaftp_session(&wharf);
    let contents: Vec<Vec<u8>> = (0..7)
        .map(|i| (0..(10_000 + i * 17)).map(|b| (b * 3 + i) as u8).collect())
        .collect();
    for (i, bytes) in contents.iter().enumerate() {
        ftp.put_file(format!("run{i}"), &mut Cursor::new(bytes))
            .unwrap_or_else(|e| panic!("upload {i} in a row: {e}\n{}", wharf.logs()));
    }
    for (i, bytes) in contents.iter().enumerate() {
        let back = ftp
            .retr_as_buffer(&format!("run{i}"))
            .unwrap_or_else(|e| panic!("download {i}: {e}\n{}", wharf.logs()));
        assert!(back.into_inner() == *bytes, "run{i} came back different");
    }
    ftp.quit().unwrap();
    assert_eq!(data_connection_refusals(&wharf), 0, "{}", wharf.logs());
}

/// Runs one driver of `tests/clients/` (`HOST PORT USER PASS MODE DIR N` after `pre`)
/// and asserts it verified every file.
fn drive(wharf: &Wharf, mut cmd: Command, implicit: bool, dir: &Path, count: usize) {
    let (mode, port) = if implicit {
        ("implicit", wharf.implicit_port)
    } else {
        ("explicit", wharf.explicit_port)
    };
    fs::create_dir_all(dir).unwrap();
    cmd.args([
        "127.0.0.1",
        &port.to_string(),
        &wharf.user,
        &wharf.password,
        mode,
    ])
    .arg(dir)
    .arg(count.to_string());
    let output = run(&mut cmd);
    assert_success(&output, &format!("{cmd:?}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "OK: {count} files uploaded, downloaded and verified"
        )),
        "{cmd:?} did not verify its files:\n{stdout}"
    );
}

fn go_driver(wharf: &Wharf) -> PathBuf {
    require_tool("go");
    let binary = wharf.root().join("ftps-go");
    let output = run(Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg(tests_dir().join("clients/go/ftps_go.go"))
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", wharf.root().join("gocache")));
    assert_success(
        &output,
        "go build ftps_go.go (jlaffaye/ftp from golang-github-jlaffaye-ftp-dev)",
    );
    binary
}

/// Both start the data connection's TLS handshake before they send STOR/RETR: a server
/// that waits for the command first (vsftpd) leaves them hanging.
#[test]
fn go_and_aioftp_clients_that_handshake_before_the_command_transfer() {
    let wharf = Wharf::start_default();
    let go = go_driver(&wharf);
    for implicit in [false, true] {
        for version in ["1.2", "1.3"] {
            let mut cmd = Command::new(&go);
            cmd.args(["-tls", version]);
            let dir = wharf.client_dir().join(format!("go-{implicit}-{version}"));
            drive(&wharf, cmd, implicit, &dir, 4);
            let mut cmd = python("ftps_aioftp.py");
            cmd.args(["--tls", version]);
            let dir = wharf.client_dir().join(format!("aio-{implicit}-{version}"));
            drive(&wharf, cmd, implicit, &dir, 4);
        }
    }
    assert_eq!(data_connection_refusals(&wharf), 0, "{}", wharf.logs());
}

fn java_driver(wharf: &Wharf) -> Command {
    require_tool("javac");
    let classes = wharf.root().join("java");
    let jar = "/usr/share/java/commons-net.jar";
    assert!(
        Path::new(jar).exists(),
        "{jar} missing: apt-get install libcommons-net-java"
    );
    let output = run(Command::new("javac")
        .args(["-cp", jar, "-d"])
        .arg(&classes)
        .arg(tests_dir().join("clients/java/FtpsCommonsNet.java")));
    assert_success(&output, "javac FtpsCommonsNet.java");
    let mut cmd = Command::new("java");
    cmd.args([
        "--add-opens",
        "java.base/sun.security.ssl=ALL-UNNAMED",
        "--add-opens",
        "java.base/sun.security.util=ALL-UNNAMED",
        "-cp",
    ])
    .arg(format!("{jar}:{}", classes.display()))
    .arg("FtpsCommonsNet");
    cmd
}

fn java(wharf: &Wharf, flags: &[&str]) -> Command {
    let mut cmd = java_driver(wharf);
    cmd.args(flags);
    cmd
}

/// Commons Net resumes TLS sessions on data connections only with the well-known
/// `_prepareDataSocket_` workaround, and on TLS 1.3 not even then for consecutive
/// uploads (the JDK never reads the ticket an upload's data connection hands out).
/// A user relaxed to `any` needs neither.
#[test]
fn commons_net_works_with_its_workaround_on_tls12_and_for_a_relaxed_user_without() {
    let wharf = Wharf::start(WharfOptions::default().user(BOB, BOB_PASSWORD));
    let dir = wharf.client_dir();
    drive(
        &wharf,
        java(&wharf, &["--reuse", "--tls", "1.2"]),
        false,
        &dir.join("w12"),
        4,
    );

    // The stock client proves nothing: refused under the default rule.
    let mut stock = java(&wharf, &["--no-reuse", "--tls", "1.3"]);
    stock
        .args([
            "127.0.0.1",
            &wharf.explicit_port.to_string(),
            &wharf.user,
            &wharf.password,
        ])
        .arg("explicit")
        .arg(dir.join("stock"))
        .arg("1");
    let output = run(&mut stock);
    assert!(
        !output.status.success(),
        "the stock client was let in:\n{}",
        describe(&output)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("425"),
        "{}",
        describe(&output)
    );

    // Relaxed for one user: the stock client works for that user, on both versions.
    let modified = wharf.cli(&["user", "modify", &wharf.user, "--data-tls", "any"], None);
    assert_success(&modified, "wharf user modify --data-tls any");
    let listed = wharf.cli(&["user", "list"], None);
    assert_success(&listed, "wharf user list");
    let listing = String::from_utf8_lossy(&listed.stdout);
    let line = |name: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(&format!("{name}\t")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(line(&wharf.user).contains("data_tls=any"), "{listing}");
    assert!(!line(BOB).contains("data_tls"), "{listing}");
    for version in ["1.2", "1.3"] {
        let sub = dir.join(format!("stock{version}"));
        drive(
            &wharf,
            java(&wharf, &["--no-reuse", "--tls", version]),
            false,
            &sub,
            3,
        );
        drive(
            &wharf,
            java(&wharf, &["--reuse", "--tls", version]),
            false,
            &sub,
            3,
        );
    }
    // Logged once per session, not once per data connection.
    let relaxed = wharf
        .stderr()
        .matches("accepted without a resumed TLS session")
        .count();
    assert!(
        (1..=4).contains(&relaxed),
        "{relaxed} relaxation lines\n{}",
        wharf.logs()
    );
}

/// `--data-tls-any-from` relaxes a whole network; other networks keep the rule.
#[test]
fn a_relaxed_network_takes_clients_that_cannot_resume() {
    let relaxed =
        Wharf::start(WharfOptions::default().args(["--data-tls-any-from", "127.0.0.0/8"]));
    assert_eq!(binding_scenario(&relaxed, "fresh"), "fresh 226");
    let elsewhere =
        Wharf::start(WharfOptions::default().args(["--data-tls-any-from", "10.0.0.0/8"]));
    assert_eq!(binding_scenario(&elsewhere, "fresh"), "fresh 425");
}

fn binding_scenario(wharf: &Wharf, scenario: &str) -> String {
    let out = run(wharf.python("data_binding.py").args([
        "--other-user",
        BOB,
        "--other-password",
        BOB_PASSWORD,
        scenario,
    ]));
    assert_success(&out, &format!("data_binding.py {scenario}"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The default rule lets a sibling control connection's session in, and refuses
/// another user's, another address's and none at all; `--data-tls reuse` keeps the
/// strict rule of vsftpd's `require_ssl_reuse`.
#[test]
fn data_connection_must_resume_a_session_of_the_same_user_at_the_same_address() {
    let wharf = Wharf::start(WharfOptions::default().user(BOB, BOB_PASSWORD));
    for (scenario, code) in [
        ("own", "226"),
        ("sibling", "226"),
        ("other-user", "425"),
        ("other-address", "425"),
        ("fresh", "425"),
    ] {
        assert_eq!(
            binding_scenario(&wharf, scenario),
            format!("{scenario} {code}")
        );
    }
    let strict = Wharf::start(
        WharfOptions::default()
            .user(BOB, BOB_PASSWORD)
            .args(["--data-tls", "reuse"]),
    );
    for (scenario, code) in [("own", "226"), ("sibling", "425"), ("other-user", "425")] {
        assert_eq!(
            binding_scenario(&strict, scenario),
            format!("{scenario} {code}")
        );
    }
}

#[test]
fn wget_downloads_over_explicit_and_implicit_ftps() {
    require_tool("wget");
    let wharf = Wharf::start_default();
    let source = wharf.client_dir().join("w.bin");
    fs::create_dir_all(wharf.client_dir()).unwrap();
    write_random_file(&source, 300_000);
    wharf.stored().put("w.bin", &source);
    for implicit in [false, true] {
        let back = wharf.client_dir().join(format!("w-{implicit}.bin"));
        let port = if implicit {
            wharf.implicit_port
        } else {
            wharf.explicit_port
        };
        let mut cmd = Command::new("wget");
        cmd.args(["-q", "--no-check-certificate", "--timeout=30", "--tries=1"])
            .arg(format!("--user={}", wharf.user))
            .arg(format!("--password={}", wharf.password));
        if implicit {
            cmd.arg("--ftps-implicit");
        }
        cmd.arg("-O")
            .arg(&back)
            .arg(format!("ftps://127.0.0.1:{port}/w.bin"));
        assert_success(&run(&mut cmd), &format!("wget implicit={implicit}"));
        assert_same_file(&source, &back);
    }
}

/// gftp-text reads its commands from standard input and exits 0 whatever happened:
/// the files decide. Pinned to TLS 1.2, where its uploads are reliable against every
/// server tried (README-clients.md).
#[test]
fn gftp_text_uploads_and_downloads_over_explicit_and_implicit_ftps() {
    require_tool("gftp-text");
    let wharf = Wharf::start_default();
    let tls12 = wharf.root().join("tls12.cnf");
    fs::write(
        &tls12,
        "openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n[ssl_sect]\n\
         system_default = system_default_sect\n[system_default_sect]\nMaxProtocol = TLSv1.2\n",
    )
    .unwrap();
    for (scheme, port, dir) in [
        ("ftps", wharf.explicit_port, "gx"),
        ("ftpsi", wharf.implicit_port, "gi"),
    ] {
        let up = wharf.client_dir().join(format!("{dir}-up"));
        let files = random_files(&up, "g", 3);
        let gftp = |home: &str, script: String| {
            let home = wharf.root().join(home);
            fs::create_dir_all(&home).unwrap();
            let output = run_with_input(
                Command::new("gftp-text")
                    .env("HOME", &home)
                    .env("OPENSSL_CONF", &tls12),
                script.as_bytes(),
                std::time::Duration::from_secs(120),
            );
            assert_success(&output, "gftp-text");
        };
        let open = format!(
            "set network_timeout=30\nset retries=0\nopen {scheme}://{}:{}@127.0.0.1:{port}",
            wharf.user, wharf.password
        );
        gftp(
            &format!("{dir}-h1"),
            format!(
                "{open}\nlcd {}\nmkdir {dir}\ncd {dir}\nmput g*\nquit\n",
                up.display()
            ),
        );
        assert_stored(&wharf, dir, &files);
        let back = wharf.client_dir().join(format!("{dir}-back"));
        fs::create_dir_all(&back).unwrap();
        gftp(
            &format!("{dir}-h2"),
            format!("{open}/{dir}\nlcd {}\nmget g*\nquit\n", back.display()),
        );
        for file in &files {
            assert_same_file(file, &back.join(file.file_name().unwrap()));
        }
    }
}

/// lftp sends the server's IP address as SNI; rustls warned about it on every
/// connection. It is treated as no server name, and the log stays quiet.
#[test]
fn lftp_ip_address_sni_leaves_no_warning_in_the_log() {
    let wharf = Wharf::start_default();
    let source = wharf.client_dir().join("l.bin");
    fs::create_dir_all(wharf.client_dir()).unwrap();
    write_random_file(&source, 10_000);
    let put = format!("put {} -o l.bin", source.display());
    assert_success(
        &run(&mut wharf.lftp(&[&put, "ls", "cls -l"])),
        "lftp put, ls",
    );
    assert_same_file(&source, &wharf.stored().copy_of("l.bin"));
    let log = wharf.stderr();
    assert!(log.contains("control connection protected"), "{log}");
    assert!(!log.contains("SNI"), "the log mentions SNI:\n{log}");
}
