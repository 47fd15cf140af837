"""A full mailbox: callers hear "full" (no <Record>) and the owner gets exactly one notice per time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from email import message_from_bytes
from xml.etree import ElementTree as ET

import aiohttp

from tests.e2e.harness import gateway_up
from tests.fixtures.config import ACCOUNT_SID, AUTH_TOKEN
from tests.fixtures.dovecot import MailClient
from tests.watcher.conftest import Setup, in_thread, until, voicemail, watching
from vm2mail.app import Gateway
from vm2mail.telephony.signature import SIGNATURE_HEADER, sign
from vm2mail.watcher.full import FULL_NOTICE


async def voice(gateway: Gateway, called: str) -> ET.Element:
    """POST /twilio/voice exactly as Twilio does (form-encoded, signed over the public URL)."""
    params = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": "CA" + "cd" * 16,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": "+4930123456",
        "To": called,
        "Caller": "+4930123456",
        "Called": called,
    }
    url = gateway.config.server.public_url + "/twilio/voice"
    headers = {SIGNATURE_HEADER: sign(AUTH_TOKEN, url, params)}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://127.0.0.1:{gateway.port}/twilio/voice", data=params, headers=headers
        ) as response,
    ):
        assert response.status == 200
        return ET.fromstring(await response.text())  # noqa: S314 - TwiML from the gateway under test


def notices(client: MailClient) -> list[frozenset[str]]:
    return [
        m.flags
        for m in client.messages("Voicemail")
        if message_from_bytes(m.raw)["X-Vm2mail-Notice"] == "mailbox-full"
    ]


def test_full_mailbox_says_full_and_tells_owner_once(setup: Callable[..., Setup]) -> None:
    s = setup({"201": {"max_messages": 2, "name": "Anna Schmidt"}})
    client = s.clients["201"]
    client.create_folder("Voicemail")
    client.append("Voicemail", voicemail())
    called = s.config.mailboxes["201"].numbers[0]

    async def scenario() -> None:
        async with gateway_up(s.config) as gateway:
            watcher = gateway.watcher
            assert watcher is not None
            await until(lambda: (c := watcher.counts("201")) is not None and c.total == 1, "synced")
            root = await voice(gateway, called)
            assert "Record" in [el.tag for el in root]

            second = await in_thread(client.append, "Voicemail", voicemail())
            await until(lambda: (c := watcher.counts("201")) is not None and c.total == 2, "full")
            root = await voice(gateway, called)
            assert [el.tag for el in root] == ["Say", "Hangup"]
            assert root[0].text is not None and "is full" in root[0].text
            await until(lambda: len(notices(client)) == 1, "notice")
            [flags] = notices(client)
            assert FULL_NOTICE in flags and "\\Seen" not in flags

            # Still full after one more (the gateway never refuses mail the store accepts): no second notice.
            await in_thread(client.append, "Voicemail", voicemail())
            session = watcher.session("201")
            assert session is not None
            await until(lambda: (c := watcher.counts("201")) is not None and c.total == 3, "three")
            syncs = session.syncs
            session.nudge()
            await until(lambda: session.syncs > syncs, "one more sync")
            assert len(notices(client)) == 1

            # Dropping below the limit re-arms it: filling up again tells the owner again, once.
            await in_thread(client.move, "Voicemail", second, "Trash")
            with client.session("Voicemail") as imap:
                _, data = imap.uid("SEARCH", "HEADER", "X-Vm2mail-Kind", "voicemail")
                imap.uid("MOVE", data[0].split()[0], "Trash")
            await until(lambda: (c := watcher.counts("201")) is not None and c.total == 1, "room again")
            await until(lambda: all(FULL_NOTICE not in f for f in notices(client)), "re-armed")
            assert "Record" in [el.tag for el in await voice(gateway, called)]
            await in_thread(client.append, "Voicemail", voicemail())
            await until(lambda: len(notices(client)) == 2, "second notice")
            assert sum(FULL_NOTICE in f for f in notices(client)) == 1

    asyncio.run(scenario())


def test_notice_template_in_german(setup: Callable[..., Setup]) -> None:
    s = setup({"201": {"max_messages": 1, "language": "de-DE"}})
    client = s.clients["201"]
    client.create_folder("Voicemail")
    client.append("Voicemail", voicemail())

    async def scenario() -> None:
        async with watching(s.config):
            await until(lambda: len(notices(client)) == 1, "notice")

    asyncio.run(scenario())
    [msg] = [m for m in client.messages("Voicemail") if b"X-Vm2mail-Notice" in m.raw]
    parsed = message_from_bytes(msg.raw)
    assert parsed["Subject"] == "Ihre Sprachbox 201 ist voll"
    body = parsed.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert "Sprachbox 201 enthält 1 Sprachnachrichten" in body.decode()


def test_group_is_full_only_when_every_member_is(setup: Callable[..., Setup]) -> None:
    s = setup({"201": {"max_messages": 1}, "202": {"max_messages": 1}, "300": {"members": ["201", "202"]}})
    for client in s.clients.values():
        client.create_folder("Voicemail")
    s.clients["201"].append("Voicemail", voicemail())
    group = s.config.mailboxes["300"]

    async def scenario() -> None:
        async with watching(s.config) as (watcher, _):
            # Before the first sync the answer comes from a direct listing.
            assert await watcher.mailbox_full(s.config.mailboxes["201"])
            assert not await watcher.mailbox_full(group)
            await in_thread(s.clients["202"].append, "Voicemail", voicemail(mailbox="202"))
            await until(lambda: (c := watcher.counts("202")) is not None and c.total == 1, "202 full")
            assert await watcher.mailbox_full(group)

    asyncio.run(scenario())
