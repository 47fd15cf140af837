"""One live view per (login, folder) per gateway: a folder's voicemails, kept current, shared by all readers.

The watcher keeps each view current from IDLE pushes (it calls ``sync`` on its own connection after
each one); the menu (``Voicemails.listing``), the notifier, retention, group sync and the web inbox
read the same object, and a reader that finds the folder changed (one STATUS) syncs it on its own
pooled connection. Whoever syncs, every subscriber hears of the changes. The views live on the
``ImapStore`` (``store.views``), so one store is one gateway's set of views.

Use::

    view = store.views.get(login, folder)
    status, changes = await view.sync(conn)   # conn has ``folder`` selected; a lock serialises syncs
    view.listing                              # Listing: entries in (date, UID) order, counts
    view.counts, view.entries, view.by_message_id("<...>")
    unsubscribe = view.subscribe(callback)    # callback(view, changes) after any sync that changed it

A sync reads STATUS (RFC 3501 §6.3.10) and then only what changed: with CONDSTORE (RFC 7162)
``UID FETCH 1:n (UID FLAGS) (CHANGEDSINCE m)``, without it the flags of every known message (never
their headers again); headers of the UIDs above the last known one; ``UID SEARCH ALL`` when the
count says something went away. With QRESYNC (RFC 7162 §3.2, enabled on every connection whose
server has it) the CHANGEDSINCE fetch also names the expunged UIDs (``VANISHED``), and the search is
needed only if the count still disagrees. The first sync (or a new UIDVALIDITY) reads every header, in UID
ranges (``uid_fetch_all``) so the event loop is never held up. Callbacks run synchronously inside
``sync`` and must not block.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from vm2mail import longlived
from vm2mail.mailstore.connection import ImapConnection
from vm2mail.mailstore.entries import (
    FETCH_ITEMS,
    Counts,
    Entry,
    Listing,
    entries_from,
    entry_order,
    sort_entries,
)
from vm2mail.mailstore.protocol import Status

log = logging.getLogger(__name__)

ChangeKind = Literal["new", "flags", "removed"]
# A flags-only FETCH line is ~60 bytes: bigger ranges than for headers keep the round trips few.
FLAGS_CHUNK = 500
CHANGE_BATCH = 2000  # initial changes built between yields to the event loop


@dataclass(frozen=True, kw_only=True, slots=True)
class Change:
    """``new`` (``initial`` when read at the first sync or after a new UIDVALIDITY), ``flags`` (with
    the ``previous`` entry) or ``removed`` (expunged or moved away; ``entry`` is the last known state)."""

    kind: ChangeKind
    entry: Entry
    previous: Entry | None = None
    initial: bool = False


Subscriber = Callable[["FolderView", list[Change]], None]


class FolderView:
    """What the gateway knows of one folder: every UID (voicemail or not), the voicemails, sync state."""

    def __init__(self, login: str, folder: str) -> None:
        self.login = login
        self.folder = folder
        self.uidvalidity = 0
        self.highestmodseq: int | None = None
        self.uidnext = 0
        self.messages = 0
        self.uids: set[int] = set()
        self.entries: dict[int, Entry] = {}
        self.synced = False  # at least one complete sync happened
        self._ordered: list[Entry] = []  # entries in (date, UID) order
        self._tally = Counts(new=0, heard=0, saved=0, total=0)
        self._listing: Listing | None = None
        self._lock = asyncio.Lock()
        self._subscribers: list[Subscriber] = []

    # -- reading -------------------------------------------------------------------------------------

    @property
    def counts(self) -> Counts:
        return self._tally

    @property
    def listing(self) -> Listing:
        if self._listing is None:
            self._listing = Listing(
                folder=self.folder,
                uidvalidity=self.uidvalidity,
                highestmodseq=self.highestmodseq,
                entries=tuple(self._ordered),
                tally=self._tally,
            )
        return self._listing

    def by_message_id(self, message_id: str) -> Entry | None:
        return next((e for e in self.entries.values() if e.message_id == message_id), None)

    def unchanged(self, status: Status) -> bool:
        """Nothing in the folder changed since the last sync (RFC 7162 §3.1.2.1: needs HIGHESTMODSEQ)."""
        return (
            self.synced
            and status.highestmodseq is not None
            and (status.uidvalidity, status.highestmodseq, status.uidnext, status.messages)
            == (self.uidvalidity, self.highestmodseq, self.uidnext, self.messages)
        )

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(view, changes)`` after every sync that changed something; returns the undo."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    # -- syncing -------------------------------------------------------------------------------------

    async def sync(
        self, conn: ImapConnection, *, expunged: bool = False, incomplete_breaks: bool = True
    ) -> tuple[Status, list[Change]]:
        """Bring the view up to date on ``conn`` (folder selected); the STATUS it used and the changes.

        ``expunged``: a push announced EXPUNGE/VANISHED, so the UIDs are checked even if the message
        count looks unchanged (an expunge and an append together keep it).
        """
        async with self._lock:
            status = await conn.status(self.folder, incomplete_breaks=incomplete_breaks)
            assert status is not None  # without missing_ok a missing folder raises
            if self.unchanged(status) and not expunged:
                return status, []
            changes = await self._apply(conn, status, expunged)
        if changes:
            for callback in list(self._subscribers):
                try:
                    callback(self, changes)
                except Exception:  # one broken subscriber must not stop the others or the sync
                    log.exception("folder view %r subscriber failed", self.folder)
        return status, changes

    async def _apply(self, conn: ImapConnection, status: Status, expunged: bool) -> list[Change]:
        if not self.synced or self.uidvalidity != status.uidvalidity:
            if self.synced:
                # RFC 3501 §2.3.1.1: a new UIDVALIDITY invalidates every UID we knew (folder re-created).
                log.warning("folder %r of %s: UIDVALIDITY changed; full resync", self.folder, self.login)
            changes = await self._full(conn, status)
        else:
            changes = await self._incremental(conn, status, expunged)
        self.uidvalidity, self.highestmodseq = status.uidvalidity, status.highestmodseq
        self.uidnext, self.messages, self.synced = status.uidnext, status.messages, True
        self._listing = None
        return changes

    async def _full(self, conn: ImapConnection, status: Status) -> list[Change]:
        self.uids, self.entries = set(), {}
        if status.messages:
            # Each range is digested before the next is asked for: no long stretch without a yield.
            async for records in conn.uid_fetch_ranges(FETCH_ITEMS, status.uidnext):
                self.uids.update(records)
                self.entries.update((e.uid, e) for e in entries_from(records.values()))
        await asyncio.sleep(0)  # the last range was just digested: sort in a turn of its own
        self._ordered = sort_entries(self.entries.values())
        self._tally = Counts.of(self._ordered)
        longlived.settle(len(self._ordered))  # 10,000 entries: out of the GC's full passes
        changes: list[Change] = []
        for start in range(0, len(self._ordered), CHANGE_BATCH):
            await asyncio.sleep(0)  # 10,000 changes are ~10 ms of work: in a few turns of the loop
            batch = self._ordered[start : start + CHANGE_BATCH]
            changes.extend(Change(kind="new", entry=e, initial=True) for e in batch)
        return changes

    async def _incremental(self, conn: ImapConnection, status: Status, expunged: bool) -> list[Change]:
        # Only what changed is read and touched: on a folder of 10,000 messages even one Python pass
        # over every entry costs milliseconds per menu step.
        changes: list[Change] = []
        last = max(self.uids, default=0)
        remaining: set[int] | None = None
        vanished: set[int] | None = None
        if last:
            if status.highestmodseq is not None and self.highestmodseq is not None:
                # RFC 7162 §3.1.4: only the messages whose flags changed since the modseq we saw; with
                # QRESYNC (§3.2.6) also those expunged since, so no UID SEARCH is needed to find them.
                changed, vanished = await conn.uid_fetch_changed(f"1:{last}", self.highestmodseq)
            else:
                # No CONDSTORE: every known message's flags; those that answer are those still there.
                changed = await conn.uid_fetch_all("(UID FLAGS)", last + 1, chunk=FLAGS_CHUNK)
                remaining = {u for u in changed if u <= last}
            for uid, record in changed.items():
                entry = self.entries.get(uid)
                if entry is not None and record.flags is not None and record.flags != entry.flags:
                    now = self.entries[uid] = dataclasses.replace(entry, flags=record.flags)
                    self._ordered[self._position(entry)] = now  # flags do not change the order
                    self._tally = self._tally.changed(removed=[entry], added=[now])
                    changes.append(Change(kind="flags", entry=now, previous=entry))
        fresh: set[int] = set()
        if status.uidnext > last + 1:
            async for records in conn.uid_fetch_ranges(FETCH_ITEMS, status.uidnext, first=last + 1):
                fresh.update(records)
                for entry in sort_entries(entries_from(records.values())):
                    self.entries[entry.uid] = entry
                    bisect.insort(self._ordered, entry, key=entry_order)
                    self._tally = self._tally.changed(added=[entry])
                    changes.append(Change(kind="new", entry=entry))
        if vanished is not None:
            gone = vanished & self.uids
            if len(self.uids) - len(gone) + len(fresh) == status.messages:
                # QRESYNC told what went away, and the count agrees: the hint needs no search.
                expunged = False
                if gone:
                    remaining = self.uids - gone
        if remaining is None and (expunged or len(self.uids) + len(fresh) != status.messages):
            # Expunged or moved away by someone (RFC 3501 §6.4.4): learn which UIDs remain.
            remaining = set(await conn.uid_search("ALL"))
        if remaining is None:
            self.uids |= fresh
        else:
            # UIDs that arrived after the fetch above are left to the next sync (their headers are unread).
            self.uids = (self.uids & remaining) | fresh
            for uid in [u for u in self.entries if u not in self.uids]:
                entry = self.entries.pop(uid)
                del self._ordered[self._position(entry)]
                self._tally = self._tally.changed(removed=[entry])
                changes.append(Change(kind="removed", entry=entry))
        return changes

    def _position(self, entry: Entry) -> int:
        """Where ``entry`` (by UID) is in the (date, UID) ordered list."""
        at = bisect.bisect_left(self._ordered, entry_order(entry), key=entry_order)
        if at >= len(self._ordered) or self._ordered[at].uid != entry.uid:
            raise AssertionError(f"UID {entry.uid} missing from the ordered listing")
        return at


class FolderViews:
    """The gateway's views, one per (login, folder), created on first use."""

    def __init__(self) -> None:
        self._views: dict[tuple[str, str], FolderView] = {}

    def get(self, login: str, folder: str) -> FolderView:
        key = (login, folder)
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = FolderView(login, folder)
        return view
