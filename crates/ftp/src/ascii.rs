//! TYPE A (ASCII) line-ending conversion between the file's Unix `LF` and
//! the network's `CRLF` (RFC 959 §3.1.1.1).
//!
//! Data arrives and leaves in chunks of arbitrary size, so a `CR` and its
//! `LF` may sit in different chunks. Both converters carry one bit of state
//! across calls so that the result never depends on where a chunk ends.

/// `LF` → `CRLF` for data sent to the client (RETR, LIST).
///
/// An `LF` already preceded by `CR` is left alone, so files that already use
/// `CRLF` are not turned into `CRCRLF`.
#[derive(Debug, Default, Clone)]
pub struct ToNetwork {
    last_was_cr: bool,
}

impl ToNetwork {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the converted form of `input` to `out`.
    pub fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 16);
        for &byte in input {
            if byte == b'\n' && !self.last_was_cr {
                out.push(b'\r');
            }
            out.push(byte);
            self.last_was_cr = byte == b'\r';
        }
    }
}

/// `CRLF` → `LF` for data received from the client (STOR, APPE).
///
/// A lone `CR` is kept. A `CR` ending one chunk is held back until the next
/// byte shows whether it starts a `CRLF`; call [`finish`](Self::finish) at
/// end of stream to flush it.
#[derive(Debug, Default, Clone)]
pub struct FromNetwork {
    pending_cr: bool,
}

impl FromNetwork {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the converted form of `input` to `out`.
    pub fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + 1);
        for &byte in input {
            if self.pending_cr {
                self.pending_cr = false;
                if byte == b'\n' {
                    out.push(b'\n');
                    continue;
                }
                out.push(b'\r');
            }
            if byte == b'\r' {
                self.pending_cr = true;
            } else {
                out.push(byte);
            }
        }
    }

    /// Emits a `CR` held back from the last chunk, if any.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr {
            self.pending_cr = false;
            out.push(b'\r');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"one\ntwo\r\nthree\rfour\r\r\n\n\nend\r";

    fn to_network(chunks: &[&[u8]]) -> Vec<u8> {
        let mut conv = ToNetwork::new();
        let mut out = Vec::new();
        for chunk in chunks {
            conv.convert(chunk, &mut out);
        }
        out
    }

    fn from_network(chunks: &[&[u8]]) -> Vec<u8> {
        let mut conv = FromNetwork::new();
        let mut out = Vec::new();
        for chunk in chunks {
            conv.convert(chunk, &mut out);
        }
        conv.finish(&mut out);
        out
    }

    #[test]
    fn to_network_turns_lf_into_crlf() {
        assert_eq!(to_network(&[b"a\nb\n"]), b"a\r\nb\r\n");
    }

    #[test]
    fn to_network_keeps_existing_crlf_and_lone_cr() {
        assert_eq!(to_network(&[b"a\r\nb\rc"]), b"a\r\nb\rc");
        assert_eq!(
            to_network(&[SAMPLE]),
            b"one\r\ntwo\r\nthree\rfour\r\r\n\r\n\r\nend\r"
        );
    }

    #[test]
    fn to_network_remembers_cr_across_chunks() {
        assert_eq!(to_network(&[b"a\r", b"\nb"]), b"a\r\nb");
        assert_eq!(to_network(&[b"a", b"\n"]), b"a\r\n");
    }

    #[test]
    fn from_network_turns_crlf_into_lf_and_keeps_lone_cr() {
        assert_eq!(from_network(&[b"a\r\nb\rc\r\r\n"]), b"a\nb\rc\r\n");
        assert_eq!(
            from_network(&[SAMPLE]),
            b"one\ntwo\nthree\rfour\r\n\n\nend\r"
        );
    }

    #[test]
    fn from_network_joins_crlf_split_across_chunks() {
        assert_eq!(from_network(&[b"a\r", b"\nb"]), b"a\nb");
        assert_eq!(from_network(&[b"a\r", b"", b"\n"]), b"a\n");
        assert_eq!(from_network(&[b"a\r", b"b"]), b"a\rb");
    }

    #[test]
    fn from_network_finish_flushes_trailing_cr_once() {
        let mut conv = FromNetwork::new();
        let mut out = Vec::new();
        conv.convert(b"x\r", &mut out);
        assert_eq!(out, b"x");
        conv.finish(&mut out);
        conv.finish(&mut out);
        assert_eq!(out, b"x\r");
    }

    #[test]
    fn every_split_point_matches_whole_buffer_conversion() {
        let whole_to = to_network(&[SAMPLE]);
        let whole_from = from_network(&[SAMPLE]);
        for i in 0..=SAMPLE.len() {
            for j in i..=SAMPLE.len() {
                let chunks = [&SAMPLE[..i], &SAMPLE[i..j], &SAMPLE[j..]];
                assert_eq!(to_network(&chunks), whole_to, "split at {i},{j}");
                assert_eq!(from_network(&chunks), whole_from, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn round_trip_of_unix_text_is_identity() {
        let text = b"line 1\nline 2\n\nlast";
        let wire = to_network(&[text]);
        assert_eq!(from_network(&[&wire]), text);
    }
}
