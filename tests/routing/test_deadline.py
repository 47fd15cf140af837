"""The call path reads switches cache-first and bounded: a hanging IMAP server never holds up a call."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable

from tests.e2e.harness import Stack, gateway_up, twilio_up
from tests.routing.test_scenarios import ANNA_MOBILE, dialed, heard
from vm2mail.mailstore.metadata import Metadata
from vm2mail.mailstore.store import ImapStore
from vm2mail.routing import control
from vm2mail.routing.switches import Switches

# Twilio gives a webhook 15 s; the design budget is about 2 s. Generous, yet far below IMAP's timeout.
BOUND_SECONDS = 5.0


class FreezingProxy:
    """A TCP relay in front of Dovecot that can stop relaying: the server then seems to hang."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.frozen = asyncio.Event()
        self.stopping = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                if self.frozen.is_set():
                    await self.stopping.wait()  # swallow everything from now on
                    break
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        if self.frozen.is_set():
            await self.stopping.wait()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.writers.append(up_writer)
        for task in (
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ):
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def stop(self) -> None:
        self.stopping.set()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for writer in self.writers:
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def test_a_hanging_imap_server_gets_the_last_known_state_in_bounded_time(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"forward_to": ANNA_MOBILE}}, routing={"cache_seconds": 0, "read_timeout_seconds": 1})

    async def scenario() -> None:
        proxy = FreezingProxy(s.config.imap.port)
        port = await proxy.start()
        # Via the proxy, with IMAP's own timeout far above the bound: only the routing deadline helps.
        imap = dataclasses.replace(s.config.imap, port=port, timeout_seconds=60)
        config = dataclasses.replace(s.config, imap=imap)
        # The owner switched to voicemail (the same switch the menu's key 4 and `vm2mail divert` write).
        store = ImapStore(s.config.imap)
        try:
            switches = Switches(lambda: s.config, Metadata(store))
            await control.divert(switches, s.config.mailboxes["201"], on=True, by="test")
        finally:
            await store.close()
        try:
            async with twilio_up(s), gateway_up(config) as gateway:
                first = await s.call(gateway, recording_status="absent")
                assert not dialed(first)
                proxy.frozen.set()
                for _ in range(2):
                    started = time.monotonic()
                    trace = await s.call(gateway, recording_status="absent", hangup_during_greeting=True)
                    elapsed = time.monotonic() - started
                    assert not dialed(trace) and "is away at the moment" in heard(trace)
                    assert elapsed < BOUND_SECONDS, (
                        f"the call waited {elapsed:.1f} s on a hanging IMAP server"
                    )
        finally:
            await proxy.stop()

    asyncio.run(scenario())
