#!/usr/bin/env python3
"""Sends the first BYTES bytes of LOCAL as `STOR REMOTE`, prints "sent", waits for a line
on stdin, then closes the data connection with a TCP FIN but no TLS close_notify (as a
client cut off on its side, or one that never says goodbye, does), and prints the
server's reply to the STOR as "reply: <code> <text>". The control connection stays up
throughout, so the reply is the server's verdict on an upload whose end it cannot
confirm.

    unconfirmed_upload.py --port P --user U --password W --bytes N LOCAL REMOTE
"""

import ftplib
import socket
import sys

import wharf_client


def main():
    parser = wharf_client.base_parser(__doc__)
    parser.add_argument("--bytes", type=int, required=True)
    parser.add_argument("local")
    parser.add_argument("remote")
    args = parser.parse_args()
    with open(args.local, "rb") as f:
        data = f.read(args.bytes)
    ftp = wharf_client.connect(args, tls="reuse", debug=0)
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("STOR " + args.remote)
    conn.sendall(data)
    print(f"sent {len(data)} bytes", flush=True)
    sys.stdin.readline()
    # Underneath TLS: a plain close sends FIN, and no close_notify goes first.
    raw = socket.socket(fileno=conn.detach())
    raw.close()
    try:
        reply = ftp.voidresp()
    except ftplib.all_errors as e:
        reply = str(e)
    print(f"reply: {reply}", flush=True)
    ftp.quit()


if __name__ == "__main__":
    main()
