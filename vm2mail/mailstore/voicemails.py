"""Read and change the voicemails of one folder by their headers and flags: the menu's and watcher's view."""

from __future__ import annotations

import bisect
import dataclasses
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

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
    entry_order,
    parse_fetch,
    sort_entries,
    uid_set,
)
from vm2mail.mailstore.protocol import Fetched, Status
from vm2mail.mailstore.store import ImapStore, Pool

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


# -- the cached folder view ----------------------------------------------------------------------------


@dataclass
class _View:
    """What we last read of one folder: every UID (voicemail or not), the voicemails, the sync state."""

    uidvalidity: int
    highestmodseq: int | None
    uidnext: int
    messages: int
    uids: set[int] = field(default_factory=set)
    entries: dict[int, Entry] = field(default_factory=dict)
    listing: Listing | None = None

    @classmethod
    def of(cls, status: Status) -> _View:
        """An empty view at the state a STATUS reply describes."""
        return cls(status.uidvalidity, status.highestmodseq, status.uidnext, status.messages)

    @property
    def state(self) -> tuple[int, int | None, int, int]:
        return (self.uidvalidity, self.highestmodseq, self.uidnext, self.messages)

    def same_as(self, now: _View) -> bool:
        """Nothing changed between this view and ``now`` (needs CONDSTORE's HIGHESTMODSEQ to tell)."""
        return self.highestmodseq is not None and self.state == now.state


class Voicemails:
    """Folder operations over the store's pooled connections; ``folder`` defaults to ``mailbox.folder``.

    Listings are cached per (login, folder) and revalidated on every call with one STATUS (RFC 7162
    HIGHESTMODSEQ): unchanged folders cost two round trips, changed ones only a CHANGEDSINCE fetch of
    the changed flags plus the new messages, so flags or moves by any other client show at once.
    """

    def __init__(self, store: ImapStore) -> None:
        self.store = store
        self._views: dict[tuple[str, str], _View] = {}
        self._trash: dict[str, str] = {}

    def _key(self, mailbox: Mailbox, folder: str) -> tuple[str, str]:
        return (self.store.credentials(mailbox)[0], folder)

    async def listing(self, mailbox: Mailbox, folder: str | None = None) -> Listing:
        """Every voicemail in the folder (headers and flags only); other mail is ignored."""
        name = folder or mailbox.folder
        key = self._key(mailbox, name)

        async def op(conn: ImapConnection, pool: Pool) -> Listing:
            view = await self._refresh(conn, pool, name, self._views.get(key))
            self._views[key] = view
            assert view.listing is not None
            return view.listing

        return await self.store.run(mailbox, op, folder=name)

    async def _fetch(self, conn: ImapConnection, uids: str, items: str) -> dict[int, Fetched]:
        return await conn.uid_fetch(uids, items)

    async def _refresh(self, conn: ImapConnection, pool: Pool, folder: str, old: _View | None) -> _View:
        # STATUS first, then SELECT only when something changed: re-selecting a folder of 10,000
        # messages costs more than everything else in a menu step. Reading the state before the
        # messages also means a change racing with us is seen (again) next time, never lost.
        # Dovecot answers STATUS for the selected folder from the session's view: NOOP syncs it first.
        selected = conn.selected == folder
        if selected:
            await conn.noop()
        status = await conn.status(folder, missing_ok=True) if old is not None else None
        if status is not None and old is not None and old.same_as(_View.of(status)):
            return old  # RFC 7162 §3.1.2.1: nothing in the folder changed since we read it
        if not selected:
            await self.store.select(conn, pool, folder)  # creates the folder if it is missing
        view = _View.of(status or await _status(conn, folder))
        modseq = view.highestmodseq
        usable = old is not None and old.uidvalidity == view.uidvalidity and old.highestmodseq is not None
        if old is None or not usable or modseq is None or old.listing is None:
            records = await conn.uid_fetch_all(FETCH_ITEMS, view.uidnext) if view.messages else {}
            view.uids = set(records)
            view.entries = {e.uid: e for e in entries_from(records.values())}
            ordered = sort_entries(view.entries.values())
            tally = Counts.of(ordered)
        else:
            # Only what changed is read and touched: on a folder of 10,000 messages even one Python
            # pass over every entry costs milliseconds per menu step.
            view.uids, view.entries = set(old.uids), dict(old.entries)
            ordered, tally = list(old.listing.entries), old.listing.counts
            last = max(old.uids, default=0)
            if last and old.highestmodseq is not None:
                # RFC 7162 §3.1.4: flags of the messages we know that changed since we read them.
                changed = await self._fetch(
                    conn, f"1:{last}", f"(UID FLAGS) (CHANGEDSINCE {old.highestmodseq})"
                )
                for uid, record in changed.items():
                    entry = view.entries.get(uid)
                    if entry is not None and record.flags is not None and record.flags != entry.flags:
                        now = view.entries[uid] = dataclasses.replace(entry, flags=record.flags)
                        ordered[_position(ordered, entry)] = now  # flags do not change the order
                        tally = tally.changed(removed=[entry], added=[now])
            if view.uidnext > last + 1:
                fresh = await conn.uid_fetch_all(FETCH_ITEMS, view.uidnext, first=last + 1)
                view.uids.update(fresh)
                for entry in entries_from(fresh.values()):
                    view.entries[entry.uid] = entry
                    bisect.insort(ordered, entry, key=entry_order)
                    tally = tally.changed(added=[entry])
            if len(view.uids) != view.messages:
                # Expunged or moved away by someone: learn which UIDs remain (RFC 3501 §6.4.4).
                view.uids = set(await conn.uid_search("ALL"))
                for uid in set(view.entries) - view.uids:
                    entry = view.entries.pop(uid)
                    del ordered[_position(ordered, entry)]
                    tally = tally.changed(removed=[entry])
        view.listing = Listing(
            folder=folder,
            uidvalidity=view.uidvalidity,
            highestmodseq=modseq,
            entries=tuple(ordered),
            tally=tally,
        )
        return view

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


def _position(ordered: list[Entry], entry: Entry) -> int:
    """Where ``entry`` (by UID) is in a list in (date, UID) order."""
    at = bisect.bisect_left(ordered, entry_order(entry), key=entry_order)
    if at >= len(ordered) or ordered[at].uid != entry.uid:
        raise AssertionError(f"UID {entry.uid} missing from the ordered listing")
    return at
