//! The TLS policies and their relax switches: TLS before USER, PROT P before data, and
//! data connections that must resume the control session — plus accounts from a config
//! file (argon2id hash, permissions).

use std::fs;
use std::time::Duration;

use crate::support::*;

fn policy(wharf: &Wharf, scenario: &str, extra: &[&str]) {
    let mut cmd = wharf.python("policy.py");
    cmd.args(extra).arg(scenario);
    let output = run(&mut cmd);
    assert_success(&output, &format!("policy.py {scenario}"));
}

#[test]
fn user_before_auth_tls_is_refused_with_530() {
    let wharf = Wharf::start_default();
    let mut control = wharf.control();
    let reply = control.cmd(&format!("USER {}", wharf.user));
    assert_eq!(reply.code, 530, "USER before AUTH TLS: {reply}");
    let reply = control.cmd(&format!("PASS {}", wharf.password));
    assert!(
        reply.code == 503 || reply.code == 530,
        "PASS after a refused USER must not log in: {reply}"
    );
    let reply = control.cmd("PWD");
    assert!(
        reply.code == 530 || reply.code == 503,
        "not logged in: {reply}"
    );
    // TLS is still on offer on the same connection.
    let reply = control.cmd("AUTH TLS");
    assert_eq!(reply.code, 234, "AUTH TLS after the refusal: {reply}");
}

#[test]
fn plain_login_is_allowed_with_allow_plain_login() {
    let wharf = Wharf::start(WharfOptions::default().arg("--allow-plain-login"));
    let mut control = wharf.control();
    assert_eq!(control.cmd(&format!("USER {}", wharf.user)).code, 331);
    assert_eq!(control.cmd(&format!("PASS {}", wharf.password)).code, 230);
    let reply = control.cmd("PWD");
    assert_eq!(reply.code, 257, "{reply}");
    let log = wharf.stderr().to_lowercase();
    assert!(
        log.contains("plain") || log.contains("relax"),
        "the relaxed policy is logged\n{}",
        wharf.logs()
    );
}

#[test]
fn data_transfer_after_prot_c_is_refused_by_default() {
    let wharf = Wharf::start_default();
    policy(&wharf, "prot_c_refused", &[]);
}

#[test]
fn data_transfer_without_prot_p_is_refused_by_default() {
    let wharf = Wharf::start_default();
    policy(&wharf, "no_prot_refused", &[]);
}

#[test]
fn prot_c_data_transfers_work_with_allow_plain_data() {
    let wharf = Wharf::start(WharfOptions::default().arg("--allow-plain-data"));
    let local = wharf.client_dir().join("clear.bin");
    let back = wharf.client_dir().join("clear-back.bin");
    write_random_file(&local, 1024 * 1024);
    let mut cmd = wharf.batch(
        "reuse",
        &[
            format!("put {} clear.bin", local.display()),
            format!("get clear.bin {}", back.display()),
        ],
    );
    cmd.args(["--prot", "c"]);
    let output = run(&mut cmd);
    assert_success(&output, "PROT C transfers with --allow-plain-data");
    assert_same_file(&local, &wharf.stored().copy_of("clear.bin"));
    assert_same_file(&local, &back);
}

#[test]
fn data_connection_that_does_not_resume_the_control_session_gets_425() {
    let wharf = Wharf::start_default();
    policy(&wharf, "fresh_session_refused", &[]);
}

/// Operators diagnose "login works, listing fails" from the log: the refusal must be
/// logged at the default level with its cause (a client that does not resume TLS).
#[test]
fn data_connection_refused_for_missing_resumption_is_logged_with_its_cause() {
    let wharf = Wharf::start_default();
    policy(&wharf, "fresh_session_refused", &[]);
    let log = wharf.stderr().to_lowercase();
    assert!(
        log.contains("resum") || log.contains("reuse"),
        "the refusal is logged with its cause\n{}",
        wharf.logs()
    );
}

#[test]
fn data_connection_without_resumption_is_accepted_with_no_require_ssl_reuse() {
    let wharf = Wharf::start(WharfOptions::default().arg("--no-require-ssl-reuse"));
    policy(&wharf, "fresh_session_allowed", &[]);
}

#[test]
fn data_connections_resuming_a_tls_1_2_control_session_are_accepted() {
    let wharf = Wharf::start_default();
    policy(&wharf, "reuse_accepted", &["--tls-version", "1.2"]);
}

#[test]
fn data_connections_resuming_a_tls_1_3_control_session_are_accepted() {
    let wharf = Wharf::start_default();
    policy(&wharf, "reuse_accepted", &["--tls-version", "1.3"]);
}

#[test]
fn relaxed_policies_can_come_from_the_config_file() {
    let wharf = Wharf::start(WharfOptions::default().config(
        "[policy]\nrequire_tls_login = false\nrequire_prot_p = false\nrequire_ssl_reuse = false\n",
    ));
    let mut control = wharf.control();
    assert_eq!(control.cmd(&format!("USER {}", wharf.user)).code, 331);
    assert_eq!(control.cmd(&format!("PASS {}", wharf.password)).code, 230);
    policy(&wharf, "fresh_session_allowed", &[]);
}

#[test]
fn no_active_refuses_port_and_eprt() {
    let wharf = Wharf::start(WharfOptions::default().arg("--no-active"));
    let output = run(&mut wharf.batch(
        "reuse",
        &[
            "raw PORT 127,0,0,1,200,10".into(),
            "raw EPRT |1|127.0.0.1|51210|".into(),
        ],
    ));
    assert_success(&output, "raw PORT/EPRT");
    for fields in tagged(&output, "RAW") {
        assert!(
            fields[0].starts_with('5'),
            "PORT/EPRT must be refused with --no-active: {fields:?}"
        );
    }
    // Passive mode still works.
    assert_success(
        &run(&mut wharf.batch("reuse", &["nlst".into()])),
        "passive NLST",
    );
}

fn hash_password(password: &str) -> String {
    let output = run_with_input(
        std::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(["hash-password", "--password-stdin"]),
        format!("{password}\n").as_bytes(),
        Duration::from_secs(60),
    );
    assert_success(&output, "wharf hash-password");
    let hash = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(
        hash.starts_with("$argon2id$"),
        "an argon2id PHC string: {hash:?}"
    );
    hash
}

/// One ftps_batch.py session as `user`.
fn batch_as(wharf: &Wharf, user: &str, password: &str, steps: &[String]) -> std::process::Output {
    let mut cmd = python("ftps_batch.py");
    cmd.args(["--port", &wharf.explicit_port.to_string()])
        .args(["--user", user, "--password", password]);
    for step in steps {
        cmd.args(["--step", step]);
    }
    run(&mut cmd)
}

/// Accounts whose homes are absolute paths: directories on disk with local storage,
/// directories of the namespace with cluster storage. A third account (`keeper`) whose
/// home holds both stands in for the operator: it places carol's file and looks at what
/// bob and carol left, the same way on either storage.
#[test]
fn config_file_accounts_log_in_with_argon2_hashes_and_get_their_permissions() {
    let bob_hash = hash_password("bob-Secret-9");
    let carol_hash = hash_password("carol-Secret-9");
    let keeper_hash = hash_password("keeper-Secret-9");
    let scratch = tempfile::tempdir().unwrap();
    let bob_home = scratch.path().join("bob-home");
    let carol_home = scratch.path().join("carol-home");
    fs::create_dir_all(&bob_home).unwrap();
    fs::create_dir_all(&carol_home).unwrap();
    let config = format!(
        r#"
[[user]]
name = "bob"
password_hash = "{bob_hash}"
home = "{}"
permissions = ["list", "read", "write", "delete", "rename", "mkdir"]

[[user]]
name = "carol"
password_hash = "{carol_hash}"
home = "{}"
permissions = ["list", "read"]

[[user]]
name = "keeper"
password_hash = "{keeper_hash}"
home = "{}"
permissions = ["list", "read", "write", "delete", "rename", "mkdir"]
"#,
        bob_home.display(),
        carol_home.display(),
        scratch.path().display()
    );
    let wharf = Wharf::start(WharfOptions::default().config(config));
    let keeper = |steps: &[String]| batch_as(&wharf, "keeper", "keeper-Secret-9", steps);
    let readme = wharf.client_dir().join("readme.txt");
    fs::create_dir_all(wharf.client_dir()).unwrap();
    fs::write(&readme, b"read only").unwrap();
    let out = keeper(&[
        "raw MKD carol-home".to_string(),
        format!("put {} carol-home/readme.txt", readme.display()),
    ]);
    assert_success(&out, "keeper places carol's file");

    let local = wharf.client_dir().join("bob.bin");
    write_random_file(&local, 100_000);
    let out = batch_as(
        &wharf,
        "bob",
        "bob-Secret-9",
        &[format!("put {} bob.bin", local.display())],
    );
    assert_success(&out, "bob uploads");
    let seen = wharf.client_dir().join("bob-seen.bin");
    let out = keeper(&[format!("get bob-home/bob.bin {}", seen.display())]);
    assert_success(&out, "keeper reads bob's upload");
    assert_same_file(&local, &seen);

    let back = wharf.client_dir().join("carol.txt");
    let output = batch_as(
        &wharf,
        "carol",
        "carol-Secret-9",
        &[
            format!("get readme.txt {}", back.display()),
            "raw DELE readme.txt".to_string(),
            "raw MKD newdir".to_string(),
            format!("put {} nope.bin", local.display()),
        ],
    );
    assert_eq!(fs::read(&back).unwrap(), b"read only", "carol can read");
    for fields in tagged(&output, "RAW") {
        assert!(
            fields[0].starts_with("550"),
            "carol may not change anything: {fields:?}"
        );
    }
    assert!(
        !output.status.success(),
        "carol's STOR is refused\n{}",
        describe(&output)
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("550"),
        "{}",
        describe(&output)
    );
    let out = keeper(&["nlst carol-home".to_string()]);
    assert_success(&out, "keeper lists carol's home");
    let names: Vec<String> = tagged(&out, "NLST")
        .into_iter()
        .map(|f| f[0].rsplit('/').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, vec!["readme.txt"], "carol's home is unchanged");

    let output = batch_as(&wharf, "bob", "wrong-password", &[]);
    assert!(!output.status.success(), "a wrong password is refused");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("530"),
        "{}",
        describe(&output)
    );
}

/// A rustls client on TLS 1.3 uses each ticket once and asks for a new one
/// on every resumed connection (RFC 9149): data connections must answer, or
/// the third transfer of a session finds no ticket left, does a full
/// handshake and is refused (425) for not resuming. (Clients that do not ask
/// get no ticket on data connections: see `curl_with_pasv_instead_of_epsv_transfers`.)
#[test]
fn a_tls13_client_that_asks_for_tickets_resumes_every_transfer() {
    let wharf = Wharf::start_default();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let server = std::net::SocketAddr::from(([127, 0, 0, 1], wharf.explicit_port));
        let connector = wharf_client::Connector::new(wharf_client::TlsVersion::Tls13, true)
            .expect("a TLS 1.3 connector");
        let mut session =
            wharf_client::Session::open(server, &wharf.user, &wharf.password, &connector)
                .await
                .expect("login over TLS 1.3");
        session
            .prepare_transfers()
            .await
            .expect("PBSZ, PROT P, TYPE I");
        for round in 0..6u8 {
            let name = format!("tls13-{round}.bin");
            let content = vec![round; 70_000 + usize::from(round)];
            session
                .store(&name, &content)
                .await
                .unwrap_or_else(|e| panic!("STOR {round}: {e:#}"));
            let back = session
                .retrieve_bytes(&name)
                .await
                .unwrap_or_else(|e| panic!("RETR {round}: {e:#}"));
            assert_eq!(back, content, "round {round}");
        }
        session.quit().await;
    });
}
