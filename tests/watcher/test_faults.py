"""Faults: Dovecot restarted, a connection cut mid-IDLE, a folder re-created, broken headers."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from collections.abc import Callable

import pytest

from tests.watcher.conftest import Setup, in_thread, until, voicemail, watching
from vm2mail.devstack.dovecot import DevDovecot
from vm2mail.mailstore.voicemails import Counts


def test_dovecot_restart_mid_watch_misses_nothing(setup: Callable[..., Setup], dovecot: DevDovecot) -> None:
    s = setup({"201": {}, "202": {}})
    a, b = s.clients["201"], s.clients["202"]
    for client in (a, b):
        client.create_folder("Voicemail")
    first = [a.append("Voicemail", voicemail()) for _ in range(2)]
    b.append("Voicemail", voicemail(mailbox="202"))

    async def scenario() -> None:
        async with watching(s.config) as (watcher, _):
            await until(
                lambda: watcher.counts("201") == Counts(new=2, heard=0, saved=0, total=2), "201 synced"
            )
            await until(lambda: watcher.counts("202") is not None, "202 synced")
            session = watcher.session("201")
            assert session is not None
            reconnects = session.reconnects
            await in_thread(dovecot.restart)
            # Changed at once after the restart, before the watcher is back: found by the resync.
            await in_thread(a.set_flags, "Voicemail", first[0], "\\Seen")
            await in_thread(b.append, "Voicemail", voicemail(mailbox="202"))
            await until(lambda: session.reconnects > reconnects, "201 reconnected")
            await until(lambda: watcher.counts("201") == Counts(new=1, heard=1, saved=0, total=2), "201 seen")
            await until(lambda: watcher.counts("202") == Counts(new=2, heard=0, saved=0, total=2), "202 new")
            await until(lambda: session.online, "201 watching again")
            # And a change after the watcher is back is seen too.
            await in_thread(a.set_flags, "Voicemail", first[1], "\\Seen", "\\Flagged")
            await until(
                lambda: watcher.counts("201") == Counts(new=0, heard=1, saved=1, total=2), "later change"
            )

    asyncio.run(scenario())


def test_connection_cut_mid_idle_reconnects_and_resyncs(
    setup: Callable[..., Setup], caplog: pytest.LogCaptureFixture
) -> None:
    s = setup()
    client = s.clients["201"]
    client.create_folder("Voicemail")
    uid = client.append("Voicemail", voicemail())

    async def scenario() -> None:
        async with watching(s.config) as (watcher, _):
            await until(lambda: watcher.counts("201") is not None, "synced")
            session = watcher.session("201")
            assert session is not None
            await until(
                lambda: session.conn is not None and session.conn.client.has_pending_idle(), "in IDLE"
            )
            assert session.conn is not None
            reconnects = session.reconnects
            dropped = weakref.ref(session.conn.client)
            # The "reconnecting" warning carries the error, whose traceback reaches the connection:
            # the test's log capture would keep it; a real log handler does not.
            caplog.set_level(logging.ERROR, logger="vm2mail.watcher.session")
            session.conn.client.protocol.transport.abort()  # the network drops the connection
            await in_thread(client.set_flags, "Voicemail", uid, "\\Seen")
            await until(lambda: session.reconnects > reconnects, "reconnected")
            await until(lambda: watcher.counts("201") == Counts(new=0, heard=1, saved=0, total=1), "resynced")
            # Nothing keeps the dropped connection alive (aioimaplib's end-of-IDLE timer would, for the
            # whole IDLE period): a gateway that reconnects 1,000 watchers does not pile up dead clients.
            gc.collect()
            assert dropped() is None

    asyncio.run(scenario())


def test_folder_deleted_and_recreated_uidvalidity_change(setup: Callable[..., Setup]) -> None:
    s = setup()
    client = s.clients["201"]
    client.create_folder("Voicemail")
    for _ in range(3):
        client.append("Voicemail", voicemail())

    async def scenario() -> None:
        async with watching(s.config) as (watcher, _):
            await until(lambda: watcher.counts("201") == Counts(new=3, heard=0, saved=0, total=3), "synced")
            session = watcher.session("201")
            assert session is not None
            old_validity = session.state.uidvalidity
            with client.session() as imap:
                assert imap.delete('"Voicemail"')[0] == "OK"
                assert imap.create('"Voicemail"')[0] == "OK"
            uid = await in_thread(client.append, "Voicemail", voicemail(), "\\Seen")
            await until(lambda: session.state.uidvalidity not in (0, old_validity), "new UIDVALIDITY")
            await until(lambda: watcher.counts("201") == Counts(new=0, heard=1, saved=0, total=1), "re-read")
            await in_thread(client.set_flags, "Voicemail", uid, "\\Flagged")
            await until(
                lambda: watcher.counts("201") == Counts(new=0, heard=0, saved=1, total=1), "then followed"
            )

    asyncio.run(scenario())


def test_broken_headers_are_skipped_and_watching_goes_on(setup: Callable[..., Setup]) -> None:
    s = setup()
    client = s.clients["201"]
    client.create_folder("Voicemail")
    broken = [
        voicemail(extra="X-Vm2mail-Duration: eleven\r\n").replace(b"X-Vm2mail-Duration: 11\r\n", b""),
        b"X-Vm2mail-Kind: greeting\r\nThis is no header\r\nDate: yesterday-ish\r\n\r\nbody\r\n",
        b"X-Vm2mail-Kind: \xff\xfe\x00garbage\r\nMessage-ID: <x@y>\r\n\r\n",
    ]
    for raw in broken:
        client.append("Voicemail", raw)
    good = client.append("Voicemail", voicemail())

    async def scenario() -> None:
        async with watching(s.config) as (watcher, _):
            await until(lambda: watcher.counts("201") == Counts(new=1, heard=0, saved=0, total=1), "good one")
            await in_thread(client.set_flags, "Voicemail", good, "\\Seen")
            await until(
                lambda: watcher.counts("201") == Counts(new=0, heard=1, saved=0, total=1), "still watching"
            )
            await in_thread(client.append, "Voicemail", broken[0])
            await in_thread(client.append, "Voicemail", voicemail())
            await until(
                lambda: watcher.counts("201") == Counts(new=1, heard=1, saved=0, total=2), "after more"
            )

    asyncio.run(scenario())
