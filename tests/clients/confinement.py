#!/usr/bin/env python3
"""Every path-taking command tries to leave the user's home; no attempt may succeed.

    confinement.py --port P --user U --password W --sentinel FILE --outside-dir DIR
                   --marker TEXT --token TOKEN [--tls reuse|implicit]

The Rust test prepares, inside the home: `rootlink -> /`, `sentlink -> FILE` (a file
outside the home), `inside.txt`; outside: FILE (contains TEXT) and the empty DIR. It
checks afterwards that nothing outside the home was created or changed.

Here every attempt must be refused: 550 for a path outside the home (553 also accepted
where RFC 959 names it for a refused file name), and for NUL bytes 500/501/550 (each NUL
attempt gets its own session, since the server may close a connection that keeps sending
malformed lines). No reply or data may contain the sentinel's content, /etc/passwd
content, or the names of what lies outside the home.

One reading is allowed besides refusal for paths whose `..` climb above the root
(`../../..`, `/../../etc/passwd`): a chroot reads them lexically inside the home, `/..`
being `/` (vsftpd and ProFTPD do this). Then the command may succeed, but only on what
lies inside the home: nothing outside may leak or change, and the session's working
directory stays `/`. Removing the home's root is always refused. Paths that leave
through symlinks and NUL bytes get no such allowance. The Rust test checks separately
whether climbing paths get 550 as the issue asks.
"""

import ftplib
import io
import os
import traceback

import stored
import wharf_client

OUTSIDE = ["550"]
NAME_REFUSED = ["550", "553"]
NUL = ["500", "501", "550"]
LEAKS = ["root:x:0:0", "root:*:0:0"]
SUCCESS = ["200", "211", "212", "213", "226", "250", "257"]


def climbs(path):
    """Whether `path`, read from `/`, goes above the root at some point."""
    depth = 0
    for part in path.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


class Checker:
    def __init__(self, args, tls):
        self.args = args
        self.tls = tls
        self.marker = args.marker
        self.outside_names = ["sentinel.txt", os.path.basename(args.outside_dir)]
        self.failures = []
        self.attempts = 0
        self.ftp = self.session()
        self.home = stored.open_home(args)

    def session(self):
        return wharf_client.connect(self.args, tls=self.tls, debug=0)

    def leaked(self, text, data):
        shown = data.decode("utf-8", "replace")
        return (
            any(secret in text or secret in shown for secret in [self.marker] + LEAKS)
            or any(name in shown for name in self.outside_names)
        )

    def record(self, what, reply, data, codes):
        self.attempts += 1
        text = str(reply)
        line = f"{what!r:60} -> {text!r}"
        print(line, flush=True)
        if text[:3] not in codes:
            self.failures.append(f"{line} (expected {codes})")
        if self.leaked(text, data):
            self.failures.append(f"{line}: outside content or names leaked: {data[:300]!r}")
        # Whatever happened, the session must stay in the home's root.
        pwd = self.ftp.sendcmd("PWD")
        if not pwd.startswith('257 "/"'):
            self.failures.append(f"{line}: PWD is now {pwd!r}")
            self.ftp.sendcmd("CWD /")

    @staticmethod
    def codes_for(cmd, codes, strict=False):
        """Adds the success codes of the chroot reading when the command's path climbs."""
        path = cmd.split(" ")[-1]
        if strict or "\0" in path or not climbs(path):
            return codes
        return codes + SUCCESS + ["350"]

    def command(self, cmd, codes=OUTSIDE, strict=False):
        reply = wharf_client.reply_of(self.ftp.sendcmd, cmd)
        self.record(cmd, reply, b"", self.codes_for(cmd, codes, strict))

    def download(self, cmd, codes=OUTSIDE):
        codes = self.codes_for(cmd, codes)
        data = b""
        try:
            conn, _ = self.ftp.ntransfercmd(cmd)
        except ftplib.Error as e:
            self.record(cmd, str(e), data, codes)
            return
        except OSError:
            self.record(cmd, wharf_client.reply_of(self.ftp.getresp), data, codes)
            return
        data, clean = wharf_client.drain(conn)
        try:
            if not clean:
                raise OSError("data connection cut")
            wharf_client.finish_data(conn)
        except OSError:
            conn.close()
        self.record(cmd, wharf_client.reply_of(self.ftp.voidresp), data, codes)

    def upload(self, cmd, codes=NAME_REFUSED):
        codes = self.codes_for(cmd, codes)
        try:
            reply = self.ftp.storbinary(cmd, io.BytesIO(b"ESCAPED-" + self.args.token.encode()))
        except ftplib.all_errors as e:
            reply = str(e)
        self.record(cmd, reply, b"", codes)

    def rename(self, source, target, codes=NAME_REFUSED):
        if not self.home.exists("inside.txt"):  # a chroot-read RNTO moved it; put it back
            self.home.put("inside.txt", b"inside")
        first = wharf_client.reply_of(self.ftp.sendcmd, f"RNFR {source}")
        if not first.startswith("350"):
            self.record(f"RNFR {source}", first, b"", ["350"])
            return
        self.command(f"RNTO {target}", codes)

    def nul(self, action, cmd):
        """One NUL attempt on a fresh session: the server may close a connection that
        keeps sending malformed lines, which is fine, but one line must get a reply."""
        self.ftp.close()
        self.ftp = self.session()
        try:
            action(cmd, NUL)
        except ftplib.all_errors as e:
            self.failures.append(f"{cmd!r}: session unusable after one NUL line: {e!r}")


def attempts(c, args):
    sentinel = args.sentinel
    token = args.token
    outside_dir = args.outside_dir
    escaping_dirs = ["../../..", "..", "../..", "/..", "/../../..", "/../../etc", "rootlink",
                     "rootlink/etc", "rootlink/tmp", "/rootlink/etc", "./rootlink/../rootlink/etc"]
    escaping_files = ["../../sentinel.txt", "/../../sentinel.txt", "/../../etc/passwd",
                      "../../../../../../../../etc/passwd", "rootlink/etc/passwd",
                      "rootlink" + sentinel, "sentlink", "/sentlink", "../home/../../sentinel.txt"]
    nul_paths = ["inside.txt\0../../sentinel.txt", "a\0b", "../\0../etc/passwd"]
    if args.no_symlinks:
        # Without the links, their names are ordinary names inside the home.
        escaping_dirs = [p for p in escaping_dirs if "link" not in p]
        escaping_files = [p for p in escaping_files if "link" not in p]

    for path in escaping_dirs:
        c.command(f"CWD {path}")
        c.command(f"XCWD {path}")
    c.command("CWD " + "d/" * 1900)  # long but under the line limit

    for path in escaping_files:
        c.download(f"RETR {path}")
        c.command(f"SIZE {path}")
        c.command(f"MDTM {path}")
        c.command(f"MFMT 20000101000000 {path}")
        c.command(f"HASH {path}")
        c.command(f"MLST {path}")
        if path not in ("sentlink", "/sentlink"):
            # Deleting the link itself would stay inside the home, so it is not tried.
            c.command(f"DELE {path}")
        c.command(f"RNFR {path}")

    for path in escaping_dirs:
        c.download(f"LIST {path}", ["450", "550"])
        c.download(f"NLST {path}", ["450", "550"])
        c.download(f"MLSD {path}")
        c.command(f"MLST {path}")
        c.command(f"STAT {path}", ["450", "550"])
    c.download("LIST ../../sentinel.txt", ["450", "550"])
    c.command("STAT ../../sentinel.txt", ["450", "550"])

    targets = [f"../../stor-{token}", f"/../../stor-{token}", f"rootlink/tmp/stor-{token}",
               f"rootlink{os.path.dirname(sentinel)}/stor-{token}", "../../sentinel.txt",
               "sentlink", f"../../../../../../tmp/stor-{token}"]
    if args.no_symlinks:
        targets = [p for p in targets if "link" not in p]
    for path in targets:
        c.upload(f"STOR {path}")
        c.upload(f"APPE {path}")

    for path in [f"../../mkd-{token}", f"/../../mkd-{token}", f"rootlink/tmp/mkd-{token}",
                 f"../../../../../../tmp/mkd-{token}"]:
        c.command(f"MKD {path}", NAME_REFUSED)
        c.command(f"XMKD {path}", NAME_REFUSED)

    relative_outside_dir = "../../" + os.path.basename(outside_dir)
    for path in [relative_outside_dir, "/" + relative_outside_dir, "rootlink" + outside_dir,
                 "rootlink/tmp", "..", "/"]:
        c.command(f"RMD {path}", strict=True)  # never removes the home's root
        c.command(f"XRMD {path}", strict=True)

    for target in [f"../../renamed-{token}", f"/../../renamed-{token}",
                   f"rootlink/tmp/renamed-{token}", "../../sentinel.txt", "sentlink"]:
        if not (args.no_symlinks and "link" in target):
            c.rename("inside.txt", target)

    c.command("HASH " + "x" * 3000)
    c.command("SIZE " + "/.." * 1000 + "/etc/passwd")
    # CDUP at the root stays at the root (checked by PWD inside `record`).
    c.command("CDUP", ["200", "250", "550"])

    for path in nul_paths:
        for verb in ["CWD", "SIZE", "MDTM", "DELE", "HASH", "MLST", "RNFR", "MKD", "RMD",
                     "STAT"]:
            c.nul(c.command, f"{verb} {path}")
        for verb in ["RETR", "LIST", "NLST", "MLSD"]:
            c.nul(c.download, f"{verb} {path}")
        for verb in ["STOR", "APPE"]:
            c.nul(c.upload, f"{verb} {path}")
    c.rename("inside.txt", "a\0b", NUL)


def main():
    parser = wharf_client.base_parser(__doc__)
    parser.add_argument("--sentinel", required=True)
    parser.add_argument("--outside-dir", required=True)
    parser.add_argument("--marker", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--tls", default="reuse")
    stored.add_arguments(parser)  # where inside.txt is restored
    parser.add_argument("--no-symlinks", action="store_true",
                        help="the home has no rootlink/sentlink (cluster storage)")
    args = parser.parse_args()
    try:
        checker = Checker(args, args.tls)
        attempts(checker, args)
        ftp = checker.ftp
        reply = ftp.sendcmd("NOOP")
        assert reply.startswith("200"), f"session unusable at the end: {reply!r}"
        ftp.quit()
    except Exception:  # noqa: BLE001 - report any failure with its traceback
        traceback.print_exc()
        wharf_client.fail("confinement run aborted")
    print(f"{checker.attempts} attempts, {len(checker.failures)} wrong replies")
    if checker.failures:
        wharf_client.fail("\n" + "\n".join(checker.failures))
    print("OK")


if __name__ == "__main__":
    main()
