"""Without CONDSTORE (RFC 7162) the watcher still follows flags, expunges and new mail, reading flags only."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.watcher.conftest import Setup, in_thread, until, voicemail, watching
from vm2mail.devstack.dovecot import DevDovecot, drop_condstore
from vm2mail.mailstore.voicemails import Counts


class NoCondstoreDovecot(DevDovecot):
    def _prepare(self) -> None:
        super()._prepare()
        drop_condstore(self.config_file)


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevDovecot]:
    """This module's own Dovecot, announcing no CONDSTORE/QRESYNC."""
    server = NoCondstoreDovecot(Path(tmp_path_factory.mktemp("dovecot-nocondstore")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_counts_and_events_follow_changes_without_condstore(setup: Callable[..., Setup]) -> None:
    s = setup()
    client = s.clients["201"]
    client.create_folder("Voicemail")
    uids = [client.append("Voicemail", voicemail()) for _ in range(3)]

    async def scenario() -> None:
        async with watching(s.config) as (watcher, events):
            await until(lambda: watcher.counts("201") == Counts(new=3, heard=0, saved=0, total=3), "initial")
            session = watcher.session("201")
            assert session is not None and session.conn is not None
            assert not session.conn.has_capability("CONDSTORE")
            await in_thread(client.set_flags, "Voicemail", uids[0], "\\Seen")
            await until(lambda: watcher.counts("201") == Counts(new=2, heard=1, saved=0, total=3), "seen")
            await in_thread(client.move, "Voicemail", uids[1], "Trash")
            await until(lambda: watcher.counts("201") == Counts(new=1, heard=1, saved=0, total=2), "moved")
            new_uid = await in_thread(client.append, "Voicemail", voicemail())
            await until(lambda: watcher.counts("201") == Counts(new=2, heard=1, saved=0, total=3), "appended")
            wanted = {("flags", uids[0]), ("removed", uids[1]), ("new", new_uid)}
            # Subscribers hear of a sync after the view's counts changed: wait for the events too.
            await until(lambda: wanted <= {(e.kind, e.entry.uid) for e in events if not e.initial}, "events")

    asyncio.run(scenario())
