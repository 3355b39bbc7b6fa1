"""Shared pieces of the Python FTPS clients the end-to-end tests run (stdlib only).

Which Python clients need what from the server:

* ``ftplib.FTP_TLS`` as shipped opens every data connection with a *new* TLS session
  (``context.wrap_socket(conn)`` without ``session=``). Wharf's default policy requires
  the data connection to resume the control connection's TLS session (like vsftpd's
  ``require_ssl_reuse`` and FileZilla Server), so the stock class gets
  ``425 TLS session of data connection not resumed`` unless the server runs with
  ``--no-require-ssl-reuse``  -> ``--tls stock``.
* ``ReusingFTP_TLS`` below passes ``session=self.sock.session`` when wrapping the data
  socket, which resumes the control session (TLS 1.2 and 1.3), so it works against the
  default policy  -> ``--tls reuse``.
* ``FreshSessionFTP_TLS`` deliberately uses a brand-new ``SSLContext`` per data
  connection (no session to resume): the policy test that expects ``425``.
* ``ImplicitFTP_TLS`` speaks TLS from the first byte (the implicit port), where PROT P is
  already in force; it resumes the control session on data connections like
  ``ReusingFTP_TLS``  -> ``--tls implicit``.
* ``--tls none`` is a plain ``ftplib.FTP`` (for servers started with the relax flags).

Certificates are self-signed, so every context disables verification.
"""

import argparse
import ftplib
import socket
import ssl
import sys
import traceback

TIMEOUT = 60


def client_context():
    """A TLS client context that accepts the server's self-signed certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class RecordingMixin:
    """Keeps every reply (full text) so tests can look at 1xx replies ftplib swallows."""

    def getmultiline(self):
        reply = super().getmultiline()
        self.replies = getattr(self, "replies", [])
        self.replies.append(reply)
        return reply


class ReusingFTP_TLS(RecordingMixin, ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control connection's TLS session."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(
                conn, server_hostname=self.host, session=self.sock.session
            )
        return conn, size


class StockFTP_TLS(RecordingMixin, ftplib.FTP_TLS):
    """ftplib.FTP_TLS exactly as shipped (no session reuse on data connections)."""


class FreshSessionFTP_TLS(RecordingMixin, ftplib.FTP_TLS):
    """Opens each data connection with a new SSLContext, so nothing can be resumed."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            self.data_session_reused = None
            conn = client_context().wrap_socket(conn, server_hostname=self.host)
            self.data_session_reused = conn.session_reused
        return conn, size


class ImplicitFTP_TLS(ReusingFTP_TLS):
    """Implicit FTPS: the control connection is TLS from the first byte."""

    def connect(self, host="", port=0, timeout=-999, source_address=None):
        if host:
            self.host = host
        if port:
            self.port = port
        if timeout != -999:
            self.timeout = timeout
        self.sock = socket.create_connection((self.host, self.port), self.timeout)
        self.af = self.sock.family
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.host)
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        # RFC 4217 §11 / the contract: implicit sessions start with PROT P in force.
        self._prot_p = True
        return self.welcome


class PlainFTP(RecordingMixin, ftplib.FTP):
    """Plain FTP, for servers started with --allow-plain-login --allow-plain-data."""


def base_parser(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True, help="explicit FTPS port")
    parser.add_argument("--implicit-port", type=int, help="implicit FTPS port")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    return parser


def connect(args, tls="reuse", login=True, prot="p", debug=1):
    """Opens a session of the given kind; logs in and sets PBSZ/PROT unless told not to."""
    classes = {
        "reuse": ReusingFTP_TLS,
        "stock": StockFTP_TLS,
        "fresh": FreshSessionFTP_TLS,
        "implicit": ImplicitFTP_TLS,
        "none": PlainFTP,
    }
    cls = classes[tls]
    if tls == "none":
        ftp = cls(timeout=TIMEOUT)
    else:
        ftp = cls(context=client_context(), timeout=TIMEOUT)
    ftp.set_debuglevel(debug)
    port = args.implicit_port if tls == "implicit" else args.port
    ftp.connect(args.host, port)
    if not login:
        return ftp
    if tls == "none":
        ftp.login(args.user, args.password)
        return ftp
    ftp.login(args.user, args.password)
    if prot == "p":
        ftp.prot_p()
    elif prot == "c":
        ftp.voidcmd("PBSZ 0")  # RFC 4217: PBSZ comes before PROT
        ftp.prot_c()
    return ftp


def finish_data(conn):
    """Closes a data connection the way ftplib does after a transfer."""
    if isinstance(conn, ssl.SSLSocket):
        conn.unwrap()
    conn.close()


def drain(conn, timeout=15):
    """Reads a data connection until it ends; returns (bytes, ended_cleanly).
    A connection the server tears down mid-way returns what arrived so far."""
    data = b""
    try:
        conn.settimeout(timeout)
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    except OSError:
        return data, False


def read_data(ftp, cmd, rest=None):
    """Runs a transfer command and returns the raw bytes of the data connection."""
    chunks = []
    with ftp.transfercmd(cmd, rest) as conn:
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        if isinstance(conn, ssl.SSLSocket):
            conn.unwrap()
    ftp.voidresp()
    return b"".join(chunks)


def write_data(ftp, cmd, data, rest=None):
    """Runs an upload command sending exactly `data`; returns the final reply."""
    with ftp.transfercmd(cmd, rest) as conn:
        conn.sendall(data)
        if isinstance(conn, ssl.SSLSocket):
            conn.unwrap()
    return ftp.voidresp()


def reply_of(fn, *args):
    """Calls an ftplib command function and returns the reply text, errors included."""
    try:
        return str(fn(*args))
    except ftplib.all_errors as e:
        return str(e)


def fail(message):
    print("FAILED: " + message, file=sys.stderr, flush=True)
    sys.exit(1)


def run_scenario(name, scenario):
    """Runs one scenario; prints `OK name`, or the traceback and fails."""
    try:
        scenario()
    except Exception:  # noqa: BLE001 - report any failure with its traceback
        traceback.print_exc()
        fail(f"scenario {name}")
    print("OK", name)
