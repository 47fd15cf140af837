"""The call path never waits on IMAP: a hung or crawling server still gets callers a greeting and a beep."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import Stack, running
from tests.e2e.test_voicemail import messages
from tests.fixtures.dovecot import MailClient
from tests.fixtures.faulty_imap import HANG, PASS, SLOW, FaultyImap, behind
from tests.ops.calls import Step, call_params, new_call_sid, post

BOUND = 3.0  # generous: the gateway's budget is 1.5 s; Twilio itself waits 15 s


async def timed_voice(s: Stack, port: int, called: str) -> tuple[float, Step]:
    started = time.monotonic()
    step = await post(port, s.config, "/twilio/voice", call_params(s.config, new_call_sid(), called))
    return time.monotonic() - started, step


def test_hung_imap_callers_hear_the_spoken_greeting_and_the_message_lands_after_recovery(
    stack: Callable[..., Stack], faulty_imap: FaultyImap
) -> None:
    s = behind(stack({"201": {"max_messages": 5}}), faulty_imap)
    called = s.config.mailboxes["201"].numbers[0]

    async def scenario() -> str:
        async with running(s) as gateway:
            faulty_imap.mode = HANG
            elapsed, step = await timed_voice(s, gateway.port, called)
            assert step.status == 200 and elapsed < BOUND, (elapsed, step.body)
            say = step.find("Say").text or ""
            assert "User 201" in say or "201" in say, step.body  # the spoken default greeting
            assert step.find("Record").get("recordingStatusCallback")
            # The whole call, as Twilio makes it: every webhook answered in time, the job spooled.
            started = time.monotonic()
            trace = await s.call(gateway)
            assert time.monotonic() - started < 4 * BOUND
            assert trace.recording is not None
            sid = trace.recording.sid
            await asyncio.sleep(1)
            assert not s.job_file("done", sid).exists()  # IMAP is still hung: nothing delivered yet
            faulty_imap.mode = PASS
            assert await s.wait_job(sid, timeout=90) == "done"
            return sid

    asyncio.run(scenario())
    assert len(messages(s, "201")) == 1


def tone_wav(path: Path) -> Path:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
         "-ar", "8000", "-ac", "1", "-y", str(path)],
        check=True,
    )  # fmt: skip
    return path


def test_slow_imap_plays_the_cached_recorded_greeting(
    stack: Callable[..., Stack],
    faulty_imap: FaultyImap,
    mail_client: Callable[[str, str], MailClient],
    tmp_path: Path,
) -> None:
    from tests.mailstore.test_greetings import email_with_wav

    s = behind(stack({"201": {}}), faulty_imap)
    account = s.accounts["201"]
    client = mail_client(account.user, account.password)
    client.create_folder("Voicemail")
    client.create_folder("Voicemail/Greetings")
    client.append("Voicemail/Greetings", email_with_wav(tone_wav(tmp_path / "hello.wav")))
    called = s.config.mailboxes["201"].numbers[0]

    async def scenario() -> None:
        async with running(s) as gateway:
            elapsed, first = await timed_voice(s, gateway.port, called)
            assert elapsed < BOUND
            played = first.find("Play").text or ""
            assert "/media/" in played, first.body
            faulty_imap.delay, faulty_imap.mode = 4.0, SLOW  # each answer 4 s late: under the 5 s timeout
            for _ in range(2):  # the second call finds the first's late lookup still running
                elapsed, step = await timed_voice(s, gateway.port, called)
                assert step.status == 200 and elapsed < BOUND, (elapsed, step.body)
                url = step.find("Play").text or ""
                assert "/media/" in url and url != played, step.body  # signed afresh for this call
                assert step.find("Record") is not None
            faulty_imap.mode = PASS

    asyncio.run(scenario())


def test_silent_imap_server_from_the_start_still_takes_messages(
    stack: Callable[..., Stack], silent_imap: FaultyImap
) -> None:
    s = behind(stack({"201": {}}), silent_imap)
    called = s.config.mailboxes["201"].numbers[0]

    async def scenario() -> None:
        async with running(s) as gateway:
            for _ in range(3):  # each call within the bound, not only the first
                elapsed, step = await timed_voice(s, gateway.port, called)
                assert step.status == 200 and elapsed < BOUND, (elapsed, step.body)
                assert step.find("Record") is not None and step.find("Say").text
            trace = await s.call(gateway)
            assert trace.recording is not None
            assert (
                s.job_file("new", trace.recording.sid).exists()
                or s.job_file("cur", trace.recording.sid).exists()
            )

    asyncio.run(scenario())
