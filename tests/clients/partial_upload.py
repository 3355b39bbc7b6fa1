#!/usr/bin/env python3
"""Uploads only the first BYTES bytes of LOCAL to REMOTE, then drops both connections
without any goodbye (no TLS close_notify, no QUIT) — a network cut half-way through.
With --trickle SECS it first sends the following bytes one at a time, five a second,
for SECS seconds: a client that is slow but alive (the server keeps checkpointing).

    partial_upload.py --port P --user U --password W --bytes N [--trickle SECS] LOCAL REMOTE
"""

import socket
import time

import wharf_client


def main():
    parser = wharf_client.base_parser(__doc__)
    parser.add_argument("--bytes", type=int, required=True)
    parser.add_argument("--trickle", type=float, default=0)
    parser.add_argument("local")
    parser.add_argument("remote")
    args = parser.parse_args()
    with open(args.local, "rb") as f:
        data = f.read(args.bytes)
        more = f.read(int(args.trickle * 5) + 1)
    ftp = wharf_client.connect(args, tls="reuse")
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("STOR " + args.remote)
    conn.sendall(data)
    print(f"sent {len(data)} bytes", flush=True)
    deadline = time.monotonic() + args.trickle
    for byte in more:
        if time.monotonic() >= deadline:
            break
        conn.sendall(bytes([byte]))
        time.sleep(0.2)
    print("cutting the connection", flush=True)
    time.sleep(1)  # let the server read what is in flight before the cut
    # Abrupt: close the TCP sockets underneath TLS, as a dying network would.
    for sock in (conn, ftp.sock):
        raw = socket.socket(fileno=sock.detach())
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        raw.close()


if __name__ == "__main__":
    main()
