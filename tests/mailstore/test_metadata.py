"""mailstore.metadata on a real Dovecot: RFC 5464 entries survive restarts and are shared by instances."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from tests.mailstore.test_voicemails import mailbox
from vm2mail.devstack.dovecot import DevDovecot
from vm2mail.mailstore import ImapStore
from vm2mail.mailstore.metadata import Metadata
from vm2mail.mailstore.protocol import parse_metadata

Account = Callable[..., tuple[str, str]]


def test_set_get_delete_survive_restart_and_are_shared(dovecot: DevDovecot, imap_account: Account) -> None:
    user, password = imap_account()
    box = mailbox(user, password)
    other_user, other_password = imap_account()
    other_box = mailbox(other_user, other_password)
    lockout = json.dumps({"failures": 3, "until": "2026-11-23T12:00:00Z"})

    async def scenario() -> None:
        first, second = ImapStore(dovecot.imap_config("none")), ImapStore(dovecot.imap_config("none"))
        try:
            meta, meta2 = Metadata(first), Metadata(second)
            assert await meta.get(box, "pin") is None
            await meta.set(box, "pin", "scrypt$16384$8$1$c2FsdA$aGFzaA")
            await meta.set(box, "lockout", lockout)
            assert await meta.get(box, "pin") == "scrypt$16384$8$1$c2FsdA$aGFzaA"
            await asyncio.to_thread(dovecot.restart)
            assert await meta.get(box, "lockout") == lockout  # stale pooled connection: one reconnect
            assert await meta2.get(box, "pin") == "scrypt$16384$8$1$c2FsdA$aGFzaA"  # another instance
            assert await meta2.get(other_box, "pin") is None  # per account
            await meta2.set(box, "pin", None)
            assert await meta.get(box, "pin") is None
            await meta.set(box, "pin", None)  # deleting twice is fine
            assert await meta.get(box, "lockout") == lockout
            with pytest.raises(ValueError):
                await meta.set(box, "pin", "two\r\nlines")
            with pytest.raises(ValueError):
                await meta.get(box, "../shared/x")
        finally:
            await first.close()
            await second.close()

    asyncio.run(scenario())


def test_parse_metadata_quoted_literal_and_nil() -> None:
    name = "/private/vendor/vm2mail/pin"
    assert parse_metadata([b'METADATA "Voicemail" (/private/vendor/vm2mail/pin "a\\"b")'], name) == 'a"b'
    assert (
        parse_metadata([b'METADATA "Voicemail" (/private/vendor/vm2mail/pin {3}', b"xyz", b")"], name)
        == "xyz"
    )
    assert parse_metadata([b'METADATA "Voicemail" (/private/vendor/vm2mail/pin NIL)'], name) is None
    assert parse_metadata([b"Getmetadata completed."], name) is None
