//! `wharf health`: the container health check, over the node's HTTP
//! endpoint (`wharf_node::http`).

use std::io::{Read, Write};
use std::net::ToSocketAddrs;

use anyhow::{bail, Context, Result};

/// `wharf health`: asks a node's endpoint whether it is ready (or, with
/// `live`, merely alive), for container health checks on images without an
/// HTTP client. Returns the body of a 200 answer, or why there was none.
pub fn probe(addr: &str, live: bool) -> Result<String> {
    const WAIT: std::time::Duration = std::time::Duration::from_secs(3);
    let path = if live { "/healthz" } else { "/readyz" };
    let target = addr
        .to_socket_addrs()
        .with_context(|| format!("{addr:?} is not HOST:PORT"))?
        .next()
        .with_context(|| format!("{addr:?} resolves to no address"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&target, WAIT)
        .with_context(|| format!("cannot reach the HTTP endpoint at {target}"))?;
    stream.set_read_timeout(Some(WAIT))?;
    stream.set_write_timeout(Some(WAIT))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut reply = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut reply)
        .with_context(|| format!("no answer from {target}{path}"))?;
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("{path} answered {status:?}: {}", body.trim());
    }
    Ok(body.trim().to_owned())
}
