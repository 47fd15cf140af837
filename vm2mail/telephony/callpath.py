"""The call path's budget: answers from the mail store within about 1.5 s, else from cache or a default.

Twilio waits 15 s at most for TwiML (FIELD-NOTES), and an IMAP server that accepts connections but
never answers costs a full ``imap.timeout_seconds`` per command. So nothing a caller waits for awaits
IMAP directly: a lookup is started (one per key at a time), awaited for the budget only, and when it
is late the last value it gave is used (or the caller's default: the spoken greeting, "not full").
The late lookup keeps running in the background, bounded by the IMAP timeout, and refreshes the cache
for the next call; it is never cancelled, so a pooled IMAP connection is not torn down mid-command.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class CachedLookup(Generic[T]):
    """Cache-first reads for the call path: the fresh value if it comes within the budget, else the last one.

    ``fetch`` may raise: the failure is logged and the cached value (or the default) stays. The cache
    holds one value per key (a mailbox id); it is small and lives as long as the gateway.
    """

    def __init__(self, what: str) -> None:
        self.what = what  # for log lines: "greeting", "mailbox-full"
        self._values: dict[str, T] = {}
        self._inflight: dict[str, asyncio.Task[T]] = {}
        self._started: dict[str, float] = {}  # loop time each in-flight lookup began

    async def get(self, key: str, fetch: Callable[[], Awaitable[T]], default: T, budget: float) -> T:
        """The value for ``key``: fresh within ``budget`` seconds, else cached, else ``default``."""
        loop = asyncio.get_running_loop()
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(fetch())
            self._inflight[key] = task
            self._started[key] = loop.time()
            task.add_done_callback(lambda done: self._settle(key, done))
        # A lookup already late for an earlier caller will not be in time for this one either: during
        # an outage every caller after the first is answered from the cache at once.
        wait = max(0.0, self._started[key] + budget - loop.time())
        # asyncio.wait never cancels the task it waits for: a late lookup still refreshes the cache.
        done, _ = await asyncio.wait({task}, timeout=wait)
        if task in done and not task.cancelled() and task.exception() is None:
            return task.result()
        if task not in done:
            log.warning("%s of %s: mail store slower than %.1fs; using the cache", self.what, key, budget)
        return self._values.get(key, default)

    def _settle(self, key: str, task: asyncio.Task[T]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.warning("%s of %s not refreshed: %s", self.what, key, exc)
            return
        self._values[key] = task.result()


async def within(budget: float, step: Awaitable[T]) -> tuple[bool, T | None]:
    """(True, result) when ``step`` finishes within ``budget`` seconds, else (False, None).

    A late step is left to finish in the background (its errors are logged), like a late lookup: it
    warms the caches a retry of the caller reads, and an IMAP command is not cut off half-way.
    """
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=budget)
    if task in done:
        return True, task.result()
    _LATE.add(task)
    task.add_done_callback(_late_done)
    return False, None


_LATE: set[asyncio.Future[Any]] = set()  # strong references: the loop keeps only weak ones


def _late_done(task: asyncio.Future[Any]) -> None:
    _LATE.discard(task)
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("a call step finished after its answer was given, with an error: %s", exc)
