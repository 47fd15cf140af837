"""What routing does in the background on every instance: outage end notices, shared PBX breakers.

**Outage end notices.** Calls need no timer (a switch past its end counts as normal, routing/decide.py),
but the owners of the outage mailboxes were told it started and must be told it ended. Each gateway
instance checks the switch every ``CHECK_SECONDS`` (sooner when the end is near); the first to find it
expired writes it back as normal (by "expired") and sends the end notice. METADATA has no compare-and-
set, so two instances finding it in the same instant could both send it: a random pause and a second read
before writing make that unlikely (README).

**Shared breakers.** Each instance keeps its own breakers (routing/breaker.py) so the call path never
waits for IMAP. When one opens or closes a breaker it writes ``/private/vendor/vm2mail/pbx-breakers`` on
the folder that keeps the outage switch: JSON ``{target: {"until": epoch or null, "at": epoch}}``. Every
instance reads that entry every ``routing.cache_seconds`` (at least each second) in the background and
adopts newer changes: a PBX found dead by one instance is skipped by all, and one successful probe closes
them all.

METADATA has no compare-and-set: two instances writing at the same moment can lose one update. The entry
is only a shortcut; an instance that missed it still opens its own breaker after its own
``breaker_failures`` failed dials, so nothing worse than the per-instance behaviour can happen.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from vm2mail.config.model import Config, OutageConfig
from vm2mail.errors import Vm2mailError
from vm2mail.mailstore.metadata import Metadata
from vm2mail.routing import control
from vm2mail.routing.breaker import Breakers
from vm2mail.routing.decide import NORMAL, VOICEMAIL, Switch
from vm2mail.routing.switches import Switches, outage_home
from vm2mail.twilioapi.rest import TwilioRest

log = logging.getLogger(__name__)
audit = logging.getLogger("vm2mail.audit")

CHECK_SECONDS = 30.0
JITTER_SECONDS = 1.0


def _expired(switch: Switch, now: float) -> bool:
    return switch.mode == VOICEMAIL and switch.until is not None and switch.until <= now


class OutageExpiry:
    """The background check; ``run`` forever, or ``check`` once (both never raise on IMAP trouble)."""

    def __init__(self, config: Callable[[], Config], switches: Switches, rest: TwilioRest | None) -> None:
        self.config = config
        self.switches = switches
        self.rest = rest

    def enabled(self) -> bool:
        return self.config().outage != OutageConfig()  # no outage section: nothing to announce

    async def check(self) -> float | None:
        """Announce an expired outage; the seconds until the current one ends (None: none running)."""
        if not self.enabled():
            return None
        switch = await self.switches.outage()
        now = time.time()
        if not _expired(switch, now):
            return (switch.until - now) if switch.mode == VOICEMAIL and switch.until else None
        await asyncio.sleep(random.uniform(0, JITTER_SECONDS))
        if not _expired(await self.switches.outage(), time.time()):
            return None  # another instance announced it (or someone switched it again)
        await self.switches.set_outage(Switch(mode=NORMAL, since=switch.until, by="expired"))
        audit.info("audit: outage mode off by its end time (switched on by %s)", switch.by or "?")
        await control.notify_owners(self.config(), self.rest, started=False, until=None, by="expired")
        return None

    async def run(self) -> None:
        while True:
            wait = CHECK_SECONDS
            try:
                left = await self.check()
                if left is not None:
                    wait = min(wait, max(0.5, left + 0.1))
            except Vm2mailError as exc:
                log.warning("outage end check failed, trying again in %.0f s: %s", wait, exc)
            except Exception:  # a bug must not stop the gateway: log, keep checking
                log.exception("outage end check failed")
            await asyncio.sleep(wait)


BREAKERS_ENTRY = "pbx-breakers"
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
        known = parse(await self.metadata.get(home, BREAKERS_ENTRY))
        if target in known and known[target]["at"] >= at:
            return
        known[target] = {"until": until, "at": at}
        if len(known) > MAX_TARGETS:
            keep = sorted(known.items(), key=lambda kv: (kv[1].get("until") is not None, kv[1]["at"]))
            known = dict(keep[-MAX_TARGETS:])
        await self.metadata.set(home, BREAKERS_ENTRY, json.dumps(known, separators=(",", ":")))
        log.info("PBX %s: breaker %s shared with the other instances", target, "open" if until else "closed")

    async def poll(self) -> None:
        known = parse(await self.metadata.get(outage_home(self.config()), BREAKERS_ENTRY))
        for target, change in known.items():
            until = change.get("until")
            self.breakers.learn(
                target, float(until) if isinstance(until, int | float) else None, float(change["at"])
            )

    async def run(self) -> None:
        while True:
            config = self.config()
            settings = config.routing
            try:
                if any(box.forward_to for box in config.mailboxes.values()):
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
