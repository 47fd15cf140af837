"""Web inbox latency on a big folder: 10,000 voicemails, 1,000 e-mails and one 60 s encrypted voicemail.

Fills the folder as bench/menu.py does (MULTIAPPEND), starts the gateway in-process, then measures:
- the list API at the gateway (GET /inbox/api/voicemails, random pages of every view, with the session
  cookie), p50/p95 over ``--lists`` requests; target p95 < 100 ms;
- in Debian's headless Chromium: the time from the click on "Play" for the 60 s encrypted voicemail to
  the audio element's ``playing`` event (raw PGP/MIME fetched, decrypted by OpenPGP.js, parsed by
  postal-mime, played from a Blob URL), over ``--plays`` clicks; target < 1 s.
Timings are printed, never asserted.

    .venv/bin/python bench/web.py [--messages 10000] [--lists 300] [--plays 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import yaml

from bench.menu import NUMBER, PASSWORD, PUBLIC, T0, USER, multiappend, ordinary, pct, voicemail
from tests.web.browser import chromium_page
from vm2mail.app import Gateway
from vm2mail.audio.transcode import transcode_to_mp3
from vm2mail.config import load_config
from vm2mail.crypto.pgp import Encryptor
from vm2mail.devstack import keys
from vm2mail.devstack.dovecot import DevDovecot
from vm2mail.jobs.jobs import VOICEMAIL, CallInfo
from vm2mail.pipeline.message import Voicemail, compose
from vm2mail.web.session import COOKIE

PASSPHRASE = "bench passphrase"


async def long_encrypted(config: Any, root: Path, newest: int) -> bytes:
    """A 60 s voicemail encrypted to the user's key only (no playback key: the browser decrypts)."""
    wav, mp3 = root / "long.wav", root / "long.mp3"
    tone = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=60"]
    subprocess.run([*tone, "-ar", "8000", "-ac", "1", str(wav)], check=True)
    await transcode_to_mp3(wav, mp3)
    box = config.mailboxes["201"]
    vm = Voicemail(
        kind=VOICEMAIL,
        recipient=box,
        mailbox=box,
        message_id="<RElong@vm.bench>",
        call=CallInfo(call_sid="CA" + "0" * 32, called=NUMBER, caller="+4930555000"),
        started=T0 + timedelta(minutes=newest + 1),  # the newest: first on page 1
        duration=60.0,
        mail_domain="vm.bench",
        mp3=mp3,
    )
    return await asyncio.to_thread(compose, vm, templates_dir=None, encryptor=Encryptor(config.gpg.home))


async def list_times(port: int, n: int, page_size: int, total: int) -> dict[str, list[float]]:
    base = f"http://127.0.0.1:{port}/inbox/api/"
    out: dict[str, list[float]] = {"list (first, cold)": [], "list page": []}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        async with http.post(base + "login", json={"login": USER, "password": PASSWORD}) as response:
            assert response.status == 200, await response.text()
            cookie = {"Cookie": f"{COOKIE}={response.cookies[COOKIE].value}"}
        rng = random.Random(7)
        for i in range(n + 1):
            view = rng.choice(("all", "all", "new", "saved"))
            page = rng.randint(1, max(1, total // page_size // (3 if view != "all" else 1)))
            t0 = time.perf_counter()
            async with http.get(f"{base}voicemails?view={view}&page={page}", headers=cookie) as response:
                body = await response.json()
            out["list (first, cold)" if i == 0 else "list page"].append(time.perf_counter() - t0)
            assert response.status == 200 and len(body["items"]) <= page_size, body
    return out


async def play_times(port: int, secret: str, n: int) -> list[float]:
    async with chromium_page(echo=False) as page:
        await page.goto(f"http://127.0.0.1:{port}/inbox/")
        await page.get_by_label("E-mail login").fill(USER)
        await page.get_by_label("Password", exact=True).fill(PASSWORD)
        await page.get_by_role("button", name="Log in", exact=True).click()
        await page.get_by_label("or paste it here").fill(secret)
        await page.get_by_label("Passphrase").fill(PASSPHRASE)
        await page.get_by_role("button", name="Import key").click()
        await page.locator("#key-state").filter(has_text="unlocked").wait_for()
        first = page.locator("#list li").first
        await first.filter(has_text="+4930555000").wait_for()
        times = []
        for _ in range(n):
            # Clock in the page: from the click event to the audio element's "playing" event.
            await page.evaluate(
                """() => { const p = document.getElementById('player'); p.pause();
                   window.__t = new Promise(resolve => {
                     let start = 0;
                     document.getElementById('list').addEventListener('click',
                       () => { start = performance.now(); }, {capture: true, once: true});
                     p.addEventListener('playing', () => resolve(performance.now() - start), {once: true});
                   }); }"""
            )
            await page.locator("#list li").first.get_by_role("button", name="Play").click()
            times.append(await page.evaluate("() => window.__t") / 1000)
            duration = await page.evaluate("document.getElementById('player').duration")
            assert 59 < duration < 61, duration
    return times


async def run(config_path: Path, secret: str, args: argparse.Namespace) -> dict[str, list[float]]:
    config = load_config(config_path)
    gateway = await Gateway.start(config, port=0)
    try:
        out = await list_times(gateway.port, args.lists, config.web.page_size, args.messages)
        out["click to playing (60 s, encrypted)"] = await play_times(gateway.port, secret, args.plays)
    finally:
        await gateway.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000, help="voicemails in the folder")
    parser.add_argument("--lists", type=int, default=300, help="list requests")
    parser.add_argument("--plays", type=int, default=10, help="clicks on play in Chromium")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vmw", dir="/tmp"))
    dovecot = DevDovecot(root / "dovecot")
    try:
        dovecot.add_user(USER, PASSWORD)
        dovecot.start()
        user_home, gw_home = root / "u", root / "g"
        fpr = keys.make_key(user_home, "Anna", USER)
        keys.import_keys(gw_home, keys.export_public(user_home, fpr))
        data = {
            "server": {
                "listen": "127.0.0.1:0",
                "public_url": PUBLIC,
                "spool_dir": str(root / "spool"),
                "secret_key": "bench-secret-key-0123456789",
                "mail_domain": "vm.bench",
            },
            "twilio": {
                "account_sid": "AC" + "be5c" * 8,
                "auth_token": "t" * 32,
                "api_base_url": "http://127.0.0.1:9",
            },
            "imap": {"host": dovecot.host, "port": dovecot.port, "security": "none"},
            "gpg": {"home": str(gw_home)},
            "watcher": {"enabled": False},
            "mailboxes": {
                "201": {
                    "name": "Anna",
                    "imap_user": USER,
                    "imap_password": PASSWORD,
                    "numbers": [NUMBER],
                    "gpg_recipients": [fpr],
                    "max_messages": 100_000,
                }
            },
        }
        config_path = root / "bench.yaml"
        config_path.write_text(yaml.safe_dump(data))
        config = load_config(config_path)
        t0 = time.perf_counter()
        batch = [
            (voicemail(i), "\\Seen" if i % 3 else "\\Seen \\Flagged" if i % 7 == 0 else "")
            for i in range(args.messages)
        ]
        batch += [(ordinary(i), "\\Seen") for i in range(args.messages // 10)]
        batch.sort(key=lambda item: hash(item[0]))  # interleaved, as in a real folder
        batch.append((asyncio.run(long_encrypted(config, root, args.messages)), ""))
        multiappend(dovecot.host, dovecot.port, "Voicemail", batch)
        secret = keys.export_secret(user_home, fpr).decode()
        print(
            f"bench/web.py: {args.messages} voicemails + {args.messages // 10} e-mails + one 60 s encrypted "
            f"voicemail in one folder (filled in {time.perf_counter() - t0:.1f} s), {os.cpu_count()} cores"
        )
        res = asyncio.run(run(config_path, secret, args))
        for name, values in res.items():
            ms = [v * 1000 for v in values]
            print(f"  {name:<36} n={len(ms):<4} p50 {pct(ms, 50):7.1f} ms   p95 {pct(ms, 95):7.1f} ms")
    finally:
        dovecot.stop()
        for home in (root / "u", root / "g"):
            keys.kill_agent(home)
        subprocess.run(["rm", "-rf", str(root)], check=False)


if __name__ == "__main__":
    main()
