//! Access control and the defender against a real `wharf` process: the global allow and
//! deny lists, per-user deny lists and command allow-lists, bans for protocol abuse and
//! connection floods, the defender's allow list, the audit log, and the modes of the
//! files a node creates.

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::control::{Control, Reply};
use crate::support::*;

const PARTNER: &str = "partner";
const PARTNER_PASSWORD: &str = "tide-table-4471";

fn greeting_from(source: Ipv4Addr, wharf: &Wharf) -> Reply {
    let mut c = Control::connect_from(source, wharf.explicit_port);
    c.reply().expect("a greeting")
}

fn greeting(wharf: &Wharf) -> Reply {
    Control::connect(wharf.explicit_port).1
}

/// Adds the partner account through the admin CLI (the cluster's `users` table).
fn add_partner(wharf: &Wharf, extra: &[&str]) {
    let mut args = vec!["user", "add", PARTNER, "--password-stdin"];
    args.extend_from_slice(extra);
    let out = wharf.cli(&args, Some(&format!("{PARTNER_PASSWORD}\n")));
    assert_success(&out, "wharf user add");
}

/// A plain-text login (the server runs with --allow-plain-login) from `source`.
fn login_from(source: Ipv4Addr, wharf: &Wharf, user: &str, password: &str) -> (Control, Reply) {
    let mut c = Control::connect_from(source, wharf.explicit_port);
    let hello = c.reply().expect("a greeting");
    assert_eq!(hello.code, 220, "{hello}");
    assert_eq!(c.cmd(&format!("USER {user}")).code, 331);
    let reply = c.cmd(&format!("PASS {password}"));
    (c, reply)
}

#[test]
fn global_deny_list_refuses_its_networks_at_connect() {
    let wharf = Wharf::start(WharfOptions::default().args(["--deny-from", "127.0.0.2/32"]));
    let refused = greeting_from(Ipv4Addr::new(127, 0, 0, 2), &wharf);
    assert_eq!(refused.code, 421, "{refused}");
    assert!(refused.text().contains("not allowed"), "{refused}");
    assert_eq!(greeting_from(Ipv4Addr::new(127, 0, 0, 1), &wharf).code, 220);
}

#[test]
fn global_allow_list_admits_only_its_networks_and_deny_wins_inside_it() {
    // 127.0.0.1 stays allowed: the harness checks the server is up from there.
    let wharf = Wharf::start(WharfOptions::default().config(
        "[access]\nallow = [\"127.0.0.1/32\", \"127.0.0.2/31\"]\ndeny = [\"127.0.0.3/32\"]\n",
    ));
    assert_eq!(greeting_from(Ipv4Addr::new(127, 0, 0, 2), &wharf).code, 220);
    for refused in [Ipv4Addr::new(127, 0, 0, 4), Ipv4Addr::new(127, 0, 0, 3)] {
        let reply = greeting_from(refused, &wharf);
        assert_eq!(reply.code, 421, "{refused}: {reply}");
    }
}

#[test]
fn per_user_deny_list_refuses_the_login_from_its_networks() {
    let wharf = Wharf::start(WharfOptions::default().arg("--allow-plain-login"));
    add_partner(
        &wharf,
        &["--allow", "127.0.0.0/8", "--deny", "127.0.0.2/32"],
    );
    let (_, denied) = login_from(
        Ipv4Addr::new(127, 0, 0, 2),
        &wharf,
        PARTNER,
        PARTNER_PASSWORD,
    );
    assert_eq!(denied.code, 530, "{denied}");
    let (_, allowed) = login_from(
        Ipv4Addr::new(127, 0, 0, 4),
        &wharf,
        PARTNER,
        PARTNER_PASSWORD,
    );
    assert_eq!(allowed.code, 230, "{allowed}");
    let listed = wharf.cli(&["user", "list"], None);
    assert_success(&listed, "wharf user list");
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains("deny=127.0.0.2/32"), "{listed}");
}

#[test]
fn a_partner_restricted_to_stor_uploads_and_nothing_else() {
    let wharf = Wharf::start_default();
    add_partner(&wharf, &["--commands", "stor"]);
    let local = wharf.client_dir().join("drop.bin");
    write_random_file(&local, 256 * 1024);

    // curl's upload (PWD, EPSV, TYPE I, STOR) needs nothing beyond STOR.
    let upload = run(wharf
        .curl_as(PARTNER, PARTNER_PASSWORD)
        .arg("-T")
        .arg(&local)
        .arg(wharf.explicit_url("drop.bin")));
    assert_success(&upload, "upload as the STOR-only partner");
    assert_same_file(&local, &wharf.home(PARTNER).join("drop.bin"));

    let back = wharf.client_dir().join("back.bin");
    let download = run(wharf
        .curl_as(PARTNER, PARTNER_PASSWORD)
        .arg("-o")
        .arg(&back)
        .arg(wharf.explicit_url("drop.bin")));
    assert!(
        !download.status.success(),
        "RETR must be refused: {}",
        describe(&download)
    );
    let listing = run(wharf
        .curl_as(PARTNER, PARTNER_PASSWORD)
        .arg(wharf.explicit_url("")));
    assert!(
        !listing.status.success(),
        "LIST must be refused: {}",
        describe(&listing)
    );
    let log = wharf.stderr();
    assert!(
        log.contains("command refused by the user's command list"),
        "{}",
        wharf.logs()
    );
}

#[test]
fn an_unknown_command_in_a_command_list_is_an_error() {
    let wharf = Wharf::start_default();
    let out = wharf.cli(
        &[
            "user",
            "add",
            PARTNER,
            "--password-stdin",
            "--commands",
            "STOR,UPLOAD",
        ],
        Some("pw\n"),
    );
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("UPLOAD"),
        "{}",
        describe(&out)
    );
}

#[test]
fn port_bounce_attempts_score_as_protocol_abuse_and_ban_the_address() {
    let wharf = Wharf::start(
        WharfOptions::default()
            .arg("--allow-plain-login")
            .config("[defender]\nthreshold = 2\nprotocol_abuse = 1\nban_seconds = 120\n"),
    );
    let (mut c, reply) = login_from(
        Ipv4Addr::new(127, 0, 0, 1),
        &wharf,
        &wharf.user,
        &wharf.password,
    );
    assert_eq!(reply.code, 230, "{reply}");
    // Another host, then a privileged port on the client's own address.
    assert_eq!(c.cmd("PORT 10,0,0,1,4,1").code, 500);
    assert_eq!(c.cmd("EPRT |1|127.0.0.1|25|").code, 500);
    let refused = greeting(&wharf);
    assert_eq!(refused.code, 421, "{refused}");
    assert!(refused.text().contains("banned"), "{refused}");
    let bans = wharf.audited(&[("event", "ban"), ("reason", "protocol abuse")]);
    assert_eq!(bans.len(), 1, "{:?}", wharf.audit_lines());
    assert_eq!(bans[0]["fields"]["ip"].as_str(), Some("127.0.0.1"));
    let listed = wharf.cli(&["ban", "list"], None);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("protocol abuse"),
        "{}",
        describe(&listed)
    );
}

#[test]
fn a_connection_flood_is_banned_and_other_addresses_are_not() {
    let wharf = Wharf::start(
        WharfOptions::default()
            .args(["--max-per-ip", "2"])
            .config("[defender]\nthreshold = 6\nflood = 3\nban_seconds = 120\n"),
    );
    let flooder = Ipv4Addr::new(127, 0, 0, 5);
    let _held: Vec<Control> = (0..2)
        .map(|_| {
            let mut c = Control::connect_from(flooder, wharf.explicit_port);
            assert_eq!(c.reply().unwrap().code, 220);
            c
        })
        .collect();
    let over = greeting_from(flooder, &wharf);
    assert!(over.text().contains("Too many connections"), "{over}");
    let over = greeting_from(flooder, &wharf);
    assert!(over.text().contains("Too many connections"), "{over}");
    let banned = greeting_from(flooder, &wharf);
    assert!(banned.text().contains("banned"), "{banned}");
    assert_eq!(
        wharf
            .audited(&[("event", "ban"), ("reason", "connection flood")])
            .len(),
        1,
        "{:?}",
        wharf.audit_lines()
    );
    assert_eq!(greeting_from(Ipv4Addr::new(127, 0, 0, 6), &wharf).code, 220);
}

#[test]
fn addresses_on_the_defender_allow_list_are_never_banned() {
    let wharf = Wharf::start(
        WharfOptions::default()
            .arg("--allow-plain-login")
            .config("[limits]\nlogin_failure_delay_ms = 10\n[defender]\nthreshold = 1\nallow = [\"127.0.0.1/32\"]\n"),
    );
    for attempt in 0..4 {
        let (_, reply) = login_from(
            Ipv4Addr::new(127, 0, 0, 1),
            &wharf,
            &wharf.user,
            &format!("wrong-{attempt}"),
        );
        assert_eq!(reply.code, 530, "attempt {attempt}: {reply}");
    }
    assert_eq!(greeting(&wharf).code, 220);
    // The same failures from an address not on the list ban it at once.
    let (_, reply) = login_from(Ipv4Addr::new(127, 0, 0, 7), &wharf, &wharf.user, "wrong");
    assert_eq!(reply.code, 421, "{reply}");
}

#[test]
fn the_audit_log_records_logins_and_admin_actions_without_secrets() {
    let wharf = Wharf::start(WharfOptions::default().arg("--allow-plain-login"));
    let (_, failed) = login_from(
        Ipv4Addr::new(127, 0, 0, 1),
        &wharf,
        &wharf.user,
        "not-the-password",
    );
    assert_eq!(failed.code, 530);
    let (_, ok) = login_from(
        Ipv4Addr::new(127, 0, 0, 1),
        &wharf,
        &wharf.user,
        &wharf.password,
    );
    assert_eq!(ok.code, 230);
    add_partner(&wharf, &[]);

    let user = wharf.user.as_str();
    for outcome in ["failed", "ok"] {
        let logins = wharf.audited(&[("event", "login"), ("user", user), ("outcome", outcome)]);
        assert_eq!(logins.len(), 1, "{outcome}: {:?}", wharf.audit_lines());
        assert_eq!(logins[0]["fields"]["ip"].as_str(), Some("127.0.0.1"));
        assert!(logins[0]["timestamp"].is_string());
    }
    let added = wharf.audited(&[
        ("event", "admin"),
        ("action", &format!("add user {PARTNER}")),
    ]);
    assert_eq!(added.len(), 1, "{:?}", wharf.audit_lines());

    let text = fs::read_to_string(wharf.data_dir.join("audit.log")).unwrap();
    for secret in [
        PARTNER_PASSWORD,
        "not-the-password",
        wharf.password.as_str(),
        "$argon2",
    ] {
        assert!(
            !text.contains(secret),
            "{secret:?} in the audit log:\n{text}"
        );
    }
}

/// Every file and directory under `dir` that carries group or other permissions.
fn open_to_others(dir: &Path, found: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            found.push(format!("{} {mode:o}", path.display()));
        }
        if meta.is_dir() {
            open_to_others(&path, found);
        }
    }
}

#[test]
fn files_and_directories_the_node_creates_are_private() {
    let wharf = Wharf::start_default();
    let local = wharf.client_dir().join("private.bin");
    write_random_file(&local, 64 * 1024);
    let upload = run(wharf
        .curl()
        .arg("-T")
        .arg(&local)
        .arg(wharf.explicit_url("private.bin")));
    assert_success(&upload, "upload");
    let mode = fs::metadata(&wharf.data_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the data directory itself");
    let mut found = Vec::new();
    open_to_others(&wharf.data_dir, &mut found);
    assert!(found.is_empty(), "readable by others: {found:#?}");
}

/// Whether any file of the node's store (`DATA_DIR/cluster/raft`) contains `needle`.
const SECRETS_KEY: &str = "5f0c2a8e4b7d19c3a6e0f4b2d8c1a7e95b3f0d6c2e8a4b1f7d3c9e5a0b6f2d8c";
const OTHER_KEY: &str = "0f0c2a8e4b7d19c3a6e0f4b2d8c1a7e95b3f0d6c2e8a4b1f7d3c9e5a0b6f2d8c";

/// `wharf serve` on `wharf`'s data directory with every listener on a free port and
/// `extra` arguments; expected to refuse to start. Returns its stderr.
fn refused_start(wharf: &Wharf, extra: &[&str]) -> String {
    let data_dir = wharf.data_dir.display().to_string();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"));
    cmd.args(["serve", "--data-dir", &data_dir, "--storage", "local"]);
    for flag in [
        "--listen",
        "--implicit-listen",
        "--cluster-listen",
        "--http-listen",
    ] {
        cmd.args([flag, "127.0.0.1:0"]);
    }
    cmd.args(extra);
    let outcome = run_with_timeout(&mut cmd, std::time::Duration::from_secs(60));
    assert!(
        !outcome.killed && !outcome.output.status.success(),
        "the node must refuse to start: {}",
        describe(&outcome.output)
    );
    String::from_utf8_lossy(&outcome.output.stderr).into_owned()
}

#[test]
fn private_keys_and_ticket_keys_are_sealed_in_the_store_with_the_operators_key() {
    // Without a key the store holds the certificate and CA keys in clear: the search
    // below can find them.
    let clear = Wharf::start_default();
    assert!(
        clear.store_contains(b"PRIVATE KEY"),
        "control: clear keys are found"
    );
    drop(clear);

    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("secrets.key");
    fs::write(&key_file, format!("{SECRETS_KEY}\n")).unwrap();
    let key_arg = key_file.display().to_string();
    let mut wharf = Wharf::start(WharfOptions::default().args(["--secrets-key-file", &key_arg]));
    // TLS works: the node opened its certificate's key, and a resumed data connection
    // used a ticket key it opened too.
    let listing = run(wharf.curl().arg(wharf.explicit_url("")));
    assert_success(&listing, "a listing over FTPS with sealed keys");
    assert!(
        !wharf.store_contains(b"PRIVATE KEY"),
        "a key in clear in the store"
    );
    assert!(
        wharf.store_contains(b"sealed:v1:"),
        "no sealed value in the store"
    );

    wharf.kill9();
    let wrong_key = key_dir.path().join("other.key");
    fs::write(&wrong_key, OTHER_KEY).unwrap();
    let stderr = refused_start(
        &wharf,
        &["--secrets-key-file", &wrong_key.display().to_string()],
    );
    assert!(stderr.contains("sealed with secrets key"), "{stderr}");
    let stderr = refused_start(&wharf, &[]);
    assert!(stderr.contains("no secrets key"), "{stderr}");

    // The right key opens them again.
    wharf.restart();
    let listing = run(wharf.curl().arg(wharf.explicit_url("")));
    assert_success(&listing, "a listing after the restart");
}
