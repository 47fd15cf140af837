"""One watched folder: its own IMAP connection in IDLE, resynchronised by CONDSTORE after every wake."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from vm2mail.backoff import backoff as retry_delay
from vm2mail.config.model import ImapConfig, Mailbox, WatcherConfig
from vm2mail.errors import MailStoreError
from vm2mail.mailstore.connection import ImapConnection, response_text, search_uids
from vm2mail.mailstore.folders import wire_mailbox
from vm2mail.mailstore.voicemails import FETCH_ITEMS, Entry, parse_fetch
from vm2mail.watcher.state import FolderState, WatchEvent, diff

log = logging.getLogger(__name__)

BACKOFF_FIRST = 0.5  # seconds before the first reconnect; doubled per failure, with jitter
BACKOFF_MAX = 60.0
_MAX_ROUNDS = 5  # STATUS → fetch → STATUS rounds per sync before yielding to the events
_STATUS = re.compile(rb"(MESSAGES|UIDNEXT|UIDVALIDITY|HIGHESTMODSEQ) (\d+)", re.IGNORECASE)
_FETCH_UID = re.compile(rb"^\d+ FETCH \(.*?\bUID (\d+)", re.IGNORECASE)
_FETCH_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)", re.IGNORECASE)
# Pushes that say nothing about the folder: RFC 2177 keep-alives such as Dovecot's "OK Still here".
_EXPUNGE = re.compile(rb"^(\d+ EXPUNGE|VANISHED)\b", re.IGNORECASE)
# Untagged NO/BAD/BYE: Dovecot says "* NO Internal error" forever once the selected folder was deleted by
# another session (RFC 3501 §7.1.2/§7.1.5): only a new session (re-SELECT) gets out of that state.
_TROUBLE = re.compile(rb"^(NO|BAD|BYE)\b", re.IGNORECASE)
_KEEPALIVE = re.compile(rb"^OK\b", re.IGNORECASE)

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
                    _discard(conn)
                self.conn = None
            self.reconnects += 1
            await asyncio.sleep(backoff(failures))

    async def reselect(self, conn: ImapConnection) -> None:
        """SELECT the watched folder again after housekeeping selected another one on this connection."""
        await self._select(conn)

    async def _select(self, conn: ImapConnection) -> None:
        name = wire_mailbox(self.folder, conn.delimiter)
        response = await conn.command(conn.client.select(name), f"SELECT {self.folder!r}", ok=("OK", "NO"))
        if response.result != "OK":
            # Missing (never delivered to, or deleted by the user): create it as the store would.
            created = await conn.command(conn.client.create(name), f"CREATE {self.folder!r}", ok=("OK", "NO"))
            if created.result == "OK":
                await conn.command(conn.client.subscribe(name), f"SUBSCRIBE {self.folder!r}")
            await conn.command(conn.client.select(name), f"SELECT {self.folder!r}")
        conn.selected = self.folder

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
        queue: asyncio.Queue[Any] = conn.client.protocol.idle_queue
        while not queue.empty():  # leftovers of an earlier IDLE
            queue.get_nowait()
        # RFC 2177: re-issue IDLE at least every 29 minutes; idle_seconds is the configured period.
        idle = await conn.guard(conn.client.idle_start(timeout=self.watcher.idle_seconds + 60), "IDLE")
        deadline = time.monotonic() + self.watcher.idle_seconds
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                waiters = {
                    asyncio.ensure_future(queue.get()): "push",
                    asyncio.ensure_future(self._nudge.wait()): "nudge",
                    asyncio.ensure_future(conn._lost.wait()): "lost",
                }
                done, pending = await asyncio.wait(
                    waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                for task in pending:
                    task.cancel()
                what = {waiters[t] for t in done}
                if "lost" in what:
                    # FIELD-NOTES: after BYE during IDLE the idle future never completes.
                    raise conn.error("connection lost during IDLE")
                if "nudge" in what:
                    self._nudge.clear()
                    break
                push = [t for t in done if waiters[t] == "push"]
                if push and _relevant(push[0].result()):
                    lines = push[0].result()
                    _check_trouble(conn, lines)
                    if not isinstance(lines, list) or any(_EXPUNGE.search(bytes(x)) for x in lines):
                        self._expunge_hint = True
                    break
        finally:
            if conn.alive:
                conn.client.idle_done()
        response = await conn.guard(idle, "IDLE DONE")
        if response.result != "OK":
            raise conn.error(f"IDLE ended with {response.result} {response_text(response)}")

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
        noop = await conn.command(conn.client.noop(), "NOOP")
        untagged = [bytes(line) for line in noop.lines[:-1]]
        _check_trouble(conn, untagged)
        expunged = self._expunge_hint or any(_EXPUNGE.search(line) for line in untagged)
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

    async def _round(self, conn: ImapConnection, status: dict[str, int], expunged: bool) -> list[WatchEvent]:
        """Apply one STATUS snapshot to ``state``; the events it implies."""
        state = self.state
        uidvalidity, messages = status["UIDVALIDITY"], status["MESSAGES"]
        modseq, uidnext = status.get("HIGHESTMODSEQ"), status.get("UIDNEXT", 0)
        fresh = not state.synced or state.uidvalidity != uidvalidity
        if state.synced and state.uidvalidity != uidvalidity:
            # RFC 3501 §2.3.1.1: a new UIDVALIDITY invalidates every UID we knew (folder re-created).
            log.warning("watch %s %r: UIDVALIDITY changed; full resync", self.mailbox.id, self.folder)
        before = state.entries
        if fresh:
            uids, entries = await self._full(conn, messages)
        elif (
            modseq is not None
            and not expunged
            and (modseq, uidnext, messages) == (state.highestmodseq, state.uidnext, len(state.uids))
        ):
            return []  # RFC 7162 §3.1.2.1: nothing changed
        elif modseq is None or state.highestmodseq is None:
            uids, entries = await self._full(conn, messages)  # no CONDSTORE: read it all
        else:
            uids, entries = await self._incremental(conn, messages, uidnext, state.highestmodseq, expunged)
        state.uidvalidity, state.highestmodseq, state.uidnext, state.messages = (
            uidvalidity,
            modseq,
            uidnext,
            messages,
        )
        state.uids, state.entries, state.synced = uids, entries, True
        return diff(self.mailbox, self.folder, {} if fresh else before, entries, initial=fresh)

    async def _status(self, conn: ImapConnection) -> dict[str, int]:
        items = "MESSAGES UIDNEXT UIDVALIDITY" + (
            " HIGHESTMODSEQ" if conn.has_capability("CONDSTORE") else ""
        )
        response = await conn.command(
            conn.client.status(wire_mailbox(self.folder, conn.delimiter), f"({items})"), "STATUS"
        )
        values: dict[str, int] = {}
        for line in response.lines[:-1]:
            for match in _STATUS.finditer(bytes(line)):
                values[match.group(1).decode().upper()] = int(match.group(2))
        if "UIDVALIDITY" not in values or "MESSAGES" not in values:
            # The folder vanished under us (deleted by the user): reconnect, re-create, full resync.
            raise conn.error(f"STATUS {self.folder!r}: no UIDVALIDITY/MESSAGES in reply")
        return values

    async def _fetch(self, conn: ImapConnection, uids: str, items: str) -> list[bytes]:
        response = await conn.command(conn.client.uid("fetch", uids, items), "UID FETCH")
        return [bytes(line) for line in response.lines[:-1]]

    async def _full(self, conn: ImapConnection, messages: int) -> tuple[set[int], dict[int, Entry]]:
        lines = await self._fetch(conn, "1:*", FETCH_ITEMS) if messages else []
        return _uids(lines), {e.uid: e for e in parse_fetch(lines)}

    async def _incremental(
        self, conn: ImapConnection, messages: int, uidnext: int, since: int, expunged: bool
    ) -> tuple[set[int], dict[int, Entry]]:
        state = self.state
        uids, entries = set(state.uids), dict(state.entries)
        last = max(uids, default=0)
        if last:
            # RFC 7162 §3.1.4: only the messages whose flags changed since the modseq we saw.
            for line in await self._fetch(conn, f"1:{last}", f"(UID FLAGS) (CHANGEDSINCE {since})"):
                uid, flags = _uid(line), _FETCH_FLAGS.search(line)
                entry = entries.get(uid) if uid is not None else None
                if entry is not None and flags is not None:
                    value = frozenset(flags.group(1).decode("ascii", "replace").split()) - {"\\Recent"}
                    if value != entry.flags:
                        entries[entry.uid] = _with_flags(entry, value)
        if uidnext > last + 1:
            # "n:*" always names the highest UID (RFC 3501 §6.4.8): keep only the really new ones.
            lines = await self._fetch(conn, f"{last + 1}:*", FETCH_ITEMS)
            uids.update(u for u in _uids(lines) if u > last)
            entries.update((e.uid, e) for e in parse_fetch(lines) if e.uid > last)
        if expunged or len(uids) != messages:
            # Expunged or moved away by someone (RFC 3501 §6.4.4): learn which UIDs remain.
            response = await conn.command(conn.client.uid_search("ALL", charset=None), "UID SEARCH")
            uids = set(search_uids(response))
            entries = {u: e for u, e in entries.items() if u in uids}
        return uids, entries


def _with_flags(entry: Entry, flags: frozenset[str]) -> Entry:
    return dataclasses.replace(entry, flags=flags)


def _uid(line: bytes) -> int | None:
    match = _FETCH_UID.match(line)
    return int(match.group(1)) if match else None


def _uids(lines: list[bytes]) -> set[int]:
    return {uid for line in lines if (uid := _uid(line)) is not None}


def _relevant(lines: Any) -> bool:
    """Whether an IDLE push may mean a change (EXISTS, EXPUNGE, FETCH, VANISHED), not a keep-alive."""
    if not isinstance(lines, list):
        return True  # aioimaplib's STOP_WAIT_SERVER_PUSH or anything unexpected: resync to be safe
    return any(not _KEEPALIVE.match(bytes(line)) for line in lines)


def _check_trouble(conn: ImapConnection, lines: Any) -> None:
    for line in lines if isinstance(lines, list) else ():
        if _TROUBLE.match(bytes(line)):
            text = bytes(line).decode("utf-8", "replace")[:200]
            raise conn.error(f"server says {text!r}; starting a new session")


def _discard(conn: ImapConnection) -> None:
    """Drop a connection and the aioimaplib tasks (a pending IDLE) that would otherwise never finish."""
    client = conn.client
    conn.abort()
    for task in list(getattr(client, "tasks", ())):
        task.cancel()
