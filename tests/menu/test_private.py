"""What the server and the menu say of a caller: private mailboxes hide them; numbers spoken as dialled."""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.e2e.harness import decrypt, parse
from tests.fixtures.twilio import run
from tests.menu.conftest import MenuEnv

CALLER, NAME = "+4930123456", "Jörg Müller"


def test_private_mailbox_hides_the_caller_from_the_server_but_not_from_the_user(
    menu_env: Callable[..., MenuEnv],
) -> None:
    env = menu_env(private=True, name="Anna Schmidt")
    called = env.box.numbers[0]

    async def scenario() -> None:
        async with env.up() as gw, env.session() as session:
            trace = await env.stack.call(gw, caller=CALLER, caller_name=NAME)
            assert trace.recording is not None
            assert await env.stack.wait_job(trace.recording.sid) == "done"
            walker = await env.login(session, gw)
            await walker.press("1")
            page = await walker.press("3")
            assert f"From 4 9 3 0 1 2 3 4 5 6, {NAME}." in page.text, page.text
            assert "Press 2 to call back." in page.text
            page = await walker.press("2")
            assert page.dial is not None and [n.text for n in page.dial] == [CALLER]

    run(scenario())
    [stored] = env.client.messages("Voicemail")
    raw = stored.raw
    # Everything the server can read: the header block and every MIME part's headers and text, i.e.
    # the whole message but the ASCII-armored ciphertext.
    readable = re.sub(rb"-----BEGIN PGP MESSAGE-----.*?-----END PGP MESSAGE-----", b"", raw, flags=re.S)
    assert b"-----BEGIN PGP MESSAGE-----" in raw and len(readable) < 2000
    digits = CALLER.lstrip("+").encode()
    for secret in (digits, digits[2:], b"30 123456", called.lstrip("+").encode(), b"J=C3=B6rg", b"rg M"):
        assert secret not in readable, secret
    outer = parse(raw)
    assert outer["Subject"] == "Voicemail"
    assert str(outer["From"]) == "Voicemail <voicemail@vm.example.com>"
    for name in ("X-Vm2mail-Caller", "X-Vm2mail-Caller-Name", "X-Vm2mail-Called", "X-Vm2mail-Duration"):
        assert outer[name] is None, name
    assert outer["X-Vm2mail-Mailbox"] == "201" and outer["Message-ID"] and outer["Date"]

    key = env.stack.accounts["201"].key
    assert key is not None
    inner = decrypt(outer, key)
    assert inner.get_param("protected-headers") == "v1"
    assert inner["X-Vm2mail-Caller"] == CALLER
    assert inner["X-Vm2mail-Caller-Name"] == NAME
    assert inner["X-Vm2mail-Called"] == called
    assert int(inner["X-Vm2mail-Duration"]) > 0
    assert inner["From"].addresses[0].display_name == NAME
    assert NAME in inner["Subject"]
    # RFC 9788 §2.2: the inner root says what the outer message showed.
    assert "Subject: Voicemail" in inner.get_all("HP-Outer")
    text = inner.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f"tel:{CALLER}" in text and NAME in text


def test_envelope_speaks_a_national_number_the_way_the_user_dials_it(
    menu_env: Callable[..., MenuEnv],
) -> None:
    env = menu_env(country="DE")

    async def scenario() -> None:
        await env.deposit(1, caller="+493012345678")
        await env.deposit(1, caller="+4315123456")
        async with env.up() as gw, env.session() as session:
            walker = await env.login(session, gw)
            await walker.press("1")
            page = await walker.press("3")
            assert "From 0 3 0 1 2 3 4 5 6 7 8." in page.text, page.text
            page = await walker.press("2")
            assert page.dial is not None and [n.text for n in page.dial] == ["+493012345678"]
            await walker.post(page.dial.get("action") or "", {"DialCallStatus": "completed"})
            await walker.press("1")
            await walker.press("6")
            page = await walker.press("3")
            assert "From 4 3 1 5 1 2 3 4 5 6." in page.text, page.text

    run(scenario())
