"""A hung peer in the middle of a delivery costs one deadline; the job is retried, then lands once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace

from tests.e2e.harness import Stack, post_recording_callback, running
from tests.e2e.test_voicemail import messages
from tests.fixtures.faulty_imap import HANG, PASS, FaultyImap, behind

BOUND = 15.0  # generous for deadlines of 1-2 s on a loaded machine


async def first_retry(s: Stack, sid: str, since: float) -> str:
    """The job back in new/ after a failed attempt; the reason recorded for it."""
    while time.monotonic() - since < BOUND:
        if s.job_file("new", sid).exists() and s.job("new", sid)["attempts"] >= 1:
            reason: str = s.job("new", sid)["history"][-1]
            return reason
        await asyncio.sleep(0.05)
    raise AssertionError(f"no retry of {sid} within {BOUND}s")


def test_a_recording_download_that_stalls_is_retried_after_the_read_deadline(
    stack: Callable[..., Stack], silent_imap: FaultyImap
) -> None:
    s = stack({"201": {}})
    base = f"http://127.0.0.1:{silent_imap.port}"  # a Twilio media host that accepts and never answers
    s.config = replace(s.config, twilio=replace(s.config.twilio, api_base_url=base, timeout_seconds=1.0))
    sid = "RE" + "5a" * 16

    async def scenario() -> str:
        async with running(s) as gateway:
            url = f"{base}/2010-04-01/Accounts/{s.config.twilio.account_sid}/Recordings/{sid}"
            started = time.monotonic()
            status = await post_recording_callback(
                s, gateway.port, mailbox="201", recording_sid=sid, recording_url=url
            )
            assert status == 204
            return await first_retry(s, sid, started)

    reason = asyncio.run(scenario())
    assert "fetching" in reason and "retry" in reason, reason


def test_an_imap_server_that_hangs_mid_delivery_costs_one_command_timeout_then_a_retry(
    stack: Callable[..., Stack], faulty_imap: FaultyImap
) -> None:
    s = stack({"201": {}})
    behind(s, faulty_imap, timeout_seconds=2.0)

    async def scenario() -> None:
        async with running(s) as gateway:
            faulty_imap.mode = HANG
            started = time.monotonic()
            trace = await s.call(gateway)
            assert trace.recording is not None
            sid = trace.recording.sid
            reason = await first_retry(s, sid, started)
            assert "timed out" in reason, reason
            faulty_imap.mode = PASS
            assert await s.wait_job(sid, timeout=90) == "done"

    asyncio.run(scenario())
    assert len(messages(s, "201")) == 1
