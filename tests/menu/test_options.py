"""Mailbox options by phone (greeting, PIN), German prompts, `*` during the greeting, a full mailbox."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.fixtures.twilio import make_wav, run
from tests.menu.conftest import OWNER, PIN, MenuEnv
from tests.menu.walker import ffprobe_seconds
from vm2mail.devstack.fake_twilio import new_sid
from vm2mail.jobs.spool import Spool
from vm2mail.telephony.webhooks import TelephonyDeps, add_routes


def test_greeting_record_hear_remove_and_the_call_flow_uses_it(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env()
    fake = env.stack.fake

    async def scenario() -> None:
        async with env.up() as gw, env.session() as session:
            walker = await env.login(session, gw)
            page = await walker.press("0")
            assert page.text.startswith("Mailbox options.")
            page = await walker.press("2")
            assert page.text.startswith("You have no recorded greeting.")
            page = await walker.press("1")
            assert page.record is not None and page.text.startswith("Record your greeting after the tone")
            # Twilio records, stores the recording and requests the <Record action>.
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
            assert recording.sid in fake.deleted
            [stored] = env.client.messages("Voicemail/Greetings")
            assert b"audio/mpeg" in stored.raw
            page = await walker.press("2")
            assert page.text.startswith("Your greeting is:") and len(page.plays) == 1
            status, body, _ = await walker.fetch(page.plays[0])
            assert status == 200 and 1.5 < ffprobe_seconds(body) < 2.6
            # A caller now hears the recorded greeting instead of the spoken template.
            caller = env.walker(session, gw, caller="+4930777666", called=env.box.numbers[0])
            page = await caller.call_mailbox()
            assert page.gather is not None and [child.tag for child in page.gather] == ["Play"]
            assert page.record is not None
            status, body, _ = await caller.fetch(page.plays[0])
            assert status == 200 and 1.5 < ffprobe_seconds(body) < 2.6
            page = await walker.press("3")
            assert page.text.startswith("Your greeting has been removed.")
            assert env.client.messages("Voicemail/Greetings") == []
            caller = env.walker(session, gw, caller="+4930777666", called=env.box.numbers[0])
            page = await caller.call_mailbox()
            assert page.plays == [] and "User 201 is not available" in page.text

    run(scenario())


def test_change_pin_by_phone(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env()

    async def scenario() -> None:
        async with env.up() as gw, env.session() as session:
            walker = await env.login(session, gw)
            await walker.press("0")
            page = await walker.press("5")
            assert page.text.startswith("Enter your new PIN")
            await walker.press("4711")
            page = await walker.press("4712")
            assert page.text.startswith("The PINs did not match")
            await walker.press("5")
            page = await walker.press("12")
            assert page.text.startswith("The PINs did not match")
            await walker.press("5")
            await walker.press("4711")
            page = await walker.press("4711")
            assert page.text.startswith("Your PIN has been changed.")
            # The YAML PIN no longer works; the new one does, on any instance (stored in METADATA).
            other = env.walker(session, gw, caller=OWNER)
            await other.call()
            page = await other.press(PIN)
            assert page.text.startswith("Login incorrect.")
            await env.login(session, gw, pin="4711")

    run(scenario())


def test_german_prompts(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env(language="de-DE")

    async def scenario() -> None:
        await env.deposit(1)
        async with env.up() as gw, env.session() as session:
            walker = env.walker(session, gw, caller=OWNER)
            page = await walker.call()
            assert page.text == "Hallo User 201. Bitte geben Sie Ihre PIN ein und drücken Sie die Rautetaste."
            page = await walker.press(PIN)
            assert set(page.languages) == {"de-DE"}
            assert "Sie haben 1 neue Nachricht und 0 gespeicherte Nachrichten." in page.text
            page = await walker.press("1")
            assert page.text.startswith("Neue Nachricht 1.")
            page = await walker.press("3")
            assert page.text.startswith("Empfangen am Freitag, 20. November, um 10 Uhr 15. Von 4 9 3 0")
            page = await walker.press("#")
            assert page.text == "Auf Wiederhören."

    run(scenario())


def test_star_during_the_greeting_opens_the_menu(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env()

    async def scenario() -> None:
        async with env.up() as gw, env.session() as session:
            walker = env.walker(session, gw, caller="+4930777666", called=env.box.numbers[0])
            page = await walker.call_mailbox()
            assert page.gather is not None and page.gather.get("numDigits") == "1"
            assert "User 201 is not available" in page.text and page.record is not None
            page = await walker.press("*")
            assert "Please enter your PIN" in page.text
            page = await walker.press(PIN)
            assert "You have 0 new messages" in page.text
            # Any other key skips the rest of the greeting and records at once.
            walker = env.walker(session, gw, caller="+4930777666", called=env.box.numbers[0])
            await walker.call_mailbox()
            page = await walker.press("5")
            assert page.record is not None and page.said[-1].startswith("No message was recorded")

    run(scenario())


def test_full_mailbox_records_nothing(tmp_path: Path) -> None:
    from tests.fixtures.twilio import AUTH_TOKEN, PUBLIC_URL, call_params, make_telephony_config, parse_twiml
    from vm2mail.telephony.signature import SIGNATURE_HEADER, sign

    config = make_telephony_config(tmp_path)

    async def full(_mailbox: object) -> bool:
        return True

    async def scenario() -> None:
        spool = Spool(config.server.spool_dir)
        spool.open_sync()
        app = web.Application()
        add_routes(app, TelephonyDeps(config=lambda: config, spool=spool, mailbox_full=full))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        try:
            params = call_params("+4930555202", CallSid=new_sid("CA"))
            headers = {SIGNATURE_HEADER: sign(AUTH_TOKEN, PUBLIC_URL + "/twilio/voice", params)}
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    f"http://127.0.0.1:{port}/twilio/voice", data=params, headers=headers
                ) as response,
            ):
                root = parse_twiml(await response.text())
        finally:
            await runner.cleanup()
        assert [v.tag for v in root] == ["Say", "Hangup"]
        assert root[0].get("language") == "de-DE" and "ist voll" in (root[0].text or "")

    run(scenario())
