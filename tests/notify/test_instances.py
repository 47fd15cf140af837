"""Two whole gateways on one Dovecot: the end of quiet hours and every reminder are notified once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path

from tests.e2e.harness import Stack, twilio_up
from tests.e2e.test_scale_out import second_instance
from tests.fixtures.smtp import SmtpSink
from tests.notify.conftest import ANNA_MAIL, ANNA_PHONE, FastClock, at, drop, flags, voicemail
from vm2mail.app import Gateway
from vm2mail.config import Config
from vm2mail.mailstore.voicemails import NOTIFIED


@contextlib.asynccontextmanager
async def gateways(configs: list[Config], clock: FastClock) -> AsyncIterator[list[Gateway]]:
    """The gateways with workers, watcher and notifier running, the notifiers reading ``clock``."""
    async with contextlib.AsyncExitStack() as stack:
        started: list[Gateway] = []
        for config in configs:
            gateway = await Gateway.start(config, port=0)
            stack.push_async_callback(gateway.close)
            assert gateway.notifier is not None
            gateway.notifier.now = clock
            started.append(gateway)
        tasks = [asyncio.create_task(g.run_workers()) for g in started]
        try:
            yield started
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def until(clock: FastClock, moment: datetime, done: Callable[[], bool] = lambda: False) -> None:
    while clock() < moment and not done():
        await asyncio.sleep(0.05)


def test_two_gateways_notify_quiet_hours_end_and_reminders_once(
    notify_stack: Callable[..., Stack], smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    settings = {
        "sms": [ANNA_PHONE],
        "email": [ANNA_MAIL],
        "quiet_hours": "22:00-07:00",
        "reminder_minutes": 2,
        "reminder_max": 2,
    }
    # Both instances scan every second, so they find each notice due at about the same moment.
    s = notify_stack({"201": {"notify": settings}}, watcher={"reminder_check_seconds": 1})
    # Left in the night (its reminders are overdue at 07:00: one notice absorbs them), and one just
    # before the quiet hours end (told at 07:00, reminded at 07:01:30 and 07:03:30).
    night = drop(s, "201", voicemail(message_id="<night@vm.example.com>", date=at(3, 0)), at(3, 0))
    when = at(6, 59) + timedelta(seconds=30)
    early = drop(s, "201", voicemail(message_id="<early@vm.example.com>", date=when), when)
    clock = FastClock(at(6, 59))

    def sent() -> tuple[list[str], list[str]]:
        return [m["Body"] for m in s.fake.messages], [str(m.message["Subject"]) for m in smtp_sink.messages]

    async def scenario() -> dict[str, tuple[list[str], list[str]]]:
        seen: dict[str, tuple[list[str], list[str]]] = {}
        async with twilio_up(s), gateways([s.config, second_instance(s.config, tmp_path)], clock):
            await until(clock, at(6, 59) + timedelta(seconds=50))
            seen["quiet"] = sent()
            # Both notified, and 07:01:30 (the first reminder) not reached yet: what was sent up to here.
            await until(clock, at(7, 1) + timedelta(seconds=20), lambda: min(map(len, sent())) >= 2)
            seen["notified"] = sent()
            await until(clock, at(7, 5))  # every reminder is long due (and sent)
            seen["end"] = sent()
        return seen

    seen = asyncio.run(scenario())
    assert seen["quiet"] == ([], [])
    sms, mails = seen["notified"]
    assert sorted(b.split(" ")[0] for b in sms) == ["New"] * 2, sms
    assert len(mails) == 2, mails
    sms, mails = seen["end"]
    # Each notice once, by SMS and by e-mail, although both gateways found each one due.
    assert sorted(b.split(" ")[0] for b in sms) == ["New"] * 2 + ["Reminder:"] * 2, sms
    assert len(mails) == 4, mails
    assert len(smtp_sink.to(ANNA_MAIL)) == 4
    assert all(m["To"] == ANNA_PHONE for m in s.fake.messages)
    for uid in (night, early):
        assert {NOTIFIED, "$Vm2mailReminded1", "$Vm2mailReminded2"} <= flags(s, "201", uid)


def test_two_gateways_waking_at_the_same_due_time_send_once(
    notify_stack: Callable[..., Stack], smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    settings = {"sms": [ANNA_PHONE], "email": [ANNA_MAIL], "quiet_hours": "22:00-07:00"}
    # No periodic scan during the test: both instances wake for the end of the quiet hours only.
    s = notify_stack({"201": {"notify": settings}}, watcher={"reminder_check_seconds": 600})
    uid = drop(s, "201", voicemail(message_id="<dawn@vm.example.com>", date=at(6, 30)), at(6, 30))
    clock = FastClock(at(6, 59) + timedelta(seconds=57), speed=1.0)

    async def scenario() -> tuple[int, int]:
        async with twilio_up(s), gateways([s.config, second_instance(s.config, tmp_path)], clock):
            await until(clock, at(7, 0) + timedelta(seconds=30), lambda: bool(s.fake.messages))
            assert clock() > at(7, 0)
            await asyncio.sleep(4.0)  # both have woken (jitter is at most 2 s) and settled
            return len(s.fake.messages), len(smtp_sink.messages)

    assert asyncio.run(scenario()) == (1, 1)
    assert NOTIFIED in flags(s, "201", uid)
