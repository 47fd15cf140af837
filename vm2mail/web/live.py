"""Live updates for open inboxes: the watcher's IMAP changes fanned out as server-sent events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

from vm2mail.watcher import WatchEvent

log = logging.getLogger(__name__)

QUEUE_LIMIT = 64  # a browser that stops reading loses events, never the gateway's memory
HEARTBEAT_SECONDS = 15.0  # an SSE comment keeps proxies from closing an idle stream


class LiveHub:
    """Subscribed to the watcher (vm2mail.watcher): every change of a mailbox's folder reaches its pages.

    Events carry only what changed (UID and kind), never caller data: the page re-reads its list
    through the authenticated API, so a stream leaks nothing even if mis-delivered.
    """

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[str]]] = {}

    async def on_event(self, event: WatchEvent) -> None:
        if event.initial:
            # The watcher's first sync reports every voicemail already there (thousands at once);
            # pages re-read their list whenever their stream (re)connects, so these add nothing.
            return
        self.publish(event.mailbox.id, {"kind": event.kind, "uid": event.entry.uid})

    def publish(self, mailbox_id: str, data: dict[str, object]) -> None:
        text = json.dumps(data, separators=(",", ":"))
        for queue in self._queues.get(mailbox_id, ()):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(text)

    @contextlib.asynccontextmanager
    async def listen(self, mailbox_id: str) -> AsyncIterator[asyncio.Queue[str]]:
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_LIMIT)
        self._queues.setdefault(mailbox_id, set()).add(queue)
        try:
            yield queue
        finally:
            listeners = self._queues.get(mailbox_id, set())
            listeners.discard(queue)
            if not listeners:
                self._queues.pop(mailbox_id, None)
