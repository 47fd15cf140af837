"""The switched routing state in IMAP METADATA, shared by every instance, read cache-first on the call path.

A mailbox's mode lives in ``/private/vendor/vm2mail/route-mode`` on its own folder (a group's on its
first member's folder, as ``route-mode-group/<id>``); the company outage switch lives in ``outage`` on
the folder of ``outage.state_mailbox`` (default: the first mailbox outage mode routes to). Like PINs and
lockouts (logins.py), any instance sees a change at its next read.

The call path must answer within about 2 s even when IMAP hangs (DESIGN.md, "Deadlines everywhere"):
``cached_*`` answer from a copy younger than ``routing.cache_seconds``; otherwise they wait at most
``routing.read_timeout_seconds`` for IMAP and fall back to the last known state (or normal when
nothing is known). A failed read is remembered for ``cache_seconds`` too, so a hanging server costs at
most one bounded wait per mailbox and period, never one per call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from vm2mail import metrics
from vm2mail.config.model import Config, Mailbox
from vm2mail.errors import Vm2mailError
from vm2mail.mailstore.metadata import Metadata
from vm2mail.routing.decide import Switch

log = logging.getLogger(__name__)

MODE_ENTRY = "route-mode"
OUTAGE_ENTRY = "outage"


def mode_home(config: Config, mailbox: Mailbox) -> tuple[Mailbox, str]:
    """(folder owner, entry name) keeping ``mailbox``'s mode."""
    if mailbox.is_group:
        return config.mailboxes[mailbox.members[0]], f"{MODE_ENTRY}-group/{mailbox.id}"
    return mailbox, MODE_ENTRY


def outage_home(config: Config) -> Mailbox:
    """The mailbox whose folder keeps the company outage switch."""
    outage = config.outage
    candidates = [outage.state_mailbox, outage.default_mailbox, *outage.routes.values(), *config.mailboxes]
    for box_id in candidates:
        box = config.mailboxes.get(box_id) if box_id else None
        if box is None:
            continue
        box = mode_home(config, box)[0]
        if box.imap_user:
            return box
    raise Vm2mailError("no mailbox with an IMAP folder to keep the outage switch on")


@dataclass
class _Cached:
    value: Switch
    at: float  # monotonic time of the last read attempt (success or failure)
    known: bool  # False: never read successfully


class Switches:
    """Reads and writes the switches; the ``cached_*`` reads are the call path's (bounded, never raise)."""

    def __init__(self, config: Callable[[], Config], metadata: Metadata) -> None:
        self.config = config
        self.metadata = metadata
        self._cache: dict[str, _Cached] = {}
        self._reads: dict[str, asyncio.Task[Switch]] = {}

    # -- direct (CLI, menu, HTTP): errors propagate --------------------------------------------------

    async def mode(self, mailbox: Mailbox) -> Switch:
        home, entry = mode_home(self.config(), mailbox)
        switch = Switch.from_json(await self.metadata.get(home, entry))
        self._remember(f"mode:{mailbox.id}", switch)
        return switch

    async def set_mode(self, mailbox: Mailbox, switch: Switch) -> None:
        home, entry = mode_home(self.config(), mailbox)
        await self.metadata.set(home, entry, switch.to_json())
        self._remember(f"mode:{mailbox.id}", switch)

    async def outage(self) -> Switch:
        switch = Switch.from_json(await self.metadata.get(outage_home(self.config()), OUTAGE_ENTRY))
        self._remember("outage", switch)
        return switch

    async def set_outage(self, switch: Switch) -> None:
        await self.metadata.set(outage_home(self.config()), OUTAGE_ENTRY, switch.to_json())
        self._remember("outage", switch)

    def _remember(self, key: str, switch: Switch) -> None:
        self._cache[key] = _Cached(switch, time.monotonic(), True)

    def _finished(self, key: str, task: asyncio.Task[Switch]) -> None:
        self._reads.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            log.debug("switch %s read failed: %s", key, task.exception())

    # -- the call path: cache-first, bounded --------------------------------------------------------------

    async def cached_mode(self, mailbox: Mailbox, budget: float | None = None) -> Switch:
        return await self._cached(f"mode:{mailbox.id}", lambda: self.mode(mailbox), budget)

    async def cached_outage(self, budget: float | None = None) -> Switch:
        return await self._cached("outage", self.outage, budget)

    async def _cached(
        self, key: str, read: Callable[[], Awaitable[Switch]], budget: float | None = None
    ) -> Switch:
        """``budget``: the caller's remaining budget, at most ``routing.read_timeout_seconds``."""
        settings = self.config().routing
        entry = self._cache.get(key)
        if entry is not None and time.monotonic() - entry.at < settings.cache_seconds:
            metrics.SWITCH_READS.labels(source="cache" if entry.known else "stale").inc()
            return entry.value
        task = self._reads.get(key)
        if task is None:
            task = asyncio.ensure_future(read())
            self._reads[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        try:
            value = await asyncio.wait_for(
                asyncio.shield(task), settings.read_timeout_seconds if budget is None else budget
            )
        except (TimeoutError, Vm2mailError, OSError) as exc:
            last = entry.value if entry is not None else Switch()
            # Remember the failure too: the next calls answer at once from the last state.
            self._cache[key] = _Cached(last, time.monotonic(), entry.known if entry is not None else False)
            metrics.SWITCH_READS.labels(source="stale").inc()
            log.warning(
                "switch %s not readable in time (%s): using the last known state", key, type(exc).__name__
            )
            return last
        metrics.SWITCH_READS.labels(source="imap").inc()
        return value
