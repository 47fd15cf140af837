"""Notification fixtures: a stack with an SMTP relay (the sink) and an SMS sender, voicemails, a clock."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.conftest import stack  # noqa: F401  (re-exported fixture)
from tests.e2e.harness import Stack, twilio_up
from tests.fixtures.dovecot import MailClient
from tests.fixtures.smtp import SmtpSink
from vm2mail.mailstore.store import ImapStore
from vm2mail.notify import Notifier
from vm2mail.twilioapi.rest import TwilioRest

SMS_FROM = "+15550001000"
ANNA_PHONE = "+15550009001"
ANNA_MAIL = "anna.mobile@example.org"


@dataclass
class Clock:
    """An injectable clock: tests move it instead of sleeping for hours."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


SPEED = 30.0  # clock seconds per real second: two minutes between reminders pass in four seconds


class FastClock:
    """A clock running ``speed`` times faster than real time from ``start`` (``speed=1.0``: wall time)."""

    def __init__(self, start: datetime, speed: float = SPEED) -> None:
        self.start = start
        self.speed = speed
        self.t0 = time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self.t0) * self.speed)


@pytest.fixture
def notify_stack(stack: Callable[..., Stack], smtp_sink: SmtpSink) -> Callable[..., Stack]:  # noqa: F811
    """``notify_stack(boxes, relay=sink section, **overrides)``: twilio.sms_from set, relay → the sink."""

    def factory(
        boxes: dict[str, dict[str, Any]] | None = None, relay: dict[str, Any] | None = None, **overrides: Any
    ) -> Stack:
        boxes = boxes or {"201": {"notify": {"sms": [ANNA_PHONE], "email": [ANNA_MAIL]}}}
        built = stack(boxes=boxes, smtp_relay=relay or smtp_sink.relay_config("none"), **overrides)
        built.config = replace(built.config, twilio=replace(built.config.twilio, sms_from=SMS_FROM))
        return built

    return factory


def voicemail(
    *,
    message_id: str,
    date: datetime,
    mailbox: str = "201",
    caller: str = "+4930123456",
    caller_name: str | None = "Jürgen Müller",
    duration: int = 83,
    kind: str = "voicemail",
) -> bytes:
    """A voicemail e-mail with the gateway's X-Vm2mail-* headers (what the notifier reads), no audio."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "Voicemail <voicemail@vm.example.com>"
    msg["To"] = "user@example.com"
    msg["Subject"] = "Voicemail"
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    msg["X-Vm2mail-Kind"] = kind
    msg["X-Vm2mail-Caller"] = caller
    if caller_name:
        msg["X-Vm2mail-Caller-Name"] = caller_name
    msg["X-Vm2mail-Duration"] = str(duration)
    msg["X-Vm2mail-Mailbox"] = mailbox
    msg.set_content("A voicemail.")
    return msg.as_bytes()


def client(s: Stack, box: str = "201") -> MailClient:
    account = s.accounts[box]
    return MailClient(s.dovecot, account.user, account.password)


def drop(s: Stack, box: str, raw: bytes, date: datetime) -> int:
    """APPEND a voicemail into the box's folder as the gateway would (unseen); its UID."""
    mail = client(s, box)
    with mail.session() as imap:  # the notifier may create the folder at the same moment: both fine
        imap.create("Voicemail")
    return mail.append("Voicemail", raw, date=date)


def flags(s: Stack, box: str, uid: int) -> frozenset[str]:
    [msg] = [m for m in client(s, box).messages("Voicemail") if m.uid == uid]
    return msg.flags


@contextlib.asynccontextmanager
async def notifier_up(s: Stack, clock: Clock, *, count: int = 1) -> AsyncIterator[list[Notifier]]:
    """The Twilio stand-in and ``count`` independent notifiers (own IMAP stores), like separate gateways."""
    async with twilio_up(s):
        stores = [ImapStore(s.config.imap) for _ in range(count)]
        notifiers = [
            Notifier(lambda: s.config, st, TwilioRest(s.config.twilio), clock=clock) for st in stores
        ]
        try:
            yield notifiers
        finally:
            for n in notifiers:
                await n.close()
            for st in stores:
                await st.close()


def at(hour: int, minute: int = 0, day: int = 23) -> datetime:
    """A November 2026 instant given in Berlin local time (UTC+1), as UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC)
