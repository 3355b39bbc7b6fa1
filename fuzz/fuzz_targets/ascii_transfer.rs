//! TYPE A data through the line-ending converters: `FromNetwork` on what a
//! client uploads, `ToNetwork` on what it downloads (files other clients
//! uploaded).
//!
//! Input: one byte choosing where the data is cut into chunks (reads from a
//! socket end anywhere), then the data. The output must not depend on the
//! cuts and must match the rule stated plainly: on the way in every CRLF
//! becomes LF and nothing else changes; on the way out every LF not already
//! after a CR gets one.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_ftp::ascii::{FromNetwork, ToNetwork};

fuzz_target!(|data: &[u8]| {
    let Some((&cuts, data)) = data.split_first() else {
        return;
    };
    let chunks = chunked(data, cuts);

    let received = from_network(&chunks);
    assert_eq!(received, from_network(&[data]), "upload depends on cuts");
    assert_eq!(received, crlf_to_lf(data));

    let sent = to_network(&chunks);
    assert_eq!(sent, to_network(&[data]), "download depends on cuts");
    assert_eq!(sent, lf_to_crlf(data));
    if !data.contains(&b'\r') {
        assert_eq!(
            from_network(&[&sent]),
            data,
            "Unix text does not round-trip"
        );
    }
});

fn from_network(chunks: &[&[u8]]) -> Vec<u8> {
    let mut converter = FromNetwork::new();
    let mut out = Vec::new();
    for chunk in chunks {
        converter.convert(chunk, &mut out);
    }
    converter.finish(&mut out);
    out
}

fn to_network(chunks: &[&[u8]]) -> Vec<u8> {
    let mut converter = ToNetwork::new();
    let mut out = Vec::new();
    for chunk in chunks {
        converter.convert(chunk, &mut out);
    }
    out
}

/// Chunks of 0 to 15 bytes, their sizes drawn from `cuts`.
fn chunked(data: &[u8], cuts: u8) -> Vec<&[u8]> {
    let mut chunks = Vec::new();
    let mut state = u32::from(cuts) | 0x100;
    let mut rest = data;
    while !rest.is_empty() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let size = ((state >> 16) % 16) as usize;
        let (chunk, after) = rest.split_at(size.min(rest.len()));
        chunks.push(chunk);
        rest = after;
    }
    chunks
}

fn crlf_to_lf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(b"\r\n") {
            i += 1;
        }
        out.push(data[i]);
        i += 1;
    }
    out
}

fn lf_to_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 2);
    for (i, &byte) in data.iter().enumerate() {
        if byte == b'\n' && (i == 0 || data[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(byte);
    }
    out
}
