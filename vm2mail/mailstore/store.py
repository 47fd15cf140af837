"""The gateway's IMAP writer: idempotent APPEND of voicemails into folders over pooled connections."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from vm2mail.config.model import ImapConfig, Mailbox
from vm2mail.errors import MailStoreError
from vm2mail.mailstore.connection import ImapConnection
from vm2mail.mailstore.folders import quote
from vm2mail.mailstore.view import FolderViews

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_CONNECTIONS_PER_LOGIN = 4
IDLE_SECONDS = 60.0


@dataclass
class Pool:
    """Open connections of one login, bounded so one busy user cannot exhaust the server's limits."""

    password: str = field(repr=False)
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_CONNECTIONS_PER_LOGIN))
    idle: list[ImapConnection] = field(default_factory=list)
    busy: int = 0  # connections lent out right now
    folders: set[str] = field(default_factory=set)  # folders known to exist (created or seen)


class ImapStore:
    """Delivers messages into IMAP folders, logging in as each mailbox's owner (or a master user for them)."""

    def __init__(self, cfg: ImapConfig) -> None:
        self.cfg = cfg
        self._pools: dict[str, Pool] = {}
        self.views = FolderViews()  # the live folder views every reader of this gateway shares

    # -- credentials -----------------------------------------------------------------------------------

    def credentials(self, mailbox: Mailbox) -> tuple[str, str]:
        """(login, password) for a mailbox: ``user*master`` with the master password when one is set."""
        if not mailbox.imap_user:
            raise MailStoreError(f"mailbox {mailbox.id} has no imap_user", temporary=False)
        if self.cfg.master_user:
            # Dovecot auth_master_user_separator = "*": log in as the user, authenticated as the master.
            return f"{mailbox.imap_user}*{self.cfg.master_user}", self.cfg.master_password or ""
        if mailbox.imap_password is None:
            raise MailStoreError(
                f"mailbox {mailbox.id} ({mailbox.imap_user}) has no imap_password and no master user is set",
                temporary=False,
            )
        return mailbox.imap_user, mailbox.imap_password

    # -- pool ------------------------------------------------------------------------------------------

    def _pool(self, login: str, password: str) -> Pool:
        pool = self._pools.get(login)
        if pool is None or pool.password != password:
            pool = self._pools[login] = Pool(password=password)
        return pool

    def _reap(self, pool: Pool) -> None:
        now = time.monotonic()
        keep: list[ImapConnection] = []
        for conn in pool.idle:
            if conn.alive and now - conn.last_used < IDLE_SECONDS:
                keep.append(conn)
            else:
                conn.abort()
        pool.idle = keep

    @staticmethod
    def _take_idle(pool: Pool, folder: str | None) -> ImapConnection | None:
        """The idle connection to use for ``folder``, or None when a new one should be opened."""
        for wanted in (lambda c: folder is not None and c.selected == folder, lambda c: c.selected is None):
            for at in range(len(pool.idle) - 1, -1, -1):  # most recently used first
                if wanted(pool.idle[at]):
                    return pool.idle.pop(at)
        if not pool.idle or (folder is not None and len(pool.idle) + pool.busy < MAX_CONNECTIONS_PER_LOGIN):
            return None
        return pool.idle.pop()

    @asynccontextmanager
    async def _connection(
        self, login: str, password: str, folder: str | None = None
    ) -> AsyncIterator[tuple[ImapConnection, bool]]:
        """A connection for ``login`` and whether it was reused; returned to the pool only if unharmed.

        An idle connection with ``folder`` selected is taken first: a NOOP instead of a SELECT, which on
        a folder of 10,000 messages is the most expensive command of a menu step. While the pool has
        room, a folder nobody has selected gets a connection of its own rather than taking another
        folder's, so the menu's Voicemail and Trash do not select each other away at every step.
        """
        pool = self._pool(login, password)
        async with pool.slots:
            self._reap(pool)
            idle = self._take_idle(pool, folder)
            reused = idle is not None
            conn = idle if idle is not None else await ImapConnection.open(self.cfg, login, password)
            pool.busy += 1
            try:
                yield conn, reused
            except BaseException:
                conn.abort()
                raise
            finally:
                pool.busy -= 1
            if conn.alive and self._pools.get(login) is pool:
                conn.last_used = time.monotonic()
                pool.idle.append(conn)
            else:
                conn.abort()

    async def run(
        self,
        mailbox: Mailbox,
        op: Callable[[ImapConnection, Pool], Awaitable[T]],
        *,
        folder: str | None = None,
    ) -> T:
        """Run ``op`` on a pooled connection; a stale pooled connection is replaced once, transparently.

        ``folder``: the folder ``op`` selects, so a connection that has it selected already is preferred.
        """
        login, password = self.credentials(mailbox)
        for attempt in (1, 2):
            async with self._connection(login, password, folder) as (conn, reused):
                try:
                    return await op(conn, self._pool(login, password))
                except MailStoreError:
                    # The server restarted or dropped an idle session: retry on a fresh connection.
                    # Safe for deliver(): the retry searches for the Message-ID again before APPEND.
                    if not (reused and not conn.alive and attempt == 1):
                        raise
                    log.info("IMAP %s: pooled connection for %s was stale; reconnecting", conn.where, login)
        raise AssertionError("unreachable")

    # -- folder handling -------------------------------------------------------------------------------

    async def ensure_folder(self, conn: ImapConnection, pool: Pool, folder: str) -> None:
        if folder in pool.folders:
            return
        await conn.create(folder)  # [ALREADYEXISTS] is fine; other refusals raise
        pool.folders.add(folder)

    async def select(self, conn: ImapConnection, pool: Pool, folder: str) -> None:
        """Make ``folder`` the selected mailbox with an up-to-date view.

        Dovecot searches the mailbox view as of the last sync, so a message appended meanwhile by
        another connection would be missed: re-selecting syncs, and on an already selected folder
        NOOP does the same (RFC 3501 §6.1.2) for one round trip.
        """
        if conn.selected == folder:
            await conn.noop()
            return
        await self.ensure_folder(conn, pool, folder)
        if not await conn.select(folder, missing_ok=True):
            pool.folders.discard(folder)  # deleted by the user since we looked: create it again
            await self.ensure_folder(conn, pool, folder)
            await conn.select(folder)

    async def _search_message_id(self, conn: ImapConnection, message_id: str) -> int | None:
        if not message_id.isascii() or not message_id.strip():
            raise MailStoreError(f"unusable Message-ID {message_id!r}", temporary=False)
        # RFC 3501 §6.4.4: HEADER matches a substring; the angle brackets make that an exact match.
        uids = await conn.uid_search("HEADER", "Message-ID", quote(message_id))
        return min(uids) if uids else None

    async def _search_all_message_id(self, conn: ImapConnection, message_id: str) -> list[int]:
        return await conn.uid_search("HEADER", "Message-ID", quote(message_id))

    async def _drop_duplicate(self, conn: ImapConnection, folder: str, message_id: str, uid: int) -> None:
        """Remove our own copy ``uid``: UID EXPUNGE (RFC 4315 §2.1) touches no other \\Deleted message."""
        await conn.uid_store(str(uid), "+FLAGS.SILENT", ("\\Deleted",))
        await conn.uid_expunge(str(uid))
        log.info(
            "IMAP %s: %s was appended concurrently to %r; removed our copy UID %d",
            conn.where,
            message_id,
            folder,
            uid,
        )

    # -- public API ------------------------------------------------------------------------------------

    async def deliver(
        self,
        mailbox: Mailbox,
        folder: str,
        message: bytes,
        *,
        message_id: str,
        internal_date: datetime,
        flags: tuple[str, ...] = (),
    ) -> int:
        """APPEND ``message`` into ``folder`` unless a message with ``message_id`` is there; its UID.

        ``internal_date`` must be timezone-aware (it becomes the RFC 3501 INTERNALDATE). The folder is
        created and subscribed when missing. ``flags`` (e.g. ``("\\Seen",)``) are set by the APPEND
        itself; without them the voicemail arrives unseen (new).
        """
        if internal_date.tzinfo is None:
            raise ValueError("internal_date must be timezone-aware")

        async def op(conn: ImapConnection, pool: Pool) -> int:
            await self.select(conn, pool, folder)
            existing = await self._search_message_id(conn, message_id)
            if existing is not None:
                log.info("IMAP %s: %s already in %r as UID %d", conn.where, message_id, folder, existing)
                return existing
            # RFC 3501 §6.3.11: without a flag list the voicemail arrives unseen (new).
            uid = await conn.append(folder, message, flags=flags, date=internal_date)
            # Another gateway (or worker) may have searched, found nothing and appended the same
            # Message-ID at the same time. UIDs grow in commit order (RFC 3501 §2.3.1.1), so every
            # appender keeps the lowest UID and removes only its own later copy: whatever the
            # interleaving, exactly the first APPEND survives. NOOP first: Dovecot searches the
            # view as of the last sync (see select()).
            await conn.noop()
            found = await self._search_all_message_id(conn, message_id)
            if uid is None:  # server without UIDPLUS (RFC 4315): find what we just stored
                if not found:
                    raise conn.error(f"APPEND to {folder!r} succeeded but {message_id} is not found")
                uid = max(found)  # ours is the newest; the removal below needs UIDPLUS, so skip it
            elif found and min(found) < uid:
                await self._drop_duplicate(conn, folder, message_id, uid)
                return min(found)
            log.info("IMAP %s: appended %s to %r as UID %d", conn.where, message_id, folder, uid)
            return uid

        return await self.run(mailbox, op, folder=folder)

    async def find_message_id(self, mailbox: Mailbox, folder: str, message_id: str) -> int | None:
        """UID of the message with ``message_id`` in ``folder`` (created if missing), or None."""

        async def op(conn: ImapConnection, pool: Pool) -> int | None:
            await self.select(conn, pool, folder)
            return await self._search_message_id(conn, message_id)

        return await self.run(mailbox, op, folder=folder)

    async def has_header(self, mailbox: Mailbox, folder: str, name: str, value: str) -> bool:
        """Whether a message in ``folder`` has header ``name`` containing ``value`` (RFC 3501 §6.4.4)."""
        if not (name.isascii() and value.isascii() and value.strip()):
            raise ValueError(f"unusable header search {name}: {value!r}")

        async def op(conn: ImapConnection, pool: Pool) -> bool:
            await self.select(conn, pool, folder)
            return bool(await conn.uid_search("HEADER", name, quote(value)))

        return await self.run(mailbox, op, folder=folder)

    async def ping(self) -> None:
        """Health check: connect (with TLS as configured) and NOOP without logging in."""
        conn = ImapConnection(self.cfg, "(health check)")
        try:
            await conn.connect()
            await conn.noop()
        finally:
            await conn.logout()

    async def close(self) -> None:
        """Log out every pooled connection."""
        pools, self._pools = list(self._pools.values()), {}
        connections = [conn for pool in pools for conn in pool.idle]
        for pool in pools:
            pool.idle.clear()
        await asyncio.gather(*(conn.logout() for conn in connections))
