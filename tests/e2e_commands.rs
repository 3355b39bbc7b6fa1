//! Protocol details, command by command. The scenarios run over explicit FTPS with
//! `tests/clients/commands.py` (asserting reply codes, reply text, data bytes and the
//! stored files, on disk or through a second session on cluster storage); what happens
//! before TLS is checked byte-exactly from here.

use crate::support::*;

fn scenario(name: &str) {
    scenario_with(WharfOptions::default(), name);
}

fn scenario_with(options: WharfOptions, name: &str) {
    let wharf = Wharf::start(options);
    let mut cmd = wharf.python("commands.py");
    if let Some(home) = wharf.stored().on_disk() {
        cmd.arg("--home").arg(home);
    }
    cmd.arg(name);
    let output = run(&mut cmd);
    assert_success(&output, &format!("commands.py {name}"));
}

#[test]
fn greeting_and_pre_login_replies_are_crlf_terminated_and_well_formed() {
    let wharf = Wharf::start_default();
    let (mut control, greeting) = Control::connect(wharf.explicit_port);
    assert_eq!(greeting.code, 220, "{greeting}");
    assert!(
        greeting.raw.ends_with(b"\r\n"),
        "greeting ends with CRLF: {greeting}"
    );
    let feat = control.cmd("FEAT");
    assert_eq!(feat.code, 211, "FEAT before login: {feat}");
    assert!(feat.lines.len() >= 3, "FEAT is multi-line: {feat}");
    assert!(feat.lines[0].starts_with("211-"), "{feat}");
    assert!(feat.lines.last().unwrap().starts_with("211 "), "{feat}");
    for line in &feat.lines[1..feat.lines.len() - 1] {
        assert!(
            line.starts_with(' '),
            "feature lines start with a space: {line:?}"
        );
    }
    let raw = String::from_utf8(feat.raw.clone()).expect("FEAT is UTF-8");
    assert_eq!(
        raw.matches("\r\n").count(),
        feat.lines.len(),
        "every FEAT line ends with CRLF: {raw:?}"
    );
    assert!(
        !raw.replace("\r\n", "").contains('\n'),
        "no bare LF: {raw:?}"
    );
    assert!(
        feat.lines.iter().any(|l| l.trim() == "AUTH TLS"),
        "FEAT advertises AUTH TLS before login: {feat}"
    );
    let reply = control.cmd("SYST");
    assert!(reply.code == 215 || reply.code == 530, "SYST: {reply}");
    let reply = control.cmd("NOOP");
    assert!(reply.code == 200 || reply.code == 530, "NOOP: {reply}");
    let reply = control.cmd("QUIT");
    assert_eq!(reply.code, 221, "{reply}");
    let (_, closed) = control.read_until_closed(std::time::Duration::from_secs(5));
    assert!(closed, "QUIT closes the connection");
}

#[test]
fn auth_tls_ssl_and_tls_c_are_accepted_and_others_refused() {
    let wharf = Wharf::start_default();
    for (mechanism, expected) in [
        ("TLS", 234),
        ("SSL", 234),
        ("TLS-C", 234),
        ("tls", 234),
        ("KERBEROS_V4", 504),
    ] {
        let mut control = wharf.control();
        let reply = control.cmd(&format!("AUTH {mechanism}"));
        assert_eq!(reply.code, expected, "AUTH {mechanism}: {reply}");
    }
    let mut control = wharf.control();
    let reply = control.cmd("PBSZ 0");
    assert_eq!(reply.code, 503, "PBSZ before AUTH: {reply}");
    let reply = control.cmd("PROT P");
    assert_eq!(reply.code, 503, "PROT before AUTH: {reply}");
}

#[test]
fn feat_advertises_the_implemented_extensions() {
    scenario("feat");
}

#[test]
fn help_stat_and_stat_path_are_well_formed_multi_line_replies() {
    scenario("help_and_stat_are_well_formed");
}

#[test]
fn navigation_type_mode_stru_and_misc_commands_reply_per_rfc() {
    scenario("misc_commands");
}

#[test]
fn mlsd_and_mlst_report_type_size_modify_perm_unique() {
    scenario("mlsd_and_mlst_facts");
}

#[test]
fn list_is_ls_style_and_nlst_gives_names() {
    scenario("list_is_ls_style");
}

#[test]
fn size_mdtm_and_mfmt_use_the_files_real_metadata() {
    scenario("size_mdtm_mfmt");
}

#[test]
fn hash_computes_sha256_sha1_md5_crc32_selected_with_opts_hash() {
    scenario("hash_algorithms");
}

#[test]
fn stou_stores_under_new_unique_names() {
    scenario("stou_creates_unique_files");
}

#[test]
fn rnfr_rnto_moves_files_and_directories_across_directories() {
    scenario("rename_across_directories");
}

#[test]
fn rest_resumes_retr_and_stor_and_appe_appends() {
    scenario("rest_then_retr_and_stor");
}

#[test]
fn type_a_converts_line_endings_and_type_i_is_exact() {
    scenario("type_a_converts_line_endings");
}

#[test]
fn stat_during_a_transfer_reports_status_without_disturbing_it() {
    scenario("stat_during_transfer");
}

#[test]
fn noop_during_downloads_and_uploads_is_answered() {
    scenario("noop_during_transfer");
}

#[test]
fn abor_during_a_transfer_stops_it_with_426_then_226() {
    scenario("abor_during_transfer");
}

#[test]
fn epsv_all_refuses_pasv_and_port_but_epsv_works() {
    scenario("epsv_all_refuses_pasv_and_port");
}

#[test]
fn port_to_a_foreign_ip_or_a_low_port_is_refused_and_never_connected() {
    scenario("port_to_foreign_ip_or_low_port_is_refused");
}

#[test]
fn ccc_prot_s_e_acct_and_host_after_login_are_refused_with_their_codes() {
    scenario("ccc_prot_acct_host");
}

#[test]
fn host_before_login_is_accepted() {
    scenario("host_before_login");
}

#[test]
fn transfers_are_recorded_in_the_xferlog() {
    let wharf = Wharf::start_default();
    let local = wharf.client_dir().join("logged.bin");
    write_random_file(&local, 12_345);
    let back = wharf.client_dir().join("logged-back.bin");
    let output = run(&mut wharf.batch(
        "reuse",
        &[
            format!("put {} logged.bin", local.display()),
            format!("get logged.bin {}", back.display()),
        ],
    ));
    assert_success(&output, "upload + download");
    let xferlog = std::fs::read_to_string(wharf.data_dir.join("xferlog")).unwrap_or_default();
    let lines: Vec<&str> = xferlog
        .lines()
        .filter(|l| l.contains("logged.bin"))
        .collect();
    assert_eq!(lines.len(), 2, "one xferlog line per transfer:\n{xferlog}");
    for (line, direction) in lines.iter().zip(["i", "o"]) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // xferlog: day month date time year duration host size file type action dir ...
        assert!(
            fields.contains(&"12345"),
            "size in the xferlog line: {line}"
        );
        assert!(fields.contains(&direction), "direction {direction}: {line}");
        assert!(
            fields.contains(&wharf.user.as_str()),
            "user in the xferlog line: {line}"
        );
    }
}
