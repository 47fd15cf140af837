"""kill -9 at any moment: after a restart every acknowledged recording is in the folder exactly once."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.e2e.harness import Stack, free_port, parse, twilio_up
from tests.e2e.test_voicemail import messages
from vm2mail.config import Config


def start_gateway(config: Config, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "vm2mail", "serve", "-c", str(config.source)], stdout=out, stderr=out
        )


async def wait_healthy(port: int, process: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            assert process.poll() is None, "gateway exited"
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("gateway did not come up")


def test_kill_9_during_delivery_loses_nothing_and_duplicates_nothing(
    stack: Callable[..., Stack], tmp_path: Path
) -> None:
    port = free_port()
    s = stack({"201": {"encrypted": True}}, server={"listen": f"127.0.0.1:{port}", "workers": 2})
    log = tmp_path / "gateway.log"
    rng = random.Random(9)
    acknowledged: list[str] = []

    async def scenario() -> None:
        async with twilio_up(s):
            gateway = start_gateway(s.config, log)
            try:
                for round_ in range(4):
                    await wait_healthy(port, gateway)
                    for _ in range(3):
                        trace = await s.call(port, caller=f"+49301234{round_}{len(acknowledged):02d}")
                        assert trace.recording is not None
                        acknowledged.append(trace.recording.sid)  # the callback was answered 2xx
                    await asyncio.sleep(rng.uniform(0.0, 0.6))  # somewhere in fetch/encode/encrypt/APPEND
                    os.kill(gateway.pid, signal.SIGKILL)
                    gateway.wait()
                    gateway = start_gateway(s.config, log)
                await wait_healthy(port, gateway)
                for sid in acknowledged:
                    assert await s.wait_job(sid, timeout=90) == "done", log.read_text()[-3000:]
            finally:
                gateway.kill()
                gateway.wait()

    asyncio.run(scenario())
    landed = [parse(m.raw)["Message-ID"] for m in messages(s, "201")]
    assert sorted(landed) == sorted(f"<{sid}@vm.example.com>" for sid in acknowledged)
