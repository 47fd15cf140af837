"""Notices that fall due while IMAP is down go out as soon as it is back, not a scan period later."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from tests.e2e.harness import Stack
from tests.notify.conftest import ANNA_PHONE, FastClock, at, client, drop, flags, notifier_up, voicemail
from vm2mail.mailstore.voicemails import NOTIFIED

PERIOD = 600  # reminder_check_seconds: a notice sent within the test cannot come from the periodic scan


async def until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return predicate()


def test_reminder_due_during_an_imap_outage_goes_out_right_after_it(
    notify_stack: Callable[..., Stack],
) -> None:
    settings = {"sms": [ANNA_PHONE], "reminder_minutes": 30, "reminder_max": 2}
    s = notify_stack({"201": {"notify": settings}}, watcher={"reminder_check_seconds": PERIOD})
    uid = drop(s, "201", voicemail(message_id="<outage-1@vm.example.com>", date=at(9, 0)), at(9, 0))
    client(s).set_flags("Voicemail", uid, NOTIFIED)  # notified at 09:00; the first reminder is due 09:30
    clock = FastClock(at(9, 29) + timedelta(seconds=50), speed=1.0)

    async def scenario() -> tuple[int, list[str]]:
        async with notifier_up(s, clock) as [notifier]:
            loop = asyncio.create_task(notifier.run())
            try:
                await asyncio.sleep(1.0)  # the first scan found the reminder due at 09:30, 10 s away
                await asyncio.to_thread(s.dovecot.stop)
                try:
                    assert clock() < at(9, 30), "the server went away too late for this scenario"
                    # 09:30 passes (plus the wake-up jitter) with the server away: nothing can be sent.
                    await until(lambda: clock() > at(9, 30) + timedelta(seconds=4), 30)
                    during = len(s.fake.messages)
                finally:
                    await asyncio.to_thread(s.dovecot.start)
                await until(lambda: bool(s.fake.messages), 60)  # far less than PERIOD
                return during, [m["Body"] for m in s.fake.messages]
            finally:
                loop.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop

    during, bodies = asyncio.run(scenario())
    assert during == 0
    assert len(bodies) == 1 and bodies[0].startswith("Reminder"), bodies
    assert "$Vm2mailReminded1" in flags(s, "201", uid)


def test_an_outage_longer_than_the_scan_period_is_probed_at_a_steady_pace(
    notify_stack: Callable[..., Stack], caplog: pytest.LogCaptureFixture
) -> None:
    s = notify_stack(watcher={"reminder_check_seconds": 1})
    clock = FastClock(at(10, 5), speed=1.0)

    async def scenario() -> tuple[int, list[str]]:
        async with notifier_up(s, clock) as [notifier]:
            await asyncio.to_thread(s.dovecot.stop)
            try:
                loop = asyncio.create_task(notifier.run())
                await asyncio.sleep(6.0)  # six scan periods with the server away
                probes = sum("probe for notifications failed" in r.getMessage() for r in caplog.records)
                raw = voicemail(message_id="<outage-2@vm.example.com>", date=at(10, 0))
            finally:
                await asyncio.to_thread(s.dovecot.start)
            try:
                await asyncio.to_thread(drop, s, "201", raw, at(10, 0))
                await until(lambda: bool(s.fake.messages), 60)
                return probes, [m["To"] for m in s.fake.messages]
            finally:
                loop.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop

    caplog.set_level(logging.DEBUG, "vm2mail.notify.notifier")
    probes, sent = asyncio.run(scenario())
    # One probe every RETRY_SECONDS (2 s), not a loop hammering the server: a few in six seconds.
    assert 1 <= probes <= 6, probes
    assert sent == [ANNA_PHONE]
