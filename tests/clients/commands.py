#!/usr/bin/env python3
"""Protocol-detail scenarios over explicit FTPS, one per invocation:

    commands.py --port P --user U --password W [--home DIR] SCENARIO

Each scenario asserts on reply codes, reply text, data bytes and on the user's stored
files (``stored.py``: the home on disk with ``--home``, else a second session). Exit 0
means every assertion held; a failure prints the assertion and the ftplib transcript
(debug level 1) to stdout/stderr.
"""

import binascii
import calendar
import hashlib
import os
import re
import select
import socket
import ssl
import time
import zlib

import stored
import wharf_client
from wharf_client import read_data, write_data, reply_of

SCENARIOS = {}


def scenario(fn):
    SCENARIOS[fn.__name__] = fn
    return fn


def code(reply):
    return str(reply)[:3]


def expect_code(reply, codes, what):
    codes = [codes] if isinstance(codes, str) else list(codes)
    assert code(reply) in codes, f"{what}: expected {codes}, got {reply!r}"


def check_multiline(reply, expected_code, what):
    """RFC 959 §4.2: first line `ddd-`, last line `ddd ` with the same code."""
    lines = str(reply).split("\n")
    assert len(lines) >= 2, f"{what}: expected a multi-line reply, got {reply!r}"
    assert lines[0].startswith(expected_code + "-"), f"{what}: bad first line {lines[0]!r}"
    assert lines[-1].startswith(expected_code + " "), f"{what}: bad last line {lines[-1]!r}"
    for line in lines[1:-1]:
        assert not line.startswith(expected_code + " "), f"{what}: early end {line!r}"
    return lines


def in_sync(ftp):
    """After a multi-line reply, a NOOP must get exactly its own 200 (no leftovers)."""
    reply = ftp.sendcmd("NOOP")
    assert reply.startswith("200"), f"control connection out of sync: NOOP got {reply!r}"


def mtime_utc(home, name):
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(home.mtime(name)))


# --- FEAT, HELP, STAT: advertised features and multi-line replies -----------------------


@scenario
def feat(ftp, home):
    reply = ftp.sendcmd("FEAT")
    lines = check_multiline(reply, "211", "FEAT")
    features = [line[1:] for line in lines[1:-1]]
    for line in lines[1:-1]:
        assert line.startswith(" "), f"RFC 2389: feature lines start with a space: {line!r}"
    names = {}
    for f in features:  # a keyword may appear on several lines (AUTH TLS, AUTH SSL)
        key = f.split(" ")[0].upper()
        names[key] = (names[key] + "\n" + f) if key in names else f
    for needed in ["AUTH", "PBSZ", "PROT", "EPSV", "EPRT", "MDTM", "SIZE", "MFMT",
                   "REST", "UTF8", "MLST", "HASH", "HOST"]:
        assert needed in names, f"FEAT does not advertise {needed}: {features}"
    assert "TLS" in names["AUTH"].upper(), f"AUTH feature lacks TLS: {names['AUTH']!r}"
    assert names["REST"].upper() == "REST STREAM", f"REST feature: {names['REST']!r}"
    mlst = names["MLST"].lower()
    for fact in ["type", "size", "modify", "perm", "unique"]:
        assert fact + "*" in mlst, f"MLST feature lacks default fact {fact}*: {mlst!r}"
    hashes = names["HASH"].upper()
    for algorithm in ["SHA-256", "SHA-1", "MD5", "CRC32"]:
        assert algorithm in hashes, f"HASH feature lacks {algorithm}: {hashes!r}"
    assert "SHA-256*" in hashes, f"SHA-256 should be the selected hash: {hashes!r}"
    in_sync(ftp)
    # Every advertised command must be implemented (not 500/502).
    probes = {
        "MDTM": "MDTM missing-file", "SIZE": "SIZE missing-file",
        "MFMT": "MFMT 20200101000000 missing-file", "MLST": "MLST",
        "HASH": "HASH missing-file", "UTF8": "OPTS UTF8 ON", "PBSZ": "PBSZ 0",
        "PROT": "PROT P", "REST": "REST 0", "HOST": "HOST localhost",
    }
    for feature in names:
        probe = probes.get(feature, None)
        if probe is None:
            continue
        reply = reply_of(ftp.sendcmd, probe)
        assert code(reply) not in ("500", "502"), f"{feature} advertised but {probe!r} -> {reply!r}"


@scenario
def help_and_stat_are_well_formed(ftp, home):
    reply = reply_of(ftp.sendcmd, "HELP")
    check_multiline(reply, "214", "HELP")
    in_sync(ftp)
    reply = ftp.sendcmd("STAT")
    check_multiline(reply, "211", "STAT")
    in_sync(ftp)
    home.put("stat-me.txt", b"hello")
    reply = ftp.sendcmd("STAT .")
    assert code(reply) in ("211", "212", "213"), f"STAT . -> {reply!r}"
    check_multiline(reply, code(reply), "STAT .")
    assert "stat-me.txt" in reply, f"STAT . does not list the file: {reply!r}"
    in_sync(ftp)
    expect_code(reply_of(ftp.sendcmd, "STAT no-such-file"), ["450", "550"], "STAT missing")
    in_sync(ftp)


@scenario
def misc_commands(ftp, home):
    expect_code(ftp.sendcmd("SYST"), "215", "SYST")
    assert "UNIX" in ftp.sendcmd("SYST").upper(), "SYST should say UNIX Type: L8"
    expect_code(ftp.sendcmd("PWD"), "257", "PWD")
    assert ftp.sendcmd("PWD").startswith('257 "/"'), "fresh session starts at /"
    ftp.mkd("sub")
    expect_code(ftp.sendcmd("CWD sub"), "250", "CWD")
    assert ftp.sendcmd("XPWD").startswith('257 "/sub"'), "XPWD after CWD sub"
    expect_code(ftp.sendcmd("CDUP"), ["200", "250"], "CDUP")
    assert ftp.pwd() == "/", "CDUP returns to /"
    expect_code(ftp.sendcmd("XCWD sub"), "250", "XCWD")
    expect_code(ftp.sendcmd("XCUP"), ["200", "250"], "XCUP")
    expect_code(ftp.sendcmd("XMKD xsub"), "257", "XMKD")
    expect_code(ftp.sendcmd("XRMD xsub"), "250", "XRMD")
    assert not home.exists("xsub"), "XRMD removed the directory"
    expect_code(reply_of(ftp.sendcmd, "MKD sub"), "550", "MKD of an existing directory")
    expect_code(reply_of(ftp.sendcmd, "CWD no-such-dir"), "550", "CWD missing")
    expect_code(ftp.sendcmd("TYPE I"), "200", "TYPE I")
    expect_code(ftp.sendcmd("TYPE A"), "200", "TYPE A")
    expect_code(ftp.sendcmd("TYPE A N"), "200", "TYPE A N")
    expect_code(reply_of(ftp.sendcmd, "TYPE E"), "504", "TYPE E")
    expect_code(ftp.sendcmd("MODE S"), "200", "MODE S")
    expect_code(reply_of(ftp.sendcmd, "MODE B"), "504", "MODE B")
    expect_code(ftp.sendcmd("STRU F"), "200", "STRU F")
    expect_code(reply_of(ftp.sendcmd, "STRU R"), "504", "STRU R")
    expect_code(ftp.sendcmd("ALLO 1000"), ["200", "202"], "ALLO")
    expect_code(ftp.sendcmd("OPTS UTF8 ON"), "200", "OPTS UTF8 ON")
    expect_code(reply_of(ftp.sendcmd, "OPTS NO-SUCH-OPTION"), ["501", "502", "504"], "OPTS ?")
    expect_code(reply_of(ftp.sendcmd, "XYZZY"), ["500", "502"], "unknown command")
    expect_code(ftp.sendcmd("noop"), "200", "commands are case-insensitive")
    expect_code(reply_of(ftp.sendcmd, "RNTO x"), "503", "RNTO without RNFR")
    expect_code(reply_of(ftp.sendcmd, "PBSZ 1000"), "200", "PBSZ answers 200")
    expect_code(ftp.sendcmd("PROT P"), "200", "PROT P")


# --- MLSD / MLST / LIST / NLST -----------------------------------------------------------


def parse_facts(text):
    facts_part, _, name = text.partition(" ")
    facts = {}
    for fact in facts_part.split(";"):
        if fact:
            key, _, value = fact.partition("=")
            facts[key.lower()] = value
    return facts, name


@scenario
def mlsd_and_mlst_facts(ftp, home):
    data = os.urandom(12345)
    home.put("facts/a.bin", data)
    home.mkdir("facts/sub")
    ftp.cwd("facts")
    raw = read_data(ftp, "MLSD")
    text = raw.decode("utf-8")
    assert text.endswith("\r\n"), f"MLSD lines end with CRLF: {raw[-20:]!r}"
    entries = {}
    for line in text.split("\r\n")[:-1]:
        facts, name = parse_facts(line)
        entries[name] = facts
    assert "a.bin" in entries and "sub" in entries, f"MLSD entries: {entries}"
    a, sub = entries["a.bin"], entries["sub"]
    for facts in (a, sub):
        for fact in ["type", "modify", "perm", "unique"]:
            assert fact in facts, f"MLSD missing fact {fact}: {facts}"
    assert a["type"].lower() == "file", a
    assert sub["type"].lower() == "dir", sub
    assert a["size"] == str(len(data)), f"size fact {a['size']} != {len(data)}"
    assert a["modify"][:14] == mtime_utc(home, "facts/a.bin"), \
        f"modify {a['modify']} vs stored {mtime_utc(home, 'facts/a.bin')}"
    assert re.fullmatch(r"\d{14}(\.\d+)?", a["modify"]), a["modify"]
    assert a["unique"] != sub["unique"], "unique facts must differ"
    assert "r" in a["perm"] and "w" in a["perm"], f"file perm {a['perm']}"
    assert "e" in sub["perm"] and "l" in sub["perm"], f"dir perm {sub['perm']}"
    for other in entries:
        assert other in ("a.bin", "sub", ".", ".."), f"unexpected entry {other!r}"

    reply = ftp.sendcmd("MLST a.bin")
    lines = check_multiline(reply, "250", "MLST")
    assert len(lines) == 3, f"MLST has exactly one fact line: {lines}"
    assert lines[1].startswith(" "), f"RFC 3659: the fact line starts with a space {lines[1]!r}"
    facts, name = parse_facts(lines[1][1:])
    assert name.endswith("a.bin"), f"MLST names the file: {lines[1]!r}"
    assert facts["size"] == str(len(data)) and facts["type"].lower() == "file", facts
    in_sync(ftp)

    expect_code(ftp.sendcmd("OPTS MLST type;size;"), "200", "OPTS MLST")
    facts, _ = parse_facts(check_multiline(ftp.sendcmd("MLST a.bin"), "250", "MLST")[1][1:])
    assert set(facts) == {"type", "size"}, f"after OPTS MLST type;size; got {facts}"
    feat = ftp.sendcmd("FEAT").lower()
    assert "type*" in feat and "size*" in feat and "modify*" not in feat, \
        f"FEAT marks exactly the selected facts: {feat!r}"
    expect_code(reply_of(ftp.sendcmd, "MLST no-such-file"), "550", "MLST missing")
    expect_code(reply_of(read_data, ftp, "MLSD a.bin"), ["501", "550"], "MLSD on a file")


LS_LINE = re.compile(
    r"^(?P<mode>[-dl][-rwxsStT]{9})\+?\s+\d+\s+\S+\s+\S+\s+(?P<size>\d+)\s+"
    r"(?P<month>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+\d{1,2}\s+"
    r"(\d{2}:\d{2}|\d{4})\s(?P<name>.+)$"
)


@scenario
def list_is_ls_style(ftp, home):
    data = os.urandom(4321)
    home.put("ls/file one.txt", data)
    home.mkdir("ls/dir")
    home.put("ls/old.txt", b"old")
    home.set_mtime("ls/old.txt", calendar.timegm((2001, 2, 3, 4, 5, 6)))
    raw = read_data(ftp, "LIST ls")
    text = raw.decode("utf-8")
    assert text.endswith("\r\n"), f"LIST lines end with CRLF: {raw[-20:]!r}"
    rows = {}
    for line in text.split("\r\n")[:-1]:
        if line.startswith("total "):
            continue
        match = LS_LINE.match(line)
        assert match, f"not an ls -l line: {line!r}"
        rows[match["name"]] = match
    assert set(rows) - {".", ".."} == {"file one.txt", "dir", "old.txt"}, rows.keys()
    assert rows["file one.txt"]["mode"].startswith("-")
    assert rows["file one.txt"]["size"] == str(len(data))
    assert rows["dir"]["mode"].startswith("d")
    assert re.search(r"Feb\s+3\s+2001 old.txt$", rows["old.txt"].group(0)), rows["old.txt"].group(0)

    single = read_data(ftp, "LIST ls/old.txt").decode()
    assert single.count("\r\n") == 1 and "old.txt" in single, f"LIST of one file: {single!r}"
    with_options = read_data(ftp, "LIST -la ls").decode()
    assert "file one.txt" in with_options, f"LIST -la is treated as ls options: {with_options!r}"

    names = read_data(ftp, "NLST ls").decode().split("\r\n")[:-1]
    names = sorted(n.rsplit("/", 1)[-1] for n in names)
    assert names == ["dir", "file one.txt", "old.txt"], f"NLST: {names}"
    ftp.cwd("ls")
    names = sorted(read_data(ftp, "NLST").decode().split("\r\n")[:-1])
    assert names == ["dir", "file one.txt", "old.txt"], f"NLST in cwd: {names}"
    expect_code(reply_of(read_data, ftp, "LIST no-such-dir"), ["450", "550"], "LIST missing")


# --- SIZE, MDTM, MFMT, HASH -------------------------------------------------------------


@scenario
def size_mdtm_mfmt(ftp, home):
    data = os.urandom(7777)
    home.put("t.bin", data)
    home.mkdir("d")
    ftp.voidcmd("TYPE I")
    assert ftp.sendcmd("SIZE t.bin") == f"213 {len(data)}", ftp.sendcmd("SIZE t.bin")
    expect_code(reply_of(ftp.sendcmd, "SIZE missing"), "550", "SIZE missing")
    expect_code(reply_of(ftp.sendcmd, "SIZE d"), "550", "SIZE of a directory")
    reply = ftp.sendcmd("MDTM t.bin")
    assert re.fullmatch(r"213 \d{14}(\.\d{1,3})?", reply), f"MDTM format: {reply!r}"
    assert reply[4:18] == mtime_utc(home, "t.bin"), \
        f"MDTM {reply!r} vs stored {mtime_utc(home, 't.bin')}"
    expect_code(reply_of(ftp.sendcmd, "MDTM missing"), "550", "MDTM missing")

    reply = ftp.sendcmd("MFMT 20200102030405 t.bin")
    expect_code(reply, "213", "MFMT")
    assert "Modify=20200102030405" in reply and "t.bin" in reply, f"MFMT reply {reply!r}"
    expected = calendar.timegm((2020, 1, 2, 3, 4, 5))
    assert home.mtime("t.bin") == expected, f"stored mtime {home.mtime('t.bin')}"
    assert ftp.sendcmd("MDTM t.bin")[:18] == "213 20200102030405"
    expect_code(reply_of(ftp.sendcmd, "MFMT 2020 t.bin"), "501", "MFMT bad time")
    expect_code(reply_of(ftp.sendcmd, "MFMT 20200102030405 missing"), "550", "MFMT missing")
    assert home.read("t.bin") == data, "MFMT must not touch content"


@scenario
def hash_algorithms(ftp, home):
    data = os.urandom(100_000)
    home.put("h.bin", data)
    reply = ftp.sendcmd("HASH h.bin")
    match = re.fullmatch(r"213 (\S+) (\d+)-(\d+) ([0-9A-Fa-f]+) (.+)", reply)
    assert match, f"HASH reply format (draft-bryan-ftpext-hash): {reply!r}"
    # The draft echoes the file name; the absolute path names the same file.
    assert match[1] == "SHA-256" and match[5] in ("h.bin", "/h.bin"), reply
    assert (int(match[2]), int(match[3])) in ((0, len(data)), (0, len(data) - 1)), reply
    assert match[4].lower() == hashlib.sha256(data).hexdigest(), reply
    assert ftp.sendcmd("OPTS HASH") == "200 SHA-256", ftp.sendcmd("OPTS HASH")
    expected = {
        "SHA-1": hashlib.sha1(data).hexdigest(),
        "MD5": hashlib.md5(data).hexdigest(),
        "CRC32": "%08x" % (zlib.crc32(data) & 0xFFFFFFFF),
        "SHA-256": hashlib.sha256(data).hexdigest(),
    }
    for algorithm, digest in expected.items():
        expect_code(ftp.sendcmd("OPTS HASH " + algorithm), "200", "OPTS HASH " + algorithm)
        assert ftp.sendcmd("OPTS HASH") == "200 " + algorithm
        reply = ftp.sendcmd("HASH h.bin")
        got = reply.split(" ")[3].lower()
        assert reply.split(" ")[1] == algorithm, f"{algorithm}: {reply!r}"
        assert int(got, 16) == int(digest, 16), f"{algorithm}: {got} != {digest}"
        if algorithm == "MD5":
            assert "MD5*" in ftp.sendcmd("FEAT").upper(), "FEAT marks the selected hash"
    expect_code(reply_of(ftp.sendcmd, "OPTS HASH WHIRLPOOL"), ["501", "504"], "unknown hash")
    expect_code(reply_of(ftp.sendcmd, "HASH missing"), "550", "HASH missing")
    # binascii and zlib agree; keep both imports honest
    assert binascii.crc32(data) == zlib.crc32(data)


# --- transfers: STOU, RNFR/RNTO, REST, TYPE A -------------------------------------------


@scenario
def stou_creates_unique_files(ftp, home):
    home.put("existing.txt", b"keep me")
    before = set(home.names())
    first, second = os.urandom(3000), os.urandom(5000)
    names = []
    for content in (first, second):
        ftp.replies = []
        final = write_data(ftp, "STOU", content)
        expect_code(final, "226", "STOU completion")
        prelim = [r for r in ftp.replies if r.startswith("150") or r.startswith("125")]
        assert prelim, f"STOU preliminary reply: {ftp.replies}"
        names.append((prelim[0], final, content))
    after = set(home.names())
    created = after - before
    assert len(created) == 2, f"two new files expected, got {created}"
    for prelim, final, content in names:
        owner = [n for n in created if n in prelim or n in final]
        assert owner, f"STOU replies name the file: {prelim!r} / {final!r} (new: {created})"
        assert home.read(owner[0]) == content, f"STOU content of {owner[0]}"
    assert home.read("existing.txt") == b"keep me"


@scenario
def rename_across_directories(ftp, home):
    data = os.urandom(2048)
    home.put("d1/x.bin", data)
    home.mkdir("d2")
    expect_code(ftp.sendcmd("RNFR d1/x.bin"), "350", "RNFR")
    expect_code(ftp.sendcmd("RNTO /d2/y.bin"), "250", "RNTO")
    assert not home.exists("d1/x.bin")
    assert home.read("d2/y.bin") == data
    ftp.cwd("d2")
    expect_code(ftp.sendcmd("RNFR y.bin"), "350", "RNFR relative")
    expect_code(ftp.sendcmd("RNTO ../d1/z.bin"), "250", "RNTO relative across")
    assert home.exists("d1/z.bin")
    expect_code(ftp.sendcmd("RNFR /d1"), "350", "RNFR directory")
    expect_code(ftp.sendcmd("RNTO /d3"), "250", "RNTO directory")
    assert home.exists("d3/z.bin")
    expect_code(reply_of(ftp.sendcmd, "RNFR /missing"), "550", "RNFR missing")
    expect_code(reply_of(ftp.sendcmd, "RNTO /whatever"), "503", "RNTO after failed RNFR")
    expect_code(ftp.sendcmd("RNFR /d3/z.bin"), "350", "RNFR")
    expect_code(ftp.sendcmd("NOOP"), "200", "NOOP between RNFR and RNTO")
    expect_code(reply_of(ftp.sendcmd, "RNTO /d2/w.bin"), ["250", "503"], "RNTO after NOOP")


@scenario
def rest_then_retr_and_stor(ftp, home):
    data = os.urandom(200_000)
    home.put("r.bin", data)
    ftp.voidcmd("TYPE I")
    expect_code(ftp.sendcmd("REST 1000"), "350", "REST")
    got = read_data(ftp, "RETR r.bin")
    assert got == data[1000:], f"REST 1000 + RETR returned {len(got)} bytes"
    got = read_data(ftp, "RETR r.bin")
    assert got == data, "REST applies to one transfer only"
    got = read_data(ftp, "RETR r.bin", rest=len(data))
    assert got == b"", "REST at end of file gives nothing"
    # Resume an upload: STOR after REST writes from the offset.
    half = len(data) // 2
    home.truncate("r.bin", half)
    write_data(ftp, "STOR r.bin", data[half:], rest=half)
    assert home.read("r.bin") == data, "REST + STOR completes the file"
    write_data(ftp, "APPE r.bin", b"tail")
    assert home.read("r.bin") == data + b"tail", "APPE appends"
    expect_code(reply_of(ftp.sendcmd, "REST abc"), "501", "REST with a bad offset")


@scenario
def type_a_converts_line_endings(ftp, home):
    home.put("unix.txt", b"one\ntwo\nthree\n")
    ftp.voidcmd("TYPE A")
    got = read_data(ftp, "RETR unix.txt")
    assert got == b"one\r\ntwo\r\nthree\r\n", f"TYPE A RETR sends CRLF: {got!r}"
    write_data(ftp, "STOR dos.txt", b"alpha\r\nbeta\r\n")
    kept = home.read("dos.txt")
    assert kept == b"alpha\nbeta\n", f"TYPE A STOR stores LF: {kept!r}"
    ftp.voidcmd("TYPE I")
    got = read_data(ftp, "RETR unix.txt")
    assert got == b"one\ntwo\nthree\n", f"TYPE I is byte-exact: {got!r}"
    binary = bytes(range(256)) * 4
    write_data(ftp, "STOR bin.dat", binary)
    assert home.read("bin.dat") == binary, "TYPE I STOR is byte-exact"


# --- commands during a transfer -----------------------------------------------------------


BIG = 48 * 1024 * 1024


def big_file(home):
    """Stores big.bin (random, BIG bytes) and returns its SHA-256."""
    data = os.urandom(BIG)
    home.put("big.bin", data)
    return hashlib.sha256(data).hexdigest()


def drain(conn, h):
    while True:
        chunk = conn.recv(1 << 16)
        if not chunk:
            return
        h.update(chunk)


@scenario
def stat_during_transfer(ftp, home):
    digest = big_file(home)
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("RETR big.bin")
    h = hashlib.sha256()
    h.update(conn.recv(1 << 16))
    time.sleep(0.5)  # let the server fill the pipe and block on the data connection
    reply = ftp.sendcmd("STAT")
    assert code(reply) in ("211", "212", "213"), f"STAT during RETR: {reply!r}"
    if "\n" in reply:
        check_multiline(reply, code(reply), "STAT during RETR")
    drain(conn, h)
    wharf_client.finish_data(conn)
    expect_code(ftp.voidresp(), "226", "RETR completion after STAT")
    assert h.hexdigest() == digest, "data intact after STAT during the transfer"


@scenario
def noop_during_transfer(ftp, home):
    digest = big_file(home)
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("RETR big.bin")
    h = hashlib.sha256()
    h.update(conn.recv(1 << 16))
    time.sleep(0.5)
    expect_code(ftp.sendcmd("NOOP"), "200", "NOOP during RETR")
    drain(conn, h)
    wharf_client.finish_data(conn)
    expect_code(ftp.voidresp(), "226", "RETR completion after NOOP")
    assert h.hexdigest() == digest

    payload = os.urandom(8 * 1024 * 1024)
    conn = ftp.transfercmd("STOR during-noop.bin")
    conn.sendall(payload[: len(payload) // 2])
    expect_code(ftp.sendcmd("NOOP"), "200", "NOOP during STOR")
    conn.sendall(payload[len(payload) // 2:])
    wharf_client.finish_data(conn)
    expect_code(ftp.voidresp(), "226", "STOR completion after NOOP")
    assert home.read("during-noop.bin") == payload, "upload intact after NOOP during the transfer"


@scenario
def abor_during_transfer(ftp, home):
    digest = big_file(home)
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("RETR big.bin")
    conn.recv(1 << 16)
    time.sleep(0.5)
    ftp.sock.sendall(b"ABOR\r\n")
    first = ftp.getmultiline()
    print("ABOR ->", repr(first))
    if first.startswith("426"):
        second = ftp.getmultiline()
        print("ABOR ->", repr(second))
        assert second[:3] in ("225", "226"), f"after 426 expected 226: {second!r}"
    else:
        assert first[:3] in ("225", "226"), f"ABOR reply: {first!r}"
    # The server closed (or is closing) the data connection; nothing more is owed.
    conn.settimeout(10)
    received = 0
    try:
        while True:
            chunk = conn.recv(1 << 16)
            if not chunk:
                break
            received += len(chunk)
    except (ssl.SSLError, OSError):
        pass
    conn.close()
    assert received < BIG, "the aborted transfer stopped early"
    expect_code(ftp.sendcmd("NOOP"), "200", "control connection usable after ABOR")
    assert hashlib.sha256(read_data(ftp, "RETR big.bin")).hexdigest() == digest, \
        "a new transfer after ABOR is complete"
    expect_code(reply_of(ftp.sendcmd, "ABOR"), ["225", "226"], "ABOR with no transfer")


# --- data connection setup ---------------------------------------------------------------


@scenario
def epsv_all_refuses_pasv_and_port(ftp, home):
    home.put("e.txt", b"epsv")
    expect_code(ftp.sendcmd("EPSV ALL"), "200", "EPSV ALL")
    expect_code(reply_of(ftp.sendcmd, "PASV"), ["500", "501", "502", "503", "504", "550"],
                "PASV after EPSV ALL")
    expect_code(reply_of(ftp.sendcmd, "PORT 127,0,0,1,200,10"),
                ["500", "501", "502", "503", "504", "550"], "PORT after EPSV ALL")
    reply = ftp.sendcmd("EPSV")
    assert re.fullmatch(r"229 .*\(\|\|\|\d+\|\)", reply), f"EPSV reply: {reply!r}"
    ftp.af = socket.AF_INET6  # make ftplib use EPSV for the next transfer
    assert read_data(ftp, "RETR e.txt") == b"epsv", "EPSV transfer after EPSV ALL"


def listener_on(ip):
    sock = socket.socket()
    sock.bind((ip, 0))
    sock.listen(1)
    sock.setblocking(False)
    return sock, sock.getsockname()[1]


def assert_never_connected(sock, what):
    readable, _, _ = select.select([sock], [], [], 2.0)
    assert not readable, f"{what}: the server connected to the foreign address"


@scenario
def port_to_foreign_ip_or_low_port_is_refused(ftp, home):
    home.put("p.txt", b"port")
    refused = ["500", "501", "504", "550"]
    foreign, port = listener_on("127.0.0.2")
    hi, lo = divmod(port, 256)
    expect_code(reply_of(ftp.sendcmd, f"PORT 127,0,0,2,{hi},{lo}"), refused, "PORT foreign IP")
    expect_code(reply_of(ftp.sendcmd, "LIST"), ["425", "503"], "LIST after a refused PORT")
    assert_never_connected(foreign, "PORT 127.0.0.2")
    expect_code(reply_of(ftp.sendcmd, f"EPRT |1|127.0.0.2|{port}|"), refused, "EPRT foreign IP")
    expect_code(reply_of(ftp.sendcmd, "RETR p.txt"), ["425", "503"], "RETR after refused EPRT")
    assert_never_connected(foreign, "EPRT 127.0.0.2")
    expect_code(reply_of(ftp.sendcmd, "PORT 127,0,0,1,0,80"), refused, "PORT to port 80")
    expect_code(reply_of(ftp.sendcmd, "EPRT |1|127.0.0.1|21|"), refused, "EPRT to port 21")
    expect_code(reply_of(ftp.sendcmd, "PORT 1,2,3"), ["500", "501"], "malformed PORT")
    expect_code(reply_of(ftp.sendcmd, "EPRT |9|x|y|"), ["500", "501", "522"], "bad EPRT")
    # PORT to our own address and a high port works (active mode, TLS on the data side).
    ftp.set_pasv(False)
    assert read_data(ftp, "RETR p.txt") == b"port", "active-mode RETR to the control peer"


# --- security extension commands ----------------------------------------------------------


@scenario
def ccc_prot_acct_host(ftp, home):
    expect_code(reply_of(ftp.sendcmd, "CCC"), "534", "CCC is refused")
    expect_code(ftp.sendcmd("NOOP"), "200", "control still protected and usable after CCC")
    expect_code(reply_of(ftp.sendcmd, "PROT S"), "536", "PROT S")
    expect_code(reply_of(ftp.sendcmd, "PROT E"), "536", "PROT E")
    expect_code(reply_of(ftp.sendcmd, "PROT Z"), ["504", "501"], "PROT Z")
    expect_code(reply_of(ftp.sendcmd, "ACCT billing"), "502", "ACCT")
    expect_code(reply_of(ftp.sendcmd, "HOST localhost"), "503", "HOST after login")
    expect_code(reply_of(ftp.sendcmd, "AUTH TLS"), ["503", "534"], "AUTH TLS twice")


def host_before_login(args):
    """RFC 7151: HOST before USER is accepted with 220; the session then logs in."""
    ftp = wharf_client.connect(args, tls="reuse", login=False)
    expect_code(ftp.sendcmd("HOST localhost"), "220", "HOST before AUTH")
    ftp.auth()
    expect_code(ftp.sendcmd("HOST localhost"), "220", "HOST after AUTH, before USER")
    ftp.login(args.user, args.password)
    ftp.prot_p()
    expect_code(reply_of(ftp.sendcmd, "HOST localhost"), "503", "HOST after login")
    ftp.quit()


def main():
    parser = wharf_client.base_parser(__doc__)
    stored.add_arguments(parser)
    parser.add_argument("scenario", choices=sorted(list(SCENARIOS) + ["host_before_login"]))
    args = parser.parse_args()
    def scenario():
        if args.scenario == "host_before_login":
            host_before_login(args)
        else:
            ftp = wharf_client.connect(args, tls="reuse")
            SCENARIOS[args.scenario](ftp, stored.open_home(args))
            expect_code(ftp.sendcmd("NOOP"), "200", "session still usable at the end")
            ftp.quit()

    wharf_client.run_scenario(args.scenario, scenario)


if __name__ == "__main__":
    main()
