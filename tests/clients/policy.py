#!/usr/bin/env python3
"""TLS policy scenarios over explicit FTPS, one per invocation:

    policy.py --port P --user U --password W SCENARIO

prot_c_refused        PROT C, then a clear-text LIST: refused with 521/522, no data.
no_prot_refused       no PBSZ/PROT at all (protection level C): LIST refused, no data.
fresh_session_refused data connection with a brand-new TLS session (fresh SSLContext,
                      nothing to resume): 425, no data; the control session survives.
fresh_session_allowed same client against --no-require-ssl-reuse: LIST and RETR work.
reuse_accepted        data connection resuming the control session (session=...): works,
                      and the client confirms its data session was resumed.
"""

import ftplib
import io
import ssl

import wharf_client
from wharf_client import read_data


def refused_transfer(ftp, cmd):
    """Attempts `cmd` expecting a refusal; returns (final reply, data bytes received)."""
    data = b""
    try:
        conn, _ = ftp.ntransfercmd(cmd)
    except ftplib.Error as e:  # refused before or instead of 150
        return str(e), data
    except OSError:  # TLS handshake on the data connection failed after 150
        return wharf_client.reply_of(ftp.getresp), data
    data, _ = wharf_client.drain(conn)
    try:
        conn.close()
    except OSError:
        pass
    return wharf_client.reply_of(ftp.getresp), data


def expect_refused(ftp, cmd, codes):
    reply, data = refused_transfer(ftp, cmd)
    assert reply[:3] in codes, f"{cmd}: expected one of {codes}, got {reply!r}"
    assert data == b"", f"{cmd}: {len(data)} bytes of data leaked before the refusal: {data[:200]!r}"
    reply = ftp.sendcmd("NOOP")
    assert reply.startswith("200"), f"control connection unusable after refusal: {reply!r}"


def prot_c_refused(args):
    ftp = wharf_client.connect(args, tls="reuse", prot="none")
    ftp.voidcmd("PBSZ 0")
    print("PROT C ->", wharf_client.reply_of(ftp.sendcmd, "PROT C"))
    ftp._prot_p = False
    expect_refused(ftp, "LIST", ("521", "522"))
    expect_refused(ftp, "NLST", ("521", "522"))
    ftp.quit()


def no_prot_refused(args):
    ftp = wharf_client.connect(args, tls="reuse", prot="none")
    expect_refused(ftp, "LIST", ("521", "522"))
    ftp.quit()


def put_probe(ftp):
    ftp.storbinary("STOR probe.txt", io.BytesIO(b"probe-content"))


def fresh_session_refused(args):
    ftp = wharf_client.connect(args, tls="fresh")
    expect_refused(ftp, "LIST", ("425",))
    assert ftp.data_session_reused is not True, "the fresh client must not resume anything"
    expect_refused(ftp, "RETR anything", ("425", "550"))
    ftp.quit()
    # The same server accepts a client that resumes the control session.
    ftp = wharf_client.connect(args, tls="reuse")
    read_data(ftp, "LIST")
    ftp.quit()


def fresh_session_allowed(args):
    ftp = wharf_client.connect(args, tls="fresh")
    put_probe(ftp)
    assert read_data(ftp, "RETR probe.txt") == b"probe-content"
    assert "probe.txt" in read_data(ftp, "NLST").decode()
    ftp.quit()


def reuse_accepted(args):
    ftp = wharf_client.connect(args, tls="reuse")
    for round_ in range(3):
        conn = ftp.transfercmd("LIST")
        assert conn.session_reused, f"data connection {round_} did not resume the control session"
        while conn.recv(65536):
            pass
        wharf_client.finish_data(conn)
        reply = ftp.voidresp()
        assert reply.startswith("226"), reply
    print("control TLS version:", ftp.sock.version())
    ftp.quit()


SCENARIOS = {f.__name__: f for f in [
    prot_c_refused, no_prot_refused, fresh_session_refused, fresh_session_allowed,
    reuse_accepted,
]}


def main():
    parser = wharf_client.base_parser(__doc__)
    parser.add_argument("--tls-version", choices=["1.2", "1.3"],
                        help="pin the client to one TLS version")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    args = parser.parse_args()
    if args.tls_version:
        version = ssl.TLSVersion.TLSv1_2 if args.tls_version == "1.2" else ssl.TLSVersion.TLSv1_3
        original = wharf_client.client_context

        def pinned():
            ctx = original()
            ctx.minimum_version = version
            ctx.maximum_version = version
            return ctx

        wharf_client.client_context = pinned
    wharf_client.run_scenario(args.scenario, lambda: SCENARIOS[args.scenario](args))


if __name__ == "__main__":
    main()
