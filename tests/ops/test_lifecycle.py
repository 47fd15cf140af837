"""The process exits after SIGTERM even when a task ignores its cancellation or a thread is blocked."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

BOUND = 8.0  # generous: serve's own phases take at most 5 s

# A service whose background task swallows every cancellation and keeps "reconnecting" (what an IMAP
# client library's retry loop did, issue 15), plus an executor thread stuck in a blocking call.
SERVICE = """
import asyncio, logging, signal, sys, threading, time
from vm2mail.lifecycle import run_service

logging.basicConfig(level=logging.INFO, stream=sys.stderr)

async def stubborn() -> None:
    while True:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            logging.info("reconnecting")

async def main() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    asyncio.get_running_loop().create_task(stubborn(), name="stubborn-watcher")
    asyncio.get_running_loop().run_in_executor(None, time.sleep, 3600)
    print("ready", flush=True)
    await stop.wait()

run_service(main())
"""


def test_a_task_that_swallows_cancellation_cannot_keep_the_process_alive(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVICE],
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=Path(__file__).resolve().parents[2],
        )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready", log.read_text()
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(BOUND)
        elapsed = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    assert code == 0 and elapsed < BOUND, log.read_text()
    text = log.read_text()
    assert "exiting although still running" in text, text
    assert "task stubborn-watcher" in text and "thread" in text, text
