//! Directory listings (LIST's `ls -l` lines, MLSD/MLST fact lines) and the
//! time and address formats used in replies.
//!
//! Clients such as FileZilla, lftp and curl parse LIST output heuristically,
//! so [`list_line`] mimics GNU `ls -l` closely. MLSD/MLST (RFC 3659) exists
//! because that parsing is fragile; [`mlsx_line`] follows its grammar
//! exactly. All times are UTC: the server cannot know the client's zone.

use std::net::SocketAddrV4;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

/// What a directory entry is. Symlinks are reported by the server with the
/// kind of their target where it follows them; `Symlink` is for the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

/// One directory entry, gathered by the server from its storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub kind: EntryKind,
    pub size: u64,
    pub modified: SystemTime,
    /// Unix permission bits, e.g. `0o644`.
    pub mode: u32,
    pub nlink: u64,
    /// MLST `unique` fact, e.g. `803g1a2b` (device and inode in hex).
    pub unique: String,
    /// MLST `perm` fact computed by the server, e.g. `adfrw` or `flcdmpe`.
    pub perm: String,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Half a Gregorian year, the window GNU `ls` uses to show a time of day
/// instead of a year.
const RECENT_PAST: Duration = Duration::from_secs(31_556_952 / 2);
/// Clock skew tolerated before a future time is shown with its year.
const RECENT_FUTURE: Duration = Duration::from_secs(3600);

/// An `ls -l` line without line terminator, e.g.
/// `-rw-r--r-- 1 ftp ftp        1234 Nov 21 04:58 name`.
///
/// The time of day is shown for entries modified within the last six months
/// (and at most an hour ahead of `now`), otherwise the year.
pub fn list_line(entry: &Entry, now: SystemTime) -> String {
    let kind = match entry.kind {
        EntryKind::File => '-',
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'l',
    };
    let t = to_utc(entry.modified);
    let not_too_old = match now.checked_sub(RECENT_PAST) {
        Some(oldest) => entry.modified > oldest,
        None => true,
    };
    let not_in_future = match now.checked_add(RECENT_FUTURE) {
        Some(newest) => entry.modified <= newest,
        None => true,
    };
    let recent = not_too_old && not_in_future;
    let time_or_year = if recent {
        format!("{:02}:{:02}", t.hour(), t.minute())
    } else {
        format!("{:>5}", t.year())
    };
    format!(
        "{kind}{} {} ftp ftp {:>11} {} {:>2} {time_or_year} {}",
        mode_string(entry.mode),
        entry.nlink,
        entry.size,
        month_name(t.month()),
        t.day(),
        single_line(&entry.name),
    )
}

/// `rwxr-xr-x` from permission bits, including setuid/setgid/sticky.
fn mode_string(mode: u32) -> String {
    let triplet = |shift: u32, special: bool, set: char, unset: char| {
        let bits = (mode >> shift) & 0o7;
        let exec = bits & 0o1 != 0;
        [
            if bits & 0o4 != 0 { 'r' } else { '-' },
            if bits & 0o2 != 0 { 'w' } else { '-' },
            match (special, exec) {
                (true, true) => set,
                (true, false) => unset,
                (false, true) => 'x',
                (false, false) => '-',
            },
        ]
    };
    let mut out = String::with_capacity(9);
    out.extend(triplet(6, mode & 0o4000 != 0, 's', 'S'));
    out.extend(triplet(3, mode & 0o2000 != 0, 's', 'S'));
    out.extend(triplet(0, mode & 0o1000 != 0, 't', 'T'));
    out
}

fn month_name(month: u32) -> &'static str {
    let index = usize::try_from(month.saturating_sub(1)).unwrap_or(0);
    MONTHS.get(index).copied().unwrap_or("Jan")
}

/// Names go into CRLF-delimited listings; a CR or LF in a crafted file name
/// would otherwise forge extra entries, so they become spaces.
fn single_line(name: &str) -> String {
    name.replace(['\r', '\n'], " ")
}

/// Which MLST facts a client asked for with `OPTS MLST`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    pub type_: bool,
    pub size: bool,
    pub modify: bool,
    pub perm: bool,
    pub unique: bool,
}

impl Default for Facts {
    /// RFC 3659 lets the server choose the default set; we send everything.
    fn default() -> Self {
        Facts::all()
    }
}

impl Facts {
    pub fn all() -> Facts {
        Facts {
            type_: true,
            size: true,
            modify: true,
            perm: true,
            unique: true,
        }
    }

    /// Selects the named facts (case-insensitive); unknown names are ignored
    /// as RFC 3659 §7.9 requires.
    pub fn from_names(names: &[String]) -> Facts {
        let has = |fact: &str| names.iter().any(|n| n.eq_ignore_ascii_case(fact));
        Facts {
            type_: has("type"),
            size: has("size"),
            modify: has("modify"),
            perm: has("perm"),
            unique: has("unique"),
        }
    }

    fn list(&self) -> [(&'static str, bool); 5] {
        [
            ("type", self.type_),
            ("size", self.size),
            ("modify", self.modify),
            ("perm", self.perm),
            ("unique", self.unique),
        ]
    }

    /// The FEAT line: `MLST type*;size*;modify*;perm*;unique*;` with `*` on
    /// the facts currently enabled.
    pub fn feat_line(&self) -> String {
        let mut out = String::from("MLST ");
        for (name, enabled) in self.list() {
            out.push_str(name);
            if enabled {
                out.push('*');
            }
            out.push(';');
        }
        out
    }

    /// The enabled facts as `type;size;`, for the `200 MLST OPTS` reply.
    pub fn opts_reply_list(&self) -> String {
        self.list()
            .iter()
            .filter(|(_, enabled)| *enabled)
            .map(|(name, _)| format!("{name};"))
            .collect()
    }
}

/// An MLSD/MLST line (RFC 3659 §7) without line terminator, e.g.
/// `type=file;size=1234;modify=20261121045817;perm=adfrw;unique=803g1a2b; name`.
///
/// `name_override` replaces the entry name, for MLST which shows the path as
/// the client gave it. Symlinks are reported as `file`; `size` is only sent
/// for non-directories.
pub fn mlsx_line(entry: &Entry, facts: &Facts, name_override: Option<&str>) -> String {
    let mut out = String::new();
    if facts.type_ {
        let kind = match entry.kind {
            EntryKind::Dir => "dir",
            EntryKind::File | EntryKind::Symlink => "file",
        };
        out.push_str(&format!("type={kind};"));
    }
    if facts.size && entry.kind != EntryKind::Dir {
        out.push_str(&format!("size={};", entry.size));
    }
    if facts.modify {
        out.push_str(&format!("modify={};", format_time(entry.modified)));
    }
    if facts.perm {
        out.push_str(&format!("perm={};", entry.perm));
    }
    if facts.unique {
        out.push_str(&format!("unique={};", entry.unique));
    }
    out.push(' ');
    out.push_str(&single_line(name_override.unwrap_or(&entry.name)));
    out
}

/// Why an MFMT/MDTM-style time value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum TimeError {
    #[error("time must be YYYYMMDDHHMMSS with an optional .fraction")]
    Format,
    #[error("time is not a valid calendar date and time")]
    OutOfRange,
}

/// `YYYYMMDDHHMMSS` in UTC, as used by MDTM, MFMT and the `modify` fact.
pub fn format_time(t: SystemTime) -> String {
    let t = to_utc(t);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses RFC 3659 `time-val`: `YYYYMMDDHHMMSS` in UTC with an optional
/// `.fff` fraction of any number of digits (kept to nanosecond precision).
pub fn parse_time(s: &str) -> Result<SystemTime, TimeError> {
    let (whole, fraction) = match s.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (s, None),
    };
    let all_digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if whole.len() != 14 || !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
        return Err(TimeError::Format);
    }
    let field = |range: std::ops::Range<usize>| -> Result<u32, TimeError> {
        whole
            .get(range)
            .and_then(|digits| digits.parse().ok())
            .ok_or(TimeError::Format)
    };
    let year = i32::try_from(field(0..4)?).map_err(|_| TimeError::OutOfRange)?;
    let seconds = NaiveDate::from_ymd_opt(year, field(4..6)?, field(6..8)?)
        .and_then(|date| {
            date.and_hms_opt(field(8..10).ok()?, field(10..12).ok()?, field(12..14).ok()?)
        })
        .ok_or(TimeError::OutOfRange)?
        .and_utc()
        .timestamp();
    let nanos = fraction.map_or(0, fraction_nanos);
    let base = if seconds >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(seconds.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(seconds.unsigned_abs()))
    };
    base.and_then(|t| t.checked_add(Duration::from_nanos(nanos)))
        .ok_or(TimeError::OutOfRange)
}

/// Nanoseconds from the digits after the decimal point.
fn fraction_nanos(digits: &str) -> u64 {
    digits
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(9)
        .fold(0, |acc, b| acc * 10 + u64::from(b.saturating_sub(b'0')))
}

/// Converts to UTC, clamping times chrono cannot represent to the epoch
/// (a file's mtime is outside our control and must not cause a panic).
fn to_utc(t: SystemTime) -> DateTime<Utc> {
    let seconds = match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).ok(),
        Err(before) => {
            let before = before.duration();
            let round_down = i64::from(before.subsec_nanos() > 0);
            i64::try_from(before.as_secs())
                .ok()
                .and_then(|s| s.checked_neg())
                .and_then(|s| s.checked_sub(round_down))
        }
    };
    seconds
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// The 227 reply text: `Entering Passive Mode (127,0,0,1,195,80).`
pub fn pasv_reply_text(addr: SocketAddrV4) -> String {
    let [a, b, c, d] = addr.ip().octets();
    let [hi, lo] = addr.port().to_be_bytes();
    format!("Entering Passive Mode ({a},{b},{c},{d},{hi},{lo}).")
}

/// The 229 reply text: `Entering Extended Passive Mode (|||50000|)`.
pub fn epsv_reply_text(port: u16) -> String {
    format!("Entering Extended Passive Mode (|||{port}|)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// 2026-11-21 04:58:17 UTC.
    const T0: u64 = 1_795_237_097;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn file(name: &str, size: u64, modified: SystemTime) -> Entry {
        Entry {
            name: name.into(),
            kind: EntryKind::File,
            size,
            modified,
            mode: 0o644,
            nlink: 1,
            unique: "803g1a2b".into(),
            perm: "adfrw".into(),
        }
    }

    #[test]
    fn format_time_is_utc_digits() {
        assert_eq!(format_time(at(T0)), "20261121045817");
        assert_eq!(format_time(UNIX_EPOCH), "19700101000000");
    }

    #[test]
    fn format_time_before_epoch_rounds_down() {
        let t = UNIX_EPOCH - Duration::from_millis(500);
        assert_eq!(format_time(t), "19691231235959");
    }

    #[test]
    fn parse_time_inverts_format_time() {
        assert_eq!(parse_time("20261121045817"), Ok(at(T0)));
        assert_eq!(parse_time("19700101000000"), Ok(UNIX_EPOCH));
        assert_eq!(
            parse_time("19691231235959"),
            Ok(UNIX_EPOCH - Duration::from_secs(1))
        );
    }

    #[test]
    fn parse_time_accepts_a_fraction() {
        assert_eq!(
            parse_time("20261121045817.25"),
            Ok(at(T0) + Duration::from_millis(250))
        );
        assert_eq!(
            parse_time("20261121045817.1234567891"),
            Ok(at(T0) + Duration::from_nanos(123_456_789))
        );
    }

    #[test]
    fn parse_time_rejects_malformed_values() {
        for bad in [
            "",
            "2026112104581",
            "202611210458170",
            "2026112104581x",
            "20261121045817.",
            "20261121045817.5x",
            " 20261121045817",
            "+2026112104581",
            "20261121045817Z",
        ] {
            assert_eq!(parse_time(bad), Err(TimeError::Format), "{bad:?}");
        }
    }

    #[test]
    fn parse_time_rejects_impossible_dates() {
        for bad in [
            "20261321000000",
            "20260230000000",
            "20261121250000",
            "20261121006000",
            "20261121000060",
        ] {
            assert_eq!(parse_time(bad), Err(TimeError::OutOfRange), "{bad:?}");
        }
    }

    #[test]
    fn list_line_for_recent_file_shows_time_of_day() {
        let entry = file("name", 1234, at(T0));
        assert_eq!(
            list_line(&entry, at(T0 + 86_400)),
            "-rw-r--r-- 1 ftp ftp        1234 Nov 21 04:58 name"
        );
    }

    #[test]
    fn list_line_for_old_file_shows_year() {
        let entry = file("old.txt", 5, at(T0));
        let now = at(T0 + 200 * 86_400);
        assert_eq!(
            list_line(&entry, now),
            "-rw-r--r-- 1 ftp ftp           5 Nov 21  2026 old.txt"
        );
    }

    #[test]
    fn list_line_for_future_file_shows_year_beyond_an_hour() {
        let entry = file("f", 0, at(T0));
        assert!(list_line(&entry, at(T0 - 1800)).ends_with("Nov 21 04:58 f"));
        assert!(list_line(&entry, at(T0 - 7200)).ends_with("Nov 21  2026 f"));
    }

    #[test]
    fn list_line_never_truncates_huge_sizes() {
        let entry = file("big", 123_456_789_012_345, at(T0));
        assert!(list_line(&entry, at(T0)).contains(" ftp ftp 123456789012345 Nov"));
    }

    #[test]
    fn list_line_pads_single_digit_day() {
        let entry = file("x", 1, at(1_767_316_200)); // 2026-01-02 01:10 UTC
        assert_eq!(
            list_line(&entry, at(1_767_316_200)),
            "-rw-r--r-- 1 ftp ftp           1 Jan  2 01:10 x"
        );
    }

    #[test]
    fn list_line_shows_directory_and_symlink_types() {
        let mut dir = file("sub dir", 4096, at(T0));
        dir.kind = EntryKind::Dir;
        dir.mode = 0o755;
        dir.nlink = 3;
        assert_eq!(
            list_line(&dir, at(T0)),
            "drwxr-xr-x 3 ftp ftp        4096 Nov 21 04:58 sub dir"
        );
        let mut link = file("l", 7, at(T0));
        link.kind = EntryKind::Symlink;
        link.mode = 0o777;
        assert!(list_line(&link, at(T0)).starts_with("lrwxrwxrwx 1 "));
    }

    #[test]
    fn mode_string_shows_special_bits() {
        assert_eq!(mode_string(0o4755), "rwsr-xr-x");
        assert_eq!(mode_string(0o2644), "rw-r-Sr--");
        assert_eq!(mode_string(0o1777), "rwxrwxrwt");
        assert_eq!(mode_string(0o1776), "rwxrwxrwT");
        assert_eq!(mode_string(0), "---------");
    }

    #[test]
    fn list_line_neutralises_newlines_in_names() {
        let entry = file("a\r\nfake", 1, at(T0));
        assert!(list_line(&entry, at(T0)).ends_with(" a  fake"));
    }

    #[test]
    fn mlsx_line_with_all_facts() {
        let entry = file("name", 1234, at(T0));
        assert_eq!(
            mlsx_line(&entry, &Facts::all(), None),
            "type=file;size=1234;modify=20261121045817;perm=adfrw;unique=803g1a2b; name"
        );
    }

    #[test]
    fn mlsx_line_omits_size_for_directories_and_disabled_facts() {
        let mut dir = file("d", 4096, at(T0));
        dir.kind = EntryKind::Dir;
        dir.perm = "flcdmpe".into();
        assert_eq!(
            mlsx_line(&dir, &Facts::all(), None),
            "type=dir;modify=20261121045817;perm=flcdmpe;unique=803g1a2b; d"
        );
        let facts = Facts::from_names(&["type".into(), "size".into()]);
        assert_eq!(
            mlsx_line(&file("f", 9, at(T0)), &facts, None),
            "type=file;size=9; f"
        );
    }

    #[test]
    fn mlsx_line_reports_symlinks_as_files_and_honours_override() {
        let mut link = file("l", 3, at(T0));
        link.kind = EntryKind::Symlink;
        let facts = Facts::from_names(&["type".into()]);
        assert_eq!(
            mlsx_line(&link, &facts, Some("/dir/l")),
            "type=file; /dir/l"
        );
    }

    #[test]
    fn mlsx_line_without_facts_is_space_then_name() {
        let none = Facts::from_names(&[]);
        assert_eq!(mlsx_line(&file("f", 1, at(T0)), &none, None), " f");
    }

    #[test]
    fn facts_from_names_ignores_unknown_and_case() {
        let facts = Facts::from_names(&["SIZE".into(), "bogus".into(), "unique".into()]);
        assert_eq!(
            facts,
            Facts {
                type_: false,
                size: true,
                modify: false,
                perm: false,
                unique: true
            }
        );
    }

    #[test]
    fn facts_feat_and_opts_lines() {
        assert_eq!(
            Facts::all().feat_line(),
            "MLST type*;size*;modify*;perm*;unique*;"
        );
        let facts = Facts::from_names(&["type".into(), "modify".into()]);
        assert_eq!(facts.feat_line(), "MLST type*;size;modify*;perm;unique;");
        assert_eq!(facts.opts_reply_list(), "type;modify;");
        assert_eq!(Facts::from_names(&[]).opts_reply_list(), "");
    }

    #[test]
    fn passive_reply_texts() {
        let addr = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 50_000);
        assert_eq!(
            pasv_reply_text(addr),
            "Entering Passive Mode (127,0,0,1,195,80)."
        );
        assert_eq!(
            epsv_reply_text(50_000),
            "Entering Extended Passive Mode (|||50000|)"
        );
    }
}
