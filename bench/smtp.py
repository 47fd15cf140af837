"""Voicemail e-mails over SMTP against the in-process gateway, compared with the Twilio path in the same run.

Runs ``--messages`` PBX e-mails (a ``--seconds`` WAV each, Asterisk format) over ``--sessions`` parallel
SMTP sessions (smtplib clients in a separate process, so they do not share the gateway's interpreter),
after the same number of signed Twilio recording callbacks (the ``bench/ingest.py`` path) through the
same gateway, in three rounds:

- one session, one message at a time: the ``250`` time with an idle pipeline;
- flood: every session sends its next message as soon as the last one got its ``250``. Prints the
  messages/s accepted at the SMTP edge and delivered into IMAP (Dovecot APPENDUID) against the Twilio
  path. Eight 1.3 MB messages are always in flight here, so the ``250`` time is mostly queueing at the
  edge (Little's law: sessions / accepted rate), printed for what it is;
- busy pipeline: the sessions offer 1.1 × the Twilio path's measured delivery rate, a little more than
  the pipeline can take, so the spool grows and its workers never run dry, and the ``250`` time is
  what a PBX sees while every worker is transcoding, encrypting and appending. The spool depth is
  sampled to show that.

Timings are printed, never asserted.

    .venv/bin/python bench/smtp.py [--messages 500] [--seconds 60] [--sessions 8] [--workers 4] [--single 50]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import os
import shutil
import smtplib
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml

from bench.ingest import Probe, TwilioSide, bench_config, make_wav, pct
from vm2mail.app import Gateway
from vm2mail.config import load_config
from vm2mail.devstack import keys
from vm2mail.devstack.dovecot import DevDovecot


def voicemail_email(encoded: bytes, n: int) -> bytes:
    """An Asterisk app_voicemail e-mail (``encoded``: the msg0000.wav attachment in base64, CRLF lines)."""
    head = (
        f"Date: Mon, 23 Nov 2026 10:15:42 +0100\r\nFrom: Asterisk PBX <asterisk@pbx.bench>\r\n"
        f"To: 202@vm.bench\r\nSubject: [PBX]: New message {n} in mailbox 202\r\n"
        f"Message-ID: <Asterisk-{n}-bench@pbx.bench>\r\nX-Asterisk-CallerID: +4930{n:07d}\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        "Content-Type: text/plain; charset=ISO-8859-1\r\n\r\nDear Anna: you were just left a 1:00 long "
        "message\r\n--b\r\n"
        'Content-Type: audio/x-wav; name="msg0000.wav"\r\nContent-Transfer-Encoding: base64\r\n'
        'Content-Disposition: attachment; filename="msg0000.wav"\r\n\r\n'
    )
    return head.encode() + encoded + b"--b--\r\n"


# The busy round offers 10 % more than the pipeline delivered on the Twilio path, so the spool
# grows and the workers never run dry, yet the edge is far from its flood rate.
BUSY_OFFER = 1.1


# -- the clients: one process, one thread per session ----------------------------------------------------
Result = tuple[int, float, float, int]  # message number, time of the 250, end of DATA → reply, reply code


def _session(
    port: int, encoded: bytes, numbers: list[int], out: list[Result], first_at: float, every: float
) -> None:
    """Send ``numbers`` one after another; with ``every`` > 0 message k starts at ``first_at + k * every``."""
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
        client.ehlo("pbx.bench")
        for k, n in enumerate(numbers):
            if every and (delay := first_at + k * every - time.time()) > 0:
                time.sleep(delay)
            body = voicemail_email(encoded, n)
            client.mail("asterisk@pbx.bench")
            client.rcpt("202@vm.bench")
            code, _ = client.docmd("DATA")
            assert code == 354, code
            client.send(body)
            t0 = time.perf_counter()
            client.send(b".\r\n")
            code, _ = client.getreply()
            out.append((n, time.time(), time.perf_counter() - t0, code))


def clients(port: int, wav: bytes, first: int, n: int, sessions: int, rate: float, queue: Any) -> None:
    """``rate`` > 0: the sessions together start ``rate`` messages/s, evenly spread; 0: flat out."""
    results: list[Result] = []
    encoded = base64.encodebytes(wav).replace(b"\n", b"\r\n")
    numbers = list(range(first, first + n))
    start = time.time() + 0.2
    every = sessions / rate if rate else 0.0
    threads = [
        threading.Thread(
            target=_session,
            args=(port, encoded, numbers[i::sessions], results, start + i / rate if rate else start, every),
        )
        for i in range(sessions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put((start, results))


async def smtp_clients(
    port: int, wav: bytes, first: int, n: int, sessions: int, rate: float = 0.0
) -> tuple[float, list[Result]]:
    """Run ``clients`` in a fresh process; (start time, one Result per message)."""
    context = multiprocessing.get_context("spawn")
    queue: Any = context.Queue()
    proc = context.Process(target=clients, args=(port, wav, first, n, sessions, rate, queue))
    proc.start()
    start, results = await asyncio.to_thread(queue.get)
    await asyncio.to_thread(proc.join)
    return start, results


# -- the gateway -------------------------------------------------------------------------------------------
async def run(
    config_path: Path, wav_path: Path, n: int, seconds: int, sessions: int, single: int
) -> dict[str, Any]:
    wav = wav_path.read_bytes()
    config = load_config(config_path)
    gateway = await Gateway.start(config, port=0)
    twilio = TwilioSide(int(config.twilio.api_base_url.rsplit(":", 1)[1]), gateway.port)
    twilio_probe = Probe()
    smtp_landed: dict[str, float] = {}

    async def delivered(job: Any, target: Any, uid: int) -> None:
        if job.recording_sid:
            await twilio_probe.delivered(job, target, uid)
        else:
            smtp_landed[job.id] = time.time()

    gateway.pipeline.on_delivered = delivered
    workers = asyncio.create_task(gateway.run_workers())
    out: dict[str, Any] = {}

    async def landed(count: int) -> None:
        while len(smtp_landed) < count:
            await asyncio.sleep(0.05)

    try:
        # One PBX sending one voicemail after another: the 250 time with one message in the pipeline.
        if single:
            _, results = await smtp_clients(gateway.smtp_port, wav, 100_000, single, 1)
            await landed(single)
            out["single"] = [lat for _, _, lat, _ in results]
            smtp_landed.clear()
        # The Twilio path: n signed recording callbacks, then wait for every APPENDUID.
        t0 = time.monotonic()
        sids = await twilio.post(twilio_probe, wav_path, 0, n, seconds)
        await twilio_probe.wait(sids)
        out["twilio"] = n / (time.monotonic() - t0)
        # Flood: the same number of e-mails, every session as fast as it can.
        start, results = await smtp_clients(gateway.smtp_port, wav, 0, n, sessions)
        await landed(n)
        out["codes"] = sorted({code for *_, code in results})
        out["accepted"] = n / (max(at for _, at, _, _ in results) - start)
        out["delivered"] = n / (max(smtp_landed.values()) - start)
        out["flood"] = [lat for _, _, lat, _ in results]
        smtp_landed.clear()
        # Busy pipeline: offered a little above the Twilio path's delivery rate; sample the spool.
        depths: list[int] = []

        async def sample() -> None:
            while True:
                await asyncio.sleep(0.5)
                depths.append(await asyncio.to_thread(gateway.spool.depth))

        sampler = asyncio.create_task(sample())
        offer = BUSY_OFFER * out["twilio"]
        start, results = await smtp_clients(gateway.smtp_port, wav, 200_000, n, sessions, offer)
        sampler.cancel()
        await landed(n)
        out["codes"] = sorted(set(out["codes"]) | {code for *_, code in results})
        out["busy"] = [lat for _, _, lat, _ in results]
        out["offered"] = n / (max(at for _, at, _, _ in results) - start)
        out["depths"] = depths[4:]  # from 2 s in: the first workers are still starting
    finally:
        workers.cancel()
        await asyncio.gather(workers, return_exceptions=True)
        await gateway.close()
        twilio.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--single", type=int, default=50, help="messages sent first from one session")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vmbs", dir="/tmp"))
    dovecot = DevDovecot(root / "dovecot")
    try:
        dovecot.add_user("anna@bench", "pw")
        dovecot.add_user("bob@bench", "pw")
        dovecot.start()
        user_home, gw_home = root / "u", root / "g"
        fpr = keys.make_key(user_home, "Anna", "anna@bench")
        keys.import_keys(gw_home, keys.export_public(user_home, fpr))
        wav_path = make_wav(root / "m.wav", args.seconds)
        mailboxes = {
            "201": {
                "name": "Anna",
                "email": "anna@bench.example",
                "imap_user": "anna@bench",
                "imap_password": "pw",
                "numbers": ["+15550002001"],
            },
            # The SMTP path delivers into its own account, so neither path's Message-ID search
            # before APPEND runs over the other's messages.
            "202": {
                "name": "Bob",
                "email": "bob@bench.example",
                "imap_user": "bob@bench",
                "imap_password": "pw",
                "numbers": ["+15550002002"],
            },
        }
        config = bench_config(root, dovecot, gw_home, args.workers, 19000, mailboxes, fpr)
        config["server"]["mail_domain"] = "vm.bench"
        config["twilio"]["sms_from"] = "+15550001000"
        config["smtp_ingress"] = {
            "listen": "127.0.0.1:0",
            "domains": ["vm.bench"],
            "allowed_networks": ["127.0.0.0/8"],
        }
        config_path = root / "bench.yaml"
        config_path.write_text(yaml.safe_dump(config))
        print(
            f"bench/smtp.py: {args.messages} voicemails of {args.seconds} s per path, {args.sessions} SMTP "
            f"sessions, {args.workers} workers, {os.cpu_count()} cores"
        )
        res = asyncio.run(run(config_path, wav_path, args.messages, args.seconds, args.sessions, args.single))
        if res.get("single"):
            one = res["single"]
            print(f"end of DATA → 250, one session, {len(one)} messages: p50 {pct(one, 50) * 1000:.1f} ms  "
                  f"p95 {pct(one, 95) * 1000:.1f} ms")  # fmt: skip
        flood, busy, depths = res["flood"], res["busy"], res["depths"]
        print(f"SMTP replies to DATA: {res['codes']}")
        print(f"flood, {args.sessions} sessions as fast as they go:")
        print(f"  SMTP edge accepted:     {res['accepted']:6.2f} msg/s")
        print(
            f"  SMTP delivered to IMAP: {res['delivered']:6.2f} msg/s   Twilio path (same run): "
            f"{res['twilio']:6.2f} msg/s   ratio {res['delivered'] / res['twilio']:.2f}"
        )
        print(f"  end of DATA → 250 (queueing: {args.sessions} messages always in flight): "
              f"p50 {pct(flood, 50) * 1000:.1f} ms  p95 {pct(flood, 95) * 1000:.1f} ms")  # fmt: skip
        offered = res["offered"]
        print(f"busy pipeline, {args.sessions} sessions offering {offered:.2f} msg/s (1.1 × Twilio's):")
        print(f"  spool depth (waiting + in progress, every 0.5 s): min {min(depths, default=0)}  "
              f"mean {sum(depths) / max(len(depths), 1):.1f}  max {max(depths, default=0)}  "
              f"({args.workers} workers)")  # fmt: skip
        print(f"  end of DATA → 250: p50 {pct(busy, 50) * 1000:.1f} ms  p95 {pct(busy, 95) * 1000:.1f} ms  "
              f"max {max(busy) * 1000:.1f} ms")  # fmt: skip
    finally:
        dovecot.stop()
        keys.kill_agent(root / "u")
        keys.kill_agent(root / "g")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
