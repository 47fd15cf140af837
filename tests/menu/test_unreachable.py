"""A phone menu over a hung mail store says so within the call budget instead of leaving silence."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from tests.fixtures.faulty_imap import HANG, PASS, FaultyImap, behind
from tests.menu.conftest import OWNER, PIN, MenuEnv

BOUND = 3.0  # generous: the budget is 1.5 s, Twilio gives up after 15 s

SPOKEN = {
    "en-US": "your mailbox cannot be reached right now",
    "de-DE": "Ihre Mailbox ist zurzeit leider nicht erreichbar",
}


@pytest.mark.parametrize("language", ["en-US", "de-DE"])
def test_login_against_a_hung_server_is_answered_in_time_with_cannot_be_reached(
    menu_env: Callable[..., MenuEnv], faulty_imap: FaultyImap, language: str
) -> None:
    env = menu_env(language=language)
    stack = env.stack
    # Only the mailbox speaks ``language``; the gateway's default stays en-US.
    behind(stack, faulty_imap)
    assert stack.config.defaults.language == "en-US" and env.box.language == language

    async def scenario() -> None:
        async with env.up() as gateway, env.session() as session:
            walker = env.walker(session, gateway, caller=OWNER)
            await walker.call()
            faulty_imap.mode = HANG
            started = time.monotonic()
            page = await walker.press(PIN)
            elapsed = time.monotonic() - started
            assert page.status == 200 and elapsed < BOUND, (elapsed, page.body)
            assert SPOKEN[language] in page.text, page.body
            assert "<Hangup" in page.body
            faulty_imap.mode = PASS
            # The server is back: a later call logs in as usual (polling, since the logins the proxy
            # held meanwhile reach Dovecot first).
            deadline = time.monotonic() + 30
            while True:
                walker = env.walker(session, gateway, caller=OWNER)
                await walker.call()
                page = await walker.press(PIN)
                if "You have" in page.text or "Sie haben" in page.text or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            assert "You have" in page.text or "Sie haben" in page.text, page.body

    asyncio.run(scenario())


def test_a_step_after_login_is_answered_in_time_when_the_server_hangs(
    menu_env: Callable[..., MenuEnv], faulty_imap: FaultyImap
) -> None:
    env = menu_env()
    stack = env.stack
    behind(stack, faulty_imap)

    async def scenario() -> None:
        await env.deposit(2)
        async with env.up() as gateway, env.session() as session:
            walker = await env.login(session, gateway)
            faulty_imap.mode = HANG
            started = time.monotonic()
            page = await walker.press("1")  # play the first new message: a folder read
            elapsed = time.monotonic() - started
            assert page.status == 200 and elapsed < BOUND, (elapsed, page.body)
            assert SPOKEN["en-US"] in page.text, page.body
            faulty_imap.mode = PASS

    asyncio.run(scenario())
