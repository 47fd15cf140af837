"""Notifications and reminders from folder state in a real Dovecot, to the Twilio stand-in and a sink."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from tests.e2e.harness import Stack
from tests.fixtures.smtp import SmtpSink
from tests.notify.conftest import (
    ANNA_MAIL,
    ANNA_PHONE,
    SMS_FROM,
    Clock,
    at,
    client,
    drop,
    flags,
    notifier_up,
    voicemail,
)
from vm2mail.mailstore.voicemails import NOTIFIED


def test_notification_once_even_with_two_notifiers_racing(
    notify_stack: Callable[..., Stack], smtp_sink: SmtpSink
) -> None:
    s = notify_stack()
    clock = Clock(at(10, 20))
    uid = drop(s, "201", voicemail(message_id="<race-1@vm.example.com>", date=at(10, 15)), at(10, 15))

    async def scenario() -> None:
        async with notifier_up(s, clock, count=2) as (first, second):
            # Two gateways scan the same folder at the same time, then again: one notice in total.
            await asyncio.gather(first.scan(), second.scan())
            await asyncio.gather(first.scan(), second.scan())

    asyncio.run(scenario())
    [sms] = s.fake.messages
    assert (sms["From"], sms["To"]) == (SMS_FROM, ANNA_PHONE)
    assert "Jürgen Müller (+49 30 123456)" in sms["Body"]
    assert "2026-11-23 10:15 CET" in sms["Body"] and "1:23" in sms["Body"]
    [mail] = smtp_sink.messages
    assert mail.rcpt_tos == (ANNA_MAIL,)
    assert mail.message["From"] == "voicemail@vm.example.com"
    assert "Jürgen Müller" in mail.message["Subject"]
    body = mail.message.get_content()
    assert "+49 30 123456" in body and "10:15" in body and "1:23" in body
    assert not any(part.get_content_maintype() == "audio" for part in mail.message.walk())
    assert NOTIFIED in flags(s, "201", uid)


def test_quiet_hours_defer_until_they_end(notify_stack: Callable[..., Stack], smtp_sink: SmtpSink) -> None:
    s = notify_stack(
        {"201": {"notify": {"sms": [ANNA_PHONE], "email": [ANNA_MAIL], "quiet_hours": "22:00-07:00"}}}
    )
    clock = Clock(at(23, 30))
    drop(s, "201", voicemail(message_id="<night-1@vm.example.com>", date=at(23, 10)), at(23, 10))

    async def scenario() -> tuple[int, int]:
        async with notifier_up(s, clock) as [notifier]:
            next_at = await notifier.scan()
            assert next_at == at(7, 0, day=24)  # the loop wakes when the quiet hours end
            clock.advance(hours=7)  # 06:30: still quiet
            await notifier.scan()
            during = len(s.fake.messages) + len(smtp_sink.messages)
            clock.advance(minutes=31)  # 07:01
            await notifier.scan()
            await notifier.scan()
            return during, len(s.fake.messages)

    during, after = asyncio.run(scenario())
    assert during == 0
    assert after == 1
    assert len(smtp_sink.messages) == 1


def test_reminders_until_max_and_stop_when_heard_elsewhere(
    notify_stack: Callable[..., Stack], smtp_sink: SmtpSink
) -> None:
    settings = {"sms": [ANNA_PHONE], "reminder_minutes": 30, "reminder_max": 2}
    s = notify_stack({"201": {"notify": settings}})
    clock = Clock(at(9, 1))
    first = drop(s, "201", voicemail(message_id="<rem-1@vm.example.com>", date=at(9, 0)), at(9, 0))
    second = drop(s, "201", voicemail(message_id="<rem-2@vm.example.com>", date=at(9, 0)), at(9, 0))

    def bodies() -> list[str]:
        return [m["Body"] for m in s.fake.messages]

    async def scenario() -> None:
        async with notifier_up(s, clock) as [notifier]:
            await notifier.scan()
            assert len(bodies()) == 2 and all(b.startswith("New voicemail") for b in bodies())
            clock.advance(minutes=20)  # 09:21: no reminder yet
            await notifier.scan()
            assert len(bodies()) == 2
            clock.advance(minutes=10)  # 09:31: first reminder for both
            await notifier.scan()
            await notifier.scan()
            assert [b.startswith("Reminder") for b in bodies()] == [False, False, True, True]
            # The user listens to the first one in another mail client: its reminders stop.
            client(s).set_flags("Voicemail", first, "\\Seen")
            clock.advance(minutes=30)  # 10:01: second reminder, only for the unheard one
            await notifier.scan()
            clock.advance(hours=5)  # reminder_max is 2: nothing more, ever
            await notifier.scan()

    asyncio.run(scenario())
    assert len(bodies()) == 5
    assert bodies()[4].startswith("Reminder")
    assert "$Vm2mailReminded2" in flags(s, "201", second)
    assert "$Vm2mailReminded2" not in flags(s, "201", first)
    assert smtp_sink.messages == []  # no e-mail recipient configured


def test_late_notification_absorbs_due_reminders_and_old_mail_is_left_alone(
    notify_stack: Callable[..., Stack],
) -> None:
    settings = {"sms": [ANNA_PHONE], "reminder_minutes": 10, "reminder_max": 3}
    s = notify_stack({"201": {"notify": settings}})
    clock = Clock(at(12, 0))
    # Turned on today: yesterday's voicemail gets nothing; one from 40 minutes ago gets one SMS.
    drop(s, "201", voicemail(message_id="<old@vm.example.com>", date=at(11, 0, day=22)), at(11, 0, day=22))
    recent = drop(s, "201", voicemail(message_id="<recent@vm.example.com>", date=at(11, 20)), at(11, 20))
    missed = voicemail(message_id="<missed@vm.example.com>", date=at(11, 59), kind="missed-call")
    drop(s, "201", missed, at(11, 59))

    async def scenario() -> None:
        async with notifier_up(s, clock) as [notifier]:
            await notifier.scan()
            await notifier.scan()

    asyncio.run(scenario())
    [sms] = s.fake.messages
    assert sms["Body"].startswith("New voicemail")
    assert {"$Vm2mailReminded1", "$Vm2mailReminded2", "$Vm2mailReminded3"} <= flags(s, "201", recent)


def test_permanent_sms_refusal_is_not_retried_temporary_mail_failure_is(
    notify_stack: Callable[..., Stack], smtp_sink: SmtpSink
) -> None:
    bad_phone, mail = "+15550009666", "flaky@example.org"
    s = notify_stack({"201": {"notify": {"sms": [bad_phone], "email": [mail]}}})
    clock = Clock(at(10, 5))
    uid = drop(s, "201", voicemail(message_id="<fail-1@vm.example.com>", date=at(10, 0)), at(10, 0))
    smtp_sink.refuse[mail] = "451 4.3.0 Try again later"

    async def scenario() -> None:
        async with notifier_up(s, clock) as [notifier]:
            s.fake.refuse_number(bad_phone, 21211)
            await notifier.scan()  # SMS refused for good, e-mail deferred: nothing sent, so released
            assert NOTIFIED not in flags(s, "201", uid)
            del smtp_sink.refuse[mail]
            await notifier.scan()  # the e-mail goes out; the SMS is tried again with it and refused
            await notifier.scan()
            await notifier.scan()

    asyncio.run(scenario())
    assert len(smtp_sink.to(mail)) == 1
    assert s.fake.messages == []
    assert len(s.fake.refused_messages) == 2  # once per attempt of the notice, never after it was sent
    assert NOTIFIED in flags(s, "201", uid)


def test_permanent_sms_refusal_alone_keeps_the_claim(notify_stack: Callable[..., Stack]) -> None:
    bad_phone = "+15550009667"
    s = notify_stack({"201": {"notify": {"sms": [bad_phone]}}})
    clock = Clock(at(10, 5))
    uid = drop(s, "201", voicemail(message_id="<fail-2@vm.example.com>", date=at(10, 0)), at(10, 0))

    async def scenario() -> None:
        async with notifier_up(s, clock) as [notifier]:
            s.fake.refuse_number(bad_phone, 21211)
            for _ in range(3):
                await notifier.scan()

    asyncio.run(scenario())
    assert len(s.fake.refused_messages) == 1
    assert NOTIFIED in flags(s, "201", uid)


def test_periodic_scan_finds_voicemails_no_one_nudged_about(notify_stack: Callable[..., Stack]) -> None:
    # Left through another gateway instance (or the SMTP path of one that crashed): no nudge here.
    s = notify_stack(watcher={"reminder_check_seconds": 1})
    clock = Clock(at(10, 5))

    async def scenario() -> None:
        async with notifier_up(s, clock) as [notifier]:
            loop = asyncio.create_task(notifier.run())
            try:
                await asyncio.sleep(0)
                raw = voicemail(message_id="<periodic@vm.example.com>", date=at(10, 0))
                await asyncio.to_thread(drop, s, "201", raw, at(10, 0))
                for _ in range(600):
                    if s.fake.messages:
                        break
                    await asyncio.sleep(0.05)
            finally:
                loop.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop

    asyncio.run(scenario())
    assert [m["To"] for m in s.fake.messages] == [ANNA_PHONE]
