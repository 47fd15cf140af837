"""A voicemail left through the real gateway notifies once, and a restarted gateway does not repeat it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

from tests.e2e.harness import Stack, running
from tests.fixtures.smtp import SmtpSink
from tests.notify.conftest import ANNA_MAIL, ANNA_PHONE, SMS_FROM, client, flags
from vm2mail.mailstore.voicemails import NOTIFIED


async def until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.05)


def test_call_notifies_by_sms_and_mail_exactly_once_across_restart(
    notify_stack: Callable[..., Stack], smtp_sink: SmtpSink
) -> None:
    s = notify_stack(
        {"201": {"encrypted": True, "notify": {"sms": [ANNA_PHONE], "email": [ANNA_MAIL]}}},
        admin={"email": "ops@example.org"},
    )
    started = datetime.now(UTC).replace(microsecond=0)

    async def scenario() -> None:
        async with running(s) as gateway:
            assert gateway.notifier is not None
            trace = await s.call(
                gateway, caller="+4930123456", caller_name="Jürgen Müller", recording_start=started
            )
            assert trace.recording is not None
            assert await s.wait_job(trace.recording.sid) == "done"
            # The delivery nudges the notifier: both notices arrive without waiting for a periodic scan.
            await until(lambda: bool(s.fake.messages) and bool(smtp_sink.messages))
            await gateway.notifier.scan()
        async with running(s) as gateway:  # a restarted gateway scans the folder again
            assert gateway.notifier is not None
            await gateway.notifier.scan()
            await gateway.notifier.scan()

    asyncio.run(scenario())
    [sms] = s.fake.messages
    assert (sms["From"], sms["To"]) == (SMS_FROM, ANNA_PHONE)
    local = started.astimezone(s.config.mailboxes["201"].tz)
    assert "Jürgen Müller (+49 30 123456)" in sms["Body"]
    assert local.strftime("%Y-%m-%d %H:%M") in sms["Body"]
    assert " 0:1" in sms["Body"]  # the sample is about 11 s long: "0:11 min"
    [mail] = smtp_sink.messages
    assert mail.rcpt_tos == (ANNA_MAIL,)
    assert "Jürgen Müller" in mail.message["Subject"]
    assert mail.message.get_content_type() == "text/plain"  # a short notice, never the audio
    [uid] = [m.uid for m in client(s).messages("Voicemail")]
    assert NOTIFIED in flags(s, "201", uid)
