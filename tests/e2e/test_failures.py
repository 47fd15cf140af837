"""What goes wrong is retried or parked in failed/ with a reason an admin can act on; nothing is dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.e2e.harness import Stack, parse, post_recording_callback, running, sample
from tests.e2e.test_voicemail import messages


def test_imap_outage_waits_and_lands_once_when_server_returns(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {}})

    async def scenario() -> None:
        async with running(s) as gateway:
            s.dovecot.stop()
            try:
                trace = await s.call(gateway)
                assert trace.recording is not None
                sid = trace.recording.sid
                for _ in range(200):  # the first attempt fails and is rescheduled
                    if s.job_file("new", sid).exists() and s.job("new", sid)["attempts"] >= 1:
                        break
                    await asyncio.sleep(0.05)
                assert s.job("new", sid)["attempts"] >= 1
                assert (
                    "IMAP" in s.job("new", sid)["history"][-1] or "imap" in s.job("new", sid)["history"][-1]
                )
            finally:
                s.dovecot.start()
            assert await s.wait_job(sid, timeout=60) == "done"

    asyncio.run(scenario())
    assert len(messages(s, "201")) == 1


def test_foreign_recording_host_is_refused(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {}})
    sid = "RE" + "f0" * 16

    async def scenario() -> None:
        async with running(s) as gateway:
            evil = f"http://127.0.0.2:{s.fake_port}/2010-04-01/Accounts/{s.config.twilio.account_sid}/Recordings/{sid}"
            assert (
                await post_recording_callback(
                    s, gateway.port, mailbox="201", recording_sid=sid, recording_url=evil
                )
                == 204
            )
            assert await s.wait_job(sid) == "failed"

    asyncio.run(scenario())
    reason = s.job("failed", sid)["history"][-1]
    assert "not the configured Twilio API host" in reason
    assert s.fake.fetches == []


def test_missing_media_and_corrupt_audio_go_to_failed(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {}})
    gone = "RE" + "0d" * 16

    async def scenario() -> str:
        async with running(s) as gateway:
            url = f"{s.fake.base_url}/2010-04-01/Accounts/{s.config.twilio.account_sid}/Recordings/{gone}"
            assert (
                await post_recording_callback(
                    s, gateway.port, mailbox="201", recording_sid=gone, recording_url=url
                )
                == 204
            )
            trace = await s.call(gateway, wav=b"RIFF\x24\x00\x00\x00WAVEfmt garbage" + sample()[100:400])
            assert trace.recording is not None
            assert await s.wait_job(gone) == "failed"
            assert await s.wait_job(trace.recording.sid) == "failed"
            return trace.recording.sid

    corrupt = asyncio.run(scenario())
    assert "404" in s.job("failed", gone)["history"][-1]
    assert s.job("failed", corrupt)["history"][-1]  # the decoder's reason is kept
    assert messages(s, "201") == []
    assert corrupt not in s.fake.deleted  # a failed job keeps the recording at Twilio for a retry


def test_key_missing_from_keyring_waits_in_spool_and_alerts_admin(stack: Callable[..., Stack]) -> None:
    """An unusable key is the admin's to fix: the voicemail waits in new/ (retried), nothing is delivered."""
    missing = "AAAABBBBCCCCDDDDEEEEFFFF0000111122223333"
    s = stack({"201": {"gpg_recipients": [missing]}})
    alerts: list[tuple[str, str]] = []

    async def alert(subject: str, text: str) -> None:
        alerts.append((subject, text))

    async def scenario() -> str:
        async with running(s) as gateway:
            gateway.pipeline.alert_admin = alert
            trace = await s.call(gateway)
            assert trace.recording is not None
            sid = trace.recording.sid
            for _ in range(200):  # the first attempt fails and is rescheduled, not parked in failed/
                if s.job_file("new", sid).exists() and s.job("new", sid)["attempts"] >= 1:
                    break
                await asyncio.sleep(0.05)
            return sid

    sid = asyncio.run(scenario())
    assert not s.job_file("failed", sid).exists()
    job = s.job("new", sid)
    assert job["attempts"] >= 1
    assert missing in job["history"][-1] and "not in keyring" in job["history"][-1]
    assert messages(s, "201") == []
    assert len(alerts) == 1 and "201" in alerts[0][0] and missing in alerts[0][1]


def test_allow_plain_mailbox_gets_unencrypted_voicemail_with_warning(stack: Callable[..., Stack]) -> None:
    missing = "AAAABBBBCCCCDDDDEEEEFFFF0000111122223333"
    s = stack({"201": {"gpg_recipients": [missing], "allow_plain": True}})

    async def scenario() -> str:
        async with running(s) as gateway:
            trace = await s.call(gateway)
            assert trace.recording is not None
            assert await s.wait_job(trace.recording.sid) == "done"
            return trace.recording.sid

    asyncio.run(scenario())
    [fetched] = messages(s, "201")
    message = parse(fetched.raw)
    assert message.get_content_type() == "multipart/mixed"  # readable, not multipart/encrypted
    assert "unencrypted" in message["X-Vm2mail-Warning"] and missing in message["X-Vm2mail-Warning"]
