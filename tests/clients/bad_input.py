#!/usr/bin/env python3
"""Hostile input that needs TLS to reach, one scenario per invocation:

    bad_input.py --port P --user U --password W SCENARIO

clienthello   a TLS ClientHello sent as the very first bytes to the *explicit* (plain)
              port; prints what the server did. The Rust test checks the server survives.
after_login   garbage on an authenticated TLS control connection: NUL bytes, invalid
              UTF-8, an over-long line, empty lines. Each gets a 5xx (or a sensible
              reply) that is itself valid UTF-8, and the session stays usable.
"""

import socket
import ssl

import wharf_client


def client_hello():
    """The bytes of a real ClientHello, produced by the ssl module without a socket."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = wharf_client.client_context().wrap_bio(incoming, outgoing)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def scenario_clienthello(args):
    hello = client_hello()
    assert hello[:1] == b"\x16", "a TLS handshake record"
    sock = socket.create_connection((args.host, args.port), timeout=10)
    sock.sendall(hello)
    received = b""
    sock.settimeout(5)
    try:
        while len(received) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                print("server closed the connection")
                break
            received += chunk
    except socket.timeout:
        print("server kept the connection open without closing it")
    except OSError as e:
        print("connection ended with", e)
    sock.close()
    print("received:", received[:300])
    assert not received.startswith(b"\x16"), "the plain port must not start a TLS handshake"


class RawReplies:
    """Reads replies byte-exactly from the TLS control socket (ftplib's reader is idle)."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def line(self):
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("server closed the control connection")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    def reply(self):
        first = self.line()
        raw = first
        if first[3:4] == b"-":
            while True:
                line = self.line()
                raw += line
                if line[:4] == first[:3] + b" ":
                    break
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise AssertionError(f"reply is not valid UTF-8 (RFC 2640): {raw!r}")
        return raw


def scenario_after_login(args):
    # Each case gets its own session: the server may close a connection after a few
    # malformed lines (that is tested from Rust); here one bad line must get one reply
    # and leave the session usable.
    cases = [
        (b"CWD a\x00b\r\n", [b"500", b"501", b"550"]),
        (b"\x00\x00\x00\r\n", [b"500", b"501"]),
        (b"NO\x00OP\r\n", [b"500", b"501", b"502"]),
        (b"\xc3\x28\r\n", [b"500", b"501"]),
        (b"CWD \xff\xfe\xfd\r\n", [b"500", b"501", b"550"]),
        (b"MKD \xc3\x28dir\r\n", [b"257", b"500", b"501", b"550", b"553"]),
        (b"RETR \xed\xa0\x80\r\n", [b"425", b"500", b"501", b"503", b"550"]),
        (b"\r\n", [b"500", b"501"]),
        (b"A" * 5000 + b"\r\n", [b"500"]),
        (b"NOOP " + bytes(range(1, 32)).replace(b"\r", b"").replace(b"\n", b"") + b"\r\n",
         [b"200", b"500", b"501"]),
        (b"\xff\xf4\xff\xf2\r\n", [b"500", b"501"]),
    ]
    for sent, codes in cases:
        ftp = wharf_client.connect(args, tls="reuse", debug=0)
        replies = RawReplies(ftp.sock)
        ftp.sock.sendall(sent)
        got = replies.reply()
        print(f"{sent[:60]!r} -> {got!r}", flush=True)
        assert got[:3] in codes, f"{sent[:60]!r}: expected {codes}, got {got!r}"
        ftp.sock.sendall(b"NOOP\r\n")
        noop = replies.reply()
        assert noop.startswith(b"200"), f"session unusable after {sent[:60]!r}: NOOP -> {noop!r}"
        # The session still transfers data.
        wharf_client.read_data(ftp, "LIST")
        ftp.quit()


SCENARIOS = {"clienthello": scenario_clienthello, "after_login": scenario_after_login}


def main():
    parser = wharf_client.base_parser(__doc__)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    args = parser.parse_args()
    wharf_client.run_scenario(args.scenario, lambda: SCENARIOS[args.scenario](args))


if __name__ == "__main__":
    main()
