"""Callers who hang up before the beep: the number's call-status webhook leads to a missed-call e-mail,
unless the folder, a recording at Twilio or an answered forward shows the call was taken care of."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.harness import Stack, parse, running
from tests.fixtures.dovecot import MailClient
from tests.ops.calls import call_params, new_call_sid, post
from vm2mail.pipeline import callstatus


@pytest.fixture(autouse=True)
def no_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(callstatus, "GRACE_SECONDS", 0.0)


def folder(stack: Stack, box: str = "201") -> list[Any]:
    account = stack.accounts[box]
    client = MailClient(stack.dovecot, account.user, account.password)
    return client.messages("Voicemail") if "Voicemail" in client.list_folders() else []


def ended(
    stack: Stack, call_sid: str, caller: str = "+4930123456", status: str = "completed"
) -> dict[str, str]:
    number = stack.config.mailboxes["201"].numbers[0]
    return {**call_params(stack.config, call_sid, number, caller), "CallStatus": status, "CallDuration": "7"}


async def wait_done(stack: Stack, job_id: str) -> None:
    path = stack.spool / "done" / f"{job_id}.json"
    for _ in range(600):
        if path.exists():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{job_id} not done")


def test_hangup_during_the_greeting_leaves_a_missed_call_mail(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"forward_to": "+15550009999"}})
    sid = new_call_sid()

    async def scenario() -> int:
        async with running(s) as gateway:
            number = s.config.mailboxes["201"].numbers[0]
            voice = await post(gateway.port, s.config, "/twilio/voice", call_params(s.config, sid, number))
            assert voice.status == 200
            # Twilio ends the call (caller hung up while it rang): only the status callback comes.
            status = await post(
                gateway.port, s.config, callstatus.CALL_STATUS_PATH, ended(s, sid, status="no-answer")
            )
            await wait_done(s, f"call-{sid}")
            return status.status

    assert asyncio.run(scenario()) == 204
    (message,) = folder(s)
    mail = parse(message.raw)
    assert mail["X-Vm2mail-Kind"] == "missed-call"
    assert mail["X-Vm2mail-Caller"] == "+4930123456" and mail["X-Vm2mail-Call-Id"] == sid
    assert not message.seen


def test_a_call_that_left_a_voicemail_gets_no_second_mail(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"forward_to": "+15550009999"}})

    async def scenario() -> str:
        async with running(s) as gateway:
            trace = await s.call(gateway)
            assert trace.recording_sid is not None
            await s.wait_job(trace.recording_sid)
            await post(gateway.port, s.config, callstatus.CALL_STATUS_PATH, ended(s, trace.call_sid))
            await wait_done(s, f"call-{trace.call_sid}")
            return trace.call_sid

    call_sid = asyncio.run(scenario())
    (message,) = folder(s)
    assert parse(message.raw)["X-Vm2mail-Kind"] == "voicemail"
    history = (s.spool / "done" / f"call-{call_sid}.json").read_text()
    assert "a message for this call is in 201/Voicemail" in history


def test_an_answered_forward_or_a_pending_recording_gets_no_mail(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"forward_to": "+15550009999"}})
    answered, recorded = new_call_sid(), new_call_sid()

    async def scenario() -> None:
        async with running(s) as gateway:
            s.fake.add_call(new_call_sid(), to="+15550009999", caller="+4930123456", parent=answered)
            s.fake.add_recording(b"RIFF", call_sid=recorded, duration=5)  # its callback is still to come
            for sid in (answered, recorded):
                await post(gateway.port, s.config, callstatus.CALL_STATUS_PATH, ended(s, sid))
            for sid in (answered, recorded):
                await wait_done(s, f"call-{sid}")

    asyncio.run(scenario())
    assert folder(s) == []
    assert "the forward was answered" in (s.spool / "done" / f"call-{answered}.json").read_text()
    assert "exists" in (s.spool / "done" / f"call-{recorded}.json").read_text()


def test_the_owner_dialling_in_and_unfinished_calls_are_not_missed_calls(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"forward_to": "+15550009999"}})

    async def scenario() -> None:
        async with running(s) as gateway:
            owner, ringing = new_call_sid(), new_call_sid()
            await post(
                gateway.port, s.config, callstatus.CALL_STATUS_PATH, ended(s, owner, caller="+15550009999")
            )
            await post(
                gateway.port, s.config, callstatus.CALL_STATUS_PATH, ended(s, ringing, status="in-progress")
            )
            await asyncio.sleep(0.3)

    asyncio.run(scenario())
    assert [p.name for state in ("new", "cur", "done") for p in (s.spool / state).glob("call-*.json")] == []
