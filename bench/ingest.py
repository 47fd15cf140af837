"""Push recordings through the whole path (signed callback → APPENDUID) and compare with a bare reference.

Reference, measured in the same run: the same messages through one ffmpeg encode, one gpg encryption
and one IMAP APPEND on an open connection each, one process per core. Prints throughput, the
callback→APPENDUID latency (idle: one call at a time; loaded: all at once) and the gateway's memory,
then the same for one long recording. Timings are printed, never asserted.

    .venv/bin/python bench/ingest.py [--messages 200] [--seconds 60] [--long-minutes 60]
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml

from vm2mail.app import Gateway
from vm2mail.audio.transcode import ffmpeg_args
from vm2mail.config import load_config
from vm2mail.devstack import keys
from vm2mail.devstack.dovecot import DevDovecot
from vm2mail.devstack.fake_twilio import FakeTwilio

ACCOUNT, TOKEN = "AC" + "be5c" * 8, "bench-token-0123456789"
PUBLIC_URL = "https://vm.bench"
SAMPLE = Path(__file__).resolve().parent.parent / "deploy" / "demo" / "en-callback-request.wav"


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def bench_config(
    root: Path,
    dovecot: DevDovecot,
    gw_home: Path,
    workers: int,
    port_base: int,
    mailboxes: dict[str, dict[str, Any]],
    fpr: str,
) -> dict[str, Any]:
    """The YAML both benches run the gateway with: loopback Dovecot, the stand-in, mailboxes encrypted."""
    return {
        "server": {
            "listen": "127.0.0.1:0",
            "public_url": PUBLIC_URL,
            "spool_dir": str(root / "spool"),
            "secret_key": "bench-secret-key-0123456789",
            "workers": workers,
        },
        "twilio": {
            "account_sid": ACCOUNT,
            "auth_token": TOKEN,
            "api_base_url": f"http://127.0.0.1:{port_base + os.getpid() % 1000}",
        },
        "imap": {"host": dovecot.host, "port": dovecot.port, "security": "none"},
        "gpg": {"home": str(gw_home)},
        "mailboxes": {box: {**spec, "gpg_recipients": [fpr]} for box, spec in mailboxes.items()},
    }


def make_wav(path: Path, seconds: int) -> Path:
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-stream_loop",
            "-1",
            "-i",
            str(SAMPLE),
            "-t",
            str(seconds),
            "-ar",
            "8000",
            "-ac",
            "1",
            "-c:a",
            "pcm_s16le",
            str(path),
        ],
        check=True,
    )
    return path


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


# -- reference: one process per core, each with an open IMAP connection --------------------------------
_ref: dict[str, Any] = {}


def _ref_init(
    host: str, port: int, user: str, password: str, home: str, fpr: str, wav: str, tmp: str
) -> None:
    conn = imaplib.IMAP4(host, port)
    conn.login(user, password)
    conn.create("RefBench")
    _ref.update(conn=conn, home=home, fpr=fpr, wav=wav, tmp=tmp)


def _ref_one(i: int) -> None:
    mp3 = Path(_ref["tmp"]) / f"ref-{os.getpid()}.mp3"
    subprocess.run(ffmpeg_args(Path(_ref["wav"]), mp3), check=True, capture_output=True)
    encrypted = subprocess.run(
        [
            "gpg",
            "--homedir",
            _ref["home"],
            "--batch",
            "--trust-model",
            "always",
            "--armor",
            "--encrypt",
            "-r",
            _ref["fpr"],
            "-o",
            "-",
            str(mp3),
        ],
        check=True,
        capture_output=True,
    ).stdout
    message = b"Subject: ref %d\r\nMessage-ID: <ref-%d@bench>\r\n\r\n" % (i, i) + encrypted.replace(
        b"\n", b"\r\n"
    )
    _ref["conn"].append("RefBench", None, None, message)


def reference(
    n: int, dovecot: DevDovecot, user: str, password: str, home: Path, fpr: str, wav: Path, tmp: Path
) -> float:
    cores = os.cpu_count() or 1
    args = (dovecot.host, dovecot.port, user, password, str(home), fpr, str(wav), str(tmp))
    with multiprocessing.get_context("fork").Pool(cores, _ref_init, args) as pool:
        t0 = time.perf_counter()
        pool.map(_ref_one, range(n), chunksize=1)
        return n / (time.perf_counter() - t0)


# -- the gateway -----------------------------------------------------------------------------------------
class Probe:
    """Delivery times (CLOCK_MONOTONIC, comparable with the Twilio-side process) by RecordingSid."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.landed: dict[str, float] = {}
        self.event = asyncio.Event()

    async def delivered(self, job: Any, target: Any, uid: int) -> None:
        self.landed[job.recording_sid] = time.monotonic()
        self.event.set()

    async def wait(self, sids: list[str]) -> None:
        while not all(s in self.landed for s in sids):
            self.event.clear()
            await asyncio.wait_for(self.event.wait(), 600)


# -- Twilio's side, in a process of its own -------------------------------------------------------------
# Twilio's cloud serves the media and sends the callbacks; running the stand-in and the callback sender
# in the gateway's process would bill their CPU to the gateway, so they get their own process.


async def post_callback(
    session: Any, gateway_url: str, fake: FakeTwilio, wav: bytes, n: int, seconds: int
) -> tuple[str, float]:
    from twilio.request_validator import RequestValidator

    call_sid = f"CA{n:032x}"
    recording = fake.add_recording(wav, call_sid=call_sid, duration=seconds)
    path = f"/twilio/recording?mb=201&from=%2B4930{n:06d}&to=%2B15550002001"
    params = {
        "AccountSid": ACCOUNT,
        "CallSid": call_sid,
        "RecordingSid": recording.sid,
        "RecordingUrl": f"{fake.base_url}/2010-04-01/Accounts/{ACCOUNT}/Recordings/{recording.sid}",
        "RecordingStatus": "completed",
        "RecordingDuration": str(seconds),
        "RecordingChannels": "1",
        "RecordingStartTime": "Mon, 23 Nov 2026 09:15:42 +0000",
        "RecordingSource": "RecordVerb",
    }
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC_URL + path, params)
    sent = time.monotonic()
    async with session.post(
        f"{gateway_url}{path}", data=params, headers={"X-Twilio-Signature": signature}
    ) as response:
        assert response.status == 204, response.status
    return recording.sid, sent


async def _twilio_main(conn: Any, twilio_port: int, gateway_url: str) -> None:
    import aiohttp

    fake = FakeTwilio(ACCOUNT, TOKEN)
    await fake.start("127.0.0.1", twilio_port)
    conn.send("ready")
    wavs: dict[str, bytes] = {}
    try:
        async with aiohttp.ClientSession() as session:
            while (command := await asyncio.to_thread(conn.recv)) is not None:
                wav_path, first, count, seconds = command
                wav = wavs.setdefault(wav_path, Path(wav_path).read_bytes())
                sent = [
                    await post_callback(session, gateway_url, fake, wav, n, seconds)
                    for n in range(first, first + count)
                ]
                conn.send(sent)
    finally:
        await fake.stop()


def _twilio_process(conn: Any, twilio_port: int, gateway_url: str) -> None:
    asyncio.run(_twilio_main(conn, twilio_port, gateway_url))


class TwilioSide:
    """The stand-in and the callback sender in a child process, driven over a pipe."""

    def __init__(self, twilio_port: int, gateway_port: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_twilio_process, args=(child, twilio_port, f"http://127.0.0.1:{gateway_port}"), daemon=True
        )
        self.process.start()
        assert self.conn.recv() == "ready"

    async def post(self, probe: Probe, wav: Path, first: int, count: int, seconds: int) -> list[str]:
        self.conn.send((str(wav), first, count, seconds))
        sent: list[tuple[str, float]] = await asyncio.to_thread(self.conn.recv)
        probe.sent.update(sent)
        return [sid for sid, _ in sent]

    def stop(self) -> None:
        self.conn.send(None)
        self.process.join(30)


async def gateway_run(
    config_path: Path, wav: Path, long_wav: Path | None, n: int, seconds: int, idle: int
) -> dict[str, Any]:
    config = load_config(config_path)
    gateway = await Gateway.start(config, port=0)
    twilio = TwilioSide(int(config.twilio.api_base_url.rsplit(":", 1)[1]), gateway.port)
    probe = Probe()
    gateway.pipeline.on_delivered = probe.delivered
    workers = asyncio.create_task(gateway.run_workers())
    out: dict[str, Any] = {}
    try:
        # idle: one call at a time
        idle_lat = []
        for i in range(idle):
            (sid,) = await twilio.post(probe, wav, 10_000 + i, 1, seconds)
            await probe.wait([sid])
            idle_lat.append(probe.landed[sid] - probe.sent[sid])
        out["idle"] = idle_lat
        out["rss_before"] = rss_mb()
        t0 = time.monotonic()
        sids = await twilio.post(probe, wav, 0, n // 2, seconds)
        await probe.wait(sids)
        out["rss_half"] = rss_mb()
        sids += await twilio.post(probe, wav, n // 2, n - n // 2, seconds)
        await probe.wait(sids)
        out["throughput"] = n / (time.monotonic() - t0)
        out["rss_full"] = rss_mb()
        out["loaded"] = [probe.landed[s] - probe.sent[s] for s in sids]
        out["hwm"] = rss_mb("VmHWM")
        if long_wav is not None:
            (sid,) = await twilio.post(probe, long_wav, 99_999, 1, int(long_wav.stat().st_size) // 16000)
            await probe.wait([sid])
            out["long_latency"] = probe.landed[sid] - probe.sent[sid]
            out["long_hwm"] = rss_mb("VmHWM")
            out["children_maxrss"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    finally:
        workers.cancel()
        await asyncio.gather(workers, return_exceptions=True)
        twilio.stop()
        await gateway.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--idle", type=int, default=20, help="calls measured one at a time")
    parser.add_argument("--long-minutes", type=int, default=60, help="0 skips the long recording")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vmb", dir="/tmp"))
    dovecot = DevDovecot(root / "dovecot")
    try:
        dovecot.add_user("anna@bench", "pw")
        dovecot.start()
        user_home, gw_home = root / "u", root / "g"
        fpr = keys.make_key(user_home, "Anna", "anna@bench")
        keys.import_keys(gw_home, keys.export_public(user_home, fpr))
        wav_path = make_wav(root / "m.wav", args.seconds)
        long_wav = make_wav(root / "long.wav", args.long_minutes * 60) if args.long_minutes else None
        anna = {"name": "Anna", "imap_user": "anna@bench", "imap_password": "pw"}
        config = bench_config(
            root, dovecot, gw_home, args.workers, 18000, {"201": {**anna, "numbers": ["+15550002001"]}}, fpr
        )
        config_path = root / "bench.yaml"
        config_path.write_text(yaml.safe_dump(config))
        print(
            f"bench/ingest.py: {args.messages} recordings of {args.seconds} s, {args.workers} workers, "
            f"{os.cpu_count()} cores"
        )
        ref = reference(args.messages, dovecot, "anna@bench", "pw", user_home, fpr, wav_path, root)
        res = asyncio.run(
            gateway_run(config_path, wav_path, long_wav, args.messages, args.seconds, args.idle)
        )
        print(f"reference (ffmpeg + gpg + APPEND, {os.cpu_count()} processes): {ref:6.2f} msg/s")
        print(
            f"gateway   (signed callback → APPENDUID):            {res['throughput']:6.2f} msg/s  "
            f"= {res['throughput'] / ref:.2f} × reference"
        )
        idle = res["idle"]
        print(
            f"latency idle   ({len(idle)} calls one at a time): p50 {pct(idle, 50):.3f} s  "
            f"p95 {pct(idle, 95):.3f} s"
        )
        loaded = res["loaded"]
        print(
            f"latency loaded ({len(loaded)} at once):           p50 {pct(loaded, 50):.3f} s  "
            f"p95 {pct(loaded, 95):.3f} s"
        )
        print(
            f"gateway RSS: before burst {res['rss_before']:.0f} MB, after {args.messages // 2} "
            f"{res['rss_half']:.0f} MB, after {args.messages} {res['rss_full']:.0f} MB; "
            f"peak {res['hwm']:.0f} MB"
        )
        if long_wav is not None:
            print(
                f"{args.long_minutes}-minute recording ({long_wav.stat().st_size / 2**20:.0f} MB WAV): "
                f"callback → APPENDUID "
                f"{res['long_latency']:.1f} s, gateway peak RSS {res['long_hwm']:.0f} MB, "
                f"largest child process {res['children_maxrss']:.0f} MB"
            )
    finally:
        dovecot.stop()
        keys.kill_agent(root / "u")
        keys.kill_agent(root / "g")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
