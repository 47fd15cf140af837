"""A voicemail the gateway delivers reaches the watcher's counts and events (Pipeline on_delivered)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.e2e.harness import Stack, free_port, running
from tests.fixtures.config import ACCOUNT_SID, AUTH_TOKEN
from tests.watcher.conftest import Setup, until
from vm2mail.devstack.dovecot import DevDovecot
from vm2mail.devstack.fake_twilio import FakeTwilio
from vm2mail.mailstore.voicemails import Counts
from vm2mail.watcher import WatchEvent


def test_call_to_watched_mailbox_updates_counts(setup: Callable[..., Setup], dovecot: DevDovecot) -> None:
    port = free_port()
    s = setup(twilio={"api_base_url": f"http://127.0.0.1:{port}"})
    stack = Stack(config=s.config, dovecot=dovecot, fake=FakeTwilio(ACCOUNT_SID, AUTH_TOKEN), fake_port=port)

    async def scenario() -> None:
        async with running(stack) as gateway:
            watcher = gateway.watcher
            assert watcher is not None
            events: list[WatchEvent] = []

            async def collect(event: WatchEvent) -> None:
                events.append(event)

            watcher.subscribe(collect)
            await until(lambda: watcher.counts("201") == Counts(new=0, heard=0, saved=0, total=0), "synced")
            trace = await stack.call(gateway, caller="+4930123456")
            assert trace.recording is not None
            assert await stack.wait_job(trace.recording.sid) == "done"
            await until(lambda: watcher.counts("201") == Counts(new=1, heard=0, saved=0, total=1), "counted")
            await until(lambda: any(e.kind == "new" for e in events), "event")
            [event] = [e for e in events if e.kind == "new"]
            assert not event.initial and event.entry.caller == "+4930123456"
            assert event.entry.message_id == f"<{trace.recording.sid}@vm.example.com>"

    asyncio.run(scenario())
