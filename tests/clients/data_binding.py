"""Which TLS session a data connection may resume (crates/server/src/data_tls.rs).

Opens the control connections a scenario needs, then one upload whose data
connection resumes the TLS session of a chosen control connection, and prints
`<scenario> <reply code>` (226 stored, 425 refused). Scenarios:

* ``own``: the session of the uploading connection itself;
* ``sibling``: another control connection of the same user from the same address
  (what rclone and FileZilla's parallel transfers do);
* ``other-user``: a control connection logged in as another user;
* ``other-address``: a control connection of the same user from another address
  (127.0.0.2), while the data connection comes from the uploading one's (127.0.0.1);
* ``fresh``: no session at all (a full handshake).
"""

import argparse
import ftplib
import io
import sys

from wharf_client import client_context

TIMEOUT = 30
# One context for every connection: Python resumes a session only in the
# context that made it.
CONTEXT = client_context()


class Control(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume `self.resume_from` (a session, or None)."""

    resume_from = None

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        conn = self.context.wrap_socket(
            conn, server_hostname=self.host, session=self.resume_from
        )
        return conn, size


def login(args, user, password, source="127.0.0.1"):
    ftp = Control(context=CONTEXT, timeout=TIMEOUT)
    ftp.connect("127.0.0.1", args.port, source_address=(source, 0))
    ftp.login(user, password)
    ftp.prot_p()
    return ftp


def read_final(ftp):
    """The final reply of a transfer whose data connection failed."""
    try:
        return ftp.getresp()
    except ftplib.Error as e:
        return str(e)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--implicit-port", type=int)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--other-user", required=True)
    parser.add_argument("--other-password", required=True)
    parser.add_argument("scenario")
    args = parser.parse_args()

    uploader = login(args, args.user, args.password)
    donor = {
        "own": lambda: uploader,
        "sibling": lambda: login(args, args.user, args.password),
        "other-user": lambda: login(args, args.other_user, args.other_password),
        "other-address": lambda: login(args, args.user, args.password, "127.0.0.2"),
        "fresh": lambda: None,
    }[args.scenario]()
    uploader.resume_from = donor.sock.session if donor else None
    try:
        reply = uploader.storbinary(f"STOR {args.scenario}.bin", io.BytesIO(b"x" * 4096))
    except ftplib.error_temp as e:
        reply = str(e)
    except OSError:
        # A refused data connection is closed under the client's feet (a
        # reset while it writes); the verdict is on the control connection.
        reply = read_final(uploader)
    print(args.scenario, reply[:3])
    uploader.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
