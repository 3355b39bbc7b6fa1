#!/usr/bin/env python3
"""Uploads LOCAL to REMOTE and prints the server's final reply to the STOR as
`REPLY<TAB><code> <text>`, also when the server cuts the data connection first (as
servers do when the disk is full): a client that stops sending still reads the
reply on the control connection.

    store_reply.py --port P --user U --password W LOCAL REMOTE
"""

import ftplib

import wharf_client


def main():
    parser = wharf_client.base_parser(__doc__)
    parser.add_argument("local")
    parser.add_argument("remote")
    args = parser.parse_args()
    ftp = wharf_client.connect(args, tls="reuse")
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("STOR " + args.remote)
    sent = 0
    try:
        with open(args.local, "rb") as f:
            while True:
                block = f.read(256 * 1024)
                if not block:
                    break
                conn.sendall(block)
                sent += len(block)
        conn.unwrap()
    except OSError as e:
        print(f"DATA-CUT after {sent} bytes: {e}", flush=True)
    finally:
        conn.close()
    try:
        reply = ftp.getresp()
    except ftplib.Error as e:
        reply = str(e)
    print("REPLY\t" + reply.strip(), flush=True)


if __name__ == "__main__":
    main()
