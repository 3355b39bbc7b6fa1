#!/usr/bin/env python3
"""Sequential small files over one FTPS session, the way ingestion scripts
(Airflow tasks, cron jobs) drive a server: Python's ftplib.FTP_TLS, explicit
FTPS (AUTH TLS), PROT P, TLS 1.3, certificate not verified, passive data
connections that resume the control connection's TLS session (as vsftpd's
require_ssl_reuse demands).

    python3 benches/sequential_small.py HOST PORT USER PASSWORD [COUNT [SIZE]]

Uploads COUNT files of SIZE random bytes (default 1000 x 4096) one after the
other (STOR), then downloads each (RETR) and compares the bytes, then deletes
them (--keep leaves them). Each file's latency is the whole storbinary or
retrbinary call: TYPE I, PASV, the command, the data connection's TLS
handshake, the bytes, its close_notify and the 226. Prints one line,

    files=… size=… stor_p50_ms=… stor_p99_ms=… retr_p50_ms=… retr_p99_ms=… …

and exits non-zero on any failure (a refused command, a data connection
error, different bytes). Standard library only. The key exchange is held to
P-256, as wharf-bench's client does and benches/peers.sh sets the C servers
(otherwise OpenSSL's X25519 key share costs them a HelloRetryRequest on
every data connection).
"""

import argparse
import ftplib
import io
import os
import ssl
import sys
import time


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control session."""

    data_connections = 0
    data_resumed = 0

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(
                conn, server_hostname=self.host, session=self.sock.session
            )
            self.data_connections += 1
            self.data_resumed += conn.session_reused
        return conn, size


def percentile(sorted_values, p):
    # The same rank as wharf-bench (benches/src/harness.rs).
    return sorted_values[min(len(sorted_values) * p // 100, len(sorted_values) - 1)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("user")
    parser.add_argument("password")
    parser.add_argument("count", type=int, nargs="?", default=1000)
    parser.add_argument("size", type=int, nargs="?", default=4096)
    parser.add_argument("--tls", choices=["tls13", "tls12"], default="tls13",
                        help="protocol version (unFTP 0.15 speaks only 1.2)")
    parser.add_argument("--keep", action="store_true", help="do not delete the files")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    if args.count < 1 or args.size < 0:
        parser.error("count must be at least 1 and size not negative")

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    version = ssl.TLSVersion.TLSv1_3 if args.tls == "tls13" else ssl.TLSVersion.TLSv1_2
    ctx.minimum_version = ctx.maximum_version = version
    ctx.set_ecdh_curve("prime256v1")

    prefix = "seq-%s-" % os.urandom(4).hex()
    names = ["%s%05d.bin" % (prefix, i) for i in range(args.count)]
    payloads = [os.urandom(args.size) for _ in names]
    stor, retr = [], []
    step = "connect"
    ftp = ReusingFTP_TLS(context=ctx, timeout=args.timeout)
    try:
        ftp.connect(args.host, args.port)
        step = "login"
        ftp.login(args.user, args.password)  # AUTH TLS, then USER/PASS
        ftp.prot_p()
        if ftp.sock.version() != ("TLSv1.3" if args.tls == "tls13" else "TLSv1.2"):
            raise RuntimeError("control connection negotiated %s" % ftp.sock.version())

        for name, data in zip(names, payloads):
            step = "STOR " + name
            source = io.BytesIO(data)
            start = time.perf_counter()
            reply = ftp.storbinary("STOR " + name, source)
            stor.append(time.perf_counter() - start)
            if not reply.startswith("2"):
                raise RuntimeError("reply %r" % reply)

        for name, data in zip(names, payloads):
            step = "RETR " + name
            chunks = []
            start = time.perf_counter()
            reply = ftp.retrbinary("RETR " + name, chunks.append)
            retr.append(time.perf_counter() - start)
            if not reply.startswith("2"):
                raise RuntimeError("reply %r" % reply)
            got = b"".join(chunks)
            if got != data:
                raise RuntimeError("%d bytes back, %s" % (
                    len(got), "same length, different bytes" if len(got) == len(data)
                    else "%d sent" % len(data)))

        if not args.keep:
            for name in names:
                step = "DELE " + name
                ftp.delete(name)
        step = "QUIT"
        ftp.quit()
    except Exception as e:  # noqa: BLE001 - every failure is the run's failure
        print("sequential_small: failed at %s (after %d STOR, %d RETR): %s: %s"
              % (step, len(stor), len(retr), type(e).__name__, e), file=sys.stderr)
        ftp.close()
        return 1

    stor.sort()
    retr.sort()
    ms = lambda s: "%.3f" % (s * 1000.0)  # noqa: E731
    fields = [
        ("files", args.count),
        ("size", args.size),
        ("stor_p50_ms", ms(percentile(stor, 50))),
        ("stor_p99_ms", ms(percentile(stor, 99))),
        ("stor_max_ms", ms(stor[-1])),
        ("retr_p50_ms", ms(percentile(retr, 50))),
        ("retr_p99_ms", ms(percentile(retr, 99))),
        ("retr_max_ms", ms(retr[-1])),
        ("stor_files_per_s", "%.1f" % (len(stor) / sum(stor))),
        ("retr_files_per_s", "%.1f" % (len(retr) / sum(retr))),
        ("resumed_pct", "%.1f" % (100.0 * ftp.data_resumed / max(ftp.data_connections, 1))),
    ]
    print(" ".join("%s=%s" % f for f in fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
