"""The call path reads switches cache-first and bounded: a hanging IMAP server never holds up a call."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

from tests.e2e.harness import Stack, gateway_up, twilio_up
from tests.fixtures.faulty_imap import HANG, FaultyImap
from tests.routing.test_scenarios import ANNA_MOBILE, dialed, heard
from vm2mail.mailstore.metadata import Metadata
from vm2mail.mailstore.store import ImapStore
from vm2mail.routing import control
from vm2mail.routing.switches import Switches

# Twilio gives a webhook 15 s; the design budget is about 2 s. Generous, yet far below IMAP's timeout.
BOUND_SECONDS = 5.0


def test_a_hanging_imap_server_gets_the_last_known_state_in_bounded_time(
    stack: Callable[..., Stack], faulty_imap: FaultyImap
) -> None:
    s = stack({"201": {"forward_to": ANNA_MOBILE}}, routing={"cache_seconds": 0, "read_timeout_seconds": 1})

    async def scenario() -> None:
        # Via the proxy, with IMAP's own timeout far above the bound: only the routing deadline helps.
        imap = dataclasses.replace(s.config.imap, port=faulty_imap.port, timeout_seconds=60)
        config = dataclasses.replace(s.config, imap=imap)
        # The owner switched to voicemail (the same switch the menu's key 4 and `vm2mail divert` write).
        store = ImapStore(s.config.imap)
        try:
            switches = Switches(lambda: s.config, Metadata(store))
            await control.divert(switches, s.config.mailboxes["201"], on=True, by="test")
        finally:
            await store.close()
        async with twilio_up(s), gateway_up(config) as gateway:
            first = await s.call(gateway, recording_status="absent")
            assert not dialed(first)
            faulty_imap.mode = HANG
            for _ in range(2):
                started = time.monotonic()
                trace = await s.call(gateway, recording_status="absent", hangup_during_greeting=True)
                elapsed = time.monotonic() - started
                assert not dialed(trace) and "is away at the moment" in heard(trace)
                assert elapsed < BOUND_SECONDS, f"the call waited {elapsed:.1f} s on a hanging IMAP server"

    asyncio.run(scenario())
