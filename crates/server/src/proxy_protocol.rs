//! The PROXY protocol (HAProxy's, versions 1 and 2) on connections from
//! trusted load balancers. The balancer opens each connection with a header
//! naming the client it accepted; with it, bans, allow lists, logs and the
//! data-connection peer check see the client instead of the balancer.
//!
//! Only connections from `--proxy-from` networks are read this way, and for
//! them the header is required (as HAProxy's own `accept-proxy`): a client
//! that could reach the node directly must not choose its address. Exactly
//! the header's bytes are read, so what follows is the connection's own data.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;

/// Opens every version 2 header.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A version 1 header is one line of at most this many bytes, CRLF included.
const V1_MAX: usize = 107;
/// Address block plus TLVs accepted in a version 2 header (HAProxy sends a
/// few dozen bytes; this bounds what a broken balancer makes us buffer).
const V2_MAX_BODY: usize = 4096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyHeaderError {
    #[error("the connection does not start with a PROXY protocol header")]
    Missing,
    #[error("malformed PROXY v1 header: {0}")]
    BadV1(&'static str),
    #[error("malformed PROXY v2 header: {0}")]
    BadV2(&'static str),
    #[error("the connection ended inside the PROXY header")]
    Truncated,
}

/// What a header says about its connection.
#[derive(Debug, PartialEq, Eq)]
pub enum ProxiedPeer {
    /// The client's address and port, as the balancer saw them.
    Client(SocketAddr),
    /// The balancer speaks for itself (health checks: v2 `LOCAL`, v1
    /// `UNKNOWN`) or for a family other than TCP over IP.
    Balancer,
}

/// The networks whose connections carry a PROXY header.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = crate::address_rules::canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }

    /// The client behind a connection from `peer`: `peer` itself, unless it is
    /// a trusted balancer, whose header (read within `limit`) names the client.
    /// `None` when a balancer's header is missing, malformed or late; the
    /// caller closes that connection (`what` names it in the log).
    pub async fn client_behind(
        &self,
        stream: &mut TcpStream,
        peer: SocketAddr,
        limit: Duration,
        what: &str,
    ) -> Option<SocketAddr> {
        if !self.contains(peer.ip()) {
            return Some(peer);
        }
        match tokio::time::timeout(limit, read_header(stream)).await {
            Ok(Ok(ProxiedPeer::Client(client))) => {
                tracing::debug!(balancer = %peer, %client, "PROXY header");
                Some(client)
            }
            Ok(Ok(ProxiedPeer::Balancer)) => Some(peer),
            Ok(Err(e)) => {
                tracing::info!(balancer = %peer, "{what} closed: {e}");
                None
            }
            Err(_) => {
                tracing::info!(balancer = %peer, "{what} closed: no PROXY header in time");
                None
            }
        }
    }
}

/// Reads one header, version 1 or 2, and nothing after it.
pub async fn read_header<R: AsyncRead + Unpin>(
    input: &mut R,
) -> Result<ProxiedPeer, ProxyHeaderError> {
    // 12 bytes: the v2 signature, or the start of the shortest v1 header
    // ("PROXY UNKNOWN\r\n" is 15).
    let mut start = [0u8; 12];
    read_exact(input, &mut start).await?;
    if start == V2_SIGNATURE {
        let mut fixed = [0u8; 4];
        read_exact(input, &mut fixed).await?;
        let len = u16::from_be_bytes([fixed[2], fixed[3]]) as usize;
        if len > V2_MAX_BODY {
            return Err(ProxyHeaderError::BadV2("longer than 4096 bytes"));
        }
        let mut body = vec![0u8; len];
        read_exact(input, &mut body).await?;
        return parse_v2(fixed[0], fixed[1], &body);
    }
    if !start.starts_with(b"PROXY ") {
        return Err(ProxyHeaderError::Missing);
    }
    let mut line = start.to_vec();
    while !line.ends_with(b"\r\n") {
        if line.len() == V1_MAX {
            return Err(ProxyHeaderError::BadV1("no CRLF within 107 bytes"));
        }
        let mut byte = [0u8; 1];
        read_exact(input, &mut byte).await?;
        line.push(byte[0]);
    }
    parse_v1(line.strip_suffix(b"\r\n").unwrap_or(&line))
}

async fn read_exact<R: AsyncRead + Unpin>(
    input: &mut R,
    buf: &mut [u8],
) -> Result<(), ProxyHeaderError> {
    input
        .read_exact(buf)
        .await
        .map(|_| ())
        .map_err(|_| ProxyHeaderError::Truncated)
}

/// `PROXY TCP4|TCP6 SRC DST SPORT DPORT` or `PROXY UNKNOWN …` (without CRLF).
fn parse_v1(line: &[u8]) -> Result<ProxiedPeer, ProxyHeaderError> {
    let bad = ProxyHeaderError::BadV1;
    let line = std::str::from_utf8(line).map_err(|_| bad("not ASCII"))?;
    let fields: Vec<&str> = line.split(' ').collect();
    match fields.get(1).copied() {
        Some("UNKNOWN") => return Ok(ProxiedPeer::Balancer),
        Some("TCP4") | Some("TCP6") => {}
        _ => return Err(bad("protocol must be TCP4, TCP6 or UNKNOWN")),
    }
    let [_, family, source, destination, source_port, destination_port] = fields[..] else {
        return Err(bad("expected PROXY TCP4|TCP6 SRC DST SPORT DPORT"));
    };
    let source: IpAddr = source.parse().map_err(|_| bad("bad source address"))?;
    let destination: IpAddr = destination
        .parse()
        .map_err(|_| bad("bad destination address"))?;
    let v4 = family == "TCP4";
    if source.is_ipv4() != v4 || destination.is_ipv4() != v4 {
        return Err(bad("address family does not match the protocol"));
    }
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|_| !p.starts_with('0') || p == "0")
    };
    let source_port = port(source_port).ok_or(bad("bad source port"))?;
    port(destination_port).ok_or(bad("bad destination port"))?;
    Ok(ProxiedPeer::Client(SocketAddr::new(source, source_port)))
}

/// The part of a v2 header after the signature: version and command, family
/// and transport, then `body` (addresses, then TLVs, which are skipped).
fn parse_v2(version_command: u8, family: u8, body: &[u8]) -> Result<ProxiedPeer, ProxyHeaderError> {
    let bad = ProxyHeaderError::BadV2;
    if version_command >> 4 != 2 {
        return Err(bad("version must be 2"));
    }
    match version_command & 0x0f {
        0 => return Ok(ProxiedPeer::Balancer), // LOCAL
        1 => {}                                // PROXY
        _ => return Err(bad("command must be LOCAL or PROXY")),
    }
    // `N` bytes of `body` from `at`, or the family's block is too short.
    fn take<const N: usize>(body: &[u8], at: usize) -> Option<[u8; N]> {
        body.get(at..at.checked_add(N)?)?.try_into().ok()
    }
    match family {
        // TCP over IPv4: src 4, dst 4, sport 2, dport 2.
        0x11 => {
            let short = || bad("IPv4 address block too short");
            let ip: [u8; 4] = take(body, 0).ok_or_else(short)?;
            let port: [u8; 2] = take(body, 8).ok_or_else(short)?;
            take::<2>(body, 10).ok_or_else(short)?;
            let source = SocketAddr::new(Ipv4Addr::from(ip).into(), u16::from_be_bytes(port));
            Ok(ProxiedPeer::Client(source))
        }
        // TCP over IPv6: src 16, dst 16, sport 2, dport 2.
        0x21 => {
            let short = || bad("IPv6 address block too short");
            let ip: [u8; 16] = take(body, 0).ok_or_else(short)?;
            let port: [u8; 2] = take(body, 32).ok_or_else(short)?;
            take::<2>(body, 34).ok_or_else(short)?;
            let source = SocketAddr::new(Ipv6Addr::from(ip).into(), u16::from_be_bytes(port));
            Ok(ProxiedPeer::Client(source))
        }
        // UNSPEC, UDP, UNIX sockets: nothing usable; the balancer stands in.
        _ => Ok(ProxiedPeer::Balancer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> (Result<ProxiedPeer, ProxyHeaderError>, Vec<u8>) {
        let mut input = bytes;
        let header = read_header(&mut input).await;
        (header, input.to_vec())
    }

    fn client(addr: &str) -> Result<ProxiedPeer, ProxyHeaderError> {
        Ok(ProxiedPeer::Client(addr.parse().unwrap()))
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[tokio::test]
    async fn v1_names_the_client_and_leaves_the_rest_of_the_stream() {
        let (header, rest) = read(b"PROXY TCP4 192.0.2.7 10.0.0.1 51000 21\r\nUSER x\r\n").await;
        assert_eq!(header, client("192.0.2.7:51000"));
        assert_eq!(rest, b"USER x\r\n");
        let (header, _) = read(b"PROXY TCP6 2001:db8::5 2001:db8::1 4000 990\r\n").await;
        assert_eq!(header, client("[2001:db8::5]:4000"));
        let (header, rest) = read(b"PROXY UNKNOWN\r\n\x16\x03").await;
        assert_eq!(
            (header, rest),
            (Ok(ProxiedPeer::Balancer), b"\x16\x03".to_vec())
        );
    }

    #[tokio::test]
    async fn v1_refuses_what_does_not_follow_the_grammar() {
        for line in [
            &b"PROXY TCP4 192.0.2.7 10.0.0.1 51000\r\n"[..],
            b"PROXY TCP4 2001:db8::5 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 70000 21\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 051 21\r\n",
            b"PROXY UDP4 192.0.2.7 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.300 10.0.0.1 1 2\r\n",
        ] {
            let (header, _) = read(line).await;
            assert!(
                matches!(header, Err(ProxyHeaderError::BadV1(_))),
                "{line:?}: {header:?}"
            );
        }
        let endless = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        assert!(matches!(
            read(&endless).await.0,
            Err(ProxyHeaderError::BadV1(_))
        ));
        assert_eq!(
            read(b"PROXY TCP4 1.2").await.0,
            Err(ProxyHeaderError::Truncated)
        );
        assert_eq!(
            read(b"USER anonymous\r\n").await.0,
            Err(ProxyHeaderError::Missing)
        );
    }

    #[tokio::test]
    async fn v2_names_the_client_skips_tlvs_and_leaves_the_rest() {
        let mut body = vec![192, 0, 2, 9, 10, 0, 0, 1];
        body.extend_from_slice(&40000u16.to_be_bytes());
        body.extend_from_slice(&21u16.to_be_bytes());
        body.extend_from_slice(&[0x04, 0x00, 0x01, 0xff]); // a NOOP TLV
        let mut stream = v2(1, 0x11, &body);
        stream.extend_from_slice(b"AUTH TLS\r\n");
        let (header, rest) = read(&stream).await;
        assert_eq!(
            (header, rest),
            (client("192.0.2.9:40000"), b"AUTH TLS\r\n".to_vec())
        );

        let mut body = "2001:db8::9".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        body.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        body.extend_from_slice(&[0x12, 0x34, 0x00, 0x15]);
        assert_eq!(
            read(&v2(1, 0x21, &body)).await.0,
            client("[2001:db8::9]:4660")
        );
        assert_eq!(read(&v2(0, 0x00, &[])).await.0, Ok(ProxiedPeer::Balancer));
        assert_eq!(
            read(&v2(1, 0x31, &[0; 216])).await.0,
            Ok(ProxiedPeer::Balancer)
        );
    }

    #[tokio::test]
    async fn v2_refuses_bad_versions_commands_short_blocks_and_huge_bodies() {
        let mut wrong_version = v2(1, 0x11, &[0; 12]);
        wrong_version[12] = 0x11;
        assert!(matches!(
            read(&wrong_version).await.0,
            Err(ProxyHeaderError::BadV2(_))
        ));
        assert!(matches!(
            read(&v2(7, 0x11, &[0; 12])).await.0,
            Err(ProxyHeaderError::BadV2(_))
        ));
        assert!(matches!(
            read(&v2(1, 0x11, &[0; 5])).await.0,
            Err(ProxyHeaderError::BadV2(_))
        ));
        assert!(matches!(
            read(&v2(1, 0x21, &[0; 20])).await.0,
            Err(ProxyHeaderError::BadV2(_))
        ));
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(matches!(
            read(&huge).await.0,
            Err(ProxyHeaderError::BadV2(_))
        ));
        let mut cut = v2(1, 0x11, &[0; 12]);
        cut.truncate(20);
        assert_eq!(read(&cut).await.0, Err(ProxyHeaderError::Truncated));
    }

    #[test]
    fn trusted_networks_match_mapped_addresses_too() {
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        assert!(trusted.contains("10.1.2.3".parse().unwrap()));
        assert!(trusted.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!trusted.contains("192.0.2.1".parse().unwrap()));
        assert!(TrustedProxies::default().is_empty());
    }
}
