"""Group sync: one member hears or deletes a group copy, the other copies follow and say who did it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.fixtures.dovecot import MailClient
from tests.watcher.conftest import Setup, in_thread, until, voicemail, watching
from vm2mail.mailstore.voicemails import HANDLED
from vm2mail.watcher.groups import handled_by, handlers


def copy_flags(client: MailClient, message_id: str, folder: str = "Voicemail") -> frozenset[str] | None:
    for m in client.messages(folder):
        if message_id.encode() in m.raw:
            return m.flags
    return None


def test_group_copies_follow_seen_and_delete(setup: Callable[..., Setup]) -> None:
    s = setup(
        {
            "201": {},
            "202": {},
            "203": {},
            "300": {"members": ["201", "202", "203"]},
            "301": {"members": ["201", "202"], "group_sync": False},
        }
    )
    anna, bernd, carla = s.clients["201"], s.clients["202"], s.clients["203"]
    heard, deleted, unsynced = "<heard@vm>", "<deleted@vm>", "<unsynced@vm>"
    uids: dict[str, dict[str, int]] = {}
    for box, client in s.clients.items():
        client.create_folder("Voicemail")
        uids[box] = {
            heard: client.append("Voicemail", voicemail(mailbox="300", message_id=heard)),
            deleted: client.append("Voicemail", voicemail(mailbox="300", message_id=deleted)),
        }
        if box != "203":
            uids[box][unsynced] = client.append("Voicemail", voicemail(mailbox="301", message_id=unsynced))
    own = anna.append("Voicemail", voicemail(mailbox="201", message_id="<own@vm>"))  # not a group copy

    async def scenario() -> None:
        async with watching(s.config) as (watcher, _):
            for box in ("201", "202", "203"):
                await until(lambda b=box: watcher.counts(b) is not None, f"{box} synced")  # type: ignore[misc]

            await in_thread(anna.set_flags, "Voicemail", uids["201"][heard], "\\Seen")
            for other in (bernd, carla):
                await until(lambda c=other: "\\Seen" in (copy_flags(c, heard) or ()), "copy heard")  # type: ignore[misc]
                flags = copy_flags(other, heard)
                assert flags is not None and HANDLED in flags and handled_by("201") in flags
                assert handlers(flags) == ["201"]
            # Anna's own copy is not marked as handled by someone else.
            assert HANDLED not in (copy_flags(anna, heard) or {"?"})

            await in_thread(bernd.move, "Voicemail", uids["202"][deleted], "Trash")
            for other in (anna, carla):
                await until(lambda c=other: copy_flags(c, deleted) is None, "copy deleted")  # type: ignore[misc]
                trashed = copy_flags(other, deleted, "Trash")
                assert trashed is not None and handled_by("202") in trashed and HANDLED in trashed

            # group_sync off: Bernd hearing his copy leaves Anna's alone; a private voicemail never syncs.
            await in_thread(bernd.set_flags, "Voicemail", uids["202"][unsynced], "\\Seen")
            await in_thread(anna.set_flags, "Voicemail", own, "\\Seen")
            session = watcher.session("202")
            assert session is not None
            await until(lambda: not session.state.entries[uids["202"][unsynced]].new, "202 saw it heard")
            syncs = session.syncs
            session.nudge()  # the sync that saw it has finished its group sync once the next one ran
            await until(lambda: session.syncs > syncs, "202 resynced")
            flags = copy_flags(anna, unsynced)
            assert flags is not None and "\\Seen" not in flags and HANDLED not in flags

    asyncio.run(scenario())
