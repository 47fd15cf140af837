"""Voice-webhook answer time with the routing switches: from cache, read from IMAP, IMAP hanging.

Starts a throwaway Dovecot and the gateway in-process and posts signed voice webhooks for a mailbox
with ``forward_to`` exactly as Twilio does, in three set-ups: ``cache_seconds: 5`` (the default: most
calls answer from the cached switches), ``cache_seconds: 0`` (two METADATA reads per call), and an IMAP
server that stops answering (a relay that swallows everything: the first call waits the
``read_timeout_seconds`` deadline, later ones answer from the remembered state). Prints p50/p95/max;
timings are printed, never asserted.

    .venv/bin/python bench/routing.py [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import yaml

from vm2mail.app import Gateway
from vm2mail.config import Config, load_config
from vm2mail.devstack.dovecot import DevDovecot
from vm2mail.telephony.signature import SIGNATURE_HEADER, sign

ACCOUNT, TOKEN = "AC" + "be5c" * 8, "bench-token-0123456789"
PUBLIC, NUMBER, USER, PASSWORD = "https://vm.bench", "+15550002001", "anna@bench", "pw"


async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An IMAP 'server' that accepts and never answers."""
    with contextlib.suppress(asyncio.CancelledError, OSError):
        await reader.read()
    writer.close()


async def calls(config: Config, n: int) -> list[float]:
    gateway = await Gateway.start(config, port=0)
    times: list[float] = []
    try:
        async with aiohttp.ClientSession() as session:
            for i in range(n):
                params = {
                    "AccountSid": ACCOUNT,
                    "CallSid": f"CA{i:032x}",
                    "From": "+4930123456",
                    "To": NUMBER,
                    "CallStatus": "ringing",
                }
                headers = {SIGNATURE_HEADER: sign(TOKEN, PUBLIC + "/twilio/voice", params)}
                started = time.perf_counter()
                url = f"http://127.0.0.1:{gateway.port}/twilio/voice"
                async with session.post(url, data=params, headers=headers) as response:
                    body = await response.text()
                times.append(time.perf_counter() - started)
                assert response.status == 200 and "<Dial" in body, body
    finally:
        await gateway.close()
    return times


def show(name: str, values: list[float]) -> None:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    print(f"  {name:<34} p50 {statistics.median(ms):7.1f} ms  p95 {p95:7.1f} ms  max {ms[-1]:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vmr", dir="/tmp"))
    dovecot = DevDovecot(root / "dovecot")
    try:
        dovecot.add_user(USER, PASSWORD)
        dovecot.start()
        data = {
            "server": {
                "listen": "127.0.0.1:0",
                "public_url": PUBLIC,
                "spool_dir": str(root / "spool"),
                "secret_key": "bench-secret-key-0123456789",
                "mail_domain": "vm.bench",
            },
            "twilio": {"account_sid": ACCOUNT, "auth_token": TOKEN, "api_base_url": "http://127.0.0.1:9"},
            "imap": {"host": dovecot.host, "port": dovecot.port, "security": "none", "timeout_seconds": 30},
            "gpg": {"home": str(root / "gnupg")},
            "watcher": {"enabled": False},
            "mailboxes": {
                "201": {
                    "name": "Anna",
                    "imap_user": USER,
                    "imap_password": PASSWORD,
                    "numbers": [NUMBER],
                    "forward_to": "sip:201@pbx.bench",
                }
            },
        }
        print(f"bench/routing.py: {args.calls} voice webhooks per set-up, one at a time")
        for name, routing in (
            ("cached switches (cache_seconds 5)", {"cache_seconds": 5}),
            ("IMAP read per call (cache_seconds 0)", {"cache_seconds": 0}),
        ):
            path = root / "bench.yaml"
            path.write_text(yaml.safe_dump({**data, "routing": routing}))
            show(name, asyncio.run(calls(load_config(path), args.calls)))

        async def hanging() -> list[float]:
            server = await asyncio.start_server(swallow, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            path = root / "bench.yaml"
            path.write_text(yaml.safe_dump({**data, "routing": {"cache_seconds": 5}}))
            config = load_config(path)
            config = dataclasses.replace(config, imap=dataclasses.replace(config.imap, port=port))
            try:
                return await calls(config, args.calls)
            finally:
                server.close()

        values = asyncio.run(hanging())
        show("IMAP hanging: first call", values[:1])
        show("IMAP hanging: the calls after it", values[1:])
    finally:
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
