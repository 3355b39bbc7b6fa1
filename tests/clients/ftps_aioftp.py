#!/usr/bin/env python3
"""FTPS round trip with aioftp (PyPI, 0.28).

Run:
    python3 tests/clients/ftps_aioftp.py [--tls 1.2|1.3] HOST PORT USER PASS explicit|implicit LOCAL_DIR N

aioftp opens each passive data connection with asyncio's open_connection,
which finishes the TLS handshake (offering the control connection's session)
before STOR/RETR is sent: the server must handshake on a data connection it
has not yet been told what to do with.
"""

import argparse
import asyncio
import os
import ssl
import sys

import aioftp

TIMEOUT = 30


def fail(what, err):
    if isinstance(err, str):
        why = err
    elif isinstance(err, aioftp.StatusCodeError):
        # Keep the server's own words ("425 ...") in the one FAIL line.
        codes = " ".join(str(c) for c in err.received_codes)
        why = f"{codes} {' '.join(err.info).strip()}"
    elif isinstance(err, asyncio.TimeoutError):
        why = f"timed out after {TIMEOUT}s"
    else:
        why = f"{type(err).__name__}: {err}"
    print(f"FAIL: {what}: {' '.join(why.split())}", flush=True)
    sys.exit(1)


def tls_context(version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if version:
        v = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[version]
        ctx.minimum_version = ctx.maximum_version = v
    return ctx


async def step(what, coro):
    try:
        return await asyncio.wait_for(coro, TIMEOUT)
    except Exception as e:  # noqa: BLE001 - every failure ends the run the same way
        fail(what, e)


resumed = []
protocol = "?"


def note_tls(stream):
    # Reported so a test can tell whether the server accepted the session.
    global protocol
    obj = stream.writer.transport.get_extra_info("ssl_object")
    if obj is not None:
        protocol = obj.version()
        resumed.append(obj.session_reused)


async def run(a):
    ctx = tls_context(a.tls)
    implicit = a.mode == "implicit"
    client = aioftp.Client(
        socket_timeout=TIMEOUT,
        connection_timeout=TIMEOUT,
        ssl=ctx if implicit else None,
    )
    await step("connect", client.connect(a.host, a.port))
    if implicit:
        # aioftp only sends PBSZ/PROT from upgrade_to_tls(), which refuses to
        # run when the connection is already TLS.
        await step("PBSZ 0", client.command("PBSZ 0", "200"))
        await step("PROT P", client.command("PROT P", "200"))
    else:
        await step("AUTH TLS", client.upgrade_to_tls(ctx))
    await step("login", client.login(a.user, a.password))

    os.makedirs(a.dir, exist_ok=True)
    sent = []
    for i in range(a.n):
        name = f"aioftp-f{i}"
        # Odd sizes so the last TLS record of a transfer is a partial one.
        data = os.urandom(20000 + i * 4099)
        with open(os.path.join(a.dir, name), "wb") as f:
            f.write(data)
        sent.append(data)

        async def store(name=name, data=data):
            async with client.upload_stream(name) as stream:
                note_tls(stream)
                await stream.write(data)

        await step(f"STOR {name}", store())
        print(f"STOR {name} {len(data)} bytes ok", flush=True)

    for i, data in enumerate(sent):
        name = f"aioftp-f{i}"

        async def fetch(name=name):
            chunks = []
            async with client.download_stream(name) as stream:
                note_tls(stream)
                async for block in stream.iter_by_block():
                    chunks.append(block)
            return b"".join(chunks)

        got = await step(f"RETR {name}", fetch())
        if got != data:
            fail(f"RETR {name}", f"content differs: sent {len(data)} bytes, got {len(got)}")
        print(f"RETR {name} {len(got)} bytes ok", flush=True)

    await step("QUIT", client.quit())
    print(
        f"OK: {a.n} files uploaded, downloaded and verified ({a.mode}, {protocol}, "
        f"{sum(resumed)}/{len(resumed)} data connections resumed)",
        flush=True,
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tls", choices=["1.2", "1.3"])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("user")
    p.add_argument("password")
    p.add_argument("mode", choices=["explicit", "implicit"])
    p.add_argument("dir")
    p.add_argument("n", type=int)
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
