"""Quiet hours and the reminder schedule, on the wall clock of the mailbox's time zone."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from vm2mail.config.model import NotifyConfig
from vm2mail.mailstore.voicemails import NOTIFIED, Entry
from vm2mail.notify.policy import NOTIFY, REMINDER, Plan, decide, quiet_until

BERLIN = ZoneInfo("Europe/Berlin")
NIGHT = (time(22, 0), time(7, 0))


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


def test_quiet_hours_across_midnight_and_a_dst_change() -> None:
    assert quiet_until(local(2026, 11, 23, 21, 59), NIGHT, BERLIN) is None
    assert quiet_until(local(2026, 11, 23, 22, 0), NIGHT, BERLIN) == local(2026, 11, 24, 7, 0)
    assert quiet_until(local(2026, 11, 24, 6, 59), NIGHT, BERLIN) == local(2026, 11, 24, 7, 0)
    assert quiet_until(local(2026, 11, 24, 7, 0), NIGHT, BERLIN) is None
    lunch = (time(12, 0), time(13, 30))
    assert quiet_until(local(2026, 11, 24, 12, 15), lunch, BERLIN) == local(2026, 11, 24, 13, 30)
    assert quiet_until(local(2026, 11, 24, 23, 0), lunch, BERLIN) is None
    # Summer time ends on 25 Oct 2026: the night is an hour longer, the end still 07:00 local.
    end = quiet_until(datetime(2026, 10, 24, 21, 0, tzinfo=UTC), NIGHT, BERLIN)
    assert end is not None and end.astimezone(UTC) == datetime(2026, 10, 25, 6, 0, tzinfo=UTC)


def entry(date: datetime, flags: frozenset[str] = frozenset()) -> Entry:
    return Entry(
        uid=1,
        flags=flags,
        message_id="<x@y>",
        kind="voicemail",
        caller="+4930123456",
        caller_name=None,
        called=None,
        mailbox="201",
        call_id=None,
        date=date,
        duration=10,
        encrypted=False,
        size=100,
    )


def test_reminder_schedule() -> None:
    settings = NotifyConfig(sms=("+15550009001",), reminder_minutes=60, reminder_max=3, quiet_hours=NIGHT)
    plan = Plan(sms=settings.sms, email=(), settings=settings, tz=BERLIN, language="en-US")
    left = local(2026, 11, 23, 20, 0)
    first = decide(entry(left), plan, left + timedelta(minutes=1))
    assert first is not None and (first.kind, first.flags) == (NOTIFY, (NOTIFIED,))
    notified = entry(left, frozenset({NOTIFIED}))
    assert decide(notified, plan, left + timedelta(minutes=59)) is None
    one = decide(notified, plan, left + timedelta(minutes=61))
    assert one is not None and (one.kind, one.number) == (REMINDER, 1)
    # Quiet from 22:00: the reminders due at 22:00 and 23:00 wait, then collapse into one at 07:00.
    reminded = replace(notified, flags=frozenset({NOTIFIED, "$Vm2mailReminded1"}))
    assert decide(reminded, plan, left + timedelta(hours=3)) is None
    late = decide(reminded, plan, local(2026, 11, 24, 7, 0))
    assert late is not None and late.number == 3
    assert late.flags == ("$Vm2mailReminded2", "$Vm2mailReminded3")
    done = replace(reminded, flags=reminded.flags | set(late.flags))
    assert decide(done, plan, local(2026, 11, 25, 12, 0)) is None
    assert (
        decide(replace(notified, flags=frozenset({NOTIFIED, "\\Seen"})), plan, left + timedelta(hours=1))
        is None
    )
