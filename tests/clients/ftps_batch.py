#!/usr/bin/env python3
"""One FTPS session with Python's ftplib running a list of steps, for the Rust tests.

    ftps_batch.py --port P --user U --password W [--tls reuse|stock|implicit|fresh|none]
                  [--prot p|c|none] [--active] [--epsv]
                  --step "mkdir d" --step "put LOCAL REMOTE" --step "get REMOTE LOCAL" ...

Steps: mkdir D, rmdir D, cd D, pwd, put LOCAL REMOTE, append LOCAL REMOTE,
get REMOTE LOCAL, nlst [D], list [D], mlsd [D], rename FROM TO, delete F, size F,
raw COMMAND... (prints the reply, never fails).

Results go to stdout as tab-separated lines the tests parse (`NLST\\tname`, `LIST\\tline`,
`MLSD\\tname\\tfacts`, `SIZE\\tn`, `PWD\\tpath`, `RAW\\treply`). Any failed step exits 1
with the server's reply on stderr.
"""

import ftplib
import hashlib
import socket
import sys

import wharf_client


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def emit(*fields):
    print("\t".join(str(f) for f in fields), flush=True)


def run_step(ftp, step):
    verb, _, rest = step.partition(" ")
    words = rest.split(" ") if rest else []
    if verb == "mkdir":
        ftp.mkd(rest)
    elif verb == "rmdir":
        ftp.rmd(rest)
    elif verb == "cd":
        ftp.cwd(rest)
    elif verb == "pwd":
        emit("PWD", ftp.pwd())
    elif verb in ("put", "append"):
        local, remote = words
        with open(local, "rb") as f:
            command = "STOR " if verb == "put" else "APPE "
            ftp.storbinary(command + remote, f, blocksize=256 * 1024)
        emit("PUT", remote, sha256_of(local))
    elif verb == "resume":
        # REST OFFSET + STOR of the file from OFFSET on.
        local, remote, offset = words
        with open(local, "rb") as f:
            f.seek(int(offset))
            ftp.storbinary("STOR " + remote, f, blocksize=256 * 1024, rest=int(offset))
        emit("PUT", remote, sha256_of(local))
    elif verb == "get":
        remote, local = words
        with open(local, "wb") as f:
            ftp.retrbinary("RETR " + remote, f.write, blocksize=256 * 1024)
        emit("GET", remote, sha256_of(local))
    elif verb == "nlst":
        for name in ftp.nlst(*([rest] if rest else [])):
            emit("NLST", name)
    elif verb == "list":
        lines = []
        ftp.retrlines("LIST" + (" " + rest if rest else ""), lines.append)
        for line in lines:
            emit("LIST", line)
    elif verb == "mlsd":
        for name, facts in ftp.mlsd(rest or ""):
            emit("MLSD", name, ";".join(f"{k}={v}" for k, v in sorted(facts.items())))
    elif verb == "rename":
        ftp.rename(words[0], words[1])
    elif verb == "delete":
        ftp.delete(rest)
    elif verb == "size":
        emit("SIZE", ftp.size(rest))
    elif verb == "raw":
        emit("RAW", wharf_client.reply_of(ftp.sendcmd, rest))
    else:
        wharf_client.fail(f"unknown step {step!r}")


def main():
    parser = wharf_client.base_parser(__doc__)
    parser.add_argument("--tls", default="reuse")
    parser.add_argument("--prot", default="p")
    parser.add_argument("--active", action="store_true", help="use PORT instead of PASV")
    parser.add_argument("--epsv", action="store_true", help="use EPSV instead of PASV")
    parser.add_argument("--step", action="append", default=[])
    args = parser.parse_args()

    ftp = wharf_client.connect(args, tls=args.tls, prot=args.prot)
    if args.active:
        ftp.set_pasv(False)
    if args.epsv:
        # ftplib picks EPSV/EPRT for IPv6 control connections; the addresses it then
        # uses come from the control connection's peer, so this is safe on 127.0.0.1.
        ftp.af = socket.AF_INET6
    for step in args.step:
        try:
            run_step(ftp, step)
        except ftplib.Error as e:
            wharf_client.fail(f"step {step!r}: {type(e).__name__}: {e}")
        except OSError as e:
            # A data-connection failure: the server's verdict follows on the control
            # connection, so show it.
            ftp.sock.settimeout(10)
            verdict = wharf_client.reply_of(ftp.getresp)
            wharf_client.fail(f"step {step!r}: {type(e).__name__}: {e}; server replied {verdict!r}")
    ftp.quit()


if __name__ == "__main__":
    main()
