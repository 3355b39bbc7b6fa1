//! The first bytes of a connection from a trusted load balancer, through
//! `proxy_protocol::read_header` (PROXY protocol v1 and v2).
//!
//! Input: one byte choosing how the stream is cut into reads, then the
//! stream. The header is read twice: from a slice in one go, and from a
//! reader handing out a few bytes per read and sometimes none yet. Both must
//! give the same answer and consume the same bytes, and those bytes must be
//! exactly the header: never more than the protocol allows, never into the
//! connection's own data.

#![no_main]

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, ReadBuf};
use wharf_server::proxy_protocol::{read_header, ProxiedPeer, ProxyHeaderError};

const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version and command, family, length.
const V2_FIXED: usize = 16;
const V2_MAX_BODY: usize = 4096;
const V1_MAX: usize = 107;

fuzz_target!(|data: &[u8]| {
    let Some((&cuts, stream)) = data.split_first() else {
        return;
    };
    let mut rest = stream;
    let at_once = complete(read_header(&mut rest), stream.len());
    let consumed = stream.len() - rest.len();

    let mut trickle = Trickle {
        stream,
        position: 0,
        cuts,
        reads: 0,
    };
    let in_pieces = complete(read_header(&mut trickle), stream.len());
    assert_eq!(
        at_once, in_pieces,
        "the answer depends on how reads are cut"
    );
    assert_eq!(consumed, trickle.position, "consumed bytes depend on cuts");

    let header = &stream[..consumed];
    match &at_once {
        Err(ProxyHeaderError::Truncated) => assert_eq!(consumed, stream.len()),
        Err(ProxyHeaderError::Missing) => {
            assert_eq!(consumed, 12);
            assert!(!header.starts_with(b"PROXY ") && header != V2_SIGNATURE);
        }
        _ if header.starts_with(V2_SIGNATURE) => {
            assert!(consumed <= V2_FIXED + V2_MAX_BODY, "read {consumed} bytes");
            if let Ok(peer) = &at_once {
                let length = usize::from(u16::from_be_bytes([header[14], header[15]]));
                assert_eq!(consumed, V2_FIXED + length);
                check_v2_client(header, peer);
            }
        }
        _ => {
            assert!(consumed <= V1_MAX, "read {consumed} bytes of a v1 header");
            if at_once.is_ok() {
                assert!(header.starts_with(b"PROXY ") && header.ends_with(b"\r\n"));
                let crlfs = header.windows(2).filter(|w| w == b"\r\n").count();
                assert_eq!(crlfs, 1, "a v1 header is one line: {header:?}");
            }
        }
    }
});

/// The client a v2 header names sits at the spec's fixed offsets.
fn check_v2_client(header: &[u8], peer: &ProxiedPeer) {
    let ProxiedPeer::Client(client) = peer else {
        return;
    };
    let port = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
    let (ip, port) = match header[13] {
        0x11 => {
            let octets: [u8; 4] = header[16..20].try_into().expect("4 bytes");
            (IpAddr::from(Ipv4Addr::from(octets)), port(24))
        }
        0x21 => {
            let octets: [u8; 16] = header[16..32].try_into().expect("16 bytes");
            (IpAddr::from(Ipv6Addr::from(octets)), port(48))
        }
        family => panic!("family {family:#04x} named a client: {client}"),
    };
    assert_eq!((client.ip(), client.port()), (ip, port));
}

/// Polls `future` to the end. Reads of an in-memory stream always make
/// progress, so more polls than bytes (plus slack) mean a stall.
fn complete<F: Future>(future: F, len: usize) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    for _ in 0..4 * len + 64 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
    panic!("read_header stalled on a {len}-byte stream");
}

/// A stream that hands out a few bytes per read, and, when the top bit of
/// `cuts` is set, nothing yet on every other read.
struct Trickle<'a> {
    stream: &'a [u8],
    position: usize,
    cuts: u8,
    reads: usize,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.reads += 1;
        if self.cuts & 0x80 != 0 && self.reads % 2 == 1 {
            context.waker().wake_by_ref();
            return Poll::Pending;
        }
        let piece = 1 + (self.reads * usize::from(self.cuts & 0x7f)) % 23;
        let end = self
            .stream
            .len()
            .min(self.position + piece)
            .min(self.position + buf.remaining());
        buf.put_slice(&self.stream[self.position..end]);
        self.position = end;
        Poll::Ready(Ok(()))
    }
}
