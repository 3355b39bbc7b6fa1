//! `openssl s_client`, the tool operators check an FTPS server with: explicit FTPS with
//! `-starttls ftp` over TLS 1.2 and 1.3, implicit FTPS, TLS 1.1 refused, and whole
//! transfers where the data connections are further `s_client`s resuming the control
//! session from `-sess_out`/`-sess_in` (so the default reuse policy applies).

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use crate::support::*;

const MIB: u64 = 1024 * 1024;

fn s_client() -> Command {
    require_tool("openssl");
    let mut cmd = Command::new("openssl");
    cmd.arg("s_client");
    cmd
}

fn login_script(wharf: &Wharf) -> Vec<u8> {
    format!(
        "USER {}\r\nPASS {}\r\nPWD\r\nQUIT\r\n",
        wharf.user, wharf.password
    )
    .into_bytes()
}

/// Whether s_client's output holds a reply with this code. s_client prints
/// the session of each TLS 1.3 ticket as it arrives, so a reply can also
/// land in the middle of one of those dump lines (`0050 - 9d331 Password…`).
fn replied(stdout: &str, code: &str) -> bool {
    stdout
        .lines()
        .any(|l| l.starts_with(code) || l.contains(&format!("{code} ")))
}

fn assert_logged_in(stdout: &str, output: &std::process::Output) {
    for reply in ["331", "230", "257", "221"] {
        assert!(
            replied(stdout, reply),
            "no {reply} reply through s_client\n{}",
            describe(output)
        );
    }
}

fn starttls_login(version_flag: &str, version_name: &str) {
    let wharf = Wharf::start_default();
    let output = run_with_input(
        s_client()
            .args(["-starttls", "ftp", "-connect"])
            .arg(format!("127.0.0.1:{}", wharf.explicit_port))
            .args([version_flag, "-ign_eof"]),
        &login_script(&wharf),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("Protocol  : {version_name}"))
            || stdout.contains(&format!("New, {version_name}, Cipher")),
        "handshake negotiated {version_name}\n{}",
        describe(&output)
    );
    assert!(
        stdout.contains("Server public key is 256 bit"),
        "default certificate is ECDSA P-256\n{}",
        describe(&output)
    );
    assert_logged_in(&stdout, &output);
}

#[test]
fn openssl_starttls_ftp_tls_1_2_handshake_and_login() {
    starttls_login("-tls1_2", "TLSv1.2");
}

#[test]
fn openssl_starttls_ftp_tls_1_3_handshake_and_login() {
    starttls_login("-tls1_3", "TLSv1.3");
}

#[test]
fn openssl_implicit_ftps_handshake_greeting_and_login() {
    let wharf = Wharf::start_default();
    let output = run_with_input(
        s_client()
            .arg("-connect")
            .arg(format!("127.0.0.1:{}", wharf.implicit_port))
            .arg("-ign_eof"),
        &login_script(&wharf),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        replied(&stdout, "220"),
        "implicit FTPS greets with 220 inside TLS\n{}",
        describe(&output)
    );
    assert_logged_in(&stdout, &output);
}

#[test]
fn openssl_tls_1_1_handshake_is_refused() {
    let wharf = Wharf::start_default();
    let output = run_with_input(
        s_client()
            .args(["-starttls", "ftp", "-connect"])
            .arg(format!("127.0.0.1:{}", wharf.explicit_port))
            .args(["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", "-ign_eof"]),
        &login_script(&wharf),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success() && !replied(&stdout, "230"),
        "TLS 1.1 must not be negotiated\n{}",
        describe(&output)
    );
    let mut wharf = wharf;
    wharf.assert_alive();
}

/// An interactive `s_client -starttls ftp -quiet`: what we write is the control
/// connection's plaintext, what it prints is the server's.
struct ControlOverSClient {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    transcript: String,
}

impl ControlOverSClient {
    fn start(port: u16, version_flag: &str, session_file: &Path) -> ControlOverSClient {
        let mut child = s_client()
            .args(["-starttls", "ftp", "-connect"])
            .arg(format!("127.0.0.1:{port}"))
            .args([version_flag, "-quiet", "-nocommands", "-sess_out"])
            .arg(session_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn openssl s_client");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line.trim_end_matches('\r').to_string()).is_err() {
                    break;
                }
            }
        });
        ControlOverSClient {
            child,
            stdin,
            lines,
            transcript: String::new(),
        }
    }

    /// Sends a command without waiting for its reply (a transfer's 150 may only come
    /// once the data connection is there).
    fn send(&mut self, line: &str) {
        self.transcript.push_str(&format!("> {line}\n"));
        self.stdin
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write to s_client");
        self.stdin.flush().expect("flush s_client stdin");
    }

    fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(line);
        self.reply()
    }

    fn reply(&mut self) -> (u16, String) {
        let mut next = || {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("no reply line: {e}\n{}", self.transcript));
            self.transcript.push_str(&format!("< {line}\n"));
            line
        };
        let first = next();
        let code: u16 = first
            .get(..3)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("not a reply: {first:?}"));
        let mut text = first.clone();
        if first.as_bytes().get(3) == Some(&b'-') {
            loop {
                let line = next();
                text.push('\n');
                text.push_str(&line);
                if line.starts_with(&format!("{code} ")) {
                    break;
                }
            }
        }
        (code, text)
    }

    fn expect(&mut self, line: &str, code: u16) -> String {
        let (got, text) = self.cmd(line);
        assert_eq!(got, code, "{line} -> {text}\n{}", self.transcript);
        text
    }

    /// `EPSV` and the port from `229 … (|||port|)`.
    fn epsv(&mut self) -> u16 {
        let text = self.expect("EPSV", 229);
        let inner = text
            .split("(|||")
            .nth(1)
            .and_then(|rest| rest.split('|').next())
            .unwrap_or_else(|| panic!("bad EPSV reply {text:?}"));
        inner.parse().expect("EPSV port")
    }
}

impl Drop for ControlOverSClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_session_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while fs::metadata(path).map(|m| m.len() == 0).unwrap_or(true) {
        assert!(
            Instant::now() < deadline,
            "s_client never wrote its session to {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A data-connection `s_client` that resumes the session saved by the control one.
fn data_client(port: u16, version_flag: &str, session_file: &Path) -> Command {
    let mut cmd = s_client();
    cmd.arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .args([version_flag, "-quiet", "-nocommands", "-sess_in"])
        .arg(session_file);
    cmd
}

fn s_client_transfers(version_flag: &str) {
    let wharf = Wharf::start_default();
    let home = wharf.stored();
    let session: PathBuf = wharf.client_dir().join("control.sess");
    let local = wharf.client_dir().join("payload.bin");
    write_random_file(&local, 4 * MIB + 321);
    let payload = fs::read(&local).unwrap();

    let mut control = ControlOverSClient::start(wharf.explicit_port, version_flag, &session);
    control.expect(&format!("USER {}", wharf.user), 331);
    control.expect(&format!("PASS {}", wharf.password), 230);
    control.expect("PBSZ 0", 200);
    control.expect("PROT P", 200);
    control.expect("TYPE I", 200);
    control.expect("MKD drop", 257);
    wait_for_session_file(&session);

    // Upload: -no_ign_eof makes s_client send close_notify when its stdin ends.
    let port = control.epsv();
    control.send("STOR drop/payload.bin");
    let mut upload = data_client(port, version_flag, &session);
    upload.arg("-no_ign_eof");
    let output = run_with_input(&mut upload, &payload, Duration::from_secs(120));
    let (code, text) = control.reply();
    if code == 150 || code == 125 {
        let (done, text) = control.reply();
        assert_eq!(done, 226, "STOR completion: {text}\n{}", control.transcript);
    } else {
        panic!(
            "STOR preliminary reply: {text}\n{}\n{}",
            control.transcript,
            describe(&output)
        );
    }
    assert_same_file(&local, &home.copy_of("drop/payload.bin"));

    // Download: the server ends the data stream with close_notify; s_client then exits.
    let port = control.epsv();
    control.send("RETR drop/payload.bin");
    let output = run_with_timeout(
        &mut data_client(port, version_flag, &session),
        Duration::from_secs(120),
    );
    assert!(
        !output.killed,
        "download s_client hung\n{}",
        describe(&output.output)
    );
    let (code, text) = control.reply();
    assert!(
        code == 150 || code == 125,
        "RETR: {text}\n{}",
        control.transcript
    );
    let (done, text) = control.reply();
    assert_eq!(done, 226, "RETR completion: {text}\n{}", control.transcript);
    assert_eq!(
        sha256_bytes(&output.output.stdout),
        sha256_file(&local),
        "downloaded {} bytes through s_client, expected {}",
        output.output.stdout.len(),
        payload.len()
    );

    // Listing, rename, delete, rmdir on the same control connection.
    let port = control.epsv();
    control.send("NLST drop");
    let output = run_with_timeout(
        &mut data_client(port, version_flag, &session),
        Duration::from_secs(60),
    );
    control.reply();
    let (done, text) = control.reply();
    assert_eq!(done, 226, "NLST completion: {text}");
    let listing = String::from_utf8_lossy(&output.output.stdout);
    assert!(listing.contains("payload.bin"), "NLST drop: {listing:?}");

    control.expect("RNFR drop/payload.bin", 350);
    control.expect("RNTO kept.bin", 250);
    assert_same_file(&local, &home.copy_of("kept.bin"));
    control.expect("DELE kept.bin", 250);
    control.expect("RMD drop", 250);
    assert!(!home.exists("kept.bin") && !home.exists("drop"));
    control.expect("QUIT", 221);
}

#[test]
fn openssl_s_client_transfers_resuming_the_tls_1_2_control_session() {
    s_client_transfers("-tls1_2");
}

#[test]
fn openssl_s_client_transfers_resuming_the_tls_1_3_control_session() {
    s_client_transfers("-tls1_3");
}
