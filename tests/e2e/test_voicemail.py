"""An unanswered call becomes one encrypted voicemail in the user's folder, as a mail client reads it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e.harness import Stack, audio_part, decrypt, ffprobe, parse, running, sample
from tests.fixtures.dovecot import MailClient


def messages(stack: Stack, box: str, folder: str = "Voicemail") -> list:  # type: ignore[type-arg]
    account = stack.accounts[box]
    client = MailClient(stack.dovecot, account.user, account.password)
    if folder not in client.list_folders():  # never delivered to: the gateway creates it on first APPEND
        return []
    return client.messages(folder)


def test_unanswered_call_lands_encrypted_with_tagged_mp3(stack: Callable[..., Stack], tmp_path: Path) -> None:
    s = stack({"201": {"encrypted": True, "name": "Anna Schmidt", "forward_to": "+15550009999"}})
    started = datetime(2026, 11, 23, 9, 15, 42, tzinfo=UTC)

    async def scenario() -> str:
        async with running(s) as gateway:
            trace = await s.call(
                gateway, caller="+4930123456", caller_name="Jürgen Müller 😀", recording_start=started
            )
            assert trace.recording is not None
            assert await s.wait_job(trace.recording.sid) == "done"
            return trace.recording.sid

    sid = asyncio.run(scenario())
    [msg] = messages(s, "201")
    assert "\\Seen" not in msg.flags
    assert abs(msg.internaldate - started) < timedelta(seconds=1)
    outer = parse(msg.raw)
    assert outer["Message-ID"] == f"<{sid}@vm.example.com>"
    assert outer["X-Vm2mail-Caller"] == "+4930123456"
    assert outer["X-Vm2mail-Called"] == s.config.mailboxes["201"].numbers[0]
    assert outer["X-Vm2mail-Mailbox"] == "201"
    assert outer["From"].addresses[0].display_name == "Jürgen Müller 😀"
    assert msg.raw.split(b"\r\n\r\n")[0].isascii()  # UTF-8 names travel RFC 2047-encoded
    assert outer["Date"].datetime == started

    inner = decrypt(outer, s.accounts["201"].key)  # type: ignore[arg-type]
    text = next(p for p in inner.walk() if p.get_content_type() == "text/plain").get_content()
    assert "+4930123456" in text and "10:15" in text  # Europe/Berlin is UTC+1 in November
    html = next(p for p in inner.walk() if p.get_content_type() == "text/html").get_content()
    assert 'href="tel:+4930123456"' in html
    probe = ffprobe(audio_part(inner), tmp_path)
    assert probe["streams"][0]["codec_name"] == "mp3"
    assert 9 < float(probe["format"]["duration"]) < 13  # the sample is about 11 s
    tags = {k.lower(): v for k, v in probe["format"]["tags"].items()}
    assert "Jürgen Müller 😀" in tags["artist"]
    assert tags["date"].startswith("2026-11-23")
    assert any(v == trace_sid for v in tags.values() for trace_sid in [outer["X-Vm2mail-Call-Id"]])
    assert sid in s.fake.deleted  # delete_recordings: true


def test_plain_delivery_group_copies_and_utf8(stack: Callable[..., Stack]) -> None:
    s = stack(
        {
            "201": {},
            "202": {"encrypted": True, "language": "de-DE"},
            "300": {"name": "Vertrieb", "members": ["201", "202"]},
        }
    )
    group_number = s.config.mailboxes["300"].numbers[0]

    async def scenario() -> None:
        async with running(s) as gateway:
            trace = await s.call(gateway, to=group_number, caller_name="Zoë")
            assert trace.recording is not None
            assert await s.wait_job(trace.recording.sid) == "done"

    asyncio.run(scenario())
    [plain] = messages(s, "201")
    [encrypted] = messages(s, "202")
    assert parse(plain.raw).get_content_type() == "multipart/mixed"
    assert parse(plain.raw)["X-Vm2mail-Mailbox"] == "300"
    german = decrypt(parse(encrypted.raw), s.accounts["202"].key)  # type: ignore[arg-type]
    assert "Vertrieb" in str(german["Subject"]) or "Vertrieb" in german.as_string()


def test_repeated_callback_and_redelivery_land_once(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {}})

    async def scenario() -> None:
        async with running(s) as gateway:
            trace = await s.call(gateway, repeat_status_callback=2)
            assert trace.recording is not None
            assert await s.wait_job(trace.recording.sid) == "done"
        # A crash after APPEND but before the job was marked: the job is back in new/ with no progress.
        sid = trace.recording.sid
        job = s.job("done", sid)
        job["delivered"], job["recording_deleted"] = [], False
        (s.spool / "new" / f"twilio-{sid}.json").write_text(json.dumps(job))
        s.job_file("done", sid).unlink()
        s.fake.add_recording(sample(), call_sid=job["call"]["call_sid"], sid=sid)
        async with running(s):
            assert await s.wait_job(sid) == "done"
        assert "201" in s.job("done", sid)["delivered"]

    asyncio.run(scenario())
    assert len(messages(s, "201")) == 1


def test_silent_recording_becomes_missed_call(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {}})

    async def scenario() -> None:
        async with running(s) as gateway:
            trace = await s.call(gateway, wav=sample("silence-3s.wav"))
            assert trace.recording is not None
            assert await s.wait_job(trace.recording.sid) == "done"

    asyncio.run(scenario())
    [msg] = messages(s, "201")
    outer = parse(msg.raw)
    assert outer["X-Vm2mail-Kind"] == "missed-call"
    assert not any(p.get_content_maintype() == "audio" for p in outer.walk())
