//! Commands about the server and the session: FEAT OPTS HELP STAT.

use wharf_ftp::command::Opts;
use wharf_ftp::listing::list_line;
use wharf_ftp::{EntryKind, Facts, Reply};

use super::{permitted, resolve};
use crate::replies;
use crate::state::{Connection, LoggedIn, Login, Navigation, TransferSettings};

/// FEAT lists exactly what this server implements (RFC 2389); the MLST and
/// HASH lines mark the facts and algorithm currently selected.
pub fn feat(settings: &TransferSettings) -> Reply {
    let lines = vec![
        "Features:".to_owned(),
        "AUTH TLS".to_owned(),
        "AUTH SSL".to_owned(),
        "PBSZ".to_owned(),
        "PROT".to_owned(),
        "EPRT".to_owned(),
        "EPSV".to_owned(),
        "HOST".to_owned(),
        "MDTM".to_owned(),
        "MFMT".to_owned(),
        "SIZE".to_owned(),
        "REST STREAM".to_owned(),
        "TVFS".to_owned(),
        "UTF8".to_owned(),
        settings.facts.feat_line(),
        wharf_ftp::hash::feat_line(settings.hash),
        "End".to_owned(),
    ];
    Reply::multi(211, lines)
}

pub fn opts(settings: &mut TransferSettings, opts: Opts) -> Reply {
    match opts {
        Opts::Utf8(_) => Reply::new(200, "Always in UTF8 mode."),
        Opts::Mlst(names) => {
            settings.facts = Facts::from_names(&names);
            Reply::new(
                200,
                format!("MLST OPTS {}", settings.facts.opts_reply_list()),
            )
        }
        Opts::Hash(None) => Reply::new(200, settings.hash.name()),
        Opts::Hash(Some(algorithm)) => {
            settings.hash = algorithm;
            Reply::new(200, algorithm.name())
        }
        Opts::Other(what) => Reply::new(501, format!("Option not understood: {what}")),
    }
}

const COMMANDS: &str = "ABOR ACCT ALLO APPE AUTH CCC CDUP CWD DELE EPRT EPSV FEAT HASH HELP HOST LIST MDTM MFMT MKD MLSD MLST MODE NLST NOOP OPTS PASS PASV PBSZ PORT PROT PWD QUIT REIN REST RETR RMD RNFR RNTO SIZE STAT STOR STOU STRU SYST TYPE USER XCUP XCWD XMKD XPWD XRMD";

pub fn help(topic: Option<&str>) -> Reply {
    match topic {
        Some(t)
            if COMMANDS
                .split(' ')
                .any(|c| c.eq_ignore_ascii_case(t.trim())) =>
        {
            Reply::new(
                214,
                format!(
                    "{} is supported; see RFC 959 and its extensions.",
                    t.trim().to_ascii_uppercase()
                ),
            )
        }
        Some(t) => Reply::new(502, format!("Unknown command {}.", t.trim())),
        None => {
            let mut lines = vec!["The following commands are recognized:".to_owned()];
            let all: Vec<&str> = COMMANDS.split(' ').collect();
            lines.extend(all.chunks(10).map(|c| c.join(" ")));
            lines.push("Help OK.".to_owned());
            Reply::multi(214, lines)
        }
    }
}

/// STAT without argument: the session's state (RFC 959 211).
pub fn status(conn: &Connection, login: &Login, settings: &TransferSettings) -> Reply {
    let mut lines = vec!["Wharf FTPS server status:".to_owned()];
    lines.push(format!("Connected from {}", conn.peer.ip()));
    match login.user() {
        Some(u) => lines.push(format!("Logged in as {}", u.name)),
        None => lines.push("Not logged in".to_owned()),
    }
    lines.push(match conn.control.tls_description() {
        Some(tls) => format!("Control connection protected with {tls}"),
        None => "Control connection not protected".to_owned(),
    });
    lines.push(format!(
        "Data protection: {}",
        if settings.private() {
            "private"
        } else {
            "clear"
        }
    ));
    lines.push(format!(
        "TYPE: {}, STRUcture: File, MODE: Stream",
        if settings.ascii() { "ASCII" } else { "BINARY" }
    ));
    lines.push("End of status".to_owned());
    Reply::multi(211, lines)
}

/// STAT path: a listing over the control connection (213).
pub async fn stat_path(login: &LoggedIn, nav: &Navigation, arg: &str) -> Reply {
    let path = match resolve(nav, arg) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let fs = match permitted(login, |p| p.list) {
        Ok(fs) => fs,
        Err(r) => return r,
    };
    let entries = match fs.metadata(&path).await {
        Ok(e) if matches!(e.kind, EntryKind::Dir) => match fs.list(&path).await {
            Ok(list) => list,
            Err(e) => return replies::fs_error(&e),
        },
        Ok(e) => vec![e],
        Err(e) => return replies::fs_error(&e),
    };
    let now = std::time::SystemTime::now();
    let mut lines = vec![format!("Status of {path}:")];
    lines.extend(entries.iter().map(|e| list_line(e, now)));
    lines.push("End of status".to_owned());
    Reply::multi(213, lines)
}
