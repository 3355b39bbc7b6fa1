//! Operating a real `wharf`: config-file accounts made with `wharf hash-password`,
//! per-user session caps, bans after failed logins, bandwidth limits, timeouts,
//! the start-up summary, JSON logs, config validation and the SIGTERM drain.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

const PARTNER: &str = "partner";
const PARTNER_PASSWORD: &str = "correct-horse-battery";

/// A PHC hash made by the real `wharf hash-password`.
fn hash_password(password: &str) -> String {
    let out = run_with_input(
        Command::new(env!("CARGO_BIN_EXE_wharf")).args(["hash-password", "--password-stdin"]),
        format!("{password}\n").as_bytes(),
        Duration::from_secs(30),
    );
    assert_success(&out, "wharf hash-password");
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        hash.starts_with("$argon2id$"),
        "not an argon2id hash: {hash}"
    );
    hash
}

/// A server with one `[[user]]` partner whose extra settings are `user_extra`,
/// and the partner's home directory.
fn with_partner(user_extra: &str, top_extra: &str, args: &[&str]) -> (Wharf, tempfile::TempDir) {
    let home = tempfile::Builder::new()
        .prefix("wharf-partner-")
        .tempdir()
        .expect("partner home");
    let config = format!(
        "{top_extra}\n[[user]]\nname = \"{PARTNER}\"\npassword_hash = \"{}\"\nhome = \"{}\"\n{user_extra}\n",
        hash_password(PARTNER_PASSWORD),
        home.path().display()
    );
    let wharf = Wharf::start(
        WharfOptions::default()
            .config(config)
            .args(args.iter().copied()),
    );
    (wharf, home)
}

/// Stores `local` as `name` in the partner's home through FTPS (uploads are not
/// throttled), so the same test runs on local and on cluster storage.
fn put_as_partner(wharf: &Wharf, local: &std::path::Path, name: &str) {
    let out = run(Command::new("curl")
        .args(["-sS", "-k", "--ssl-reqd", "--max-time", "60", "--user"])
        .arg(format!("{PARTNER}:{PARTNER_PASSWORD}"))
        .arg("-T")
        .arg(local)
        .arg(wharf.explicit_url(name)));
    assert_success(&out, &format!("store {name} as the partner"));
}

fn plain_login(
    wharf: &Wharf,
    user: &str,
    password: &str,
) -> (crate::support::control::Control, u16) {
    let mut c = wharf.control();
    let r = c.cmd(&format!("USER {user}"));
    assert_eq!(r.code, 331, "USER: {r}");
    let r = c.cmd(&format!("PASS {password}"));
    (c, r.code)
}

#[test]
fn per_user_session_cap_refuses_the_extra_login_until_one_ends() {
    let (wharf, _home) = with_partner("max_sessions = 1", "", &["--allow-plain-login"]);
    let (mut first, code) = plain_login(&wharf, PARTNER, PARTNER_PASSWORD);
    assert_eq!(code, 230);
    let (_second, code) = plain_login(&wharf, PARTNER, PARTNER_PASSWORD);
    assert_eq!(code, 530, "second concurrent session must be refused");
    assert_eq!(first.cmd("QUIT").code, 221);
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_third, code) = plain_login(&wharf, PARTNER, PARTNER_PASSWORD);
        if code == 230 {
            break;
        }
        assert!(Instant::now() < deadline, "slot not released after QUIT");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn repeated_login_failures_ban_the_address_but_not_other_clients() {
    let limits = "[limits]\nlogin_failure_delay_ms = 50\n[defender]\nthreshold = 3\nlogin_failure = 1\nban_seconds = 120";
    let (mut wharf, _home) = with_partner("", limits, &["--allow-plain-login"]);
    let (mut c, code) = plain_login(&wharf, PARTNER, "wrong-1");
    assert_eq!(code, 530);
    assert_eq!(c.cmd("USER partner").code, 331);
    assert_eq!(c.cmd("PASS wrong-2").code, 530);
    assert_eq!(c.cmd("USER partner").code, 331);
    let r = c.cmd("PASS wrong-3");
    assert_eq!(r.code, 421, "third failure bans and closes: {r}");

    // The banned address is turned away at connect, even with the right password.
    let (mut banned, greeting) = crate::support::control::Control::connect(wharf.explicit_port);
    assert_eq!(
        greeting.code, 421,
        "banned address greeted with: {greeting}"
    );
    assert!(greeting.text().contains("banned"), "{greeting}");
    let (_, closed) = banned.read_until_closed(Duration::from_secs(5));
    assert!(closed, "connection of a banned address must be closed");

    // A client on another address logs in as usual.
    let script = format!(
        "import ftplib\nf = ftplib.FTP(source_address=('127.0.0.2', 0), timeout=10)\n\
         f.connect('127.0.0.1', {})\nprint(f.login('{PARTNER}', '{PARTNER_PASSWORD}'))\nf.quit()",
        wharf.explicit_port
    );
    let out = run(Command::new("python3").args(["-c", &script]));
    assert_success(&out, "login from 127.0.0.2");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("230"));
    assert!(wharf.stderr().contains("address banned"), "ban is logged");
    assert!(wharf.is_running());
}

#[test]
fn download_rate_limit_bounds_the_transfer_speed() {
    let (wharf, _home) = with_partner("download_rate = 1000000", "", &[]);
    let home = tempfile::Builder::new().tempdir().unwrap();
    let local = home.path().join("three-mb.bin");
    write_random_file(&local, 3_000_000);
    put_as_partner(&wharf, &local, "three-mb.bin");
    let back = home.path().join("back.bin");
    let started = Instant::now();
    let out = run(Command::new("curl")
        .args(["-sS", "-k", "--ssl-reqd", "--max-time", "60", "--user"])
        .arg(format!("{PARTNER}:{PARTNER_PASSWORD}"))
        .arg(wharf.explicit_url("three-mb.bin"))
        .arg("-o")
        .arg(&back));
    let elapsed = started.elapsed();
    assert_success(&out, "throttled download");
    assert_same_file(&local, &back);
    assert!(
        elapsed >= Duration::from_millis(2500),
        "3 MB at 1 MB/s finished in {elapsed:?}: the limit is not applied"
    );
}

#[test]
fn idle_and_login_timeouts_close_the_control_connection_with_421() {
    let (wharf, _home) = with_partner(
        "",
        "[limits]\nlogin_timeout = 2\nidle_timeout = 2",
        &["--allow-plain-login"],
    );
    let mut silent = wharf.control();
    let (bytes, closed) = silent.read_until_closed(Duration::from_secs(10));
    assert!(closed, "a connection that never logs in is closed");
    assert!(
        String::from_utf8_lossy(&bytes).starts_with("421"),
        "{bytes:?}"
    );

    let (mut idle, code) = plain_login(&wharf, PARTNER, PARTNER_PASSWORD);
    assert_eq!(code, 230);
    let (bytes, closed) = idle.read_until_closed(Duration::from_secs(10));
    assert!(closed, "an idle logged-in connection is closed");
    assert!(
        String::from_utf8_lossy(&bytes).contains("421 Idle timeout"),
        "{bytes:?}"
    );
}

#[test]
fn startup_summary_names_listeners_passive_range_data_dir_and_certificate_fingerprint() {
    let wharf = Wharf::start_default();
    let log = wharf.stderr();
    assert!(
        log.contains(&format!(
            "explicit FTPS on 127.0.0.1:{}",
            wharf.explicit_port
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "implicit FTPS on 127.0.0.1:{}",
            wharf.implicit_port
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("{}-{}", wharf.pasv_ports.0, wharf.pasv_ports.1)),
        "{log}"
    );
    assert!(log.contains(&wharf.data_dir.display().to_string()), "{log}");
    // The certificate the server actually presents to a client.
    let presented = wharf.root().join("presented.pem");
    let out = run(Command::new("sh").arg("-c").arg(format!(
        "openssl s_client -starttls ftp -connect 127.0.0.1:{} </dev/null 2>/dev/null | openssl x509 -out {}",
        wharf.explicit_port,
        presented.display()
    )));
    assert_success(&out, "fetch the presented certificate");
    let out = run(Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&presented));
    assert_success(&out, "openssl x509 -fingerprint");
    let fingerprint = String::from_utf8_lossy(&out.stdout)
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        log.contains(&fingerprint),
        "fingerprint {fingerprint} not in:\n{log}"
    );
    let out = run(Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&presented));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("id-ecPublicKey") && text.contains("P-256"),
        "{text}"
    );
}

#[test]
fn json_log_format_writes_one_json_object_per_line_including_transfers() {
    let wharf = Wharf::start(WharfOptions::default().args(["--log-format", "json"]));
    let local = wharf.client_dir().join("j.bin");
    write_random_file(&local, 12345);
    let out = run(wharf
        .curl()
        .arg("-T")
        .arg(&local)
        .arg(wharf.explicit_url("j.bin")));
    assert_success(&out, "upload");
    let log = wharf.stderr();
    // Only complete lines: the server may be writing the last one right now.
    let check =
        "import json,sys\nlines=[l for l in sys.stdin.read().split('\\n')[:-1] if l.strip()]\n\
                 objs=[json.loads(l) for l in lines]\n\
                 t=[o for o in objs if o.get('fields',{}).get('message')=='transfer completed']\n\
                 assert t and t[0]['fields']['bytes']==12345, t\nprint(len(objs))";
    let out = run_with_input(
        Command::new("python3").args(["-c", check]),
        log.as_bytes(),
        Duration::from_secs(20),
    );
    assert_success(&out, "every log line parses as JSON with a transfer event");
}

#[test]
fn invalid_config_is_refused_with_a_message_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    fs::write(&bad, "listen = \"127.0.0.1:2121\"\nlisten_typo = 1\n").unwrap();
    let out = run(Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["serve", "--check-config", "--config"])
        .arg(&bad));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("listen_typo"),
        "{}",
        describe(&out)
    );

    let good = dir.path().join("good.toml");
    fs::write(
        &good,
        "pasv_ports = \"51000-51099\"\n[policy]\nrequire_ssl_reuse = false\n",
    )
    .unwrap();
    let out = run(Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["serve", "--check-config", "--config"])
        .arg(&good)
        .arg("--data-dir")
        .arg(dir.path().join("d")));
    assert_success(&out, "check-config of a good file");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("51000-51099"), "{err}");
    assert!(
        err.contains("need not resume"),
        "relaxed policy is logged: {err}"
    );
}

#[test]
fn config_check_prints_the_effective_configuration_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let hashed = wharf_cli(
        &["hash-password", "--password-stdin"],
        Some("bob-Secret-9\n"),
    );
    assert_success(&hashed, "hash-password");
    let hash = String::from_utf8_lossy(&hashed.stdout).trim().to_owned();
    let file = dir.path().join("wharf.toml");
    let write = |extra: &str| {
        fs::write(
            &file,
            format!(
                "pasv_ports = \"51000-51099\"\njoin = \"127.0.0.1:7999\"\n\
                 join_token = \"wharf1.topsecret.ABCD\"\n{extra}\n\
                 [policy]\nrequire_ssl_reuse = false\n\n\
                 [[user]]\nname = \"bob\"\npassword_hash = \"{hash}\"\nhome = \"/srv/bob\"\n"
            ),
        )
        .unwrap()
    };
    let check = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wharf"));
        cmd.args(["config", "check"])
            .arg(&file)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .envs(env.iter().copied());
        run(&mut cmd)
    };

    write("");
    let out = check(&[("WHARF_MAX_PER_IP", "7")]);
    assert_success(&out, "config check of a valid file");
    let printed = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "pasv_ports = \"51000-51099\"",
        // `require_ssl_reuse = false` in the file, spelled as today's key.
        "data_tls = \"any\"",
        "name = \"bob\"",
        "join = \"127.0.0.1:7999\"",
        // The environment is applied on top of the file, as `serve` does.
        "max_per_ip = 7",
        // Defaults are spelled out.
        "idle_timeout = 600",
        "listen = \"127.0.0.1:2121\"",
    ] {
        assert!(
            printed.contains(expected),
            "{expected:?} missing:\n{printed}"
        );
    }
    assert!(
        !printed.contains("topsecret"),
        "join token printed:\n{printed}"
    );
    assert!(
        !printed.contains(&hash),
        "password hash printed:\n{printed}"
    );
    assert_eq!(printed.matches("<redacted>").count(), 2, "{printed}");

    write("cert = \"/nonexistent/chain.pem\"\nkey = \"/nonexistent/key.pem\"");
    let out = check(&[]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/chain.pem"),
        "a certificate that does not load is named:\n{}",
        describe(&out)
    );

    fs::write(&file, "join = \"127.0.0.1:7999\"\n").unwrap();
    let out = check(&[]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--join-token"),
        "join without a token is refused:\n{}",
        describe(&out)
    );
}

#[test]
fn sigterm_lets_a_running_transfer_finish_then_exits() {
    let (mut wharf, _home) = with_partner("download_rate = 2000000", "shutdown_grace = 30", &[]);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("six-mb.bin");
    write_random_file(&local, 6_000_000);
    put_as_partner(&wharf, &local, "six-mb.bin");
    let back = dir.path().join("back.bin");
    let mut curl = Command::new("curl");
    curl.args(["-sS", "-k", "--ssl-reqd", "--max-time", "60", "--user"])
        .arg(format!("{PARTNER}:{PARTNER_PASSWORD}"))
        .arg(wharf.explicit_url("six-mb.bin"))
        .arg("-o")
        .arg(&back);
    let download = std::thread::spawn(move || run(&mut curl));
    // Wait until bytes flow, then ask the server to stop.
    let deadline = Instant::now() + Duration::from_secs(20);
    while fs::metadata(&back).map(|m| m.len()).unwrap_or(0) < 500_000 {
        assert!(Instant::now() < deadline, "download did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = run(Command::new("kill").args(["-TERM", &wharf.pid().to_string()]));
    assert_success(&out, "kill -TERM");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", wharf.explicit_port)).is_err(),
        "listener must be closed while draining"
    );
    let out = download.join().unwrap();
    assert_success(&out, "download across SIGTERM");
    assert_same_file(&local, &back);
    let status = wharf
        .wait_exit(Duration::from_secs(10))
        .expect("server exits after the drain");
    assert!(status.success(), "exit status {status}");
    let log = wharf.stderr();
    assert!(
        log.contains("SIGTERM received") && log.contains("shutdown complete"),
        "{log}"
    );
}
