"""Phone-menu latency on a big folder: 10,000 voicemails and 1,000 ordinary e-mails in one IMAP folder.

Fills the folder fast (MULTIAPPEND with LITERAL+, RFC 3502 / RFC 7888), adds one 60 s voicemail
encrypted to the mailbox key and the gateway's playback key, starts the gateway in-process and walks
the menu over HTTP exactly as Twilio does (signed form POSTs, TwiML parsed, <Gather action> followed).
Prints p50/p95 per step (login, counts, next, envelope, delete, restore) and the time to the first
audio byte of the encrypted message (cold: decrypted for each request; warm: from the playback cache).
Targets (issue 3): step p95 < 50 ms, first audio byte < 150 ms. Login includes one scrypt PIN check
(vm2mail/pinhash.py, deliberately costly), printed on its own line. Timings are printed, never asserted.

    .venv/bin/python bench/menu.py [--messages 10000] [--mails 1000] [--steps 200]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import imaplib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import yaml
from twilio.request_validator import RequestValidator
from yarl import URL

from vm2mail.app import Gateway
from vm2mail.audio.transcode import transcode_to_mp3
from vm2mail.config import load_config
from vm2mail.crypto.pgp import Encryptor
from vm2mail.devstack import keys
from vm2mail.devstack.dovecot import DevDovecot
from vm2mail.jobs.jobs import VOICEMAIL, CallInfo
from vm2mail.pinhash import hash_pin, verify_pin
from vm2mail.pipeline.message import Voicemail, compose
from vm2mail.playback import Playback

ACCOUNT, TOKEN = "AC" + "be5c" * 8, "bench-token-0123456789"
PUBLIC = "https://vm.bench"
PIN, OWNER, NUMBER = "246810", "+15550009001", "+15550002001"
USER, PASSWORD = "anna@bench", "pw"
T0 = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


# -- filling the folder ------------------------------------------------------------------------------


def voicemail(i: int) -> bytes:
    date = format_datetime(T0 + timedelta(minutes=i))
    caller = f"+4930{1000000 + i}"
    return (
        f'From: "{caller}" <voicemail@vm.bench>\r\nTo: {USER}\r\nDate: {date}\r\n'
        f"Subject: Voicemail from {caller}\r\nMessage-ID: <RE{i:032x}@vm.bench>\r\n"
        f"X-Vm2mail-Kind: voicemail\r\nX-Vm2mail-Caller: {caller}\r\nX-Vm2mail-Called: {NUMBER}\r\n"
        f"X-Vm2mail-Duration: {5 + i % 90}\r\nX-Vm2mail-Mailbox: 201\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nVoicemail {i} (small: no audio).\r\n"
    ).encode()


def ordinary(i: int) -> bytes:
    date = format_datetime(T0 + timedelta(minutes=i, seconds=30))
    return (
        f"From: colleague{i % 50}@example.com\r\nTo: {USER}\r\nDate: {date}\r\nSubject: Note {i}\r\n"
        f"Message-ID: <note{i}@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
        f"An ordinary e-mail {i}.\r\n"
    ).encode()


def multiappend(host: str, port: int, folder: str, messages: list[tuple[bytes, str]]) -> None:
    """RFC 3502 MULTIAPPEND with RFC 7888 non-synchronising literals: one round trip per batch."""
    with socket.create_connection((host, port)) as sock:
        reader = sock.makefile("rb")

        def command(tag: str, data: bytes) -> None:
            sock.sendall(data)
            while True:
                line = reader.readline()
                if not line:
                    raise RuntimeError("connection closed")
                if line.startswith(tag.encode() + b" "):
                    if b" OK" not in line:
                        raise RuntimeError(line.decode())
                    return

        reader.readline()  # greeting
        command("a", f'a LOGIN "{USER}" "{PASSWORD}"\r\n'.encode())
        sock.sendall(f'c CREATE "{folder}"\r\n'.encode())  # NO [ALREADYEXISTS] is fine
        reader.readline()
        for start in range(0, len(messages), 500):
            parts = [f'b{start} APPEND "{folder}"'.encode()]
            for raw, flags in messages[start : start + 500]:
                parts.append(f" ({flags}) {{{len(raw)}+}}\r\n".encode() + raw)
            command(f"b{start}", b"".join(parts) + b"\r\n")
        command("z", b"z LOGOUT\r\n")


async def encrypted_voicemail(config: Any, root: Path) -> bytes:
    wav, mp3 = root / "long.wav", root / "long.mp3"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=60",
            "-ar",
            "8000",
            "-ac",
            "1",
            str(wav),
        ],
        check=True,
    )
    await transcode_to_mp3(wav, mp3)
    box = config.mailboxes["201"]
    vm = Voicemail(
        kind=VOICEMAIL,
        recipient=box,
        mailbox=box,
        message_id="<RElong@vm.bench>",
        call=CallInfo(call_sid="CA" + "0" * 32, called=NUMBER, caller="+4930555000"),
        started=T0 - timedelta(days=1),  # the oldest message: "1" plays it first
        duration=60.0,
        mail_domain="vm.bench",
        mp3=mp3,
    )
    return await asyncio.to_thread(
        compose,
        vm,
        templates_dir=None,
        encryptor=Encryptor(config.gpg.home),
        extra_recipients=(config.gpg.playback_key,),
    )


# -- walking the menu --------------------------------------------------------------------------------


class Call:
    def __init__(self, session: aiohttp.ClientSession, port: int, n: int) -> None:
        self.session, self.port = session, port
        self.params = {
            "AccountSid": ACCOUNT,
            "CallSid": f"CA{n:032x}",
            "From": OWNER,
            "To": NUMBER,
            "CallStatus": "in-progress",
            "Direction": "inbound",
        }
        self.action = ""
        self.plays: list[str] = []

    async def post(self, url: str, digits: str | None = None) -> float:
        params = dict(self.params, **({"Digits": digits} if digits is not None else {}))
        headers = {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, params)}
        local = f"http://127.0.0.1:{self.port}{url[len(PUBLIC) :]}"
        t0 = time.perf_counter()
        async with self.session.post(URL(local, encoded=True), data=params, headers=headers) as resp:
            body = await resp.text()
        elapsed = time.perf_counter() - t0
        assert resp.status == 200, body
        root = ET.fromstring(body)  # noqa: S314 - our own gateway's TwiML
        redirect = root.find("Redirect")
        if redirect is not None and redirect.text:
            return elapsed + await self.post(redirect.text)
        gather = root.find("Gather")
        self.action = gather.get("action", "") if gather is not None else ""
        self.plays = [p.text or "" for p in root.iter("Play")]
        return elapsed

    async def press(self, digits: str) -> float:
        return await self.post(self.action, digits)

    async def first_byte(self, url: str) -> float:
        t0 = time.perf_counter()
        async with self.session.get(f"http://127.0.0.1:{self.port}{url[len(PUBLIC) :]}") as resp:
            await resp.content.readany()
            elapsed = time.perf_counter() - t0
            assert resp.status == 200
            await resp.read()
        return elapsed


def mark_unseen(config: Any, uid: int) -> None:
    imap = imaplib.IMAP4(config.imap.host, config.imap.port)
    try:
        imap.login(USER, PASSWORD)
        imap.select("Voicemail")
        imap.uid("STORE", str(uid), "-FLAGS.SILENT", "(\\Seen)")
    finally:
        imap.logout()


async def run(config_path: Path, steps: int) -> dict[str, list[float]]:
    config = load_config(config_path)
    gateway = await Gateway.start(config, port=0)
    out: dict[str, list[float]] = {
        k: []
        for k in (
            "first listing",
            "login",
            "counts",
            "next",
            "envelope",
            "delete",
            "restore",
            "play step (cold)",
            "first byte (cold)",
            "first byte (warm)",
        )
    }
    try:
        [playback] = [o for o in gc.get_objects() if isinstance(o, Playback)]
        async with aiohttp.ClientSession() as session:
            call = Call(session, gateway.port, 0)
            await call.post(PUBLIC + "/twilio/voice")
            out["first listing"].append(await call.press(PIN))  # the cold, full header FETCH
            for n in range(steps):
                call = Call(session, gateway.port, n + 1)
                await call.post(PUBLIC + "/twilio/voice")
                out["login"].append(await call.press(PIN))
                await call.press("0")
                out["counts"].append(await call.press("#"))
                # "1": the 60 s encrypted message (the oldest, made unheard again as a mail client
                # would); the playback cache is emptied first, so the step decrypts.
                await asyncio.to_thread(mark_unseen, config, 1)
                playback._cache.clear()
                out["play step (cold)"].append(await call.press("1"))
                playback._cache.clear()
                out["first byte (cold)"].append(await call.first_byte(call.plays[0]))
                out["first byte (warm)"].append(await call.first_byte(call.plays[0]))
                for _ in range(3):
                    out["next"].append(await call.press("6"))
                out["envelope"].append(await call.press("3"))
                out["delete"].append(await call.press("7"))
                out["restore"].append(await call.press("7"))
                await call.press("#")
    finally:
        await gateway.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000, help="voicemails in the folder")
    parser.add_argument("--mails", type=int, default=None, help="ordinary e-mails (default: messages / 10)")
    parser.add_argument("--steps", type=int, default=200, help="menu walks (each: every step once)")
    args = parser.parse_args()
    mails = args.messages // 10 if args.mails is None else args.mails
    root = Path(tempfile.mkdtemp(prefix="vmm", dir="/tmp"))
    dovecot = DevDovecot(root / "dovecot")
    try:
        dovecot.add_user(USER, PASSWORD)
        dovecot.start()
        user_home, gw_home = root / "u", root / "g"
        fpr = keys.make_key(user_home, "Anna", USER)
        keys.import_keys(gw_home, keys.export_public(user_home, fpr))
        playback = keys.make_key(gw_home, "Playback", "playback@vm.bench")
        data = {
            "server": {
                "listen": "127.0.0.1:0",
                "public_url": PUBLIC,
                "spool_dir": str(root / "spool"),
                "secret_key": "bench-secret-key-0123456789",
                "mail_domain": "vm.bench",
            },
            "twilio": {"account_sid": ACCOUNT, "auth_token": TOKEN, "api_base_url": "http://127.0.0.1:9"},
            "imap": {"host": dovecot.host, "port": dovecot.port, "security": "none"},
            "gpg": {"home": str(gw_home), "playback_key": playback},
            "watcher": {"enabled": False},
            "mailboxes": {
                "201": {
                    "name": "Anna",
                    "imap_user": USER,
                    "imap_password": PASSWORD,
                    "numbers": [NUMBER],
                    "forward_to": OWNER,
                    "gpg_recipients": [fpr],
                    "phone_playback": True,
                    "pin": hash_pin(PIN),
                    "max_messages": 100_000,
                }
            },
        }
        config_path = root / "bench.yaml"
        config_path.write_text(yaml.safe_dump(data))
        config = load_config(config_path)
        t0 = time.perf_counter()
        batch = [(voicemail(i), "\\Seen" if i % 3 else "") for i in range(args.messages)]
        batch += [(ordinary(i), "\\Seen") for i in range(mails)]
        batch.sort(key=lambda item: hash(item[0]))  # interleaved, as in a real folder
        batch.insert(0, (asyncio.run(encrypted_voicemail(config, root)), ""))
        multiappend(dovecot.host, dovecot.port, "Voicemail", batch)
        fill = time.perf_counter() - t0
        print(
            f"bench/menu.py: {args.messages} voicemails + {mails} e-mails + one 60 s encrypted voicemail "
            f"in one folder (filled in {fill:.1f} s), {args.steps} walks, {os.cpu_count()} cores"
        )
        res = asyncio.run(run(config_path, args.steps))
        pin_hash = hash_pin(PIN)
        res["scrypt (in login)"] = []
        for _ in range(min(args.steps, 50)):
            t1 = time.perf_counter()
            verify_pin(PIN, pin_hash)
            res["scrypt (in login)"].append(time.perf_counter() - t1)
        for name, values in res.items():
            ms = [v * 1000 for v in values]
            print(f"  {name:<20} n={len(ms):<4} p50 {pct(ms, 50):7.1f} ms   p95 {pct(ms, 95):7.1f} ms")
    finally:
        dovecot.stop()
        for home in (root / "u", root / "g"):
            keys.kill_agent(home)
        subprocess.run(["rm", "-rf", str(root)], check=False)


if __name__ == "__main__":
    main()
