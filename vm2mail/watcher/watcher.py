"""The watcher: one FolderSession per member mailbox, counts, change events, group sync and retention."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from vm2mail import metrics
from vm2mail.config.model import Config, Mailbox
from vm2mail.errors import MailStoreError, Vm2mailError
from vm2mail.jobs.jobs import Job
from vm2mail.mailstore.connection import ImapConnection
from vm2mail.mailstore.store import ImapStore
from vm2mail.mailstore.voicemails import Counts, Voicemails, counts
from vm2mail.watcher import full, groups, retention
from vm2mail.watcher.session import FolderSession
from vm2mail.watcher.state import WatchEvent

log = logging.getLogger(__name__)

Subscriber = Callable[[WatchEvent], Awaitable[None]]
RELOAD_CHECK_SECONDS = 1.0  # how often run() looks for a new config object
HOUSEKEEPING_SECONDS = 3600.0  # retention and trash_days per mailbox, at most this often
EVENT_BATCH = 200  # events handled between yields to the event loop (~2 ms of work each batch)
# Sessions that connect, log in and run their first sync at the same time. 1,000 sessions started at
# once made two turns of the event loop of 45 and 70 ms (every session's first step, then every
# connection's greeting); in groups the start is as fast, and a restarted Dovecot is not stormed.
OPENING = 20


class Watcher:
    """Watches every non-group mailbox's folder (a group's copies live in its members' folders)."""

    def __init__(self, config: Callable[[], Config], store: ImapStore) -> None:
        self.config = config
        self.store = store
        self.voicemails = Voicemails(store)
        self._sessions: dict[str, FolderSession] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._subscribers: list[Subscriber] = []
        self._events: asyncio.Queue[WatchEvent] = asyncio.Queue()
        self._moved: set[tuple[str, int]] = set()  # (mailbox id, UID) the gateway itself moved away
        self._full: dict[str, bool | None] = {}
        self._housekept: dict[str, float] = {}
        self._applied: Config | None = None
        self._opening = asyncio.Semaphore(OPENING)

    # -- public API ------------------------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> None:
        """``callback`` gets every WatchEvent, in order, from one dispatcher task (errors are logged)."""
        self._subscribers.append(callback)

    def session(self, mailbox_id: str) -> FolderSession | None:
        return self._sessions.get(mailbox_id)

    def counts(self, mailbox_id: str) -> Counts | None:
        """Current counts of a member mailbox, None before its first sync (or for groups/unknown ids)."""
        session = self._sessions.get(mailbox_id)
        return session.state.counts if session is not None and session.state.synced else None

    async def mailbox_full(self, mailbox: Mailbox) -> bool:
        """Whether callers must hear "full": total voicemails ≥ ``max_messages``.

        A group is full only when every member is full, so a member with room still gets the message.
        Before a folder's first sync it is listed directly; if IMAP is unreachable the answer is "not
        full" (the recording is spooled and delivered later rather than refused).
        """
        config = self.config()
        if mailbox.is_group:
            members = [config.mailboxes[m] for m in mailbox.members if m in config.mailboxes]
            results = [await self.mailbox_full(m) for m in members if not m.is_group]
            return bool(results) and all(results)
        current = self.counts(mailbox.id)
        if current is None:
            try:
                current = counts(await self.voicemails.listing(mailbox))
            except Vm2mailError as exc:
                log.warning("mailbox %s: cannot count voicemails (%s); treating as not full", mailbox.id, exc)
                return False
        return full.is_full(mailbox, current)

    async def on_delivered(self, job: Job, target: Mailbox, uid: int) -> None:
        """Pipeline hook: the gateway appended ``uid`` to ``target``'s folder; resync it now."""
        session = self._sessions.get(target.id)
        if session is not None:
            session.nudge()

    def note_move(self, mailbox_id: str, uid: int) -> None:
        """Remember that the gateway moved this message away (retention, group sync): not a user delete."""
        self._moved.add((mailbox_id, uid))

    def moved_by_gateway(self, mailbox_id: str, uid: int) -> bool:
        key = (mailbox_id, uid)
        if key in self._moved:
            self._moved.discard(key)
            return True
        return False

    async def run(self) -> None:
        """Watch until cancelled; a new object from ``config()`` (a reload) is applied within a second."""
        dispatcher = asyncio.create_task(self._dispatch(), name="watcher-events")
        try:
            while True:
                config = self.config()
                if config is not self._applied:
                    self._apply(config)
                await asyncio.sleep(RELOAD_CHECK_SECONDS)
        finally:
            dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dispatcher
            await self.close()

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        self._sessions.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._applied = None
        metrics.WATCHED_FOLDERS.set(0)

    # -- sessions --------------------------------------------------------------------------------------

    def _apply(self, config: Config) -> None:
        wanted: dict[str, FolderSession] = {}
        if config.watcher.enabled:
            for box in config.mailboxes.values():
                if box.is_group or not box.imap_user:
                    continue
                try:
                    login, password = self.store.credentials(box)
                except MailStoreError as exc:
                    log.warning("mailbox %s not watched: %s", box.id, exc)
                    continue
                view = self.store.views.get(login, box.folder)
                wanted[box.id] = FolderSession(
                    config.imap, config.watcher, box, login, password, self._synced, view, self._opening
                )
        for box_id in list(self._sessions):
            session, new = self._sessions[box_id], wanted.get(box_id)
            if new is not None and new.key() == session.key():
                session.mailbox = new.mailbox  # limits, retention, group settings: no reconnect needed
                continue
            self._tasks.pop(box_id).cancel()
            del self._sessions[box_id]
            self._full.pop(box_id, None)
        for box_id, session in wanted.items():
            if box_id not in self._sessions:
                self._sessions[box_id] = session
                self._tasks[box_id] = asyncio.create_task(session.run(), name=f"watch-{box_id}")
        self._applied = config
        metrics.WATCHED_FOLDERS.set(len(self._sessions))

    async def _synced(
        self, session: FolderSession, conn: ImapConnection, events: Iterable[WatchEvent]
    ) -> None:
        """After each sync, on the session's connection: full notice, retention, group sync, events."""
        mailbox, config = session.mailbox, self.config()
        self._full[mailbox.id] = await full.update(
            conn, config, mailbox, session.state.counts, self._full.get(mailbox.id)
        )
        now = time.monotonic()
        if now - self._housekept.get(mailbox.id, -HOUSEKEEPING_SECONDS) >= HOUSEKEEPING_SECONDS:
            self._housekept[mailbox.id] = now
            await self._housekeep(session, conn)
        for n, event in enumerate(events, 1):
            await groups.follow(self, event)
            self._events.put_nowait(event)
            if n % EVENT_BATCH == 0:
                await asyncio.sleep(0)  # a first sync's 10,000 events: let the loop run in between

    async def _housekeep(self, session: FolderSession, conn: ImapConnection) -> None:
        """Retention and trash_days on the session's own connection (no extra IMAP session per account)."""
        mailbox = session.mailbox
        if mailbox.retention_days is None and mailbox.trash_days is None:
            return
        trash = await retention.find_trash(conn)
        if trash == session.folder:
            return  # a mailbox whose folder is the Trash itself: nothing sensible to do
        moved = await retention.expire(self, conn, mailbox, session.state, trash)
        if mailbox.trash_days is not None:
            await retention.empty_trash(conn, mailbox, trash)
            await session.reselect(conn)
        if moved or mailbox.trash_days is not None:
            session.nudge()  # our own MOVE/SELECT raises no IDLE push on this session: resync at once

    async def _dispatch(self) -> None:
        handed = 0
        while True:
            # Queue.get does not suspend while events are queued: yield every EVENT_BATCH events.
            handed += 1
            if handed % EVENT_BATCH == 0:
                await asyncio.sleep(0)
            event = await self._events.get()
            for callback in list(self._subscribers):
                try:
                    await callback(event)
                except Exception:  # a subscriber's bug must not stop the watcher
                    log.exception("watch event subscriber failed for mailbox %s", event.mailbox.id)
