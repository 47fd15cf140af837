"""Routing scenarios through signed Twilio webhooks against a real Dovecot: divert, outage, breaker, hours.

Switches are changed the ways an admin, an owner or a monitor does (CLI subprocess, phone menu,
``/outage`` over HTTP) and the next call shows the effect: no ``<Dial>``, the situation's greeting,
the message in the right folder.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from tests.cli.conftest import acli
from tests.e2e.harness import Stack, gateway_up, parse, running, twilio_up
from tests.e2e.test_voicemail import messages
from tests.fixtures.twilio import make_wav
from tests.menu.conftest import MenuEnv
from tests.menu.walker import ffprobe_seconds
from vm2mail.app import Gateway
from vm2mail.devstack.simulator import CallTrace

TOKEN = "monitor-token-0123456789abcdef"
RECEPTION, ANNA, BEN, KEY_PEOPLE = "+15550002100", "+15550002201", "+15550002202", "+15550003900"
ANNA_MOBILE, BEN_MOBILE, ADMIN_MOBILE = "+15550008201", "+15550008202", "+15550008999"


def dialed(trace: CallTrace) -> bool:
    """Did the first answer ring a phone (``<Dial>``) before voicemail?"""
    return "<Dial" in trace.steps[0][1]


def heard(trace: CallTrace) -> str:
    return " ".join(text for _, text in trace.said)


async def outage_request(
    gateway: Gateway, method: str = "POST", token: str = TOKEN, **form: str
) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            f"http://127.0.0.1:{gateway.port}/outage",
            data=form or None,
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        return response.status, await response.json()


def test_divert_by_cli_skips_the_dial_until_its_end_time(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"forward_to": ANNA_MOBILE}}, routing={"cache_seconds": 0})
    config = str(s.config.source)

    async def scenario() -> None:
        async with running(s) as gateway:
            first = await s.call(gateway)
            assert dialed(first) and first.recording is not None
            assert await s.wait_job(first.recording.sid) == "done"
            until = datetime.now(UTC) + timedelta(seconds=6)
            switched = await acli("divert", "on", "201", "-c", config, "--until", until.isoformat())
            assert switched.returncode == 0, switched.stderr
            assert "mailbox 201: voicemail until" in switched.stdout
            status = await acli("divert", "status", "-c", config)
            assert "voicemail until" in status.stdout and "by cli" in status.stdout

            away = await s.call(gateway)
            assert not dialed(away)
            assert "User 201 is away at the moment" in heard(away)
            assert away.recording is not None
            assert await s.wait_job(away.recording.sid) == "done"

            await asyncio.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 0.5)
            assert dialed(await s.call(gateway))  # the end time switched it back by itself
            status = await acli("divert", "status", "201", "-c", config)
            assert "normal (ended by itself)" in status.stdout

    asyncio.run(scenario())
    assert len(messages(s, "201")) >= 2  # before the switch (no answer) and the away message


def test_divert_by_phone_and_a_second_instance_sees_it(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env()
    number = env.box.numbers[0]

    async def scenario() -> None:
        async with env.up() as gateway, env.session() as session:
            assert dialed(await env.stack.call(gateway, to=number))
            walker = await env.login(session, gateway)
            page = await walker.press("0")
            assert "4 to send your calls straight to voicemail" in page.text
            page = await walker.press("4")
            assert page.text.startswith("Your calls now go straight to voicemail")
            assert not dialed(await env.stack.call(gateway, to=number))
            # Another gateway instance, same IMAP server: it reads the same switch.
            async with gateway_up(env.config) as second:
                trace = await env.stack.call(second, to=number)
                assert not dialed(trace) and "is away at the moment" in heard(trace)
            # The owner records an away greeting (key 6): diverted callers now hear it.
            page = await walker.press("6")
            assert page.record is not None and page.text.startswith("Record your away greeting")
            fake = env.stack.fake
            recording = fake.add_recording(make_wav(2.0), call_sid=walker.params["CallSid"])
            page = await walker.post(
                page.record.get("action") or "",
                {
                    "RecordingUrl": fake.recording_url(recording),
                    "RecordingSid": recording.sid,
                    "RecordingDuration": "2",
                    "Digits": "#",
                },
            )
            assert page.text.startswith("Your greeting has been saved.")
            [stored] = env.client.messages("Voicemail/Greetings/Away")
            assert b"audio/mpeg" in stored.raw
            caller = env.walker(session, gateway, caller="+4930777666", called=number)
            page = await caller.call_mailbox()
            assert page.dial is None and len(page.plays) == 1 and page.record is not None
            status, body, _ = await caller.fetch(page.plays[0])
            assert status == 200 and 1.5 < ffprobe_seconds(body) < 2.6
            page = await walker.press("7")
            assert page.text.startswith("Your greeting has been removed.")
            page = await walker.press("4")
            assert page.text.startswith("Your calls ring your phone again")
            assert dialed(await env.stack.call(gateway, to=number))

    asyncio.run(scenario())


def outage_stack(stack: Callable[..., Stack]) -> Stack:
    return stack(
        {
            "100": {"name": "Reception", "numbers": [RECEPTION], "forward_to": "sip:100@pbx.example.com"},
            "201": {
                "name": "Anna",
                "numbers": [ANNA],
                "forward_to": ANNA_MOBILE,
                "notify": {"sms": [ANNA_MOBILE]},
            },
            "202": {
                "name": "Ben",
                "numbers": [BEN],
                "forward_to": BEN_MOBILE,
                "notify": {"sms": [BEN_MOBILE]},
            },
            "900": {"name": "Key people", "members": ["201", "202"], "numbers": [KEY_PEOPLE]},
        },
        twilio={"sms_from": "+15550000001"},
        outage={"numbers": [RECEPTION], "routes": {RECEPTION: "900"}, "monitor_token": TOKEN},
        routing={"cache_seconds": 0},
    )


def test_outage_mode_routes_the_main_number_to_the_key_people_and_tells_them(
    stack: Callable[..., Stack], caplog: pytest.LogCaptureFixture
) -> None:
    s = outage_stack(stack)
    caplog.set_level(logging.INFO, logger="vm2mail.audit")

    async def scenario() -> None:
        async with running(s) as gateway:
            assert dialed(await s.call(gateway, to=RECEPTION))
            status, body = await outage_request(gateway, token="wrong-token-0123456789", state="on")
            assert status == 401 and "token" in str(body["error"])
            status, body = await outage_request(gateway, "GET")
            assert (status, body["outage"]) == (200, "off")  # the refused request changed nothing
            status, body = await outage_request(gateway, state="sideways")
            assert status == 400 and "state must be on or off" in str(body["error"])

            status, body = await outage_request(gateway, state="on")
            assert (status, body["outage"], body["changed"]) == (200, "on", True)
            started = {m["To"]: m["Body"] for m in s.fake.messages}
            assert set(started) == {ANNA_MOBILE, BEN_MOBILE}
            assert all("outage mode is ON" in text for text in started.values())

            trace = await s.call(gateway, to=RECEPTION)
            assert not dialed(trace)
            assert "our phone system is currently out of service" in heard(trace)
            assert trace.recording is not None
            assert await s.wait_job(trace.recording.sid) == "done"
            # A number outage mode does not cover still rings as usual.
            assert dialed(await s.call(gateway, to=ANNA))

            status, body = await outage_request(gateway, state="off")
            assert (status, body["outage"], body["changed"]) == (200, "off", True)
            ended = [m for m in s.fake.messages if "outage mode has ENDED" in m["Body"]]
            assert {m["To"] for m in ended} == {ANNA_MOBILE, BEN_MOBILE}
            assert dialed(await s.call(gateway, to=RECEPTION))
            return None

    asyncio.run(scenario())
    audit = [r.getMessage() for r in caplog.records if r.name == "vm2mail.audit"]
    assert any("refused: wrong or missing token" in line for line in audit)
    assert any(line.startswith("audit: outage mode on by http 127.0.0.1") for line in audit)
    assert any(line.startswith("audit: outage mode off by http 127.0.0.1") for line in audit)
    assert not any(TOKEN in r.getMessage() or "wrong-token" in r.getMessage() for r in caplog.records)
    for box in ("201", "202"):  # the group's copy reached both key people
        [message] = messages(s, box)
        assert parse(message.raw)["X-Vm2mail-Called"] == RECEPTION


def test_outage_cli_and_bad_input_change_nothing(stack: Callable[..., Stack]) -> None:
    s = outage_stack(stack)
    config = str(s.config.source)

    async def scenario() -> None:
        async with twilio_up(s):
            unknown = await acli("divert", "on", "999", "-c", config)
            assert unknown.returncode == 1 and "unknown mailbox '999'" in unknown.stderr
            past = await acli("divert", "on", "201", "-c", config, "--until", "2020-01-01 08:00")
            assert past.returncode == 1 and "is in the past" in past.stderr
            nonsense = await acli("outage", "on", "-c", config, "--until", "soon")
            assert nonsense.returncode == 1 and "neither a duration" in nonsense.stderr
            status = await acli("divert", "status", "201", "-c", config)
            assert "normal" in status.stdout and "voicemail" not in status.stdout
            assert "off" in (await acli("outage", "status", "-c", config)).stdout
            assert s.fake.messages == []

            on = await acli("outage", "on", "-c", config, "--until", "2h")
            assert on.returncode == 0, on.stderr
            assert (
                "outage mode on until" in on.stdout and "owners of mailboxes 201, 202 notified" in on.stdout
            )
            again = await acli("outage", "on", "-c", config)
            assert "(it already was)" in again.stdout
            assert len(s.fake.messages) == 2  # no second notice for a switch that changed nothing
            assert "outage mode: on" in (await acli("outage", "status", "-c", config)).stdout
            off = await acli("outage", "off", "-c", config)
            assert off.returncode == 0 and "outage mode off" in off.stdout
            assert len(s.fake.messages) == 4

    asyncio.run(scenario())


def test_dead_pbx_opens_the_breaker_and_a_good_probe_closes_it(stack: Callable[..., Stack]) -> None:
    s = stack(
        {"100": {"name": "Reception", "numbers": [RECEPTION], "forward_to": "sip:100@pbx.example.com"}},
        twilio={"sms_from": "+15550000001"},
        admin={"sms": ADMIN_MOBILE},
        routing={"breaker_open_seconds": 1},
    )

    async def metric(gateway: Gateway) -> str:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{gateway.port}/metrics") as response,
        ):
            text = await response.text()
        return next(
            (
                line
                for line in text.splitlines()
                if line.startswith("vm2mail_breaker_state{") and "pbx.example.com" in line
            ),
            "",
        )

    async def scenario() -> None:
        async with running(s) as gateway:
            for _ in range(5):
                trace = await s.call(gateway, to=RECEPTION, dial_outcome="failed")
                assert dialed(trace) and trace.recording is not None  # rang, failed, took a message
            sixth = await s.call(gateway, to=RECEPTION)
            assert not dialed(sixth) and sixth.recording is not None
            status, body = await outage_request(gateway, "GET")  # no monitor_token: no endpoint
            assert status == 404 and "not enabled" in str(body["error"])
            assert metric_value(await metric(gateway)) == 1.0
            for _ in range(50):  # the alert is sent in the background
                if any(m["To"] == ADMIN_MOBILE for m in s.fake.messages):
                    break
                await asyncio.sleep(0.1)
            [alert] = [m for m in s.fake.messages if m["To"] == ADMIN_MOBILE]
            assert "PBX sip:pbx.example.com is down" in alert["Body"]

            await asyncio.sleep(1.2)  # breaker_open_seconds: the next call probes the PBX
            probe = await s.call(gateway, to=RECEPTION, dial_outcome="completed")
            assert dialed(probe) and probe.ended_by == "dial-connected"
            assert metric_value(await metric(gateway)) == 0.0
            assert dialed(await s.call(gateway, to=RECEPTION, dial_outcome="no-answer"))
            for trace in (sixth,):
                assert trace.recording is not None
                assert await s.wait_job(trace.recording.sid) == "done"

    asyncio.run(scenario())


def test_a_pbx_found_dead_by_one_instance_is_skipped_by_the_other(stack: Callable[..., Stack]) -> None:
    pbx = "sip:100@pbx.example.com"
    s = stack(
        {"100": {"name": "Reception", "numbers": [RECEPTION], "forward_to": pbx}},
        routing={"breaker_open_seconds": 60, "cache_seconds": 1},
    )

    async def scenario() -> None:
        async with twilio_up(s), gateway_up(s.config) as a, gateway_up(s.config) as b:
            assert dialed(await s.call(b, to=RECEPTION, recording_status="absent"))
            for _ in range(5):
                assert dialed(await s.call(a, to=RECEPTION, dial_outcome="failed", recording_status="absent"))
            assert not dialed(await s.call(a, to=RECEPTION, recording_status="absent"))
            # B never saw a failed dial: it adopts A's breaker from IMAP within its poll period.
            assert b.shared_breakers is not None
            for _ in range(100):
                if b.shared_breakers.breakers.state(pbx) == "open":
                    break
                await asyncio.sleep(0.1)
            assert not dialed(await s.call(b, to=RECEPTION, recording_status="absent"))

    asyncio.run(scenario())


def metric_value(line: str) -> float:
    assert line, "no vm2mail_breaker_state sample"
    return float(line.rsplit(" ", 1)[1])


def test_a_call_outside_office_hours_gets_the_closed_greeting(stack: Callable[..., Stack]) -> None:
    today = datetime.now(UTC).astimezone().date()
    days = [(today + timedelta(days=d)).isoformat() for d in (-1, 0, 1)]  # today in any time zone
    s = stack({"201": {"forward_to": ANNA_MOBILE, "office_hours": {"holidays": days}}})

    async def scenario() -> CallTrace:
        async with running(s) as gateway:
            trace = await s.call(gateway)
            assert trace.recording is not None
            assert await s.wait_job(trace.recording.sid) == "done"
            return trace

    trace = asyncio.run(scenario())
    assert not dialed(trace)
    assert "You are calling outside our office hours" in heard(trace)
    assert len(messages(s, "201")) == 1


def test_an_outage_that_runs_out_tells_the_owners_it_ended(stack: Callable[..., Stack]) -> None:
    s = outage_stack(stack)
    config = str(s.config.source)

    async def scenario() -> None:
        async with twilio_up(s):
            until = datetime.now(UTC) + timedelta(seconds=4)
            on = await acli("outage", "on", "-c", config, "--until", until.isoformat())
            assert on.returncode == 0, on.stderr
            assert len(s.fake.messages) == 2
            async with gateway_up(s.config) as gateway:
                assert not dialed(await s.call(gateway, to=RECEPTION, recording_status="absent"))
                for _ in range(200):
                    if len(s.fake.messages) >= 4:
                        break
                    await asyncio.sleep(0.1)
                ended = [m for m in s.fake.messages if "outage mode has ENDED" in m["Body"]]
                assert {m["To"] for m in ended} == {ANNA_MOBILE, BEN_MOBILE}
                assert dialed(await s.call(gateway, to=RECEPTION, recording_status="absent"))
            status = await acli("outage", "status", "-c", config)
            assert "outage mode: off" in status.stdout
            assert len(s.fake.messages) == 4  # one end notice each, not one per check

    asyncio.run(scenario())
