"""Shares the PBX breakers between gateway instances through one IMAP METADATA entry.

Each instance keeps its own breakers (routing/breaker.py) so the call path never waits for IMAP. When
one opens or closes a breaker it writes ``/private/vendor/vm2mail/pbx-breakers`` on the folder that
keeps the outage switch: JSON ``{target: {"until": epoch or null, "at": epoch}}``. Every instance reads
that entry every ``routing.cache_seconds`` (at least each second) in the background and adopts newer
changes: a PBX found dead by one instance is skipped by all, and one successful probe closes them all.

METADATA has no compare-and-set: two instances writing at the same moment can lose one update. The
entry is only a shortcut; an instance that missed it still opens its own breaker after its own
``breaker_failures`` failed dials, so nothing worse than the per-instance behaviour can happen.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from vm2mail.config.model import Config
from vm2mail.errors import Vm2mailError
from vm2mail.mailstore.metadata import Metadata
from vm2mail.routing.breaker import Breakers
from vm2mail.routing.switches import outage_home

log = logging.getLogger(__name__)

ENTRY = "pbx-breakers"
WRITE_TIMEOUT_SECONDS = 10.0
MAX_TARGETS = 200  # the entry stays small: the oldest closed targets are dropped first


def parse(raw: str | None) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(raw or "{}")
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(k): v for k, v in data.items() if isinstance(v, dict) and isinstance(v.get("at"), int | float)
    }


class SharedBreakers:
    """Publishes this instance's breaker changes and adopts the others'; ``run`` polls forever."""

    def __init__(self, config: Callable[[], Config], metadata: Metadata, breakers: Breakers) -> None:
        self.config = config
        self.metadata = metadata
        self.breakers = breakers
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()  # this instance's writes one at a time (read-modify-write)
        breakers.on_change = self.publish_soon

    def publish_soon(self, target: str, until: float | None, at: float) -> None:
        """Breakers hook (synchronous, on the call path): write in the background."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._publish(target, until, at))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, target: str, until: float | None, at: float) -> None:
        try:
            async with self._lock:
                await asyncio.wait_for(self.publish(target, until, at), WRITE_TIMEOUT_SECONDS)
        except (TimeoutError, Vm2mailError) as exc:
            log.warning("PBX %s: breaker change not shared with other instances: %s", target, exc)

    async def publish(self, target: str, until: float | None, at: float) -> None:
        home = outage_home(self.config())
        known = parse(await self.metadata.get(home, ENTRY))
        if target in known and known[target]["at"] >= at:
            return
        known[target] = {"until": until, "at": at}
        if len(known) > MAX_TARGETS:
            keep = sorted(known.items(), key=lambda kv: (kv[1].get("until") is not None, kv[1]["at"]))
            known = dict(keep[-MAX_TARGETS:])
        await self.metadata.set(home, ENTRY, json.dumps(known, separators=(",", ":")))
        log.info("PBX %s: breaker %s shared with the other instances", target, "open" if until else "closed")

    async def poll(self) -> None:
        known = parse(await self.metadata.get(outage_home(self.config()), ENTRY))
        for target, change in known.items():
            until = change.get("until")
            self.breakers.learn(
                target, float(until) if isinstance(until, int | float) else None, float(change["at"])
            )

    async def run(self) -> None:
        while True:
            settings = self.config().routing
            try:
                await asyncio.wait_for(self.poll(), WRITE_TIMEOUT_SECONDS)
            except (TimeoutError, Vm2mailError) as exc:
                log.debug("shared breaker state not readable: %s", exc)
            except Exception:  # a bug must not stop the gateway
                log.exception("reading the shared breaker state failed")
            await asyncio.sleep(max(1.0, settings.cache_seconds))

    async def close(self) -> None:
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
