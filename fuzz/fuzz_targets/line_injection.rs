//! A file name a client chose (STOR, MKD, RNTO accept any UTF-8 but NUL and
//! `/`) on its way into line-based output other programs parse: replies on
//! the control connection, LIST and MLSD lines, the xferlog.
//!
//! The invariant: the name stays inside its own line and field. It cannot end
//! a reply early or forge another, add a listing entry or an MLSD fact, or
//! shift the fields of a transfer log line.

#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use wharf_ftp::listing::{list_line, mlsx_line};
use wharf_ftp::reply::quote_path;
use wharf_ftp::{Entry, EntryKind, Facts, Reply};
use wharf_server::xferlog::{Direction, TransferRecord};

const NOW_SECS: u64 = 1_800_000_000;

fuzz_target!(|name: &str| {
    let one_line = name.replace(['\r', '\n'], " ");
    check_listing(name, &one_line);
    check_replies(name);
    check_xferlog(name);
});

fn check_listing(name: &str, one_line: &str) {
    let now = UNIX_EPOCH + Duration::from_secs(NOW_SECS);
    let entry = Entry {
        name: name.to_owned(),
        kind: EntryKind::File,
        size: 1234,
        modified: now - Duration::from_secs(86_400),
        mode: 0o644,
        nlink: 1,
        unique: "803g1a2b".into(),
        perm: "adfrw".into(),
    };
    let list = list_line(&entry, now);
    assert!(!list.contains(['\r', '\n']), "{list:?}");
    assert!(list.ends_with(one_line), "{list:?}");

    let mlsd = mlsx_line(&entry, &Facts::all(), None);
    assert!(!mlsd.contains(['\r', '\n']), "{mlsd:?}");
    // RFC 3659 §7.2: the facts end at the first space; the rest is the name.
    let (facts, shown) = mlsd.split_once(' ').expect("a fact line has a space");
    assert_eq!(
        facts,
        "type=file;size=1234;modify=20270114080000;perm=adfrw;unique=803g1a2b;"
    );
    assert_eq!(shown, one_line);
}

fn check_replies(name: &str) {
    let neutral = name.replace(['\r', '\n', '\0'], " ");

    let created = Reply::new(257, format!("{} created.", quote_path(name))).encode();
    let line = single_line(&created);
    // A client takes the path between the first and the last quote and
    // undoubles the quotes inside.
    let quoted = line
        .strip_prefix("257 \"")
        .and_then(|l| l.strip_suffix("\" created."))
        .expect("257 \"path\" created.");
    assert_eq!(quoted.replace("\"\"", "\""), neutral);

    let status = Reply::multi(211, vec!["Status:".into(), name.into(), "End".into()]).encode();
    let status = std::str::from_utf8(&status).expect("replies are UTF-8");
    let lines: Vec<&str> = status.split_terminator("\r\n").collect();
    assert_eq!(lines.len(), 3, "{status:?}");
    assert_eq!(lines[0], "211-Status:");
    assert_eq!(lines[1], format!(" {neutral}"));
    assert_eq!(lines[2], "211 End");
    assert!(status.ends_with("\r\n") && !status.contains("\r\r"));
}

/// The one line of a single-line reply, without its CRLF.
fn single_line(wire: &[u8]) -> &str {
    let text = std::str::from_utf8(wire).expect("replies are UTF-8");
    let line = text.strip_suffix("\r\n").expect("a reply ends with CRLF");
    assert!(!line.contains(['\r', '\n']), "{text:?}");
    line
}

fn check_xferlog(name: &str) {
    let path = format!("/upload/{name}");
    let record = TransferRecord {
        peer: "192.0.2.7".parse().expect("an address"),
        user: "alice",
        path: &path,
        bytes: 1234,
        duration: Duration::from_secs(2),
        direction: Direction::Incoming,
        ascii: false,
        complete: true,
    };
    let now = chrono::DateTime::from_timestamp(NOW_SECS as i64, 0).expect("a time");
    let line = record.xferlog_line(now);
    let body = line.strip_suffix('\n').expect("a log line ends with LF");
    assert!(!body.contains(['\r', '\n']), "{line:?}");
    // Five fields of date and time, then thirteen: the name is one of them.
    let fields: Vec<&str> = body.split_whitespace().collect();
    assert_eq!(fields.len(), 18, "{line:?}");
    assert_eq!(fields[13], "alice", "{line:?}");
}
