"""The live folder view: one per (login, folder) per store, shared by readers; subscribers hear changes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.fixtures.dovecot import MailClient
from tests.mailstore.test_voicemails import setup, vm
from vm2mail.devstack.dovecot import DevDovecot
from vm2mail.mailstore.connection import ImapConnection
from vm2mail.mailstore.view import Change, FolderView
from vm2mail.mailstore.voicemails import Voicemails

Account = Callable[..., tuple[str, str]]
Client = Callable[[str, str], MailClient]


def test_readers_share_one_view_and_subscribers_hear_every_change(
    dovecot: DevDovecot, imap_account: Account, mail_client: Client
) -> None:
    box, client, store = setup(dovecot, imap_account, mail_client)
    first = client.append("Voicemail", vm("a", "Sun, 22 Nov 2026 09:00:00 +0000"))
    second = client.append("Voicemail", vm("b", "Sun, 22 Nov 2026 10:00:00 +0000"))
    menu, notifier = Voicemails(store), Voicemails(store)  # two readers of one gateway
    heard: list[list[Change]] = []

    def listener(view: FolderView, changes: list[Change]) -> None:
        heard.append(changes)

    async def scenario() -> None:
        view = menu.view(box)
        assert notifier.view(box) is view and store.views.get(view.login, "Voicemail") is view
        unsubscribe = view.subscribe(listener)
        listing = await menu.listing(box)
        assert [e.uid for e in listing.entries] == [first, second]
        assert [(c.kind, c.entry.uid, c.initial) for c in heard.pop()] == [
            ("new", first, True),
            ("new", second, True),
        ]
        # The other reader finds the folder unchanged: same listing object, nothing to tell.
        assert await notifier.listing(box) is listing and heard == []

        client.set_flags("Voicemail", first, "\\Seen")
        third = client.append("Voicemail", vm("c", "Sun, 22 Nov 2026 08:00:00 +0000"))
        client.move("Voicemail", second, "Trash")
        now = await notifier.listing(box)  # found by the second reader ...
        assert [e.uid for e in now.entries] == [third, first]
        assert now.counts.__dict__ == {"new": 1, "heard": 1, "saved": 0, "total": 2}
        changes = {(c.kind, c.entry.uid) for c in heard.pop()}  # ... told to the subscriber
        assert changes == {("flags", first), ("new", third), ("removed", second)}
        assert await menu.listing(box) is now  # ... and seen by the first without another read
        assert view.counts == now.counts and view.by_message_id("<c@vm.example.com>") is not None

        unsubscribe()
        client.set_flags("Voicemail", first, "\\Flagged")  # heard and flagged: saved
        assert (await menu.listing(box)).counts.__dict__ == {"new": 1, "heard": 0, "saved": 1, "total": 2}
        assert heard == []
        await store.close()

    asyncio.run(scenario())


def test_qresync_names_expunged_uids_so_a_resync_needs_no_search(
    dovecot: DevDovecot, imap_account: Account, mail_client: Client
) -> None:
    """Dovecot has QRESYNC (RFC 7162 §3.2): the resync learns what another client expunged from the
    VANISHED answer to its CHANGEDSINCE fetch, also when an append keeps the count the same."""
    user, password = imap_account()
    client = mail_client(user, password)
    client.create_folder("Voicemail")
    uids = [client.append("Voicemail", vm(f"q{n}", "Sun, 22 Nov 2026 09:00:00 +0000")) for n in range(3)]

    async def scenario() -> None:
        conn = await ImapConnection.open(dovecot.imap_config("none"), user, password)
        searches: list[tuple[str, ...]] = []
        search = conn.uid_search

        async def counted(*criteria: str) -> list[int]:
            searches.append(criteria)
            return await search(*criteria)

        conn.uid_search = counted  # type: ignore[method-assign]
        try:
            assert conn.qresync
            await conn.select("Voicemail")
            view = FolderView(user, "Voicemail")
            await view.sync(conn)
            assert sorted(view.entries) == uids
            client.move("Voicemail", uids[1], "Trash")  # expunged from Voicemail ...
            fourth = client.append("Voicemail", vm("q3", "Sun, 22 Nov 2026 10:00:00 +0000"))  # ... one more
            client.set_flags("Voicemail", uids[0], "\\Seen")
            await conn.noop()  # as the watcher does: Dovecot's STATUS of the selected folder lags otherwise
            _, changes = await view.sync(conn, expunged=True)
            assert {(c.kind, c.entry.uid) for c in changes} == {
                ("removed", uids[1]),
                ("new", fourth),
                ("flags", uids[0]),
            }
            assert sorted(view.entries) == [uids[0], uids[2], fourth]
            assert view.counts.__dict__ == {"new": 2, "heard": 1, "saved": 0, "total": 3}
            assert searches == []  # VANISHED said which UID went: no UID SEARCH ALL of the folder
        finally:
            await conn.logout()

    asyncio.run(scenario())
