"""Read and change the voicemails of one folder by their headers and flags: the menu's and watcher's view."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from vm2mail.config.model import Mailbox
from vm2mail.mailstore.connection import ImapConnection
from vm2mail.mailstore.entries import (  # the folder API in one import: see __all__
    DELETED,
    FETCH_ITEMS,
    FLAGGED,
    HANDLED,
    KINDS,
    LIST_HEADERS,
    NOTIFIED,
    REMINDED,
    SEEN,
    Counts,
    Entry,
    Listing,
    counts,
    entries_from,
    parse_fetch,
    uid_set,
)
from vm2mail.mailstore.protocol import Fetched, Status
from vm2mail.mailstore.store import ImapStore, Pool
from vm2mail.mailstore.view import FolderView

__all__ = [
    "DELETED",
    "FETCH_ITEMS",
    "FLAGGED",
    "HANDLED",
    "KINDS",
    "LIST_HEADERS",
    "NOTIFIED",
    "REMINDED",
    "SEEN",
    "Counts",
    "Entry",
    "Listing",
    "Voicemails",
    "counts",
    "parse_fetch",
    "uid_set",
]

log = logging.getLogger(__name__)

_FLAG = re.compile(r"^\\?[A-Za-z0-9$_.\-]+$")


async def _status(conn: ImapConnection, folder: str) -> Status:
    status = await conn.status(folder)
    assert status is not None  # without missing_ok a missing folder raises
    return status


def _check_flags(flags: Iterable[str]) -> str:
    items = list(flags)
    for flag in items:
        if not _FLAG.match(flag):
            raise ValueError(f"not an IMAP flag: {flag!r}")
    return " ".join(items)


class Voicemails:
    """Folder operations over the store's pooled connections; ``folder`` defaults to ``mailbox.folder``.

    Listings come from the gateway's live view of the folder (``store.views``, shared with the watcher
    and every other reader), revalidated on every call with one STATUS (RFC 7162 HIGHESTMODSEQ):
    unchanged folders cost two round trips, changed ones only a CHANGEDSINCE fetch of the changed
    flags plus the new messages, so flags or moves by any other client show at once.
    """

    def __init__(self, store: ImapStore) -> None:
        self.store = store
        self._trash: dict[str, str] = {}

    def view(self, mailbox: Mailbox, folder: str | None = None) -> FolderView:
        """The gateway's live view of the folder (see mailstore/view.py), shared with the watcher."""
        return self.store.views.get(self.store.credentials(mailbox)[0], folder or mailbox.folder)

    async def listing(self, mailbox: Mailbox, folder: str | None = None) -> Listing:
        """Every voicemail in the folder (headers and flags only); other mail is ignored."""
        name = folder or mailbox.folder
        view = self.view(mailbox, name)

        async def op(conn: ImapConnection, pool: Pool) -> Listing:
            # STATUS first, then SELECT only when something changed: re-selecting a folder of 10,000
            # messages costs more than everything else in a menu step. Dovecot answers STATUS for the
            # selected folder from the session's view: NOOP syncs it first.
            selected = conn.selected == name
            if selected:
                await conn.noop()
            if view.synced:
                status = await conn.status(name, missing_ok=True)
                if status is not None and view.unchanged(status):
                    return view.listing  # RFC 7162 §3.1.2.1: nothing in the folder changed
            if not selected:
                await self.store.select(conn, pool, name)  # creates the folder if it is missing
            await view.sync(conn, incomplete_breaks=False)
            return view.listing

        return await self.store.run(mailbox, op, folder=name)

    async def _fetch(self, conn: ImapConnection, uids: str, items: str) -> dict[int, Fetched]:
        return await conn.uid_fetch(uids, items)

    async def entry(self, mailbox: Mailbox, uid: int, folder: str | None = None) -> Entry | None:
        """One voicemail by UID, or None when it is gone (expunged, moved) or not a voicemail."""
        name = folder or mailbox.folder

        async def op(conn: ImapConnection, pool: Pool) -> Entry | None:
            await self.store.select(conn, pool, name)
            records = await self._fetch(conn, str(uid), FETCH_ITEMS)
            found = entries_from(r for r in records.values() if r.uid == uid)
            return found[0] if found else None

        return await self.store.run(mailbox, op, folder=name)

    async def locate(self, mailbox: Mailbox, uid: int, folder: str | None = None) -> int | None:
        """The folder's UIDVALIDITY when message ``uid`` is there (voicemail or not), else None."""
        name = folder or mailbox.folder

        async def op(conn: ImapConnection, pool: Pool) -> int | None:
            await self.store.select(conn, pool, name)
            status = await _status(conn, name)
            found = await self._fetch(conn, str(uid), "(UID)")
            return status.uidvalidity if uid in found else None

        return await self.store.run(mailbox, op, folder=name)

    async def fetch(self, mailbox: Mailbox, uid: int, folder: str | None = None) -> bytes | None:
        """The whole message (BODY.PEEK[], so not marked seen), or None when it is gone."""
        name = folder or mailbox.folder

        async def op(conn: ImapConnection, pool: Pool) -> bytes | None:
            await self.store.select(conn, pool, name)
            record = (await self._fetch(conn, str(uid), "(UID BODY.PEEK[])")).get(uid)
            return record.literal if record is not None else None

        return await self.store.run(mailbox, op, folder=name)

    async def set_flags(
        self,
        mailbox: Mailbox,
        uids: list[int],
        *,
        add: tuple[str, ...] = (),
        remove: tuple[str, ...] = (),
        folder: str | None = None,
    ) -> None:
        """UID STORE +FLAGS.SILENT / -FLAGS.SILENT (RFC 3501 §6.4.6)."""
        if not uids or not (add or remove):
            return
        name = folder or mailbox.folder
        adding, removing = _check_flags(add), _check_flags(remove)

        async def op(conn: ImapConnection, pool: Pool) -> None:
            await self.store.select(conn, pool, name)
            for sign, flags in (("+", adding), ("-", removing)):
                if flags:
                    await conn.uid_store(uid_set(uids), f"{sign}FLAGS.SILENT", flags.split())

        await self.store.run(mailbox, op, folder=name)

    async def trash_folder(self, mailbox: Mailbox) -> str:
        """The account's ``\\Trash`` folder (RFC 6154 SPECIAL-USE), else "Trash" (created if missing)."""
        login = self.store.credentials(mailbox)[0]
        cached = self._trash.get(login)
        if cached is not None:
            return cached

        async def op(conn: ImapConnection, pool: Pool) -> str:
            found = await conn.special_trash()
            if found is not None:
                return found
            await self.store.ensure_folder(conn, pool, "Trash")
            return "Trash"

        folder = await self.store.run(mailbox, op)
        self._trash[login] = folder
        return folder

    async def move(self, mailbox: Mailbox, uid: int, source: str, target: str) -> int | None:
        """UID MOVE (RFC 6851) one message; its new UID from COPYUID, None when it was already gone."""

        async def op(conn: ImapConnection, pool: Pool) -> int | None:
            await self.store.ensure_folder(conn, pool, target)
            await self.store.select(conn, pool, source)
            return (await conn.uid_move(str(uid), target)).get(uid)

        return await self.store.run(mailbox, op, folder=source)

    async def append(
        self, mailbox: Mailbox, folder: str, message: bytes, *, flags: tuple[str, ...] = ()
    ) -> int:
        """APPEND with flags (folder created and subscribed if missing); the new UID."""
        flag_list = _check_flags(flags)

        async def op(conn: ImapConnection, pool: Pool) -> int:
            await self.store.ensure_folder(conn, pool, folder)
            uid = await conn.append(folder, message, flags=tuple(flag_list.split()))
            if uid is None:
                raise conn.error(f"APPEND to {folder!r}: no APPENDUID (RFC 4315) in the reply")
            return uid

        return await self.store.run(mailbox, op)

    async def expunge(self, mailbox: Mailbox, uids: list[int], folder: str) -> None:
        """Mark ``uids`` \\Deleted and UID EXPUNGE (RFC 4315) only those."""
        if not uids:
            return

        async def op(conn: ImapConnection, pool: Pool) -> None:
            await self.store.select(conn, pool, folder)
            await conn.uid_store(uid_set(uids), "+FLAGS.SILENT", (DELETED,))
            # RFC 4315 §2.1: UID EXPUNGE removes only these, not other \Deleted messages of the folder.
            await conn.uid_expunge(uid_set(uids))

        await self.store.run(mailbox, op, folder=folder)
