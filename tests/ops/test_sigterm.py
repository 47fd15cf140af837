"""SIGTERM stops ``vm2mail serve`` within seconds in every IMAP state; claimed jobs go back to new/."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.e2e.harness import Stack, free_port, twilio_up
from tests.fixtures.faulty_imap import HANG, PASS, FaultyImap
from tests.ops.test_reload import edit_yaml

BOUND = 8.0  # generous: the gateway gives itself 5 s (systemd's and docker's grace periods are longer)


def serve_stack(stack: Callable[..., Stack], proxy: FaultyImap) -> tuple[Stack, int]:
    port = free_port()
    s = stack({"201": {}}, server={"listen": f"127.0.0.1:{port}", "log_format": "json"})
    edit_yaml(s.config.source, lambda d: d["imap"].update(port=proxy.port, security="none"))
    return s, port


@contextmanager
def serving(s: Stack, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "vm2mail", "serve", "-c", str(s.config.source)],
            stdout=out,
            stderr=out,
            cwd=Path(__file__).resolve().parents[2],
        )
    try:
        _wait_healthy_or_degraded(port, process, log)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_healthy_or_degraded(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Listening is enough here: /healthz may rightly say 503 while IMAP hangs."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        if '"listening on' in log.read_text() or "listening on" in log.read_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"gateway not listening: {log.read_text()}")


async def stop(process: subprocess.Popen[bytes], log: Path) -> float:
    """SIGTERM; the seconds until the process exited (fails after BOUND, then kills it)."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    while process.poll() is None:
        if time.monotonic() - started > BOUND:
            process.kill()
            process.wait()
            raise AssertionError(f"still running {BOUND}s after SIGTERM:\n{log.read_text()[-4000:]}")
        await asyncio.sleep(0.05)
    assert process.returncode == 0, log.read_text()[-4000:]
    return time.monotonic() - started


async def until(what: str, check: Callable[[], bool], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}:\n{log.read_text()[-4000:]}"
        await asyncio.sleep(0.05)


def logged(log: Path, text: str) -> bool:
    return text in log.read_text()


def records(log: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def test_sigterm_while_imap_hangs_mid_delivery_requeues_the_job(
    stack: Callable[..., Stack], faulty_imap: FaultyImap, tmp_path: Path
) -> None:
    s, port = serve_stack(stack, faulty_imap)
    log = tmp_path / "serve.log"
    faulty_imap.mode = HANG

    async def scenario() -> None:
        with serving(s, port, log) as process:
            async with twilio_up(s):
                trace = await s.call(port)
                assert trace.recording is not None
                sid = trace.recording.sid
                # Claimed, audio fetched and encoded: the worker now waits on the hung IMAP server.
                await until("job claimed", lambda: s.job_file("cur", sid).exists(), log)
                await until("fetched", lambda: bool(s.fake.fetches), log)
                await asyncio.sleep(1.0)
                await stop(process, log)
            assert s.job_file("new", sid).exists(), sorted(p.name for p in s.spool.rglob("*.json"))
            assert not s.job_file("cur", sid).exists() and not s.job_file("done", sid).exists()
            assert s.job("new", sid)["attempts"] == 0  # given back, not counted as a failed attempt
            assert logged(log, "given back to the spool")

    asyncio.run(scenario())


def test_sigterm_while_the_watcher_reconnects(
    stack: Callable[..., Stack], faulty_imap: FaultyImap, tmp_path: Path
) -> None:
    s, port = serve_stack(stack, faulty_imap)
    log = tmp_path / "serve.log"

    async def scenario() -> None:
        with serving(s, port, log) as process:
            await until("watching", lambda: logged(log, "watching"), log)
            faulty_imap.stop()  # connection refused from now on: the watcher backs off and retries
            await until("reconnecting", lambda: logged(log, "reconnecting"), log)
            await stop(process, log)

    asyncio.run(scenario())


def test_sigterm_after_imap_was_away_and_came_back(
    stack: Callable[..., Stack], faulty_imap: FaultyImap, tmp_path: Path
) -> None:
    s, port = serve_stack(stack, faulty_imap)
    log = tmp_path / "serve.log"

    async def scenario() -> None:
        with serving(s, port, log) as process:
            await until("watching", lambda: logged(log, "watching"), log)
            faulty_imap.mode = HANG
            faulty_imap.cut()  # the server went away mid-IDLE ...
            await until("reconnecting", lambda: logged(log, "reconnecting"), log)
            faulty_imap.mode = PASS  # ... and came back
            await until(
                "watching again", lambda: sum("watching" in r["msg"] for r in records(log)) >= 2, log, 60
            )
            async with twilio_up(s):
                trace = await s.call(port)  # and the gateway works again
                assert trace.recording is not None
                await s.wait_job(trace.recording.sid)
            await stop(process, log)

    asyncio.run(scenario())


def test_sigterm_while_imap_hangs_from_the_start(
    stack: Callable[..., Stack], silent_imap: FaultyImap, tmp_path: Path
) -> None:
    s, port = serve_stack(stack, silent_imap)
    log = tmp_path / "serve.log"

    async def scenario() -> None:
        with serving(s, port, log) as process:
            await until("connecting", lambda: silent_imap.accepted > 0, log)
            await stop(process, log)

    asyncio.run(scenario())


def test_sigterm_after_dovecot_was_stopped_and_started_again(
    stack: Callable[..., Stack], faulty_imap: FaultyImap, tmp_path: Path
) -> None:
    s, port = serve_stack(stack, faulty_imap)
    log = tmp_path / "serve.log"

    async def scenario() -> None:
        with serving(s, port, log) as process:
            await until("watching", lambda: logged(log, "watching"), log)
            async with twilio_up(s):
                await asyncio.to_thread(s.dovecot.stop)
                try:
                    trace = await s.call(port)  # taken while the server is away
                    assert trace.recording is not None
                    await until("reconnecting", lambda: logged(log, "reconnecting"), log)
                    await asyncio.sleep(2)
                finally:
                    await asyncio.to_thread(s.dovecot.start)
                await until(
                    "watching again", lambda: sum("watching" in r["msg"] for r in records(log)) >= 2, log, 60
                )
                assert await s.wait_job(trace.recording.sid, timeout=90) == "done"
            await stop(process, log)

    asyncio.run(scenario())
