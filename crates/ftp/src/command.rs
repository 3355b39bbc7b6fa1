//! Parsing one control-connection line into a [`Command`].
//!
//! Everything here treats the line as hostile: Telnet noise is stripped,
//! non-UTF-8 and NUL bytes are refused, and every argument is validated into
//! a typed value so the server never re-parses peer text. Path arguments are
//! returned verbatim (spaces included); [`crate::path`] normalises them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::SystemTime;

use crate::hash::HashAlgorithm;
use crate::listing;
use crate::reply::Reply;

/// `TYPE` representation. Only what modern clients use is supported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransferType {
    /// `TYPE A` / `TYPE A N`: line endings are converted.
    Ascii,
    /// `TYPE I` / `TYPE L 8`: bytes pass unchanged.
    Image,
}

/// `PROT` data channel protection level (RFC 2228 §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtectionLevel {
    Clear,
    Safe,
    Confidential,
    Private,
}

/// `AUTH` mechanism (RFC 4217 §4). `TLS-C` is the historic name of `TLS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMechanism {
    Tls,
    Ssl,
}

/// `EPSV` argument (RFC 2428 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EpsvArg {
    /// No argument: any protocol.
    Any,
    /// `EPSV ALL`: the client promises to use only EPSV from now on.
    All,
    /// `EPSV 1` (IPv4) or `EPSV 2` (IPv6); other numbers are the server's to refuse.
    Protocol(u8),
}

/// `OPTS` sub-commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opts {
    /// `OPTS UTF8 ON|OFF`.
    Utf8(bool),
    /// `OPTS MLST type;size;`: requested fact names, lowercased; empty for
    /// a bare `OPTS MLST`.
    Mlst(Vec<String>),
    /// `OPTS HASH [alg]`: `None` asks for the current algorithm.
    Hash(Option<HashAlgorithm>),
    /// Anything else; holds the whole argument for the error reply.
    Other(String),
}

/// One parsed FTP command. Path arguments are raw client text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    User(String),
    /// A missing password parses as an empty one; the server decides.
    Pass(String),
    Acct(String),
    Cwd(String),
    Cdup,
    Pwd,
    Quit,
    Rein,
    Port(SocketAddr),
    Eprt(SocketAddr),
    Pasv,
    Epsv(EpsvArg),
    Type(TransferType),
    Stru(char),
    Mode(char),
    Retr(String),
    Stor(String),
    Stou(Option<String>),
    Appe(String),
    Allo,
    Rest(u64),
    Rnfr(String),
    Rnto(String),
    Abor,
    Dele(String),
    Rmd(String),
    Mkd(String),
    List(Option<String>),
    Nlst(Option<String>),
    Mlsd(Option<String>),
    Mlst(Option<String>),
    Size(String),
    Mdtm(String),
    Mfmt {
        time: SystemTime,
        path: String,
    },
    Stat(Option<String>),
    Syst,
    Help(Option<String>),
    Noop,
    Feat,
    Opts(Opts),
    Host(String),
    Auth(AuthMechanism),
    Pbsz(u64),
    Prot(ProtectionLevel),
    Ccc,
    Hash(String),
}

/// Why a command line was refused. [`ParseError::reply`] gives the answer
/// to send; the `Display` text is the same sentence, for logs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("Syntax error: empty command line.")]
    Empty,
    #[error("Syntax error: command line is not valid UTF-8.")]
    InvalidUtf8,
    #[error("Syntax error: command line contains a NUL byte.")]
    NulByte,
    /// The verb as sent, truncated to 16 characters.
    #[error("Unknown command {0}.")]
    UnknownCommand(String),
    #[error("{verb}: argument required.")]
    MissingArgument { verb: &'static str },
    #[error("{verb}: {reason}.")]
    InvalidArgument { verb: &'static str, reason: String },
    #[error("{verb}: {what} is not supported.")]
    Unsupported { verb: &'static str, what: String },
}

/// Verbs defined by FTP RFCs that this server deliberately does not
/// implement: they earn 502 rather than 500, so clients stop trying.
const UNIMPLEMENTED_VERBS: &[&str] = &[
    "SITE", "SMNT", "ADAT", "MIC", "CONF", "ENC", "LPRT", "LPSV", "LANG", "MLFL", "MAIL", "MSND",
    "MSOM", "MSAM", "MRSQ", "MRCP", "XRCP", "XRSQ", "XSEM", "XSEN", "AVBL", "CLNT", "CSID", "DSIZ",
    "MFCT", "MFF", "THMB", "XCRC", "XMD5", "XSHA1", "XSHA256",
];

/// Every verb the server implements, by its standard name.
pub const VERBS: &[&str] = &[
    "ABOR", "ACCT", "ALLO", "APPE", "AUTH", "CCC", "CDUP", "CWD", "DELE", "EPRT", "EPSV", "FEAT",
    "HASH", "HELP", "HOST", "LIST", "MDTM", "MFMT", "MKD", "MLSD", "MLST", "MODE", "NLST", "NOOP",
    "OPTS", "PASS", "PASV", "PBSZ", "PORT", "PROT", "PWD", "QUIT", "REIN", "REST", "RETR", "RMD",
    "RNFR", "RNTO", "SIZE", "STAT", "STOR", "STOU", "STRU", "SYST", "TYPE", "USER",
];

/// The standard name of an implemented verb given in upper case, aliases
/// (`XMKD`, `XPWD`, …) included; `None` for anything else.
pub fn canonical_verb(upper: &str) -> Option<&'static str> {
    let standard = match upper {
        "XCWD" => "CWD",
        "XCUP" => "CDUP",
        "XPWD" => "PWD",
        "XRMD" => "RMD",
        "XMKD" => "MKD",
        other => other,
    };
    VERBS.iter().copied().find(|v| *v == standard)
}

impl ParseError {
    /// The reply to send: 500 for unparseable lines and unknown verbs, 502
    /// for known-but-unimplemented verbs, 501 for bad arguments, 504 for
    /// unsupported parameters.
    pub fn reply(&self) -> Reply {
        let code = match self {
            ParseError::Empty | ParseError::InvalidUtf8 | ParseError::NulByte => 500,
            ParseError::UnknownCommand(verb) => {
                let upper = verb.to_ascii_uppercase();
                if UNIMPLEMENTED_VERBS.contains(&upper.as_str()) {
                    return Reply::new(502, format!("{upper}: command not implemented."));
                }
                500
            }
            ParseError::MissingArgument { .. } | ParseError::InvalidArgument { .. } => 501,
            ParseError::Unsupported { .. } => 504,
        };
        Reply::new(code, self.to_string())
    }
}

const IAC: u8 = 0xFF;
const DM: u8 = 0xF2;
const WILL: u8 = 0xFB;
const DONT: u8 = 0xFE;

/// Removes Telnet commands (RFC 854): `IAC x`, and `IAC WILL/WONT/DO/DONT
/// opt` as three bytes. `IAC IAC` (a literal 0xFF) is dropped as well: 0xFF
/// can never occur in UTF-8, which FTP paths are. A leading Data Mark left
/// by a Synch sent as urgent data is removed too.
fn strip_telnet(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut bytes = line.iter();
    while let Some(&byte) = bytes.next() {
        if byte != IAC {
            out.push(byte);
            continue;
        }
        if let Some(&command) = bytes.next() {
            if (WILL..=DONT).contains(&command) {
                bytes.next();
            }
        }
    }
    let marks = out.iter().take_while(|&&b| b == DM).count();
    out.drain(..marks);
    out
}

impl Command {
    /// Parses one line without its terminator (a trailing `\r` or `\r\n`
    /// is tolerated). The verb is case-insensitive and separated from the
    /// argument by one space; the argument keeps all other spaces.
    pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
        let mut bytes = strip_telnet(line);
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| ParseError::InvalidUtf8)?;
        let text = text.trim_start_matches(' ');
        if text.trim().is_empty() {
            return Err(ParseError::Empty);
        }
        let (verb, arg) = match text.split_once(' ') {
            Some((verb, arg)) => (verb, Some(arg).filter(|a| !a.is_empty())),
            None => (text, None),
        };
        // A NUL in the verb is a syntax error; one in an argument reaches the
        // command, where a path refuses it (550) like any other bad name.
        if verb.contains('\0') {
            return Err(ParseError::NulByte);
        }
        parse_verb(verb, arg)
    }

    /// The canonical upper-case verb, e.g. `RETR`; aliases such as `XCWD`
    /// give their standard name (`CWD`).
    pub fn verb(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Acct(_) => "ACCT",
            Command::Cwd(_) => "CWD",
            Command::Cdup => "CDUP",
            Command::Pwd => "PWD",
            Command::Quit => "QUIT",
            Command::Rein => "REIN",
            Command::Port(_) => "PORT",
            Command::Eprt(_) => "EPRT",
            Command::Pasv => "PASV",
            Command::Epsv(_) => "EPSV",
            Command::Type(_) => "TYPE",
            Command::Stru(_) => "STRU",
            Command::Mode(_) => "MODE",
            Command::Retr(_) => "RETR",
            Command::Stor(_) => "STOR",
            Command::Stou(_) => "STOU",
            Command::Appe(_) => "APPE",
            Command::Allo => "ALLO",
            Command::Rest(_) => "REST",
            Command::Rnfr(_) => "RNFR",
            Command::Rnto(_) => "RNTO",
            Command::Abor => "ABOR",
            Command::Dele(_) => "DELE",
            Command::Rmd(_) => "RMD",
            Command::Mkd(_) => "MKD",
            Command::List(_) => "LIST",
            Command::Nlst(_) => "NLST",
            Command::Mlsd(_) => "MLSD",
            Command::Mlst(_) => "MLST",
            Command::Size(_) => "SIZE",
            Command::Mdtm(_) => "MDTM",
            Command::Mfmt { .. } => "MFMT",
            Command::Stat(_) => "STAT",
            Command::Syst => "SYST",
            Command::Help(_) => "HELP",
            Command::Noop => "NOOP",
            Command::Feat => "FEAT",
            Command::Opts(_) => "OPTS",
            Command::Host(_) => "HOST",
            Command::Auth(_) => "AUTH",
            Command::Pbsz(_) => "PBSZ",
            Command::Prot(_) => "PROT",
            Command::Ccc => "CCC",
            Command::Hash(_) => "HASH",
        }
    }

    /// Whether the command uses a data connection.
    pub fn is_data_transfer(&self) -> bool {
        matches!(
            self,
            Command::Retr(_)
                | Command::Stor(_)
                | Command::Stou(_)
                | Command::Appe(_)
                | Command::List(_)
                | Command::Nlst(_)
                | Command::Mlsd(_)
        )
    }
}

fn parse_verb(verb: &str, arg: Option<&str>) -> Result<Command, ParseError> {
    let owned = |v: &'static str| required(v, arg).map(str::to_owned);
    let optional = || arg.map(str::to_owned);
    Ok(match verb.to_ascii_uppercase().as_str() {
        "USER" => Command::User(owned("USER")?),
        "PASS" => Command::Pass(arg.unwrap_or_default().to_owned()),
        "ACCT" => Command::Acct(owned("ACCT")?),
        "CWD" | "XCWD" => Command::Cwd(owned("CWD")?),
        "CDUP" | "XCUP" => Command::Cdup,
        "PWD" | "XPWD" => Command::Pwd,
        "QUIT" => Command::Quit,
        "REIN" => Command::Rein,
        "PORT" => Command::Port(parse_port(required("PORT", arg)?)?),
        "EPRT" => Command::Eprt(parse_eprt(required("EPRT", arg)?)?),
        "PASV" => Command::Pasv,
        "EPSV" => Command::Epsv(parse_epsv(arg)?),
        "TYPE" => Command::Type(parse_type(required("TYPE", arg)?)?),
        "STRU" => Command::Stru(first_char("STRU", arg)?),
        "MODE" => Command::Mode(first_char("MODE", arg)?),
        "RETR" => Command::Retr(owned("RETR")?),
        "STOR" => Command::Stor(owned("STOR")?),
        "STOU" => Command::Stou(optional()),
        "APPE" => Command::Appe(owned("APPE")?),
        "ALLO" => Command::Allo,
        "REST" => Command::Rest(parse_number("REST", "offset", required("REST", arg)?)?),
        "RNFR" => Command::Rnfr(owned("RNFR")?),
        "RNTO" => Command::Rnto(owned("RNTO")?),
        "ABOR" => Command::Abor,
        "DELE" => Command::Dele(owned("DELE")?),
        "RMD" | "XRMD" => Command::Rmd(owned("RMD")?),
        "MKD" | "XMKD" => Command::Mkd(owned("MKD")?),
        "LIST" => Command::List(strip_list_options(arg)),
        "NLST" => Command::Nlst(strip_list_options(arg)),
        "MLSD" => Command::Mlsd(optional()),
        "MLST" => Command::Mlst(optional()),
        "SIZE" => Command::Size(owned("SIZE")?),
        "MDTM" => Command::Mdtm(owned("MDTM")?),
        "MFMT" => parse_mfmt(required("MFMT", arg)?)?,
        "STAT" => Command::Stat(optional()),
        "SYST" => Command::Syst,
        "HELP" => Command::Help(optional()),
        "NOOP" => Command::Noop,
        "FEAT" => Command::Feat,
        "OPTS" => Command::Opts(parse_opts(required("OPTS", arg)?)?),
        "HOST" => Command::Host(owned("HOST")?),
        "AUTH" => Command::Auth(parse_auth(required("AUTH", arg)?)?),
        "PBSZ" => Command::Pbsz(parse_number("PBSZ", "buffer size", required("PBSZ", arg)?)?),
        "PROT" => Command::Prot(parse_prot(required("PROT", arg)?)?),
        "CCC" => Command::Ccc,
        "HASH" => Command::Hash(owned("HASH")?),
        _ => return Err(ParseError::UnknownCommand(verb.chars().take(16).collect())),
    })
}

fn required<'a>(verb: &'static str, arg: Option<&'a str>) -> Result<&'a str, ParseError> {
    arg.ok_or(ParseError::MissingArgument { verb })
}

fn invalid(verb: &'static str, reason: impl Into<String>) -> ParseError {
    ParseError::InvalidArgument {
        verb,
        reason: reason.into(),
    }
}

/// A plain decimal number: digits only (no sign, no spaces inside).
/// `Ok(None)` means "digits, but too large for u64".
fn decimal(s: &str) -> Result<Option<u64>, ()> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    Ok(s.parse().ok())
}

fn parse_number(verb: &'static str, what: &str, arg: &str) -> Result<u64, ParseError> {
    match decimal(arg.trim()) {
        Ok(Some(n)) => Ok(n),
        Ok(None) => Err(invalid(verb, format!("{what} is too large"))),
        Err(()) => Err(invalid(
            verb,
            format!("{what} must be a non-negative decimal number"),
        )),
    }
}

fn first_char(verb: &'static str, arg: Option<&str>) -> Result<char, ParseError> {
    required(verb, arg)?
        .trim()
        .chars()
        .next()
        .map(|c| c.to_ascii_uppercase())
        .ok_or(ParseError::MissingArgument { verb })
}

/// `h1,h2,h3,h4,p1,p2` (RFC 959 §4.1.2).
fn parse_port(arg: &str) -> Result<SocketAddr, ParseError> {
    let syntax = "expected six comma-separated numbers h1,h2,h3,h4,p1,p2";
    let fields: Vec<&str> = arg.trim().split(',').map(str::trim).collect();
    if fields.len() != 6 {
        return Err(invalid("PORT", syntax));
    }
    let mut bytes = [0u8; 6];
    for (i, (field, byte)) in fields.iter().zip(bytes.iter_mut()).enumerate() {
        let value = decimal(field).map_err(|_| invalid("PORT", syntax))?;
        *byte = value.and_then(|v| u8::try_from(v).ok()).ok_or_else(|| {
            let what = if i < 4 { "address" } else { "port" };
            invalid("PORT", format!("{what} number out of range"))
        })?;
    }
    let [a, b, c, d, hi, lo] = bytes;
    let port = u16::from_be_bytes([hi, lo]);
    if port == 0 {
        return Err(invalid("PORT", "port number out of range"));
    }
    Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port))
}

/// `<d>proto<d>address<d>port<d>` with any printable delimiter (RFC 2428 §2).
fn parse_eprt(arg: &str) -> Result<SocketAddr, ParseError> {
    let syntax = "expected |protocol|address|port|";
    let arg = arg.trim();
    let delimiter = arg.chars().next().ok_or_else(|| invalid("EPRT", syntax))?;
    if !(33..=126).contains(&u32::from(delimiter)) {
        return Err(invalid(
            "EPRT",
            "delimiter must be a printable ASCII character",
        ));
    }
    let parts: Vec<&str> = arg.split(delimiter).collect();
    let [first, proto, address, port, last] = parts.as_slice() else {
        return Err(invalid("EPRT", syntax));
    };
    if !first.is_empty() || !last.is_empty() {
        return Err(invalid("EPRT", syntax));
    }
    let ip = match *proto {
        "1" => address
            .parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| invalid("EPRT", "invalid IPv4 address"))?,
        "2" => address
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| invalid("EPRT", "invalid IPv6 address"))?,
        _ => {
            return Err(invalid(
                "EPRT",
                "network protocol must be 1 (IPv4) or 2 (IPv6)",
            ))
        }
    };
    let port = match decimal(port) {
        Ok(Some(p)) => u16::try_from(p).ok().filter(|&p| p != 0),
        Ok(None) => None,
        Err(()) => return Err(invalid("EPRT", "port must be a decimal number")),
    }
    .ok_or_else(|| invalid("EPRT", "port number out of range"))?;
    Ok(SocketAddr::new(ip, port))
}

fn parse_epsv(arg: Option<&str>) -> Result<EpsvArg, ParseError> {
    let Some(arg) = arg.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(EpsvArg::Any);
    };
    if arg.eq_ignore_ascii_case("ALL") {
        return Ok(EpsvArg::All);
    }
    match decimal(arg) {
        Ok(Some(n)) => u8::try_from(n).ok().map(EpsvArg::Protocol),
        _ => None,
    }
    .ok_or_else(|| invalid("EPSV", "expected ALL or a network protocol number"))
}

fn parse_type(arg: &str) -> Result<TransferType, ParseError> {
    let upper = arg.to_ascii_uppercase();
    let words: Vec<&str> = upper.split_whitespace().collect();
    let unsupported = |what: &str| ParseError::Unsupported {
        verb: "TYPE",
        what: what.to_owned(),
    };
    match words.as_slice() {
        ["A"] | ["A", "N"] => Ok(TransferType::Ascii),
        ["I"] | ["L", "8"] => Ok(TransferType::Image),
        ["A", "T"] => Err(unsupported("ASCII with Telnet format effectors")),
        ["A", "C"] => Err(unsupported("ASCII with carriage control")),
        ["E", ..] => Err(unsupported("EBCDIC")),
        ["L", size] if decimal(size).is_ok() => {
            Err(unsupported(&format!("local byte size {size}")))
        }
        _ => Err(invalid("TYPE", "expected A, I or L 8")),
    }
}

/// Drops leading `ls`-style option words (`-la`, `-a -l`) that many
/// clients send with LIST/NLST. The rest, spaces included, is the path.
/// A file whose name starts with `-` therefore cannot be listed by name.
fn strip_list_options(arg: Option<&str>) -> Option<String> {
    let mut rest = arg?;
    while rest.starts_with('-') {
        rest = match rest.split_once(' ') {
            Some((_, after)) => after.trim_start_matches(' '),
            None => "",
        };
    }
    Some(rest.to_owned()).filter(|r| !r.is_empty())
}

/// `MFMT YYYYMMDDHHMMSS path` (draft-somers-ftp-mfxx).
fn parse_mfmt(arg: &str) -> Result<Command, ParseError> {
    let (time, path) = arg
        .split_once(' ')
        .filter(|(_, path)| !path.is_empty())
        .ok_or_else(|| invalid("MFMT", "expected a time YYYYMMDDHHMMSS and a path"))?;
    let time = listing::parse_time(time).map_err(|e| {
        let reason = e.to_string();
        invalid("MFMT", reason)
    })?;
    Ok(Command::Mfmt {
        time,
        path: path.to_owned(),
    })
}

fn parse_opts(arg: &str) -> Result<Opts, ParseError> {
    let trimmed = arg.trim();
    let (name, value) = match trimmed.split_once(' ') {
        Some((name, value)) => (name, Some(value.trim()).filter(|v| !v.is_empty())),
        None => (trimmed, None),
    };
    match name.to_ascii_uppercase().as_str() {
        "UTF8" | "UTF-8" => match value.map(str::to_ascii_uppercase).as_deref() {
            Some("ON") => Ok(Opts::Utf8(true)),
            Some("OFF") => Ok(Opts::Utf8(false)),
            _ => Err(invalid("OPTS", "UTF8 expects ON or OFF")),
        },
        "MLST" => Ok(Opts::Mlst(
            value
                .unwrap_or_default()
                .split(';')
                .map(|fact| fact.trim().to_ascii_lowercase())
                .filter(|fact| !fact.is_empty())
                .collect(),
        )),
        "HASH" => match value {
            None => Ok(Opts::Hash(None)),
            Some(name) => HashAlgorithm::parse(name)
                .map(|alg| Opts::Hash(Some(alg)))
                .ok_or_else(|| ParseError::Unsupported {
                    verb: "OPTS",
                    what: format!("hash algorithm {name}"),
                }),
        },
        _ => Ok(Opts::Other(arg.to_owned())),
    }
}

fn parse_auth(arg: &str) -> Result<AuthMechanism, ParseError> {
    let mechanism = arg.trim();
    match mechanism.to_ascii_uppercase().as_str() {
        "TLS" | "TLS-C" => Ok(AuthMechanism::Tls),
        "SSL" => Ok(AuthMechanism::Ssl),
        _ => Err(ParseError::Unsupported {
            verb: "AUTH",
            what: format!("security mechanism {mechanism}"),
        }),
    }
}

fn parse_prot(arg: &str) -> Result<ProtectionLevel, ParseError> {
    match arg.trim().to_ascii_uppercase().as_str() {
        "C" => Ok(ProtectionLevel::Clear),
        "S" => Ok(ProtectionLevel::Safe),
        "E" => Ok(ProtectionLevel::Confidential),
        "P" => Ok(ProtectionLevel::Private),
        _ => Err(invalid("PROT", "protection level must be C, S, E or P")),
    }
}

#[cfg(test)]
mod tests;
