"""Gateway down: the fallback TwiML records at Twilio, then `vm2mail reconcile` delivers it exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.cli.conftest import acli
from tests.e2e.harness import Stack, parse, sample, twilio_up
from tests.e2e.test_voicemail import messages
from vm2mail.devstack.simulator import play_fallback


def test_fallback_recording_reaches_the_dialled_mailbox_exactly_once(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"forward_to": "+15550008201"}, "202": {}})
    config = str(s.config.source)
    number = s.config.mailboxes["202"].numbers[0]

    async def scenario() -> str:
        async with twilio_up(s) as fake:
            printed = await acli("fallback-twiml", "-c", config, "--number", number)
            assert printed.returncode == 0, printed.stderr
            twiml = printed.stdout
            assert "<Record" in twiml and "recordingStatusCallback" not in twiml and "<Dial" not in twiml
            # No gateway runs: Twilio answers the call from the fallback URL (a TwiML Bin) alone.
            call = play_fallback(fake, twiml, to=number, caller="+4930123456", wav=sample())
            assert call.said == [
                "User 202 is not available. Please leave a message after the tone. "
                "Press the pound key or hang up when you are done."
            ]
            assert call.recording is not None and call.hung_up
            # The gateway is back: reconcile finds the recording and delivers it, twice changes nothing.
            first = await acli("reconcile", "-c", config, "--since", "1h")
            assert first.returncode == 0, first.stderr
            assert "delivered 1" in first.stdout
            second = await acli("reconcile", "-c", config, "--since", "1h")
            assert second.returncode == 0 and "nothing to do" in second.stdout
            assert call.recording.sid in fake.deleted
            return call.recording.sid

    sid = asyncio.run(scenario())
    [message] = [parse(m.raw) for m in messages(s, "202")]
    assert message["Message-ID"] == f"<{sid}@{s.config.server.mail_domain}>"
    assert message["X-Vm2mail-Called"] == number and message["X-Vm2mail-Caller"] == "+4930123456"
    assert messages(s, "201") == []


def test_fallback_twiml_for_an_unknown_number(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {}})

    async def scenario() -> None:
        result = await acli("fallback-twiml", "-c", str(s.config.source), "--number", "+15559999999")
        assert result.returncode == 1 and "+15559999999 is not a number of any mailbox" in result.stderr
        assert result.stdout == ""

    asyncio.run(scenario())
