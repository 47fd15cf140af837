"""Twilio REST calls and the SMTP relay give up on a silent peer after their configured deadline."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.fixtures.config import ACCOUNT_SID, AUTH_TOKEN
from tests.fixtures.faulty_imap import FaultyImap
from vm2mail.config.model import SmtpRelayConfig, TwilioConfig
from vm2mail.errors import TelephonyError
from vm2mail.notify.mail import NotifyError, send_mail
from vm2mail.twilioapi.rest import TwilioRest

BOUND = 10.0  # generous for a 1 s deadline on a loaded machine


def test_rest_calls_to_a_silent_twilio_fail_temporarily_at_the_deadline(silent_imap: FaultyImap) -> None:
    """``silent_imap`` is any TCP peer that accepts and never answers: here, a hung Twilio API."""
    rest = TwilioRest(
        TwilioConfig(
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            api_base_url=f"http://127.0.0.1:{silent_imap.port}",
            timeout_seconds=1.0,
        )
    )

    async def scenario() -> None:
        for attempt in (
            rest.delete_recording("RE" + "1" * 32),
            rest.send_sms("+15550001000", "+15550002000", "hello"),
            rest.call_taken("CA" + "2" * 32),
        ):
            started = time.monotonic()
            with pytest.raises(TelephonyError) as caught:
                await attempt
            assert caught.value.temporary, caught.value  # the job or notice is retried later
            assert time.monotonic() - started < BOUND

    asyncio.run(scenario())


def test_a_silent_smtp_relay_fails_temporarily_at_the_deadline(silent_imap: FaultyImap) -> None:
    relay = SmtpRelayConfig(
        host="127.0.0.1",
        port=silent_imap.port,
        security="none",
        sender="voicemail@vm.example.com",
        timeout_seconds=1.0,
    )
    started = time.monotonic()
    with pytest.raises(NotifyError) as caught:
        asyncio.run(send_mail(relay, "anna@example.com", "New voicemail", "body", what="test"))
    assert caught.value.temporary and "timed out" in str(caught.value)
    assert time.monotonic() - started < BOUND
