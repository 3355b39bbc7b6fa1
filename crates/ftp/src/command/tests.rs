use super::*;
use std::net::{SocketAddrV4, SocketAddrV6};
use std::time::{Duration, UNIX_EPOCH};

fn parse(line: &str) -> Result<Command, ParseError> {
    Command::parse(line.as_bytes())
}

fn reason(line: &str) -> String {
    match parse(line) {
        Err(ParseError::InvalidArgument { reason, .. }) => reason,
        other => panic!("expected InvalidArgument for {line:?}, got {other:?}"),
    }
}

#[test]
fn verbs_are_case_insensitive_and_tolerate_trailing_cr() {
    assert_eq!(parse("user alice"), Ok(Command::User("alice".into())));
    assert_eq!(parse("UsEr alice\r"), Ok(Command::User("alice".into())));
    assert_eq!(parse("NOOP\r\n"), Ok(Command::Noop));
}

#[test]
fn path_arguments_keep_internal_and_trailing_spaces() {
    assert_eq!(
        parse("RETR my file.txt"),
        Ok(Command::Retr("my file.txt".into()))
    );
    assert_eq!(
        parse("STOR  lead and trail  \r"),
        Ok(Command::Stor(" lead and trail  ".into()))
    );
}

#[test]
fn aliases_map_to_standard_commands() {
    assert_eq!(parse("XCWD /a"), Ok(Command::Cwd("/a".into())));
    assert_eq!(parse("XCUP"), Ok(Command::Cdup));
    assert_eq!(parse("XPWD"), Ok(Command::Pwd));
    assert_eq!(parse("XRMD d"), Ok(Command::Rmd("d".into())));
    assert_eq!(parse("XMKD d"), Ok(Command::Mkd("d".into())));
    assert_eq!(parse("XCWD /a").map(|c| c.verb()), Ok("CWD"));
}

#[test]
fn empty_and_blank_lines_are_empty() {
    assert_eq!(parse(""), Err(ParseError::Empty));
    assert_eq!(parse("\r"), Err(ParseError::Empty));
    assert_eq!(parse("   "), Err(ParseError::Empty));
}

#[test]
fn telnet_sequences_are_stripped() {
    // IAC IP IAC DM before ABOR, as sent by clients aborting a transfer.
    assert_eq!(Command::parse(b"\xff\xf4\xff\xf2ABOR"), Ok(Command::Abor));
    // A bare Data Mark left by urgent-mode Synch.
    assert_eq!(Command::parse(b"\xf2ABOR"), Ok(Command::Abor));
    // Option negotiation is three bytes.
    assert_eq!(Command::parse(b"\xff\xfd\x01NOOP"), Ok(Command::Noop));
    // IAC IAC inside an argument is dropped.
    assert_eq!(
        Command::parse(b"RETR a\xff\xffb"),
        Ok(Command::Retr("ab".into()))
    );
    // A trailing lone IAC does not panic.
    assert_eq!(Command::parse(b"NOOP\xff"), Ok(Command::Noop));
}

#[test]
fn invalid_utf8_and_nul_are_rejected() {
    assert_eq!(
        Command::parse(b"RETR \xc3\x28"),
        Err(ParseError::InvalidUtf8)
    );
    assert_eq!(Command::parse(b"RE\0TR a"), Err(ParseError::NulByte));
    assert_eq!(
        Command::parse(b"RETR a\0b"),
        Ok(Command::Retr("a\0b".into()))
    );
    assert_eq!(
        Command::parse("RETR f\u{e9}.txt".as_bytes()),
        Ok(Command::Retr("f\u{e9}.txt".into()))
    );
}

#[test]
fn unknown_verb_is_reported_truncated() {
    assert_eq!(
        parse("FROB x"),
        Err(ParseError::UnknownCommand("FROB".into()))
    );
    let long = "X".repeat(40);
    assert_eq!(
        parse(&long),
        Err(ParseError::UnknownCommand("X".repeat(16)))
    );
}

#[test]
fn missing_required_arguments_are_reported() {
    for (line, verb) in [
        ("USER", "USER"),
        ("RETR", "RETR"),
        ("RETR ", "RETR"),
        ("CWD", "CWD"),
        ("XMKD", "MKD"),
        ("PORT", "PORT"),
        ("REST", "REST"),
        ("MFMT", "MFMT"),
        ("OPTS", "OPTS"),
        ("AUTH", "AUTH"),
        ("TYPE", "TYPE"),
        ("MODE", "MODE"),
        ("STRU  ", "STRU"),
        ("HASH", "HASH"),
    ] {
        assert_eq!(
            parse(line),
            Err(ParseError::MissingArgument { verb }),
            "{line:?}"
        );
    }
}

#[test]
fn pass_without_argument_is_an_empty_password() {
    assert_eq!(parse("PASS"), Ok(Command::Pass(String::new())));
    assert_eq!(
        parse("PASS s3cret pass"),
        Ok(Command::Pass("s3cret pass".into()))
    );
}

#[test]
fn optional_arguments() {
    assert_eq!(parse("STOU"), Ok(Command::Stou(None)));
    assert_eq!(parse("STOU x"), Ok(Command::Stou(Some("x".into()))));
    assert_eq!(parse("MLSD"), Ok(Command::Mlsd(None)));
    assert_eq!(parse("MLST a b"), Ok(Command::Mlst(Some("a b".into()))));
    assert_eq!(parse("STAT"), Ok(Command::Stat(None)));
    assert_eq!(parse("HELP RETR"), Ok(Command::Help(Some("RETR".into()))));
    assert_eq!(parse("ALLO 1000"), Ok(Command::Allo));
}

#[test]
fn port_parses_an_ipv4_address() {
    assert_eq!(
        parse("PORT 192,168,1,2,195,80"),
        Ok(Command::Port(SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::new(192, 168, 1, 2),
            50_000
        ))))
    );
}

#[test]
fn port_rejects_bad_numbers() {
    assert_eq!(reason("PORT 1,2,3,4,300,1"), "port number out of range");
    assert_eq!(reason("PORT 1,2,3,4,0,0"), "port number out of range");
    assert_eq!(reason("PORT 1,2,300,4,1,1"), "address number out of range");
    assert_eq!(
        reason("PORT 1,2,3,4,5"),
        "expected six comma-separated numbers h1,h2,h3,h4,p1,p2"
    );
    assert!(reason("PORT 1,2,3,4,5,+6").starts_with("expected six"));
    assert!(reason("PORT 1,2,3,-4,5,6").starts_with("expected six"));
    assert_eq!(
        reason("PORT 1,2,3,4,5,99999999999999999999999"),
        "port number out of range"
    );
    assert_eq!(
        parse("PORT 1,2,3,4,300,1").unwrap_err().reply().encode(),
        b"501 PORT: port number out of range.\r\n"
    );
}

#[test]
fn eprt_parses_ipv4_and_ipv6() {
    assert_eq!(
        parse("EPRT |1|132.235.1.2|6275|"),
        Ok(Command::Eprt("132.235.1.2:6275".parse().unwrap()))
    );
    assert_eq!(
        parse("EPRT |2|::1|6275|"),
        Ok(Command::Eprt(SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::LOCALHOST,
            6275,
            0,
            0
        ))))
    );
    assert_eq!(
        parse("EPRT !1!10.0.0.1!21!"),
        Ok(Command::Eprt("10.0.0.1:21".parse().unwrap()))
    );
}

#[test]
fn eprt_rejects_mismatches_and_bad_syntax() {
    assert!(reason("EPRT |3|1.2.3.4|21|").starts_with("network protocol"));
    assert_eq!(reason("EPRT |1|::1|21|"), "invalid IPv4 address");
    assert_eq!(reason("EPRT |2|1.2.3.4|21|"), "invalid IPv6 address");
    assert_eq!(reason("EPRT |1|1.2.3.4|70000|"), "port number out of range");
    assert_eq!(reason("EPRT |1|1.2.3.4|0|"), "port number out of range");
    assert_eq!(
        reason("EPRT |1|1.2.3.4|x|"),
        "port must be a decimal number"
    );
    assert_eq!(
        reason("EPRT |1|1.2.3.4|21"),
        "expected |protocol|address|port|"
    );
    assert_eq!(
        reason("EPRT |1|1.2.3.4|21|x|"),
        "expected |protocol|address|port|"
    );
    assert_eq!(
        reason("EPRT \u{e9}1\u{e9}1.2.3.4\u{e9}21\u{e9}"),
        "delimiter must be a printable ASCII character"
    );
}

#[test]
fn epsv_variants() {
    assert_eq!(parse("EPSV"), Ok(Command::Epsv(EpsvArg::Any)));
    assert_eq!(parse("EPSV all"), Ok(Command::Epsv(EpsvArg::All)));
    assert_eq!(parse("EPSV 2"), Ok(Command::Epsv(EpsvArg::Protocol(2))));
    assert_eq!(
        reason("EPSV x"),
        "expected ALL or a network protocol number"
    );
    assert_eq!(
        reason("EPSV 256"),
        "expected ALL or a network protocol number"
    );
}

#[test]
fn type_accepts_ascii_and_image_forms() {
    assert_eq!(parse("TYPE A"), Ok(Command::Type(TransferType::Ascii)));
    assert_eq!(parse("TYPE a n"), Ok(Command::Type(TransferType::Ascii)));
    assert_eq!(parse("TYPE I"), Ok(Command::Type(TransferType::Image)));
    assert_eq!(parse("TYPE L 8"), Ok(Command::Type(TransferType::Image)));
}

#[test]
fn type_refuses_unsupported_representations_with_504() {
    for line in ["TYPE E", "TYPE A T", "TYPE A C", "TYPE L 7"] {
        let err = parse(line).unwrap_err();
        assert!(
            matches!(err, ParseError::Unsupported { verb: "TYPE", .. }),
            "{line}"
        );
        assert_eq!(err.reply().code, 504);
    }
    assert_eq!(reason("TYPE X"), "expected A, I or L 8");
    assert_eq!(reason("TYPE L"), "expected A, I or L 8");
}

#[test]
fn stru_and_mode_take_the_first_character_uppercased() {
    assert_eq!(parse("STRU f"), Ok(Command::Stru('F')));
    assert_eq!(parse("MODE s"), Ok(Command::Mode('S')));
    assert_eq!(parse("MODE Z"), Ok(Command::Mode('Z')));
}

#[test]
fn rest_and_pbsz_take_non_negative_numbers() {
    assert_eq!(parse("REST 1048576"), Ok(Command::Rest(1_048_576)));
    assert_eq!(parse("PBSZ 0"), Ok(Command::Pbsz(0)));
    assert_eq!(
        reason("REST abc"),
        "offset must be a non-negative decimal number"
    );
    assert_eq!(
        reason("PBSZ -1"),
        "buffer size must be a non-negative decimal number"
    );
    assert_eq!(
        reason("REST 99999999999999999999999"),
        "offset is too large"
    );
}

#[test]
fn list_options_are_stripped_from_the_path() {
    assert_eq!(parse("LIST"), Ok(Command::List(None)));
    assert_eq!(parse("LIST -la"), Ok(Command::List(None)));
    assert_eq!(parse("LIST -a -l"), Ok(Command::List(None)));
    assert_eq!(
        parse("LIST -la my dir"),
        Ok(Command::List(Some("my dir".into())))
    );
    assert_eq!(
        parse("LIST -a  -l  sub"),
        Ok(Command::List(Some("sub".into())))
    );
    assert_eq!(
        parse("NLST docs/a b"),
        Ok(Command::Nlst(Some("docs/a b".into())))
    );
    assert_eq!(parse("NLST -1"), Ok(Command::Nlst(None)));
}

#[test]
fn mfmt_parses_time_and_path_with_spaces() {
    let expected = UNIX_EPOCH + Duration::from_secs(1_704_164_645); // 2024-01-02 03:04:05 UTC
    assert_eq!(
        parse("MFMT 20240102030405 some file.txt"),
        Ok(Command::Mfmt {
            time: expected,
            path: "some file.txt".into()
        })
    );
    assert!(reason("MFMT 2024010203040 f").starts_with("time must be"));
    assert!(reason("MFMT 20241302030405 f").starts_with("time is not a valid"));
    assert!(reason("MFMT 20240102030405").starts_with("expected a time"));
}

#[test]
fn opts_variants() {
    assert_eq!(parse("OPTS UTF8 ON"), Ok(Command::Opts(Opts::Utf8(true))));
    assert_eq!(
        parse("opts utf-8 off"),
        Ok(Command::Opts(Opts::Utf8(false)))
    );
    assert_eq!(reason("OPTS UTF8"), "UTF8 expects ON or OFF");
    assert_eq!(
        parse("OPTS MLST Type;SIZE;modify;"),
        Ok(Command::Opts(Opts::Mlst(vec![
            "type".into(),
            "size".into(),
            "modify".into()
        ])))
    );
    assert_eq!(parse("OPTS MLST"), Ok(Command::Opts(Opts::Mlst(vec![]))));
    assert_eq!(parse("OPTS HASH"), Ok(Command::Opts(Opts::Hash(None))));
    assert_eq!(
        parse("OPTS HASH sha-1"),
        Ok(Command::Opts(Opts::Hash(Some(HashAlgorithm::Sha1))))
    );
    assert_eq!(parse("OPTS HASH SHA-512").unwrap_err().reply().code, 504);
    assert_eq!(
        parse("OPTS MODE Z"),
        Ok(Command::Opts(Opts::Other("MODE Z".into())))
    );
}

#[test]
fn auth_mechanisms() {
    assert_eq!(parse("AUTH TLS"), Ok(Command::Auth(AuthMechanism::Tls)));
    assert_eq!(parse("auth tls-c"), Ok(Command::Auth(AuthMechanism::Tls)));
    assert_eq!(parse("AUTH ssl"), Ok(Command::Auth(AuthMechanism::Ssl)));
    let err = parse("AUTH GSSAPI").unwrap_err();
    assert_eq!(
        err.reply().encode(),
        b"504 AUTH: security mechanism GSSAPI is not supported.\r\n"
    );
}

#[test]
fn prot_levels() {
    assert_eq!(parse("PROT C"), Ok(Command::Prot(ProtectionLevel::Clear)));
    assert_eq!(parse("PROT s"), Ok(Command::Prot(ProtectionLevel::Safe)));
    assert_eq!(
        parse("PROT E"),
        Ok(Command::Prot(ProtectionLevel::Confidential))
    );
    assert_eq!(parse("PROT p"), Ok(Command::Prot(ProtectionLevel::Private)));
    assert_eq!(reason("PROT X"), "protection level must be C, S, E or P");
}

#[test]
fn simple_commands_parse() {
    for (line, cmd) in [
        ("CDUP", Command::Cdup),
        ("PWD", Command::Pwd),
        ("QUIT", Command::Quit),
        ("REIN", Command::Rein),
        ("PASV", Command::Pasv),
        ("ABOR", Command::Abor),
        ("SYST", Command::Syst),
        ("FEAT", Command::Feat),
        ("CCC", Command::Ccc),
        ("ACCT x", Command::Acct("x".into())),
        ("APPE a", Command::Appe("a".into())),
        ("RNFR a", Command::Rnfr("a".into())),
        ("RNTO b", Command::Rnto("b".into())),
        ("DELE a", Command::Dele("a".into())),
        ("SIZE a", Command::Size("a".into())),
        ("MDTM a", Command::Mdtm("a".into())),
        (
            "HOST ftp.example.com",
            Command::Host("ftp.example.com".into()),
        ),
        ("HASH a b", Command::Hash("a b".into())),
    ] {
        assert_eq!(parse(line), Ok(cmd), "{line}");
    }
}

#[test]
fn verb_names_are_canonical() {
    assert_eq!(parse("retr x").unwrap().verb(), "RETR");
    assert_eq!(parse("XMKD d").unwrap().verb(), "MKD");
    assert_eq!(parse("MFMT 20240102030405 f").unwrap().verb(), "MFMT");
    assert_eq!(parse("OPTS UTF8 ON").unwrap().verb(), "OPTS");
}

#[test]
fn data_transfer_commands_are_identified() {
    for line in ["RETR a", "STOR a", "STOU", "APPE a", "LIST", "NLST", "MLSD"] {
        assert!(parse(line).unwrap().is_data_transfer(), "{line}");
    }
    for line in ["MLST", "SIZE a", "PASV", "STAT", "CWD a"] {
        assert!(!parse(line).unwrap().is_data_transfer(), "{line}");
    }
}

#[test]
fn error_replies_use_the_right_codes() {
    assert_eq!(ParseError::Empty.reply().code, 500);
    assert_eq!(ParseError::InvalidUtf8.reply().code, 500);
    assert_eq!(ParseError::NulByte.reply().code, 500);
    assert_eq!(
        parse("FROB").unwrap_err().reply().encode(),
        b"500 Unknown command FROB.\r\n"
    );
    assert_eq!(
        parse("site chmod 777 x").unwrap_err().reply().encode(),
        b"502 SITE: command not implemented.\r\n"
    );
    assert_eq!(
        parse("RETR").unwrap_err().reply().encode(),
        b"501 RETR: argument required.\r\n"
    );
}

#[test]
fn every_listed_verb_parses_to_a_command_of_that_verb() {
    let argument = |verb: &str| match verb {
        "PORT" => "127,0,0,1,4,1",
        "EPRT" => "|1|127.0.0.1|1025|",
        "MFMT" => "20200101000000 a",
        "TYPE" => "I",
        "STRU" => "F",
        "MODE" => "S",
        "AUTH" => "TLS",
        "PBSZ" | "REST" => "0",
        "PROT" => "P",
        "OPTS" => "UTF8 ON",
        _ => "a",
    };
    for verb in VERBS {
        let line = format!("{verb} {}", argument(verb));
        let command = parse(&line).or_else(|_| parse(verb));
        let command = command.unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(command.verb(), *verb, "{line}");
        assert_eq!(canonical_verb(verb), Some(*verb));
    }
    assert_eq!(canonical_verb("XMKD"), Some("MKD"));
    assert_eq!(canonical_verb("SITE"), None);
}
