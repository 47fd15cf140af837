"""Counts follow what another IMAP client does: \\Seen, \\Flagged, expunge, move, new mail."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.watcher.conftest import Setup, in_thread, plain_mail, until, voicemail, watching
from vm2mail.mailstore.voicemails import Counts


def test_flags_expunge_and_move_reach_counts(setup: Callable[..., Setup]) -> None:
    s = setup()
    client = s.clients["201"]
    client.create_folder("Voicemail")
    uids = [client.append("Voicemail", voicemail()) for _ in range(4)]
    client.append("Voicemail", plain_mail())  # other mail in the folder is not counted

    async def scenario() -> None:
        async with watching(s.config) as (watcher, events):
            await until(lambda: watcher.counts("201") == Counts(new=4, heard=0, saved=0, total=4), "initial")
            await until(lambda: len(events) == 4, "initial events")
            assert sorted(e.entry.uid for e in events if e.kind == "new") == uids
            assert all(e.initial for e in events)

            await in_thread(client.set_flags, "Voicemail", uids[0], "\\Seen")
            await until(lambda: watcher.counts("201") == Counts(new=3, heard=1, saved=0, total=4), "seen")
            await in_thread(client.set_flags, "Voicemail", uids[1], "\\Seen", "\\Flagged")
            await until(lambda: watcher.counts("201") == Counts(new=2, heard=1, saved=1, total=4), "flagged")
            await in_thread(client.move, "Voicemail", uids[2], "Trash")
            await until(lambda: watcher.counts("201") == Counts(new=1, heard=1, saved=1, total=3), "moved")
            with client.session("Voicemail") as imap:
                imap.uid("STORE", str(uids[3]), "+FLAGS", "(\\Deleted)")
                imap.expunge()
            await until(lambda: watcher.counts("201") == Counts(new=0, heard=1, saved=1, total=2), "expunged")
            new_uid = await in_thread(client.append, "Voicemail", voicemail())
            await until(lambda: watcher.counts("201") == Counts(new=1, heard=1, saved=1, total=3), "appended")
            await until(lambda: any(e.kind == "new" and e.entry.uid == new_uid for e in events), "new event")
            kinds = [(e.kind, e.entry.uid) for e in events if not e.initial]
            assert (
                ("flags", uids[0]) in kinds
                and ("removed", uids[2]) in kinds
                and ("removed", uids[3]) in kinds
            )
            seen = next(e for e in events if e.kind == "flags" and e.entry.uid == uids[0])
            assert seen.became_seen and seen.previous is not None and seen.previous.new

    asyncio.run(scenario())
