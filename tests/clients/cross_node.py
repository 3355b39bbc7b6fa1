#!/usr/bin/env python3
"""A real FTPS client session that moves between Wharf nodes, for the Rust tests.

    cross_node.py --first PORT --second PORT --user U --password W [--tls 1.2|1.3]
                  [--hold FLAGFILE]

Logs in on the first node, keeps its TLS session, reconnects to the second node
offering that session (printing REUSED=True/False), logs in there and uploads and
downloads a file through data connections that resume the control session.
With --hold, the second session first transfers once, prints HOLDING, waits
until FLAGFILE exists (the test rotates the certificate meanwhile), then
transfers again on the same control connection and prints AFTER-OK.
"""

import argparse
import ftplib
import io
import os
import ssl
import sys
import time


class SessionFTP(ftplib.FTP_TLS):
    """FTP_TLS that offers a saved TLS session on AUTH and reuses the control
    session on data connections, as FileZilla and lftp do."""

    offer = None

    def auth(self):
        resp = self.sendcmd("AUTH TLS")
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.host, session=self.offer)
        self.file = self.sock.makefile(mode="r", encoding=self.encoding)
        return resp

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size


def context(version):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    v = ssl.TLSVersion.TLSv1_2 if version == "1.2" else ssl.TLSVersion.TLSv1_3
    ctx.minimum_version = v
    ctx.maximum_version = v
    return ctx


def round_trip(ftp, name, payload):
    ftp.storbinary(f"STOR {name}", io.BytesIO(payload))
    out = io.BytesIO()
    ftp.retrbinary(f"RETR {name}", out.write)
    if out.getvalue() != payload:
        sys.exit(f"{name}: downloaded bytes differ")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--first", type=int, required=True)
    p.add_argument("--second", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--tls", default="1.3")
    p.add_argument("--hold")
    a = p.parse_args()
    ctx = context(a.tls)

    first = SessionFTP(context=ctx, timeout=20)
    first.connect("127.0.0.1", a.first)
    first.auth()
    first.login(a.user, a.password)  # reading replies also receives TLS 1.3 tickets
    first.voidcmd("NOOP")
    saved = first.sock.session
    first.quit()

    second = SessionFTP(context=ctx, timeout=20)
    second.offer = saved
    second.connect("127.0.0.1", a.second)
    second.auth()
    print(f"REUSED={second.sock.session_reused}", flush=True)
    second.login(a.user, a.password)
    second.prot_p()
    round_trip(second, "cross-node.bin", os.urandom(200_000))
    print("TRANSFER-OK", flush=True)
    if a.hold:
        print("HOLDING", flush=True)
        deadline = time.time() + 60
        while not os.path.exists(a.hold):
            if time.time() > deadline:
                sys.exit("flag file never appeared")
            time.sleep(0.1)
        round_trip(second, "after-rotation.bin", os.urandom(300_000))
        print("AFTER-OK", flush=True)
    second.quit()


if __name__ == "__main__":
    main()
