"""Menu login: mailbox + PIN, owner caller ID, wrong PINs, lockout across restarts/instances, signatures."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.harness import gateway_up
from tests.fixtures.twilio import run
from tests.menu.conftest import MENU_NUMBER, OWNER, PIN, MenuEnv
from tests.menu.walker import Walker
from vm2mail.logins import Logins, Result
from vm2mail.mailstore.metadata import Metadata
from vm2mail.mailstore.store import ImapStore
from vm2mail.telephony.menustate import MenuState, encode


def test_login_by_mailbox_number_and_pin(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env()

    async def scenario() -> None:
        async with env.up() as gw, env.session() as session:
            walker = env.walker(session, gw)
            page = await walker.call()
            assert "enter your mailbox number" in page.text
            assert page.gather is not None and page.gather.get("finishOnKey") == "#"
            page = await walker.press("201")
            assert "enter your PIN" in page.text
            page = await walker.press(PIN)
            assert "You have 0 new messages and 0 saved messages" in page.text
            assert "Press 1 to listen" in page.text
            page = await walker.press("#")
            assert page.hangup and page.text == "Goodbye."

    run(scenario())


def test_owner_calling_own_number_skips_the_mailbox_number(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env()

    async def scenario() -> None:
        async with env.up() as gw, env.session() as session:
            # The owner dials the mailbox's own number from forward_to: the voice URL sends the call on.
            walker = env.walker(session, gw, caller=OWNER, called=env.box.numbers[0])
            page = await walker.call()
            assert page.text == "Hello User 201. Please enter your PIN, then press pound."
            page = await walker.press(PIN)
            assert "You have 0 new" in page.text
            # The access number recognises the owner too.
            walker = env.walker(session, gw, caller=OWNER)
            assert "Hello User 201" in (await walker.call()).text

    run(scenario())


def test_three_wrong_pins_end_the_call(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env()

    async def scenario() -> None:
        async with env.up() as gw, env.session() as session:
            walker = env.walker(session, gw)
            await walker.call()
            await walker.press("201")
            page = await walker.press("1111")
            assert page.text.startswith("Login incorrect.") and "mailbox number" in page.text
            await walker.press("201")
            page = await walker.press("2222")
            assert page.gather is not None
            await walker.press("999")  # an unknown mailbox fails the same way, revealing nothing
            page = await walker.press(PIN)
            assert page.hangup and page.gather is None
            assert page.text == "Login incorrect. Goodbye."
            # Below the lockout threshold, the next call logs in.
            await env.login(session, gw)

    run(scenario())


def test_lockout_holds_across_restart_and_instances(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env(menu={"lockout_failures": 4, "max_pin_attempts": 3})

    async def wrong_call(session, gw, tries: int) -> str:  # type: ignore[no-untyped-def]
        walker = env.walker(session, gw, caller=OWNER)
        await walker.call()
        page = walker.page
        for _ in range(tries):
            page = await walker.press("0000")
        assert page is not None
        return page.text

    async def scenario() -> None:
        async with env.session() as session:
            async with env.up() as gw:
                assert await wrong_call(session, gw, 3) == "Login incorrect. Goodbye."
                walker = env.walker(session, gw, caller=OWNER)
                await walker.call()
                page = await walker.press("0000")  # the 4th failure locks the mailbox
                assert page.hangup and "locked" in page.text
            # A restarted gateway still refuses even the right PIN ...
            async with gateway_up(env.config) as gw1, gateway_up(env.config) as gw2:
                for gw in (gw1, gw2):  # ... and so does every other instance
                    walker = env.walker(session, gw, caller=OWNER)
                    await walker.call()
                    page = await walker.press(PIN)
                    assert page.hangup and "This mailbox is locked" in page.text

    run(scenario())


def test_parallel_guessing_calls_get_no_extra_tries(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env(menu={"lockout_failures": 3})

    async def scenario() -> list[str]:
        async with env.session() as session, env.up() as gw:
            walkers = [env.walker(session, gw, caller=OWNER) for _ in range(6)]
            for walker in walkers:
                await walker.call()
            pages = await asyncio.gather(*(walker.press(f"{1000 + i}") for i, walker in enumerate(walkers)))
            walker = env.walker(session, gw, caller=OWNER)
            await walker.call()
            right = await walker.press(PIN)
            return [page.text for page in pages] + [right.text]

    *guesses, right = run(scenario())
    # Six calls guessing at the same moment: two wrong answers, the third locks, the rest are refused.
    assert sum(text.startswith("Login incorrect.") for text in guesses) == 2, guesses
    assert sum("This mailbox is locked" in text for text in guesses) == 4, guesses
    assert "This mailbox is locked" in right


def test_lockout_alerts_the_admin(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env(menu={"lockout_failures": 2})
    alerts: list[tuple[str, str]] = []

    async def alert(subject: str, text: str) -> None:
        alerts.append((subject, text))

    async def scenario() -> None:
        store = ImapStore(env.config.imap)
        try:
            logins = Logins(lambda: env.config, Metadata(store), alert)
            assert await logins.check(env.box, "1111", call_sid="CA1") is Result.WRONG
            assert alerts == []
            assert await logins.check(env.box, "2222", call_sid="CA2") is Result.LOCKED
            assert await logins.check(env.box, PIN, call_sid="CA3") is Result.LOCKED
        finally:
            await store.close()

    run(scenario())
    [(subject, text)] = alerts
    assert "mailbox 201 locked after 2 failed logins" in subject
    assert "The last: wrong PIN, call CA2." in text
    assert PIN not in subject + text


def test_tampered_or_foreign_state_is_refused(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env()

    async def scenario() -> None:
        async with env.up() as gw, env.session() as session:
            walker = await env.login(session, gw)
            page = walker.page
            assert page is not None and page.gather is not None
            action = page.gather.get("action") or ""
            token = action.split("s=", 1)[1]
            payload, mac = token.split(".")
            forged = action.replace(
                token, payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + mac
            )
            refused = await walker.post(forged, {"Digits": "1"})  # correctly Twilio-signed, state altered
            assert refused.status == 403
            # The same (valid) state replayed in another call is refused as well.
            other = Walker(session, env.config, gw.port, called=MENU_NUMBER, caller=OWNER)
            assert (await other.post(action, {"Digits": "1"})).status == 403
            # Unsigned webhooks never reach the menu.
            stranger = env.walker(session, gw)
            assert (
                await stranger.post(env.config.server.public_url + "/twilio/menu", signed=False)
            ).status == 403

    run(scenario())


def test_no_pin_in_urls_or_logs(menu_env: Callable[..., MenuEnv], caplog: pytest.LogCaptureFixture) -> None:
    env = menu_env()
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        async with env.up() as gw, env.session() as session:
            walker = await env.login(session, gw)
            await walker.press("0")
            await walker.press("5")
            await walker.press("55501")
            await walker.press("55501")
            await asyncio.sleep(0)
            bodies = " ".join(p.body for p in walker.pages)
            assert "Your PIN has been changed" in bodies
            for secret in (PIN, "55501"):
                assert secret not in bodies
                assert secret not in caplog.text

    run(scenario())


def test_expired_login_ends_the_call_politely(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env()

    async def scenario() -> None:
        async with env.up() as gw, env.session() as session:
            walker = env.walker(session, gw, caller=OWNER)
            expired = MenuState(call=walker.params["CallSid"], step="main", mailbox="201", login_until=1)
            token = encode(env.config.server.secret_key, expired)
            page = await walker.post(f"{env.config.server.public_url}/twilio/menu?s={token}", {"Digits": "1"})
            assert page.status == 200 and page.hangup
            assert page.text == "Your session has expired. Please call again. Goodbye."

    run(scenario())


def test_digits_at_the_mailbox_prompt_never_travel_in_the_state_url(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env()

    def state_text(page: Any) -> str:
        action = page.gather.get("action") or ""
        token = parse_qs(urlsplit(action).query)["s"][0]
        payload = token.split(".")[0]
        return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()

    async def scenario() -> None:
        async with env.up() as gw, env.session() as session:
            walker = env.walker(session, gw)
            await walker.call()
            page = await walker.press(PIN)  # the PIN typed at the mailbox prompt by mistake
            assert "enter your PIN" in page.text  # asked anyway: nothing tells which mailboxes exist
            assert PIN not in state_text(page) and PIN not in (page.gather.get("action") or "")
            page = await walker.press(PIN)
            assert page.text.startswith("Login incorrect")
            page = await walker.press("201")  # a real mailbox number may be carried
            assert '"m":"201"' in state_text(page)
            assert "You have 0 new" in (await walker.press(PIN)).text

    run(scenario())
