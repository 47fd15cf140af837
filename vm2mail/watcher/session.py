"""One watched folder: its own IMAP connection in IDLE, resynchronised by CONDSTORE after every wake."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from vm2mail.backoff import backoff as retry_delay
from vm2mail.config.model import ImapConfig, Mailbox, WatcherConfig
from vm2mail.errors import MailStoreError
from vm2mail.mailstore.connection import ImapConnection
from vm2mail.mailstore.entries import entries_from
from vm2mail.mailstore.protocol import Status
from vm2mail.mailstore.voicemails import FETCH_ITEMS, Entry
from vm2mail.watcher.state import FolderState, WatchEvent, diff

log = logging.getLogger(__name__)

BACKOFF_FIRST = 0.5  # seconds before the first reconnect; doubled per failure, with jitter
BACKOFF_MAX = 60.0
_MAX_ROUNDS = 5  # STATUS → fetch → STATUS rounds per sync before yielding to the events

# Called after every sync, on the session's connection (folder selected), with the changes it found.
SyncHook = Callable[["FolderSession", ImapConnection, list[WatchEvent]], Awaitable[None]]


def backoff(failures: int) -> float:
    """Capped exponential backoff with ±20 % jitter, so a restarted server is not hit all at once."""
    return retry_delay(failures, first=BACKOFF_FIRST, cap=BACKOFF_MAX)


class FolderSession:
    """Keeps ``state`` equal to the folder: IDLE (RFC 2177) or polling, reconnecting after any failure.

    Untagged responses are only wake-up hints (aioimaplib drops some, FIELD-NOTES); the truth comes
    from a resync: STATUS, then RFC 7162 ``UID FETCH (FLAGS) (CHANGEDSINCE modseq)`` for known UIDs,
    a header fetch for UIDs above the last one seen, and ``UID SEARCH ALL`` when the message count
    says something was expunged. Because the resync starts from the last HIGHESTMODSEQ, changes made
    while the connection was down are found after the reconnect like any other.
    """

    def __init__(
        self,
        imap: ImapConfig,
        watcher: WatcherConfig,
        mailbox: Mailbox,
        login: str,
        password: str,
        on_sync: SyncHook,
    ) -> None:
        self.imap = imap
        self.watcher = watcher
        self.mailbox = mailbox  # replaced on reload when only non-connection settings changed
        self.folder = mailbox.folder
        self.login = login
        self._password = password
        self._on_sync = on_sync
        self.state = FolderState()
        self.conn: ImapConnection | None = None
        self.online = False
        self.syncs = 0
        self.reconnects = 0
        self._nudge = asyncio.Event()
        self._expunge_hint = False  # an IDLE push announced EXPUNGE/VANISHED

    def key(self) -> tuple[Any, ...]:
        """What needs a new connection when it changes (credentials, server, folder, timings)."""
        return (self.imap, self.watcher, self.login, self._password, self.folder)

    def nudge(self) -> None:
        """Resync soon (e.g. after the gateway appended here), even if the server sends no push."""
        self._nudge.set()

    # -- the connection loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        failures = 0
        while True:
            conn: ImapConnection | None = None
            try:
                conn = await ImapConnection.open(self.imap, self.login, self._password)
                self.conn = conn
                await self._select(conn)
                await self.sync(conn)
                self.online, failures = True, 0
                log.info("watching %r of %s (mailbox %s)", self.folder, self.login, self.mailbox.id)
                while True:
                    await self._wait(conn)
                    await self.sync(conn)
            except MailStoreError as exc:
                failures += 1
                log.warning("watch %s %r: %s; reconnecting", self.mailbox.id, self.folder, exc)
            except Exception:  # a bug or unexpected protocol data must not end watching this folder
                failures += 1
                log.exception("watch %s %r: unexpected error; reconnecting", self.mailbox.id, self.folder)
            finally:
                self.online = False
                if conn is not None:
                    conn.discard()
                self.conn = None
            self.reconnects += 1
            await asyncio.sleep(backoff(failures))

    async def reselect(self, conn: ImapConnection) -> None:
        """SELECT the watched folder again after housekeeping selected another one on this connection."""
        await self._select(conn)

    async def _select(self, conn: ImapConnection) -> None:
        if not await conn.select(self.folder, missing_ok=True):
            # Missing (never delivered to, or deleted by the user): create it as the store would.
            await conn.create(self.folder, strict=False)
            await conn.select(self.folder)

    async def _wait(self, conn: ImapConnection) -> None:
        """Return when the folder may have changed: a push, a nudge, the IDLE period or poll interval."""
        if self._nudge.is_set():
            self._nudge.clear()
            return
        if not conn.has_capability("IDLE"):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudge.wait(), self.watcher.poll_seconds)
            self._nudge.clear()
            return
        # RFC 2177: re-issue IDLE at least every 29 minutes; idle_seconds is the configured period.
        outcome = await conn.idle(self.watcher.idle_seconds, self._nudge)
        if outcome == "woken":
            self._nudge.clear()
        elif outcome == "expunge":
            self._expunge_hint = True

    # -- resynchronisation -----------------------------------------------------------------------------

    async def sync(self, conn: ImapConnection) -> None:
        """Bring ``state`` up to date with the selected folder and report the differences.

        Dovecot answers STATUS on the selected folder from the session's view, which moves on at the
        end of every command (RFC 3501 §7: untagged updates may follow any command). So: NOOP to bring
        the view up to date, STATUS, the fetches, then STATUS again; if the view moved meanwhile, go
        round once more. Updates the server already reported in a command's reply are never pushed
        again during IDLE, so stopping earlier could leave a change unseen until the next one.
        """
        # RFC 3501 §6.1.2: NOOP lets the server report what happened to the selected mailbox.
        pushes = await conn.noop()  # raises on an untagged NO/BAD/BYE: a new session is needed
        expunged = self._expunge_hint or "expunge" in pushes
        self._expunge_hint = False
        status = await self._status(conn)
        events: list[WatchEvent] = []
        for _ in range(_MAX_ROUNDS):
            events += await self._round(conn, status, expunged)
            expunged = False
            after = await self._status(conn)
            if after == status:
                break
            status = after
        else:
            self.nudge()  # a folder changing this fast: carry on after the events so far
        self.syncs += 1
        await self._on_sync(self, conn, events)

    async def _round(self, conn: ImapConnection, status: Status, expunged: bool) -> list[WatchEvent]:
        """Apply one STATUS snapshot to ``state``; the events it implies."""
        state = self.state
        uidvalidity, messages = status.uidvalidity, status.messages
        modseq, uidnext = status.highestmodseq, status.uidnext
        fresh = not state.synced or state.uidvalidity != uidvalidity
        if state.synced and state.uidvalidity != uidvalidity:
            # RFC 3501 §2.3.1.1: a new UIDVALIDITY invalidates every UID we knew (folder re-created).
            log.warning("watch %s %r: UIDVALIDITY changed; full resync", self.mailbox.id, self.folder)
        before = state.entries
        if fresh:
            uids, entries = await self._full(conn, messages, uidnext)
        elif (
            modseq is not None
            and not expunged
            and (modseq, uidnext, messages) == (state.highestmodseq, state.uidnext, len(state.uids))
        ):
            return []  # RFC 7162 §3.1.2.1: nothing changed
        else:
            # Without CONDSTORE (modseq None) the flags of every known message are read, but never
            # their headers again: a change in a folder of 10,000 stays a ~0.1 s affair.
            since = state.highestmodseq if modseq is not None else None
            uids, entries = await self._incremental(conn, messages, uidnext, since, expunged)
        state.uidvalidity, state.highestmodseq, state.uidnext, state.messages = (
            uidvalidity,
            modseq,
            uidnext,
            messages,
        )
        state.uids, state.entries, state.synced = uids, entries, True
        return diff(self.mailbox, self.folder, {} if fresh else before, entries, initial=fresh)

    async def _status(self, conn: ImapConnection) -> Status:
        # A reply without UIDVALIDITY/MESSAGES: the folder vanished under us (deleted by the user):
        # reconnect, re-create, full resync.
        status = await conn.status(self.folder, incomplete_breaks=True)
        assert status is not None  # without missing_ok a missing folder raises
        return status

    async def _full(
        self, conn: ImapConnection, messages: int, uidnext: int
    ) -> tuple[set[int], dict[int, Entry]]:
        records = await conn.uid_fetch_all(FETCH_ITEMS, uidnext) if messages else {}
        return set(records), {e.uid: e for e in entries_from(records.values())}

    async def _incremental(
        self, conn: ImapConnection, messages: int, uidnext: int, since: int | None, expunged: bool
    ) -> tuple[set[int], dict[int, Entry]]:
        state = self.state
        uids, entries = set(state.uids), dict(state.entries)
        last = max(uids, default=0)
        if last:
            # RFC 7162 §3.1.4: only the messages whose flags changed since the modseq we saw; without
            # CONDSTORE all of them, and the UIDs that answer are exactly the known ones still there.
            if since is None:
                changed = await conn.uid_fetch_all("(UID FLAGS)", last + 1)
            else:
                changed = await conn.uid_fetch(f"1:{last}", f"(UID FLAGS) (CHANGEDSINCE {since})")
            if since is None:
                uids = {u for u in changed if u <= last}
                entries = {u: e for u, e in entries.items() if u in uids}
                expunged = False
            for uid, record in changed.items():
                entry = entries.get(uid)
                if entry is not None and record.flags is not None and record.flags != entry.flags:
                    entries[uid] = _with_flags(entry, record.flags)
        if uidnext > last + 1:
            # "n:*" always names the highest UID (RFC 3501 §6.4.8): keep only the really new ones.
            fresh = await conn.uid_fetch_all(FETCH_ITEMS, uidnext, first=last + 1)
            uids.update(fresh)
            entries.update((e.uid, e) for e in entries_from(fresh.values()))
        if expunged or len(uids) != messages:  # (always right without CONDSTORE unless racing)
            # Expunged or moved away by someone (RFC 3501 §6.4.4): learn which UIDs remain.
            uids = set(await conn.uid_search("ALL"))
            entries = {u: e for u, e in entries.items() if u in uids}
        return uids, entries


def _with_flags(entry: Entry, flags: frozenset[str]) -> Entry:
    return dataclasses.replace(entry, flags=flags)
