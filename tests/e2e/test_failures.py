"""What goes wrong is retried or parked in failed/ with a reason an admin can act on; nothing is dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

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


def test_the_callbacks_recording_url_is_never_fetched(stack: Callable[..., Stack]) -> None:
    """The media comes from api_base_url by RecordingSid; a foreign or odd RecordingUrl is not contacted."""
    s = stack({"201": {}})
    hits: list[str] = []

    async def elsewhere(request: web.Request) -> web.Response:
        hits.append(request.path_qs)
        return web.Response(body=sample(), content_type="audio/wav")

    async def scenario() -> list[str]:
        app = web.Application()
        app.router.add_get("/{tail:.*}", elsewhere)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.2", 0).start()
        host, port = runner.addresses[0][:2]
        sids = []
        try:
            async with running(s) as gateway:
                account = s.config.twilio.account_sid
                for odd in (
                    f"http://{host}:{port}/2010-04-01/Accounts/{account}/Recordings/{{sid}}",
                    # Same host as the API to one parser, another to the next (the classic SSRF trick).
                    f"{s.config.twilio.api_base_url}@{host}:{port}/x/Recordings/{{sid}}",
                    f"http://{host}:{port}\\@127.0.0.1:{s.fake_port}/Recordings/{{sid}}",
                ):
                    recording = s.fake.add_recording(sample(), call_sid="CA" + "ab" * 16)
                    status = await post_recording_callback(
                        s,
                        gateway.port,
                        mailbox="201",
                        recording_sid=recording.sid,
                        recording_url=odd.format(sid=recording.sid),
                    )
                    assert status == 204
                    sids.append(recording.sid)
                for sid in sids:
                    assert await s.wait_job(sid) == "done"
        finally:
            await runner.cleanup()
        return sids

    sids = asyncio.run(scenario())
    assert hits == []
    assert sorted(f.sid for f in s.fake.fetches) == sorted(sids)
    account = s.config.twilio.account_sid
    for sid in sids:  # what the job keeps is the URL it fetches from, not the callback's
        assert (
            s.job("done", sid)["recording_url"]
            == f"{s.fake.base_url}/2010-04-01/Accounts/{account}/Recordings/{sid}"
        )
    assert len(messages(s, "201")) == 3


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
