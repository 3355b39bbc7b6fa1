"""The test user's stored files, seen the way the server under test keeps them.

With local storage (``--home DIR``) they are a directory on disk, read and prepared
directly. With cluster storage the bytes are chunks spread over nodes, so the same
questions go through a second FTPS session of the same account (``SessionHome``); the
scenario's own session never sees those commands.
"""

import calendar
import os
import time

import wharf_client
from wharf_client import read_data, write_data


def add_arguments(parser):
    parser.add_argument("--home", help="the user's home on disk; without it, a second "
                                       "session stands in for it (cluster storage)")


def open_home(args):
    return DiskHome(args.home) if args.home else SessionHome(args)


class DiskHome:
    def __init__(self, root):
        self.root = root

    def path(self, name):
        return os.path.join(self.root, name)

    def put(self, name, data):
        path = self.path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def mkdir(self, name):
        os.makedirs(self.path(name), exist_ok=True)

    def exists(self, name):
        return os.path.exists(self.path(name))

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def names(self):
        return set(os.listdir(self.root))

    def mtime(self, name):
        return int(os.stat(self.path(name)).st_mtime)

    def set_mtime(self, name, stamp):
        os.utime(self.path(name), (stamp, stamp))

    def truncate(self, name, size):
        with open(self.path(name), "r+b") as f:
            f.truncate(size)


class SessionHome:
    """The same operations through an FTPS session of its own."""

    def __init__(self, args):
        self.ftp = wharf_client.connect(args, tls="reuse", debug=0)
        self.ftp.voidcmd("TYPE I")

    def _mlst(self, name):
        try:
            reply = self.ftp.sendcmd(f"MLST /{name}")
        except wharf_client.ftplib.error_perm:
            return None
        facts = {}
        for fact in reply.split("\n")[1].strip().split(" ", 1)[0].split(";"):
            key, _, value = fact.partition("=")
            if key:
                facts[key.lower()] = value
        return facts

    def put(self, name, data):
        parent = os.path.dirname(name)
        if parent:
            self.mkdir(parent)
        write_data(self.ftp, f"STOR /{name}", data)

    def mkdir(self, name):
        path = ""
        for part in name.split("/"):
            path += "/" + part
            if self._mlst(path[1:]) is None:
                self.ftp.voidcmd(f"MKD {path}")

    def exists(self, name):
        return self._mlst(name) is not None

    def read(self, name):
        return read_data(self.ftp, f"RETR /{name}")

    def names(self):
        listing = read_data(self.ftp, "NLST /").decode("utf-8")
        return {n.rsplit("/", 1)[-1] for n in listing.split("\r\n") if n}

    def mtime(self, name):
        modify = self._mlst(name)["modify"][:14]
        return calendar.timegm(time.strptime(modify, "%Y%m%d%H%M%S"))

    def set_mtime(self, name, stamp):
        when = time.strftime("%Y%m%d%H%M%S", time.gmtime(stamp))
        self.ftp.voidcmd(f"MFMT {when} /{name}")

    def truncate(self, name, size):
        self.put(name, self.read(name)[:size])
