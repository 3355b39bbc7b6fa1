//! One control-connection line, as a client sends it, through
//! `Command::parse`.
//!
//! Beyond "no panic": a refused line's reply is exactly one `5xx` line (the
//! peer text it quotes cannot forge a second reply), and an accepted command
//! written back in canonical form parses to the same command, so no argument
//! is altered or lost on the way in.

#![no_main]

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use wharf_ftp::command::{AuthMechanism, EpsvArg, Opts, ProtectionLevel, TransferType};
use wharf_ftp::listing::format_time;
use wharf_ftp::Command;

fuzz_target!(|line: &[u8]| {
    match Command::parse(line) {
        Ok(command) => {
            let canonical = canonical_line(&command);
            assert_eq!(
                Command::parse(canonical.as_bytes()).as_ref(),
                Ok(&command),
                "{canonical:?} does not parse back"
            );
        }
        Err(error) => {
            let wire = error.reply().encode();
            let body = wire.strip_suffix(b"\r\n").expect("a reply ends with CRLF");
            assert!(!body.contains(&b'\r') && !body.contains(&b'\n'), "{wire:?}");
            assert!(
                matches!(body.get(..4), Some([b'5', b'0', b'0'..=b'4', b' '])),
                "{wire:?}"
            );
        }
    }
});

/// The command as a client would send it: canonical verb, one space, the
/// argument, CRLF.
fn canonical_line(command: &Command) -> String {
    let argument = match command {
        Command::User(a)
        | Command::Pass(a)
        | Command::Acct(a)
        | Command::Cwd(a)
        | Command::Retr(a)
        | Command::Stor(a)
        | Command::Appe(a)
        | Command::Rnfr(a)
        | Command::Rnto(a)
        | Command::Dele(a)
        | Command::Rmd(a)
        | Command::Mkd(a)
        | Command::Size(a)
        | Command::Mdtm(a)
        | Command::Host(a)
        | Command::Hash(a) => Some(a.clone()),
        Command::Stou(a)
        | Command::List(a)
        | Command::Nlst(a)
        | Command::Mlsd(a)
        | Command::Mlst(a)
        | Command::Stat(a)
        | Command::Help(a) => a.clone(),
        Command::Cdup
        | Command::Pwd
        | Command::Quit
        | Command::Rein
        | Command::Pasv
        | Command::Allo
        | Command::Abor
        | Command::Syst
        | Command::Noop
        | Command::Feat
        | Command::Ccc => None,
        Command::Port(SocketAddr::V4(address)) => {
            let [a, b, c, d] = address.ip().octets();
            let [hi, lo] = address.port().to_be_bytes();
            Some(format!("{a},{b},{c},{d},{hi},{lo}"))
        }
        Command::Port(other) => panic!("PORT parsed to the IPv6 address {other}"),
        Command::Eprt(address) => {
            let protocol = if address.is_ipv4() { 1 } else { 2 };
            Some(format!("|{protocol}|{}|{}|", address.ip(), address.port()))
        }
        Command::Epsv(EpsvArg::Any) => None,
        Command::Epsv(EpsvArg::All) => Some("ALL".into()),
        Command::Epsv(EpsvArg::Protocol(n)) => Some(n.to_string()),
        Command::Type(TransferType::Ascii) => Some("A".into()),
        Command::Type(TransferType::Image) => Some("I".into()),
        Command::Stru(c) | Command::Mode(c) => Some(c.to_string()),
        Command::Rest(n) | Command::Pbsz(n) => Some(n.to_string()),
        Command::Mfmt { time, path } => Some(format!("{} {path}", time_val(*time))),
        Command::Opts(opts) => Some(match opts {
            Opts::Utf8(true) => "UTF8 ON".into(),
            Opts::Utf8(false) => "UTF8 OFF".into(),
            Opts::Mlst(facts) if facts.is_empty() => "MLST".into(),
            Opts::Mlst(facts) => format!("MLST {}", facts.join(";")),
            Opts::Hash(None) => "HASH".into(),
            Opts::Hash(Some(algorithm)) => format!("HASH {algorithm}"),
            Opts::Other(text) => text.clone(),
        }),
        Command::Auth(AuthMechanism::Tls) => Some("TLS".into()),
        Command::Auth(AuthMechanism::Ssl) => Some("SSL".into()),
        Command::Prot(level) => Some(
            match level {
                ProtectionLevel::Clear => "C",
                ProtectionLevel::Safe => "S",
                ProtectionLevel::Confidential => "E",
                ProtectionLevel::Private => "P",
            }
            .into(),
        ),
    };
    match argument {
        Some(argument) => format!("{} {argument}\r\n", command.verb()),
        None => format!("{}\r\n", command.verb()),
    }
}

/// RFC 3659 `time-val` with all nine fraction digits, so the time parses
/// back to the nanosecond.
fn time_val(time: SystemTime) -> String {
    // `format_time` shows the whole second at or before `time`.
    let nanos = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.subsec_nanos(),
        Err(before) => match before.duration().subsec_nanos() {
            0 => 0,
            n => 1_000_000_000 - n,
        },
    };
    format!("{}.{nanos:09}", format_time(time))
}
