//! Server replies and their wire encoding (RFC 959 §4.2).
//!
//! Reply texts often carry peer-chosen data (file names, the unknown verb a
//! client sent). A CR or LF in such text would let a peer end the reply early
//! and forge a second one, so encoding replaces them with spaces. The same
//! reasoning is why middle lines of a multi-line reply are always indented by
//! one space: a middle line can then never look like the `NNN ` footer.

use std::fmt;

/// One reply: a three-digit code and one or more lines of text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The first line is the header text, the last the footer text. A reply
    /// with a single line is encoded as a single-line reply.
    pub lines: Vec<String>,
}

impl Reply {
    /// A single-line reply such as `226 Transfer complete`.
    pub fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply. Pass middle lines without their leading space
    /// (e.g. `"MLST type*;size*;"`); encoding adds it.
    pub fn multi(code: u16, lines: Vec<String>) -> Reply {
        Reply { code, lines }
    }

    /// The bytes to write to the control connection, CRLF-terminated.
    pub fn encode(&self) -> Vec<u8> {
        self.render("\r\n", true).into_bytes()
    }

    fn render(&self, eol: &str, trailing_eol: bool) -> String {
        let code = self.code;
        let mut out = String::new();
        match self.lines.as_slice() {
            [] => out.push_str(&format!("{code} ")),
            [only] => out.push_str(&format!("{code} {}", neutralise(only))),
            [first, middle @ .., last] => {
                out.push_str(&format!("{code}-{}{eol}", neutralise(first)));
                for line in middle {
                    out.push_str(&format!(" {}{eol}", neutralise(line)));
                }
                out.push_str(&format!("{code} {}", neutralise(last)));
            }
        }
        if trailing_eol {
            out.push_str(eol);
        }
        out
    }
}

/// Logs show the reply as sent, but with `\n` between lines and no final
/// line terminator, so a log line is not broken by a stray CR.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render("\n", false))
    }
}

/// Replaces CR, LF and NUL with spaces so peer-chosen text cannot split or
/// truncate a reply.
fn neutralise(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\r' | '\n' | '\0' => ' ',
            other => other,
        })
        .collect()
}

/// Quotes a path for a 257 reply (RFC 959 Appendix II): wrapped in double
/// quotes, with every embedded double quote doubled.
pub fn quote_path(p: &str) -> String {
    format!("\"{}\"", p.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_reply_ends_with_crlf() {
        assert_eq!(
            Reply::new(226, "Transfer complete").encode(),
            b"226 Transfer complete\r\n"
        );
    }

    #[test]
    fn multi_line_reply_indents_middle_lines() {
        let reply = Reply::multi(
            211,
            vec![
                "Features:".into(),
                "UTF8".into(),
                "MLST type*;".into(),
                "End".into(),
            ],
        );
        assert_eq!(
            reply.encode(),
            b"211-Features:\r\n UTF8\r\n MLST type*;\r\n211 End\r\n"
        );
    }

    #[test]
    fn middle_line_looking_like_a_footer_cannot_end_the_reply() {
        let reply = Reply::multi(211, vec!["head".into(), "211 fake".into(), "end".into()]);
        assert_eq!(reply.encode(), b"211-head\r\n 211 fake\r\n211 end\r\n");
    }

    #[test]
    fn multi_with_one_line_is_a_single_line_reply() {
        assert_eq!(Reply::multi(200, vec!["OK".into()]).encode(), b"200 OK\r\n");
    }

    #[test]
    fn reply_without_lines_still_has_code_and_crlf() {
        assert_eq!(Reply::multi(200, vec![]).encode(), b"200 \r\n");
    }

    #[test]
    fn crlf_in_peer_text_cannot_inject_a_second_reply() {
        let reply = Reply::new(550, "evil\r\n230 Logged in");
        assert_eq!(reply.encode(), b"550 evil  230 Logged in\r\n");
        let multi = Reply::multi(211, vec!["a\nb".into(), "c\rd".into(), "e\0f".into()]);
        assert_eq!(multi.encode(), b"211-a b\r\n c d\r\n211 e f\r\n");
    }

    #[test]
    fn display_uses_newlines_without_trailing_terminator() {
        let reply = Reply::multi(211, vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(reply.to_string(), "211-a\n b\n211 c");
        assert_eq!(Reply::new(200, "OK").to_string(), "200 OK");
    }

    #[test]
    fn quote_path_doubles_embedded_quotes() {
        assert_eq!(quote_path("/a/b"), "\"/a/b\"");
        assert_eq!(quote_path("/say \"hi\""), "\"/say \"\"hi\"\"\"");
        assert_eq!(quote_path("/"), "\"/\"");
    }
}
