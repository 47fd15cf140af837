"""One watched folder: its own IMAP connection in IDLE, resynchronised by CONDSTORE after every wake."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from vm2mail.backoff import backoff as retry_delay
from vm2mail.config.model import ImapConfig, Mailbox, WatcherConfig
from vm2mail.errors import MailStoreError
from vm2mail.mailstore.connection import ImapConnection
from vm2mail.mailstore.protocol import Status
from vm2mail.mailstore.view import Change, FolderView
from vm2mail.watcher.state import WatchEvent

log = logging.getLogger(__name__)

BACKOFF_FIRST = 0.5  # seconds before the first reconnect; doubled per failure, with jitter
BACKOFF_MAX = 60.0
_MAX_ROUNDS = 5  # STATUS → fetch → STATUS rounds per sync before yielding to the events

# Called after every sync, on the session's connection (folder selected), with the changes it found:
# events made one at a time as the hook reads them (10,000 at once were a 20 ms turn of the loop).
SyncHook = Callable[["FolderSession", ImapConnection, Iterable[WatchEvent]], Awaitable[None]]


def backoff(failures: int) -> float:
    """Capped exponential backoff with ±20 % jitter, so a restarted server is not hit all at once."""
    return retry_delay(failures, first=BACKOFF_FIRST, cap=BACKOFF_MAX)


class FolderSession:
    """Keeps the folder's live view current: IDLE (RFC 2177) or polling, reconnecting after any failure.

    Untagged responses are only wake-up hints (aioimaplib drops some, FIELD-NOTES); the truth comes
    from a resync of the view (``FolderView.sync``: STATUS, then only what changed). Because the
    resync starts from the last HIGHESTMODSEQ, changes made while the connection was down are found
    after the reconnect like any other. The session hears of every change to the view, also those a
    menu step found first, and hands them to the watcher after its next sync.
    """

    def __init__(
        self,
        imap: ImapConfig,
        watcher: WatcherConfig,
        mailbox: Mailbox,
        login: str,
        password: str,
        on_sync: SyncHook,
        view: FolderView | None = None,
        opening: asyncio.Semaphore | None = None,
    ) -> None:
        self.imap = imap
        self.watcher = watcher
        self.mailbox = mailbox  # replaced on reload when only non-connection settings changed
        self.folder = mailbox.folder
        self.login = login
        self._password = password
        self._on_sync = on_sync
        # The gateway's live view of the folder (shared with the menu and every other reader): this
        # session keeps it current from IDLE and hears of every change, whoever found it.
        self.view = view if view is not None else FolderView(login, mailbox.folder)
        self._pending: list[Change] = []  # heard from the view, not yet handed to the watcher
        self._syncing = False
        self.conn: ImapConnection | None = None
        self.online = False
        self.syncs = 0
        self.reconnects = 0
        self._nudge = asyncio.Event()
        self._expunge_hint = False  # an IDLE push announced EXPUNGE/VANISHED
        # Shared by the watcher's sessions: how many may connect and run their first sync at once.
        self._opening = opening if opening is not None else asyncio.Semaphore(1)

    @property
    def state(self) -> FolderView:
        return self.view

    def _changed(self, view: FolderView, changes: list[Change]) -> None:
        self._pending.extend(changes)
        if not self._syncing:
            self.nudge()  # another reader (the menu) found these: report them from this session soon

    def key(self) -> tuple[Any, ...]:
        """What needs a new connection when it changes (credentials, server, folder, timings)."""
        return (self.imap, self.watcher, self.login, self._password, self.folder)

    def nudge(self) -> None:
        """Resync soon (e.g. after the gateway appended here), even if the server sends no push."""
        self._nudge.set()

    # -- the connection loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        unsubscribe = self.view.subscribe(self._changed)
        if self.view.synced:
            # Read before this session started (by the menu, or an earlier session): report what is
            # there as at any first sync.
            self._changed(
                self.view, [Change(kind="new", entry=e, initial=True) for e in self.view.listing.entries]
            )
        try:
            await self._run()
        finally:
            unsubscribe()

    async def _run(self) -> None:
        failures = 0
        while True:
            conn: ImapConnection | None = None
            try:
                async with self._opening:
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
        self._syncing = True
        try:
            for _ in range(_MAX_ROUNDS):
                status, _changes = await self.view.sync(conn, expunged=expunged)
                expunged = False
                if await self._status(conn) == status:
                    break
            else:
                self.nudge()  # a folder changing this fast: carry on after the events so far
        finally:
            self._syncing = False
        self.syncs += 1
        changes, self._pending = self._pending, []
        await self._on_sync(self, conn, self._events(changes))

    def _events(self, changes: list[Change]) -> Iterator[WatchEvent]:
        for c in changes:
            yield WatchEvent(
                kind=c.kind,
                mailbox=self.mailbox,
                folder=self.folder,
                entry=c.entry,
                previous=c.previous,
                initial=c.initial,
            )

    async def _status(self, conn: ImapConnection) -> Status:
        # A reply without UIDVALIDITY/MESSAGES: the folder vanished under us (deleted by the user):
        # reconnect, re-create, full resync.
        status = await conn.status(self.folder, incomplete_breaks=True)
        assert status is not None  # without missing_ok a missing folder raises
        return status
