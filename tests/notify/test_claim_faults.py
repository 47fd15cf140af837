"""A connection lost in the middle of a claim leaves nothing behind that would block the notice."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace

import pytest

from tests.e2e.harness import Stack
from tests.notify.conftest import at, client, drop, flags, voicemail
from vm2mail.errors import MailStoreError
from vm2mail.mailstore.store import ImapStore
from vm2mail.mailstore.voicemails import NOTIFIED
from vm2mail.notify.claim import CLAIMS_FOLDER, claim


class CuttingProxy:
    """A TCP proxy to Dovecot that, once armed, drops the connection instead of passing on the
    server's answer to an APPEND: the marker is stored, but the claimant never learns it."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.armed = True
        self.cut = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, from_server: bool) -> None:
            while data := await src.read(65536):
                if from_server and self.armed and b"APPENDUID" in data:
                    self.armed = False
                    self.cut += 1
                    break  # the network fails right after the server stored the message
                dst.write(data)
                await dst.drain()

        try:
            await asyncio.wait(
                [
                    asyncio.ensure_future(pump(reader, up_writer, False)),
                    asyncio.ensure_future(pump(up_reader, writer, True)),
                ],
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for w in (writer, up_writer):
                w.transport.abort()


def test_connection_lost_after_the_marker_was_stored_takes_it_back(
    notify_stack: Callable[..., Stack],
) -> None:
    s = notify_stack()
    box = s.config.mailboxes["201"]
    mid = "<cut-1@vm.example.com>"
    uid = drop(s, "201", voicemail(message_id=mid, date=at(9, 0)), at(9, 0))
    proxy = CuttingProxy(s.dovecot.host, s.dovecot.port)

    async def scenario() -> tuple[int, bool]:
        await proxy.start()
        store = ImapStore(replace(s.config.imap, port=proxy.port))
        try:
            with pytest.raises(MailStoreError):
                await claim(store, box, "Voicemail", uid, mid, (NOTIFIED,))
            left = len(await asyncio.to_thread(client(s).messages, CLAIMS_FOLDER))
            # The next scan can claim the notice: no orphaned marker of the failed attempt blocks it.
            return left, await claim(store, box, "Voicemail", uid, mid, (NOTIFIED,))
        finally:
            await store.close()
            with contextlib.suppress(Exception):
                await proxy.stop()

    left, again = asyncio.run(scenario())
    assert proxy.cut == 1
    assert (left, again) == (0, True)
    assert NOTIFIED in flags(s, "201", uid)
