#!/usr/bin/env python3
"""Hostile input that needs TLS to reach, one scenario per invocation:

    bad_input.py --port P --user U --password W SCENARIO

clienthello   a TLS ClientHello sent as the very first bytes to the *explicit* (plain)
              port; prints what the server did. The Rust test checks the server survives.
after_login   garbage on an authenticated TLS control connection: NUL bytes, invalid
              UTF-8, an over-long line, empty lines. Each gets a 5xx (or a sensible
              reply) that is itself valid UTF-8, and the session stays usable.
data_slowloris
              a data connection that never comes (PASV, then LIST, no connect), one that
              dribbles its TLS handshake a byte at a time, one that completes TLS and then
              sends nothing (STOR), and one that never reads (RETR of --big-file). Each must
              end with a 425/426 on the control connection within --data-timeout or
              --handshake-timeout (plus a margin), never a hang; the session stays usable.
port_bounce   PORT/EPRT naming a third party (each --third-party HOST:PORT, 10.x, 192.0.2.x,
              ::1) or a privileged port on our own address: each refused with 500/501/504
              (522 for the foreign family), and no transfer starts. The Rust test listens
              on the targets (the third parties, --privileged-port on --source) and checks
              nothing connected. Active mode to our own address still works.
pasv_theft    a connection to the passive port from a foreign address (127.0.0.2) gets
              nothing; the session's own data connection transfers as usual.

The last four connect from --source (control and data connections alike), so that what
the server scores against an abusive address does not fall on other clients.
"""

import ftplib
import socket
import ssl
import threading
import time

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


def session(args):
    """A logged-in session with PROT P from --source; ftplib binds its data connections
    to the same address."""
    ftp = wharf_client.ReusingFTP_TLS(context=wharf_client.client_context(),
                                      timeout=wharf_client.TIMEOUT)
    ftp.connect(args.host, args.port, source_address=(args.source, 0))
    ftp.login(args.user, args.password)
    ftp.prot_p()
    return ftp


def read_reply_within(ftp, limit):
    """The next reply and the seconds it took; a reply later than `limit` fails."""
    ftp.sock.settimeout(limit)
    started = time.monotonic()
    try:
        reply = ftp.getmultiline()
    except socket.timeout:
        raise AssertionError(f"no reply within {limit:.0f} s: the server hangs")
    return reply, time.monotonic() - started


def expect_timeout_reply(ftp, what, codes, timeout, margin=6.0):
    """The reply that ends a stalled transfer: one of `codes`, after about `timeout`."""
    reply, took = read_reply_within(ftp, timeout + margin)
    print(f"{what}: {reply!r} after {took:.1f} s", flush=True)
    assert reply[:3] in codes, f"{what}: expected one of {codes}, got {reply!r}"
    # Not before the timeout: the reply must come from the timeout, not from a refusal.
    assert took >= timeout - 1.0, \
        f"{what}: {reply!r} came after {took:.1f} s, before the {timeout} s timeout"
    return reply


def passive_address(ftp):
    return ftplib.parse227(ftp.sendcmd("PASV"))


def still_usable(ftp):
    assert ftp.sendcmd("NOOP").startswith("200"), "NOOP after the stalled transfer"
    wharf_client.read_data(ftp, "LIST")


def dribble(sock, data, interval, stop):
    """Sends `data` one byte per `interval` until `stop` is set or the peer is gone."""
    for byte in data:
        if stop.wait(interval):
            return
        try:
            sock.send(bytes([byte]))
        except OSError:
            return


def scenario_data_slowloris(args):
    data_timeout, handshake_timeout = args.data_timeout, args.handshake_timeout
    ftp = session(args)
    ftp.voidcmd("TYPE I")

    # 1. PASV, then a transfer command, and no data connection ever.
    passive_address(ftp)
    ftp.putcmd("LIST")
    expect_timeout_reply(ftp, "data connection never opened", ["425"], data_timeout)
    still_usable(ftp)

    # 2. The data connection opens, then its TLS handshake comes a byte every 2 s.
    host, port = passive_address(ftp)
    data = socket.create_connection((host, port), timeout=10, source_address=(args.source, 0))
    ftp.putcmd("LIST")
    opening, _ = read_reply_within(ftp, 15)
    assert opening.startswith("150"), f"LIST on an open data connection: {opening!r}"
    stop = threading.Event()
    hello = client_hello()
    dribbler = threading.Thread(target=dribble, args=(data, hello, 2.0, stop))
    dribbler.start()
    expect_timeout_reply(ftp, "TLS handshake dribbled on the data connection", ["425"],
                         handshake_timeout)
    stop.set()
    dribbler.join()
    data.close()
    still_usable(ftp)

    # 3. An upload whose data connection completes TLS and then sends nothing.
    conn = ftp.transfercmd("STOR stalled-upload.bin")
    expect_timeout_reply(ftp, "upload that sends nothing", ["426", "451"], data_timeout)
    conn.close()
    still_usable(ftp)

    # 4. A download whose client never reads: the server's writes stall once the
    # socket buffers are full.
    conn = ftp.transfercmd(f"RETR {args.big_file}")
    expect_timeout_reply(ftp, "download never read", ["426", "451"], data_timeout, margin=15.0)
    conn.close()
    still_usable(ftp)
    ftp.quit()


def refused(ftp, command, codes=("500", "501", "504")):
    reply = wharf_client.reply_of(ftp.sendcmd, command)
    print(f"{command} -> {reply!r}", flush=True)
    assert reply[:3] in codes, f"{command}: expected a refusal {codes}, got {reply!r}"
    # The refused address must not have become the data connection's target.
    ftp.putcmd("LIST")
    after, _ = read_reply_within(ftp, 15)
    assert after.startswith("425"), f"LIST after a refused {command!r}: {after!r}"


def port_argument(host, port):
    return ",".join(host.split(".") + [str(port >> 8), str(port & 0xFF)])


def scenario_port_bounce(args):
    own, privileged = args.source, args.privileged_port
    ftp = session(args)
    for target in args.third_party:
        host, port = target.rsplit(":", 1)
        refused(ftp, "PORT " + port_argument(host, int(port)))
        refused(ftp, f"EPRT |1|{host}|{port}|")
    refused(ftp, "PORT " + port_argument("10.11.12.13", 2121))
    refused(ftp, "PORT " + port_argument("192.0.2.1", 25))
    refused(ftp, "PORT " + port_argument(own, privileged))
    refused(ftp, f"EPRT |1|{own}|{privileged}|")
    refused(ftp, "PORT " + port_argument(own, 21))
    refused(ftp, f"EPRT |1|{own}|0|")
    refused(ftp, "PORT " + ",".join(own.split(".")) + ",300,1")
    refused(ftp, "EPRT |2|::1|2121|", codes=("500", "501", "504", "522"))
    # The refusals are aimed: active mode to our own address and port still works.
    ftp.set_pasv(False)
    listing = wharf_client.read_data(ftp, "LIST")
    print(f"active LIST to our own address: {len(listing)} bytes", flush=True)
    ftp.quit()


def scenario_pasv_theft(args):
    ftp = session(args)
    host, port = passive_address(ftp)
    thief = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    thief.bind(("127.0.0.2", 0))
    thief.settimeout(10)
    thief.connect((host, port))
    # The thief is first in the listener's queue; the session's own connection follows.
    conn = socket.create_connection((host, port), timeout=10, source_address=(args.source, 0))
    ftp.putcmd("LIST")
    opening, _ = read_reply_within(ftp, 15)
    assert opening.startswith("150"), f"LIST: {opening!r}"
    conn = ftp.context.wrap_socket(conn, server_hostname=ftp.host, session=ftp.sock.session)
    listing, _ = wharf_client.drain(conn)
    conn.close()
    done, _ = read_reply_within(ftp, 15)
    assert done.startswith("226"), f"the session's own transfer: {done!r}"
    stolen = b""
    try:
        while True:
            chunk = thief.recv(65536)
            if not chunk:
                break
            stolen += chunk
    except OSError as e:
        print("thief's connection ended with", e, flush=True)
    assert stolen == b"", f"a foreign address received {len(stolen)} bytes of data"
    print(f"thief got nothing; the session listed {len(listing)} bytes", flush=True)
    ftp.quit()


SCENARIOS = {
    "clienthello": scenario_clienthello,
    "after_login": scenario_after_login,
    "data_slowloris": scenario_data_slowloris,
    "port_bounce": scenario_port_bounce,
    "pasv_theft": scenario_pasv_theft,
}


def main():
    parser = wharf_client.base_parser(__doc__)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--data-timeout", type=float, default=300)
    parser.add_argument("--handshake-timeout", type=float, default=15)
    parser.add_argument("--big-file", default="big.bin")
    parser.add_argument("--source", default="127.0.0.1", help="local address to connect from")
    parser.add_argument("--third-party", action="append", default=[], metavar="HOST:PORT")
    parser.add_argument("--privileged-port", type=int, default=0)
    args = parser.parse_args()
    wharf_client.run_scenario(args.scenario, lambda: SCENARIOS[args.scenario](args))


if __name__ == "__main__":
    main()
